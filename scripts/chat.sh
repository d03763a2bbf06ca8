#!/usr/bin/env bash
# The main job from a fresh machine: install what is missing, build the tessera command,
# fetch the default model (SmolLM2-135M-Instruct) and start a chat with it.
# Arguments go to `tessera chat` (e.g. -m OTHER.gguf, --system "...", -t 4).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${TESSERA_JOBS:-$(nproc)}

bash scripts/setup.sh
if [ ! -x build/tessera ] || [ -n "$(find cli runtime tensor backends models include CMakeLists.txt -newer build/tessera -print -quit 2>/dev/null)" ]; then
    echo "chat: building tessera (build/) ..." >&2
    mkdir -p build
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >build/configure.log 2>&1 ||
        { cat build/configure.log >&2; exit 1; }
    cmake --build build -j "$jobs" --target tessera-cli >build/build.log 2>&1 || { tail -40 build/build.log >&2; exit 1; }
fi
model_args=()
if ! printf '%s\n' "$@" | grep -qE '^(-m|--model)$'; then
    model_args=(-m "$(bash scripts/get-model.sh smollm2-135m-instruct)")
fi
exec build/tessera chat "${model_args[@]}" "$@"
