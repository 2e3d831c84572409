//! A task type that carries data (a `fn` pointer, a capturing closure) is refused when the
//! user's program is built, with one error that ends at the user's own call, not with a
//! cascade from inside the library; a fn item builds. The check runs after monomorphization,
//! so only a real build sees it: these tests build a small program against the library.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The call line in each program below (1-based), where the error must point.
const CALL_LINE: usize = 6;

/// A program whose line 6 runs `task` through `call` (`map` or `compare_modes`).
fn program(task: &str, call: &str) -> String {
    let call = match call {
        "map" => format!("pool.map({task}, vec![1u64, 2])"),
        _ => format!("proctor::compare_modes({task}, vec![1u64, 2]).map(|c| c.to_string())"),
    };
    format!(
        "#[allow(dead_code)] fn double(x: u64) -> u64 {{ x * 2 }}\n\
         #[allow(unused)] fn main() {{\n\
         \x20   proctor::init();\n\
         \x20   let pool = proctor::Pool::processes(1).build().unwrap();\n\
         \x20   let offset = 1u64;\n\
         \x20   let out = {call};\n\
         \x20   println!(\"{{out:?}} {{offset}}\");\n\
         }}\n"
    )
}

/// A crate with one binary per case, beside the workspace's `target/` so the library's build
/// is kept between runs.
fn make_crate() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().and_then(Path::parent).unwrap();
    let dir = workspace.join("target").join("refusal-crate");
    let bins = dir.join("src").join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"refusal\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nproctor = {{ package = \"proctor-pool\", path = {:?} }}\n\n[workspace]\n",
            manifest_dir.display().to_string()
        ),
    )
    .unwrap();
    // The workspace's versions, so the build needs nothing the workspace did not fetch.
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    let pointer = "{ let f: fn(u64) -> u64 = double; f }";
    for (name, task, call) in [
        ("item", "double", "map"),
        ("pointer", pointer, "map"),
        ("capture", "move |x: u64| x + offset", "map"),
        ("compare_pointer", pointer, "compare_modes"),
    ] {
        std::fs::write(bins.join(format!("{name}.rs")), program(task, call)).unwrap();
    }
    dir
}

fn build(dir: &Path, bin: &str) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args(["build", "--offline", "--quiet", "--bin", bin])
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_task_with_data_is_refused_once_at_the_callers_line() {
    let dir = make_crate();
    // The control: a fn item builds, so the failures below are the refusal, not the setup.
    let (ok, stderr) = build(&dir, "item");
    assert!(ok, "a fn item must build:\n{stderr}");

    for bin in ["pointer", "capture", "compare_pointer"] {
        let (ok, stderr) = build(&dir, bin);
        assert!(!ok, "{bin}: a task type with data must not build");
        assert_eq!(
            stderr.matches("error[E0080]").count(),
            1,
            "{bin}: exactly one error, not a cascade:\n{stderr}"
        );
        assert!(
            stderr.contains("pass the function by name"),
            "{bin}: the error says what to do:\n{stderr}"
        );
        let at_caller = format!("src/bin/{bin}.rs:{CALL_LINE}:");
        assert!(
            stderr.contains(&at_caller),
            "{bin}: the error points at the caller's line ({at_caller}):\n{stderr}"
        );
        assert!(
            stderr.lines().count() <= 40,
            "{bin}: the error is short ({} lines):\n{stderr}",
            stderr.lines().count()
        );
    }
}
