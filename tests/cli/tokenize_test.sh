#!/usr/bin/env bash
# `tessera tokenize`: both output formats, -f tokenizing a file's bytes exactly (trailing
# newline included), special-token parsing, and the error paths (exit 1 with one
# 'error: ...' line; exit 2 on usage errors).
# usage: tokenize_test.sh TESSERA [DATA_DIR]
set -u
tessera=$1
data=${TESSERA_TEST_DATA:-${2:-}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
checks=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Runs tokenize; sets rc, and the output in $work/out and $work/err.
run() {
    "$tessera" tokenize "$@" >"$work/out" 2>"$work/err"
    rc=$?
    checks=$((checks + 1))
}

expect_usage_error() {
    run "$@"
    [ "$rc" -eq 2 ] || fail "tokenize $*: exit $rc, expected 2"
    grep -q '^error: ' "$work/err" || fail "tokenize $*: no 'error:' line"
}

# exit 1, nothing on stdout, exactly one stderr line 'error: ...' holding the fragment.
expect_failure() {
    local fragment=$1
    shift
    run "$@"
    [ "$rc" -eq 1 ] || fail "tokenize $*: exit $rc, expected 1 ($(cat "$work/err"))"
    [ -s "$work/out" ] && fail "tokenize $*: wrote to stdout"
    if [ "$(wc -l <"$work/err")" -ne 1 ] || ! grep -q '^error: ' "$work/err"; then
        fail "tokenize $*: expected one 'error:' line, got: $(head -c 300 "$work/err")"
    fi
    grep -qF -- "$fragment" "$work/err" || fail "tokenize $*: error lacks '$fragment': $(cat "$work/err")"
}

expect_out() {
    local want=$1
    shift
    run "$@"
    [ "$rc" -eq 0 ] || fail "tokenize $*: exit $rc: $(cat "$work/err")"
    [ "$(cat "$work/out")" = "$want" ] || fail "tokenize $*: got '$(cat "$work/out")', expected '$want'"
}

# --help tells the truth about the options.
run --help
[ "$rc" -eq 0 ] || fail "--help exit $rc"
for opt in -m -p -f --ids --no-add-special --parse-special --allow-unknown-pre; do
    grep -q -- "$opt" "$work/out" || fail "--help does not mention $opt"
done
"$tessera" --help | grep -q tokenize || fail "tessera --help does not list tokenize"

# Usage errors.
expect_usage_error
expect_usage_error -p hello
expect_usage_error -m x.gguf
expect_usage_error -m x.gguf -p a -f b
expect_usage_error -m
expect_usage_error -m x.gguf -p a --bogus

# Files that are missing or not vocabularies.
expect_failure "No such file" -m "$work/missing.gguf" -p hello
printf 'not a gguf file at all' >"$work/junk.gguf"
expect_failure "junk.gguf" -m "$work/junk.gguf" -p hello

if [ -z "$data" ] || [ ! -f "$data/vocab/ggml-vocab-gpt-2.gguf" ]; then
    echo "SKIPPED: real vocabulary checks (shared test data not found; set TESSERA_TEST_DATA)"
    echo "$checks tokenize runs, $failures failures"
    [ "$failures" -eq 0 ]
    exit
fi
gpt2=$data/vocab/ggml-vocab-gpt-2.gguf
spm=$data/vocab/ggml-vocab-llama-spm.gguf
bert=$data/vocab/ggml-vocab-bert-bge.gguf

expect_failure "No such file" -m "$gpt2" -f "$work/missing.txt"

# --ids: one line, single spaces.
expect_out "15496 995" -m "$gpt2" -p "Hello world" --ids
expect_out "1 15043 3186" -m "$spm" -p "Hello world" --ids
expect_out "15043 3186" -m "$spm" -p "Hello world" --ids --no-add-special
expect_out "101 7592 2088 102" -m "$bert" -p "Hello world" --ids

# The table: ID<TAB>'piece'; a control token shows its text.
expect_out "$(printf "1\t'<s>'\n15043\t' Hello'\n3186\t' world'")" -m "$spm" -p "Hello world"
expect_out "$(printf "15496\t'Hello'\n198\t'\\\\n'")" -m "$gpt2" -p "Hello
"

# -f: the file's bytes exactly, the trailing newline included.
printf 'Hello world\n' >"$work/text.txt"
expect_out "15496 995 198" -m "$gpt2" -f "$work/text.txt" --ids
printf 'Hello world' >"$work/text2.txt"
expect_out "15496 995" -m "$gpt2" -f "$work/text2.txt" --ids
: >"$work/empty.txt"
expect_out "" -m "$gpt2" -f "$work/empty.txt" --ids
# Invalid UTF-8 is read as U+FFFD by byte-level BPE (as llama.cpp does); pieces that are
# parts of a character are shown escaped.
printf 'a\xff' >"$work/bad.txt"
run -m "$gpt2" -f "$work/bad.txt"
[ "$rc" -eq 0 ] || fail "invalid UTF-8 file: exit $rc"
grep -qF "$(printf "4210\t'\xef\xbf\xbd'")" "$work/out" || fail "invalid byte not read as U+FFFD: $(cat "$work/out")"
printf '\xf0\x9f\xa6\x99' >"$work/llama.txt"  # one character, three GPT-2 tokens
expect_out "8582 99 247" -m "$gpt2" -f "$work/llama.txt" --ids
run -m "$gpt2" -f "$work/llama.txt"
grep -qF "'\\xf0\\x9f'" "$work/out" || fail "a partial character is not shown escaped: $(cat "$work/out")"

# Special tokens: parsed only when asked.
expect_out "50256" -m "$gpt2" -p "<|endoftext|>" --ids --parse-special
run -m "$gpt2" -p "<|endoftext|>" --ids
[ "$(wc -w <"$work/out")" -gt 1 ] || fail "<|endoftext|> was parsed without --parse-special"

# Gemma 3: its user-defined tokens (runs of spaces, tabs, newlines) without --parse-special;
# control-token text stays text unless parsed.
gemma=$data/vocab/ggml-vocab-gemma-3.gguf
if [ -f "$gemma" ]; then
    printf 'Hello world.\n\n    Indented  text   with\t\ttabs\n\n\nEnd' >"$work/gemma.txt"
    expect_out "2 9259 1902 236761 108 140 2704 16764 138 1005 139 4060 255969 39218 109 7315" \
        -m "$gemma" -f "$work/gemma.txt" --ids
    expect_out "105" -m "$gemma" -p "<start_of_turn>" --ids --no-add-special --parse-special
    run -m "$gemma" -p "<start_of_turn>" --ids --no-add-special
    [ "$(wc -w <"$work/out")" -gt 1 ] || fail "<start_of_turn> was parsed without --parse-special"
    # 2 MB of '<' (pasted HTML or XML is full of them) with --parse-special: one pass over
    # the text, not a comparison with every control token starting with '<' at each byte
    # (which took about 40 s). The limit is a hang guard, far above the second it takes.
    head -c 2000000 /dev/zero | tr '\0' '<' >"$work/angles.txt"
    checks=$((checks + 1))
    if ! timeout 30 "$tessera" tokenize -m "$gemma" -f "$work/angles.txt" --ids --parse-special >"$work/out"; then
        fail "2 MB of '<' with --parse-special did not finish in 30 s (or failed)"
    fi
else
    echo "SKIPPED: Gemma 3 checks (ggml-vocab-gemma-3.gguf not in the shared test data)"
fi

# An unknown pre-tokenizer: an error naming it, or a warning with --allow-unknown-pre.
if command -v python3 >/dev/null; then
    python3 - "$gpt2" "$work/unknown-pre.gguf" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
key = b"tokenizer.ggml.pre"
old = struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, 5) + b"gpt-2"
assert data.count(old) == 1
open(sys.argv[2], "wb").write(data.replace(old, old[:-5] + b"zzz-9"))
PY
    expect_failure "'zzz-9'" -m "$work/unknown-pre.gguf" -p hello
    run -m "$work/unknown-pre.gguf" -p "Hello world" --ids --allow-unknown-pre
    [ "$rc" -eq 0 ] || fail "--allow-unknown-pre: exit $rc"
    [ "$(cat "$work/out")" = "15496 995" ] || fail "--allow-unknown-pre: got $(cat "$work/out")"
    grep -q "warning.*zzz-9" "$work/err" || fail "--allow-unknown-pre: no warning naming the pre-tokenizer"
fi

echo "$checks tokenize runs, $failures failures"
[ "$failures" -eq 0 ]
