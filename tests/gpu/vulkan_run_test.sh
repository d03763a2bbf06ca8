#!/usr/bin/env bash
# `tessera run` with every layer on the first Vulkan device (lavapipe in CI), under the
# Khronos validation layer: the greedy continuation must equal the CPU's, and the layer must
# report nothing (this covers the command buffers recorded once and submitted again for
# every decoding step); then with half the layers there, the CPU running the others, and split
# over two instances of the device. The
# CPU keeps the file's layout (-nr): the interleaved layout sums in another order, which turns
# a near tie in this continuation (its sixth token) the other way. Last, all layers again with
# the fence polled and TESSERA_PROFILE=graph. The runs with all layers on the device have the
# graph copy its logits into host memory (TESSERA_VULKAN_READBACK=1, a discrete GPU's default).
# usage: vulkan_run_test.sh TESSERA
set -u
tessera=$1
model=${TESSERA_MODELS:-$HOME/.cache/tessera/models}/smollm2-135m-instruct.gguf
device=$("$tessera" --version | grep -o 'Vulkan: Vulkan[0-9]*' | head -n 1 | cut -d' ' -f2)
if [ -z "$device" ]; then
    echo "SKIPPED: no Vulkan device ($("$tessera" --version | grep -o 'Vulkan: no device[^|]*'))"
    exit 0
fi
if [ ! -f "$model" ]; then
    echo "SKIPPED: model not downloaded (run scripts/get-model.sh smollm2-135m-instruct)"
    exit 0
fi
if ! ls /usr/share/vulkan/explicit_layer.d/*validation* >/dev/null 2>&1; then
    echo "SKIPPED: the Khronos validation layer is not installed (apt-get install vulkan-validationlayers)"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$tessera" run -m "$model" -nr -ngl 0 -p "The capital of France is" -n 12 --temp 0 >"$work/cpu" 2>/dev/null || exit 1
TESSERA_VULKAN_READBACK=1 VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation "$tessera" run -m "$model" -nr --device "$device" \
    -p "The capital of France is" -n 12 --temp 0 >"$work/gpu" 2>"$work/log" || { cat "$work/log"; exit 1; }
if grep -qE "Validation|VUID" "$work/gpu" "$work/log"; then
    echo "FAIL: validation messages:"
    grep -hE "Validation|VUID" "$work/gpu" "$work/log" | head -5
    exit 1
fi
grep -q "on $device" "$work/log" || { echo "FAIL: no layer went to $device:"; cat "$work/log"; exit 1; }
if ! cmp -s "$work/cpu" "$work/gpu"; then
    echo "FAIL: $device's continuation differs from the CPU's:"
    echo "CPU: $(cat "$work/cpu")"
    echo "GPU: $(cat "$work/gpu")"
    exit 1
fi
# Split in half: the last 15 of 30 layers on the device, the rest on the CPU.
"$tessera" run -m "$model" -nr --device "$device" -ngl 15 -p "The capital of France is" -n 12 --temp 0 \
    >"$work/half" 2>"$work/log" || { cat "$work/log"; exit 1; }
grep -q "15 of 30 layers on $device" "$work/log" || { echo "FAIL: not split in half:"; cat "$work/log"; exit 1; }
if ! cmp -s "$work/cpu" "$work/half"; then
    echo "FAIL: the continuation split between the CPU and $device differs from the CPU's:"
    echo "CPU:   $(cat "$work/cpu")"
    echo "split: $(cat "$work/half")"
    exit 1
fi
# Split by layer over two instances of the device (each its own queues and memory, as two
# GPUs), a third of the layers on the CPU, under the validation layer: the CPU's continuation,
# and each instance holding its share.
VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation "$tessera" run -m "$model" -nr --device "$device,$device" -ts 1,2 \
    -ngl 20 -p "The capital of France is" -n 12 --temp 0 >"$work/two" 2>"$work/log" || { cat "$work/log"; exit 1; }
if grep -qE "Validation|VUID" "$work/two" "$work/log"; then
    echo "FAIL: validation messages with the layers split over two instances:"
    grep -hE "Validation|VUID" "$work/two" "$work/log" | head -5
    exit 1
fi
grep -q "20 of 30 layers on $device (7), $device (13)" "$work/log" ||
    { echo "FAIL: not split 7 / 13 over two instances:"; cat "$work/log"; exit 1; }
if ! cmp -s "$work/cpu" "$work/two"; then
    echo "FAIL: the continuation split over the CPU and two instances of $device differs from the CPU's:"
    echo "CPU:   $(cat "$work/cpu")"
    echo "split: $(cat "$work/two")"
    exit 1
fi
# The plan of that split without loading the model: a row per instance with its layers.
"$tessera" fit -m "$model" --device "$device,$device" -ts 1,3 --no-measure >"$work/fit" 2>"$work/log" ||
    { cat "$work/log"; exit 1; }
grep -qE "^  $device .* 7 layers$" "$work/fit" && grep -qE "^  $device .* 23 layers$" "$work/fit" ||
    { echo "FAIL: tessera fit's rows per GPU (7 and 23 layers):"; cat "$work/fit"; exit 1; }
# The fence polled before the thread sleeps on it (a GPU's default, off on a CPU device) and
# the whole-submission profile: the same continuation, and the profile's device and host rows.
TESSERA_VULKAN_SPIN=20000 TESSERA_VULKAN_READBACK=1 TESSERA_PROFILE=graph "$tessera" run -m "$model" -nr --device "$device" \
    -p "The capital of France is" -n 12 --temp 0 >"$work/spin" 2>"$work/log" || { cat "$work/log"; exit 1; }
if ! cmp -s "$work/cpu" "$work/spin"; then
    echo "FAIL: the continuation with the fence polled differs from the CPU's:"
    echo "CPU:    $(cat "$work/cpu")"
    echo "polled: $(cat "$work/spin")"
    exit 1
fi
grep -qE "graph of [0-9]+ nodes, device" "$work/log" && grep -qE "graph of [0-9]+ nodes, host" "$work/log" ||
    { echo "FAIL: TESSERA_PROFILE=graph printed no submission times:"; cat "$work/log"; exit 1; }
grep -q "copy from device, in graph" "$work/log" ||
    { echo "FAIL: the logits were not read from the graph's own copy (TESSERA_VULKAN_READBACK=1):"; cat "$work/log"; exit 1; }
# The GPU code paths (decoding products on integer dot products), with and without their
# weights read ahead into the cache (TESSERA_VULKAN_PREFETCH, under the validation layer's
# synchronization checks, timed level by level): reading ahead changes no result, and each
# decoding level profiled shows what it read ahead beside.
gpu_paths="TESSERA_VULKAN_GPU_PATHS=1"
env $gpu_paths TESSERA_VULKAN_PREFETCH=0 "$tessera" run -m "$model" -nr --device "$device" \
    -p "The capital of France is" -n 6 --temp 0 >"$work/plain" 2>"$work/log" || { cat "$work/log"; exit 1; }
env $gpu_paths TESSERA_VULKAN_PREFETCH=1 TESSERA_PROFILE=levels VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation \
    VK_LAYER_ENABLES=VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT \
    "$tessera" run -m "$model" -nr --device "$device" -p "The capital of France is" -n 6 --temp 0 \
    >"$work/ahead" 2>"$work/log" || { cat "$work/log"; exit 1; }
if grep -qE "Validation|VUID" "$work/ahead" "$work/log"; then
    echo "FAIL: validation messages with the weights read ahead:"
    grep -hE "Validation|VUID" "$work/ahead" "$work/log" | head -5
    exit 1
fi
if ! cmp -s "$work/plain" "$work/ahead"; then
    echo "FAIL: reading weights ahead changed the continuation:"
    echo "plain: $(cat "$work/plain")"
    echo "ahead: $(cat "$work/ahead")"
    exit 1
fi
grep -qE "add\+rms_norm \| prefetch" "$work/log" ||
    { echo "FAIL: TESSERA_PROFILE=levels shows no weights read ahead beside the norms:"; cat "$work/log"; exit 1; }
echo "ok: $device's greedy continuation (all layers with the logits copied out by the graph, half of them, two instances of it, the fence polled) equals the CPU's, the validation layer reported nothing, TESSERA_PROFILE=graph timed the submissions, and reading decoding products' weights ahead changed nothing"
