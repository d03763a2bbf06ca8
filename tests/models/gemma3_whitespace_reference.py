#!/usr/bin/env python3
"""Reference perplexity of Gemma 3 270M on whitespace-rich text, on independent token ids.

The tokenizer is Hugging Face `tokenizers` rebuilt from the GGUF's own vocabulary the way
Hugging Face converts a SentencePiece BPE model (merges from pairs of pieces ordered by the
merged piece's score, byte fallback, spaces as U+2581) with Gemma's user-defined tokens
(runs of spaces, tabs and newlines, HTML tags) as added tokens. It must give exactly the
expected ids of the shared Gemma 3 vocabulary corpus before its ids are used. The forward
pass is gemma3_reference.py's NumPy float64 one; perplexity as llama.cpp computes it
(chunks of N_CTX tokens, BOS first in each chunk, second half scored).

Writes reference/gemma3-270m-whitespace.txt:
  ppl_tokens ...   ids of data/whitespace.txt (BOS first)
  n_ctx N_CTX
  chunk K PPL      running perplexity after each chunk
  final PPL

    /tmp/ref/bin/pip install numpy gguf tokenizers
    /tmp/ref/bin/python tests/models/gemma3_whitespace_reference.py MODEL.gguf ../shared/data/vocab [N_CTX]
"""
import sys
from pathlib import Path

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers

sys.path.insert(0, str(Path(__file__).parent))
from gemma3_reference import perplexity_lines  # noqa: E402
from llama_reference import load  # noqa: E402

USER_DEFINED, CONTROL = 4, 3


def tokenizer_from_gguf(path):
    f = GGUFReader(str(path)).fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    vocab = {t: i for i, t in enumerate(tokens)}
    # Every split of a piece into two pieces is a merge; the higher the merged piece's
    # score, the earlier the merge (a stable sort keeps the splits' order among equals).
    merges = []
    for i, piece in enumerate(tokens):
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend((scores[i], lr) for lr in local)
    merges.sort(key=lambda m: -m[0])
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[lr for _, lr in merges], byte_fallback=True,
                               unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.add_tokens([AddedToken(t, normalized=False, special=False)
                    for t, ty in zip(tokens, types) if ty == USER_DEFINED])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t, ty in zip(tokens, types) if ty == CONTROL])
    tok.encode_special_tokens = True  # control-token text is plain text, as without parse-special
    return tok


def check_corpus(tok, vocab_dir):
    inp = (vocab_dir / "ggml-vocab-gemma-3.gguf.inp").read_text(encoding="utf-8")
    strings = inp.split("\n__ggml_vocab_test__\n")[:-1]
    expected = [[int(v) for v in line.split()]
                for line in (vocab_dir / "ggml-vocab-gemma-3.gguf.out").read_text().splitlines()]
    bad = [s for s, e in zip(strings, expected) if tok.encode(s, add_special_tokens=False).ids != e]
    if bad:
        sys.exit(f"the rebuilt tokenizer misses {len(bad)} of {len(strings)} corpus strings, e.g. {bad[0]!r}")
    print(f"rebuilt tokenizer: {len(strings)} of {len(strings)} corpus strings exact")


def main():
    model, vocab_dir = Path(sys.argv[1]), Path(sys.argv[2])
    n_ctx = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    tok = tokenizer_from_gguf(model)
    check_corpus(tok, vocab_dir)
    text = (Path(__file__).parent / "data" / "whitespace.txt").read_text(encoding="utf-8")
    meta, t = load(model)
    bos = meta["tokenizer.ggml.bos_token_id"]
    ids = [bos] + tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids[1:]) == text
    lines = ["ppl_tokens " + " ".join(map(str, ids)), f"n_ctx {n_ctx}"]
    lines += perplexity_lines(meta, t, ids, n_ctx)
    out = Path(__file__).parent / "reference" / "gemma3-270m-whitespace.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"{len(ids)} tokens; {lines[-1]}")


if __name__ == "__main__":
    main()
