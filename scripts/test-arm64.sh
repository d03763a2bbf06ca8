#!/usr/bin/env bash
# Builds Tessera for 64-bit Arm and runs the kernel and op parity tests on every Arm code path
# (neon, neon_dotprod, sve, sve2). On an x86-64 host: a cross build (cmake/toolchains/aarch64-linux-gnu.cmake)
# whose tests run under qemu-aarch64 on an Arm v8.0 CPU (NEON only), on one with DOTPROD but
# no SVE, and on one with SVE and SVE2 at several vector lengths; on an aarch64 machine: a native build, and the code paths this CPU runs.
#
#   bash scripts/test-arm64.sh        (from the repository root; build folder build-arm64/)
#
# TESSERA_JOBS sets the build's parallelism (default: the number of cores). Prints a final
# "test-arm64: PASS" or "test-arm64: FAIL" line and exits non-zero on a failure; when the cross
# tools are missing and cannot be installed (no root, no sudo) it says so and exits 0.
set -uo pipefail

cd "$(dirname "$0")/.."
build=build-arm64
jobs=${TESSERA_JOBS:-$(nproc)}
start=$SECONDS
failures=()

step() { printf '\n== test-arm64: %s\n' "$*"; }
finish() {
    local elapsed=$((SECONDS - start))
    if [ ${#failures[@]} -eq 0 ]; then
        echo "test-arm64: PASS (${elapsed}s)"
        exit 0
    fi
    echo "test-arm64: FAIL (${elapsed}s): ${failures[*]}"
    exit 1
}

# run NAME COMMAND...: runs one test program, records a failure by name.
run() {
    local name=$1
    shift
    local t0=$SECONDS
    # A code path the program refuses falls back to the best one with this warning: a failure
    # here, since the path named was not tested.
    if "$@" >"$build/$name.log" 2>&1 && ! grep -q "tessera: TESSERA_CPU_TARGET=" "$build/$name.log"; then
        echo "  ok    $name ($((SECONDS - t0))s) $(grep -h 'test cases:' "$build/$name.log" | tr -s ' ')"
    else
        echo "  FAIL  $name ($((SECONDS - t0))s); the last lines of $build/$name.log:"
        tail -n 30 "$build/$name.log" | sed 's/^/        /'
        failures+=("$name")
    fi
}

native=0
[ "$(uname -m)" = aarch64 ] && native=1

if [ $native = 0 ]; then
    step "cross tools (scripts/setup-arm64.sh)"
    if ! bash scripts/setup-arm64.sh; then
        echo "test-arm64: SKIP: the aarch64 cross compiler, qemu-user or libhwy-dev:arm64 are missing and cannot be installed here"
        exit 0
    fi
fi

step "configure $build ($([ $native = 1 ] && echo native || echo "cross, aarch64-linux-gnu"))"
# The Vulkan backend compiles here too (its loader is opened at run time; the shaders are
# portable SPIR-V), though qemu has no device to run it on.
config=(-S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTESSERA_BUILD_EXAMPLES=OFF -DTESSERA_CUDA=OFF
        -DTESSERA_BLAS=off)
command -v ninja >/dev/null && [ ! -f "$build/Makefile" ] && config+=(-G Ninja)
[ $native = 0 ] && config+=(-DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake)
mkdir -p "$build"
if ! cmake "${config[@]}" >"$build/configure.log" 2>&1; then
    tail -n 30 "$build/configure.log"
    failures+=(configure)
    finish
fi

step "build kernel_parity_test, attn_kernel_test, op_parity_test (-j$jobs)"
t0=$SECONDS
if ! cmake --build "$build" -j "$jobs" --target kernel_parity_test attn_kernel_test op_parity_test >"$build/build.log" 2>&1; then
    grep -E 'error|FAILED' "$build/build.log" | head -n 30
    failures+=(build)
    finish
fi
echo "  built in $((SECONDS - t0))s"

kpt=$build/tests/kernel_parity_test
akt=$build/tests/attn_kernel_test
opt=$build/tests/op_parity_test

if [ $native = 1 ]; then
    step "kernel parity on every code path this CPU runs"
    run kernel_parity "$kpt"
    run attn_kernels "$akt"
    for target in sve2 sve neon_dotprod neon; do
        step "op parity, TESSERA_CPU_TARGET=$target"
        if "$kpt" -tc='every SIMD kernel*' 2>&1 | grep -q "skipped $target:"; then
            echo "  skipped: this CPU cannot run $target"
            continue
        fi
        run "op_parity_$target" env TESSERA_CPU_TARGET=$target "$opt"
    done
    finish
fi

# Under qemu, with the multi-arch arm64 loader and libraries (no -L prefix: see
# scripts/setup-arm64.sh). The CPU model sets which extensions the tests see: "max" has SVE
# and SVE2, and its vector length is set per process.
unset QEMU_LD_PREFIX

step "qemu, an Arm v8.0 CPU (-cpu cortex-a72): NEON without DOTPROD"
run kernel_parity_neon qemu-aarch64 -cpu cortex-a72 "$kpt"
run attn_kernels_neon qemu-aarch64 -cpu cortex-a72 "$akt"
run op_parity_neon env TESSERA_CPU_TARGET=neon qemu-aarch64 -cpu cortex-a72 "$opt"

step "qemu, no SVE (-cpu max,sve=off): NEON with DOTPROD"
run kernel_parity_neon_dotprod qemu-aarch64 -cpu max,sve=off "$kpt"
run op_parity_neon_dotprod env TESSERA_CPU_TARGET=neon_dotprod qemu-aarch64 -cpu max,sve=off "$opt"

step "qemu with SVE and SVE2 (-cpu max): every Arm code path, vector lengths 128, 256 and 512 bits"
for bytes in 16 32 64; do
    run "kernel_parity_sve_vl$((bytes * 8))" qemu-aarch64 -cpu "max,sve-default-vector-length=$bytes" "$kpt"
    run "attn_kernels_sve_vl$((bytes * 8))" qemu-aarch64 -cpu "max,sve-default-vector-length=$bytes" "$akt"
done
for target in sve sve2; do
    run "op_parity_$target" env TESSERA_CPU_TARGET=$target qemu-aarch64 -cpu max,sve-default-vector-length=32 "$opt"
done

finish
