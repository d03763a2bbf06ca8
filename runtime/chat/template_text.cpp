// UTF-8 decoding and the Python `str` methods that chat templates call.
#include "runtime/chat/template_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace tessera::chat::text {

char32_t decode_utf8(std::string_view s, size_t& pos) {
    const auto c = static_cast<unsigned char>(s[pos]);
    if (c < 0x80) {
        ++pos;
        return c;
    }
    size_t len = 0;
    char32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    bool ok = len > 0 && pos + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[pos + k]);
        ok = (b & 0xc0) == 0x80;
        cp = (cp << 6) | (b & 0x3f);
    }
    if (ok)
        ok = !((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10ffff)));
    if (!ok) {
        ++pos;
        return 0xfffd;
    }
    pos += len;
    return cp;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;  // UTF-8 cannot carry surrogates
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xc0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xe0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
        out += static_cast<char>(0xf0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (cp & 0x3f));
    }
}

std::u32string to_u32(std::string_view s) {
    std::u32string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) out += decode_utf8(s, i);
    return out;
}

std::string to_utf8(std::u32string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char32_t c : s) append_utf8(out, c);
    return out;
}

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const size_t before = i;
        if (decode_utf8(s, i) == 0xfffd && !(i - before == 3 && s.substr(before, 3) == "\xef\xbf\xbd")) return false;
    }
    return true;
}

size_t length(std::string_view s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++n) decode_utf8(s, i);
    return n;
}

bool is_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

namespace {

// Latin Extended-A and Cyrillic runs where upper and lower case alternate: the first
// code point of the run is upper case when `even_upper` pairs start on an even one.
struct AlternatingRun {
    char32_t first, last;
    bool even_upper;
};
constexpr AlternatingRun kAlternating[] = {
    {0x0100, 0x012f, true},  {0x0132, 0x0137, true}, {0x0139, 0x0148, false}, {0x014a, 0x0177, true},
    {0x0179, 0x017e, false}, {0x0460, 0x0481, true}, {0x048a, 0x04bf, true},
};

const AlternatingRun* alternating_run(char32_t c) {
    for (const auto& r : kAlternating)
        if (c >= r.first && c <= r.last) return &r;
    return nullptr;
}

}  // namespace

char32_t to_upper(char32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
    if (c == 0xb5) return 0x39c;
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
    if (c == 0xff) return 0x178;
    if (c == 0x131) return 'I';
    if (c == 0x17f) return 'S';
    if (const AlternatingRun* r = alternating_run(c)) {
        const bool is_upper = ((c % 2) == 0) == r->even_upper;
        return is_upper ? c : c - 1;
    }
    if ((c >= 0x3b1 && c <= 0x3c1) || (c >= 0x3c3 && c <= 0x3cb)) return c - 32;
    if (c == 0x3c2) return 0x3a3;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    if (c >= 0xff41 && c <= 0xff5a) return c - 32;
    return c;
}

char32_t to_lower(char32_t c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 32;
    if (c == 0x178) return 0xff;
    if (c == 0x130) return 'i';
    if (const AlternatingRun* r = alternating_run(c)) {
        const bool is_upper = ((c % 2) == 0) == r->even_upper;
        return is_upper ? c + 1 : c;
    }
    if ((c >= 0x391 && c <= 0x3a1) || (c >= 0x3a3 && c <= 0x3ab)) return c + 32;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    if (c >= 0xff21 && c <= 0xff3a) return c + 32;
    return c;
}

bool is_cased(char32_t c) { return to_upper(c) != c || to_lower(c) != c || c == 0xdf || c == 0x138 || c == 0x149; }

bool is_alnum(char32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (is_cased(c)) return true;
    if (is_space(c) || !is_printable(c)) return false;
    // Punctuation and symbol blocks; everything else non-ASCII counts as a letter.
    if (c <= 0xbf) return c == 0xaa || c == 0xb2 || c == 0xb3 || c == 0xb9 || c == 0xba || (c >= 0xbc && c <= 0xbe);
    if (c == 0xd7 || c == 0xf7) return false;
    if (c >= 0x2000 && c <= 0x2bff) return false;
    if (c >= 0x3000 && c <= 0x303f) return false;
    if (c >= 0xfe30 && c <= 0xfe4f) return false;
    if ((c >= 0xff00 && c <= 0xff0f) || (c >= 0xff1a && c <= 0xff20) || (c >= 0xff3b && c <= 0xff40) ||
        (c >= 0xff5b && c <= 0xff65))
        return false;
    if (c >= 0x1f000 && c <= 0x1faff) return false;  // emoji and pictographs
    return true;
}

bool is_printable(char32_t c) {
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x7f) return true;
    if (c <= 0xa0 || c == 0xad) return false;
    if (c == 0x1680 || c == 0x180e || (c >= 0x600 && c <= 0x605) || c == 0x61c || c == 0x6dd || c == 0x70f)
        return false;
    if ((c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f)) return false;
    if (c == 0x3000 || c == 0xfeff || (c >= 0xfff9 && c <= 0xfffb)) return false;
    if (c >= 0xd800 && c <= 0xf8ff) return false;  // surrogates and private use
    if ((c & 0xfffe) == 0xfffe || c >= 0xe0000) return false;
    return true;
}

namespace {

template <typename F>
std::string map_chars(std::string_view s, F&& f) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) f(out, decode_utf8(s, i));
    return out;
}

void append_upper(std::string& out, char32_t c) {
    if (c == 0xdf)
        out += "SS";
    else
        append_utf8(out, to_upper(c));
}

}  // namespace

std::string upper(std::string_view s) { return map_chars(s, append_upper); }

std::string lower(std::string_view s) {
    return map_chars(s, [](std::string& out, char32_t c) { append_utf8(out, to_lower(c)); });
}

std::string capitalize(std::string_view s) {
    bool first = true;
    return map_chars(s, [&](std::string& out, char32_t c) {
        if (first)
            append_upper(out, c);
        else
            append_utf8(out, to_lower(c));
        first = false;
    });
}

std::string title(std::string_view s) {
    bool previous_cased = false;
    return map_chars(s, [&](std::string& out, char32_t c) {
        if (previous_cased)
            append_utf8(out, to_lower(c));
        else if (c == 0xdf)
            out += "Ss";
        else
            append_utf8(out, to_upper(c));
        previous_cased = is_cased(c);
    });
}

std::string swapcase(std::string_view s) {
    return map_chars(s, [](std::string& out, char32_t c) {
        if (to_lower(c) != c)
            append_utf8(out, to_lower(c));
        else
            append_upper(out, c);
    });
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
    std::u32string u = to_u32(s);
    const std::u32string set = chars ? to_u32(*chars) : std::u32string();
    auto strippable = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
    size_t b = 0, e = u.size();
    if (left)
        while (b < e && strippable(u[b])) ++b;
    if (right)
        while (e > b && strippable(u[e - 1])) --e;
    return to_utf8(std::u32string_view(u).substr(b, e - b));
}

namespace {

std::vector<std::string> split_whitespace(std::string_view s, int64_t maxsplit, bool from_right) {
    std::u32string u = to_u32(s);
    if (from_right) std::reverse(u.begin(), u.end());
    std::vector<std::string> parts;
    size_t i = 0;
    const size_t n = u.size();
    while (true) {
        while (i < n && is_space(u[i])) ++i;
        if (i == n) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
            std::u32string rest = u.substr(i);
            if (from_right) std::reverse(rest.begin(), rest.end());
            parts.push_back(to_utf8(rest));
            break;
        }
        size_t j = i;
        while (j < n && !is_space(u[j])) ++j;
        std::u32string word = u.substr(i, j - i);
        if (from_right) std::reverse(word.begin(), word.end());
        parts.push_back(to_utf8(word));
        i = j;
    }
    if (from_right) std::reverse(parts.begin(), parts.end());
    return parts;
}

}  // namespace

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
    if (!sep) return split_whitespace(s, maxsplit, false);
    std::vector<std::string> parts;
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        const size_t at = s.find(*sep, start);
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(start, at - start));
        start = at + sep->size();
    }
    parts.emplace_back(s.substr(start));
    return parts;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
    if (!sep) return split_whitespace(s, maxsplit, true);
    std::vector<std::string> parts;
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
        if (end < sep->size()) break;
        const size_t at = s.rfind(*sep, end - sep->size());
        if (at == std::string_view::npos) break;
        parts.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
        end = at;
    }
    parts.emplace_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
    return parts;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
    std::vector<std::string> lines;
    size_t start = 0, i = 0;
    while (i < s.size()) {
        const size_t at = i;
        const char32_t c = decode_utf8(s, i);
        const bool boundary = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
                              c == 0x85 || c == 0x2028 || c == 0x2029;
        if (!boundary) continue;
        if (c == '\r' && i < s.size() && s[i] == '\n') ++i;
        lines.emplace_back(s.substr(start, (keepends ? i : at) - start));
        start = i;
    }
    if (start < s.size()) lines.emplace_back(s.substr(start));
    return lines;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
    std::string out;
    if (old.empty()) {  // Python inserts `repl` before every code point and at the end
        int64_t done = 0;
        size_t i = 0;
        while (i <= s.size()) {
            if (count < 0 || done < count) {
                out += repl;
                ++done;
            }
            if (i == s.size()) break;
            const size_t at = i;
            decode_utf8(s, i);
            out += s.substr(at, i - at);
        }
        return out;
    }
    size_t start = 0;
    for (int64_t done = 0; count < 0 || done < count; ++done) {
        const size_t at = s.find(old, start);
        if (at == std::string_view::npos) break;
        out += s.substr(start, at - start);
        out += repl;
        start = at + old.size();
    }
    out += s.substr(start);
    return out;
}

int64_t find(std::string_view s, std::string_view sub, bool reverse) {
    const size_t at = reverse ? s.rfind(sub) : s.find(sub);
    if (at == std::string_view::npos) return -1;
    return static_cast<int64_t>(length(s.substr(0, at)));
}

int64_t count(std::string_view s, std::string_view sub) {
    if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string_view::npos; at = s.find(sub, at + sub.size())) ++n;
    return n;
}

std::string center(std::string_view s, int64_t width, char32_t fill) {
    const int64_t len = static_cast<int64_t>(length(s));
    const int64_t margin = width - len;
    if (margin <= 0) return std::string(s);
    const int64_t left = margin / 2 + (margin & width & 1);
    std::string pad_l, pad_r;
    for (int64_t i = 0; i < left; ++i) append_utf8(pad_l, fill);
    for (int64_t i = 0; i < margin - left; ++i) append_utf8(pad_r, fill);
    return pad_l + std::string(s) + pad_r;
}

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&#34;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string repr(std::string_view s) {
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char quote = (has_single && !has_double) ? '"' : '\'';
    std::string out(1, quote);
    for (size_t i = 0; i < s.size();) {
        const char32_t c = decode_utf8(s, i);
        char buf[16];
        if (c == static_cast<char32_t>(quote) || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (is_printable(c)) {
            append_utf8(out, c);
        } else {
            if (c <= 0xff)
                std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
            else if (c <= 0xffff)
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
            else
                std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
            out += buf;
        }
    }
    out += quote;
    return out;
}

std::string concat(std::initializer_list<std::string_view> pieces) {
    size_t n = 0;
    for (std::string_view p : pieces) n += p.size();
    std::string out;
    out.reserve(n);
    for (std::string_view p : pieces) out += p;
    return out;
}

std::string format_float(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    // The shortest digits that round-trip, then Python's layout: positional notation
    // when the decimal exponent is in (-4, 16], scientific otherwise.
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
    std::string out;
    if (sci.front() == '-') {
        out += '-';
        sci.remove_prefix(1);
    }
    const size_t e_at = sci.find('e');
    std::string digits;
    for (char c : sci.substr(0, e_at))
        if (c != '.') digits += c;
    int exponent = 0;
    std::from_chars(sci.data() + e_at + 1 + (sci[e_at + 1] == '+'), sci.data() + sci.size(), exponent);
    const int decpt = exponent + 1;  // value = 0.DIGITS * 10^decpt
    const int n = static_cast<int>(digits.size());
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0)
            out += concat({"0.", std::string(static_cast<size_t>(-decpt), '0'), digits});
        else if (decpt >= n)
            out += concat({digits, std::string(static_cast<size_t>(decpt - n), '0'), ".0"});
        else
            out +=
                concat({digits.substr(0, static_cast<size_t>(decpt)), ".", digits.substr(static_cast<size_t>(decpt))});
        return out;
    }
    out += digits[0];
    if (n > 1) {
        out += '.';
        out += digits.substr(1);
    }
    std::snprintf(buf, sizeof buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + buf;
}

}  // namespace tessera::chat::text
