#!/usr/bin/env python3
"""Python peers of bench/bench_sync.c: multiprocessing.Lock acquire+release,
Lock hand-off between two processes, the wake-up round trip of a sleeping
Event waiter, and Value increments under its lock. Same RESULT lines."""
import multiprocessing as mp
import os
import statistics
import sys
import time

# The helpers beside this script, found after the standard library (run.sh
# runs the peers with -P, so that py/queue.py hides nothing).
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from benchpin import CPUS, pin  # noqa: E402

QUICK = os.environ.get("MPROC_BENCH_QUICK", "") not in ("", "0")
SECONDS = 1.0 if QUICK else 3.0
REPEATS = 3 if QUICK else 5
GAP_S = 200e-6


def enabled(impl):
    sel = os.environ.get("MPROC_BENCH_IMPLS")
    return sel is None or impl in sel.split(",")


def result(bench, impl, metric, value):
    print("RESULT bench=%s impl=%s metric=%s value=%.6g" % (bench, impl, metric, value), flush=True)


def lock_round(lock):
    ops, counter = 0, 0
    until = time.perf_counter() + SECONDS / 4
    t0 = time.perf_counter_ns()
    while time.perf_counter() < until:
        for _ in range(10000):
            lock.acquire()
            counter += 1
            lock.release()
        ops += 10000
    t1 = time.perf_counter_ns()
    assert counter == ops
    return (t1 - t0) / ops


def handoff_child(lock, turn, counts, stop):
    pin(1)
    while not stop.value:
        with lock:
            mine = turn.value == 1
            if mine:
                turn.value = 0
                counts[1] += 1
        if not mine:
            os.sched_yield()


def handoff_round(lock):
    turn = mp.RawValue("i", 0)
    counts = mp.RawArray("l", 2)
    stop = mp.RawValue("i", 0)
    p = mp.Process(target=handoff_child, args=(lock, turn, counts, stop))
    p.start()
    until = time.perf_counter() + SECONDS / 2
    t0 = time.perf_counter_ns()
    while time.perf_counter() < until:
        with lock:
            mine = turn.value == 0
            if mine:
                turn.value = 1
                counts[0] += 1
        if not mine:
            os.sched_yield()
    stop.value = 1
    t1 = time.perf_counter_ns()
    p.join()
    total = counts[0] + counts[1]
    assert total > 0 and abs(counts[0] - counts[1]) <= 1
    return (t1 - t0) / total


def event_child(ping, pong, seq):
    pin(1)
    while True:
        if not ping.wait(5):
            os._exit(1)
        ping.clear()
        s = seq[0]
        seq[1] = s
        pong.set()
        if s < 0:
            return


def event_rtt():
    ping, pong = mp.Event(), mp.Event()
    seq = mp.RawArray("q", 2)
    p = mp.Process(target=event_child, args=(ping, pong, seq))
    p.start()
    v = []
    i = 0
    until = time.perf_counter() + SECONDS
    while time.perf_counter() < until:
        i += 1
        time.sleep(GAP_S)
        seq[0] = i
        t0 = time.perf_counter_ns()
        ping.set()
        assert pong.wait(5)
        t1 = time.perf_counter_ns()
        pong.clear()
        assert seq[1] == i
        v.append((t1 - t0) / 1000.0)
    seq[0] = -1
    ping.set()
    p.join()
    return statistics.median(v)


def value_round(val):
    val.value = 0
    ops = 0
    until = time.perf_counter() + SECONDS / 4
    t0 = time.perf_counter_ns()
    while time.perf_counter() < until:
        for _ in range(10000):
            with val.get_lock():
                val.value += 1
        ops += 10000
    t1 = time.perf_counter_ns()
    assert val.value == ops
    return (t1 - t0) / ops


def main():
    pin(0)
    if enabled("python_mp_lock"):
        lock = mp.Lock()
        result("sync.lock_uncontended", "python_mp_lock", "ns_per_op",
               statistics.median(lock_round(lock) for _ in range(REPEATS)))
        result("sync.lock_handoff", "python_mp_lock", "ns_per_handoff",
               statistics.median(handoff_round(lock) for _ in range(REPEATS)))
    if enabled("python_mp_event"):
        result("sync.event_wake", "python_mp_event", "rtt_p50_us", event_rtt())
    if enabled("python_mp_value"):
        val = mp.Value("q", 0)
        result("sync.value_add", "python_mp_value", "ns_per_op",
               statistics.median(value_round(val) for _ in range(REPEATS)))


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
