#!/usr/bin/env python3
"""Reference ids for a byte-level BPE vocabulary with user-defined added tokens.

The vocabulary is GPT-2's (the shared ggml-vocab-gpt-2.gguf: tokens, merges, the GPT-2
split) with the tokens of ADDED appended as user-defined tokens (ids 50257, ...), the way
converters store a model's non-special added tokens: runs of spaces as GPT-NeoX has them,
runs of tabs and newlines, tag-like words and CJK text. Hugging Face `tokenizers` encodes
every test string (the shared GPT-2 test strings, then whitespace-rich code and prose);
vocab_test builds the same vocabulary with Tessera's GGUF writer and must give the same ids.

The added tokens are chosen so that no two can overlap with the later one longer (where
`tokenizers` takes the leftmost match and llama.cpp the longest: llama.cpp's reading is
Tessera's reference there, tested on its own in vocab_test).

Writes reference/gpt2-added-tokens.txt, one record per line, strings as hex:
  added HEX             an added token's text, in id order
  case HEX ID ID ...    a test string and its ids

Run (outside CI; the output is committed):
    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install gguf tokenizers
    /tmp/ref/bin/python tests/tokenizer/added_tokens_reference.py ../shared/data/vocab
"""
import sys
from pathlib import Path

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

ADDED = [" " * n for n in range(2, 9)] + ["\t\t", "\t\t\t", "\n\n", "\n\n\n", "<think>", "</think>",
                                          "中", "中文", "€", "def ", "<|tool|>", "§§"]

EXTRA = [
    "def f(x):\n    return x  # two  spaces\n\n\n\tdone\t\tdone",
    "a  b   c    d     e      f       g        h         i",
    "x" + " " * 40 + "y",
    "  leading and trailing  ",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<think><think></think>",
    "中文 and 中 and 中中文文 €5 and 5€",
    "<|tool|>call<|tool|> <|tool|> §§§ x§§y",
    "undefined defer def def  def",
    "\n\n\n\n\n\n\n",
    "\t\t\t\t\t",
    "    if (x) {\n        y();\n    }\n",
]


def main():
    vocab_dir = Path(sys.argv[1])
    r = GGUFReader(str(vocab_dir / "ggml-vocab-gpt-2.gguf"))
    f = r.fields
    tokens = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
    merges = [tuple(bytes(f["tokenizer.ggml.merges"].parts[i]).decode().split(" "))
              for i in f["tokenizer.ggml.merges"].data]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    for t in ADDED:
        assert t not in tokens, f"{t!r} is already a GPT-2 token"
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in ADDED])
    for i, t in enumerate(ADDED):
        assert tok.token_to_id(t) == len(tokens) + i

    inp = (vocab_dir / "ggml-vocab-gpt-2.gguf.inp").read_text(encoding="utf-8")
    strings = inp.split("\n__ggml_vocab_test__\n")[:-1] + EXTRA

    lines = ["added " + t.encode().hex() for t in ADDED]
    for s in strings:
        ids = tok.encode(s, add_special_tokens=False).ids
        lines.append(" ".join(["case", s.encode().hex() or "-"] + [str(i) for i in ids]))
    out = Path(__file__).parent / "reference" / "gpt2-added-tokens.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {len(ADDED)} added tokens, {len(strings)} cases")


if __name__ == "__main__":
    main()
