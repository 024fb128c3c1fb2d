#!/bin/sh
# make bench: runs every benchmark group (or ONLY=<group>), C programs and
# their Python peers in the same script run, then prints the table with
# ratios. Usage: bench/run.sh BUILD_BENCH_DIR [GROUP] [QUICK]
set -eu
dir=$1
only=${2:-}
quick=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
[ -n "$quick" ] && export MPROC_BENCH_QUICK=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

ran=0
for exe in "$dir"/bench_*; do
    [ -x "$exe" ] || continue
    group=$(basename "$exe" | sed 's/^bench_//')
    [ -n "$only" ] && [ "$only" != "$group" ] && continue
    echo "== bench group $group"
    # A peer library that wedges must not hang the run: bound each group.
    timeout 900 "$exe" | tee -a "$out" || echo "bench: group $group failed or timed out" >&2
    if [ -f "$here/py/$group.py" ] && command -v python3 >/dev/null 2>&1; then
        # -P: the script's folder is not put on sys.path, so that a peer
        # named after a module (py/queue.py) does not hide the standard
        # library's from the others.
        timeout 600 python3 -P "$here/py/$group.py" | tee -a "$out" ||
            echo "bench: python peers of $group failed or timed out" >&2
    fi
    ran=$((ran + 1))
done
if [ "$ran" -eq 0 ]; then
    echo "bench: no benchmark group matched '${only}'" >&2
    exit 1
fi
echo
python3 "$here/report.py" < "$out"
