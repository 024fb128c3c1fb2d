#!/bin/sh
# Usage: check-install.sh BUILD_DIR CONSUMER_SRC_DIR CC
set -eu
build=$1
src=$2
cc=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/mproc-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/first" >/dev/null
# Relocatable: the files must work from wherever the tree is moved.
mv "$work/first" "$work/prefix"
prefix=$work/prefix

pc=$(find "$prefix" -name mproc.pc | head -n 1)
[ -n "$pc" ] || { echo "no mproc.pc installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")

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
objdump -p "$so" | grep -q 'SONAME *libmproc.so.0' || { echo "no SONAME" >&2; exit 1; }
echo "install: pkg-config (shared, static) and find_package consumers ran"
