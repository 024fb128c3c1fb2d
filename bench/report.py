#!/usr/bin/env python3
"""Reads RESULT lines on stdin and prints, per bench and metric, every impl
with its value and how many times faster or slower the reference measured
in the same run is: the first impl of that bench and metric whose name
starts with mproc (every other impl, other mproc ones too, gets a ratio
against it). Metrics ending in _us or _ns, starting with ns_ or us_per_,
named ms, or naming a latency are lower-better; the others higher-better.
LEFTOUT lines (LEFTOUT bench=<bench> impl=<impl> reason=<text>) say which
impl sat a bench out and why; they are listed after that bench's rows."""
import re
import sys
from collections import OrderedDict

LINE = re.compile(r"^RESULT bench=(\S+) impl=(\S+) metric=(\S+) value=(\S+)$")
LEFT = re.compile(r"^LEFTOUT bench=(\S+) impl=(\S+) reason=(.*)$")
ROW = "%-34s %-18s %-20s %14s %12s"


def lower_is_better(metric):
    return (metric.endswith("_us") or metric.endswith("_ns") or metric.startswith("ns_")
            or metric.startswith("us_per_") or metric == "ms" or "latency" in metric)


def ratio(metric, ours, value):
    if lower_is_better(metric):
        return "%.2fx faster" % (value / ours) if value >= ours else "%.2fx slower" % (ours / value)
    return "%.2fx faster" % (ours / value) if ours >= value else "%.2fx slower" % (value / ours)


def main():
    rows = OrderedDict()
    left = OrderedDict()
    for line in sys.stdin:
        line = line.strip()
        m = LINE.match(line)
        if m:
            bench, impl, metric, value = m.groups()
            rows.setdefault((bench, metric), OrderedDict())[impl] = float(value)
            continue
        m = LEFT.match(line)
        if m:
            bench, impl, reason = m.groups()
            left.setdefault(bench, OrderedDict())[impl] = reason
    if not rows:
        print("report: no RESULT lines", file=sys.stderr)
        return 1

    def print_left(bench):
        for impl, reason in left.pop(bench, {}).items():
            print("%-34s %-18s %-20s left out: %s" % (bench, "-", impl, reason))

    print(ROW % ("bench", "metric", "impl", "value", "mproc is"))
    keys = list(rows)
    for n, (bench, metric) in enumerate(keys):
        impls = rows[(bench, metric)]
        ref = next((k for k in impls if k.startswith("mproc")), None)
        ours = impls[ref] if ref is not None else None
        for impl, value in impls.items():
            if ours is None or impl == ref or value == 0 or ours == 0:
                r = ""
            else:
                r = ratio(metric, ours, value)
            print(ROW % (bench, metric, impl, "%.6g" % value, r))
        if n + 1 == len(keys) or keys[n + 1][0] != bench:
            print_left(bench)
    for bench in list(left):
        print_left(bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
