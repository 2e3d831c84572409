//! Remote workers against a network attacker (issue 22): an on-path relay that rewrites
//! what the pool sends, a flood of silent connections during a respawn, a caller that
//! trickles its handshake, a worker connection that lies about a length, and a task that
//! looks for the pool's secret. Each test names the finding it covers; each failed on the
//! code before the fix (plaintext by default, lengths trusted, a per-read timeout, the
//! secret left in the worker's environment and memory).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use proctor::{Pool, Remote};

use crate::remote::{kill_all, local_remote};

fn square(n: u64) -> u64 {
    n * n
}

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("proctor-attack-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command launcher that writes the pool's address to `dir/addr` before starting the
/// agent (and, with `call`, tells the agent to call that address instead of the pool's).
fn launcher(dir: &Path, call: Option<u16>) -> Remote {
    let via = call.map_or(String::new(), |port| {
        format!("PROCTOR_REMOTE_AGENT=127.0.0.1:{port} ")
    });
    let template = format!("echo {{addr}} > {}/addr; {via}exec {{exe}}", dir.display());
    Remote::command(template, ["localhost"])
        .listen("127.0.0.1:0".parse().unwrap())
        .connect_timeout(Duration::from_secs(20))
}

/// A command launcher that keeps a copy of the secret in `dir/secret`, as a thief of the
/// launch would, and writes the pool's address to `dir/addr`.
fn thieving_launcher(dir: &Path) -> Remote {
    let template = format!(
        "printf %s \"$PROCTOR_REMOTE_SECRET\" > {0}/secret; echo {{addr}} > {0}/addr; exec {{exe}}",
        dir.display()
    );
    Remote::command(template, ["localhost"]).listen("127.0.0.1:0".parse().unwrap())
}

/// The pool's address, as the launcher wrote it.
fn pool_addr(dir: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(a) = std::fs::read_to_string(dir.join("addr")) {
            if !a.trim().is_empty() {
                return a.trim().to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the launcher never wrote the address"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Creates the file its argument names.
fn touch(path: String) -> bool {
    std::fs::write(path, b"").is_ok()
}

/// An on-path relay on loopback between the agents and the pool (whose address it reads
/// from `dir/addr` when an agent calls). Once `go` is set it tampers with what the pool
/// sends to workers: it rewrites `legit` to `evil!` where it can read it, and otherwise
/// flips the last byte of each chunk — a job frame rewritten or injected on the way.
fn relay(dir: PathBuf, go: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (k, agent) in listener.incoming().enumerate() {
            let Ok(agent) = agent else { return };
            let pool = TcpStream::connect(pool_addr(&dir)).unwrap();
            let (a2, p2) = (agent.try_clone().unwrap(), pool.try_clone().unwrap());
            // Pool to worker (every connection after the agent's own): tampered with
            // once told to.
            let tamper = (k > 0).then(|| Arc::clone(&go));
            std::thread::spawn(move || pump(p2, a2, tamper));
            std::thread::spawn(move || pump(agent, pool, None));
        }
    });
    port
}

fn pump(mut from: TcpStream, mut to: TcpStream, tamper: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        if tamper.as_ref().is_some_and(|g| g.load(Ordering::SeqCst)) {
            match chunk.windows(5).position(|w| w == b"legit") {
                Some(at) => chunk[at..at + 5].copy_from_slice(b"evil!"),
                None => chunk[n - 1] ^= 0x55,
            }
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Finding 11: without TLS only the handshake was authenticated, so a relay could rewrite
/// a job frame and the worker ran it. Now it is TLS by default, and sealed records
/// without it: the tampered frame runs nothing and the task ends with an error saying the
/// connection failed its check.
#[test]
fn an_on_path_relay_cannot_change_what_a_worker_runs() {
    for plaintext in [false, true] {
        let dir = scratch(&format!("relay-{plaintext}"));
        let go = Arc::new(AtomicBool::new(false));
        let port = relay(dir.clone(), Arc::clone(&go));
        let pool = Pool::processes(1)
            .remote(
                launcher(&dir, Some(port))
                    .insecure_plaintext(plaintext)
                    .relaunch(0)
                    // No heartbeat crosses the relay during the test: the job frame is
                    // the first thing it tampers with.
                    .heartbeat(Duration::from_secs(10), Duration::from_secs(30)),
            )
            .forward_stderr(false)
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 5).join(), Ok(25), "the relay forwards");
        go.store(true, Ordering::SeqCst);
        let legit = dir.join("legit");
        let out = pool
            .submit(touch, legit.display().to_string())
            .join_timeout(Duration::from_secs(20));
        // Every worker sent the job fails the check of its first tampered record and
        // leaves saying so (after two such deaths the job is given up on), or a new
        // worker's handshake fails through the relay: either way the job ends in an error.
        match out {
            Ok(Err(e)) => {
                let text = format!("{e:?}");
                assert!(
                    [
                        "authentication",
                        "TLS",
                        "connect",
                        "could not start",
                        "protocol"
                    ]
                    .iter()
                    .any(|w| text.contains(w)),
                    "plaintext {plaintext}: {text}"
                );
            }
            other => panic!("plaintext {plaintext}: the tampered job ended {other:?}"),
        }
        assert!(!dir.join("evil!").exists(), "the rewritten frame ran");
        assert!(!legit.exists(), "a frame that failed its check ran");
        drop(pool);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A task that writes `bytes` on its worker's connection to the pool, under the protocol:
/// a hostile task on a remote host, or anything else that can write on that connection.
fn write_on_my_connection(bytes: Vec<u8>) -> bool {
    use std::os::fd::FromRawFd;
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if is_socket {
            // SAFETY: `fd` is an open socket of this process (listed above); ManuallyDrop
            // leaves it open for the worker, which owns it.
            let mut s = std::mem::ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
            let ok = s.write_all(&bytes).is_ok();
            // The task goes on a while, as tasks do: its connection is cut meanwhile.
            std::thread::sleep(Duration::from_millis(500));
            return ok;
        }
    }
    false
}

/// This process's resident memory in bytes.
fn rss() -> u64 {
    crate::status_bytes("VmRSS")
}

/// Finding 13: a remote worker that wrote `00 00 00 40` (a length of 1 GiB) made the pool
/// zero-fill 1 GiB and wait for ever. Now the buffer grows only with bytes that arrive, a
/// length is checked before anything is allocated, and bytes that are not the protocol
/// (under TLS or the sealed records, any bytes written past them) end the connection:
/// the worker is killed and its job ends promptly with an error that says so.
#[test]
fn a_worker_connection_that_lies_about_a_length_costs_no_memory_and_fails_its_job() {
    for plaintext in [false, true] {
        let pool = Pool::processes(1)
            .remote(local_remote().insecure_plaintext(plaintext))
            .forward_stderr(false)
            .build()
            .unwrap();
        assert_eq!(pool.submit(square, 3).join(), Ok(9));
        let before = rss();
        let started = Instant::now();
        let out = pool
            .submit(write_on_my_connection, vec![0, 0, 0, 0x40])
            .join_timeout(Duration::from_secs(15));
        let grew = rss().saturating_sub(before);
        match out {
            Ok(Err(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains("protocol") || text.contains("TLS") || text.contains("record"),
                    "plaintext {plaintext}: {text}"
                );
            }
            other => panic!("plaintext {plaintext}: the job ended {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(
            grew < 256 << 20,
            "plaintext {plaintext}: the pool grew by {} MiB",
            grew >> 20
        );
        // The pool goes on with a new worker.
        assert_eq!(pool.submit(square, 4).join(), Ok(16));
    }
}

/// Finding 12: 256 silent connections filled every handshake place, so a respawn's data
/// connection was turned away and its slot ended `NoWorker` for good. Now the oldest
/// handshake makes room for a new caller, and a handshake has a deadline of its own.
#[test]
fn a_flood_of_silent_connections_does_not_stop_a_respawn() {
    let dir = scratch("flood");
    let pool = Pool::processes(2)
        .remote(launcher(&dir, None).handshake_timeout(Duration::from_secs(30)))
        .build()
        .unwrap();
    let addr = pool_addr(&dir);
    let before = pool.worker_pids();
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(flood.len() >= 290, "{} connections", flood.len());
    // Let the pool accept them all.
    std::thread::sleep(Duration::from_millis(500));
    kill_all(&before[..1]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(pool.try_map(square, 0..100u64).unwrap()[99], 99 * 99);
        let now = pool.worker_pids();
        if now.len() == 2 && !now.contains(&before[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "no replacement came: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(flood);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 12: the 10 s timeout was per read, so a caller sending a byte every 9 s held a
/// handshake for minutes. Now the whole handshake has one deadline.
#[test]
fn a_caller_that_trickles_its_handshake_is_cut_off_at_the_deadline() {
    let dir = scratch("loris");
    // Plaintext, so that the pool waits for the answer's bytes (TLS would refuse the first
    // five as no record); TLS handshakes have the same deadline.
    let pool = Pool::processes(1)
        .remote(
            launcher(&dir, None)
                .insecure_plaintext(true)
                .handshake_timeout(Duration::from_millis(800)),
        )
        .build()
        .unwrap();
    let mut s = TcpStream::connect(pool_addr(&dir)).unwrap();
    let started = Instant::now();
    // A byte every 200 ms: well inside any per-read timeout.
    let cut = loop {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(b"P").is_err() {
            break started.elapsed();
        }
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut buf = [0u8; 64];
        // The pool's hello (TLS's first bytes) comes first; then only its end.
        if matches!(s.read(&mut buf), Ok(0)) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the trickling caller was still connected"
        );
    };
    assert!(cut >= Duration::from_millis(600), "{cut:?}");
    assert_eq!(pool.submit(square, 6).join(), Ok(36));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads `len` bytes of this process's memory at `addr`, if they can be read.
fn read_mem(mem: &mut std::fs::File, addr: u64, buf: &mut [u8]) -> bool {
    use std::os::unix::fs::FileExt;
    mem.read_exact_at(buf, addr).is_ok()
}

/// A task that looks for the pool's secret where a task could find it: its environment
/// block and every readable byte of its memory. `masked` is the secret with every byte
/// XORed with 0x5a (so that the argument itself is not a copy). Returns where it found
/// the secret, raw or in hex.
fn find_secret(masked: Vec<u8>) -> Vec<String> {
    let mut found = Vec::new();
    // The needles, built in place (no reallocation leaves a copy behind).
    let mut raw = Vec::with_capacity(32);
    raw.extend(masked.iter().map(|b| b ^ 0x5a));
    let mut hex = Vec::with_capacity(64);
    for b in &raw {
        for nibble in [b >> 4, b & 15] {
            hex.push(b"0123456789abcdef"[nibble as usize]);
        }
    }
    let environ = std::fs::read("/proc/self/environ").unwrap();
    if environ.windows(hex.len()).any(|w| w == hex) {
        found.push("the environment block".to_string());
    }
    // The launcher's stdin (which carries the secret's line too), without waiting.
    let stdin = std::io::stdin();
    let _ = nix::fcntl::fcntl(
        &stdin,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut line = vec![0u8; 4096];
    let n = nix::unistd::read(&stdin, &mut line).unwrap_or(0);
    if line[..n].windows(hex.len()).any(|w| w == hex) {
        found.push("stdin".to_string());
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = std::fs::File::open("/proc/self/mem").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let own = |addr: u64, v: &Vec<u8>| {
        let start = v.as_ptr() as u64;
        addr >= start && addr < start + v.capacity() as u64
    };
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = fields.nth(3).unwrap_or("");
        // A secret made at run time is only ever in writable memory (or memory that was
        // writable: anonymous mappings); the program's own read-only file is not scanned.
        let anonymous = name.is_empty() || name.starts_with('[');
        if !perms.starts_with('r')
            || !(perms.as_bytes()[1] == b'w' || anonymous)
            || name == "[vvar]"
            || name == "[vvar_vclock]"
            || name == "[vsyscall]"
        {
            continue;
        }
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap(),
            u64::from_str_radix(hi, 16).unwrap(),
        );
        let mut at = lo;
        while at < hi {
            let n = ((hi - at) as usize).min(buf.len());
            // Overlap chunks by a needle's length, so none is cut in two.
            if read_mem(&mut mem, at, &mut buf[..n]) {
                for needle in [&raw, &hex] {
                    let first = needle[0];
                    for k in 0..n.saturating_sub(needle.len() - 1) {
                        if buf[k] != first || buf[k..k + needle.len()] != needle[..] {
                            continue;
                        }
                        let addr = at + k as u64;
                        if !own(addr, &raw) && !own(addr, &hex) && !own(addr, &buf) {
                            found.push(format!("{addr:#x} in {line}"));
                        }
                    }
                }
            }
            at += (n as u64).saturating_sub(64).max(1);
        }
    }
    found
}

/// The secret a launcher was handed, from `dir/secret` (hex, with `/<fingerprint>` under
/// TLS).
fn stolen_secret(dir: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(dir.join("secret")).unwrap();
    let hex = text.trim().split('/').next().unwrap().to_string();
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Finding 14: `remove_var` left the secret in the worker's environment block and copies
/// in its memory, and with it a task could open connections the pool accepted. Now the
/// agent overwrites the block, a worker proves a one-time key instead of the secret and
/// zeroes the agent's copies before its first task: a task finds the secret nowhere.
#[test]
fn a_task_on_a_remote_worker_finds_the_secret_nowhere() {
    for plaintext in [false, true] {
        let dir = scratch(&format!("secret-{plaintext}"));
        let pool = Pool::processes(1)
            .remote(thieving_launcher(&dir).insecure_plaintext(plaintext))
            .build()
            .unwrap();
        let masked: Vec<u8> = stolen_secret(&dir).iter().map(|b| b ^ 0x5a).collect();
        let found = pool.submit(find_secret, masked).join().unwrap();
        assert!(found.is_empty(), "plaintext {plaintext}: {found:#?}");
        drop(pool);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Speaks the pool's side of nothing: the caller's half of the handshake, in plaintext,
/// claiming `claim` (24 bytes) with `key`. Returns how the pool answered: its 32-byte proof,
/// or nothing (it hung up).
fn try_handshake(addr: &str, key: &[u8], claim: [u8; 24]) -> Option<Vec<u8>> {
    use hmac::{KeyInit, Mac};
    type H = hmac::Hmac<sha2::Sha256>;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hello = [0u8; 40];
    s.read_exact(&mut hello).ok()?;
    let ours = [7u8; 32];
    let mut m = <H as KeyInit>::new_from_slice(key).unwrap();
    for part in [&hello[..8], b"agent", &hello[8..], &ours, &claim] {
        m.update(part);
    }
    let proof = m.finalize().into_bytes();
    let mut answer = hello[..8].to_vec();
    answer.extend_from_slice(&claim);
    answer.extend_from_slice(&ours);
    answer.extend_from_slice(&proof);
    s.write_all(&answer).ok()?;
    let mut back = vec![0u8; 32];
    s.read_exact(&mut back).ok()?;
    Some(back)
}

/// Finding 14 and 15: with the secret a task stole, 200 hostile handshakes were accepted
/// and each connection kept; any authenticated caller could claim any slot or token. Now
/// a claim must be one the pool awaits: an agent's slot once, a worker's 128-bit token
/// once, from its agent's host, with a key derived for it.
#[test]
fn a_stolen_secret_claims_no_slot_and_no_token() {
    let dir = scratch("stolen");
    let pool = Pool::processes(1)
        .remote(thieving_launcher(&dir).insecure_plaintext(true))
        .build()
        .unwrap();
    let (secret, addr) = (stolen_secret(&dir), pool_addr(&dir));
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = fds();
    let mut agent = [0u8; 24];
    agent[0] = 1;
    let mut worker = [0u8; 24];
    worker[0] = 2;
    worker[8..].copy_from_slice(&[9u8; 16]);
    for _ in 0..100 {
        // The agent of slot 0 came already; slot 5 does not exist; no token was issued.
        assert_eq!(try_handshake(&addr, &secret, agent), None);
        let mut five = agent;
        five[4] = 5;
        assert_eq!(try_handshake(&addr, &secret, five), None);
        assert_eq!(try_handshake(&addr, &secret, worker), None);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        fds() < before + 20,
        "the pool kept hostile connections: {before} -> {} fds",
        fds()
    );
    let workers = pool.worker_pids();
    assert_eq!(pool.submit(square, 8).join(), Ok(64));
    assert_eq!(pool.worker_pids(), workers);
    drop(pool);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 5 on a remote worker: the task of `crate::attacks::outlive_timeout` (a start
/// at `u64::MAX`, or a header that looks finished), on the agent's clock and the pool's.
/// (Built with the sandbox's attacks, whose task it borrows.)
#[cfg(feature = "sandbox")]
#[test]
fn a_remote_task_cannot_turn_off_its_own_timeout() {
    let pool = Pool::processes(1)
        .forward_stderr(false)
        .task_timeout(Duration::from_millis(300))
        .remote(local_remote().heartbeat(Duration::from_millis(200), Duration::from_secs(1)))
        .build()
        .unwrap();
    for look_done in [false, true] {
        let start = Instant::now();
        let r = pool
            .submit(crate::attacks::outlive_timeout, (6_000, look_done))
            .join();
        assert!(r.is_err(), "the task outlived its timeout: {r:?}");
        // The agent's clock (300 ms), or the pool's bound on the job (300 ms and the
        // agent's 1 s to report) for a task that made its job look finished.
        assert!(
            start.elapsed() < Duration::from_millis(4_000),
            "killed {:?} after the start",
            start.elapsed()
        );
        assert_eq!(pool.submit(square, 6).join(), Ok(36));
    }
}
