#!/usr/bin/env python3
"""Reads RESULT lines on stdin and prints, per bench and metric, every impl
with its value and how many times faster or slower the mproc impl measured
in the same run is. Metrics ending in _us or _ns, starting with ns_ or
us_per_, named ms, or naming a latency are lower-better; the others
higher-better."""
import re
import sys
from collections import OrderedDict

LINE = re.compile(r"^RESULT bench=(\S+) impl=(\S+) metric=(\S+) value=(\S+)$")


def lower_is_better(metric):
    return (metric.endswith("_us") or metric.endswith("_ns") or metric.startswith("ns_")
            or metric.startswith("us_per_") or metric == "ms" or "latency" in metric)


def main():
    rows = OrderedDict()
    for line in sys.stdin:
        m = LINE.match(line.strip())
        if not m:
            continue
        bench, impl, metric, value = m.groups()
        rows.setdefault((bench, metric), OrderedDict())[impl] = float(value)
    if not rows:
        print("report: no RESULT lines", file=sys.stderr)
        return 1
    print("%-34s %-18s %-20s %14s %12s" % ("bench", "metric", "impl", "value", "mproc is"))
    for (bench, metric), impls in rows.items():
        ours = next((v for k, v in impls.items() if k.startswith("mproc")), None)
        for impl, value in impls.items():
            if ours is None or impl.startswith("mproc") or value == 0 or ours == 0:
                ratio = ""
            elif lower_is_better(metric):
                ratio = "%.2fx faster" % (value / ours) if value >= ours else "%.2fx slower" % (ours / value)
            else:
                ratio = "%.2fx faster" % (ours / value) if ours >= value else "%.2fx slower" % (value / ours)
            print("%-34s %-18s %-20s %14.6g %12s" % (bench, metric, impl, value, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
