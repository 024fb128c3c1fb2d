#!/bin/sh
# Installs what building, testing, fuzzing and benchmarking mproc need on
# Debian 12, and only what is missing. Runs as root, or through sudo.
set -eu

PACKAGES="build-essential cmake pkg-config check clang clang-format llvm
libclang-rt-14-dev libzmq3-dev libhiredis-dev python3"
# The manager's tests and benchmarks run a real Redis server, and drive the
# manager with redis-cli.
PACKAGES="$PACKAGES redis-server redis-tools"
# Optional for the library: function names, files and lines in a failing
# child's backtrace.
PACKAGES="$PACKAGES libdw-dev"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "setup-debian: need root or sudo to install:$missing" >&2
    exit 1
fi
echo "setup-debian: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
