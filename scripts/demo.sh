#!/bin/sh
# make demo: runs every example in demo.list, each under a line that names
# its source file and says what it shows.
set -eu
dir=${1:-build/default/examples}
list="$(dirname "$0")/demo.list"
run() {
    name=$1
    shift
    if [ ! -x "$dir/$name" ]; then
        echo "demo: $dir/$name is missing (build first)" >&2
        exit 1
    fi
    printf '\n== examples/%s.c: %s\n' "$name" "$*"
    "$dir/$name" || {
        rc=$?
        echo "demo: examples/$name.c exited with status $rc" >&2
        exit "$rc"
    }
}
while IFS='|' read -r name text; do
    case "$name" in '' | '#'*) continue ;; esac
    run "$name" "$text"
done <"$list"
printf '\n== demo finished\n'
