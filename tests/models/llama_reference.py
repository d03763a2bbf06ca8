#!/usr/bin/env python3
"""Independent reference logits for the random-weight test models (Llama and kin).

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


def rope(x, pos, base, factors, neox=False):
    # x: [n, heads, hd]. Normal: adjacent pairs (2i, 2i+1); NeoX: (i, i + hd/2). Pair i
    # turns by pos * base^(-2i/hd) / factor_i.
    hd = x.shape[-1]
    i = np.arange(hd // 2)
    freq = base ** (-2.0 * i / hd)
    if factors is not None:
        freq = freq / factors
    theta = pos[:, None] * freq[None, :]  # [n, hd/2]
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    if neox:
        x0, x1 = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def forward(meta, t, tokens, f16_cache):
    """Logits [n, n_vocab] of the families llama (optionally with a sliding window),
    qwen2 (QKV biases), qwen3 (q/k head norms), phi3 (fused QKV and gate+up, short
    LongRoPE factors) and gemma3 (scaled embeddings, pre/post norms, q/k norms, GeGLU,
    five sliding-window layers with RoPE base 10000 to every global one) and gemma2
    (like gemma3 without q/k norms; every other layer slides; soft-capped attention scores
    and logits)."""
    a = meta["general.architecture"]
    n_layer = meta[a + ".block_count"]
    n_head = meta[a + ".attention.head_count"]
    n_kv = meta[a + ".attention.head_count_kv"]
    eps = meta[a + ".attention.layer_norm_rms_epsilon"]
    base = meta[a + ".rope.freq_base"]
    window = meta.get(a + ".attention.sliding_window", 0)
    neox = a in ("qwen2", "qwen3", "phi3", "gemma2", "gemma3")
    gemma3 = a == "gemma3"
    gemma = a in ("gemma2", "gemma3")
    attn_cap = meta.get(a + ".attn_logit_softcapping", 0)
    final_cap = meta.get(a + ".final_logit_softcapping", 0)
    factors = t.get("rope_freqs.weight", t.get("rope_factors_short.weight"))
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    x = t["token_embd.weight"][tokens]  # [n, n_embd]
    if gemma:
        x = x * np.sqrt(x.shape[1])
    qp, kp = pos[:, None], pos[None, :]
    causal = np.where(kp <= qp, 0.0, -np.inf)
    local = np.where((kp <= qp) & (qp - kp < window), 0.0, -np.inf) if window else causal
    for il in range(n_layer):
        p = f"blk.{il}."
        swa = window > 0 and (il % 6 < 5 if gemma3 else il % 2 == 0 if gemma else True)
        h = rms_norm(x, t[p + "attn_norm.weight"], eps)
        if p + "attn_qkv.weight" in t:
            qkv = h @ t[p + "attn_qkv.weight"].T
            hd = meta[a + ".attention.key_length"]
            q, k, v = np.split(qkv, [n_head * hd, n_head * hd + n_kv * hd], axis=1)
        else:
            q = h @ t[p + "attn_q.weight"].T + t.get(p + "attn_q.bias", 0)
            k = h @ t[p + "attn_k.weight"].T + t.get(p + "attn_k.bias", 0)
            v = h @ t[p + "attn_v.weight"].T + t.get(p + "attn_v.bias", 0)
        hd = q.shape[1] // n_head
        q, k, v = q.reshape(n, n_head, hd), k.reshape(n, n_kv, hd), v.reshape(n, n_kv, hd)
        if p + "attn_q_norm.weight" in t:
            q = rms_norm(q, t[p + "attn_q_norm.weight"], eps)
            k = rms_norm(k, t[p + "attn_k_norm.weight"], eps)
        b = 10000.0 if gemma3 and swa else base
        q = rope(q, pos, b, factors, neox)
        k = rope(k, pos, b, factors, neox)
        if f16_cache:
            k = k.astype(np.float16).astype(np.float64)
            v = v.astype(np.float16).astype(np.float64)
        group = n_head // n_kv
        mask = local if swa else causal
        out = np.zeros((n, n_head, hd))
        for hh in range(n_head):
            s = q[:, hh, :] @ k[:, hh // group, :].T / np.sqrt(hd)
            if attn_cap:
                s = attn_cap * np.tanh(s / attn_cap)
            s = s + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, hh // group, :]
        attn = out.reshape(n, n_head * hd) @ t[p + "attn_output.weight"].T
        if gemma:
            attn = rms_norm(attn, t[p + "post_attention_norm.weight"], eps)
        x = x + attn
        h = rms_norm(x, t[p + "ffn_norm.weight"], eps)
        if p + "ffn_gate.weight" in t:
            g, u = h @ t[p + "ffn_gate.weight"].T, h @ t[p + "ffn_up.weight"].T
        else:  # fused gate and up, gate first
            g, u = np.split(h @ t[p + "ffn_up.weight"].T, 2, axis=1)
        act = gelu_tanh(g) if gemma else g / (1 + np.exp(-g))
        f = (act * u) @ t[p + "ffn_down.weight"].T
        if gemma:
            f = rms_norm(f, t[p + "post_ffw_norm.weight"], eps)
        x = x + f
    x = rms_norm(x, t["output_norm.weight"], eps)
    head = t.get("output.weight", t["token_embd.weight"])
    logits = x @ head.T  # [n, n_vocab]
    if final_cap:
        logits = final_cap * np.tanh(logits / final_cap)
    return logits


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
