#!/usr/bin/env python3
"""Independent reference logits for the random-weight Llama test models.

A plain NumPy (float64) forward pass written from the Llama definition, reading the
GGUF files with the `gguf` package from the Python package index (its own reader and
dequantizers, not Tessera's). For each model it writes reference/NAME.txt with the
file's fingerprint, the prompt, and the logits of every prompt token twice: with the
KV cache in float32, and with keys and values rounded to float16 as Tessera's default
F16 cache stores them.

Run (outside CI; the outputs are committed):
    build/tests/random-models /tmp/models > /tmp/models/list.txt
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy gguf
    /tmp/ref/bin/python tests/models/llama_reference.py /tmp/models /tmp/models/list.txt tests/models/reference
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def load(path):
    r = GGUFReader(str(path))
    meta = {}
    for f in r.fields.values():
        if f.types and f.types[0] != 9:  # scalars and strings
            v = f.parts[f.data[0]]
            meta[f.name] = bytes(v).decode() if f.types[0] == 8 else v[0].item()
    tensors = {}
    for t in r.tensors:
        # numpy shape is the reverse of GGUF's ne: [ne1, ne0] for a matrix.
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        tensors[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
    return meta, tensors


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, base, factors):
    # x: [n, heads, hd]; adjacent pairs (2i, 2i+1) rotate by pos * base^(-2i/hd) / factor_i.
    hd = x.shape[-1]
    i = np.arange(hd // 2)
    freq = base ** (-2.0 * i / hd)
    if factors is not None:
        freq = freq / factors
    theta = pos[:, None] * freq[None, :]  # [n, hd/2]
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward(meta, t, tokens, f16_cache):
    a = meta["general.architecture"]
    n_layer = meta[a + ".block_count"]
    n_head = meta[a + ".attention.head_count"]
    n_kv = meta[a + ".attention.head_count_kv"]
    eps = meta[a + ".attention.layer_norm_rms_epsilon"]
    base = meta[a + ".rope.freq_base"]
    factors = t.get("rope_freqs.weight")
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    x = t["token_embd.weight"][tokens]  # [n, n_embd]
    for il in range(n_layer):
        p = f"blk.{il}."
        h = rms_norm(x, t[p + "attn_norm.weight"], eps)
        q = h @ t[p + "attn_q.weight"].T
        k = h @ t[p + "attn_k.weight"].T
        v = h @ t[p + "attn_v.weight"].T
        hd = q.shape[1] // n_head
        q = rope(q.reshape(n, n_head, hd), pos, base, factors)
        k = rope(k.reshape(n, n_kv, hd), pos, base, factors)
        v = v.reshape(n, n_kv, hd)
        if f16_cache:
            k = k.astype(np.float16).astype(np.float64)
            v = v.astype(np.float16).astype(np.float64)
        group = n_head // n_kv
        out = np.zeros((n, n_head, hd))
        causal = np.triu(np.full((n, n), -np.inf), 1)
        for hh in range(n_head):
            s = q[:, hh, :] @ k[:, hh // group, :].T / np.sqrt(hd) + causal
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, hh // group, :]
        x = x + out.reshape(n, n_head * hd) @ t[p + "attn_output.weight"].T
        h = rms_norm(x, t[p + "ffn_norm.weight"], eps)
        g = h @ t[p + "ffn_gate.weight"].T
        u = h @ t[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ t[p + "ffn_down.weight"].T
    x = rms_norm(x, t["output_norm.weight"], eps)
    head = t.get("output.weight", t["token_embd.weight"])
    return x @ head.T  # [n, n_vocab]


def main():
    models, listing, out_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    for line in listing.read_text().splitlines():
        name, fingerprint, *tok = line.split()
        tokens = [int(x) for x in tok]
        meta, t = load(models / (name + ".gguf"))
        with open(out_dir / (name + ".txt"), "w") as f:
            f.write(f"fingerprint {fingerprint}\n")
            f.write("tokens " + " ".join(map(str, tokens)) + "\n")
            for cache, f16 in (("f32", False), ("f16", True)):
                logits = forward(meta, t, tokens, f16)
                for row in logits:
                    f.write(cache + " " + " ".join(f"{v:.9g}" for v in row) + "\n")
        print(name, "done")


if __name__ == "__main__":
    main()
