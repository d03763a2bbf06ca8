#!/usr/bin/env bash
# `tessera run`, `perplexity`, `bench` and `quantize`: usage and error paths always; with
# the real SmolLM2 model (scripts/get-model.sh smollm2-135m-instruct), the greedy
# continuation, reproducible sampling, a prompt that does not fit, perplexity against the
# reference in tests/models/reference, bench's JSON, and a Q8_0 conversion that keeps
# perplexity within 1%.
# usage: run_test.sh TESSERA GGUF_CORPUS_TOOL SOURCE_DIR
set -u
tessera=$1
corpus_tool=$2
src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# One 'error:' line on stderr, nothing on stdout, the given exit status.
expect_error() {
    local want_rc=$1 fragment=$2
    shift 2
    "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    [ "$rc" -eq "$want_rc" ] || fail "$*: exit $rc, expected $want_rc ($(head -c 200 "$work/err"))"
    [ -s "$work/out" ] && fail "$*: wrote to stdout"
    [ "$(grep -c '^error: ' "$work/err")" -eq 1 ] || fail "$*: expected one 'error:' line, got: $(cat "$work/err")"
    grep -qF -- "$fragment" "$work/err" || fail "$*: error lacks '$fragment': $(cat "$work/err")"
}

"$tessera" run --help | grep -q -- '--temp' || fail "run --help does not describe --temp"
"$tessera" perplexity --help | grep -q 'Final estimate' || fail "perplexity --help"
"$tessera" bench --help | grep -q -- '--n-prompt' || fail "bench --help"
"$tessera" bench --help | grep -q '%%' && fail "bench --help prints %% where it means %"
"$tessera" fit --help | grep -q -- '--no-measure' || fail "fit --help"
expect_error 2 "needs -m MODEL" "$tessera" run -p hello
expect_error 2 "--temp needs a number" "$tessera" run -m x.gguf -p hi --temp abc
expect_error 2 "unknown option" "$tessera" run -m x.gguf -p hi --bogus 1
expect_error 1 "No such file" "$tessera" run -m "$work/missing.gguf" -p hi
expect_error 2 "-ngl needs a whole number" "$tessera" run -m x.gguf -p hi -ngl many
"$tessera" run --help | grep -q -- '--gpu-layers' || fail "run --help does not describe --gpu-layers"
"$tessera" run --help | grep -q -- '-nr, --no-repack' || fail "run --help does not describe --no-repack"
"$tessera" bench --help | grep -q -- '-ngl, --gpu-layers N\[,N..\]' || fail "bench --help does not describe -ngl lists"
"$corpus_tool" "$work/corpus" || fail "gguf-corpus"
expect_error 1 "invalid GGUF" "$tessera" run -m "$work/corpus/tensor-offset-wraps.gguf" -p hi
expect_error 1 "missing metadata key" "$tessera" run -m "$work/corpus/valid-sample.gguf" -p hi
expect_error 1 "No such file" "$tessera" perplexity -m "$work/missing.gguf" -f "$src/tests/models/data/perplexity.txt"
"$tessera" quantize --help | grep -q 'Q4_K_M' || fail "quantize --help does not list Q4_K_M"
expect_error 2 "needs IN.gguf OUT.gguf TYPE" "$tessera" quantize "$work/a.gguf"
expect_error 2 "unknown option" "$tessera" quantize --bogus a b c
expect_error 1 "No such file" "$tessera" quantize -q "$work/missing.gguf" "$work/out.gguf" Q8_0
expect_error 1 "unknown quantization type 'Q9_9'" "$tessera" quantize -q "$work/corpus/valid-sample.gguf" "$work/out.gguf" Q9_9
[ -e "$work/out.gguf" ] && fail "a failed quantize left an output file"
# The output goes through a unique temporary beside it: a user's OUT.tmp is never touched,
# and nothing is left behind; a folder that takes no files fails before any work.
printf 'user data' >"$work/q.gguf.tmp"
"$tessera" quantize -q "$work/corpus/valid-sample.gguf" "$work/q.gguf" Q8_0 >/dev/null 2>"$work/err" ||
    fail "quantize valid-sample: $(cat "$work/err")"
[ "$(cat "$work/q.gguf.tmp")" = "user data" ] || fail "quantize overwrote an existing q.gguf.tmp"
[ -s "$work/q.gguf" ] || fail "quantize wrote no output"
ls -A "$work" | grep -q '^\.q\.gguf\..*\.tmp$' && fail "quantize left its temporary file"
expect_error 1 "cannot create a file in $work/no-such-folder" \
    "$tessera" quantize -q "$work/corpus/valid-sample.gguf" "$work/no-such-folder/q.gguf" Q8_0
"$tessera" bench --membw -t 1 | grep -q "memory read bandwidth, 1 thread: [0-9.]* GB/s" || fail "bench --membw"

model=${TESSERA_MODELS:-$HOME/.cache/tessera/models}/smollm2-135m-instruct.gguf
if [ -f "$model" ]; then
    # A device that is not there: one error naming the devices there are.
    expect_error 1 "device 'NoSuchGPU' not found" "$tessera" run -m "$model" -p hi -n 1 --device NoSuchGPU
    expect_error 1 "device 'NoSuchGPU' not found" "$tessera" bench -m "$model" -p 8 -n 1 -r 1 --device NoSuchGPU
    # Placement options with bad values: one error each, naming what is wrong.
    expect_error 2 "needs PATTERN=DEVICE" "$tessera" run -m "$model" -p hi -n 1 -ot ffn
    expect_error 1 "not a regular expression" "$tessera" run -m "$model" -p hi -n 1 -ot '([=CPU'
    expect_error 2 "needs a size such as" "$tessera" run -m "$model" -p hi -n 1 --gpu-mem 12Q
    expect_error 2 "takes none or layer" "$tessera" run -m "$model" -p hi -n 1 -sm rows
    expect_error 2 "row (tensor parallelism) is not available" "$tessera" run -m "$model" -p hi -n 1 -sm row
    expect_error 2 "takes proportions such as 3,1" "$tessera" run -m "$model" -p hi -n 1 -ts 3,x
    expect_error 2 "the proportions are all 0" "$tessera" run -m "$model" -p hi -n 1 -ts 0,0
    expect_error 1 "tensor split: 2 proportions for 0 GPUs" "$tessera" run -m "$model" -p hi -n 1 --device CPU -ts 1,1
    expect_error 1 "device list 'a,,b' has an empty name" "$tessera" run -m "$model" -p hi -n 1 --device a,,b
    # tessera fit: the plan without loading the model. The first run measures this CPU (into
    # the rates file), later ones read it; the memory it plans is the model's.
    export TESSERA_RATES_FILE=$work/rates.tsv
    "$tessera" fit -m "$model" -c 1024 -t 2 >"$work/fit" 2>"$work/err" || fail "fit: $(cat "$work/err")"
    grep -q "measuring this machine's speeds" "$work/err" || fail "fit did not say it measured: $(cat "$work/err")"
    [ -s "$work/rates.tsv" ] || fail "fit kept no rates"
    grep -q "plan: every layer on the CPU" "$work/fit" || fail "fit's plan: $(cat "$work/fit")"
    grep -qE "CPU +92 MiB +22 MiB" "$work/fit" || fail "fit's CPU memory (92 MiB of weights, 22 MiB of KV cache at 1024 cells): $(cat "$work/fit")"
    grep -qE "predicted: prompt [0-9.]+ tokens/s, generation [0-9.]+ tokens/s" "$work/fit" || fail "fit's prediction: $(cat "$work/fit")"
    "$tessera" fit -m "$model" -c 1024 -t 2 -ngl 0,auto >"$work/fit" 2>"$work/err" || fail "fit -ngl list: $(cat "$work/err")"
    grep -q "measuring" "$work/err" && fail "fit measured again: $(cat "$work/err")"
    [ "$(grep -cE '^ +0 +0 KiB +[0-9]+ MiB +yes +[0-9.]+ +[0-9.]+$' "$work/fit")" -eq 2 ] || fail "fit's table: $(cat "$work/fit")"
    "$tessera" fit -m "$model" -t 1 --no-measure >"$work/fit" 2>"$work/err" || fail "fit --no-measure: $(cat "$work/err")"
    grep -q "generation unknown tokens/s" "$work/fit" || fail "fit --no-measure predicted from nothing: $(cat "$work/fit")"
    unset TESSERA_RATES_FILE
    expect_error 2 "needs -m MODEL" "$tessera" fit -c 512
    expect_error 2 "does not take -ot" "$tessera" fit -m "$model" -ot ffn=CPU
    expect_error 1 "No such file" "$tessera" fit -m "$work/missing.gguf"
    expect_error 1 "device 'NoSuchGPU' not found" "$tessera" fit -m "$model" --device NoSuchGPU
    # Greedy: the NumPy reference's continuation, up to the end-of-text token, with the
    # weights in the file's layout (-nr). Its sixth token is a near tie (the two best are
    # 0.0025 apart), which the interleaved layout's other summation order turns the other
    # way, so by default the text must match up to there.
    "$tessera" run -m "$model" -nr -p "The capital of France is" -n 32 --temp 0 -t 2 >"$work/out" 2>"$work/err" ||
        fail "run -nr: $(cat "$work/err")"
    printf ' Paris.\n\nThe answer is: 2018-01-22 12:12:53.' >"$work/want"
    cmp -s "$work/out" "$work/want" || fail "greedy continuation (-nr) differs: '$(cat "$work/out")'"
    "$tessera" run -m "$model" -p "The capital of France is" -n 32 --temp 0 -t 2 >"$work/out" 2>"$work/err" ||
        fail "run: $(cat "$work/err")"
    case "$(cat "$work/out")" in
    " Paris."$'\n\n'"The "*) ;;
    *) fail "greedy continuation differs before its first near tie: '$(cat "$work/out")'" ;;
    esac
    grep -q "generation: .* tokens/s" "$work/err" || fail "run prints no speeds on stderr"
    # A one-token prompt is counted as a prompt.
    "$tessera" run -m "$model" -p "Hello" -n 4 --temp 0 -t 2 >/dev/null 2>"$work/err" || fail "run -p Hello: $(cat "$work/err")"
    grep -q "prompt: 1 tokens" "$work/err" || fail "a one-token prompt is not counted: $(cat "$work/err")"
    grep -q "generation: 4 tokens" "$work/err" || fail "four generated tokens are not counted: $(cat "$work/err")"
    # A chat reply ends at its end-of-turn token, also where that token is not EOS (it is
    # here; --no-parse-special makes the markers plain text, so nothing ends the turn).
    printf '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n' >"$work/chat.txt"
    "$tessera" run -m "$model" -f "$work/chat.txt" -n 64 --temp 0 -t 2 >"$work/out" 2>"$work/err" || fail "run chat prompt"
    grep -q "prompt: 37 tokens" "$work/err" || fail "the chat prompt's markers were not parsed: $(cat "$work/err")"
    grep -q "generation: 11 tokens" "$work/err" || fail "the reply did not end at <|im_end|>: $(cat "$work/err")"
    "$tessera" run -m "$model" -f "$work/chat.txt" -n 4 --temp 0 -t 2 --no-parse-special >/dev/null 2>"$work/err" ||
        fail "run --no-parse-special"
    n=$(sed -n 's/.*prompt: \([0-9]*\) tokens.*/\1/p' "$work/err")
    [ -n "$n" ] && [ "$n" -gt 50 ] || fail "--no-parse-special: the markers became tokens: $(cat "$work/err")"
    # The same seed gives the same text; stdout carries only the text.
    "$tessera" run -m "$model" -p "Once upon a time" -n 12 --seed 7 -t 2 >"$work/a" 2>/dev/null
    "$tessera" run -m "$model" -p "Once upon a time" -n 12 --seed 7 -t 1 >"$work/b" 2>/dev/null
    cmp -s "$work/a" "$work/b" || fail "--seed 7 twice gave different text"
    [ -s "$work/a" ] || fail "sampling produced nothing"
    # A prompt longer than the context.
    expect_error 1 "does not fit in the context of 8 tokens" "$tessera" run -m "$model" -c 8 \
        -p "one two three four five six seven eight nine ten eleven twelve"
    # Perplexity as in llama.cpp, against the independent reference.
    "$tessera" perplexity -m "$model" -f "$src/tests/models/data/perplexity.txt" -c 128 -t 2 >"$work/out" 2>"$work/err" ||
        fail "perplexity: $(cat "$work/err")"
    got=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- .*/\1/p' "$work/out")
    want=$(sed -n 's/^final //p' "$src/tests/models/reference/smollm2-135m-instruct.txt")
    awk -v g="$got" -v w="$want" 'BEGIN { exit !(g != "" && (g / w - 1) < 0.01 && (w / g - 1) < 0.01) }' ||
        fail "perplexity '$got' is not within 1% of the reference $want"
    # bench --json: one object per test with the fields llama-bench users read.
    "$tessera" bench -m "$model" -p 8 -n 4 -r 2 -t 2 --json >"$work/bench.json" 2>"$work/err" || fail "bench: $(cat "$work/err")"
    python3 - "$work/bench.json" <<'PY' || fail "bench --json: $(cat "$work/bench.json")"
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["test"] for r in rows] == ["pp8", "tg4"], rows
for r in rows:
    assert r["n_threads"] == 2 and r["avg_ts"] > 0 and r["stddev_ts"] >= 0 and len(r["samples_ts"]) == 2, r
assert rows[1]["bytes_per_token"] > 80 * 2**20 and rows[1]["avg_gbs"] > 0, rows[1]
PY
    grep -q "peak resident memory: [0-9.]* MiB" "$work/err" || fail "bench does not report peak memory"
    # Conversion: Q4_1/Q8_0 -> F16 is exact, so perplexity stays within 0.05% of the
    # reference; F16 -> Q4_K_M (4-bit weights quantized a second time) within 10%.
    "$tessera" quantize -q -t 2 "$model" "$work/f16.gguf" F16 >"$work/out" 2>"$work/err" || fail "quantize: $(cat "$work/err")"
    "$tessera" quantize -q -t 2 "$work/f16.gguf" "$work/q4km.gguf" q4_k_m >"$work/out" 2>"$work/err" || fail "quantize: $(cat "$work/err")"
    for pair in f16:0.0005 q4km:0.10; do
        name=${pair%%:*} bound=${pair#*:}
        "$tessera" perplexity -m "$work/$name.gguf" -f "$src/tests/models/data/perplexity.txt" -c 128 -t 2 >"$work/out" 2>"$work/err" ||
            fail "perplexity of the $name copy: $(cat "$work/err")"
        got=$(sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- .*/\1/p' "$work/out")
        awk -v g="$got" -v w="$want" -v b="$bound" 'BEGIN { exit !(g != "" && (g / w - 1) < b && (w / g - 1) < b) }' ||
            fail "perplexity of the $name copy '$got' is not within $bound of $want"
        echo "perplexity of the $name copy: $got (reference $want)"
    done
else
    echo "SKIPPED: model checks (model not downloaded: scripts/get-model.sh smollm2-135m-instruct)"
fi

echo "run/perplexity: $failures failures"
[ "$failures" -eq 0 ]
