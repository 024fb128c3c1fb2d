#!/usr/bin/env python3
"""The Python peer of bench_queue: multiprocessing.Queue (put and get of
bytes; maxsize 1024 for 64-byte messages and 2 for 1 MiB ones, so that the
producer cannot run unboundedly ahead). Cases: 64-byte messages one way
(msgs_per_s), 64-byte ping-pong through two queues (rtt_p50_us,
rtt_p99_us), 1 MiB messages one way (gbytes_per_s), 2 producers and 2
consumers on one queue (msgs_per_s, every message got exactly once), a
64-byte message every 300 us to a consumer that sleeps (latency_p50_us).
No batched form: it sits batch_64B out and says so. Producers run on one
CPU, consumers on another, and each process checks where it was put.
Every message is checked. Prints the same RESULT lines as the C
benchmarks."""
import os
import sys

# This file is named queue.py: drop its directory from the path, so that
# `import queue` (here and inside multiprocessing) finds the standard one.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import multiprocessing as mp  # noqa: E402
import queue as queue_mod  # noqa: E402
import statistics  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

# The helpers beside this script, found after the standard library (run.sh
# runs the peers with -P, so that py/queue.py hides nothing).
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from benchpin import CPUS, case_enabled, pin  # noqa: E402

IMPL = "python_mp_queue"
SMALL = 64
BIG = 1 << 20
END = 0xFFFFFFFFFFFFFFFF
NPROD = 2
NCONS = 2
SEQ_MASK = (1 << 56) - 1
DRAIN_S = 0.05
WAKE_GAP_S = 300e-6


def quick():
    q = os.environ.get("MPROC_BENCH_QUICK", "")
    return q not in ("", "0")


def enabled():
    lst = os.environ.get("MPROC_BENCH_IMPLS", "")
    return not lst or IMPL in lst.split(",")


def check_cpus(prod, cons):
    if len(CPUS) >= 2 and (prod < 0 or cons < 0 or prod == cons):
        sys.exit("%s: producer on CPU %d, consumer on CPU %d" % (IMPL, prod, cons))


def pad_for(size):
    return bytes((k * 131 + 13) & 0xFF for k in range(size))


def payload(i, size, pad):
    return struct.pack("<Q", i) + pad[8:size]


def check(m, i, size, pad):
    if len(m) != size or struct.unpack_from("<Q", m)[0] != i or m[8:] != pad[8:size]:
        sys.exit("%s: message %d damaged" % (IMPL, i))


def joined(p):
    p.join()
    if p.exitcode != 0:
        sys.exit("%s: a child failed (%s)" % (IMPL, p.exitcode))


def producer(q, size, stop, cpu):
    cpu.value = pin(0)
    pad = pad_for(size)
    i = 0
    while True:
        if (i & 63) == 0 and stop.is_set():
            break
        q.put(payload(i, size, pad))
        i += 1
    q.put(struct.pack("<Q", END) + pad[8:size])


def one_way(size, secs):
    q = mp.Queue(1024 if size <= SMALL else 2)
    stop = mp.Event()
    cpu = mp.RawValue("i", -1)
    p = mp.Process(target=producer, args=(q, size, stop, cpu))
    p.start()
    me = pin(1)
    pad = pad_for(size)
    n = counted = 0
    t0 = t1 = 0.0
    while True:
        m = q.get()
        if struct.unpack_from("<Q", m)[0] == END:
            break
        check(m, n, size, pad)
        n += 1
        if n == 1:
            t0 = time.perf_counter()
        elif t1 == 0.0 and time.perf_counter() - t0 >= secs:
            t1 = time.perf_counter()
            counted = n - 1
            stop.set()
    joined(p)
    check_cpus(cpu.value, me)
    return counted / (t1 - t0)


def echoer(down, up, cpu):
    cpu.value = pin(0)
    while True:
        m = down.get()
        up.put(m)
        if struct.unpack_from("<Q", m)[0] == END:
            break


def ping_pong(secs):
    down, up = mp.Queue(1024), mp.Queue(1024)
    cpu = mp.RawValue("i", -1)
    p = mp.Process(target=echoer, args=(down, up, cpu))
    p.start()
    me = pin(1)
    pad = pad_for(SMALL)
    rtts = []
    t0 = time.perf_counter()
    i = 0
    while True:
        m = payload(i, SMALL, pad)
        s = time.perf_counter_ns()
        down.put(m)
        got = up.get()
        e = time.perf_counter_ns()
        check(got, i, SMALL, pad)
        if i >= 100:
            rtts.append((e - s) / 1000.0)
        i += 1
        if (i & 63) == 0 and time.perf_counter() - t0 >= secs:
            break
    down.put(struct.pack("<Q", END) + pad[8:SMALL])
    up.get()
    joined(p)
    check_cpus(cpu.value, me)
    rtts.sort()
    return rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]


def paced_producer(q, stop, cpu):
    """One message every WAKE_GAP_S; its time.monotonic_ns() travels in
    bytes 16-23."""
    cpu.value = pin(0)
    pad = pad_for(SMALL)
    i = 0
    while True:
        time.sleep(WAKE_GAP_S)
        end = stop.is_set()
        m = payload(END if end else i, SMALL, pad)
        q.put(m[:16] + struct.pack("<q", time.monotonic_ns()) + m[24:])
        if end:
            break
        i += 1


def wake(secs):
    q = mp.Queue(1024)
    stop = mp.Event()
    cpu = mp.RawValue("i", -1)
    p = mp.Process(target=paced_producer, args=(q, stop, cpu))
    p.start()
    me = pin(1)
    pad = pad_for(SMALL)
    lat = []
    t0 = time.perf_counter()
    i = 0
    while True:
        m = q.get()
        now = time.monotonic_ns()
        if struct.unpack_from("<Q", m)[0] == END:
            break
        check(m[:16] + pad[16:24] + m[24:], i, SMALL, pad)
        if i >= 10:
            lat.append((now - struct.unpack_from("<q", m, 16)[0]) / 1000.0)
        i += 1
        if time.perf_counter() - t0 >= secs:
            stop.set()
    joined(p)
    check_cpus(cpu.value, me)
    return statistics.median(lat)


def mpmc_producer(q, k, stop, sent, done, release, cpus):
    cpus[NCONS + k] = pin(0)
    pad = pad_for(SMALL)
    i = 0
    while (i & 63) != 0 or not stop.is_set():
        q.put(payload(k << 56 | i, SMALL, pad))
        i += 1
    sent[k] = i
    done.release()
    release.wait()


def mpmc_consumer(q, k, got, drain, expect, cpus):
    """Takes messages until the producers are gone and the consumers
    together got all they put; each producer's come in its order."""
    cpus[k] = pin(1)
    pad = pad_for(SMALL)
    nxt = [0] * NPROD
    n = 0
    while True:
        try:
            m = q.get(timeout=DRAIN_S)
        except queue_mod.Empty:
            if drain.is_set() and sum(got) >= expect.value:
                break
            continue
        tag = struct.unpack_from("<Q", m)[0]
        p, seq = tag >> 56, tag & SEQ_MASK
        if p >= NPROD or seq < nxt[p]:
            sys.exit("%s: message %x out of order" % (IMPL, tag))
        check(m, tag, SMALL, pad)
        nxt[p] = seq + 1
        n += 1
        got[k] = n


def mpmc(secs):
    q = mp.Queue(1024)
    stop, drain, release = mp.Event(), mp.Event(), mp.Event()
    done = mp.Semaphore(0)
    got = mp.RawArray("q", NCONS)
    sent = mp.RawArray("q", NPROD)
    expect = mp.RawValue("q", 0)
    cpus = mp.RawArray("i", [-1] * (NCONS + NPROD))
    cons = [mp.Process(target=mpmc_consumer, args=(q, k, got, drain, expect, cpus))
            for k in range(NCONS)]
    prods = [mp.Process(target=mpmc_producer, args=(q, k, stop, sent, done, release, cpus))
             for k in range(NPROD)]
    for p in cons + prods:
        p.start()
    give_up = time.perf_counter() + 10
    while sum(got) == 0:
        if time.perf_counter() > give_up:
            sys.exit("%s: no message in 10 s" % IMPL)
        time.sleep(0.001)
    t0, c0 = time.perf_counter(), sum(got)
    time.sleep(secs)
    t1, c1 = time.perf_counter(), sum(got)
    stop.set()
    for _ in range(NPROD):
        done.acquire()
    expect.value = sum(sent)
    drain.set()
    for p in cons:
        p.join(10)
        if p.exitcode is None:
            p.kill()
            sys.exit("%s: %d messages put, %d got" % (IMPL, sum(sent), sum(got)))
        if p.exitcode != 0:
            sys.exit("%s: a consumer failed" % IMPL)
    release.set()
    for p in prods:
        joined(p)
    if sum(got) != sum(sent):
        sys.exit("%s: %d messages put, %d got" % (IMPL, sum(sent), sum(got)))
    for pc in cpus[NCONS:]:
        for cc in cpus[:NCONS]:
            check_cpus(pc, cc)
    return (c1 - c0) / (t1 - t0)


def result(bench, metric, value):
    print("RESULT bench=%s impl=%s metric=%s value=%.6g" % (bench, IMPL, metric, value))
    sys.stdout.flush()


def main():
    if not enabled():
        return 0
    mp.set_start_method("fork")
    reps = 3 if quick() else 5
    secs = (1.0 if quick() else 3.0) / reps
    if case_enabled("queue.oneway_64B"):
        v = [one_way(SMALL, secs) for _ in range(reps)]
        result("queue.oneway_64B", "msgs_per_s", statistics.median(v))
    if case_enabled("queue.rtt_64B"):
        pp = [ping_pong(secs) for _ in range(reps)]
        result("queue.rtt_64B", "rtt_p50_us", statistics.median(x[0] for x in pp))
        result("queue.rtt_64B", "rtt_p99_us", statistics.median(x[1] for x in pp))
    if case_enabled("queue.bulk_1MiB"):
        v = [one_way(BIG, secs) * BIG / 1e9 for _ in range(reps)]
        result("queue.bulk_1MiB", "gbytes_per_s", statistics.median(v))
    if case_enabled("queue.mpmc_64B"):
        v = [mpmc(secs) for _ in range(reps)]
        result("queue.mpmc_64B", "msgs_per_s", statistics.median(v))
    if case_enabled("queue.batch_64B"):
        print("LEFTOUT bench=queue.batch_64B impl=%s reason=multiprocessing.Queue "
              "has no batched put or get" % IMPL)
    if case_enabled("queue.wake_64B"):
        v = [wake(secs) for _ in range(reps)]
        result("queue.wake_64B", "latency_p50_us", statistics.median(v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
