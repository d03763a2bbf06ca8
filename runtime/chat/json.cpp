// A strict JSON reader (UTF-8, surrogate pairs, depth limit, positioned errors) and
// Python's json.dumps as the writer.
#include "runtime/chat/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "runtime/chat/template_text.h"
#include "tensor/error.h"

namespace tessera::chat::json {

namespace {

class Reader {
public:
    explicit Reader(std::string_view text) : s_(text) {}

    Value document() {
        if (s_.substr(0, 3) == "\xef\xbb\xbf") pos_ = 3;  // a UTF-8 byte order mark
        skip_space();
        Value v = value(0);
        skip_space();
        if (pos_ != s_.size()) fail("unexpected content after the JSON value");
        return v;
    }

private:
    std::string_view s_;
    size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

    [[noreturn]] void fail_at(size_t at, const std::string& what) const {
        size_t line = 1, line_start = 0;
        for (size_t i = 0; i < at && i < s_.size(); ++i)
            if (s_[i] == '\n') ++line, line_start = i + 1;
        const size_t column = text::length(s_.substr(line_start, std::min(at, s_.size()) - line_start)) + 1;
        throw Error("JSON line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + what);
    }

    std::string describe_here() const {
        if (pos_ >= s_.size()) return "end of input";
        const auto c = static_cast<unsigned char>(s_[pos_]);
        if (c < 0x20 || c >= 0x7f) {
            char buf[16];
            std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
            return buf;
        }
        return std::string("'") + static_cast<char>(c) + "'";
    }

    void skip_space() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
            ++pos_;
    }

    bool consume(std::string_view word) {
        if (s_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    void expect(char c, const char* context) {
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return;
        }
        fail(std::string("expected '") + c + "' " + context + ", found " + describe_here());
    }

    Value value(int depth) {
        if (pos_ >= s_.size()) fail("expected a value, found end of input");
        const char c = s_[pos_];
        if (c == '{' || c == '[') {
            if (depth >= kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
            return c == '{' ? object(depth + 1) : array(depth + 1);
        }
        if (c == '"') return Value::string(string());
        if (consume("true")) return Value::boolean(true);
        if (consume("false")) return Value::boolean(false);
        if (consume("null")) return Value::none();
        if (consume("NaN")) return Value::number(std::numeric_limits<double>::quiet_NaN());
        if (consume("Infinity")) return Value::number(std::numeric_limits<double>::infinity());
        if (consume("-Infinity")) return Value::number(-std::numeric_limits<double>::infinity());
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        fail("expected a value, found " + describe_here());
    }

    Value object(int depth) {
        ++pos_;
        Value v = Value::dict();
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == '}') {
            ++pos_;
            return v;
        }
        while (true) {
            skip_space();
            if (pos_ >= s_.size() || s_[pos_] != '"')
                fail("expected a string key in an object, found " + describe_here());
            Value key = Value::string(string());
            skip_space();
            expect(':', "after an object key");
            skip_space();
            v.as_dict().set(key, value(depth));
            skip_space();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == '}') {
                ++pos_;
                return v;
            }
            fail("expected ',' or '}' in an object, found " + describe_here());
        }
    }

    Value array(int depth) {
        ++pos_;
        Value v = Value::list();
        skip_space();
        if (pos_ < s_.size() && s_[pos_] == ']') {
            ++pos_;
            return v;
        }
        while (true) {
            skip_space();
            v.items().push_back(value(depth));
            skip_space();
            if (pos_ < s_.size() && s_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < s_.size() && s_[pos_] == ']') {
                ++pos_;
                return v;
            }
            fail("expected ',' or ']' in an array, found " + describe_here());
        }
    }

    Value number() {
        const size_t start = pos_;
        auto digits = [&] {
            const size_t from = pos_;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
            return pos_ - from;
        };
        if (s_[pos_] == '-') ++pos_;
        const size_t int_start = pos_;
        const size_t n_int = digits();
        if (n_int == 0) fail("expected a digit in a number, found " + describe_here());
        if (n_int > 1 && s_[int_start] == '0') fail_at(int_start, "a number may not start with 0");
        bool is_float = false;
        if (pos_ < s_.size() && s_[pos_] == '.') {
            ++pos_;
            is_float = true;
            if (digits() == 0) fail("expected a digit after the decimal point, found " + describe_here());
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            ++pos_;
            is_float = true;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
            if (digits() == 0) fail("expected a digit in the exponent, found " + describe_here());
        }
        const char* b = s_.data() + start;
        const char* e = s_.data() + pos_;
        if (!is_float) {
            int64_t i = 0;
            const auto r = std::from_chars(b, e, i);
            if (r.ec == std::errc() && r.ptr == e) return Value::integer(i);
        }
        double d = 0;
        const auto r = std::from_chars(b, e, d);
        if (r.ec == std::errc::result_out_of_range) {
            // Python turns huge literals into inf and tiny ones into 0.
            const bool negative = *b == '-';
            const bool tiny = std::string_view(b, static_cast<size_t>(e - b)).find("e-") != std::string_view::npos ||
                              std::string_view(b, static_cast<size_t>(e - b)).find("E-") != std::string_view::npos;
            d = tiny ? (negative ? -0.0 : 0.0)
                     : (negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity());
        } else if (r.ec != std::errc()) {
            fail_at(start, "malformed number");
        }
        return Value::number(d);
    }

    uint32_t hex4() {
        if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s_[pos_ + static_cast<size_t>(k)];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= static_cast<uint32_t>(c - 'A' + 10);
            else
                fail_at(pos_ + static_cast<size_t>(k), "invalid hex digit in a \\u escape");
        }
        pos_ += 4;
        return v;
    }

    std::string string() {
        const size_t open = pos_++;
        std::string out;
        while (true) {
            if (pos_ >= s_.size()) fail_at(open, "unterminated string");
            const auto c = static_cast<unsigned char>(s_[pos_]);
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (c < 0x20) fail("control character (byte 0x" + hex_byte(c) + ") inside a string; escape it");
            if (c >= 0x80) {
                size_t next = pos_;
                const char32_t cp = text::decode_utf8(s_, next);
                if (cp == 0xfffd && s_.substr(pos_, 3) != "\xef\xbf\xbd") fail("invalid UTF-8 inside a string");
                out.append(s_.substr(pos_, next - pos_));
                pos_ = next;
                continue;
            }
            if (c != '\\') {
                out += static_cast<char>(c);
                ++pos_;
                continue;
            }
            const size_t escape_at = pos_++;
            if (pos_ >= s_.size()) fail_at(open, "unterminated string");
            const char e = s_[pos_++];
            switch (e) {
                case '"':
                    out += '"';
                    break;
                case '\\':
                    out += '\\';
                    break;
                case '/':
                    out += '/';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'u': {
                    uint32_t cp = hex4();
                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        if (s_.substr(pos_, 2) != "\\u") fail_at(escape_at, "unpaired surrogate in a \\u escape");
                        pos_ += 2;
                        const uint32_t low = hex4();
                        if (low < 0xdc00 || low > 0xdfff) fail_at(escape_at, "unpaired surrogate in a \\u escape");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                        fail_at(escape_at, "unpaired surrogate in a \\u escape");
                    }
                    text::append_utf8(out, cp);
                    break;
                }
                default:
                    fail_at(escape_at, std::string("invalid escape '\\") + e + "' in a string");
            }
        }
    }

    static std::string hex_byte(unsigned char c) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x", c);
        return buf;
    }
};

std::string key_text(const Value& k) {
    switch (k.type()) {
        case Value::Type::String:
            return k.as_string();
        case Value::Type::None:
            return "null";
        case Value::Type::Bool:
            return k.as_bool() ? "true" : "false";
        case Value::Type::Int:
            return std::to_string(k.as_int());
        case Value::Type::Float:
            return text::format_float(k.as_double());
        default:
            throw EvalError(std::string("keys must be str, int, float, bool or None, not ") + k.type_name());
    }
}

class Writer {
public:
    explicit Writer(const DumpOptions& o)
        : o_(o), item_sep_(o.item_separator ? *o.item_separator : (o.indent ? "," : ", ")) {}

    void value(std::string& out, const Value& v, int depth) {
        if (depth > kMaxDepth) throw EvalError("Circular reference detected (or value nested too deeply)");
        switch (v.type()) {
            case Value::Type::None:
                out += "null";
                return;
            case Value::Type::Bool:
                out += v.as_bool() ? "true" : "false";
                return;
            case Value::Type::Int:
                out += std::to_string(v.as_int());
                return;
            case Value::Type::Float: {
                const double d = v.as_double();
                if (std::isnan(d))
                    out += "NaN";
                else if (std::isinf(d))
                    out += d < 0 ? "-Infinity" : "Infinity";
                else
                    out += text::format_float(d);
                return;
            }
            case Value::Type::String:
                append_quoted(out, v.as_string(), o_.ensure_ascii);
                return;
            case Value::Type::List:
            case Value::Type::Tuple: {
                const Array& items = v.items();
                if (items.empty()) {
                    out += "[]";
                    return;
                }
                out += '[';
                for (size_t i = 0; i < items.size(); ++i) {
                    out += i ? item_sep_ : std::string();
                    newline(out, depth + 1);
                    value(out, items[i], depth + 1);
                }
                newline(out, depth);
                out += ']';
                return;
            }
            case Value::Type::Dict: {
                std::vector<std::pair<std::string, const Value*>> entries;
                for (const auto& [k, item] : v.as_dict().entries()) entries.emplace_back(key_text(k), &item);
                if (o_.sort_keys)
                    std::stable_sort(entries.begin(), entries.end(),
                                     [](const auto& a, const auto& b) { return a.first < b.first; });
                if (entries.empty()) {
                    out += "{}";
                    return;
                }
                out += '{';
                for (size_t i = 0; i < entries.size(); ++i) {
                    out += i ? item_sep_ : std::string();
                    newline(out, depth + 1);
                    append_quoted(out, entries[i].first, o_.ensure_ascii);
                    out += o_.key_separator;
                    value(out, *entries[i].second, depth + 1);
                }
                newline(out, depth);
                out += '}';
                return;
            }
            default:
                throw EvalError(std::string("Object of type ") + v.type_name() + " is not JSON serializable");
        }
    }

private:
    const DumpOptions& o_;
    std::string item_sep_;

    void newline(std::string& out, int depth) const {
        if (!o_.indent) return;
        out += '\n';
        for (int i = 0; i < depth; ++i) out += *o_.indent;
    }
};

}  // namespace

Value parse(std::string_view text) { return Reader(text).document(); }

void append_quoted(std::string& out, std::string_view s, bool ensure_ascii) {
    out += '"';
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        char buf[16];
        if (c >= 0x80) {
            const size_t at = i;
            const char32_t cp = text::decode_utf8(s, i);
            if (!ensure_ascii) {
                out.append(s.substr(at, i - at));
            } else if (cp >= 0x10000) {
                const char32_t v = cp - 0x10000;
                std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xd800 + (v >> 10)),
                              static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
                out += buf;
            } else {
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
                out += buf;
            }
            continue;
        }
        ++i;
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default:
                if (c < 0x20) {
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
}

std::string dump(const Value& value, const DumpOptions& options) {
    std::string out;
    Writer(options).value(out, value, 0);
    return out;
}

}  // namespace tessera::chat::json
