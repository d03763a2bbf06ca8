#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing Tessera needs.
# Idempotent and quiet when everything is present; works as root or through sudo.
set -euo pipefail

packages=(
    build-essential   # g++ 12, make
    cmake             # >= 3.25
    ninja-build
    pkg-config
    doctest-dev       # unit tests
    libhwy-dev        # Highway: the CPU kernels' run-time SIMD dispatch
    libopenblas-dev   # sgemm for prompts on float weights on CPUs without AVX-512
    clang             # libFuzzer target, sanitizer builds
    libclang-rt-dev   # clang's sanitizer and fuzzer runtimes
    libvulkan-dev     # the Vulkan backend: headers and loader
    glslc             # its shaders, GLSL to SPIR-V at build time
    mesa-vulkan-drivers       # lavapipe: a Vulkan driver on the CPU, for the Vulkan tests
    vulkan-validationlayers   # the Khronos validation layer, for the Vulkan tests
    python3           # test helpers (JSON checks), model download (scripts/get-model.sh)
    python3-pip
    ca-certificates
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null; then
    sudo=(sudo)
else
    echo "error: packages missing (${missing[*]}) and not root, and no sudo to install them" >&2
    exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
