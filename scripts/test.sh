#!/usr/bin/env bash
# Installs what is missing, builds Tessera, runs every test, and ends with ctest's
# summary. Exits non-zero on any failure.
#
# Besides the main build (build/), it builds the GGUF reader, `tessera inspect`, the C
# API test, the tokenizer tests and the random-model tests with AddressSanitizer +
# UndefinedBehaviorSanitizer + LeakSanitizer (build-asan/) and runs them (the C API test
# loads the real model, generates, runs two contexts on two threads and frees everything
# over several cycles, so LeakSanitizer sees any leak; the random models run every model
# family through the CPU kernels), builds the C API test with ThreadSanitizer (build-tsan/)
# and runs its two-contexts-on-two-threads case,
# runs the GGUF libFuzzer target (build-fuzz/, clang) for TESSERA_FUZZ_SECONDS (60), and
# cross-builds the kernels' parity tests for aarch64 and runs them under qemu for the NEON
# and SVE code paths (scripts/test-arm64.sh, build-arm64/).
#
# Environment: TESSERA_JOBS (build jobs, default: all cores), TESSERA_FUZZ_SECONDS
# (0 skips fuzzing), TESSERA_SKIP_SANITIZERS=1 (skip the ASan, TSan and fuzz builds),
# TESSERA_SKIP_MODELS=1 (do not download the real models; their tests skip),
# TESSERA_SKIP_ARM=1 (skip the aarch64 cross build).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${TESSERA_JOBS:-$(nproc)}
fuzz_seconds=${TESSERA_FUZZ_SECONDS:-60}
status=0

step() { printf '\n==> %s\n' "$*"; }

step "setup"
bash scripts/setup.sh || exit 1

step "configure and build (build/)"
start=$(date +%s)
mkdir -p build
# The CUDA backend (where nvcc is found) compiles here as PTX for one architecture, which any
# newer GPU's driver compiles at start: the build stays short on two cores, and a GPU, if
# there is one, still runs the cuda tests. TESSERA_CUDA_ARCHITECTURES overrides it.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DTESSERA_CUDA_ARCHITECTURES="${TESSERA_CUDA_ARCHITECTURES:-75-virtual}" >build/configure.log 2>&1 ||
    { cat build/configure.log; exit 1; }
grep -A20 "Tessera .* configuration" build/configure.log | sed -n '1,/^-- $/p'
cmake --build build -j "$jobs" || exit 1
echo "build: $(( $(date +%s) - start )) s"

step "models for the model tests"
if [ "${TESSERA_SKIP_MODELS:-0}" != 1 ]; then
    for m in smollm2-135m-instruct gemma3-270m; do
        bash scripts/get-model.sh "$m" >/dev/null || echo "warning: could not download $m; its tests will skip"
    done
fi

if [ "${TESSERA_SKIP_SANITIZERS:-0}" != 1 ]; then
    step "GGUF reader, tessera inspect, the C API, tokenizers and random models under ASan+UBSan+LSan (build-asan/)"
    mkdir -p build-asan
    cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTESSERA_SANITIZE=address,undefined -DTESSERA_CUDA=OFF -DTESSERA_VULKAN=OFF \
        -DTESSERA_BLAS=off >build-asan/configure.log 2>&1 || { cat build-asan/configure.log; exit 1; }
    if cmake --build build-asan -j "$jobs" --target gguf_test tessera-cli gguf-corpus c_api_test vocab_test \
        llama_random_test; then
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            ctest --test-dir build-asan -R '^(gguf_test|cli_inspect|c_api_test|vocab_test|llama_random_test)$' \
            --output-on-failure ||
            { echo "FAILED: sanitizer tests"; status=1; }
    else
        echo "FAILED: sanitizer build"; status=1
    fi

    # Only the library and the C API test, and only its threads case: two contexts of one
    # model, one CPU thread each, so that no (uninstrumented) OpenMP team starts.
    step "two contexts on two threads under ThreadSanitizer (build-tsan/)"
    start=$(date +%s)
    mkdir -p build-tsan
    cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_SANITIZE=thread \
        -DTESSERA_CUDA=OFF -DTESSERA_VULKAN=OFF -DTESSERA_BLAS=off >build-tsan/configure.log 2>&1 ||
        { cat build-tsan/configure.log; exit 1; }
    if cmake --build build-tsan -j "$jobs" --target c_api_test; then
        # The filter must select the one case: a renamed case would otherwise pass unrun.
        if TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/tests/c_api_test \
            --test-case='two contexts of one model on two threads*' >build-tsan/tsan.log 2>&1 &&
            grep -q 'test cases: *1 | *1 passed' build-tsan/tsan.log; then
            grep -E '^SKIPPED|test cases:' build-tsan/tsan.log
        else
            cat build-tsan/tsan.log
            echo "FAILED: ThreadSanitizer (two contexts on two threads)"; status=1
        fi
    else
        echo "FAILED: ThreadSanitizer build"; status=1
    fi
    echo "thread sanitizer: $(( $(date +%s) - start )) s"

    if [ "$fuzz_seconds" -gt 0 ]; then
        step "GGUF reader fuzzing for ${fuzz_seconds} s (build-fuzz/)"
        mkdir -p build-fuzz
        CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DTESSERA_FUZZ=ON -DTESSERA_BUILD_TESTS=OFF -DTESSERA_BUILD_CLI=OFF -DTESSERA_CUDA=OFF \
            -DTESSERA_VULKAN=OFF -DTESSERA_BLAS=off >build-fuzz/configure.log 2>&1 ||
            { cat build-fuzz/configure.log; exit 1; }
        if cmake --build build-fuzz -j "$jobs" --target gguf_fuzz; then
            corpus=build-fuzz/corpus
            rm -rf "$corpus" build-fuzz/seeds && mkdir -p "$corpus"
            build/tests/gguf-corpus build-fuzz/seeds
            if build-fuzz/tests/fuzz/gguf_fuzz -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 \
                -max_len=16384 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
                "$corpus" build-fuzz/seeds >build-fuzz/fuzz.log 2>&1; then
                grep -E "^Done|number_of_executed_units|new_units_added|peak_rss" build-fuzz/fuzz.log
            else
                tail -40 build-fuzz/fuzz.log
                echo "FAILED: the fuzzer found a crash (input saved under build-fuzz/)"; status=1
            fi
        else
            echo "FAILED: fuzz build"; status=1
        fi
    fi
fi

if [ "${TESSERA_SKIP_ARM:-0}" != 1 ]; then
    step "aarch64 cross build, parity tests under qemu (scripts/test-arm64.sh)"
    bash scripts/test-arm64.sh || { echo "FAILED: aarch64 parity tests"; status=1; }
fi

step "tests"
ctest --test-dir build --output-on-failure -j "$jobs" || status=1
exit $status
