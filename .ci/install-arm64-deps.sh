#!/bin/sh
# What the emulated-arm64 tests (tests/arm64) need from Debian: qemu user-mode emulation.
# The arm64 Python itself comes from Debian's arm64 packages, fetched and unpacked by the tests
# (tests/arm64/sysroot.py, cached in ~/.cache/edge-sdk/arm64); binfmt_misc is registered at test time
# (it does not survive a reboot). Idempotent and quiet.
set -eu
dpkg-query -W -f='${Status}' qemu-user-static 2>/dev/null | grep -q "install ok installed" && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
echo "install-arm64-deps: installed qemu-user-static"
