#!/usr/bin/env bash
# `tessera template`: every shared real-template case (templates/expected/NAME.CONV.request.json)
# rendered byte for byte as Python's jinja2 rendered it (NAME.CONV.expected), or exit 1
# with 'error: <message>' (NAME.CONV.error); -m with a real GGUF's template; errors and usage.
# usage: template_test.sh TESSERA [DATA_DIR]
set -u
tessera=$1
data=${TESSERA_TEST_DATA:-${2:-}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
checks=0

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Runs `tessera template ARGS < INPUT`; sets rc; stdout in $work/out, stderr in $work/err.
run_template() {
    local input=$1
    shift
    "$tessera" template "$@" <"$input" >"$work/out" 2>"$work/err"
    rc=$?
    checks=$((checks + 1))
}

# A failure: exit 1, nothing on stdout, one stderr line 'error: ...' containing $1.
expect_error() {
    local what=$1 fragment=$2
    if [ "$rc" -ne 1 ]; then fail "$what: exit status $rc, expected 1"; fi
    if [ -s "$work/out" ]; then fail "$what: wrote to stdout"; fi
    if ! head -n 1 "$work/err" | grep -q '^error: '; then
        fail "$what: stderr does not start with 'error: ': $(head -c 300 "$work/err")"
    fi
    if ! grep -qF -- "$fragment" "$work/err"; then
        fail "$what: error does not mention '$fragment': $(head -c 300 "$work/err")"
    fi
}

# ---- the shared real-template cases ----
n_cases=0
n_pass=0
if [ -n "$data" ] && [ -d "$data/templates/expected" ]; then
    for request in "$data"/templates/expected/*.request.json; do
        stem=${request%.request.json}  # .../NAME.CONV
        base=$(basename "$stem")
        name=${base%.*}
        tmpl="$data/templates/$name.jinja"
        n_cases=$((n_cases + 1))
        run_template "$request" "$tmpl"
        if [ -f "$stem.expected" ]; then
            if [ "$rc" -ne 0 ]; then
                fail "$base: exit $rc: $(head -c 300 "$work/err")"
            elif ! cmp -s "$work/out" "$stem.expected"; then
                fail "$base: output differs from $stem.expected"
                diff <(cat "$stem.expected"; echo) <(cat "$work/out"; echo) | head -20
            else
                n_pass=$((n_pass + 1))
            fi
        elif [ -f "$stem.error" ]; then
            before=$failures
            expect_error "$base" "$(cat "$stem.error")"
            [ "$failures" -eq "$before" ] && n_pass=$((n_pass + 1))
        else
            fail "$base: neither .expected nor .error"
        fi
    done
    [ "$n_cases" -ge 21 ] || fail "only $n_cases shared cases found"
    echo "shared template cases: $n_pass of $n_cases pass"
else
    echo "SKIPPED: shared template cases (shared test data not found; set TESSERA_TEST_DATA)"
fi

# ---- exact output: no newline added, raise_exception's message as it is ----
printf '%s' '{{ messages[0].content }}' >"$work/t.jinja"
printf '%s' '{"messages": [{"role": "user", "content": "no newline \u00e9"}]}' >"$work/req.json"
run_template "$work/req.json" "$work/t.jinja"
[ "$rc" -eq 0 ] || fail "simple render: exit $rc: $(cat "$work/err")"
printf 'no newline \xc3\xa9' | cmp -s - "$work/out" || fail "simple render: output '$(cat "$work/out")'"

printf '%s' "{{ raise_exception('Only user and assistant roles are supported!') }}" >"$work/raise.jinja"
run_template "$work/req.json" "$work/raise.jinja"
expect_error "raise" "Only user and assistant roles"
[ "$(cat "$work/err")" = "error: Only user and assistant roles are supported!" ] ||
    fail "raise: stderr is '$(cat "$work/err")'"

# ---- errors: template syntax, render, JSON, files ----
printf 'ok\n{{ x|nope }}' >"$work/bad.jinja"
run_template "$work/req.json" "$work/bad.jinja"
expect_error "unknown filter" "template line 2, column 6: unknown filter 'nope'"
printf '{{ 1 + "a" }}' >"$work/type.jinja"
run_template "$work/req.json" "$work/type.jinja"
expect_error "type error" "unsupported operand type(s) for +"
printf '{"messages": [' >"$work/bad.json"
run_template "$work/bad.json" "$work/t.jinja"
expect_error "bad JSON" "JSON line 1, column 15"
run_template "$work/req.json" "$work/does-not-exist.jinja"
expect_error "missing template" "does-not-exist.jinja"

# ---- -m: the template from a GGUF, BOS/EOS from its vocabulary ----
if [ -n "$data" ] && [ -f "$data/vocab/ggml-vocab-phi-3.gguf" ]; then
    printf '%s' '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}' \
        >"$work/conv.json"
    run_template "$work/conv.json" -m "$data/vocab/ggml-vocab-phi-3.gguf"
    [ "$rc" -eq 0 ] || fail "-m phi-3: exit $rc: $(cat "$work/err")"
    printf '<s><|user|>\nHi<|end|>\n<|assistant|>\nHello<|end|>\n' | cmp -s - "$work/out" ||
        fail "-m phi-3: output '$(cat "$work/out")'"
    printf '%s' '{"bos_token": "<B>", "messages": [{"role": "user", "content": "Hi"}]}' >"$work/conv2.json"
    run_template "$work/conv2.json" --model "$data/vocab/ggml-vocab-phi-3.gguf"
    printf '<B><|user|>\nHi<|end|>\n<|assistant|>\n' | cmp -s - "$work/out" ||
        fail "-m phi-3 with the request's bos_token: output '$(cat "$work/out")'"
    run_template "$work/conv.json" -m "$data/vocab/ggml-vocab-llama-spm.gguf"
    expect_error "-m without a chat template" "no tokenizer.chat_template"
    run_template "$work/conv.json" -m "$work/missing.gguf"
    expect_error "-m missing file" "missing.gguf"
else
    echo "SKIPPED: -m checks (shared vocabularies not found)"
fi

# ---- usage ----
"$tessera" template </dev/null >/dev/null 2>&1; [ $? -eq 2 ] || fail "no template should exit 2"
"$tessera" template a.jinja b.jinja </dev/null >/dev/null 2>&1; [ $? -eq 2 ] || fail "two templates should exit 2"
"$tessera" template "$work/t.jinja" -m x.gguf </dev/null >/dev/null 2>&1; [ $? -eq 2 ] || fail "file and -m should exit 2"
"$tessera" template --bogus </dev/null >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option should exit 2"
"$tessera" template -m </dev/null >/dev/null 2>&1; [ $? -eq 2 ] || fail "-m without a file should exit 2"
"$tessera" template --help | grep -q -- '-m, --model' || fail "--help does not describe -m"
"$tessera" --help | grep -q 'template' || fail "tessera --help does not list template"

echo "$checks template runs, $failures failures"
[ "$failures" -eq 0 ]
