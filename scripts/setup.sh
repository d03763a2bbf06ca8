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
    libdnnl-dev       # oneDNN matmul: BF16 prompts on the AMX tiles of CPUs that have them
    clang             # libFuzzer target, sanitizer builds
    libclang-rt-dev   # clang's sanitizer and fuzzer runtimes
    libvulkan-dev     # the Vulkan backend: headers and loader
    glslc             # its shaders, GLSL to SPIR-V at build time
    mesa-vulkan-drivers       # lavapipe: a Vulkan driver on the CPU, for the Vulkan tests
    vulkan-validationlayers   # the Khronos validation layer, for the Vulkan tests
    python3           # test helpers (JSON checks), model download (scripts/get-model.sh)
    python3-pip
    python3-venv      # the server tests' virtual environment (the openai client)
    libcpp-httplib-dev  # tessera serve: HTTP
    nlohmann-json3-dev  # tessera serve: JSON
    ca-certificates
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
# The server tests drive tessera serve with the official OpenAI Python client, installed
# from the Python package index into a virtual environment of its own.
venv=${XDG_CACHE_HOME:-$HOME/.cache}/tessera/venv
openai_version=3.57.0
setup_venv() {
    [ "${TESSERA_SKIP_VENV:-0}" = 1 ] && return 0
    if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$openai_version')" 2>/dev/null; then
        return 0
    fi
    echo "setup: the openai client $openai_version in $venv (for the server tests)"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q "openai==$openai_version" ||
        echo "warning: could not install the openai client; the server tests use raw HTTP only" >&2
}

if [ ${#missing[@]} -eq 0 ]; then
    setup_venv
    exit 0
fi

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
setup_venv
