//! Workers on other hosts: the same pool, with worker processes started through the
//! launchers clusters already run — a command template, ssh, or Slurm's `srun` — that
//! connect back to the pool over authenticated TCP.
//!
//! What a launcher starts is this program's own binary, which becomes an *agent* in
//! [`crate::init`] (so `init()` must come first in `main`, as for every process pool). The
//! agent is that host's supervisor for its workers: it forks each worker, enforces the
//! task timeout there, kills the worker's process group, and reports how it ended, so a
//! remote task that panics, crashes, overruns or runs out of memory ends with the same
//! [`crate::TaskError`] as a local one. A host that vanishes without closing its sockets is
//! noticed by heartbeats; its running task ends [`crate::TaskError::Lost`] and, with
//! [`crate::PoolBuilder::retries`], runs again on another worker.
//!
//! Every connection is encrypted with TLS 1.3 (rustls) by default, under a certificate the
//! pool makes for itself and whose fingerprint the agents are handed, and opens with a
//! mutual HMAC-SHA-256 challenge–response on a random per-pool secret, handed to the agent
//! through its environment (and its stdin, which is how ssh carries it), never on a
//! command line. [`Remote::insecure_plaintext`] turns the encryption off; every frame then
//! still carries a MAC (see `conn.rs`).
//!
//! The agent runs the same build of the program as the pool (functions travel as offsets
//! from an anchor, guarded by the binary's build id): a host with another build refuses at
//! `build()`, with a message that says so. Clusters share the binary through a common file
//! system; [`Remote::exe`] names another path.

pub(crate) mod agent;
pub(crate) mod conn;
pub(crate) mod hub;
pub(crate) mod proto;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How a pool's worker processes are started on other hosts (or on this one, through a
/// launcher): see the [module documentation](crate::remote) and
/// [`crate::PoolBuilder::remote`].
///
/// ```no_run
/// # proctor::init();
/// use proctor::{Pool, Remote};
/// fn square(n: u64) -> u64 { n * n }
///
/// // Four workers over two hosts, through ssh.
/// let pool = Pool::processes(4)
///     .remote(Remote::ssh(["node1", "node2"]))
///     .build()?;
/// assert_eq!(pool.try_map(square, [1, 2, 3])?, [1, 4, 9]);
/// # Ok::<(), proctor::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Remote {
    kind: Kind,
    pub(crate) listen: SocketAddr,
    pub(crate) advertise: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) lost_after: Duration,
    pub(crate) tls: bool,
    pub(crate) relaunch: u32,
    exe: Option<PathBuf>,
}

#[derive(Debug, Clone)]
enum Kind {
    Command {
        template: String,
        hosts: Vec<String>,
    },
    Ssh {
        hosts: Vec<String>,
        options: Vec<String>,
    },
    Slurm {
        args: Vec<String>,
    },
}

/// One process to start: its argv, extra environment, and the agents it starts: each
/// agent's key (the slot it names when it calls, its first) and the worker slots it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) agents: Vec<(u32, Vec<u32>)>,
}

impl Remote {
    fn with(kind: Kind) -> Remote {
        Remote {
            kind,
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            advertise: None,
            connect_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_millis(500),
            lost_after: Duration::from_secs(5),
            tls: true,
            relaunch: 3,
            exe: None,
        }
    }

    /// Starts an agent on each host with a command of your own, run by `/bin/sh -c`, once per
    /// host; worker `k` runs on `hosts[k % hosts.len()]`, and one agent serves all of a
    /// host's workers. In the template, `{host}` is that host, `{exe}` this program's path,
    /// `{slot}` the agent's first worker's number, `{addr}` the pool's
    /// address, and `{env}` the variables the agent needs (`PROCTOR_REMOTE_AGENT=..
    /// PROCTOR_REMOTE_SLOT=..`), for commands that do not pass the environment on: so
    /// `ssh {host} {env} {exe}` is the ssh preset by hand. The secret is in the command's
    /// environment and on its stdin, never in the template.
    pub fn command<H: Into<String>>(
        template: impl Into<String>,
        hosts: impl IntoIterator<Item = H>,
    ) -> Remote {
        Remote::with(Kind::Command {
            template: template.into(),
            hosts: hosts.into_iter().map(Into::into).collect(),
        })
    }

    /// Starts an agent on each host through `ssh` (batch mode: keys, not passwords), one
    /// login per host whatever its number of workers; worker `k` runs on
    /// `hosts[k % hosts.len()]`. The binary must be at the same path there.
    pub fn ssh<H: Into<String>>(hosts: impl IntoIterator<Item = H>) -> Remote {
        Remote::with(Kind::Ssh {
            hosts: hosts.into_iter().map(Into::into).collect(),
            options: Vec::new(),
        })
    }

    /// Options for the ssh preset's `ssh` command, before the host (e.g. `["-F",
    /// "ssh_config"]` or `["-p", "2222"]`).
    pub fn ssh_options<O: Into<String>>(mut self, options: impl IntoIterator<Item = O>) -> Remote {
        if let Kind::Ssh { options: o, .. } = &mut self.kind {
            *o = options.into_iter().map(Into::into).collect();
        }
        self
    }

    /// Starts the agents with one `srun --ntasks=<workers>`: one worker per Slurm task
    /// slot, inside the current allocation (or a new one), each knowing its slot from
    /// `SLURM_PROCID`.
    pub fn slurm() -> Remote {
        Remote::with(Kind::Slurm { args: Vec::new() })
    }

    /// More arguments for the Slurm preset's `srun` (e.g. `["--partition=debug"]`).
    pub fn srun_args<A: Into<String>>(mut self, args: impl IntoIterator<Item = A>) -> Remote {
        if let Kind::Slurm { args: a } = &mut self.kind {
            *a = args.into_iter().map(Into::into).collect();
        }
        self
    }

    /// Where the pool listens for its agents (default: every interface, a free port, since
    /// agents on other hosts must reach it; a cluster's internal interface, or loopback for
    /// agents on this host, narrows it). Callers must finish their handshake within
    /// [`Remote::handshake_timeout`] and claim a slot or token the pool awaits, so what
    /// listens holds nothing for a stranger.
    pub fn listen(mut self, addr: SocketAddr) -> Remote {
        self.listen = addr;
        self
    }

    /// The host name or address agents call, when the listening address is not the one
    /// they reach (default: the listening address, or this host's name if that is
    /// unspecified).
    pub fn advertise(mut self, host: impl Into<String>) -> Remote {
        self.advertise = Some(host.into());
        self
    }

    /// How long `build()` waits for every agent to connect (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Remote {
        self.connect_timeout = timeout;
        self
    }

    /// How long a caller has, from its connection to its first message, to finish its side
    /// of the handshake (TLS, the challenge–response, saying who it is) before the pool
    /// hangs up on it (default 5 s; a real agent needs milliseconds). The limit is for the
    /// whole handshake, not each read, so a caller that trickles bytes is cut off too.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Remote {
        self.handshake_timeout = timeout;
        self
    }

    /// How often the pool and each agent say they are alive (default 500 ms), and how long
    /// without a word means a host is lost (default 5 s).
    pub fn heartbeat(mut self, every: Duration, lost_after: Duration) -> Remote {
        self.heartbeat = every;
        self.lost_after = lost_after;
        self
    }

    /// Whether every connection is encrypted with TLS 1.3 (rustls): on by default, and
    /// `tls(false)` is the same switch as [`Remote::insecure_plaintext`]`(true)`. The pool
    /// makes a self-signed certificate when it is built and hands its SHA-256 fingerprint to
    /// the agents with the secret; an agent accepts that certificate and no other, so nothing
    /// in between can pose as the pool, read the traffic or change it. It costs a TLS
    /// handshake per connection and encryption of every frame.
    pub fn tls(mut self, on: bool) -> Remote {
        self.tls = on;
        self
    }

    /// Turns TLS off: the connections then carry arguments, results and the pool's
    /// messages in the clear, for anyone on the network path to read. Each connection still
    /// opens with the mutual challenge–response on the pool's secret (which never crosses
    /// the network itself), and every frame after it carries a MAC under a key derived from
    /// that handshake, with a sequence number: a frame changed, injected, replayed or
    /// dropped on the way ends the connection with an error. Only for a network where
    /// reading the traffic does no harm, when TLS's cost matters.
    pub fn insecure_plaintext(mut self, on: bool) -> Remote {
        self.tls = !on;
        self
    }

    /// How many times in a row a lost host's agent is started again through its launcher
    /// (default 3, after waits of 0.2 s, 2 s and 10 s). Until it is back, its slots wait
    /// (tasks queue for them); once it is, they fill with new workers. A host lost again
    /// within a minute of coming back goes on with the tries it had left, so one that cannot
    /// stay up is given up on: its slots are then empty, and when no slot has a worker,
    /// tasks fail `NoWorker`. 0 gives a lost host up at once.
    pub fn relaunch(mut self, attempts: u32) -> Remote {
        self.relaunch = attempts;
        self
    }

    /// The program's path on the other hosts (default: this one's).
    pub fn exe(mut self, path: impl Into<PathBuf>) -> Remote {
        self.exe = Some(path.into());
        self
    }

    /// What is wrong with these settings for `workers` workers, if anything.
    pub(crate) fn check(&self, workers: usize) -> Result<(), String> {
        let hosts = match &self.kind {
            Kind::Command { template, hosts } => {
                if template.trim().is_empty() {
                    return Err("the remote command template is empty".into());
                }
                hosts.len()
            }
            Kind::Ssh { hosts, .. } => hosts.len(),
            Kind::Slurm { .. } => 1,
        };
        if hosts == 0 {
            return Err("a remote launcher needs at least one host".into());
        }
        if self.heartbeat.is_zero() || self.lost_after <= self.heartbeat {
            return Err(format!(
                "the heartbeat ({} ms) must be longer than zero and shorter than lost_after ({} ms)",
                self.heartbeat.as_millis(),
                self.lost_after.as_millis()
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err("the remote connect_timeout must be longer than zero".into());
        }
        if self.handshake_timeout.is_zero() {
            return Err("the remote handshake_timeout must be longer than zero".into());
        }
        let _ = workers;
        Ok(())
    }

    /// The processes to start for `workers` workers, whose agents call `addr`.
    pub(crate) fn launches(&self, workers: usize, addr: &str) -> Vec<Launch> {
        let exe = self.exe_path();
        let env_for = |slot: usize| agent_env(addr, Some(slot as u32));
        // The same variables as a shell prefix, for a command line run on another host.
        let inline_env = |slot: usize| {
            env_for(slot)
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_quote(v)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        // One agent per host serves all of that host's workers (worker k runs on host
        // k mod n): a 32-core host costs one ssh login, not 32.
        let per_host = |hosts: &[String]| -> Vec<(String, Vec<u32>)> {
            (0..hosts.len().min(workers))
                .map(|h| {
                    let slots = (h..workers)
                        .step_by(hosts.len())
                        .map(|k| k as u32)
                        .collect();
                    (hosts[h].clone(), slots)
                })
                .collect()
        };
        match &self.kind {
            Kind::Command { template, hosts } => per_host(hosts)
                .into_iter()
                .map(|(host, slots)| {
                    let slot = slots[0] as usize;
                    let line = template
                        .replace("{host}", &shell_quote(&host))
                        .replace("{exe}", &shell_quote(&exe))
                        .replace("{slot}", &slot.to_string())
                        .replace("{addr}", &shell_quote(addr))
                        .replace("{env}", &inline_env(slot));
                    Launch {
                        argv: vec!["/bin/sh".into(), "-c".into(), line],
                        env: env_for(slot),
                        agents: vec![(slot as u32, slots)],
                    }
                })
                .collect(),
            Kind::Ssh { hosts, options } => per_host(hosts)
                .into_iter()
                .map(|(host, slots)| {
                    let slot = slots[0] as usize;
                    let mut argv = vec!["ssh".to_string()];
                    argv.extend(options.iter().cloned());
                    argv.extend(["-o".into(), "BatchMode=yes".into(), host.clone()]);
                    argv.push(format!("{} exec {}", inline_env(slot), shell_quote(&exe)));
                    Launch {
                        argv,
                        env: Vec::new(),
                        agents: vec![(slot as u32, slots)],
                    }
                })
                .collect(),
            Kind::Slurm { args } => {
                // One agent per task, each a slot of its own (SLURM_PROCID): Slurm places
                // the tasks, one per CPU it allotted.
                vec![Launch {
                    argv: srun_argv(workers, args, exe),
                    env: agent_env(addr, None),
                    agents: (0..workers as u32).map(|k| (k, vec![k])).collect(),
                }]
            }
        }
    }
}

impl Remote {
    /// How to start agent `key` alone again (it was lost): the same command for one agent
    /// per host; for Slurm one more task, told its slot, since `SLURM_PROCID` would say 0.
    pub(crate) fn relaunch_of(&self, key: u32, addr: &str) -> Launch {
        match &self.kind {
            Kind::Slurm { args } => Launch {
                argv: srun_argv(1, args, self.exe_path()),
                env: agent_env(addr, Some(key)),
                agents: vec![(key, vec![key])],
            },
            _ => self
                .launches(key as usize + 1, addr)
                .into_iter()
                .find(|l| l.agents.first().is_some_and(|(k, _)| *k == key))
                .map(|mut l| {
                    // The slots it serves are the hub's to know; the launch is the same.
                    l.agents.truncate(1);
                    l
                })
                .expect("an agent key is the first slot of one of the launches"),
        }
    }

    fn exe_path(&self) -> String {
        self.exe
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
            .to_string_lossy()
            .into_owned()
    }
}

/// The environment that tells an agent where to call, and its slot unless the launcher
/// tells it (Slurm's `SLURM_PROCID`).
fn agent_env(addr: &str, slot: Option<u32>) -> Vec<(String, String)> {
    let mut env = vec![(agent::ADDR_VAR.to_string(), addr.to_string())];
    env.extend(slot.map(|s| (agent::SLOT_VAR.to_string(), s.to_string())));
    env
}

/// `srun` starting `ntasks` agents in the allocation.
fn srun_argv(ntasks: usize, args: &[String], exe: String) -> Vec<String> {
    let mut argv = vec![
        "srun".to_string(),
        format!("--ntasks={ntasks}"),
        // One task's failure must not take the others down: the pool decides.
        "--kill-on-bad-exit=0".into(),
    ];
    argv.extend(args.iter().cloned());
    argv.push(exe);
    argv
}

/// `s` quoted for `/bin/sh`: in single quotes, each `'` written as `'\''`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_launcher_starts_one_agent_per_slot_with_its_address_and_no_secret() {
        let ssh = Remote::ssh(["a", "b"])
            .ssh_options(["-p", "2222"])
            .exe("/opt/my prog")
            .launches(3, "pool:4000");
        assert_eq!(ssh.len(), 2, "one agent per host");
        assert_eq!(ssh[0].agents, [(0, vec![0, 2])]);
        assert_eq!(ssh[1].agents, [(1, vec![1])]);
        assert_eq!(
            ssh[1].argv,
            [
                "ssh",
                "-p",
                "2222",
                "-o",
                "BatchMode=yes",
                "b",
                "PROCTOR_REMOTE_AGENT=pool:4000 PROCTOR_REMOTE_SLOT=1 exec '/opt/my prog'"
            ]
        );
        let slurm = Remote::slurm()
            .srun_args(["-p", "debug"])
            .exe("/bin/prog")
            .launches(4, "h:1");
        assert_eq!(slurm.len(), 1);
        assert_eq!(
            slurm[0].agents,
            [(0, vec![0]), (1, vec![1]), (2, vec![2]), (3, vec![3])]
        );
        assert_eq!(
            slurm[0].argv,
            [
                "srun",
                "--ntasks=4",
                "--kill-on-bad-exit=0",
                "-p",
                "debug",
                "/bin/prog"
            ]
        );
        let cmd = Remote::command("ssh {host} {env} {exe} # {slot} {addr}", ["x", "y"])
            .exe("/bin/p")
            .launches(2, "h:1");
        assert_eq!(
            cmd[1].argv[2],
            "ssh y PROCTOR_REMOTE_AGENT=h:1 PROCTOR_REMOTE_SLOT=1 /bin/p # 1 h:1"
        );
        // More hosts than workers: the spare hosts get no agent.
        assert_eq!(Remote::ssh(["a", "b", "c"]).launches(2, "h:1").len(), 2);
        for l in ssh.iter().chain(&slurm).chain(&cmd) {
            assert!(
                !l.argv.iter().any(|a| a.contains("SECRET")),
                "the secret never goes on a command line: {l:?}"
            );
        }
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("plain/path-1"), "plain/path-1");
        assert_eq!(shell_quote("it's here"), r"'it'\''s here'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let no_hosts = Remote::ssh(Vec::<String>::new()).check(1).unwrap_err();
        assert!(no_hosts.contains("host"), "{no_hosts}");
        let beat = Remote::slurm()
            .heartbeat(Duration::from_secs(2), Duration::from_secs(1))
            .check(1)
            .unwrap_err();
        assert!(beat.contains("heartbeat"), "{beat}");
        assert!(Remote::command("  ", ["h"]).check(1).is_err());
        assert!(Remote::slurm().check(3).is_ok());
        let handshake = Remote::slurm()
            .handshake_timeout(Duration::ZERO)
            .check(1)
            .unwrap_err();
        assert!(handshake.contains("handshake"), "{handshake}");
    }

    #[test]
    fn tls_is_on_unless_plaintext_is_asked_for_by_either_name() {
        assert!(Remote::slurm().tls);
        assert!(!Remote::slurm().insecure_plaintext(true).tls);
        assert!(!Remote::slurm().tls(false).tls);
        assert!(Remote::slurm().tls(false).insecure_plaintext(false).tls);
    }
}
