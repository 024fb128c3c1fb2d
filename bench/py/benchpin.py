"""CPU pinning for the Python peers: the two sides of a case run on
different CPUs, as the C benchmarks' do (bench_pin_cpu). CPUS are the CPUs
the script had before any pin: a child forked from a pinned parent inherits
its one CPU and must not choose among that alone. Also the case selection
the C drivers share (bench_case_enabled)."""
import os

try:
    CPUS = sorted(os.sched_getaffinity(0))
except (AttributeError, OSError):
    CPUS = []


def pin(cpu, pid=0):
    """Pins process pid (0: the caller) to CPUS[cpu % len(CPUS)] when there
    are two or more, and returns the one CPU it is now allowed on, or -1
    when it is not confined to a single CPU."""
    try:
        if len(CPUS) >= 2:
            os.sched_setaffinity(pid, {CPUS[cpu % len(CPUS)]})
        mask = os.sched_getaffinity(pid)
    except (AttributeError, OSError):
        return -1
    return next(iter(mask)) if len(mask) == 1 else -1


def case_enabled(bench):
    """True when the case bench ("queue.wake_64B") was selected:
    MPROC_BENCH_CASES unset or empty, or a comma list that names it."""
    lst = os.environ.get("MPROC_BENCH_CASES", "")
    return not lst or bench in lst.split(",")
