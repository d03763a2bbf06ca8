#!/usr/bin/env bash
# `tessera chat` driven through a pipe: one reply per input line, each followed by one
# empty line and nothing else on stdout; the second turn reuses the KV cache; /save and
# /load round-trip the conversation; an overflowing conversation drops its oldest turns;
# a message too long for the context is refused without dropping anything; a failed /save
# leaves the old file whole; a template that raises is reported and the session goes on;
# Ctrl-C stops the decoding of a long message;
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

# A message that cannot fit even alone is refused before any turn is dropped.
python3 -c "print('word ' * 5000)" >"$work/long.txt"
{ printf 'Hi there.\nWhat is 2+2?\n'; cat "$work/long.txt"; printf '/stats\n/save %s\n' "$work/kept.json"; } |
    "$tessera" chat -m "$model" -c 2048 -n 8 --temp 0 -t 2 >"$work/out" 2>"$work/err"
[ $? -eq 1 ] || fail "a refused message should make the exit status 1"
grep -q 'does not fit in the context' "$work/err" || fail "no error for the over-long message: $(cat "$work/err")"
grep -q 'messages 4 ' "$work/err" || fail "the over-long message cost earlier turns: $(cat "$work/err")"
python3 - "$work/kept.json" <<'PY' || fail "the history after an over-long message: $(cat "$work/kept.json" 2>&1)"
import json, sys
m = json.load(open(sys.argv[1], encoding="utf-8"))["messages"]
assert [x["role"] for x in m] == ["user", "assistant"] * 2, m
PY

# /save that cannot finish (a one-block file size limit) leaves the old file whole.
python3 - "$work/big.json" <<'PY'
import json, sys
msgs = []
for i in range(4):
    msgs += [{"role": "user", "content": "question %d: " % i + "x" * 400},
             {"role": "assistant", "content": "an answer " * 40}]
json.dump({"messages": msgs}, open(sys.argv[1], "w"))
PY
cp "$work/big.json" "$work/big.orig"
(
    ulimit -f 1
    printf '/load %s\n/save %s\n' "$work/big.json" "$work/big.json" |
        "$tessera" chat -m "$model" -t 2 >"$work/out" 2>"$work/err"
)
cmp -s "$work/big.json" "$work/big.orig" || fail "a failed /save changed the old file: $(head -c 200 "$work/big.json")"
grep -q "error: .*big.json" "$work/err" || fail "a failed /save was not reported: $(cat "$work/err")"
ls -A "$work" | grep -q '^\.big\.json\..*\.tmp$' && fail "a failed /save left its temporary file"

# A template that raises (roles that do not alternate) is reported; the session goes on.
cat >"$work/strict.jinja" <<'JINJA'
{% for m in messages %}{% if loop.index0 > 0 and m['role'] == messages[loop.index0 - 1]['role'] %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}<|im_start|>{{ m['role'] }}
{{ m['content'] }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}
JINJA
printf '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "One"}]}' >"$work/odd.json"
printf '/load %s\nTwo\n/stats\n/save %s\n' "$work/odd.json" "$work/odd-saved.json" |
    "$tessera" chat -m "$model" --chat-template-file "$work/strict.jinja" -n 8 -t 2 >"$work/out" 2>"$work/err"
[ $? -eq 1 ] || fail "a raising template should make the exit status 1"
grep -q 'roles must alternate' "$work/err" || fail "the template's message was not shown: $(cat "$work/err")"
grep -q 'messages 3 ' "$work/err" || fail "the session did not go on after the template raised: $(cat "$work/err")"
python3 - "$work/odd.json" "$work/odd-saved.json" <<'PY' || fail "/save after the template raised lost the conversation"
import json, sys
a, b = (json.load(open(p, encoding="utf-8"))["messages"] for p in sys.argv[1:3])
assert a == b, (a, b)
PY

# Ctrl-C while a long message is being read stops that decode: no reply, the message is
# not added, the session goes on (SIGINT about a second into a prompt that takes several).
python3 -c "print('word ' * 3000)" >"$work/longmsg.txt"
printf '/stats\n' >>"$work/longmsg.txt"
"$tessera" chat -m "$model" -c 8192 -n 8 --temp 0 -t 2 --verbose <"$work/longmsg.txt" >"$work/out" 2>"$work/err" &
chat_pid=$!
sleep 1.5
kill -INT "$chat_pid" 2>/dev/null
wait "$chat_pid"
grep -q 'stopped before the reply' "$work/err" || fail "Ctrl-C did not stop the prompt's decode: $(head -c 300 "$work/err")"
grep -q '^\[turn 1:' "$work/err" && fail "the prompt was decoded to the end despite Ctrl-C"
grep -q 'messages 0 ' "$work/err" || fail "the stopped message was kept, or the session ended: $(cat "$work/err")"
[ -s "$work/out" ] && fail "a reply was printed after Ctrl-C: $(head -c 200 "$work/out")"

echo "chat: $failures failures"
[ "$failures" -eq 0 ]
