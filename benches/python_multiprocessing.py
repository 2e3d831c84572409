#!/usr/bin/env python3
"""Python's multiprocessing on the scenarios of benches/pool.rs and benches/peers.rs, for a
side-by-side comparison. Each scenario runs with multiprocessing.Pool and with
concurrent.futures.ProcessPoolExecutor:

* (a) round trip: one trivial task submitted and waited for, in a loop, one worker:
  Pool(1).apply_async(f, (x,)).get() and ProcessPoolExecutor(1).submit(f, x).result();
* (b) map: 1 000 000 trivial items, two workers: Pool(2).map(f, range(1_000_000)), and
  ProcessPoolExecutor(2).map with the chunk size Pool.map picks by default (len / (4 x
  workers), rounded up: 125 000), since its own default of 1 sends every item alone;
* (c) bytes: a 64 MiB bytes object to one worker and back (the task returns it);
* (d) CPU-bound: 64 items of about 1 ms of Python arithmetic each (the loop count is
  calibrated on this machine first, so an item does far fewer operations than the Rust
  bench's), two workers, next to the same 64 items one after another in this process;
* (e) start to first result: create a 2-worker pool, submit one trivial task, wait for it,
  close the pool (the `with` block: Pool terminates its workers, the executor joins them).

Run it pinned and unpinned, like the Rust benches:

    taskset -c 0 python3 benches/python_multiprocessing.py
    python3 benches/python_multiprocessing.py

`--calls N` sets the round-trip calls per repetition (default 5000) and `--only a,b` runs
some scenarios alone (letters as above). Prints one line per scenario: the median of several
repetitions.
"""

import argparse
import concurrent.futures
import functools
import math
import multiprocessing
import statistics
import sys
import time

MASK = (1 << 64) - 1
BYTES = 64 << 20
SCENARIOS = set("abcde")


def trivial(n):
    return n + 1


def echo(buf):
    return buf


def spin(seed, iters):
    """About 1 ms of arithmetic for the calibrated `iters`: wrapping multiply-adds."""
    x = seed
    for _ in range(iters):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
    return x


def per_call(fn, calls):
    for _ in range(calls // 10):  # warm-up
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def median_of(runs, measure):
    return statistics.median(measure() for _ in range(runs))


def timed(fn):
    """A measure for median_of: the seconds one call of fn takes."""

    def measure():
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return measure


def calibrate_spin(target_s=1e-3):
    iters = 10_000
    while True:
        took = median_of(5, timed(lambda: spin(7, iters)))
        if took > 20 * target_s:
            break
        iters *= 4
    return max(1, round(iters * target_s / took))


def line(label, seconds, unit):
    scale = {"us": 1e6, "ms": 1e3}[unit]
    print(f"{label:<68} {seconds * scale:10.1f} {unit}")


def round_trips(calls):
    with multiprocessing.Pool(1) as pool:
        rtt = median_of(5, lambda: per_call(lambda: pool.apply_async(trivial, (7,)).get(), calls))
        line("(a) multiprocessing.Pool(1).apply_async().get()", rtt, "us")
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        rtt = median_of(5, lambda: per_call(lambda: ex.submit(trivial, 7).result(), calls))
        line("(a) ProcessPoolExecutor(1).submit().result()", rtt, "us")


def maps():
    n = 1_000_000
    chunk = math.ceil(n / (4 * 2))

    def check(out):
        assert len(out) == n and out[-1] == n

    with multiprocessing.Pool(2) as pool:
        one_map = timed(lambda: check(pool.map(trivial, range(n))))
        one_map()  # warm-up
        line("(b) multiprocessing.Pool(2).map(range(1_000_000))", median_of(5, one_map), "ms")
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        one_map = timed(lambda: check(list(ex.map(trivial, range(n), chunksize=chunk))))
        one_map()
        line(f"(b) ProcessPoolExecutor(2).map(range(1_000_000), chunksize={chunk})",
             median_of(5, one_map), "ms")


def bytes_there_and_back():
    buf = bytes(i % 251 for i in range(251)) * (BYTES // 251) + bytes(BYTES % 251)
    assert len(buf) == BYTES

    def check(back):
        assert len(back) == BYTES

    with multiprocessing.Pool(1) as pool:
        once = timed(lambda: check(pool.apply_async(echo, (buf,)).get()))
        once()
        line("(c) 64 MiB: multiprocessing.Pool(1).apply_async(echo).get()", median_of(5, once), "ms")
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        once = timed(lambda: check(ex.submit(echo, buf).result()))
        once()
        line("(c) 64 MiB: ProcessPoolExecutor(1).submit(echo).result()", median_of(5, once), "ms")


def cpu_bound():
    iters = calibrate_spin()
    task = functools.partial(spin, iters=iters)
    items = range(64)
    expected = [task(i) for i in items]
    serial = median_of(5, timed(lambda: [task(i) for i in items]))
    print(f"(d) spin: {iters} iterations an item, {serial / 64 * 1e3:.2f} ms an item here")
    line("(d) 64 items, serial in this process", serial, "ms")

    def check(out):
        assert list(out) == expected

    with multiprocessing.Pool(2) as pool:
        once = timed(lambda: check(pool.map(task, items)))
        once()
        took = median_of(5, once)
        line(f"(d) multiprocessing.Pool(2).map (speed-up {serial / took:.2f}x)", took, "ms")
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        once = timed(lambda: check(ex.map(task, items)))
        once()
        took = median_of(5, once)
        line(f"(d) ProcessPoolExecutor(2).map (speed-up {serial / took:.2f}x)", took, "ms")


def start_first_result(loops=20):
    def pool_once():
        with multiprocessing.Pool(2) as pool:
            assert pool.apply_async(trivial, (7,)).get() == 8

    def executor_once():
        with concurrent.futures.ProcessPoolExecutor(2) as ex:
            assert ex.submit(trivial, 7).result() == 8

    for label, once in [
        ("(e) multiprocessing.Pool(2): start, one task, close", pool_once),
        ("(e) ProcessPoolExecutor(2): start, one task, shutdown", executor_once),
    ]:
        once()
        took = median_of(5, lambda: per_call(once, loops))
        line(label, took, "ms")


def scenarios(text):
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown)}: choose among a, b, c, d, e"
        )
    return set(chosen)


def main():
    parser = argparse.ArgumentParser(
        description="Python's multiprocessing on proctor's peer-benchmark scenarios "
        "(a round trip, b map, c bytes, d CPU-bound, e start to first result)."
    )
    parser.add_argument(
        "--calls", type=int, default=5000, help="round-trip calls per repetition (default 5000)"
    )
    parser.add_argument(
        "--only", type=scenarios, default=SCENARIOS, help="scenarios to run, e.g. b or a,c"
    )
    args = parser.parse_args()
    if args.calls < 1:
        parser.error("--calls must be at least 1")
    print(f"Python {sys.version.split()[0]}, start method {multiprocessing.get_start_method()}")
    runs = [
        ("a", lambda: round_trips(args.calls)),
        ("b", maps),
        ("c", bytes_there_and_back),
        ("d", cpu_bound),
        ("e", start_first_result),
    ]
    for letter, run in runs:
        if letter in args.only:
            run()


if __name__ == "__main__":
    main()
