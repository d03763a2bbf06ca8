// The template lexer: tags, whitespace control, raw blocks, comments, and the
// literals, names and operators inside tags.
#include "runtime/chat/template_lexer.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "runtime/chat/template_text.h"
#include "tensor/error.h"

namespace tessera::chat {

Source::Source(std::string_view raw) {
    text_.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '\r') {
            text_ += '\n';
            if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
        } else {
            text_ += raw[i];
        }
    }
    if (!text_.empty() && text_.back() == '\n') text_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < text_.size(); ++i)
        if (text_[i] == '\n') line_starts_.push_back(i + 1);
    // Every later step decodes UTF-8; a template that is not UTF-8 stops here.
    for (size_t i = 0; i < text_.size();) {
        const size_t at = i;
        if (text::decode_utf8(text_, i) == 0xfffd && std::string_view(text_).substr(at, 3) != "\xef\xbf\xbd")
            throw Error(where(at) + "the template is not valid UTF-8");
    }
}

int Source::line(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    return static_cast<int>(it - line_starts_.begin());
}

std::string Source::position(size_t offset) const {
    offset = std::min(offset, text_.size());
    const int l = line(offset);
    const size_t start = line_starts_[static_cast<size_t>(l - 1)];
    const size_t column = text::length(std::string_view(text_).substr(start, offset - start)) + 1;
    return "line " + std::to_string(l) + ", column " + std::to_string(column);
}

namespace {

// Operators, longest first so that "//" wins over "/".
constexpr std::string_view kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                           "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
public:
    explicit Lexer(const Source& source) : src_(source), s_(source.text()) {}

    std::vector<Token> run() {
        while (pos_ < s_.size()) {
            const size_t open = find_tag_open(pos_);
            if (open == std::string_view::npos) {
                emit_text(s_.substr(pos_), pos_);
                break;
            }
            const char kind = s_[open + 1];
            size_t after = open + 2;
            char sign = 0;
            if (after < s_.size() && (s_[after] == '-' || s_[after] == '+')) sign = s_[after++];
            const size_t raw_body = kind == '%' ? raw_opener_end(after) : 0;
            std::string_view text = s_.substr(pos_, open - pos_);
            emit_text(strip_before_tag(text, sign, kind != '{'), pos_);
            if (raw_body) {
                raw_block(open, raw_body);
            } else if (kind == '#') {
                comment(open, after);
            } else {
                tag(open, after, kind);
            }
        }
        tokens_.push_back(Token{TokenKind::End, static_cast<uint32_t>(s_.size()), {}});
        return std::move(tokens_);
    }

private:
    const Source& src_;
    std::string_view s_;
    size_t pos_ = 0;
    bool line_starting_ = true;  // the last thing consumed ended a line (or nothing was)
    std::vector<Token> tokens_;

    [[noreturn]] void fail(size_t at, const std::string& what) const { throw Error(src_.where(at) + what); }

    size_t find_tag_open(size_t from) const {
        for (size_t i = s_.find('{', from); i != std::string_view::npos; i = s_.find('{', i + 1))
            if (i + 1 < s_.size() && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
        return std::string_view::npos;
    }

    size_t skip_space(size_t at) const {
        while (at < s_.size()) {
            size_t next = at;
            if (!text::is_space(text::decode_utf8(s_, next))) break;
            at = next;
        }
        return at;
    }

    void finish_at(size_t end) {
        pos_ = end;
        line_starting_ = end > 0 && s_[end - 1] == '\n';
    }

    // Text before a tag: `-` strips all trailing whitespace; otherwise a block or comment
    // tag alone on its line takes the line's indentation with it (lstrip_blocks).
    std::string_view strip_before_tag(std::string_view text, char sign, bool is_block) const {
        if (sign == '-') {
            size_t keep = 0;  // the end of the last non-space character
            for (size_t i = 0; i < text.size();)
                if (!text::is_space(text::decode_utf8(text, i))) keep = i;
            return text.substr(0, keep);
        }
        if (sign == '+' || !is_block) return text;
        const size_t nl = text.rfind('\n');
        const size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
        if (line_start == 0 && !line_starting_) return text;
        const std::string_view rest = text.substr(line_start);
        if (rest.empty() || skip_space_in(rest) != rest.size()) return text;
        return text.substr(0, line_start);
    }

    static size_t skip_space_in(std::string_view s) {
        size_t at = 0;
        while (at < s.size()) {
            size_t next = at;
            if (!text::is_space(text::decode_utf8(s, next))) break;
            at = next;
        }
        return at;
    }

    void emit_text(std::string_view text, size_t offset) {
        if (text.empty()) return;
        tokens_.push_back(Token{TokenKind::Text, static_cast<uint32_t>(offset), std::string(text)});
    }

    // Block end at `at` ("+%}", "-%}" and the whitespace after it, or "%}" and the
    // newline after it); returns the end of the match or 0.
    size_t block_end_at(size_t at) const {
        if (s_.compare(at, 3, "+%}") == 0) return at + 3;
        if (s_.compare(at, 3, "-%}") == 0) return skip_space(at + 3);
        if (s_.compare(at, 2, "%}") == 0) return at + 2 + (at + 2 < s_.size() && s_[at + 2] == '\n');
        return 0;
    }

    // If "{%" + sign at `after` opens a raw block, the offset where its body starts.
    size_t raw_opener_end(size_t after) const {
        size_t p = skip_space(after);
        if (s_.compare(p, 3, "raw") != 0) return 0;
        p = skip_space(p + 3);
        if (s_.compare(p, 3, "-%}") == 0) return skip_space(p + 3);
        if (s_.compare(p, 2, "%}") == 0) return p + 2;
        return 0;
    }

    void raw_block(size_t open, size_t body) {
        finish_at(body);
        for (size_t i = s_.find("{%", body); i != std::string_view::npos; i = s_.find("{%", i + 1)) {
            size_t p = i + 2;
            char sign = 0;
            if (p < s_.size() && (s_[p] == '-' || s_[p] == '+')) sign = s_[p++];
            p = skip_space(p);
            if (s_.compare(p, 6, "endraw") != 0) continue;
            const size_t end = block_end_at(skip_space(p + 6));
            if (!end) continue;
            emit_text(strip_before_tag(s_.substr(body, i - body), sign, true), body);
            finish_at(end);
            return;
        }
        fail(open, "missing {% endraw %} for this raw block");
    }

    void comment(size_t open, size_t after) {
        for (size_t i = after; i + 1 < s_.size(); ++i) {
            if (s_.compare(i, 3, "+#}") == 0) return finish_at(i + 3);
            if (s_.compare(i, 3, "-#}") == 0) return finish_at(skip_space(i + 3));
            if (s_.compare(i, 2, "#}") == 0) return finish_at(i + 2 + (i + 2 < s_.size() && s_[i + 2] == '\n'));
        }
        fail(open, "missing end of comment tag '#}'");
    }

    void tag(size_t open, size_t after, char kind) {
        const bool is_block = kind == '%';
        tokens_.push_back(
            Token{is_block ? TokenKind::BlockBegin : TokenKind::VarBegin, static_cast<uint32_t>(open), {}});
        std::string brackets;  // the closers we wait for, innermost last
        size_t p = after;
        while (true) {
            if (brackets.empty()) {
                size_t end = 0;
                if (is_block)
                    end = block_end_at(p);
                else if (s_.compare(p, 3, "-}}") == 0)
                    end = skip_space(p + 3);
                else if (s_.compare(p, 2, "}}") == 0)
                    end = p + 2;
                if (end) {
                    tokens_.push_back(
                        Token{is_block ? TokenKind::BlockEnd : TokenKind::VarEnd, static_cast<uint32_t>(p), {}});
                    finish_at(end);
                    return;
                }
            }
            if (p >= s_.size())
                fail(open, is_block ? "unexpected end of template: this '{%' tag is never closed with '%}'"
                                    : "unexpected end of template: this '{{' is never closed with '}}'");
            const size_t next = skip_space(p);
            if (next != p) {
                p = next;
                continue;
            }
            p = expression_token(p, brackets);
        }
    }

    // Lexes one token inside a tag at `p`; returns where the next one starts.
    size_t expression_token(size_t p, std::string& brackets) {
        const char c = s_[p];
        const auto at = static_cast<uint32_t>(p);
        if (is_digit(c)) return number(p);
        if (is_name_start(c)) {
            size_t e = p + 1;
            while (e < s_.size() && (is_name_start(s_[e]) || is_digit(s_[e]))) ++e;
            tokens_.push_back(Token{TokenKind::Name, at, std::string(s_.substr(p, e - p))});
            return e;
        }
        if (c == '\'' || c == '"') return string_literal(p);
        for (std::string_view op : kOperators) {
            if (s_.compare(p, op.size(), op) != 0) continue;
            if (op == "(" || op == "[" || op == "{") {
                brackets += op == "(" ? ')' : op == "[" ? ']' : '}';
            } else if (op == ")" || op == "]" || op == "}") {
                if (brackets.empty()) fail(p, "unexpected '" + std::string(op) + "'");
                if (brackets.back() != op[0])
                    fail(p, "unexpected '" + std::string(op) + "', expected '" + brackets.back() + "'");
                brackets.pop_back();
            }
            tokens_.push_back(Token{TokenKind::Operator, at, std::string(op)});
            return p + op.size();
        }
        size_t e = p;
        const char32_t cp = text::decode_utf8(s_, e);
        std::string shown;
        text::append_utf8(shown, cp);
        fail(p, "unexpected character '" + shown + "'");
    }

    // Digits with Python's optional underscores between them; returns the end.
    size_t digits(size_t p, std::string& out) const {
        while (p < s_.size() && is_digit(s_[p])) {
            out += s_[p++];
            if (p + 1 < s_.size() && s_[p] == '_' && is_digit(s_[p + 1])) ++p;
        }
        return p;
    }

    size_t number(size_t p) {
        const auto at = static_cast<uint32_t>(p);
        // A float needs a fraction or an exponent, and may not follow a dot ("x.0.1"
        // is two item lookups).
        if (p == 0 || s_[p - 1] != '.') {
            std::string lit;
            size_t e = digits(p, lit);
            bool is_float = false;
            if (e + 1 < s_.size() && s_[e] == '.' && is_digit(s_[e + 1])) {
                lit += '.';
                e = digits(e + 1, lit);
                is_float = true;
            }
            if (e < s_.size() && (s_[e] == 'e' || s_[e] == 'E')) {
                size_t x = e + 1;
                std::string exp = "e";
                if (x < s_.size() && (s_[x] == '+' || s_[x] == '-')) exp += s_[x++];
                if (x < s_.size() && is_digit(s_[x])) {
                    e = digits(x, exp);
                    lit += exp;
                    is_float = true;
                }
            }
            if (is_float) {
                Token t{TokenKind::Float, at, lit};
                const auto r = std::from_chars(lit.data(), lit.data() + lit.size(), t.number);
                if (r.ec == std::errc::result_out_of_range)
                    t.number = lit.find("e-") != std::string::npos ? 0.0 : HUGE_VAL;
                tokens_.push_back(std::move(t));
                return e;
            }
        }
        int base = 10;
        size_t e = p;
        std::string lit;
        if (s_[p] == '0' && p + 1 < s_.size() && std::string_view("xXoObB").find(s_[p + 1]) != std::string_view::npos) {
            const char b = static_cast<char>(s_[p + 1] | 0x20);
            base = b == 'x' ? 16 : b == 'o' ? 8 : 2;
            e = p + 2;
            auto ok = [&](char c) {
                const char l = static_cast<char>(c | 0x20);
                return base == 16 ? (is_digit(c) || (l >= 'a' && l <= 'f')) : (c >= '0' && c < '0' + base);
            };
            while (e < s_.size() && (ok(s_[e]) || (s_[e] == '_' && e + 1 < s_.size() && ok(s_[e + 1]))))
                if (s_[e++] != '_') lit += s_[e - 1];
            if (lit.empty()) fail(p, "malformed number literal");
        } else if (s_[p] == '0') {
            lit = "0";  // Python forbids leading zeros: "012" lexes as 0 then 12, as in Jinja
            e = p + 1;
            while (e + 1 < s_.size() && (s_[e] == '0' || (s_[e] == '_' && s_[e + 1] == '0'))) ++e;
            if (e < s_.size() && s_[e] == '0') ++e;
        } else {
            e = digits(p, lit);
        }
        Token t{TokenKind::Integer, at, lit};
        const auto r = std::from_chars(lit.data(), lit.data() + lit.size(), t.integer, base);
        if (r.ec != std::errc()) fail(p, "integer literal too large: " + std::string(s_.substr(p, e - p)));
        tokens_.push_back(std::move(t));
        return e;
    }

    size_t string_literal(size_t p) {
        const char quote = s_[p];
        size_t e = p + 1;
        while (e < s_.size() && s_[e] != quote) e += s_[e] == '\\' ? 2 : 1;
        if (e >= s_.size()) fail(p, std::string("unterminated string literal starting with ") + quote);
        tokens_.push_back(Token{TokenKind::String, static_cast<uint32_t>(p), decode_escapes(p + 1, e)});
        return e + 1;
    }

    uint32_t hex_digits(size_t at, size_t n, size_t escape_at) const {
        uint32_t v = 0;
        for (size_t k = 0; k < n; ++k) {
            const char c = at + k < s_.size() ? s_[at + k] : '\0';
            const char l = static_cast<char>(c | 0x20);
            if (!is_digit(c) && !(l >= 'a' && l <= 'f'))
                fail(escape_at, "truncated \\" + std::string(1, s_[escape_at + 1]) + " escape in a string literal");
            v = v * 16 + static_cast<uint32_t>(is_digit(c) ? c - '0' : l - 'a' + 10);
        }
        return v;
    }

    // Python's string escapes (the `unicode-escape` codec, as Jinja decodes literals).
    std::string decode_escapes(size_t b, size_t e) const {
        std::string out;
        char32_t pending_high = 0;  // a high surrogate waiting for its pair
        auto put = [&](char32_t cp) {
            if (pending_high && cp >= 0xdc00 && cp <= 0xdfff) {
                text::append_utf8(out, 0x10000 + ((pending_high - 0xd800) << 10) + (cp - 0xdc00));
                pending_high = 0;
                return;
            }
            if (pending_high) text::append_utf8(out, 0xfffd);
            pending_high = 0;
            if (cp >= 0xd800 && cp <= 0xdbff)
                pending_high = cp;
            else
                text::append_utf8(out, cp);
        };
        for (size_t i = b; i < e;) {
            if (s_[i] != '\\') {
                put(text::decode_utf8(s_, i));
                continue;
            }
            const size_t esc = i;
            const char c = s_[i + 1];
            i += 2;
            switch (c) {
                case '\n':
                    break;
                case '\\':
                    put('\\');
                    break;
                case '\'':
                    put('\'');
                    break;
                case '"':
                    put('"');
                    break;
                case 'a':
                    put(7);
                    break;
                case 'b':
                    put(8);
                    break;
                case 'f':
                    put(12);
                    break;
                case 'n':
                    put('\n');
                    break;
                case 'r':
                    put('\r');
                    break;
                case 't':
                    put('\t');
                    break;
                case 'v':
                    put(11);
                    break;
                case 'x':
                    put(hex_digits(i, 2, esc));
                    i += 2;
                    break;
                case 'u':
                    put(hex_digits(i, 4, esc));
                    i += 4;
                    break;
                case 'U': {
                    const uint32_t cp = hex_digits(i, 8, esc);
                    if (cp > 0x10ffff) fail(esc, "illegal Unicode character in a string literal");
                    put(cp);
                    i += 8;
                    break;
                }
                case 'N':
                    fail(esc, "\\N{...} escapes are not supported in string literals");
                default:
                    if (c >= '0' && c <= '7') {
                        uint32_t v = static_cast<uint32_t>(c - '0');
                        for (int k = 0; k < 2 && i < e && s_[i] >= '0' && s_[i] <= '7'; ++k)
                            v = v * 8 + static_cast<uint32_t>(s_[i++] - '0');
                        put(v);
                    } else {  // unknown escapes stay as written
                        put('\\');
                        i = esc + 1;
                    }
            }
        }
        if (pending_high) text::append_utf8(out, 0xfffd);
        return out;
    }
};

}  // namespace

std::vector<Token> tokenize(const Source& source) { return Lexer(source).run(); }

}  // namespace tessera::chat
