#!/bin/sh
# Debian packages the headless Kivy tests need (tests/ui): Mesa software OpenGL/EGL for
# SDL_VIDEODRIVER=offscreen, plus xvfb/xauth for `xvfb-run` as a fallback, and the fonts the app
# falls back to for emoji (Symbola: monochrome, which Kivy can draw), CJK (Droid fallback) and
# Arabic/Hebrew (DejaVu Sans) - the same files a Raspberry Pi OS desktop can install.
# Idempotent and quiet: does nothing when every package is already installed.
set -eu

PACKAGES="xvfb xauth libgl1 libegl1 libgl1-mesa-dri libegl-mesa0 fonts-symbola fonts-droid-fallback fonts-dejavu-core"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086  # word splitting of the package list is intended
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-ui-deps: installed$missing"
