#!/bin/sh
# Usage: check-install.sh relocate|make BUILD_DIR CONSUMER_SRC_DIR CC SOURCE_DIR
#
# relocate  installs BUILD_DIR with `cmake --install --prefix`, moves the tree
#           (the install must be relocatable), checks what it holds, and builds
#           and runs a tiny consumer against it through pkg-config (shared and
#           static) and through find_package(mproc).
# make      runs the README's `make install PREFIX=...`, and again with
#           DESTDIR, checks what each installed where, and runs consumers that
#           find the library the ways the README names (an rpath, CMake's).
#           It runs the Makefile's own recipe on the Makefile's build tree, so
#           it is skipped (exit 77) for any other BUILD_DIR.
set -eu
mode=$1
build=$2
src=$3
cc=$4
root=$5
work=$(mktemp -d "${TMPDIR:-/tmp}/mproc-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
    echo "install: $*" >&2
    exit 1
}

# check_layout PREFIX: every file the README promises is under PREFIX.
check_layout() {
    p=$1
    for f in include/mproc.h bin/mproc; do
        [ -f "$p/$f" ] || fail "$p/$f is missing"
    done
    for h in "$root"/include/mproc/*.h; do
        [ -f "$p/include/mproc/${h##*/}" ] || fail "header ${h##*/} is missing"
    done
    for f in libmproc.a libmproc.so.0 pkgconfig/mproc.pc cmake/mproc/mprocConfig.cmake; do
        [ -n "$(find "$p" -path "*/lib*/$f")" ] || fail "$f is missing under $p"
    done
    for d in "$root"/docs/*.md "$root/README.md" "$root/LICENSE"; do
        [ -f "$p/share/doc/mproc/${d##*/}" ] || fail "share/doc/mproc/${d##*/} is missing"
    done
    # The .pc file describes the library as it is: no module that the
    # README's table still calls planned.
    pc=$(find "$p" -name mproc.pc)
    desc=$(sed -n 's/^Description: //p' "$pc")
    for m in $(sed -n 's/^| `mproc\/\([a-z_]*\)\.h` .*| planned |$/\1/p' "$root/README.md"); do
        if printf '%s\n' "$desc" | grep -qi "$m"; then
            fail "mproc.pc advertises '$m', which the README lists as planned: $desc"
        fi
    done
}

if [ "$mode" = relocate ]; then
    cmake --install "$build" --prefix "$work/first" >/dev/null
    # Relocatable: the files must work from wherever the tree is moved.
    mv "$work/first" "$work/prefix"
    prefix=$work/prefix
    check_layout "$prefix"

    pc=$(find "$prefix" -name mproc.pc | head -n 1)
    export PKG_CONFIG_PATH="${pc%/*}"

    # pkg-config, shared library.
    # shellcheck disable=SC2046
    "$cc" -o "$work/with_pc" "$src/consumer.c" $(pkg-config --cflags --libs mproc)
    LD_LIBRARY_PATH=$(pkg-config --variable=libdir mproc) "$work/with_pc"

    # pkg-config, static library.
    libdir=$(pkg-config --variable=libdir mproc)
    # shellcheck disable=SC2046
    "$cc" -o "$work/with_pc_static" "$src/consumer.c" $(pkg-config --cflags mproc) \
        "$libdir/libmproc.a" $(pkg-config --static --libs-only-l mproc | sed 's/-lmproc//') -pthread
    "$work/with_pc_static"

    # CMake package.
    cmake -S "$src" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_C_COMPILER="$cc" >/dev/null
    cmake --build "$work/cmake-build" >/dev/null
    LD_LIBRARY_PATH=$libdir "$work/cmake-build/consumer"

    # The shared library carries its SONAME.
    so=$(find "$prefix" -name 'libmproc.so.*' | head -n 1)
    objdump -p "$so" | grep -q 'SONAME *libmproc.so.0' || fail "no SONAME"
    echo "install: relocated tree complete; pkg-config (shared, static) and find_package consumers ran"
    exit 0
fi

[ "$mode" = make ] || fail "unknown mode '$mode'"
if [ "$(cd "$build" && pwd -P)" != "$(cd "$root/build/default" 2>/dev/null && pwd -P)" ]; then
    echo "install: make install installs build/default, not $build: skipped" >&2
    exit 77
fi
# The Makefile's install recipe alone (-o: setup and build are taken as
# done, so a running test never installs packages or rebuilds its own
# tree), as a user would call it; without the caller's make state.
make_install() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
        make -C "$root" -o setup -o build install "$@" >"$work/make.log" 2>&1 ||
        { cat "$work/make.log" >&2; fail "make install $* failed"; }
}

# Staged first: a Makefile that ignored PREFIX would still stage into the
# test's directory, not install into the system's /usr/local.
make_install PREFIX=/opt/mproc-staged DESTDIR="$work/stage"
[ "$(ls "$work/stage")" = opt ] || fail "DESTDIR holds $(ls "$work/stage"), not the prefix /opt/mproc-staged"
check_layout "$work/stage/opt/mproc-staged"

make_install PREFIX="$work/mk"
check_layout "$work/mk"

# A program finds the library under a custom prefix as the README says:
# PKG_CONFIG_PATH to build, an rpath to run (no LD_LIBRARY_PATH here).
pc=$(find "$work/mk" -name mproc.pc)
export PKG_CONFIG_PATH="${pc%/*}"
libdir=$(pkg-config --variable=libdir mproc)
# shellcheck disable=SC2046
"$cc" -o "$work/with_rpath" "$src/consumer.c" $(pkg-config --cflags --libs mproc) \
    -Wl,-rpath,"$libdir"
env -u LD_LIBRARY_PATH "$work/with_rpath"
# CMAKE_PREFIX_PATH to build; CMake itself puts the library's directory in
# the rpath of a program in its build tree.
cmake -S "$src" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/mk" \
    -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
env -u LD_LIBRARY_PATH "$work/cmake-build/consumer"
echo "install: make install PREFIX= and DESTDIR= complete; rpath and find_package consumers ran"
