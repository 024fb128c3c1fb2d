#!/bin/sh
# CI: `make demo` in a fresh copy of this tree (no build directory) builds
# only the library and the examples, shows no build output, names each
# example's source file, and runs every example; a build that fails shows
# its errors. Usage: sh scripts/check-demo.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mproc-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 129' HUP INT PIPE TERM
fail() {
    echo "check-demo: $*" >&2
    exit 1
}

# The tree as git sees it (tracked and new files, not ignored ones).
(cd "$root" && git ls-files -z --cached --others --exclude-standard) |
    (cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) |
    (cd "$work" && tar -xf -)
[ -f "$work/Makefile" ] || fail "could not copy the tree"

make_demo() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$work" --no-print-directory demo
}
make_demo >"$work/out" 2>&1 || { cat "$work/out" >&2; fail "make demo failed"; }
cat "$work/out"

# Nothing but the one line that says what is built comes before the first
# example: no configure or make output.
before=$(sed -n '/^== examples\//q;/^$/d;p' "$work/out")
[ "$before" = "== building the library and the examples in build/default" ] ||
    fail "make demo printed build output before the first example:
$before"
# Only the library and the examples were built.
tests=$(find "$work/build/default/tests" -type f -perm -u+x -name 'test_*' 2>/dev/null || true)
[ -z "$tests" ] || fail "make demo built the tests: $tests"
# Every example is shown, under its source file.
for src in "$work"/examples/*.c; do
    grep -q "^== examples/${src##*/}: " "$work/out" ||
        fail "examples/${src##*/} is not in the demo (scripts/demo.list)"
done
grep '^== examples/' "$work/out" | sed 's/^== \([^:]*\):.*/\1/' | while read -r f; do
    [ -f "$work/$f" ] || fail "the demo names $f, which does not exist"
done
grep -q '^== demo finished$' "$work/out" || fail "the demo did not finish"

# A build that fails shows why.
echo '#error check-demo-broken-example' >>"$work/examples/barrier.c"
if make_demo >"$work/out" 2>&1; then
    fail "make demo succeeded with a broken example"
fi
grep -q 'check-demo-broken-example' "$work/out" ||
    fail "make demo hid the compiler's error:
$(cat "$work/out")"
echo "check-demo: make demo built the library and the examples only, quietly, and named every source"
