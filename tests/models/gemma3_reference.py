#!/usr/bin/env python3
"""Independent reference values for the real Gemma 3 270M model (Q4_K_M).

A plain NumPy (float64) Gemma 3 forward pass written from the architecture's definition
(scaled embeddings; RMS pre- and post-norms around attention and the GeGLU FFN; RMS norms
on query and key heads; NeoX RoPE with base 10000 on sliding-window layers and the file's
base on every sixth, global, layer; window from the metadata; keys and values rounded to
float16 like Tessera's default cache), reading the GGUF with the `gguf` package.

Token ids come from a file (one line of space-separated ids per text, as
`tessera tokenize --ids` prints them): the tokenizer is checked on its own against real
vocabularies, this checks the forward pass. Writes reference/gemma3-270m.txt with the
greedy continuation of the first line and the perplexity of the second (chunks of 128,
BOS first in each chunk, second half scored, as llama.cpp does).

    /tmp/ref/bin/python tests/models/gemma3_reference.py MODEL.gguf IDS.txt
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from llama_reference import load, rms_norm  # noqa: E402

N_CTX = 128


def rope_neox(x, pos, base):
    hd = x.shape[-1]
    half = hd // 2
    freq = base ** (-2.0 * np.arange(half) / hd)
    theta = pos[:, None] * freq[None, :]
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x0, x1 = x[..., :half], x[..., half:]
    return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def forward(meta, t, tokens):
    a = "gemma3"
    n_layer = meta[a + ".block_count"]
    n_head = meta[a + ".attention.head_count"]
    n_kv = meta[a + ".attention.head_count_kv"]
    hd = meta[a + ".attention.key_length"]
    eps = meta[a + ".attention.layer_norm_rms_epsilon"]
    base = meta[a + ".rope.freq_base"]
    window = meta[a + ".attention.sliding_window"]
    n_embd = meta[a + ".embedding_length"]
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    x = t["token_embd.weight"][tokens] * np.sqrt(n_embd)
    qp, kp = pos[:, None], pos[None, :]
    causal = np.where(kp <= qp, 0.0, -np.inf)
    local = np.where((kp <= qp) & (qp - kp < window), 0.0, -np.inf)
    for il in range(n_layer):
        p = f"blk.{il}."
        swa = il % 6 < 5
        h = rms_norm(x, t[p + "attn_norm.weight"], eps)
        q = (h @ t[p + "attn_q.weight"].T).reshape(n, n_head, hd)
        k = (h @ t[p + "attn_k.weight"].T).reshape(n, n_kv, hd)
        v = (h @ t[p + "attn_v.weight"].T).reshape(n, n_kv, hd)
        q = rms_norm(q, t[p + "attn_q_norm.weight"], eps)
        k = rms_norm(k, t[p + "attn_k_norm.weight"], eps)
        b = 10000.0 if swa else base
        q, k = rope_neox(q, pos, b), rope_neox(k, pos, b)
        k = k.astype(np.float16).astype(np.float64)
        v = v.astype(np.float16).astype(np.float64)
        mask = local if swa else causal
        out = np.zeros((n, n_head, hd))
        group = n_head // n_kv
        for hh in range(n_head):
            s = q[:, hh, :] @ k[:, hh // group, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, hh // group, :]
        attn = out.reshape(n, n_head * hd) @ t[p + "attn_output.weight"].T
        x = x + rms_norm(attn, t[p + "post_attention_norm.weight"], eps)
        h = rms_norm(x, t[p + "ffn_norm.weight"], eps)
        f = (gelu_tanh(h @ t[p + "ffn_gate.weight"].T) * (h @ t[p + "ffn_up.weight"].T)) @ t[p + "ffn_down.weight"].T
        x = x + rms_norm(f, t[p + "post_ffw_norm.weight"], eps)
    x = rms_norm(x, t["output_norm.weight"], eps)
    return x @ t["token_embd.weight"].T


def perplexity_lines(meta, t, ids, n_ctx):
    """Perplexity as llama.cpp computes it: chunks of n_ctx tokens, BOS first in each, the
    second half of each chunk scored. Lines 'chunk K PPL' (running) and 'final PPL'."""
    bos = meta["tokenizer.ggml.bos_token_id"]
    lines, nll, count = [], 0.0, 0
    for c in range(len(ids) // n_ctx):
        chunk = list(ids[c * n_ctx:(c + 1) * n_ctx])
        chunk[0] = bos
        logits = forward(meta, t, chunk)
        for j in range(n_ctx // 2, n_ctx - 1):
            row = logits[j]
            lse = row.max() + np.log(np.exp(row - row.max()).sum())
            nll += lse - row[ids[c * n_ctx + j + 1]]
            count += 1
        lines.append(f"chunk {c + 1} {np.exp(nll / count):.6f}")
        print(lines[-1])
    lines.append(f"final {np.exp(nll / count):.6f}")
    return lines


def main():
    model, ids_file = Path(sys.argv[1]), Path(sys.argv[2])
    prompt_line, text_line = ids_file.read_text().splitlines()[:2]
    prompt = [int(v) for v in prompt_line.split()]
    ids = [int(v) for v in text_line.split()]
    meta, t = load(model)
    lines = ["prompt_tokens " + " ".join(map(str, prompt))]
    seq = list(prompt)
    for _ in range(16):
        seq.append(int(np.argmax(forward(meta, t, seq)[-1])))
    lines.append("greedy " + " ".join(map(str, seq[len(prompt):])))
    lines.append("ppl_tokens " + " ".join(map(str, ids)))
    lines += perplexity_lines(meta, t, ids, N_CTX)
    out = Path(__file__).parent / "reference" / "gemma3-270m.txt"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:2]), lines[-1])


if __name__ == "__main__":
    main()
