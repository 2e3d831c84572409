#!/usr/bin/env python3
"""Ray and Dask distributed on the scenarios of benches/python_multiprocessing.py that
they share with it, for a side-by-side comparison. Both run locally: Ray with
ray.init(num_cpus=2, include_dashboard=False) on 127.0.0.1, Dask with
distributed.Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
dashboard_address=None)) on 127.0.0.1:

* (a) round trip: one trivial task submitted and waited for, in a loop: with Ray,
  ray.util.multiprocessing.Pool(1).apply_async(f, (x,)).get(), and ray.get(f.remote(x))
  for f a Ray remote function (a task, no pool); with Dask, client.submit(f, x).result()
  on a 1-worker cluster;
* (b) map: 1 000 000 trivial items, two workers, the results as a list in input order.
  Ray: Pool(2).map(f, range(1_000_000), chunksize=C). Dask, as a user would write it:
  client.gather(client.map(f, range(n))), one future an item; it costs about 1.5 ms an
  item on a 2-core machine, so it runs on 10 000 items (1 000 with --quick), once, and a
  second line scales that time to 1 000 000 items without measuring it. Dask chunked:
  the items cut into lists of C, client.map of a function that maps f over one list,
  client.gather, the lists flattened. Returned as they are, the lists cost 25 to 40 us
  an item whatever C is, since a worker serializes a list it sends element by element
  (distributed.protocol.serialize with iterate_collection=True), so this map runs once,
  with C = 125 000 (on 100 000 items with --quick, then scaled). The tuned chunked map
  has each task return its list inside a 1-tuple, whose one element, the list, is
  pickled whole.
  For the Ray map and the tuned Dask one, C is the fastest of 1 000, 10 000 and 125 000
  (Ray's default, len / (4 x workers) rounded up, like Pool.map's), each run once; the
  line names it;
* (e) start to first result: Ray, with ray.init done: create Pool(2), submit one trivial
  task, wait for it, terminate the pool; and the same inside ray.init() ...
  ray.shutdown(). Dask: create the LocalCluster and its Client, submit one trivial task,
  wait for it, close both.

Dask tasks are submitted with pure=False, so that a repetition cannot be answered from
results the scheduler still holds from the one before.

Run it pinned and unpinned, like the Rust benches:

    taskset -c 0 python3 benches/python_distributed.py
    python3 benches/python_distributed.py

With the argument --quick, every scenario runs once, the round trips make 200 calls
instead of 1000, and the two slow Dask maps take fewer items, as said in (b). Prints one
line per scenario, the median of several repetitions (fewer for the slow ones, one for
the two slow Dask maps), in the format of python_multiprocessing.py, then a line with
the versions. A package that is not importable is a line saying it is skipped, and the
other one still runs. Needs `pip install ray distributed`.
"""

import itertools
import logging
import os
import statistics
import sys
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray sends no usage report out

N = 1_000_000
CHUNK_SIZES = (1_000, 10_000, 125_000)


def trivial(n):
    return n + 1


def trivial_list(items):
    return [trivial(n) for n in items]


def trivial_list_in_tuple(items):
    return (trivial_list(items),)


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


def line(label, seconds, unit):
    scale = {"us": 1e6, "ms": 1e3}[unit]
    print(f"{label:<68} {seconds * scale:10.1f} {unit}", flush=True)


def scaled(label, n, seconds):
    """The line for a map over n items, N in label replaced by n; if n < N, one more line
    for the time scaled to N items, which is not measured."""
    line(label.replace("(N)", f"({n:_})"), seconds, "ms")
    if n < N:
        line(f"    scaled to 1_000_000 items (x{N // n}, not measured)", seconds * N / n, "ms")


def check(out, n=N):
    assert len(out) == n and out[0] == 1 and out[-1] == n


def fastest_chunk(map_with_chunk):
    """The chunk size of CHUNK_SIZES for which one call of map_with_chunk(C) is fastest."""
    return min(CHUNK_SIZES, key=lambda c: timed(lambda: map_with_chunk(c))())


class Settings:
    def __init__(self, quick):
        self.runs = 1 if quick else 5
        self.slow_runs = 1 if quick else 3
        self.calls = 200 if quick else 1000
        self.per_item = 1_000 if quick else 10_000
        self.list_items = 100_000 if quick else N


def bench_ray(s):
    import ray
    from ray.util.multiprocessing import Pool

    def init():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, _node_ip_address="127.0.0.1")

    init()
    with Pool(1) as pool:
        rtt = median_of(s.runs, lambda: per_call(lambda: pool.apply_async(trivial, (7,)).get(), s.calls))
        line("(a) ray Pool(1).apply_async().get()", rtt, "us")
    remote = ray.remote(trivial)
    rtt = median_of(s.runs, lambda: per_call(lambda: ray.get(remote.remote(7)), s.calls))
    line("(a) ray.get(f.remote()), a task, no pool", rtt, "us")

    with Pool(2) as pool:
        def one_map(chunk):
            check(pool.map(trivial, range(N), chunksize=chunk))

        chunk = fastest_chunk(one_map)
        line(f"(b) ray Pool(2).map(range(1_000_000), chunksize={chunk})",
             median_of(s.slow_runs, timed(lambda: one_map(chunk))), "ms")

    def pool_once():
        with Pool(2) as pool:
            assert pool.apply_async(trivial, (7,)).get() == 8

    pool_once()
    line("(e) ray Pool(2): start, one task, terminate", median_of(s.runs, timed(pool_once)), "ms")
    ray.shutdown()

    def ray_once():
        init()
        pool_once()
        ray.shutdown()

    line("(e) ray.init(), Pool(2): start, one task, terminate, ray.shutdown()",
         median_of(s.slow_runs, timed(ray_once)), "ms")
    return f"ray {ray.__version__}"


def bench_dask(s):
    import distributed

    def cluster(workers):
        return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, host="127.0.0.1",
                                        silence_logs=logging.ERROR)

    with cluster(1) as c, distributed.Client(c) as client:
        rtt = median_of(s.runs, lambda: per_call(
            lambda: client.submit(trivial, 7, pure=False).result(), s.calls))
        line("(a) dask client.submit().result(), 1 worker", rtt, "us")

    with cluster(2) as c, distributed.Client(c) as client:
        def per_item():
            check(client.gather(client.map(trivial, range(s.per_item), pure=False)), s.per_item)

        scaled("(b) dask client.gather(client.map(range(N))), a future an item", s.per_item,
               timed(per_item)())

        def chunked(n, chunk, task, flatten):
            chunks = [list(range(i, min(i + chunk, n))) for i in range(0, n, chunk)]
            out = flatten(client.gather(client.map(task, chunks, pure=False)))
            check(out, n)

        flat = itertools.chain.from_iterable

        def lists(n):
            chunked(n, 125_000, trivial_list, lambda parts: list(flat(parts)))

        scaled("(b) dask client.map over lists of 125_000, returned as lists", s.list_items,
               timed(lambda: lists(s.list_items))())

        def wrapped(chunk):
            chunked(N, chunk, trivial_list_in_tuple, lambda ones: list(flat(one[0] for one in ones)))

        chunk = fastest_chunk(wrapped)
        line(f"(b) dask client.map over lists of {chunk:_}, each in a 1-tuple",
             median_of(s.slow_runs, timed(lambda: wrapped(chunk))), "ms")

    def start_once():
        with cluster(2) as c, distributed.Client(c) as client:
            assert client.submit(trivial, 7, pure=False).result() == 8

    start_once()
    line("(e) dask LocalCluster(2), Client: start, one task, close",
         median_of(s.slow_runs, timed(start_once)), "ms")
    return f"dask distributed {distributed.__version__}"


def main():
    s = Settings("--quick" in sys.argv[1:])
    versions = [f"Python {sys.version.split()[0]}"]
    for name, bench in [("ray", bench_ray), ("distributed", bench_dask)]:
        try:
            __import__(name)
        except ImportError as e:
            print(f"{name}: skipped, not importable ({e}; pip install {name})", flush=True)
            continue
        versions.append(bench(s))
    print(", ".join(versions))


if __name__ == "__main__":
    main()
