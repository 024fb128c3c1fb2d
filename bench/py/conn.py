#!/usr/bin/env python3
"""The Python peer of bench_conn: multiprocessing.Pipe with send_bytes and
recv_bytes. 64-byte messages one way (msgs_per_s), 64-byte ping-pong
(rtt_p50_us, rtt_p99_us), 1 MiB messages one way (gbytes_per_s). Every
message is checked. Producer and consumer on different CPUs when possible.
Prints the same RESULT lines as the C benchmarks."""
import multiprocessing as mp
import os
import statistics
import struct
import sys
import time

# The helpers beside this script, found after the standard library (run.sh
# runs the peers with -P, so that py/queue.py hides nothing).
sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from benchpin import CPUS, case_enabled, pin  # noqa: E402

IMPL = "python_mp_pipe"
SMALL = 64
BIG = 1 << 20
END = 0xFFFFFFFFFFFFFFFF


def quick():
    q = os.environ.get("MPROC_BENCH_QUICK", "")
    return q not in ("", "0")


def enabled():
    lst = os.environ.get("MPROC_BENCH_IMPLS", "")
    return not lst or IMPL in lst.split(",")


def payload(i, size, pad):
    return struct.pack("<Q", i) + pad[: size - 8]


def producer(w, size, stop):
    pin(0)
    pad = bytes((k * 131 + 13) & 0xFF for k in range(size))
    i = 0
    while True:
        if (i & 255) == 0 and stop.is_set():
            break
        w.send_bytes(payload(i, size, pad))
        i += 1
    w.send_bytes(struct.pack("<Q", END) + pad[: size - 8])
    w.close()


def one_way(size, secs):
    r, w = mp.Pipe(duplex=False)
    stop = mp.Event()
    p = mp.Process(target=producer, args=(w, size, stop))
    p.start()
    w.close()
    pin(1)
    pad = bytes((k * 131 + 13) & 0xFF for k in range(size))
    n = counted = 0
    t0 = t1 = 0.0
    while True:
        m = r.recv_bytes()
        (tag,) = struct.unpack_from("<Q", m)
        if tag == END:
            break
        if tag != n or len(m) != size or m[8:] != pad[: size - 8]:
            sys.exit("python_mp_pipe: message %d damaged" % n)
        n += 1
        if n == 1:
            t0 = time.perf_counter()
        elif t1 == 0.0 and time.perf_counter() - t0 >= secs:
            t1 = time.perf_counter()
            counted = n - 1
            stop.set()
    p.join()
    r.close()
    return counted / (t1 - t0)


def echoer(c):
    pin(0)
    while True:
        m = c.recv_bytes()
        c.send_bytes(m)
        if struct.unpack_from("<Q", m)[0] == END:
            break
    c.close()


def ping_pong(secs):
    a, b = mp.Pipe()
    p = mp.Process(target=echoer, args=(b,))
    p.start()
    b.close()
    pin(1)
    pad = bytes((k * 131 + 13) & 0xFF for k in range(SMALL))
    rtts = []
    t0 = time.perf_counter()
    i = 0
    while True:
        m = payload(i, SMALL, pad)
        s = time.perf_counter_ns()
        a.send_bytes(m)
        got = a.recv_bytes()
        e = time.perf_counter_ns()
        if got != m:
            sys.exit("python_mp_pipe: reply %d damaged" % i)
        if i >= 100:
            rtts.append((e - s) / 1000.0)
        i += 1
        if (i & 63) == 0 and time.perf_counter() - t0 >= secs:
            break
    a.send_bytes(struct.pack("<Q", END) + pad[:SMALL - 8])
    a.recv_bytes()
    p.join()
    a.close()
    rtts.sort()
    return rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]


def result(bench, metric, value):
    print("RESULT bench=%s impl=%s metric=%s value=%.6g" % (bench, IMPL, metric, value))
    sys.stdout.flush()


def main():
    if not enabled():
        return 0
    mp.set_start_method("fork")
    reps = 3 if quick() else 5
    secs = (1.0 if quick() else 3.0) / reps
    if case_enabled("conn.oneway_64B"):
        v = [one_way(SMALL, secs) for _ in range(reps)]
        result("conn.oneway_64B", "msgs_per_s", statistics.median(v))
    if case_enabled("conn.pingpong_64B"):
        pp = [ping_pong(secs) for _ in range(reps)]
        result("conn.pingpong_64B", "rtt_p50_us", statistics.median(x[0] for x in pp))
        result("conn.pingpong_64B", "rtt_p99_us", statistics.median(x[1] for x in pp))
    if case_enabled("conn.oneway_1MiB"):
        v = [one_way(BIG, secs) * BIG / 1e9 for _ in range(reps)]
        result("conn.oneway_1MiB", "gbytes_per_s", statistics.median(v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
