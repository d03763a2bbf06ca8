#!/usr/bin/env python3
"""Independent reference values for the real SmolLM2-135M-Instruct model.

Tokenization by Hugging Face `tokenizers` (a byte-level BPE built from the GGUF's own
vocabulary and merges, with SmolLM2's pre-tokenizer: single digits, then the GPT-2
split), and the forward pass by the NumPy Llama implementation of llama_reference.py
(float64, keys and values rounded to float16 like Tessera's default cache). Writes
reference/smollm2-135m-instruct.txt:
  prompt_tokens ...        the greedy prompt's ids
  greedy ...               32 greedy continuation ids
  ppl_tokens ...           the ids of data/perplexity.txt
  chunk K PPL              running perplexity after each chunk (n_ctx 128)
  final PPL

Run (outside CI; the output is committed):
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy gguf tokenizers
    /tmp/ref/bin/python tests/models/smollm2_reference.py $(scripts/get-model.sh smollm2-135m-instruct)
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers, decoders

sys.path.insert(0, str(Path(__file__).parent))
from llama_reference import forward, load  # noqa: E402

N_CTX = 128
PROMPT = "The capital of France is"


def tokenizer_from_gguf(path):
    r = GGUFReader(str(path))
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    merges = [tuple(bytes(f["tokenizer.ggml.merges"].parts[i]).decode().split(" ")) for i in f["tokenizer.ggml.merges"].data]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def main():
    model = Path(sys.argv[1])
    out = Path(__file__).parent / "reference" / "smollm2-135m-instruct.txt"
    tok = tokenizer_from_gguf(model)
    meta, t = load(model)

    lines = []
    prompt = tok.encode(PROMPT).ids
    lines.append("prompt_tokens " + " ".join(map(str, prompt)))
    seq = list(prompt)
    for _ in range(32):
        logits = forward(meta, t, seq, True)
        seq.append(int(np.argmax(logits[-1])))
    lines.append("greedy " + " ".join(map(str, seq[len(prompt):])))
    print("greedy:", repr(tok.decode(seq[len(prompt):])))

    text = (Path(__file__).parent / "data" / "perplexity.txt").read_text()
    ids = tok.encode(text).ids
    lines.append("ppl_tokens " + " ".join(map(str, ids)))
    nll, count = 0.0, 0
    for c in range(len(ids) // N_CTX):
        chunk = ids[c * N_CTX:(c + 1) * N_CTX]  # SmolLM2 adds no BOS
        logits = forward(meta, t, chunk, True)
        for j in range(N_CTX // 2, N_CTX - 1):
            row = logits[j]
            lse = row.max() + np.log(np.exp(row - row.max()).sum())
            nll += lse - row[chunk[j + 1]]
            count += 1
        lines.append(f"chunk {c + 1} {np.exp(nll / count):.6f}")
        print(lines[-1])
    lines.append(f"final {np.exp(nll / count):.6f}")
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
