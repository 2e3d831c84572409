//! The command line: `Cli` mirrors the arguments; `into_config` turns them into a `LabConfig`.
//!
//! Every value is validated by clap while parsing, so a bad value is a usage error (exit 2)
//! with a message that names the flag.

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use proctor::ipc::TransportKind;
use proctor_lab::{LabConfig, Profile, experiment};

/// Processes or threads? Measures the difference on this machine.
#[derive(Debug, Parser)]
#[command(name = "proctor", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    /// List the experiments.
    List,
}

/// Arguments of `proctor report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Quick profile: the whole report in about a minute on 2 cores (the default).
    #[arg(long, conflicts_with_all = ["full", "profile"])]
    pub quick: bool,

    /// Full profile: more batches, sizes and footprints (several minutes).
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
    pub fn config(&self) -> LabConfig {
        LabConfig {
            profile: profile(self.profile, self.full),
            ..LabConfig::default()
        }
    }

    /// The experiment ids to run, in report order.
    pub fn ids(&self) -> Vec<&'static str> {
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
pub struct BenchArgs {
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
                     K/KiB, M/MiB or G/GiB suffix (powers of 1024).\n\nExample: --sizes 64,4096,1MiB"
    )]
    pub sizes: Option<Vec<usize>>,

    /// Transports for the IPC experiment, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = transport_names())]
    pub transports: Option<Vec<String>>,

    /// Worker counts for the memory and scaling experiments, comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub workers: Option<Vec<u64>>,
}

/// `--profile` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
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
    pub fn into_config(self) -> LabConfig {
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

/// Parses a size such as `64`, `4K`, `4KiB`, `1MiB` or `2G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a size: expected a number with an optional K/KiB/M/MiB/G/GiB suffix"
        ));
    }
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown size suffix in `{s}`: use K, KiB, M, MiB, G or GiB"
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{s}` is not a size: expected a number with an optional K/KiB/M/MiB/G/GiB suffix")
    })?;
    let bytes = n
        .checked_mul(mult)
        .filter(|&b| b <= usize::MAX as u64)
        .ok_or_else(|| format!("size `{s}` is too large"))?;
    if bytes == 0 {
        return Err("a size must be at least 1 byte".to_string());
    }
    Ok(bytes as usize)
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
