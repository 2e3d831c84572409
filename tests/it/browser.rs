//! `report.html` in a real browser. Headless Chromium loads a copy of a tiny report with a probe
//! script appended; the probe checks that the page loaded without errors or requests and that every
//! chart is laid out, visible and drawn. It also checks that the page looks right at 1 280 px:
//! nothing is wider than the window, no two texts of a chart overlap or leave it, and every axis
//! with a unit has ticks in a readable unit (`250 µs`, `4 KiB`, never `1M ns`).
//! A screenshot of the unmodified page then shows that it paints: it is not blank, and the charts
//! inside it are not blank either.
//!
//! Without Chromium (Debian package `chromium`) the test says so on stderr and returns.
//!
//! Longer than 600 lines: the probe script and the checks that read its answers are one
//! piece.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::tiny_report;

/// Chromium gets this long per run, then its whole process group is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// Width of the browser window, in CSS pixels (the device scale factor is 1 in headless mode).
const WIDTH: u32 = 1280;

/// The id of the element the probe writes its verdict into.
const RESULT_ID: &str = "proctor-test-result";

/// Appended before `</body>` of the copy. On `load` it measures every `.chart` and writes a JSON
/// verdict into `<pre id="proctor-test-result">`; `<`, `>` and `&` are escaped as `\u00XX` so that
/// the serialized DOM holds the JSON byte for byte.
const PROBE: &str = r#"<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var from = e.target && e.target !== window && e.target.outerHTML
      ? ' from ' + e.target.outerHTML.slice(0, 120) : '';
    errors.push((e.message || 'a resource failed to load') + from);
  }, true);
  window.addEventListener('unhandledrejection', function (e) {
    errors.push('unhandled rejection: ' + e.reason);
  });
  window.addEventListener('load', function () {
    var charts = [];
    document.querySelectorAll('.chart').forEach(function (el) {
      var r = el.getBoundingClientRect();
      var style = getComputedStyle(el);
      var svg = el.querySelector('svg');
      var bbox = [0, 0], rect = [0, 0, 0, 0], marks = 0, texts = [], box = [0, 0, 0, 0];
      if (svg) {
        var b = svg.getBBox();
        bbox = [b.width, b.height];
        var s = svg.getBoundingClientRect();
        rect = [s.left + scrollX, s.top + scrollY, s.width, s.height];
        box = [s.left, s.top, s.right, s.bottom];
        marks = svg.querySelectorAll('polyline, path, rect, line, circle').length;
        svg.querySelectorAll('text').forEach(function (t) {
          var b = t.getBoundingClientRect();
          if (t.textContent.trim() === '') return;
          texts.push({
            role: t.getAttribute('class') || '',
            text: t.textContent.trim(),
            box: [b.left, b.top, b.right, b.bottom]
          });
        });
      }
      charts.push({
        id: el.id,
        width: r.width,
        height: r.height,
        display: style.display,
        visibility: style.visibility,
        opacity: parseFloat(style.opacity),
        has_svg: !!svg,
        svg_bbox: bbox,
        svg_rect: rect,
        svg_box: box,
        marks: marks,
        texts: texts
      });
    });
    // Elements that stick out of the window sideways (the page would scroll horizontally).
    var width = document.documentElement.clientWidth, wide = [];
    document.querySelectorAll('body *').forEach(function (el) {
      var r = el.getBoundingClientRect();
      if ((r.right > width + 0.5 || r.left < -0.5) && wide.length < 20) {
        wide.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '') +
          ' [' + Math.round(r.left) + ', ' + Math.round(r.right) + ']: ' +
          (el.textContent || '').trim().slice(0, 60));
      }
    });
    var verdict = {
      errors: errors,
      resources: performance.getEntriesByType('resource').map(function (e) { return e.name; }),
      client_width: width,
      scroll_width: document.documentElement.scrollWidth,
      wide: wide,
      charts: charts
    };
    var out = document.createElement('pre');
    out.id = 'proctor-test-result';
    out.textContent = JSON.stringify(verdict).replace(/[<>&]/g, function (c) {
      return '\\u00' + c.charCodeAt(0).toString(16);
    });
    document.body.appendChild(out);
  });
})();
</script>
"#;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn report_html_renders_every_chart_in_chromium() {
    let Some(chromium) = find_chromium() else {
        // Straight to the stderr handle: the test harness captures `eprintln!` of a passing
        // test, and a skip must not look like a pass.
        let _ = writeln!(
            std::io::stderr(),
            "chromium not installed (Debian package `chromium`): browser test skipped"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    tiny_report(&out).assert().success();

    let expected = expected_charts(&out.join("report.json"));
    let html = fs::read_to_string(out.join("report.html")).unwrap();

    // 1. The probe, in a copy of the page.
    let end = html.rfind("</body>").expect("report.html has a </body>");
    let probe_page = dir.path().join("probe.html");
    fs::write(&probe_page, [&html[..end], PROBE, &html[end..]].concat()).unwrap();
    let run = chromium_run(
        &chromium,
        dir.path(),
        "probe",
        &[
            &format!("--window-size={WIDTH},4000"),
            "--virtual-time-budget=5000",
            "--dump-dom",
            &file_url(&probe_page),
        ],
    );
    let verdict = verdict(&run.stdout, &run.stderr);
    let errors = verdict["errors"].as_array().unwrap();
    assert!(errors.is_empty(), "the page had errors: {errors:?}");
    let resources = verdict["resources"].as_array().unwrap();
    assert!(resources.is_empty(), "the page loaded {resources:?}");
    let charts = verdict["charts"].as_array().unwrap();
    let ids: Vec<&str> = charts.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        expected
            .iter()
            .map(|(id, _, _)| id.as_str())
            .collect::<Vec<_>>(),
        "one `.chart` per chart in report.json, in order"
    );
    for c in charts {
        let id = &c["id"];
        let num = |v: &serde_json::Value| v.as_f64().unwrap();
        assert!(
            num(&c["width"]) > 0.0 && num(&c["height"]) > 0.0,
            "{id} has no size: {c}"
        );
        assert_ne!(c["display"], "none", "{id} is not displayed");
        assert_eq!(c["visibility"], "visible", "{id} is hidden");
        assert_ne!(num(&c["opacity"]), 0.0, "{id} is transparent");
        assert_eq!(c["has_svg"], true, "{id} has no <svg>");
        let bbox = c["svg_bbox"].as_array().unwrap();
        assert!(
            num(&bbox[0]) > 0.0 && num(&bbox[1]) > 0.0,
            "{id}: the <svg> draws nothing: {c}"
        );
        // Axes, ticks and the data: a chart with only a frame would have a handful.
        assert!(num(&c["marks"]) >= 10.0, "{id} has too few marks: {c}");
    }

    // 2. It looks right: nothing wider than the window, no overlapping text, readable units.
    assert_eq!(verdict["client_width"].as_f64(), Some(f64::from(WIDTH)));
    let wide = verdict["wide"].as_array().unwrap();
    assert!(
        wide.is_empty() && verdict["scroll_width"].as_f64() <= Some(f64::from(WIDTH)),
        "the page is {} px wide at {WIDTH} px; these stick out: {wide:#?}",
        verdict["scroll_width"]
    );
    let mut unit_axes = 0;
    for (c, (_, _, units)) in charts.iter().zip(&expected) {
        let id = c["id"].as_str().unwrap();
        let texts = chart_texts(c);
        assert_texts_apart(id, &texts, &c["svg_box"]);
        for (role, unit) in [("tick-x", &units.0), ("tick-y", &units.1)] {
            let ticks: Vec<&str> = texts
                .iter()
                .filter(|t| t.role == role)
                .map(|t| t.text.as_str())
                .collect();
            assert!(
                ticks.len() >= 2,
                "{id}: fewer than two {role} labels: {ticks:?}"
            );
            let Some(family) = unit.as_deref().and_then(unit_family) else {
                continue;
            };
            unit_axes += 1;
            // A bar's value is in the unit of the y axis.
            let values = texts
                .iter()
                .filter(|t| role == "tick-y" && t.role == "value")
                .map(|t| t.text.as_str());
            for text in ticks.iter().copied().chain(values) {
                assert!(
                    is_readable(text, family),
                    "{id}: {text:?} is not a readable {family:?} figure (axis unit {unit:?}); all: {ticks:?}"
                );
            }
        }
    }
    assert!(
        unit_axes >= 3,
        "only {unit_axes} chart axes have a unit: the unit check checked nothing"
    );

    // 3. A screenshot of the page itself, tall enough to hold the first chart.
    let rects: Vec<[f64; 4]> = charts
        .iter()
        .map(|c| {
            let r = c["svg_rect"].as_array().unwrap();
            [0, 1, 2, 3].map(|i| r[i].as_f64().unwrap())
        })
        .collect();
    let height = (rects[0][1] + rects[0][3] + 40.0)
        .clamp(4000.0, 16000.0)
        .ceil() as u32;
    let shot = dir.path().join("report.png");
    let run = chromium_run(
        &chromium,
        dir.path(),
        "screenshot",
        &[
            &format!("--window-size={WIDTH},{height}"),
            "--enable-logging=stderr",
            "--v=0",
            &format!("--screenshot={}", shot.display()),
            &file_url(&out.join("report.html")),
        ],
    );
    // Console lines read `[…:INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)`.
    let console: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") && l.contains("report.html"))
        .collect();
    assert!(
        console.is_empty(),
        "the console has messages about report.html:\n{}",
        console.join("\n")
    );
    let png = fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {}: {e}\nchromium stderr:\n{}",
            shot.display(),
            run.stderr
        )
    });
    assert!(png.len() > 20_000, "the screenshot is {} bytes", png.len());
    let image = Rgb::decode(&png);
    assert_eq!((image.width, image.height), (WIDTH, height));
    let page = image.region(0, 0, image.width, image.height);
    assert!(
        page.inked > page.pixels / 100 && page.colors > 16,
        "the screenshot looks blank: {page:?}"
    );
    let mut painted = 0;
    for ((id, _, _), r) in expected.iter().zip(&rects) {
        let [x, y, w, h] = r.map(|v| v.round() as u32);
        if y + h > image.height || x + w > image.width {
            continue;
        }
        let chart = image.region(x, y, w, h);
        assert!(
            chart.inked > chart.pixels / 200 && chart.colors > 3,
            "{id} is blank in the screenshot: {chart:?}"
        );
        painted += 1;
    }
    assert!(painted > 0, "no chart inside the screenshot");
}

/// The x and y axis units of a chart, as `report.json` names them (`"ns"`, `"kib"`,
/// `"bytes_per_sec"`); a plain axis has none.
type AxisUnits = (Option<String>, Option<String>);

/// `chart-<section>-<chart>`, the chart's kind and axis units for every chart in `report.json`,
/// in order; there is at least one line chart and one bar chart.
fn expected_charts(json: &Path) -> Vec<(String, String, AxisUnits)> {
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(json).unwrap()).unwrap();
    let mut charts = Vec::new();
    for s in report["sections"].as_array().unwrap() {
        for c in s["charts"].as_array().unwrap() {
            charts.push((
                format!(
                    "chart-{}-{}",
                    s["id"].as_str().unwrap(),
                    c["id"].as_str().unwrap()
                ),
                c["kind"].as_str().unwrap().to_owned(),
                (
                    c["x_unit"].as_str().map(str::to_owned),
                    c["y_unit"].as_str().map(str::to_owned),
                ),
            ));
        }
    }
    for kind in ["line", "bar"] {
        assert!(
            charts.iter().any(|(_, k, _)| k == kind),
            "report.json has no {kind} chart: {charts:?}"
        );
    }
    charts
}

/// One `<text>` of a chart: its class, its words and its box in the window.
struct ChartText {
    role: String,
    text: String,
    /// left, top, right, bottom
    bounds: [f64; 4],
}

fn chart_texts(chart: &serde_json::Value) -> Vec<ChartText> {
    chart["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| ChartText {
            role: t["role"].as_str().unwrap().to_owned(),
            text: t["text"].as_str().unwrap().to_owned(),
            bounds: [0, 1, 2, 3].map(|i| t["box"][i].as_f64().unwrap()),
        })
        .collect()
}

/// No two texts of a chart overlap (by more than a pixel each way), and each lies inside the
/// chart's `<svg>`.
fn assert_texts_apart(id: &str, texts: &[ChartText], svg_box: &serde_json::Value) {
    let svg = [0, 1, 2, 3].map(|i| svg_box[i].as_f64().unwrap());
    assert!(texts.len() >= 4, "{id} has almost no text");
    for t in texts {
        let [l, top, r, b] = t.bounds;
        assert!(
            l >= svg[0] - 0.5 && top >= svg[1] - 0.5 && r <= svg[2] + 0.5 && b <= svg[3] + 0.5,
            "{id}: {:?} ({}) at {:?} leaves the chart {svg:?}",
            t.text,
            t.role,
            t.bounds
        );
    }
    for (i, a) in texts.iter().enumerate() {
        for b in &texts[i + 1..] {
            let w = a.bounds[2].min(b.bounds[2]) - a.bounds[0].max(b.bounds[0]);
            let h = a.bounds[3].min(b.bounds[3]) - a.bounds[1].max(b.bounds[1]);
            assert!(
                w <= 1.0 || h <= 1.0,
                "{id}: {:?} ({}) at {:?} overlaps {:?} ({}) at {:?}",
                a.text,
                a.role,
                a.bounds,
                b.text,
                b.role,
                b.bounds
            );
        }
    }
}

/// The units a figure of an axis can be written in, from the smallest, and the step between
/// them.
#[derive(Debug, Clone, Copy)]
enum Family {
    Time,
    Bytes,
    Rate,
}

impl Family {
    fn units(self) -> (&'static [&'static str], f64) {
        match self {
            Family::Time => (&["ns", "µs", "ms", "s"], 1000.0),
            Family::Bytes => (&["B", "KiB", "MiB", "GiB", "TiB"], 1024.0),
            Family::Rate => (&["B/s", "kB/s", "MB/s", "GB/s", "TB/s"], 1000.0),
        }
    }
}

/// The unit family of an axis unit as `report.json` names it.
fn unit_family(unit: &str) -> Option<Family> {
    match unit {
        "ns" | "us" | "ms" => Some(Family::Time),
        "bytes" | "kib" | "mib" => Some(Family::Bytes),
        "bytes_per_sec" => Some(Family::Rate),
        _ => None,
    }
}

/// `0`, or a number from 1 up to the family's step followed by one of its units: `250 µs`,
/// `1 KiB`, `12.5 MB/s`; not `1M ns`, `0.001 s`, `1500 µs` or a bare `100k`.
fn is_readable(text: &str, family: Family) -> bool {
    if text == "0" {
        return true;
    }
    let Some((number, unit)) = text.split_once(' ') else {
        return false;
    };
    let (units, step) = family.units();
    let Ok(v) = number.parse::<f64>() else {
        return false;
    };
    let smallest = unit == units[0];
    units.contains(&unit) && v.abs() < step && (v.abs() >= 1.0 || (smallest && v != 0.0))
}

/// The verdict the probe wrote into the dumped DOM.
fn verdict(dom: &str, stderr: &str) -> serde_json::Value {
    let open = format!("<pre id=\"{RESULT_ID}\">");
    let Some(start) = dom.find(&open) else {
        panic!(
            "the probe wrote no verdict (did `load` fire?)\ndom tail: {}\nchromium stderr:\n{stderr}",
            &dom[dom.len().saturating_sub(500)..]
        );
    };
    let body = &dom[start + open.len()..];
    let end = body.find("</pre>").expect("the verdict element is closed");
    serde_json::from_str(&body[..end])
        .unwrap_or_else(|e| panic!("the verdict is not JSON ({e}): {}", &body[..end]))
}

/// `chromium` on `PATH`, where Debian's package puts it.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// What a Chromium run printed.
struct Run {
    stdout: String,
    stderr: String,
}

/// Runs headless Chromium with `args` after flags that keep it off the network and out of the
/// user's profile and home, in a process group of its own that is killed afterwards (or after
/// [`CHROMIUM_TIMEOUT`]), so no helper process outlives the run.
fn chromium_run(chromium: &Path, dir: &Path, name: &str, args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;

    let home = dir.join(format!("{name}.home"));
    fs::create_dir_all(&home).unwrap();
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            // CI runs as root, where the sandbox refuses to start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join(format!("{name}.profile")).display()
        ))
        .args(args.iter().map(OsStr::new))
        // Caches, font caches and the certificate store go here, not into the user's home.
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    let pgid = i32::try_from(child.id()).expect("a pid fits in i32");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > CHROMIUM_TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) with a negative pid signals the process group we created above; it touches
    // no memory. ESRCH (the group is already gone) is fine.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
    let read = |p: &Path| {
        let mut s = String::new();
        File::open(p)
            .and_then(|mut f| f.read_to_string(&mut s))
            .unwrap();
        s
    };
    let run = Run {
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    };
    match status {
        None => panic!(
            "chromium ({name}) ran past {CHROMIUM_TIMEOUT:?} and was killed\nstderr:\n{}",
            run.stderr
        ),
        Some(s) if !s.success() => panic!("chromium ({name}) failed: {s}\nstderr:\n{}", run.stderr),
        Some(_) => run,
    }
}

/// An 8-bit RGB or RGBA PNG (what Chromium writes), decoded to RGB.
struct Rgb {
    width: u32,
    height: u32,
    pixels: Vec<[u8; 3]>,
}

/// How much is drawn in a rectangle of a screenshot.
#[derive(Debug)]
struct Ink {
    pixels: usize,
    /// Pixels that differ from the rectangle's top-left pixel (its background).
    inked: usize,
    /// Distinct colors, counted up to 256.
    colors: usize,
}

impl Rgb {
    fn decode(png: &[u8]) -> Rgb {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let mut at = 8;
        let (mut width, mut height, mut channels) = (0, 0, 0);
        let mut idat = Vec::new();
        while at + 8 <= png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(data[0..4].try_into().unwrap());
                    height = u32::from_be_bytes(data[4..8].try_into().unwrap());
                    let (depth, color, interlace) = (data[8], data[9], data[12]);
                    assert_eq!((depth, interlace), (8, 0), "8-bit, not interlaced");
                    channels = match color {
                        2 => 3,
                        6 => 4,
                        other => panic!("PNG color type {other}"),
                    };
                }
                b"IDAT" => idat.extend_from_slice(data),
                b"IEND" => break,
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&idat[..])
            .read_to_end(&mut raw)
            .expect("the PNG data inflates");
        let stride = width as usize * channels;
        assert_eq!(raw.len(), height as usize * (stride + 1), "PNG data size");
        // Undo the per-row filters (PNG spec, section 9).
        let mut prev = vec![0u8; stride];
        let mut pixels = Vec::with_capacity(width as usize * height as usize);
        for row in raw.chunks_exact_mut(stride + 1) {
            let (filter, line) = row.split_first_mut().unwrap();
            for i in 0..stride {
                let a = if i >= channels { line[i - channels] } else { 0 };
                let b = prev[i];
                let c = if i >= channels { prev[i - channels] } else { 0 };
                line[i] = line[i].wrapping_add(match *filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    4 => paeth(a, b, c),
                    other => panic!("PNG filter {other}"),
                });
            }
            pixels.extend(line.chunks_exact(channels).map(|p| [p[0], p[1], p[2]]));
            prev.copy_from_slice(line);
        }
        Rgb {
            width,
            height,
            pixels,
        }
    }

    fn region(&self, x: u32, y: u32, w: u32, h: u32) -> Ink {
        let at = |x: u32, y: u32| self.pixels[(y * self.width + x) as usize];
        let background = at(x, y);
        let mut colors = std::collections::HashSet::new();
        let mut inked = 0;
        for y in y..y + h {
            for x in x..x + w {
                let p = at(x, y);
                inked += usize::from(p != background);
                if colors.len() < 256 {
                    colors.insert(p);
                }
            }
        }
        Ink {
            pixels: (w * h) as usize,
            inked,
            colors: colors.len(),
        }
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
