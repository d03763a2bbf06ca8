// Unicode look-ups over the generated range tables, with a dense table for the Basic
// Multilingual Plane (built once, on first use) so the common case costs one load.
#include "runtime/vocab/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "runtime/vocab/unicode_tables.inc"

namespace tessera::vocab {

static_assert(std::string_view(tables::kCategoryOrder) == kCategoryOrder,
              "unicode_tables.inc numbers the categories differently from tessera::vocab::Category");

namespace {

Category category_from_runs(uint32_t cp) {
    // Runs are sorted by first code point; find the last run starting at or before cp.
    const uint32_t key = (cp << 5) | 31u;
    const uint32_t* end = std::end(tables::kCategoryRuns);
    const uint32_t* it = std::upper_bound(std::begin(tables::kCategoryRuns), end, key);
    return static_cast<Category>(*(it - 1) & 31u);
}

bool white_space_from_ranges(uint32_t cp) {
    for (const auto& r : tables::kWhiteSpace)
        if (cp >= r[0] && cp <= r[1]) return true;
    return false;
}

uint8_t flags_of(Category c, bool space) {
    uint8_t f = space ? kSpace : 0;
    switch (c) {
        case Category::Lu:
        case Category::Lt:
            f |= kLetter | kUpperLike;
            break;
        case Category::Ll:
            f |= kLetter | kLowerLike;
            break;
        case Category::Lm:
        case Category::Lo:
            f |= kLetter | kUpperLike | kLowerLike;
            break;
        case Category::Mn:
        case Category::Mc:
        case Category::Me:
            f |= kMark | kUpperLike | kLowerLike;
            break;
        case Category::Nd:
        case Category::Nl:
        case Category::No:
            f |= kNumber;
            break;
        case Category::Pc:
        case Category::Pd:
        case Category::Ps:
        case Category::Pe:
        case Category::Pi:
        case Category::Pf:
        case Category::Po:
            f |= kPunct;
            break;
        case Category::Sm:
        case Category::Sc:
        case Category::Sk:
        case Category::So:
            f |= kSymbol;
            break;
        default:
            break;
    }
    return f;
}

// Dense category and flag tables for U+0000..U+FFFF.
struct BmpTables {
    std::array<Category, 0x10000> category;
    std::array<uint8_t, 0x10000> flags;
    BmpTables() {
        const size_t n = std::size(tables::kCategoryRuns);
        for (size_t i = 0; i < n; ++i) {
            uint32_t first = tables::kCategoryRuns[i] >> 5;
            if (first >= 0x10000) break;
            uint32_t last = i + 1 < n ? (tables::kCategoryRuns[i + 1] >> 5) : 0x110000;
            auto c = static_cast<Category>(tables::kCategoryRuns[i] & 31u);
            for (uint32_t cp = first; cp < last && cp < 0x10000; ++cp) category[cp] = c;
        }
        for (uint32_t cp = 0; cp < 0x10000; ++cp) flags[cp] = flags_of(category[cp], white_space_from_ranges(cp));
    }
};

const BmpTables& bmp() {
    static const BmpTables t;
    return t;
}

template <typename Row>
const Row* find_row(const Row* begin, const Row* end, uint32_t cp) {
    // Rows are {first, last, ...} sorted by first; the candidate is the last row with first <= cp.
    const Row* it = std::upper_bound(begin, end, cp, [](uint32_t v, const Row& r) { return v < r[0]; });
    if (it == begin) return nullptr;
    --it;
    return cp <= (*it)[1] ? it : nullptr;
}

// Hangul syllable algorithm constants (Unicode chapter 3.12).
constexpr uint32_t kHangulSBase = 0xAC00, kHangulLBase = 0x1100, kHangulVBase = 0x1161, kHangulTBase = 0x11A7;
constexpr uint32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr uint32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

}  // namespace

const char* unicode_version() { return tables::kUnicodeVersion; }

size_t utf8_decode(const char* s, size_t n, uint32_t* cp) {
    const auto* p = reinterpret_cast<const unsigned char*>(s);
    const unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f;
        if (c == 0xe0) lo = 0xa0;  // no overlongs
        if (c == 0xed) hi = 0x9f;  // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07;
        if (c == 0xf0) lo = 0x90;  // no overlongs
        if (c == 0xf4) hi = 0x8f;  // nothing past U+10FFFF
    } else {
        *cp = kInvalidByteBase + c;
        return 1;
    }
    if (n < len || p[1] < lo || p[1] > hi) {
        *cp = kInvalidByteBase + c;
        return 1;
    }
    v = (v << 6) | (p[1] & 0x3f);
    for (size_t k = 2; k < len; ++k) {
        if ((p[k] & 0xc0) != 0x80) {
            *cp = kInvalidByteBase + c;
            return 1;
        }
        v = (v << 6) | (p[k] & 0x3f);
    }
    *cp = v;
    return len;
}

void utf8_append(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < kInvalidByteBase) {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>((cp - kInvalidByteBase) & 0xff);
    }
}

Category category(uint32_t cp) {
    if (cp < 0x10000) return bmp().category[cp];
    if (cp >= kInvalidByteBase) return Category::Cn;
    return category_from_runs(cp);
}

bool is_white_space(uint32_t cp) { return cp < 0x10000 && (bmp().flags[cp] & kSpace); }

uint8_t char_flags(uint32_t cp) {
    if (cp < 0x10000) return bmp().flags[cp];
    if (cp >= kInvalidByteBase) return 0;
    return flags_of(category_from_runs(cp), false);  // no White_Space character lies past the BMP
}

uint32_t to_lower(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    const tables::LowerRun* begin = std::begin(tables::kLowerRuns);
    const tables::LowerRun* end = std::end(tables::kLowerRuns);
    const tables::LowerRun* it =
        std::upper_bound(begin, end, cp, [](uint32_t v, const tables::LowerRun& r) { return v < r.first; });
    if (it == begin) return cp;
    --it;
    if (cp > it->last || (cp - it->first) % it->stride != 0) return cp;
    return static_cast<uint32_t>(static_cast<int32_t>(cp) + it->delta);
}

void append_lower(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE: the one unconditional 1:2 mapping
        out.push_back('i');
        out.push_back(0x307);
        return;
    }
    out.push_back(to_lower(cp));
}

uint8_t combining_class(uint32_t cp) {
    if (cp < 0x300) return 0;
    const auto* row = find_row(std::begin(tables::kCombiningClass), std::end(tables::kCombiningClass), cp);
    return row ? static_cast<uint8_t>((*row)[2]) : 0;
}

void append_nfd(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp < 0xc0) {
        out.push_back(cp);
        return;
    }
    if (cp >= kHangulSBase && cp < kHangulSBase + kHangulSCount) {
        const uint32_t s = cp - kHangulSBase;
        out.push_back(kHangulLBase + s / kHangulNCount);
        out.push_back(kHangulVBase + (s % kHangulNCount) / kHangulTCount);
        if (s % kHangulTCount) out.push_back(kHangulTBase + s % kHangulTCount);
        return;
    }
    const auto* begin = std::begin(tables::kDecompIndex);
    const auto* end = std::end(tables::kDecompIndex);
    const auto* it = std::lower_bound(begin, end, cp, [](const uint32_t(&r)[2], uint32_t v) { return r[0] < v; });
    if (it == end || (*it)[0] != cp) {
        out.push_back(cp);
        return;
    }
    const uint32_t off = (*it)[1] >> 3, len = (*it)[1] & 7;
    out.insert(out.end(), tables::kDecompPool + off, tables::kDecompPool + off + len);
}

void to_nfd(const std::vector<uint32_t>& in, std::vector<uint32_t>& out) {
    out.clear();
    for (uint32_t cp : in) append_nfd(cp, out);
    // Canonical ordering: a stable sort by class of every run of non-starters.
    size_t i = 0;
    while (i < out.size()) {
        if (combining_class(out[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < out.size() && combining_class(out[j]) != 0) ++j;
        if (j - i > 1)
            std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i), out.begin() + static_cast<std::ptrdiff_t>(j),
                             [](uint32_t a, uint32_t b) { return combining_class(a) < combining_class(b); });
        i = j;
    }
}

std::vector<uint32_t> decode_utf8(std::string_view text) {
    std::vector<uint32_t> out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        uint32_t cp;
        i += utf8_decode(text.data() + i, text.size() - i, &cp);
        out.push_back(cp);
    }
    return out;
}

}  // namespace tessera::vocab
