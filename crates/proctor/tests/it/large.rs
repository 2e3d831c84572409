//! Large arguments and results: through the worker's inbox and in place in its arena, intact
//! under faults, past the old 256 MiB frame limit, and an argument over the pool's
//! `max_payload` rejected before it is built.

use serde_bytes::ByteBuf;

use proctor::{Pool, TaskError};

/// The buffer back, each byte plus one, and its sum.
fn bump(buf: ByteBuf) -> (ByteBuf, u64) {
    let sum = buf.iter().map(|&b| b as u64).sum();
    (
        ByteBuf::from(buf.iter().map(|b| b.wrapping_add(1)).collect::<Vec<u8>>()),
        sum,
    )
}

fn pattern(len: usize, seed: u8) -> ByteBuf {
    ByteBuf::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect::<Vec<u8>>(),
    )
}

fn check(seed: u8, len: usize, got: &(ByteBuf, u64)) {
    let want = pattern(len, seed);
    assert_eq!(got.0.len(), len);
    assert!(
        got.0
            .iter()
            .zip(want.iter())
            .all(|(g, w)| *g == w.wrapping_add(1)),
        "seed {seed}"
    );
    assert_eq!(got.1, want.iter().map(|&b| b as u64).sum::<u64>());
}

#[test]
fn large_arguments_and_results_arrive_intact() {
    let pool = Pool::processes(2).build().unwrap();
    // One task at a time, around the inbox threshold and far past it.
    for (seed, len) in [(1u8, 64 << 10), (2, (64 << 10) - 1), (3, 5 << 20), (4, 64)] {
        let got = pool.submit(bump, pattern(len, seed)).join().unwrap();
        check(seed, len, &got);
    }
    // A map of large items: several per job, and jobs that grow the inbox as they come.
    let lens: Vec<usize> = (0..24).map(|i| (i % 5 + 1) * (50 << 10)).collect();
    let items: Vec<ByteBuf> = lens
        .iter()
        .enumerate()
        .map(|(i, &l)| pattern(l, i as u8))
        .collect();
    for (i, o) in pool.map(bump, items).into_iter().enumerate() {
        check(i as u8, lens[i], &o.unwrap());
    }
}

fn bump_or_die(buf: ByteBuf) -> (ByteBuf, u64) {
    if buf.first() == Some(&0xEE) {
        std::process::abort();
    }
    bump(buf)
}

#[test]
fn a_crash_among_large_items_fails_it_alone_and_the_rest_resume_intact() {
    let pool = Pool::processes(1)
        .chunk_size(6)
        .forward_stderr(false)
        .build()
        .unwrap();
    let mut items: Vec<ByteBuf> = (0..12).map(|i| pattern(200 << 10, i as u8 + 1)).collect();
    items[3][0] = 0xEE;
    for (i, o) in pool.map(bump_or_die, items).into_iter().enumerate() {
        if i == 3 {
            assert!(matches!(o, Err(TaskError::Crashed { .. })), "{o:?}");
        } else {
            check(i as u8 + 1, 200 << 10, &o.unwrap());
        }
    }
}

fn len(buf: ByteBuf) -> usize {
    buf.len()
}

/// The process's peak resident memory, in bytes.
fn peak_bytes() -> u64 {
    crate::status_bytes("VmHWM")
}

#[test]
#[ignore = "helper: run by an_argument_over_the_limit_is_rejected_before_it_is_built"]
fn helper_oversized_argument() {
    let pool = Pool::processes(1).max_payload(256 << 20).build().unwrap();
    // calloc'd: its pages are not touched until something reads them.
    let huge = ByteBuf::from(vec![0u8; 300 << 20]);
    let before = peak_bytes();
    let err = pool.submit(len, huge).join().unwrap_err();
    let grew = peak_bytes().saturating_sub(before);
    assert!(
        matches!(&err, TaskError::Codec { message, .. }
            if message.contains("exceeds the pool's max_payload of 256 MiB")),
        "{err:?}"
    );
    assert!(
        grew < 16 << 20,
        "rejecting it took {grew} more bytes of memory"
    );
    println!("rejected without building it");
}

#[test]
fn an_argument_over_the_limit_is_rejected_before_it_is_built() {
    let out = crate::helper("large::helper_oversized_argument", ("PROCTOR_TEST", "1"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("rejected without building it"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Its length, and its first and last bytes.
fn ends(buf: ByteBuf) -> (usize, u8, u8) {
    (buf.len(), buf[0], buf[buf.len() - 1])
}

/// `n` bytes, each `n % 251`, ending in 0xEE.
fn filled(n: usize) -> ByteBuf {
    let mut v = vec![(n % 251) as u8; n];
    v[n - 1] = 0xEE;
    ByteBuf::from(v)
}

fn check_filled(n: usize, got: &ByteBuf) {
    assert_eq!(got.len(), n);
    let fill = (n % 251) as u8;
    assert!(got[..n - 1].iter().all(|&b| b == fill), "a byte changed");
    assert_eq!(got[n - 1], 0xEE);
}

/// Past the 256 MiB frame limit of before (loky's `test_no_failure_on_large_data_send`):
/// a 300 MiB argument and result, alone and as one item of a `map` among small ones.
#[test]
fn arguments_and_results_past_the_old_frame_limit_round_trip() {
    let n = 300 << 20;
    let pool = Pool::processes(2).build().unwrap();
    assert_eq!(
        pool.submit(ends, filled(n)).join().unwrap(),
        (n, (n % 251) as u8, 0xEE)
    );
    check_filled(n, &pool.submit(filled, n).join().unwrap());
    // In a map, the large item is a job of its own, encoded into the inbox when sent.
    let lens = [10, n, 20, 30];
    let got = pool.map(ends, lens.iter().map(|&l| filled(l)).collect::<Vec<_>>());
    for (o, &l) in got.into_iter().zip(&lens) {
        assert_eq!(o.unwrap(), (l, (l % 251) as u8, 0xEE));
    }
    // And the pool goes on with small tasks.
    assert_eq!(pool.submit(ends, filled(5)).join().unwrap(), (5, 5, 0xEE));
}

/// Results past `max_payload` fail in the worker, as their task's codec error; the worker
/// and the pool go on.
#[test]
fn a_result_past_max_payload_is_its_tasks_codec_error() {
    let pool = Pool::processes(1).max_payload(1 << 20).build().unwrap();
    let err = pool.submit(filled, 2 << 20).join().unwrap_err();
    assert!(
        matches!(&err, TaskError::Codec { message, .. }
            if message.contains("results exceed the pool's max_payload of 1 MiB")),
        "{err:?}"
    );
    check_filled(512 << 10, &pool.submit(filled, 512 << 10).join().unwrap());
    let err = pool.submit(ends, filled(2 << 20)).join().unwrap_err();
    assert!(
        matches!(&err, TaskError::Codec { message, .. }
            if message.contains("exceeds the pool's max_payload of 1 MiB")),
        "{err:?}"
    );
}

#[test]
fn a_max_payload_too_small_for_the_pools_own_frames_is_refused() {
    let err = Pool::processes(1).max_payload(1000).build().unwrap_err();
    assert!(err.is_invalid_config(), "{err}");
    assert!(err.to_string().contains("max_payload"), "{err}");
}
