"""Python peer of bench/bench_log.c: logging.FileHandler (append mode, one
flush per record) with the same format, by one process and by 4 processes
at once, and calls filtered out by the level. Prints RESULT lines; every
written file is read back and every record checked."""
import logging
import multiprocessing
import os
import re
import statistics
import sys
import time

FORMAT = "%(asctime)s %(process)d %(levelname)-8s %(message)s"
PROCS = 4
BATCH = 256
QUICK = os.environ.get("MPROC_BENCH_QUICK", "") not in ("", "0")
SECONDS = 1.0 if QUICK else 3.0
REPEATS = 3 if QUICK else 5
PATH = "/tmp/mproc-bench-log-py-%d.log" % os.getpid()
LINE = re.compile(r"^\S+ \S+ (\d+) INFO     seq=(\d+) check=(\d+) the quick brown fox$")


def check_of(i):
    return (i * 2654435761) % 1000003


def make_logger(level):
    lg = logging.getLogger("bench-%d" % os.getpid())
    lg.handlers.clear()
    lg.propagate = False
    lg.setLevel(level)
    h = logging.FileHandler(PATH, mode="a")
    h.setFormatter(logging.Formatter(FORMAT))
    lg.addHandler(h)
    return lg, h


def writer(seconds, out):
    lg, h = make_logger(logging.INFO)
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(BATCH):
            lg.info("seq=%d check=%d the quick brown fox", n, check_of(n))
            n += 1
    h.close()
    out.put(n)


def verify(writers):
    nxt = {}
    lines = 0
    with open(PATH) as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m or not line.endswith("\n"):
                sys.exit("log.py: damaged line %r" % line)
            pid, seq, check = (int(x) for x in m.groups())
            if check != check_of(seq) or seq != nxt.get(pid, 0):
                sys.exit("log.py: bad record %r" % line)
            nxt[pid] = seq + 1
            lines += 1
    if len(nxt) > writers:
        sys.exit("log.py: too many writers")
    return lines


def measure(writers, seconds):
    open(PATH, "w").close()
    q = multiprocessing.Queue()
    t0 = time.perf_counter()
    ps = [multiprocessing.Process(target=writer, args=(seconds, q)) for _ in range(writers)]
    for p in ps:
        p.start()
    total = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
        if p.exitcode != 0:
            sys.exit("log.py: a writer failed")
    elapsed = time.perf_counter() - t0
    if verify(writers) != total:
        sys.exit("log.py: records lost")
    os.unlink(PATH)
    return elapsed * 1e9 / total


def measure_filtered(seconds):
    lg, h = make_logger(logging.WARNING)
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(BATCH):
            lg.debug("seq=%d check=%d the quick brown fox", n, check_of(n))
            n += 1
    elapsed = time.perf_counter() - t0
    h.close()
    if verify(1) != 0:
        sys.exit("log.py: a filtered record was written")
    os.unlink(PATH)
    return elapsed * 1e9 / n


def result(bench, value):
    print("RESULT bench=%s impl=python_logging metric=ns_per_record value=%.1f" % (bench, value))
    sys.stdout.flush()


def main():
    multiprocessing.set_start_method("fork")
    for bench, writers in (("log.file_1proc", 1), ("log.file_4proc", PROCS)):
        result(bench, statistics.median(measure(writers, SECONDS / REPEATS) for _ in range(REPEATS)))
    result("log.filtered", statistics.median(measure_filtered(SECONDS / REPEATS) for _ in range(REPEATS)))


if __name__ == "__main__":
    main()
