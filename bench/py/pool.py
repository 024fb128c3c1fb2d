#!/usr/bin/env python3
"""Python peer of bench/bench_pool.c: multiprocessing.Pool with the same
cases. Pool(2).map of an identity function over 100,000 small ints with
chunksize=1 and with the default chunk size (us_per_task), apply_async then
get one task at a time (us_per_task), creation until a first map of 10
items returns (ms), and a CPU-bound map (32 tasks of about 8 ms, chunksize
1) on 1 worker divided by the same on 2 (ratio). Every result is checked;
medians of the runs. Prints RESULT lines."""
import multiprocessing as mp
import os
import statistics
import sys
import time

IMPL = "python_mp_pool"
ITEMS = 100000
START_ITEMS = 10
CPU_TASKS = 32
CPU_TASK_MS = 8.0
QUICK = os.environ.get("MPROC_BENCH_QUICK", "") not in ("", "0")
SECONDS = 1.0 if QUICK else 3.0
REPEATS = 3 if QUICK else 5


def enabled():
    lst = os.environ.get("MPROC_BENCH_IMPLS", "")
    return not lst or IMPL in lst.split(",")


def result(bench, metric, value):
    print("RESULT bench=%s impl=%s metric=%s value=%.6g" % (bench, IMPL, metric, value))
    sys.stdout.flush()


def ident(x):
    return x


def spin_work(args):
    seed, iters = args
    x = seed
    for _ in range(iters):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
    return x


def map_rate(pool, data, chunksize):
    tasks = 0
    took = 0.0
    while True:
        t0 = time.perf_counter()
        if chunksize is None:
            got = pool.map(ident, data)
        else:
            got = pool.map(ident, data, chunksize=chunksize)
        took += time.perf_counter() - t0
        if got != data:
            sys.exit("pool.py: map output damaged")
        tasks += len(data)
        if took >= SECONDS:
            return took / tasks * 1e6


def apply_rate(pool):
    n = 0
    t0 = time.perf_counter()
    end = t0 + SECONDS
    while time.perf_counter() < end:
        for _ in range(64):
            if pool.apply_async(ident, (n,)).get() != n:
                sys.exit("pool.py: apply_async result damaged")
            n += 1
    return (time.perf_counter() - t0) / n * 1e6


def start_ms():
    data = list(range(1, START_ITEMS + 1))
    t0 = time.perf_counter()
    pool = mp.Pool(2)
    got = pool.map(ident, data)
    ms = (time.perf_counter() - t0) * 1e3
    if got != data:
        sys.exit("pool.py: start map damaged")
    pool.close()
    pool.join()
    return ms


def cpu_map_s(workers, tasks, want):
    pool = mp.Pool(workers)
    t0 = time.perf_counter()
    got = pool.map(spin_work, tasks, chunksize=1)
    s = time.perf_counter() - t0
    pool.close()
    pool.join()
    if got != want:
        sys.exit("pool.py: cpu map damaged")
    return s


def main():
    if not enabled():
        return 0
    data = [(i * 2654435761) & 0xFFFFFFFF for i in range(ITEMS)]
    pool = mp.Pool(2)
    # chunksize=1 over 100,000 items takes seconds per map: fewer runs.
    result("pool.map_chunk1", "us_per_task",
           statistics.median(map_rate(pool, data, 1) for _ in range(min(REPEATS, 3))))
    result("pool.map_chunkdefault", "us_per_task",
           statistics.median(map_rate(pool, data, None) for _ in range(REPEATS)))
    result("pool.apply_async", "us_per_task",
           statistics.median(apply_rate(pool) for _ in range(REPEATS)))
    pool.close()
    pool.join()
    result("pool.start", "ms", statistics.median(start_ms() for _ in range(REPEATS * 3)))
    if len(os.sched_getaffinity(0)) < 2:
        print("pool.py: one CPU, no cpu_speedup", file=sys.stderr)
        return 0
    iters = 1 << 12
    while True:
        t0 = time.perf_counter()
        spin_work((1, iters))
        ms = (time.perf_counter() - t0) * 1e3
        if ms >= CPU_TASK_MS / 4:
            iters = int(iters * CPU_TASK_MS / ms)
            break
        iters *= 2
    tasks = [(i + 1, iters) for i in range(CPU_TASKS)]
    want = [spin_work(t) for t in tasks]
    result("pool.cpu_speedup", "ratio",
           statistics.median(cpu_map_s(1, tasks, want) / cpu_map_s(2, tasks, want)
                             for _ in range(REPEATS)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
