#!/usr/bin/env bash
# Installs Tessera into a scratch prefix, then builds the examples from that install in a
# separate CMake project (find_package(tessera) + tessera::tessera) and simple.c with
# pkg-config alone, and runs them on the default model when it is downloaded.
# usage: install_test.sh BUILD_DIR SOURCE_DIR
set -u
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
for f in include/tessera.h include/tessera.hpp lib/libtessera.a lib/cmake/tessera/tessera-config.cmake \
         lib/pkgconfig/tessera.pc bin/tessera; do
    [ -e "$work/prefix/$f" ] || fail "install lacks $f"
done

# CMake: find_package(tessera) and target_link_libraries(app tessera::tessera).
cmake -S "$src/tests/install" -B "$work/app" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$work/prefix" -DEXAMPLES="$src/examples" >"$work/app.log" 2>&1 &&
    cmake --build "$work/app" -j 2 >>"$work/app.log" 2>&1 || { grep -iE -A3 "error" "$work/app.log" | head -30; fail "CMake project against the install"; }

# pkg-config alone, with a C compiler for a C program.
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs tessera >"$work/pc" || fail "pkg-config"
# shellcheck disable=SC2046
cc -std=c11 -o "$work/simple-pc" "$src/examples/simple.c" $(cat "$work/pc") \
    2>"$work/cc.log" || { cat "$work/cc.log"; fail "cc simple.c with pkg-config"; }

model=${TESSERA_MODELS:-$HOME/.cache/tessera/models}/smollm2-135m-instruct.gguf
if [ -f "$model" ]; then
    for exe in "$work/app/simple" "$work/simple-pc"; do
        [ -x "$exe" ] || continue
        "$exe" "$model" "The capital of France is" >"$work/out" 2>&1 || fail "$exe: $(cat "$work/out")"
        grep -q "Paris" "$work/out" || fail "$exe did not continue the prompt sensibly: $(cat "$work/out")"
    done
    if [ -x "$work/app/multi-context" ]; then
        "$work/app/multi-context" "$model" >"$work/out" 2>&1 || fail "multi-context: $(cat "$work/out")"
        grep -q '^\[2\] Water boils at' "$work/out" || fail "multi-context output: $(cat "$work/out")"
    fi
    if [ -x "$work/app/chat" ]; then
        printf 'Hello!\n\n' | "$work/app/chat" "$model" >"$work/out" 2>&1 || fail "chat example: $(cat "$work/out")"
        [ -s "$work/out" ] || fail "chat example printed nothing"
    fi
else
    echo "SKIPPED: running the examples (model not downloaded: scripts/get-model.sh smollm2-135m-instruct)"
fi
echo "install: $failures failures"
[ "$failures" -eq 0 ]
