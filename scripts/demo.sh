#!/bin/sh
# make demo: runs every example with a line on what it shows.
set -eu
dir=${1:-build/default/examples}
run() {
    name=$1; shift
    if [ ! -x "$dir/$name" ]; then
        echo "demo: $dir/$name is missing (build first)" >&2
        exit 1
    fi
    printf '\n== %s: %s\n' "$name" "$*"
    "$dir/$name"
}
if [ -f "$(dirname "$0")/demo.list" ]; then
    while IFS='|' read -r name text; do
        case "$name" in ''|'#'*) continue ;; esac
        run "$name" "$text"
    done < "$(dirname "$0")/demo.list"
fi
printf '\n== demo finished\n'
