#!/usr/bin/env python3
"""Python's multiprocessing on the scenarios of benches/pool.rs, for a side-by-side comparison.

* round trip: one trivial task submitted and waited for, in a loop, with
  multiprocessing.Pool(1).apply_async(f, (x,)).get() and
  concurrent.futures.ProcessPoolExecutor(1).submit(f, x).result();
* map: multiprocessing.Pool(2).map(f, range(1_000_000)).

Run it pinned and unpinned, like the Rust bench:

    taskset -c 0 python3 benches/python_multiprocessing.py
    python3 benches/python_multiprocessing.py

Prints one line per scenario: the median of several repetitions.
"""

import concurrent.futures
import multiprocessing
import statistics
import sys
import time


def trivial(n):
    return n + 1


def per_call(fn, calls):
    for _ in range(calls // 10):  # warm-up
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def median_of(runs, measure):
    return statistics.median(measure() for _ in range(runs))


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with multiprocessing.Pool(1) as pool:
        rtt = median_of(5, lambda: per_call(lambda: pool.apply_async(trivial, (7,)).get(), calls))
        print(f"multiprocessing.Pool(1).apply_async().get()   {rtt * 1e6:10.1f} us per task")
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        rtt = median_of(5, lambda: per_call(lambda: ex.submit(trivial, 7).result(), calls))
        print(f"ProcessPoolExecutor(1).submit().result()       {rtt * 1e6:10.1f} us per task")
    with multiprocessing.Pool(2) as pool:
        def one_map():
            start = time.perf_counter()
            out = pool.map(trivial, range(1_000_000))
            assert len(out) == 1_000_000
            return time.perf_counter() - start
        one_map()  # warm-up
        print(f"multiprocessing.Pool(2).map(range(1_000_000))  {median_of(5, one_map) * 1e3:10.1f} ms")


if __name__ == "__main__":
    main()
