#!/usr/bin/env bash
# Installs what the aarch64 cross build and its tests need on a Debian 12 x86-64 host:
# Debian's cross compiler, qemu-user to run the arm64 test programs, and the arm64 builds of
# the libraries Tessera links against, as multi-arch packages.
# Idempotent and quiet when everything is present; works as root or through sudo. Exit
# status 1 when something is missing and cannot be installed (scripts/test-arm64.sh then skips).
#
# Multi-arch: `dpkg --add-architecture arm64` lets apt install arm64 packages beside the host's
# from the same mirror. Their libraries go to /usr/lib/aarch64-linux-gnu, which the cross
# compiler searches, and their headers to /usr/include, shared with the host's copies: that
# works for packages marked "Multi-Arch: same" (libhwy-dev is), whose files are identical for
# every architecture, so no separate sysroot is needed. doctest is header-only and
# architecture-independent (the host's doctest-dev serves).
#
# Two arm64 C libraries end up here: the cross compiler's (libc6-arm64-cross, in
# /usr/aarch64-linux-gnu), which the build links against, and the multi-arch one
# (libc6:arm64, in /lib/aarch64-linux-gnu), which libhwy1:arm64 pulls in. A process must load
# the loader and libc.so of one build (mixing them hangs at the first thread), so the tests
# run under qemu with no -L prefix, on the multi-arch loader and libraries: hence
# libgomp1:arm64 (the cross compiler's libgomp sits beside the other C library).
set -euo pipefail

packages=(
    g++-aarch64-linux-gnu  # the cross compiler, with the arm64 libstdc++, libgomp, libc
    qemu-user              # qemu-aarch64: runs the arm64 tests on this host
    libhwy-dev:arm64       # Highway for arm64 (headers shared with the host's libhwy-dev)
    libgomp1:arm64         # OpenMP at run time, beside the multi-arch C library
    doctest-dev            # the tests' framework, header-only
    cmake
    ninja-build
    pkg-config
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "setup-arm64: missing ${missing[*]}, and not root and no password-less sudo to install them" >&2
    exit 1
fi

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "setup-arm64: adding the arm64 architecture to dpkg"
    "${sudo[@]}" dpkg --add-architecture arm64
fi
echo "setup-arm64: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
