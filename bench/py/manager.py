#!/usr/bin/env python3
"""Python peer of bench/bench_manager.c: multiprocessing.Manager() with its
server process on the other CPU, a dict set, a dict get (checked) and a
Queue put+get (checked), each a blocking round trip through a proxy. Same
RESULT lines (impl python_mp_manager)."""
import multiprocessing as mp
import os
import statistics
import sys
import time

# The helpers beside this script, found after the standard library (run.sh
# runs the peers with -P, so that py/queue.py hides nothing).
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
import benchpin  # noqa: E402
from benchpin import CPUS  # noqa: E402

QUICK = os.environ.get("MPROC_BENCH_QUICK", "") not in ("", "0")
SECONDS = 1.0 if QUICK else 3.0
REPEATS = 3 if QUICK else 5
KEYS = 1000


def enabled(impl):
    sel = os.environ.get("MPROC_BENCH_IMPLS")
    return sel is None or impl in sel.split(",")


def result(bench, value):
    print("RESULT bench=%s impl=python_mp_manager metric=ops_per_s value=%.6g"
          % (bench, value), flush=True)


def pin_or_die(pid, cpu):
    if len(CPUS) > 1 and benchpin.pin(cpu, pid) != CPUS[cpu % len(CPUS)]:
        raise SystemExit("pid %d is not pinned" % pid)


def value_of(i):
    return ("v%015d" % (i % KEYS)).encode()


def run(op, secs):
    n = 0
    until = time.perf_counter() + secs
    t0 = time.perf_counter()
    while time.perf_counter() < until:
        for _ in range(100):
            op(n)
            n += 1
    return n / (time.perf_counter() - t0)


def main():
    if not enabled("python_mp_manager"):
        return
    with mp.Manager() as m:
        pin_or_die(m._process.pid, 1)
        pin_or_die(0, 0)
        d = m.dict()
        q = m.Queue()
        keys = ["k%d" % i for i in range(KEYS)]

        def op_set(i):
            d[keys[i % KEYS]] = value_of(i)

        def op_get(i):
            if d[keys[i % KEYS]] != value_of(i):
                raise SystemExit("dict value %d damaged" % i)

        def op_putget(i):
            q.put(i)
            if q.get(timeout=5) != i:
                raise SystemExit("queue item %d damaged" % i)

        for i in range(KEYS):
            op_set(i)
        secs = SECONDS / 4
        for bench, op in (("manager.dict_set", op_set),
                          ("manager.dict_get", op_get),
                          ("manager.queue_putget", op_putget)):
            result(bench, statistics.median(run(op, secs) for _ in range(REPEATS)))


if __name__ == "__main__":
    main()
