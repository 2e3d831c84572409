//! The command line: `Cli` mirrors the arguments; `into_config` turns them into a `LabConfig`.
//!
//! Every value is validated by clap while parsing, so a bad value is a usage error (exit 2)
//! with a message that names the flag.

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use proctor_lab::ipc::TransportKind;
use proctor_lab::{LabConfig, Profile, experiment};

/// Processes or threads? Measures the difference on this machine.
#[derive(Debug, Parser)]
#[command(name = "proctor", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one experiment and print its figures.
    #[command(long_about = "Run one experiment and print its figures.\n\n\
        Example: proctor bench switch --quick\n\
        Example: proctor bench spawn --json > spawn.json")]
    Bench(BenchArgs),
    /// Run every experiment, print the comparison table, write proctor-report/.
    #[command(
        long_about = "Run the lab's experiments, print the classic processes-vs-threads \
        table with this machine's figures and a verdict on each classic claim, and write the \
        report as report.html (self-contained, with charts), report.json and report.md.\n\n\
        The partial report is written after every experiment, so an interruption loses only \
        the experiment that was running.\n\n\
        Example: proctor report\n\
        Example: proctor report --only spawn,switch --out /tmp/r"
    )]
    Report(ReportArgs),
    /// Put reports from several machines (or runs) side by side.
    #[command(
        long_about = "Put reports from several machines (or runs) side by side: the \
        machines, each headline row, each claim's verdict (and whether they agree), and the \
        figures every report has, with their ratio to the first report's.\n\n\
        Each file is a report.json that `proctor report` wrote.\n\n\
        Example: proctor compare intel/report.json amd/report.json\n\
        Example: proctor compare a.json b.json c.json --html compare.html"
    )]
    Compare(CompareArgs),
    /// List the experiments.
    List,
}

/// Arguments of `proctor compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The reports (report.json files), the first one the baseline of every ratio.
    #[arg(required = true, num_args = 2.., value_name = "REPORT.json")]
    pub reports: Vec<std::path::PathBuf>,

    /// Also write the comparison as a self-contained HTML page, with a chart, here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,

    /// Print the comparison as JSON instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Show every figure the reports share, not only those that decide a claim.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `proctor report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Quick profile: the whole report in under a minute and a half on 2 cores (the default).
    #[arg(long, conflicts_with_all = ["full", "profile"])]
    pub quick: bool,

    /// Full profile: more batches, sizes and footprints (about 12 minutes on 2 cores: 707 s
    /// measured).
    #[arg(long, conflicts_with = "profile")]
    pub full: bool,

    /// Measuring profile; `tiny` checks shapes in milliseconds, for tests.
    #[arg(long, hide = true, value_enum)]
    pub profile: Option<ProfileArg>,

    /// Run only these experiments, comma-separated (see `proctor list`).
    #[arg(long, value_delimiter = ',', value_parser = experiment_ids())]
    pub only: Option<Vec<String>>,

    /// Folder to write report.html, report.json and report.md into.
    #[arg(long, default_value = "proctor-report")]
    pub out: std::path::PathBuf,

    /// Never color the terminal table (also: the NO_COLOR environment variable).
    #[arg(long)]
    pub no_color: bool,

    /// Print every section's figures and tables too, and each claim's evidence (the report
    /// files always have them).
    #[arg(long, short)]
    pub verbose: bool,
}

impl ReportArgs {
    /// The lab configuration these arguments ask for.
    pub(crate) fn config(&self) -> LabConfig {
        LabConfig {
            profile: profile(self.profile, self.full),
            ..LabConfig::default()
        }
    }

    /// The experiment ids to run, in report order.
    pub(crate) fn ids(&self) -> Vec<&'static str> {
        experiment::ALL
            .iter()
            .map(|e| e.id())
            .filter(|id| {
                self.only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|o| o == id))
            })
            .collect()
    }
}

fn profile(arg: Option<ProfileArg>, full: bool) -> Profile {
    match (arg, full) {
        (Some(ProfileArg::Tiny), _) => Profile::Tiny,
        (Some(ProfileArg::Full), _) | (None, true) => Profile::Full,
        (Some(ProfileArg::Quick), _) | (None, false) => Profile::Quick,
    }
}

/// Arguments of `proctor bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The experiment to run (see `proctor list`).
    #[arg(value_parser = experiment_ids())]
    pub experiment: String,

    /// Print the experiment's section as JSON instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Quick profile: each experiment in seconds (the default).
    #[arg(long, conflicts_with_all = ["full", "profile"])]
    pub quick: bool,

    /// Full profile: more batches, sizes and footprints.
    #[arg(long, conflicts_with = "profile")]
    pub full: bool,

    /// Measuring profile; `tiny` checks shapes in milliseconds, for tests.
    #[arg(long, hide = true, value_enum)]
    pub profile: Option<ProfileArg>,

    /// Ops per batch, instead of calibrating batches to at least 10 ms.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,

    /// Message sizes for the IPC experiment, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = parse_size,
        long_help = "Message sizes for the IPC experiment, comma-separated, with an optional \
                     K/KiB, M/MiB or G/GiB suffix (powers of 1024): the round trips' and \
                     throughputs' messages and the hand-off's payloads.\n\nExample: --sizes \
                     64,4096,1MiB"
    )]
    pub sizes: Option<Vec<usize>>,

    /// Transports for the IPC experiment, comma-separated (the hand-off, which compares
    /// threads and processes handing data over, then does not run).
    #[arg(long, value_delimiter = ',', value_parser = transport_names())]
    pub transports: Option<Vec<String>>,

    /// Worker counts for the memory and scaling experiments, comma-separated (at most what
    /// this machine's process and thread limits leave room for).
    #[arg(long, value_delimiter = ',', value_parser = parse_workers)]
    pub workers: Option<Vec<u64>>,
}

/// `--profile` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProfileArg {
    Tiny,
    Quick,
    Full,
}

/// The transport names, from the one list the IPC experiment also uses.
fn transport_names() -> PossibleValuesParser {
    PossibleValuesParser::new(TransportKind::ALL.map(TransportKind::name))
}

fn experiment_ids() -> PossibleValuesParser {
    PossibleValuesParser::new(experiment::ALL.iter().map(|e| e.id()))
}

impl BenchArgs {
    /// The lab configuration these arguments ask for.
    pub(crate) fn into_config(self) -> LabConfig {
        LabConfig {
            profile: profile(self.profile, self.full),
            iterations: self.iterations,
            sizes: self.sizes,
            transports: self.transports,
            workers: self
                .workers
                .map(|w| w.into_iter().map(|n| n as usize).collect()),
        }
    }
}

/// Parses a size such as `64`, `4K`, `1.5K`, `4KiB`, `1MiB` or `2G` (powers of 1024; a
/// fraction is rounded to the nearest byte).
pub(crate) fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let not_a_size = || {
        format!("`{s}` is not a size: expected a number with an optional K/KiB/M/MiB/G/GiB suffix")
    };
    if number.is_empty() {
        return Err(not_a_size());
    }
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown size suffix `{}` in `{s}`: use K, KiB, M, MiB, G or GiB",
                suffix.trim()
            ));
        }
    };
    let bytes = if number.contains('.') {
        let n: f64 = number.parse().map_err(|_| not_a_size())?;
        let b = (n * mult as f64).round();
        if !b.is_finite() || b > u64::MAX as f64 {
            return Err(format!("size `{s}` is too large"));
        }
        b as u64
    } else {
        let n: u64 = number.parse().map_err(|_| not_a_size())?;
        n.checked_mul(mult)
            .ok_or_else(|| format!("size `{s}` is too large"))?
    };
    if bytes == 0 {
        return Err("a size must be at least 1 byte".to_string());
    }
    let max = max_message_size();
    if bytes > max {
        return Err(format!(
            "size `{s}` is {bytes} bytes, over the {max}-byte most a round trip can take here \
             (the transports' 4 GiB ceiling, and a quarter of this machine's memory for its \
             buffers)"
        ));
    }
    usize::try_from(bytes).map_err(|_| format!("size `{s}` is too large"))
}

/// Parses a worker count: at least 1, and no more than the machine can start at once.
pub(crate) fn parse_workers(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a worker count: expected a whole number"))?;
    if n == 0 {
        return Err("a worker count must be at least 1".to_string());
    }
    let (room, why) = worker_room();
    if n > room {
        return Err(format!(
            "{n} workers is more than this machine can start at once: at most {room} here ({why})"
        ));
    }
    Ok(n)
}

/// How many more processes or threads can be started here, and what limits it: the kernel's
/// `pid_max` and `threads-max` and this user's `RLIMIT_NPROC`, less the tasks that exist and a
/// margin for the lab's own.
fn worker_room() -> (u64, String) {
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let mut limits: Vec<(u64, String)> = Vec::new();
    for (path, name) in [
        ("/proc/sys/kernel/pid_max", "pid_max"),
        ("/proc/sys/kernel/threads-max", "threads-max"),
    ] {
        if let Some(v) = read(path) {
            limits.push((v, format!("{name} {v}")));
        }
    }
    if let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
    {
        if soft != nix::sys::resource::RLIM_INFINITY {
            limits.push((soft, format!("RLIMIT_NPROC {soft}")));
        }
    }
    // The fourth field of /proc/loadavg is running/total tasks.
    let tasks = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            l.split_whitespace()
                .nth(3)?
                .split('/')
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let Some((limit, name)) = limits.into_iter().min_by_key(|(v, _)| *v) else {
        return (u64::MAX, "no limit readable".to_string());
    };
    let room = limit.saturating_sub(tasks + 64);
    (room, format!("{name}, {tasks} tasks running"))
}

/// The largest message the IPC experiment can send here: under the transports' 4-byte length
/// prefix, and a quarter of the machine's memory (a round trip holds a few copies).
fn max_message_size() -> u64 {
    let memory = proctor_lab::machine::total_memory_bytes().map_or(u64::MAX, |b| b / 4);
    memory.min(u32::MAX as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("-1").is_err());
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("0.5MiB"), Ok(512 << 10));
        assert!(parse_size("1.2.3K").is_err());
        let too_big = parse_size("99GiB").unwrap_err();
        assert!(too_big.contains("most a round trip can take"), "{too_big}");
    }

    #[test]
    fn worker_counts_stop_at_the_machines_limits() {
        assert_eq!(parse_workers("8"), Ok(8));
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("x").is_err());
        let err = parse_workers("100000000").unwrap_err();
        assert!(err.contains("at most"), "{err}");
    }

    #[test]
    fn profile_flags_map_to_profiles() {
        let cfg = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("valid arguments");
            match cli.command {
                Command::Bench(b) => b.into_config(),
                _ => panic!("expected bench"),
            }
        };
        assert_eq!(cfg(&["proctor", "bench", "spawn"]).profile, Profile::Quick);
        assert_eq!(
            cfg(&["proctor", "bench", "spawn", "--full"]).profile,
            Profile::Full
        );
        assert_eq!(
            cfg(&["proctor", "bench", "spawn", "--profile", "tiny"]).profile,
            Profile::Tiny
        );
        let c = cfg(&[
            "proctor",
            "bench",
            "spawn",
            "--sizes",
            "64,1MiB",
            "--iterations",
            "5",
        ]);
        assert_eq!(c.sizes, Some(vec![64, 1 << 20]));
        assert_eq!(c.iterations, Some(5));
        assert!(Cli::try_parse_from(["proctor", "bench", "spawn", "--quick", "--full"]).is_err());
        assert!(Cli::try_parse_from(["proctor", "bench", "nope"]).is_err());
        let report = |args: &[&str]| match Cli::try_parse_from(args).expect("valid").command {
            Command::Report(r) => r,
            _ => panic!("expected report"),
        };
        let r = report(&["proctor", "report", "--only", "switch,spawn"]);
        assert_eq!(r.ids(), vec!["spawn", "switch"]);
        assert_eq!(r.config().profile, Profile::Quick);
        assert_eq!(r.out, std::path::PathBuf::from("proctor-report"));
        assert_eq!(
            report(&["proctor", "report"]).ids().len(),
            experiment::ALL.len()
        );
        assert!(Cli::try_parse_from(["proctor", "report", "--only", "nope"]).is_err());
        assert!(
            Cli::try_parse_from([
                "proctor",
                "bench",
                "spawn",
                "--transports",
                "carrier-pigeon"
            ])
            .is_err()
        );
    }

    #[test]
    fn every_transport_kind_is_accepted() {
        let all = TransportKind::ALL.map(TransportKind::name).join(",");
        let cli = Cli::try_parse_from(["proctor", "bench", "ipc", "--transports", &all])
            .expect("every kind's name is a valid --transports value");
        let Command::Bench(b) = cli.command else {
            panic!("expected bench");
        };
        let names = b.into_config().transports.expect("transports were given");
        let kinds: Vec<TransportKind> = names
            .iter()
            .map(|n| n.parse().expect("a name clap accepted is a kind"))
            .collect();
        assert_eq!(kinds, TransportKind::ALL);
    }
}
