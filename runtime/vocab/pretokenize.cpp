// The split rules of the BPE pre-tokenizers, and the table from `tokenizer.ggml.pre` names
// to rule sequences. Each rule is a matcher: given a position inside a piece it returns
// where the regular expression's leftmost-first match starting there ends (or 0 for no
// match), following the backtracking order a regex engine would. Look-arounds see only
// the piece, as when the regex runs on the piece alone.
#include "runtime/vocab/pretokenize.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <utility>

#include "runtime/vocab/unicode.h"

namespace tessera::vocab {

namespace {

struct CpRange {
    uint32_t first, last;
};

bool in_ranges(const CpRange* begin, const CpRange* end, uint32_t cp) {
    for (const CpRange* r = begin; r != end; ++r)
        if (cp >= r->first && cp <= r->last) return true;
    return false;
}

// [A-Za-zµÀ-ÖØ-öø-ƺ...] of DeepSeek LLM's tokenizer (a subset of the cased letters).
constexpr CpRange kDeepseekLetters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},       {0xD8, 0xF6},
    {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},     {0x295, 0x2AF},     {0x370, 0x373},
    {0x376, 0x377},     {0x37B, 0x37D},     {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},
    {0x38C, 0x38C},     {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},   {0x2102, 0x2102},   {0x2107, 0x2107},
    {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},
    {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},   {0xA680, 0xA69B},   {0xA722, 0xA76F},
    {0xA771, 0xA787},   {0xA78B, 0xA78E},   {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
// [!-/:-~！-／：-～‘-‟　-。]
constexpr CpRange kDeepseekPunct[] = {{0x21, 0x2F},     {0x3A, 0x7E},     {0xFF01, 0xFF0F},
                                      {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}};
// [一-龥ࠀ-一가-퟿]
constexpr CpRange kDeepseekCjk[] = {{0x4E00, 0x9FA5}, {0x800, 0x4E00}, {0xAC00, 0xD7FF}};
// [一-龥぀-ゟ゠-ヿ]
constexpr CpRange kDeepseekV3Cjk[] = {{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}};
// The characters BLOOM's [^(\s|.,!?…。，、।۔،)] excludes besides \s.
constexpr uint32_t kBloomStops[] = {'(',    '|',    ')',    '.',    ',',   '!',   '?',
                                    0x2026, 0x3002, 0xFF0C, 0x3001, 0x964, 0x6D4, 0x60C};

bool is_deepseek_letter(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z');
    // The ranges are sorted: find the last one starting at or before cp.
    const CpRange* end = std::end(kDeepseekLetters);
    const CpRange* it = std::upper_bound(std::begin(kDeepseekLetters), end, cp,
                                         [](uint32_t v, const CpRange& r) { return v < r.first; });
    return it != std::begin(kDeepseekLetters) && cp <= (it - 1)->last;
}

constexpr uint32_t kNone = 0xFFFFFFFFu;  // "no character": past the end of the piece

bool is_ascii_punct(uint32_t c) {
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
}
bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

// A piece of the text, as the matchers see it.
struct Piece {
    const uint32_t* cp;
    const uint8_t* fl;
    size_t end;

    uint32_t at(size_t i) const { return i < end ? cp[i] : kNone; }
    // The character at i has any of the flags in `mask`.
    bool any(size_t i, uint8_t mask) const { return i < end && (fl[i] & mask); }
    // The character at i has none of the flags in `mask` (false past the end).
    bool none(size_t i, uint8_t mask) const { return i < end && !(fl[i] & mask); }
    size_t run_any(size_t i, uint8_t mask) const {
        while (i < end && (fl[i] & mask)) ++i;
        return i;
    }
    size_t run_none(size_t i, uint8_t mask) const {
        while (i < end && !(fl[i] & mask)) ++i;
        return i;
    }
    template <typename Pred>
    size_t run_if(size_t i, Pred pred) const {
        while (i < end && pred(cp[i])) ++i;
        return i;
    }
    // [^\s\p{L}\p{N}]: a character that is none of space, letter, number.
    bool other(size_t i) const { return none(i, kSpace | kLetter | kNumber); }
};

// 's|'t|'re|'ve|'m|'ll|'d, case-insensitively when `ci`. Returns the end or 0.
size_t contraction(const Piece& p, size_t i, bool ci) {
    if (p.at(i) != '\'') return 0;
    auto lower = [&](size_t k) {
        uint32_t c = p.at(k);
        return (ci && c >= 'A' && c <= 'Z') ? c + 32 : c;
    };
    const uint32_t a = lower(i + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    const uint32_t b = lower(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
}

// The whitespace tail shared by most rules, at a whitespace character i:
// \s*[\r\n]+ (when `newline_group`) | \s+(?!\S) | \s+
size_t space_tail(const Piece& p, size_t i, bool newline_group) {
    const size_t w = p.run_any(i, kSpace);
    if (newline_group) {
        // \s* backtracks from the end of the run to the last line break in it.
        for (size_t k = w; k > i; --k)
            if (is_crlf(p.cp[k - 1])) return k;
    }
    if (w == p.end) return w;      // \s+(?!\S) at the end of the piece
    if (w - i >= 2) return w - 1;  // leave the last space to the word that follows
    return w;                      // \s+
}

size_t crlf_tail(const Piece& p, size_t k, bool slash) {
    while (k < p.end && (is_crlf(p.cp[k]) || (slash && p.cp[k] == '/'))) ++k;
    return k;
}

size_t match_gpt2(const Piece& p, size_t i) {
    if (size_t m = contraction(p, i, false)) return m;
    const size_t j = p.cp[i] == ' ' ? i + 1 : i;  // " ?" then one of three classes
    if (p.any(j, kLetter)) return p.run_any(j, kLetter);
    if (p.any(j, kNumber)) return p.run_any(j, kNumber);
    if (p.other(j)) return p.run_none(j, kSpace | kLetter | kNumber);
    return space_tail(p, i, false);  // p.cp[i] is whitespace here
}

// Llama 3 and its relatives: `max_digits` 3 or 1; `tail` 0: none, 1: [\r\n]*.
size_t match_llama3(const Piece& p, size_t i, size_t max_digits, bool crlf_after_punct) {
    if (size_t m = contraction(p, i, true)) return m;
    const uint32_t c = p.cp[i];
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (!is_crlf(c) && !(p.fl[i] & (kLetter | kNumber)) && p.any(i + 1, kLetter)) return p.run_any(i + 1, kLetter);
    if (p.fl[i] & kLetter) return p.run_any(i, kLetter);
    // \p{N}{1,max}
    if (p.fl[i] & kNumber) {
        size_t k = i + 1;
        while (k - i < max_digits && p.any(k, kNumber)) ++k;
        return k;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const size_t j = (c == ' ' && p.other(i + 1)) ? i + 1 : i;
    if (p.other(j))
        return crlf_after_punct ? crlf_tail(p, p.run_none(j, kSpace | kLetter | kNumber), false)
                                : p.run_none(j, kSpace | kLetter | kNumber);
    return space_tail(p, i, true);
}

// [^\r\n\p{L}\p{N}]?[U]*[L]+C? | [^\r\n\p{L}\p{N}]?[U]+[L]*C? with U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}],
// L = [\p{Ll}\p{Lm}\p{Lo}\p{M}], C the optional contraction (GPT-4o only). Returns the end or 0.
size_t match_cased_word(const Piece& p, size_t i, bool with_contraction) {
    const uint32_t c = p.cp[i];
    const bool lead = !is_crlf(c) && !(p.fl[i] & (kLetter | kNumber));
    auto finish = [&](size_t end) {
        if (with_contraction)
            if (size_t m = contraction(p, end, true)) return m;
        return end;
    };
    // First alternative: U* greedy, then backtrack until L+ can start.
    auto upper_then_lower = [&](size_t j) -> size_t {
        const size_t u = p.run_any(j, kUpperLike);
        for (size_t k = u + 1; k-- > j;)
            if (p.any(k, kLowerLike)) return p.run_any(k, kLowerLike);
        return 0;
    };
    if (lead)
        if (size_t m = upper_then_lower(i + 1)) return finish(m);
    if (size_t m = upper_then_lower(i)) return finish(m);
    // Second alternative: U+ greedy, then L*.
    if (lead && p.any(i + 1, kUpperLike)) return finish(p.run_any(p.run_any(i + 1, kUpperLike), kLowerLike));
    if (p.fl[i] & kUpperLike) return finish(p.run_any(p.run_any(i, kUpperLike), kLowerLike));
    return 0;
}

size_t match_tekken(const Piece& p, size_t i, bool gpt4o) {
    if (size_t m = match_cased_word(p, i, gpt4o)) return m;
    if (p.fl[i] & kNumber) {
        const size_t max_digits = gpt4o ? 3 : 1;
        size_t k = i + 1;
        while (k - i < max_digits && p.any(k, kNumber)) ++k;
        return k;
    }
    const size_t j = (p.cp[i] == ' ' && p.other(i + 1)) ? i + 1 : i;
    if (p.other(j)) return crlf_tail(p, p.run_none(j, kSpace | kLetter | kNumber), true);
    return space_tail(p, i, true);
}

size_t match_deepseek_v3(const Piece& p, size_t i) {
    const uint32_t c = p.cp[i];
    auto ascii_alpha = [](uint32_t x) { return (x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z'); };
    if (is_ascii_punct(c) && ascii_alpha(p.at(i + 1))) return p.run_if(i + 1, ascii_alpha);
    // [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
    const bool lead = !is_crlf(c) && !(p.fl[i] & (kLetter | kPunct | kSymbol));
    if (lead && p.any(i + 1, kLetter | kMark)) return p.run_any(i + 1, kLetter | kMark);
    if (p.fl[i] & (kLetter | kMark)) return p.run_any(i, kLetter | kMark);
    // ' ?[\p{P}\p{S}]+[\r\n]*'
    const size_t j = (c == ' ' && p.any(i + 1, kPunct | kSymbol)) ? i + 1 : i;
    if (p.any(j, kPunct | kSymbol)) return crlf_tail(p, p.run_any(j, kPunct | kSymbol), false);
    if (p.fl[i] & kSpace) return space_tail(p, i, true);
    return 0;  // digits and other characters are left between matches
}

// \s?X+ for a predicate X.
template <typename Pred>
size_t match_space_opt_run(const Piece& p, size_t i, Pred in_class) {
    if ((p.fl[i] & kSpace) && i + 1 < p.end && in_class(p, i + 1)) {
        size_t k = i + 1;
        while (k < p.end && in_class(p, k)) ++k;
        return k;
    }
    size_t k = i;
    while (k < p.end && in_class(p, k)) ++k;
    return k > i ? k : 0;
}

template <typename Pred>
size_t match_run(const Piece& p, size_t i, Pred in_class) {
    size_t k = i;
    while (k < p.end && in_class(p, k)) ++k;
    return k > i ? k : 0;
}

size_t match_literal(const Piece& p, size_t i, std::string_view lit) {
    for (size_t k = 0; k < lit.size(); ++k)
        if (p.at(i + k) != static_cast<unsigned char>(lit[k])) return 0;
    return i + lit.size();
}

size_t match_rule(SplitRule rule, const Piece& p, size_t i) {
    switch (rule) {
        case SplitRule::Gpt2:
            return match_gpt2(p, i);
        case SplitRule::Llama3:
            return match_llama3(p, i, 3, true);
        case SplitRule::Qwen2:
            return match_llama3(p, i, 1, true);
        case SplitRule::SeedCoder:
            return match_llama3(p, i, 1, false);
        case SplitRule::Tekken:
            return match_tekken(p, i, false);
        case SplitRule::Gpt4o:
            return match_tekken(p, i, true);
        case SplitRule::DeepseekV3:
            return match_deepseek_v3(p, i);
        case SplitRule::Digit:
            return (p.fl[i] & kNumber) ? i + 1 : 0;
        case SplitRule::Digits:
            return (p.fl[i] & kNumber) ? p.run_any(i, kNumber) : 0;
        case SplitRule::Digits1To3: {
            size_t k = i;
            while (k - i < 3 && p.any(k, kNumber)) ++k;
            return k > i ? k : 0;
        }
        case SplitRule::AsciiDigits3: {
            auto d = [&](size_t k) { return p.at(k) >= '0' && p.at(k) <= '9'; };
            return (d(i) && d(i + 1) && d(i + 2)) ? i + 3 : 0;
        }
        case SplitRule::LineBreak:
            return is_crlf(p.cp[i]) ? i + 1 : 0;
        case SplitRule::SpaceLetters:
            return match_space_opt_run(p, i, [](const Piece& q, size_t k) { return (q.fl[k] & kLetter) != 0; });
        case SplitRule::SpacePunct:
            return match_space_opt_run(p, i, [](const Piece& q, size_t k) { return (q.fl[k] & kPunct) != 0; });
        case SplitRule::DeepseekLetters:
            return match_space_opt_run(p, i, [](const Piece& q, size_t k) { return is_deepseek_letter(q.cp[k]); });
        case SplitRule::DeepseekPunct:
            return match_space_opt_run(p, i, [](const Piece& q, size_t k) {
                return in_ranges(std::begin(kDeepseekPunct), std::end(kDeepseekPunct), q.cp[k]);
            });
        case SplitRule::DeepseekCjk:
            return match_run(p, i, [](const Piece& q, size_t k) {
                return in_ranges(std::begin(kDeepseekCjk), std::end(kDeepseekCjk), q.cp[k]);
            });
        case SplitRule::DeepseekV3Cjk:
            return match_run(p, i, [](const Piece& q, size_t k) {
                return in_ranges(std::begin(kDeepseekV3Cjk), std::end(kDeepseekV3Cjk), q.cp[k]);
            });
        case SplitRule::PunctRun:
        case SplitRule::PunctRunBacktick: {
            const bool backtick = rule == SplitRule::PunctRunBacktick;
            return match_run(p, i, [backtick](const Piece& q, size_t k) {
                const uint32_t c = q.cp[k];
                return (q.fl[k] & kPunct) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
                       c == '~' || c == '|' || (backtick && c == '`');
            });
        }
        case SplitRule::Bloom: {
            auto in_class = [](const Piece& q, size_t k) {
                if (q.fl[k] & kSpace) return false;
                return std::find(std::begin(kBloomStops), std::end(kBloomStops), q.cp[k]) == std::end(kBloomStops);
            };
            if (p.cp[i] == ' ' && i + 1 < p.end && in_class(p, i + 1)) return match_run(p, i + 1, in_class);
            return match_run(p, i, in_class);
        }
        case SplitRule::ChameleonSentinel: {
            size_t k = match_literal(p, i, "<sentinel:");
            if (!k) return 0;
            const size_t d = p.run_if(k, [](uint32_t c) { return c >= '0' && c <= '9'; });
            return (d > k && p.at(d) == '>') ? d + 1 : 0;
        }
        case SplitRule::ChameleonImage: {
            size_t k = match_literal(p, i, "IMGIMG");
            if (!k) return 0;
            size_t n = 0;
            while (n < 4 && p.at(k + n) >= 'A' && p.at(k + n) <= 'I') ++n;
            return (n >= 1 && p.at(k + n) == 'Z') ? k + n + 1 : 0;
        }
        case SplitRule::ChameleonSpaces: {
            const uint32_t c = p.cp[i];
            if (c == '\t' || c == '\n') return i + 1;
            if (size_t m = match_literal(p, i, "    ")) return m;
            return match_literal(p, i, "  ");
        }
        case SplitRule::ChameleonPunct:
            return ((p.fl[i] & kPunct) || is_ascii_punct(p.cp[i])) ? i + 1 : 0;
        case SplitRule::TrailingSpace:
            return 0;  // handled by split_piece
    }
    return 0;
}

// The driver, specialised per rule so the matcher inlines into the scan loop.
template <SplitRule R>
void split_with(const Piece& p, size_t begin, std::vector<Span>& out) {
    size_t gap = begin, i = begin;
    while (i < p.end) {
        const size_t m = match_rule(R, p, i);
        if (m > i) {
            if (gap < i) out.push_back({static_cast<uint32_t>(gap), static_cast<uint32_t>(i)});
            out.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(m)});
            i = gap = m;
        } else {
            ++i;
        }
    }
    if (gap < p.end) out.push_back({static_cast<uint32_t>(gap), static_cast<uint32_t>(p.end)});
}

// One driver per rule, indexed by the rule's value.
using SplitFn = void (*)(const Piece&, size_t, std::vector<Span>&);
constexpr size_t kSplitRuleCount = static_cast<size_t>(SplitRule::ChameleonPunct) + 1;
template <size_t... I>
constexpr std::array<SplitFn, sizeof...(I)> make_splitters(std::index_sequence<I...>) {
    return {&split_with<static_cast<SplitRule>(I)>...};
}
constexpr auto kSplitters = make_splitters(std::make_index_sequence<kSplitRuleCount>{});

// The families and the names files carry for them.
struct PreEntry {
    std::string_view name;
    const PreTokenizer* pre;
};

const PreTokenizer kGpt2{.family = "gpt-2", .rules = {SplitRule::Gpt2}};
const PreTokenizer kGpt2Sep{.family = "gpt-2", .rules = {SplitRule::Gpt2}, .default_add_sep = 1};
const PreTokenizer kDefault{
    .family = "default", .rules = {SplitRule::PunctRun, SplitRule::Gpt2, SplitRule::Digits, SplitRule::AsciiDigits3}};
const PreTokenizer kLlama3{
    .family = "llama3", .rules = {SplitRule::Llama3}, .ignore_merges = true, .default_add_bos = 1};
// dbrx and smaug-bpe: Llama 3's split, with the merges always applied.
const PreTokenizer kLlama3Merges{.family = "llama3", .rules = {SplitRule::Llama3}};
const PreTokenizer kChatGlm{.family = "chatglm-bpe", .rules = {SplitRule::Llama3}};
const PreTokenizer kQwen2{.family = "qwen2", .rules = {SplitRule::Qwen2}};
const PreTokenizer kSeedCoder{.family = "seed-coder", .rules = {SplitRule::SeedCoder}};
const PreTokenizer kDeepseekLlm{.family = "deepseek-llm",
                                .rules = {SplitRule::LineBreak, SplitRule::DeepseekLetters, SplitRule::DeepseekPunct,
                                          SplitRule::TrailingSpace, SplitRule::DeepseekCjk, SplitRule::Digits}};
const PreTokenizer kDeepseekCoder{.family = "deepseek-coder",
                                  .rules = {SplitRule::LineBreak, SplitRule::SpaceLetters, SplitRule::SpacePunct,
                                            SplitRule::DeepseekCjk, SplitRule::Digit}};
const PreTokenizer kDeepseekV3{.family = "deepseek-v3",
                               .rules = {SplitRule::Digits1To3, SplitRule::DeepseekV3Cjk, SplitRule::DeepseekV3}};
const PreTokenizer kFalcon{.family = "falcon",
                           .rules = {SplitRule::PunctRunBacktick, SplitRule::Gpt2, SplitRule::AsciiDigits3}};
const PreTokenizer kStarcoder{.family = "starcoder", .rules = {SplitRule::Digit, SplitRule::Gpt2}};
const PreTokenizer kBloom{.family = "bloom", .rules = {SplitRule::Bloom}};
const PreTokenizer kViking{.family = "viking", .rules = {SplitRule::Bloom, SplitRule::Digit}};
const PreTokenizer kTekken{
    .family = "tekken", .rules = {SplitRule::Tekken}, .ignore_merges = true, .default_add_bos = 1};
const PreTokenizer kGpt4o{.family = "gpt-4o", .rules = {SplitRule::Gpt4o}};
const PreTokenizer kChameleon{
    .family = "chameleon",
    .rules = {SplitRule::ChameleonSentinel, SplitRule::ChameleonImage, SplitRule::ChameleonSpaces, SplitRule::Digit,
              SplitRule::ChameleonPunct, SplitRule::Gpt2},
    .default_add_bos = 1};

const PreEntry kPreNames[] = {
    {"default", &kDefault},
    {"gpt-2", &kGpt2},
    {"phi-2", &kGpt2},
    {"mpt", &kGpt2},
    {"olmo", &kGpt2},
    {"jais", &kGpt2},
    {"jina-es", &kGpt2},
    {"jina-de", &kGpt2},
    {"jina-v2-es", &kGpt2},
    {"jina-v2-de", &kGpt2},
    {"gigachat", &kGpt2},
    {"a.x-4.0", &kGpt2},
    {"mellum", &kGpt2},
    {"trillion", &kGpt2},
    {"granite-docling", &kGpt2},
    {"exaone4", &kGpt2},
    {"jina-v1-en", &kGpt2Sep},
    {"jina-v2-code", &kGpt2Sep},
    {"roberta-bpe", &kGpt2Sep},
    {"llama3", &kLlama3},
    {"llama-v3", &kLlama3},
    {"llama-bpe", &kLlama3},
    {"falcon3", &kLlama3},
    {"falcon-h1", &kLlama3},
    {"pixtral", &kLlama3},
    {"midm-2.0", &kLlama3},
    {"lfm2", &kLlama3},
    {"dbrx", &kLlama3Merges},
    {"smaug-bpe", &kLlama3Merges},
    {"chatglm-bpe", &kChatGlm},
    {"glm4", &kChatGlm},
    {"qwen2", &kQwen2},
    {"deepseek-r1-qwen", &kQwen2},
    {"kormo", &kQwen2},
    {"stablelm2", &kQwen2},
    {"megrez", &kQwen2},
    {"hunyuan", &kQwen2},
    {"grok-2", &kQwen2},
    {"bailingmoe", &kQwen2},  // '(?i:[sdmt]|ll|ve|re)...\s*[\r\n]...: the same pieces as Qwen2's
    {"bailingmoe2", &kQwen2},
    {"llada-moe", &kQwen2},
    {"seed-coder", &kSeedCoder},
    {"deepseek-llm", &kDeepseekLlm},
    {"deepseek-coder", &kDeepseekCoder},
    {"deepseek-v3", &kDeepseekV3},
    {"hunyuan-dense", &kDeepseekV3},
    {"falcon", &kFalcon},
    {"starcoder", &kStarcoder},
    {"refact", &kStarcoder},
    {"command-r", &kStarcoder},
    {"smollm", &kStarcoder},
    {"codeshell", &kStarcoder},
    {"exaone", &kStarcoder},
    {"minerva-7b", &kStarcoder},
    {"minerva", &kStarcoder},
    {"bloom", &kBloom},
    {"poro-chat", &kBloom},
    {"gpt3-finnish", &kBloom},
    {"viking", &kViking},
    {"tekken", &kTekken},
    {"gpt-4o", &kGpt4o},
    {"llama4", &kGpt4o},
    {"minimax-m2", &kGpt4o},
    {"chameleon", &kChameleon},
};

}  // namespace

const PreTokenizer* find_pre_tokenizer(std::string_view name) {
    for (const PreEntry& e : kPreNames)
        if (e.name == name) return e.pre;
    return nullptr;
}

const PreTokenizer& gpt2_pre_tokenizer() { return kGpt2; }

std::vector<std::string_view> supported_pre_names() {
    std::vector<std::string_view> names;
    for (const PreEntry& e : kPreNames) names.push_back(e.name);
    return names;
}

void CodepointText::assign(std::string_view text) {
    cps.clear();
    flags.clear();
    offsets.clear();
    size_t i = 0;
    while (i < text.size()) {
        uint32_t cp;
        const size_t n = utf8_decode(text.data() + i, text.size() - i, &cp);
        cps.push_back(cp);
        flags.push_back(char_flags(cp));
        offsets.push_back(static_cast<uint32_t>(i));
        i += n;
    }
    offsets.push_back(static_cast<uint32_t>(text.size()));
}

void split_piece(SplitRule rule, const CodepointText& text, Span piece, std::vector<Span>& out) {
    if (rule == SplitRule::TrailingSpace) {
        // \s+$: the leftmost match is the whole run of whitespace that ends the piece.
        uint32_t t = piece.end;
        while (t > piece.begin && (text.flags[t - 1] & kSpace)) --t;
        if (t > piece.begin) out.push_back({piece.begin, t});
        if (t < piece.end) out.push_back({t, piece.end});
        return;
    }
    const Piece p{text.cps.data(), text.flags.data(), piece.end};
    kSplitters[static_cast<size_t>(rule)](p, piece.begin, out);
}

void pre_tokenize(const PreTokenizer& pre, const CodepointText& text, std::vector<Span>& out,
                  std::vector<Span>& scratch) {
    out.clear();
    if (text.size() == 0) return;
    out.push_back({0, static_cast<uint32_t>(text.size())});
    for (SplitRule rule : pre.rules) {
        scratch.clear();
        for (const Span& piece : out) split_piece(rule, text, piece, scratch);
        out.swap(scratch);
    }
}

std::vector<std::string> pre_tokenize_to_strings(const PreTokenizer& pre, std::string_view text) {
    CodepointText t;
    t.assign(text);
    std::vector<Span> pieces, scratch;
    pre_tokenize(pre, t, pieces, scratch);
    std::vector<std::string> out;
    for (const Span& s : pieces)
        out.emplace_back(text.substr(t.offsets[s.begin], t.offsets[s.end] - t.offsets[s.begin]));
    return out;
}

}  // namespace tessera::vocab
