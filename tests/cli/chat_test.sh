#!/usr/bin/env bash
# `tessera chat` driven through a pipe: one reply per input line, each followed by one
# empty line and nothing else on stdout; the second turn reuses the KV cache; /save and
# /load round-trip the conversation; an overflowing conversation drops its oldest turns;
# a missing default model names the command that fetches it.
# usage: chat_test.sh TESSERA
set -u
tessera=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$tessera" chat --help | grep -q '/save FILE' || fail "chat --help lacks the commands"
TESSERA_MODELS="$work/none" "$tessera" chat </dev/null >"$work/out" 2>"$work/err"
[ $? -eq 1 ] || fail "a missing default model should exit 1"
grep -q "scripts/get-model.sh smollm2-135m-instruct" "$work/err" || fail "missing model: no fetch command: $(cat "$work/err")"
"$tessera" chat -m "$work/missing.gguf" </dev/null >"$work/out" 2>"$work/err"
[ $? -eq 1 ] && grep -q '^error: ' "$work/err" || fail "a missing -m model should exit 1 with an error line"

model=${TESSERA_MODELS:-$HOME/.cache/tessera/models}/smollm2-135m-instruct.gguf
if [ ! -f "$model" ]; then
    echo "SKIPPED: chat with the real model (not downloaded: scripts/get-model.sh smollm2-135m-instruct)"
    echo "chat: $failures failures"
    [ "$failures" -eq 0 ]
    exit
fi

# Two turns: two replies, each ending in one empty line; the second turn decodes only
# its new tokens.
printf 'What is the capital of France?\nAnd of Italy?\n' |
    "$tessera" chat -m "$model" --temp 0 -n 24 -t 2 --verbose >"$work/out" 2>"$work/err" || fail "chat: $(cat "$work/err")"
python3 - "$work/out" <<'PY' || fail "stdout is not two replies each followed by one empty line: $(cat "$work/out")"
import sys
text = open(sys.argv[1], encoding="utf-8").read()
replies = text.split("\n\n")
assert text.endswith("\n\n"), "no empty line after the last reply"
assert len(replies) == 3 and replies[2] == "", replies
assert all(r.strip() for r in replies[:2]), replies
PY
line2=$(grep '^\[turn 2:' "$work/err")
decoded=$(echo "$line2" | sed -n 's/.*decoded \([0-9]*\) prompt tokens.*/\1/p')
reused=$(echo "$line2" | sed -n 's/.*reused \([0-9]*\) from the cache.*/\1/p')
[ -n "$reused" ] && [ "$reused" -gt 30 ] && [ "$decoded" -lt 20 ] ||
    fail "turn 2 did not reuse the cache: '$line2'"

# /save then /load.
printf 'Say hello.\n/save %s\n' "$work/conv.json" | "$tessera" chat -m "$model" --temp 0 -n 8 -t 2 >/dev/null 2>"$work/err"
python3 - "$work/conv.json" <<'PY' || fail "/save wrote no conversation: $(cat "$work/conv.json" 2>&1)"
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))["messages"]
assert [x["role"] for x in m] == ["user", "assistant"] and m[0]["content"] == "Say hello.", m
PY
printf '/load %s\n/stats\n' "$work/conv.json" | "$tessera" chat -m "$model" -t 2 >"$work/out" 2>"$work/err"
grep -q 'loaded 2 messages' "$work/err" || fail "/load: $(cat "$work/err")"
grep -q 'messages 2 ' "$work/err" || fail "/stats after /load: $(cat "$work/err")"
[ -s "$work/out" ] && fail "commands wrote to stdout"

# A small context: old turns are dropped, and the user is told.
printf 'Tell me a long story about a dragon.\nTell me another long story.\nAnd one more, please.\n' |
    "$tessera" chat -m "$model" -c 160 -n 40 --temp 0 -t 2 >"$work/out" 2>"$work/err" || fail "chat -c 160: $(cat "$work/err")"
grep -q 'dropped the oldest' "$work/err" || fail "no notice of dropped turns: $(cat "$work/err")"
[ "$(grep -c '' "$work/out")" -ge 3 ] || fail "chat -c 160 gave no replies"

echo "chat: $failures failures"
[ "$failures" -eq 0 ]
