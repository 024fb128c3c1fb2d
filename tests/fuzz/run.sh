#!/bin/sh
# Runs every libFuzzer target in BUILD_FUZZ_DIR for SECONDS each, starting
# from the seed corpus in tests/fuzz/corpus/<target>/ (read only). New
# inputs and crash files go to BUILD_FUZZ_DIR/work/, never into the
# repository. Fails when a target crashes or finds a leak.
# Usage: tests/fuzz/run.sh BUILD_FUZZ_DIR SECONDS
set -eu
dir=$(cd "$1" && pwd)
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
ran=0
for exe in "$dir"/fuzz_*; do
    [ -x "$exe" ] || continue
    name=$(basename "$exe")
    work="$dir/work/$name"
    mkdir -p "$work/corpus" "$work/crashes"
    seeds="$here/corpus/$name"
    echo "== fuzz $name for ${secs}s"
    # cwd in the work dir: anything libFuzzer writes lands there.
    if ! (cd "$work" && "$exe" -max_total_time="$secs" -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$work/crashes/" "$work/corpus" "$seeds"); then
        echo "fuzz: $name failed; inputs in $work/crashes" >&2
        exit 1
    fi
    ran=$((ran + 1))
done
if [ "$ran" -eq 0 ]; then
    echo "fuzz: no targets in $dir" >&2
    exit 1
fi
