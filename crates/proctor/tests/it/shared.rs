//! `Shared` and `SharedBytes`: read-only data handed to workers without a copy per worker or
//! per call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "sandbox")]
use proctor::Sandbox;
use proctor::{Mode, Pool, Shared, SharedBytes, TaskError};
use serde::{Deserialize, Deserializer, Serialize};

const MODES: [Mode; 2] = [Mode::Threads, Mode::Processes];

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

fn sum_at(data: &SharedBytes, (from, to): (usize, usize)) -> u64 {
    data[from..to].iter().map(|&b| b as u64).sum()
}

fn lookup(table: &Shared<HashMap<u32, String>>, k: u32) -> Option<String> {
    table.get(&k).cloned()
}

#[test]
fn both_modes_give_the_same_results_with_shared_contexts() {
    let bytes = pattern(3 << 20);
    let data = SharedBytes::new(&bytes).unwrap();
    assert_eq!(&*data, &bytes[..]);
    let ranges: Vec<(usize, usize)> = (0..12).map(|i| (i << 18, (i + 1) << 18)).collect();
    let want: Vec<u64> = ranges
        .iter()
        .map(|&(a, b)| bytes[a..b].iter().map(|&x| x as u64).sum())
        .collect();
    let table: HashMap<u32, String> = (0..1000).map(|i| (i, format!("v{i}"))).collect();
    let table = Shared::new(table).unwrap();
    for mode in MODES {
        let pool = Pool::builder(mode, 2).build().unwrap();
        let got: Vec<u64> = pool
            .map_with(&data, sum_at, ranges.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, want, "{mode}");
        let got = pool.map_with(&table, lookup, [3, 999, 1000]);
        assert_eq!(
            got,
            vec![Ok(Some("v3".into())), Ok(Some("v999".into())), Ok(None)],
            "{mode}"
        );
    }
}

/// Bytes whose every decoding (in this process) is counted.
#[derive(Serialize)]
struct Counted(Vec<u8>);

static DECODES: AtomicU64 = AtomicU64::new(0);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        Ok(Counted(Vec::deserialize(d)?))
    }
}

fn decodes(data: &Shared<Counted>, _: u32) -> (u32, u64, usize) {
    (
        std::process::id(),
        DECODES.load(Ordering::SeqCst),
        data.0.len(),
    )
}

fn decodes_in_struct(ctx: &(Shared<Counted>, u32), x: u32) -> (u32, u64, usize) {
    decodes(&ctx.0, x)
}

#[test]
fn a_worker_decodes_a_shared_value_once_however_many_calls_use_it() {
    let data = Shared::new(Counted(vec![5; 100_000])).unwrap();
    for mode in MODES {
        let before = DECODES.load(Ordering::SeqCst);
        let pool = Pool::builder(mode, 2).build().unwrap();
        let mut seen: HashMap<u32, u64> = HashMap::new();
        for call in 0..30u32 {
            let out = if call % 3 == 2 {
                // Another context that holds the same region: still not decoded again.
                pool.map_with(&(data.clone(), call), decodes_in_struct, 0..8)
            } else {
                pool.map_with(&data, decodes, 0..8)
            };
            for o in out {
                let (pid, n, len) = o.unwrap();
                assert_eq!(len, 100_000);
                seen.insert(pid, n);
            }
        }
        match mode {
            // The caller's own value: never decoded at all.
            Mode::Threads => assert_eq!(DECODES.load(Ordering::SeqCst), before),
            _ => {
                assert!(!seen.contains_key(&std::process::id()));
                for (pid, n) in seen {
                    assert_eq!(n, 1, "worker {pid} decoded the value {n} times");
                }
            }
        }
    }
}

fn plain_decodes(data: &Counted, _: u32) -> (u32, u64, usize) {
    (
        std::process::id(),
        DECODES.load(Ordering::SeqCst),
        data.0.len(),
    )
}

#[test]
fn a_plain_context_equal_to_the_last_calls_is_not_sent_again() {
    let pool = Pool::processes(2).build().unwrap();
    let decoded = |len: usize| {
        let out = pool.map_with(&Counted(vec![1; len]), plain_decodes, 0..8);
        let mut per_worker: HashMap<u32, u64> = HashMap::new();
        for o in out {
            let (pid, n, got) = o.unwrap();
            assert_eq!(got, len);
            per_worker.insert(pid, n);
        }
        per_worker
    };
    let mut before: HashMap<u32, u64> = HashMap::new();
    for _ in 0..10 {
        for (pid, n) in decoded(1000) {
            // A worker decodes it when it first runs one of its tasks, never again.
            assert_eq!(n, 1, "worker {pid} decoded the same context {n} times");
            before.insert(pid, n);
        }
    }
    // Another value is sent, and decoded.
    for (pid, n) in decoded(1001) {
        let had = before.get(&pid).copied().unwrap_or(0);
        assert_eq!(n, had + 1, "worker {pid}");
    }
}

/// Bytes whose every decoding in this process is counted (thread mode's own counter).
#[derive(Serialize)]
struct CountedHere(Vec<u8>);

static DECODED_HERE: AtomicU64 = AtomicU64::new(0);

impl<'de> Deserialize<'de> for CountedHere {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODED_HERE.fetch_add(1, Ordering::SeqCst);
        Ok(CountedHere(Vec::deserialize(d)?))
    }
}

fn here_len(data: &CountedHere, _: u32) -> usize {
    data.0.len()
}

#[test]
fn thread_mode_shares_one_copy_of_a_repeated_plain_context() {
    let pool = Pool::threads(2).build().unwrap();
    let ctx = CountedHere(vec![1; 1000]);
    for _ in 0..10 {
        let out = pool.map_with(&ctx, here_len, 0..8);
        assert!(out.iter().all(|o| *o == Ok(1000)));
    }
    assert_eq!(
        DECODED_HERE.load(Ordering::SeqCst),
        1,
        "one copy for ten calls"
    );
    let other = CountedHere(vec![1; 1001]);
    assert!(
        pool.map_with(&other, here_len, 0..8)
            .iter()
            .all(|o| *o == Ok(1001))
    );
    assert_eq!(
        DECODED_HERE.load(Ordering::SeqCst),
        2,
        "another value, another copy"
    );
}

fn write_into_region(data: &SharedBytes, how: u8) -> i32 {
    let page = data.as_ptr() as *mut libc::c_void;
    match how {
        0 => {
            // SAFETY: a hostile task: the call itself is harmless; the kernel decides.
            let rc = unsafe { libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_WRITE) };
            if rc == 0 {
                // SAFETY: as above; if the kernel allowed it, this writes the worker's view.
                unsafe { std::ptr::write_volatile(page as *mut u8, 0xEE) };
            }
            rc
        }
        _ => {
            // SAFETY: a hostile task writing to read-only memory: the worker crashes.
            unsafe { std::ptr::write_volatile(page as *mut u8, 0xEE) };
            0
        }
    }
}

fn first_bytes(data: &SharedBytes, _: u8) -> Vec<u8> {
    data[..16].to_vec()
}

#[test]
fn a_task_cannot_write_to_a_shared_region() {
    let bytes = pattern(1 << 16);
    let data = SharedBytes::new(&bytes).unwrap();
    let pool = Pool::processes(1).forward_stderr(false).build().unwrap();
    let out = pool.map_with(&data, write_into_region, [0u8]);
    assert_eq!(out.len(), 1);
    // `mprotect` to writable is refused: the mapping was made from a read-only descriptor.
    assert_eq!(out[0], Ok(-1), "mprotect made the region writable");
    let out = pool.map_with(&data, write_into_region, [1u8]);
    assert!(
        matches!(out[0], Err(TaskError::Crashed { .. })),
        "a write to the region: {:?}",
        out[0]
    );
    assert_eq!(&*data, &bytes[..], "the parent's bytes changed");
    // A fresh worker maps it again, unchanged.
    let out = pool.map_with(&data, first_bytes, [0u8]);
    assert_eq!(out[0].as_deref(), Ok(&bytes[..16]));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// The context's own type: a task of `map_with` gets `&C`.
#[allow(clippy::ptr_arg)]
fn total_len(regions: &Vec<SharedBytes>, i: usize) -> (usize, u8) {
    let r = &regions[i];
    (r.len(), r[r.len() - 1])
}

#[test]
fn many_regions_work_and_are_released_when_the_last_handle_drops() {
    // Alone in a process of its own: other tests' descriptors would blur the count.
    let out = crate::helper("shared::helper_many_regions", ("PROCTOR_TEST", "1"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all regions released"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "run by many_regions_work_and_are_released_when_the_last_handle_drops"]
fn helper_many_regions() {
    let pool = Pool::processes(2).build().unwrap();
    // One warm-up call, so that what the pool itself opens is counted before.
    let _ = pool.map(crate::sleep_ms, [0, 0]);
    let before = open_fds();
    let regions: Vec<SharedBytes> = (0..100)
        .map(|i| SharedBytes::new(&vec![i as u8; 1000 + i]).unwrap())
        .collect();
    assert!(open_fds() >= before + 100, "a region holds its memfd open");
    // A thread pool lives on past the drops below: it must not keep a region alive.
    let threads = Pool::threads(2).build().unwrap();
    let fds = open_fds();
    for pool in [&threads, &pool] {
        let out = pool.map_with(&regions, total_len, 0..100);
        for (i, o) in out.into_iter().enumerate() {
            assert_eq!(o, Ok((1000 + i, i as u8)), "{:?}", pool.mode());
        }
    }
    assert_eq!(open_fds(), fds, "a call opened descriptors in this process");
    let copy = regions[7].clone();
    drop(regions);
    assert_eq!(
        open_fds(),
        before + 1,
        "only the cloned region is still open"
    );
    assert_eq!(copy.len(), 1007);
    drop(copy);
    assert_eq!(open_fds(), before);
    drop((pool, threads));
    println!("all regions released");
}

fn make_region(n: usize) -> SharedBytes {
    SharedBytes::new(&vec![1; n]).unwrap()
}

#[test]
fn the_parent_refuses_a_region_a_worker_made() {
    let pool = Pool::processes(1).build().unwrap();
    let out = pool.map(make_region, [10]);
    match &out[0] {
        Err(TaskError::Codec { message, .. }) => {
            assert!(message.contains("did not make"), "{message}")
        }
        other => panic!("a worker's region reached the parent: {other:?}"),
    }
}

#[test]
#[cfg(feature = "sandbox")]
fn a_sandboxed_pool_refuses_a_shared_context_with_a_codec_error() {
    let data = SharedBytes::new(b"abc").unwrap();
    let pool = Pool::processes(1)
        .forward_stderr(false)
        .sandbox(Sandbox::compute().allow_unavailable(true))
        .build()
        .unwrap();
    let out = pool.map_with(&data, first_len, [0u8, 1]);
    for o in out {
        match o {
            Err(TaskError::Codec { message, .. }) => {
                assert!(message.contains("sandboxed"), "{message}")
            }
            other => panic!("a sandboxed worker got a shared context: {other:?}"),
        }
    }
}

fn first_len(data: &SharedBytes, _: u8) -> usize {
    data.len()
}

#[test]
fn an_empty_region_works_in_both_modes() {
    let data = SharedBytes::new(&[]).unwrap();
    let unit = Shared::new(()).unwrap();
    for mode in MODES {
        let pool = Pool::builder(mode, 1).build().unwrap();
        assert_eq!(pool.map_with(&data, first_len, [0u8]), vec![Ok(0)]);
        assert_eq!(pool.map_with(&unit, unit_task, [0u8]), vec![Ok(0)]);
    }
}

fn unit_task(_: &Shared<()>, x: u8) -> u8 {
    x
}

#[test]
#[cfg(feature = "remote")]
fn a_remote_pool_refuses_a_shared_context_with_a_codec_error() {
    let data = SharedBytes::new(b"abc").unwrap();
    let pool = Pool::processes(1)
        .remote(crate::remote::local_remote())
        .build()
        .unwrap();
    let out = pool.map_with(&(data, 5u8), first_len_of_pair, [0u8, 1]);
    for o in out {
        match o {
            Err(TaskError::Codec { message, .. }) => {
                assert!(message.contains("remote worker"), "{message}")
            }
            other => panic!("a remote worker got a shared context: {other:?}"),
        }
    }
    // A plain context still works there.
    assert_eq!(pool.map_with(&7u8, plain_len, [1u8]), vec![Ok(8)]);
}

#[cfg(feature = "remote")]
fn first_len_of_pair(ctx: &(SharedBytes, u8), _: u8) -> usize {
    ctx.0.len()
}

#[cfg(feature = "remote")]
fn plain_len(ctx: &u8, x: u8) -> u8 {
    ctx + x
}

#[test]
fn re_executed_workers_map_regions_too() {
    let bytes = pattern(1 << 20);
    let data = SharedBytes::new(&bytes).unwrap();
    let pool = Pool::processes(2)
        .start_method(proctor::StartMethod::Exec)
        .build()
        .unwrap();
    let out = pool.map_with(&data, sum_at, [(0, 1 << 19), (1 << 19, 1 << 20)]);
    let want = |a: usize, b: usize| bytes[a..b].iter().map(|&x| x as u64).sum::<u64>();
    assert_eq!(out, vec![Ok(want(0, 1 << 19)), Ok(want(1 << 19, 1 << 20))]);
}

/// A context whose first decoding in each process fails.
#[derive(Serialize)]
struct FailsOnce(u8);

static FAILS_ONCE: AtomicU64 = AtomicU64::new(0);

impl<'de> Deserialize<'de> for FailsOnce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u8::deserialize(d)?;
        if FAILS_ONCE.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(serde::de::Error::custom("not this time"));
        }
        Ok(FailsOnce(v))
    }
}

fn add_once(ctx: &FailsOnce, x: u8) -> u8 {
    ctx.0 + x
}

#[test]
fn a_context_that_did_not_decode_is_sent_again_next_call() {
    let pool = Pool::processes(1).build().unwrap();
    let ctx = FailsOnce(10);
    let out = pool.map_with(&ctx, add_once, [1u8]);
    assert!(
        matches!(&out[0], Err(TaskError::Codec { message, .. }) if message.contains("context could not be decoded")),
        "{out:?}"
    );
    // The same bytes, sent again rather than taken for what the worker holds.
    assert_eq!(pool.map_with(&ctx, add_once, [1u8]), vec![Ok(11)]);
}

/// A value whose `Serialize` always fails.
#[derive(Debug)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not today"))
    }
}

#[test]
fn a_value_that_does_not_encode_is_an_invalid_data_error() {
    let err = Shared::new(Unencodable).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("not today"), "{err}");
}

/// A result a hostile worker forges: in the worker it is the fields of a region handle, one
/// of them edited, written into the worker's result record; in the parent the same bytes are
/// decoded as the `SharedBytes` the parent's own code expects. The route of a task that
/// writes its record by hand, through the pool's real arena and decoder.
#[derive(Debug)]
enum Forged {
    /// In the worker: what it writes.
    Out(ForgedHandle),
    /// In the parent: what the bytes decoded to.
    In(SharedBytes),
}

impl Serialize for Forged {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Forged::Out(h) => h.serialize(s),
            Forged::In(data) => data.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Forged {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SharedBytes::deserialize(d).map(Forged::In)
    }
}

/// The library's handle fields, in its order, so that this encodes as one.
#[derive(Debug, Serialize, Deserialize)]
struct ForgedHandle {
    pid: u32,
    nonce: u64,
    id: u64,
    fd: i32,
    len: u64,
    bytes: bool,
}

/// Copies the handle it was given and edits one field (`how`: 0 a length of 1 TiB, 1 another
/// descriptor, 2 an id the parent never made).
fn forge((data, how): (SharedBytes, u8)) -> Forged {
    let mut h = serde_json::to_value(&data).unwrap();
    match how {
        0 => h["len"] = serde_json::json!(1u64 << 40),
        1 => h["fd"] = serde_json::json!(0),
        _ => h["id"] = serde_json::json!(h["id"].as_u64().unwrap() + 1_000_000),
    }
    Forged::Out(serde_json::from_value(h).unwrap())
}

#[test]
fn a_forged_handle_in_a_result_never_makes_the_parent_trust_its_fields() {
    let bytes = pattern(4096);
    let data = SharedBytes::new(&bytes).unwrap();
    let pool = Pool::processes(1).build().unwrap();
    for how in [0u8, 1] {
        // A live region's key with a forged length or descriptor: the parent hands back its
        // own region, as it made it, and reads nothing the worker wrote about it.
        match pool.submit(forge, (data.clone(), how)).join() {
            Ok(Forged::In(got)) => {
                assert_eq!(got.len(), bytes.len(), "forgery {how}");
                assert_eq!(&*got, &bytes[..], "forgery {how}");
            }
            other => panic!("forgery {how}: want the parent's own region, got {other:?}"),
        }
    }
    // A key the parent never made: refused, not mapped.
    match pool.submit(forge, (data.clone(), 2)).join() {
        Err(TaskError::Codec { .. }) => {}
        other => panic!("an unknown region: want a Codec error, got {other:?}"),
    }
    // The pool goes on.
    assert_eq!(pool.map_with(&data, first_len, [0u8]), vec![Ok(4096)]);
}

/// Opens the parent's descriptor `fd` through `/proc/<pid>/fd`, as a worker maps a region:
/// true if it opened.
#[cfg(feature = "sandbox")]
fn open_parents_fd((pid, fd): (u32, i64)) -> bool {
    std::fs::File::open(format!("/proc/{pid}/fd/{fd}")).is_ok()
}

/// The pool refuses to send a region to a sandboxed worker; a task that goes around it and
/// opens the region (or any descriptor of the parent) itself, the way a worker maps one, is
/// stopped by the sandbox. The plain worker is the control: there the same open works.
#[test]
#[cfg(feature = "sandbox")]
fn a_sandboxed_task_cannot_open_the_parents_region_through_proc() {
    let data = SharedBytes::new(b"secret").unwrap();
    let fd = serde_json::to_value(&data).unwrap()["fd"].as_i64().unwrap();
    let target = (std::process::id(), fd);
    let plain = Pool::processes(1).build().unwrap();
    assert_eq!(plain.submit(open_parents_fd, target).join(), Ok(true));
    let pool = crate::sandbox::sandboxed(Sandbox::compute());
    match pool.submit(open_parents_fd, target).join() {
        Ok(false) | Err(TaskError::SandboxViolation { .. }) => {}
        other => panic!("a sandboxed task opened the parent's region: {other:?}"),
    }
}
