#!/usr/bin/env python3
"""Generates runtime/vocab/unicode_tables.inc: the Unicode data the tokenizers need.

Reads the Unicode Character Database as Debian's `unicode-data` package installs it
(/usr/share/unicode: UnicodeData.txt, PropList.txt, ReadMe.txt) and writes compact
range tables:

  - general category of every code point, as runs (unassigned code points are Cn);
  - the White_Space property (what \\s means in the pre-tokenizer patterns);
  - simple lower-case mappings, as runs of equal delta and stride;
  - full canonical decompositions (for NFD), already applied recursively;
  - canonical combining classes (for NFD's canonical ordering).

The output is committed, so a build needs neither Python nor the UCD. Run it again when
moving to a newer Unicode version:

    python3 scripts/gen_unicode_tables.py [--ucd /usr/share/unicode] [--out runtime/vocab/unicode_tables.inc]
"""

import argparse
import os
import re
import sys

# The order of this list is the numbering of tessera::vocab::Category (runtime/vocab/unicode.h).
CATEGORIES = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
              "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"]
MAX_CP = 0x10FFFF


def read_unicode_data(path):
    """Returns (category per code point, simple lowercase dict, decomposition dict, ccc dict)."""
    cat = ["Cn"] * (MAX_CP + 1)
    lower = {}
    decomp = {}
    ccc = {}
    range_start = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split(";")
            if len(fields) < 15:
                continue
            cp = int(fields[0], 16)
            name, gc, cc, dm, low = fields[1], fields[2], int(fields[3]), fields[5], fields[13]
            if name.endswith(", First>"):
                range_start = cp
                continue
            if name.endswith(", Last>"):
                for c in range(range_start, cp + 1):
                    cat[c] = gc
                    if cc:
                        ccc[c] = cc
                range_start = None
                continue
            cat[cp] = gc
            if cc:
                ccc[cp] = cc
            if low:
                lower[cp] = int(low, 16)
            if dm and not dm.startswith("<"):  # canonical decompositions only
                decomp[cp] = [int(x, 16) for x in dm.split()]
    return cat, lower, decomp, ccc


def read_white_space(path):
    ranges = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cps, prop = [x.strip() for x in line.split(";")]
            if prop != "White_Space":
                continue
            if ".." in cps:
                a, b = cps.split("..")
                ranges.append((int(a, 16), int(b, 16)))
            else:
                ranges.append((int(cps, 16), int(cps, 16)))
    return sorted(ranges)


def unicode_version(ucd):
    """The version named by ReadMe.txt or DerivedAge.txt's header, e.g. '15.0.0'."""
    for name, pattern in (("ReadMe.txt", r"Version (\d+\.\d+\.\d+)"), ("DerivedAge.txt", r"DerivedAge-(\d+\.\d+\.\d+)")):
        p = os.path.join(ucd, name)
        if os.path.exists(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                m = re.search(pattern, f.read(4000))
                if m:
                    return m.group(1)
    sys.exit("error: cannot tell the Unicode version of " + ucd)


def category_runs(cat):
    runs = []
    prev = None
    for cp in range(MAX_CP + 1):
        if cat[cp] != prev:
            runs.append((cp, CATEGORIES.index(cat[cp])))
            prev = cat[cp]
    return runs


def lower_runs(lower):
    """Groups (cp -> lower) pairs into runs {first, last, delta, stride} of stride 1 or 2."""
    items = sorted((cp, lo - cp) for cp, lo in lower.items() if lo != cp)
    runs = []
    i = 0
    while i < len(items):
        first, delta = items[i]
        stride = 1
        if i + 1 < len(items) and items[i + 1][1] == delta and items[i + 1][0] - first in (1, 2):
            stride = items[i + 1][0] - first
        last = first
        j = i + 1
        while j < len(items) and items[j][1] == delta and items[j][0] == last + stride:
            last = items[j][0]
            j += 1
        runs.append((first, last, delta, stride))
        i = j
    return runs


def full_decomposition(cp, decomp):
    if cp not in decomp:
        return [cp]
    out = []
    for c in decomp[cp]:
        out.extend(full_decomposition(c, decomp))
    return out


def ccc_runs(ccc):
    runs = []
    for cp in sorted(ccc):
        if runs and runs[-1][1] == cp - 1 and runs[-1][2] == ccc[cp]:
            runs[-1] = (runs[-1][0], cp, ccc[cp])
        else:
            runs.append((cp, cp, ccc[cp]))
    return runs


def wrap(items, per_line):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append("    " + " ".join(items[i:i + per_line]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ucd", default="/usr/share/unicode", help="folder with UnicodeData.txt and PropList.txt")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.normpath(os.path.join(here, "..", "runtime", "vocab", "unicode_tables.inc")))
    args = ap.parse_args()

    data = os.path.join(args.ucd, "UnicodeData.txt")
    props = os.path.join(args.ucd, "PropList.txt")
    for p in (data, props):
        if not os.path.exists(p):
            sys.exit(f"error: {p} not found (install Debian's unicode-data package: apt-get install -y unicode-data)")
    version = unicode_version(args.ucd)
    cat, lower, decomp, ccc = read_unicode_data(data)
    white = read_white_space(props)

    cruns = category_runs(cat)
    lruns = lower_runs(lower)
    # Hangul syllables decompose algorithmically; they have no entries in UnicodeData.txt.
    dentries = []
    pool = []
    for cp in sorted(decomp):
        full = full_decomposition(cp, decomp)
        assert 1 <= len(full) <= 7, (hex(cp), full)
        dentries.append((cp, len(pool), len(full)))
        pool.extend(full)
    assert len(pool) < (1 << 24)
    truns = ccc_runs(ccc)

    # Self-checks of the run encodings against the source data.
    for first, last, delta, stride in lruns:
        for c in range(first, last + 1, stride):
            assert lower[c] == c + delta
    assert sum(len(range(f, l + 1, s)) for f, l, _, s in lruns) == sum(1 for c, lo in lower.items() if lo != c)

    out = []
    out.append("// Unicode tables for the tokenizers: general categories, White_Space, simple lower case,")
    out.append("// canonical decompositions and combining classes.")
    out.append(f"// Generated by scripts/gen_unicode_tables.py from the Unicode Character Database {version}")
    out.append("// (Debian's unicode-data package). Do not edit; run the script again instead.")
    out.append("// Included once, by runtime/vocab/unicode.cpp.")
    out.append("")
    out.append("namespace tessera::vocab::tables {")
    out.append("")
    out.append(f'inline constexpr const char* kUnicodeVersion = "{version}";')
    out.append("")
    out.append("// Category numbering (must match tessera::vocab::Category).")
    out.append(f'inline constexpr const char* kCategoryOrder = "{" ".join(CATEGORIES)}";')
    out.append("")
    out.append("// General category runs: (first code point << 5) | category. A run lasts until the next")
    out.append(f"// entry's first code point; the last lasts to U+10FFFF. {len(cruns)} runs.")
    out.append("inline constexpr uint32_t kCategoryRuns[] = {")
    out.append(wrap([f"0x{(cp << 5) | c:x}," for cp, c in cruns], 10))
    out.append("};")
    out.append("")
    out.append("// White_Space code points as [first, last] ranges.")
    out.append("inline constexpr uint32_t kWhiteSpace[][2] = {")
    out.append(wrap([f"{{0x{a:X}, 0x{b:X}}}," for a, b in white], 6))
    out.append("};")
    out.append("")
    out.append("// Simple lower-case mappings: code points first, first + stride, ..., last map to cp + delta.")
    out.append("struct LowerRun {")
    out.append("    uint32_t first, last;")
    out.append("    int32_t delta;")
    out.append("    uint32_t stride;")
    out.append("};")
    out.append(f"inline constexpr LowerRun kLowerRuns[] = {{  // {len(lruns)} runs")
    out.append(wrap([f"{{0x{f:X}, 0x{l:X}, {d}, {s}}}," for f, l, d, s in lruns], 4))
    out.append("};")
    out.append("")
    out.append("// Full canonical decompositions: {code point, (offset into kDecompPool << 3) | length}.")
    out.append(f"inline constexpr uint32_t kDecompIndex[][2] = {{  // {len(dentries)} entries")
    out.append(wrap([f"{{0x{cp:X}, 0x{(off << 3) | n:X}}}," for cp, off, n in dentries], 6))
    out.append("};")
    out.append("inline constexpr uint32_t kDecompPool[] = {")
    out.append(wrap([f"0x{c:X}," for c in pool], 10))
    out.append("};")
    out.append("")
    out.append("// Canonical combining classes other than 0, as [first, last, class] runs.")
    out.append(f"inline constexpr uint32_t kCombiningClass[][3] = {{  // {len(truns)} runs")
    out.append(wrap([f"{{0x{a:X}, 0x{b:X}, {c}}}," for a, b, c in truns], 5))
    out.append("};")
    out.append("")
    out.append("}  // namespace tessera::vocab::tables")
    out.append("")

    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    print(f"wrote {args.out}: Unicode {version}, {len(cruns)} category runs, {len(lruns)} lower-case runs, "
          f"{len(dentries)} decompositions, {len(truns)} combining-class runs")


if __name__ == "__main__":
    main()
