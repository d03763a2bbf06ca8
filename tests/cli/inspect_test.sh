#!/usr/bin/env bash
# `tessera inspect`: right output on valid files (the test corpus sample and the real
# vocabularies), and exactly one 'error: ...' line with exit status 1 on every malformed
# or unreadable file.
# usage: inspect_test.sh TESSERA GGUF_CORPUS_TOOL [DATA_DIR]
set -u
tessera=$1
corpus_tool=$2
data=${TESSERA_TEST_DATA:-${3:-}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
checks=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Runs inspect; sets rc, out and err.
run_inspect() {
    "$tessera" inspect "$@" >"$work/out" 2>"$work/err"
    rc=$?
    checks=$((checks + 1))
}

# A bad file: exit 1, nothing on stdout, exactly one stderr line starting 'error: '.
expect_clean_failure() {
    local file=$1 fragment=$2
    run_inspect "$file"
    local lines
    lines=$(wc -l <"$work/err")
    if [ "$rc" -ne 1 ]; then fail "$file: exit status $rc, expected 1"; fi
    if [ -s "$work/out" ]; then fail "$file: wrote to stdout"; fi
    if [ "$lines" -ne 1 ] || ! grep -q '^error: ' "$work/err"; then
        fail "$file: expected one 'error:' line, got: $(head -c 300 "$work/err")"
    fi
    if [ -n "$fragment" ] && ! grep -qF -- "$fragment" "$work/err"; then
        fail "$file: error does not mention '$fragment': $(cat "$work/err")"
    fi
}

"$corpus_tool" "$work/corpus" || { echo "FAIL: gguf-corpus"; exit 1; }

# The valid sample: text and JSON.
run_inspect "$work/corpus/valid-sample.gguf"
[ "$rc" -eq 0 ] || fail "valid sample: exit $rc: $(cat "$work/err")"
for want in "version:     3" "alignment:   64" "v.u64" "18000000000000000000" "float64" \
            "string[4]" "weights.q4_k" "Q4_K" "[256, 2]" "parameters:  " "a.nested" "'deep'"; do
    grep -qF -- "$want" "$work/out" || fail "valid sample text output lacks '$want'"
done
run_inspect --json "$work/corpus/valid-sample.gguf"
[ "$rc" -eq 0 ] || fail "valid sample --json: exit $rc"
if command -v python3 >/dev/null; then
    python3 - "$work/out" <<'PY' || fail "valid sample --json: wrong JSON"
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
md = {m["key"]: m for m in d["metadata"]}
assert d["version"] == 3 and d["alignment"] == 64, d
assert md["v.i64"]["value"] == -9000000000000000000
assert md["v.string"]["value"] == "h\u00e9llo \"w\"\n\x01"
assert md["a.nested"]["value"][2] == [["deep"]], md["a.nested"]
assert md["a.i32"]["value"] == [1, -2, 3, -4, 5, -6, 7, -8, 9, -10]
t = {x["name"]: x for x in d["tensors"]}
assert t["weights.q4_0"]["type"] == "Q4_0" and t["weights.q4_0"]["shape"] == [64, 3]
assert t["weights.q4_0"]["bytes"] == 108
assert d["totals"]["tensors"] == 6
PY
fi

# Every malformed file of the corpus.
n_bad=0
for f in "$work"/corpus/*.gguf; do
    name=$(basename "$f" .gguf)
    [ "$name" = valid-sample ] && continue
    expect_clean_failure "$f" "$(cat "$work/corpus/$name.expected")"
    n_bad=$((n_bad + 1))
done
[ "$n_bad" -ge 40 ] || fail "only $n_bad malformed files in the corpus"

# Truncations of the valid sample at a spread of offsets.
size=$(stat -c %s "$work/corpus/valid-sample.gguf")
for cut in 0 3 4 7 8 15 23 24 31 40 100 333 500 $((size / 2)) $((size - 65)) $((size - 1)); do
    head -c "$cut" "$work/corpus/valid-sample.gguf" >"$work/cut.gguf"
    expect_clean_failure "$work/cut.gguf" ""
done

# Files that are not there or not files.
expect_clean_failure "$work/does-not-exist.gguf" "No such file"
expect_clean_failure "$work" "not a regular file"
mkfifo "$work/fifo.gguf"
expect_clean_failure "$work/fifo.gguf" "not a regular file"
: >"$work/empty.gguf"
expect_clean_failure "$work/empty.gguf" "empty"
expect_clean_failure /dev/null "not a regular file"

# Usage errors exit 2.
"$tessera" inspect >/dev/null 2>&1; [ $? -eq 2 ] || fail "inspect without a file should exit 2"
"$tessera" inspect --bogus x >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option should exit 2"
"$tessera" inspect --help | grep -q -- '--json' || fail "--help does not describe --json"

# The real vocabularies.
if [ -n "$data" ] && [ -d "$data/vocab" ]; then
    for pair in "ggml-vocab-llama-spm.gguf:32000" "ggml-vocab-phi-3.gguf:32064" \
                "ggml-vocab-gpt-2.gguf:50257" "ggml-vocab-bert-bge.gguf:30522"; do
        file=${pair%%:*}
        count=${pair##*:}
        run_inspect "$data/vocab/$file"
        [ "$rc" -eq 0 ] || fail "$file: exit $rc: $(cat "$work/err")"
        grep -qE "tokenizer\.ggml\.tokens +string\[$count\]" "$work/out" ||
            fail "$file: token count $count not shown"
        run_inspect --json "$data/vocab/$file"
        if command -v python3 >/dev/null; then
            python3 -c "
import json, sys
d = json.load(open('$work/out', encoding='utf-8'))
md = {m['key']: m for m in d['metadata']}
assert len(md['tokenizer.ggml.tokens']['value']) == $count
" || fail "$file: --json token count"
        fi
    done
else
    echo "SKIPPED: real vocabulary checks (shared test data not found; set TESSERA_TEST_DATA)"
fi

echo "$checks inspect runs, $failures failures"
[ "$failures" -eq 0 ]
