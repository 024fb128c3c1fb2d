#!/bin/sh
# Checks that README.md describes the tree as it is: its C example is
# examples/readme_hello.c, every mproc_* name it uses is declared in a
# public header, its table of modules lists every header (and no planned
# one that exists), and every make target, CMake preset and file it names
# exists. Usage: sh scripts/check-readme.sh [SOURCE_DIR]
set -eu
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
readme=$root/README.md
bad=0
fail() {
    echo "check-readme: $*" >&2
    bad=1
}

# The example, from its first #include on, as the README shows it (blank
# lines aside: the file's includes are grouped by clang-format).
example=$root/examples/readme_hello.c
shown=$(sed -n '/^```c$/,/^```$/p' "$readme" | sed '1d;$d' | sed -n '/^#include/,$p' | grep -v '^$')
kept=$(sed -n '/^#include/,$p' "$example" | sed 's/^#include "mproc.h"$/#include <mproc.h>/' | grep -v '^$')
[ "$shown" = "$kept" ] || fail "the C example differs from examples/readme_hello.c"
# The line its output names is the line of the mproc_fail() call.
said=$(sed -n 's/.*examples\/readme_hello\.c:\([0-9]*\).*/\1/p' "$readme" | head -n 1)
line=$(grep -n 'mproc_fail(' "$example" | head -n 1 | cut -d: -f1)
[ "$said" = "$line" ] || fail "README says readme_hello.c:$said, mproc_fail() is on line $line"

# Every mproc_* name (not a CMake target mproc::...) is in a public header.
for name in $(grep -o '[:a-z_]*mproc_[a-z0-9_]*' "$readme" | grep -v '::' | sort -u); do
    grep -rqw -- "$name" "$root/include" || fail "$name is not declared in include/"
done

# The table of modules: every header has a row; a row is planned exactly
# when its header does not exist.
for h in "$root"/include/mproc/*.h; do
    grep -q "^| \`mproc/${h##*/}\` |" "$readme" || fail "mproc/${h##*/} is missing from the table of modules"
done
sed -n 's/^| `mproc\/\([a-z_]*\.h\)` |.*| \([a-z]*\) |$/\1 \2/p' "$readme" |
    while read -r h state; do
        if [ -f "$root/include/mproc/$h" ]; then
            [ "$state" != planned ] || echo "mproc/$h exists but is listed as planned"
        else
            [ "$state" = planned ] || echo "mproc/$h is listed as $state but does not exist"
        fi
    done >"${TMPDIR:-/tmp}/check-readme.$$"
if [ -s "${TMPDIR:-/tmp}/check-readme.$$" ]; then
    fail "$(cat "${TMPDIR:-/tmp}/check-readme.$$")"
fi
rm -f "${TMPDIR:-/tmp}/check-readme.$$"

# Make targets, presets and files it names.
for t in $(grep -o 'make [a-z]*' "$readme" | cut -d' ' -f2 | sort -u); do
    grep -q "^$t:" "$root/Makefile" || fail "make $t: no such target in the Makefile"
done
for p in $(grep -o -- '--preset [a-z-]*' "$readme" | cut -d' ' -f2 | sort -u); do
    grep -q "\"name\": \"$p\"" "$root/CMakePresets.json" || fail "no CMake preset '$p'"
done
for f in $(grep -o '`\(\.ci\|scripts\|examples\|docs\|tests\|include\)/[A-Za-z0-9_./-]*`' "$readme" | tr -d '`' | sort -u); do
    [ -e "$root/$f" ] || fail "$f does not exist"
done

[ "$bad" -eq 0 ] || exit 1
echo "check-readme: README.md matches the tree"
