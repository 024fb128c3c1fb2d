#!/bin/sh
# Usage: quiet.sh COMMAND [ARGS...]
# Runs COMMAND with its output held back: nothing is shown when it succeeds;
# when it fails, all of its output (errors included) goes to stderr, then
# the command, and quiet.sh exits with its status.
set -u
log=$(mktemp "${TMPDIR:-/tmp}/mproc-quiet.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
"$@" >"$log" 2>&1
rc=$?
if [ "$rc" -ne 0 ]; then
    cat "$log" >&2
    echo "failed (exit $rc): $*" >&2
fi
exit "$rc"
