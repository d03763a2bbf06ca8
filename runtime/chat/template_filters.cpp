// Filters (`value | name(args)`), with the behaviour of Jinja2 3.1 and of Hugging Face's
// `tojson` override.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "runtime/chat/json.h"
#include "runtime/chat/template_builtins.h"
#include "runtime/chat/template_eval.h"
#include "runtime/chat/template_ops.h"
#include "runtime/chat/template_text.h"

namespace tessera::chat {

namespace {

using Args = std::vector<std::optional<Value>>;

bool flag(const std::optional<Value>& v) { return v && v->truthy(); }

std::string soft_str(const Value& v) { return v.str(); }

// A string result of a filter that keeps its input's Markup-ness (soft_str then a str method).
Value like(const Value& input, std::string s) {
    return input.is_markup() ? Value::markup(std::move(s)) : Value::string(std::move(s));
}

// Jinja's attribute getter for map/sort/selectattr/...: "a.b.0" walks keys and indexes.
Value attribute_path(const Value& item, const Value& attribute) {
    if (!attribute.is_string()) return get_item(item, attribute);
    Value v = item;
    for (const std::string& part : text::split(attribute.as_string(), std::string("."), -1)) {
        int64_t index = 0;
        const auto r = std::from_chars(part.data(), part.data() + part.size(), index);
        const bool numeric = !part.empty() && r.ec == std::errc() && r.ptr == part.data() + part.size();
        v = get_item(v, numeric ? Value::integer(index) : Value::string(part));
    }
    return v;
}

Value case_key(const Value& v, bool case_sensitive) {
    return (!case_sensitive && v.is_string()) ? Value::string(text::lower(v.as_string())) : v;
}

// The sort/unique/min/max key: an attribute (or comma-separated attributes) and case folding.
std::function<Value(const Value&)> key_function(const std::optional<Value>& attribute, bool case_sensitive) {
    if (!attribute || attribute->is_none())
        return [case_sensitive](const Value& v) { return case_key(v, case_sensitive); };
    if (attribute->is_string() && attribute->as_string().find(',') != std::string::npos) {
        std::vector<Value> parts;
        for (const std::string& p : text::split(attribute->as_string(), std::string(","), -1))
            parts.push_back(Value::string(text::strip(p, std::nullopt, true, true)));
        return [parts, case_sensitive](const Value& v) {
            Array keys;
            for (const Value& p : parts) keys.push_back(case_key(attribute_path(v, p), case_sensitive));
            return Value::list(std::move(keys));
        };
    }
    const Value attr = *attribute;
    return [attr, case_sensitive](const Value& v) { return case_key(attribute_path(v, attr), case_sensitive); };
}

// Python's int(str, base): surrounding whitespace, a sign, underscores between digits.
std::optional<int64_t> parse_int(const std::string& s, int base) {
    std::string t = text::strip(s, std::nullopt, true, true);
    bool negative = false;
    size_t i = 0;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) negative = t[i++] == '-';
    if (base == 16 && t.compare(i, 2, "0x") == 0) i += 2;
    if (base == 8 && t.compare(i, 2, "0o") == 0) i += 2;
    if (base == 2 && t.compare(i, 2, "0b") == 0) i += 2;
    std::string digits;
    for (; i < t.size(); ++i) {
        if (t[i] == '_' && !digits.empty() && i + 1 < t.size() && t[i + 1] != '_') continue;
        digits += t[i];
    }
    if (digits.empty()) return std::nullopt;
    uint64_t v = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return std::nullopt;
    if (v > static_cast<uint64_t>(INT64_MAX) + (negative ? 1 : 0)) throw EvalError("integer too large");
    return negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
}

// Python's float(str).
std::optional<double> parse_float(const std::string& s) {
    std::string t = text::strip(s, std::nullopt, true, true);
    std::string lowered = text::lower(t);
    const std::string_view body =
        std::string_view(lowered).substr(!lowered.empty() && (lowered[0] == '+' || lowered[0] == '-'));
    const double sign = !lowered.empty() && lowered[0] == '-' ? -1.0 : 1.0;
    if (body == "inf" || body == "infinity") return sign * HUGE_VAL;
    if (body == "nan") return std::nan("");
    std::string clean;
    for (size_t i = 0; i < t.size(); ++i)
        if (t[i] != '_' || (i > 0 && i + 1 < t.size() && std::isdigit(static_cast<unsigned char>(t[i - 1])) &&
                            std::isdigit(static_cast<unsigned char>(t[i + 1]))))
            clean += t[i];
    if (clean.empty() || clean.find_first_not_of("0123456789+-.eE") != std::string::npos) return std::nullopt;
    const char* b = clean.data() + (clean[0] == '+');
    double d = 0;
    const auto r = std::from_chars(b, clean.data() + clean.size(), d);
    if (r.ptr != clean.data() + clean.size()) return std::nullopt;
    if (r.ec == std::errc::result_out_of_range) return std::strtod(clean.c_str(), nullptr);
    if (r.ec != std::errc()) return std::nullopt;
    return d;
}

// Python's round(x, ndigits) for floats: correctly rounded, ties to even.
double round_float(double x, int64_t ndigits) {
    if (!std::isfinite(x) || ndigits > 300) return x;
    if (ndigits >= 0) {
        char buf[400];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits), x);
        return std::strtod(buf, nullptr);
    }
    const double scale = std::pow(10.0, static_cast<double>(-ndigits));
    return std::nearbyint(x / scale) * scale;
}

// ---- filters ----

Value f_abs(Renderer&, const Value& v, CallArgs& args) {
    bind_args("abs", args, {});
    if (v.is_float()) return Value::number(std::fabs(v.as_double()));
    if (v.is_number()) {
        if (v.as_int() == INT64_MIN) throw EvalError("integer overflow");
        return Value::integer(std::llabs(v.as_int()));
    }
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    throw EvalError(std::string("bad operand type for abs(): '") + v.type_name() + "'");
}

Value f_attr(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("attr", args, {"name"});
    const std::string name = to_str(a[0].value_or(Value()), "attr");
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    if (v.is_namespace()) {
        if (const Value* x = v.as_dict().find(name)) return *x;
    } else if (std::optional<Value> m = find_method(v, name)) {
        return *m;
    }
    return Value::undefined(text::repr(object_description(v)) + " has no attribute " + text::repr(name));
}

Value f_batch(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("batch", args, {"linecount", "fill_with"});
    const int64_t n = to_int(a[0].value_or(Value()), "batch");
    if (n <= 0) throw EvalError("batch: linecount must be positive");
    Array out, cur;
    for (const Value& item : v.iterate()) {
        cur.push_back(item);
        if (static_cast<int64_t>(cur.size()) == n) out.push_back(Value::list(std::exchange(cur, {})));
    }
    if (!cur.empty()) {
        if (a[1] && !a[1]->is_none())
            while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*a[1]);
        out.push_back(Value::list(std::move(cur)));
    }
    return Value::iterator(std::move(out));
}

Value f_capitalize(Renderer&, const Value& v, CallArgs& args) {
    bind_args("capitalize", args, {});
    return like(v, text::capitalize(soft_str(v)));
}

Value f_center(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("center", args, {"width"});
    const int64_t width = std::min<int64_t>(a[0] ? to_int(*a[0], "center") : 80, int64_t{1} << 20);
    return like(v, text::center(soft_str(v), width, U' '));
}

Value f_default(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("default", args, {"default_value", "boolean"});
    if (v.is_undefined() || (flag(a[1]) && !v.truthy())) return a[0] ? *a[0] : Value::string("");
    return v;
}

Value f_dictsort(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("dictsort", args, {"case_sensitive", "by", "reverse"});
    if (!v.is_dict()) throw EvalError("You can only sort by either 'key' or 'value' of a mapping");
    const std::string by = a[1] ? to_str(*a[1], "dictsort") : "key";
    if (by != "key" && by != "value") throw EvalError("You can only sort by either \"key\" or \"value\"");
    const bool cs = flag(a[0]);
    Array items;
    for (const auto& [k, x] : v.as_dict().entries()) items.push_back(Value::tuple({k, x}));
    const size_t pos = by == "key" ? 0 : 1;
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
        return case_key(x.items()[pos], cs).less(case_key(y.items()[pos], cs));
    });
    if (flag(a[2])) std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
}

Value f_escape(Renderer&, const Value& v, CallArgs& args) {
    bind_args("escape", args, {});
    return markup_escape(v);
}

Value f_forceescape(Renderer&, const Value& v, CallArgs& args) {
    bind_args("forceescape", args, {});
    return Value::markup(text::html_escape(v.str()));
}

Value f_first(Renderer&, const Value& v, CallArgs& args) {
    bind_args("first", args, {});
    if (v.is_iterator()) {
        IteratorState& it = v.as_iterator();
        if (it.pos < it.items.size()) return it.items[it.pos++];
    } else {
        const Array items = v.iterate();
        if (!items.empty()) return items.front();
    }
    return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Renderer&, const Value& v, CallArgs& args) {
    bind_args("last", args, {});
    if (v.is_iterator()) throw EvalError(std::string("'") + v.type_name() + "' object is not reversible");
    const Array items = v.iterate();
    if (items.empty()) return Value::undefined("No last item, sequence was empty.");
    return items.back();
}

Value f_float(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("float", args, {"default"});
    const Value fallback = a[0] ? *a[0] : Value::number(0.0);
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    if (v.is_number()) return Value::number(v.as_double());
    if (v.is_string()) {
        if (std::optional<double> d = parse_float(v.as_string())) return Value::number(*d);
    }
    return fallback;
}

Value f_format(Renderer&, const Value& v, CallArgs& args) {
    if (!args.positional.empty() && !args.keyword.empty())
        throw EvalError("can't handle positional and keyword arguments at the same time");
    Value fmt_args;
    if (!args.keyword.empty()) {
        fmt_args = Value::dict();
        for (auto& [k, x] : args.keyword) fmt_args.as_dict().set(k, x);
    } else {
        fmt_args = Value::tuple(args.positional);
    }
    if (v.is_markup()) return binary_op("%", v, fmt_args);
    return Value::string(percent_format(soft_str(v), fmt_args));
}

Value f_indent(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("indent", args, {"width", "first", "blank"});
    if (!v.is_string()) {
        if (v.is_undefined()) throw EvalError(v.undefined_message());
        throw EvalError(std::string("indent: expected a string, not '") + v.type_name() + "'");
    }
    std::string indention = "    ";
    if (a[0])
        indention = a[0]->is_string()
                        ? a[0]->as_string()
                        : std::string(static_cast<size_t>(std::clamp<int64_t>(to_int(*a[0], "indent"), 0, 4096)), ' ');
    const std::vector<std::string> lines = text::splitlines(v.as_string() + "\n", false);
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (i) out += "\n";
        if (flag(a[2]) ? i > 0 : (i > 0 && !lines[i].empty())) out += indention;
        out += lines[i];
    }
    if (flag(a[1])) out = indention + out;
    check_string_size(out.size());
    return like(v, std::move(out));
}

Value f_int(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("int", args, {"default", "base"});
    const Value fallback = a[0] ? *a[0] : Value::integer(0);
    const int64_t base = a[1] ? to_int(*a[1], "int") : 10;
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
    if (v.is_float()) {
        const double d = v.as_double();
        if (std::isnan(d)) return fallback;
        if (std::isinf(d) || std::fabs(d) >= 9.2e18)
            throw EvalError("cannot convert float infinity or huge value to integer");
        return Value::integer(static_cast<int64_t>(d));
    }
    if (v.is_string()) {
        if (base == 2 || base == 8 || base == 10 || base == 16)
            if (std::optional<int64_t> i = parse_int(v.as_string(), static_cast<int>(base))) return Value::integer(*i);
        if (std::optional<double> d = parse_float(v.as_string()))
            if (std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value::integer(static_cast<int64_t>(*d));
    }
    return fallback;
}

Value f_items(Renderer&, const Value& v, CallArgs& args) {
    bind_args("items", args, {});
    if (v.is_undefined()) return Value::iterator({});
    if (!v.is_dict()) throw EvalError("Can only get item pairs from a mapping.");
    Array out;
    for (const auto& [k, x] : v.as_dict().entries()) out.push_back(Value::tuple({k, x}));
    return Value::iterator(std::move(out));
}

Value f_join(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("join", args, {"d", "attribute"});
    const std::string sep = a[0] ? soft_str(*a[0]) : "";
    std::string out;
    bool first = true;
    for (const Value& item : v.iterate()) {
        if (!first) out += sep;
        first = false;
        out += soft_str(a[1] && !a[1]->is_none() ? attribute_path(item, *a[1]) : item);
        check_string_size(out.size());
    }
    return Value::string(std::move(out));
}

Value f_length(Renderer&, const Value& v, CallArgs& args) {
    bind_args("length", args, {});
    switch (v.type()) {
        case Value::Type::Undefined:
            return Value::integer(0);
        case Value::Type::String:
            return Value::integer(static_cast<int64_t>(text::length(v.as_string())));
        case Value::Type::List:
        case Value::Type::Tuple:
            return Value::integer(static_cast<int64_t>(v.items().size()));
        case Value::Type::Dict:
            return Value::integer(static_cast<int64_t>(v.as_dict().size()));
        default:
            throw EvalError(std::string("object of type '") + v.type_name() + "' has no len()");
    }
}

Value f_list(Renderer&, const Value& v, CallArgs& args) {
    bind_args("list", args, {});
    return Value::list(v.iterate());
}

Value f_lower(Renderer&, const Value& v, CallArgs& args) {
    bind_args("lower", args, {});
    return like(v, text::lower(soft_str(v)));
}

Value f_upper(Renderer&, const Value& v, CallArgs& args) {
    bind_args("upper", args, {});
    return like(v, text::upper(soft_str(v)));
}

Value f_map(Renderer& r, const Value& v, CallArgs& args) {
    Array out;
    const Array items = v.truthy() ? v.iterate() : Array{};
    if (args.positional.empty()) {  // map(attribute="x", default=...)
        std::optional<Value> attribute, fallback;
        for (auto& [k, x] : args.keyword) {
            if (k == "attribute")
                attribute = x;
            else if (k == "default")
                fallback = x;
            else
                throw EvalError("map() got an unexpected keyword argument '" + k + "'");
        }
        if (!attribute) throw EvalError("map requires a filter name or attribute=");
        for (const Value& item : items) {
            Value x = attribute_path(item, *attribute);
            out.push_back(x.is_undefined() && fallback ? *fallback : x);
        }
        return Value::iterator(std::move(out));
    }
    const std::string name = to_str(args.positional[0], "map");
    CallArgs rest{Array(args.positional.begin() + 1, args.positional.end()), args.keyword};
    for (const Value& item : items) {
        CallArgs each = rest;
        out.push_back(r.apply_filter(name, item, each));
    }
    return Value::iterator(std::move(out));
}

Value min_max(const Value& v, CallArgs& args, bool want_max) {
    const Args a = bind_args(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
    const Array items = v.iterate();
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    const auto key = key_function(a[1], flag(a[0]));
    size_t best = 0;
    Value best_key = key(items[0]);
    for (size_t i = 1; i < items.size(); ++i) {
        Value k = key(items[i]);
        if (want_max ? best_key.less(k) : k.less(best_key)) best = i, best_key = std::move(k);
    }
    return items[best];
}

Value f_max(Renderer&, const Value& v, CallArgs& args) { return min_max(v, args, true); }
Value f_min(Renderer&, const Value& v, CallArgs& args) { return min_max(v, args, false); }

Value select_reject(Renderer& r, const Value& v, CallArgs& args, bool by_attribute, bool select) {
    const Array items = v.truthy() ? v.iterate() : Array{};
    size_t next = 0;
    std::optional<Value> attribute;
    if (by_attribute) {
        if (args.positional.empty()) throw EvalError("selectattr/rejectattr need an attribute name");
        attribute = args.positional[next++];
    }
    std::optional<std::string> test;
    if (next < args.positional.size()) test = to_str(args.positional[next++], "select");
    const CallArgs test_args{Array(args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end()),
                             args.keyword};
    Array out;
    for (const Value& item : items) {
        const Value x = attribute ? attribute_path(item, *attribute) : item;
        bool keep = false;
        if (test) {
            CallArgs each = test_args;
            keep = r.apply_test(*test, x, each);
        } else {
            keep = x.truthy();
        }
        if (keep == select) out.push_back(item);
    }
    return Value::iterator(std::move(out));
}

Value f_select(Renderer& r, const Value& v, CallArgs& a) { return select_reject(r, v, a, false, true); }
Value f_reject(Renderer& r, const Value& v, CallArgs& a) { return select_reject(r, v, a, false, false); }
Value f_selectattr(Renderer& r, const Value& v, CallArgs& a) { return select_reject(r, v, a, true, true); }
Value f_rejectattr(Renderer& r, const Value& v, CallArgs& a) { return select_reject(r, v, a, true, false); }

Value f_replace(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("replace", args, {"old", "new", "count"});
    if (!a[0] || !a[1]) throw EvalError("replace() needs the old and the new string");
    const int64_t count = a[2] && !a[2]->is_none() ? to_int(*a[2], "replace") : -1;
    std::string out = text::replace(soft_str(v), soft_str(*a[0]), soft_str(*a[1]), count);
    check_string_size(out.size());
    return Value::string(std::move(out));
}

Value f_reverse(Renderer&, const Value& v, CallArgs& args) {
    bind_args("reverse", args, {});
    if (v.is_string()) {
        std::u32string u = text::to_u32(v.as_string());
        std::reverse(u.begin(), u.end());
        return Value::string(text::to_utf8(u));
    }
    Array items = v.iterate();
    std::reverse(items.begin(), items.end());
    if (v.is_iterator()) return Value::list(std::move(items));
    return Value::iterator(std::move(items), v.is_dict() ? "dict_reversekeyiterator" : "list_reverseiterator");
}

Value f_round(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("round", args, {"precision", "method"});
    const int64_t precision = a[0] ? to_int(*a[0], "round") : 0;
    const std::string method = a[1] ? to_str(*a[1], "round") : "common";
    if (method != "common" && method != "ceil" && method != "floor")
        throw EvalError("method must be common, ceil or floor");
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    if (!v.is_number()) throw EvalError(std::string("type ") + v.type_name() + " doesn't define __round__ method");
    if (method == "common") {
        if (!v.is_float()) {  // round(int, n) stays an int; a negative n rounds half to even
            const int64_t x = v.as_int();
            if (precision >= 0) return Value::integer(x);
            if (precision < -18) return Value::integer(0);
            int64_t unit = 1;
            for (int64_t i = 0; i < -precision; ++i) unit *= 10;
            int64_t q = x / unit, r = x % unit;
            if (r < 0) r += unit, q -= 1;  // floor division
            if (2 * r > unit || (2 * r == unit && (q & 1))) q += 1;
            return Value::integer(q * unit);
        }
        return Value::number(round_float(v.as_double(), precision));
    }
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = v.as_double() * scale;
    return Value::number((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Renderer&, const Value& v, CallArgs& args) {
    bind_args("safe", args, {});
    return Value::markup(soft_str(v));
}

Value f_sort(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("sort", args, {"reverse", "case_sensitive", "attribute"});
    Array items = v.iterate();
    const auto key = key_function(a[2], flag(a[1]));
    std::vector<std::pair<Value, size_t>> keyed;
    // Jinja sorts by a list of keys (make_multi_attrgetter), so equal keys never meet `<`
    // (two undefined keys compare equal instead of failing).
    for (size_t i = 0; i < items.size(); ++i) {
        Value k = key(items[i]);
        keyed.emplace_back(k.is_list() ? k : Value::list({k}), i);
    }
    const bool reverse = flag(a[0]);
    std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& x, const auto& y) {
        return reverse ? y.first.less(x.first) : x.first.less(y.first);
    });
    Array out;
    for (const auto& k : keyed) out.push_back(items[k.second]);
    return Value::list(std::move(out));
}

Value f_string(Renderer&, const Value& v, CallArgs& args) {
    bind_args("string", args, {});
    return like(v, soft_str(v));
}

Value f_sum(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("sum", args, {"attribute", "start"});
    Value total = a[1] ? *a[1] : Value::integer(0);
    if (total.is_string()) throw EvalError("sum() can't sum strings [use ''.join(seq) instead]");
    for (const Value& item : v.iterate())
        total = binary_op("+", total, a[0] && !a[0]->is_none() ? attribute_path(item, *a[0]) : item);
    return total;
}

Value f_title(Renderer&, const Value& v, CallArgs& args) {
    bind_args("title", args, {});
    // Jinja capitalizes each piece between runs of whitespace, '-', '(', '{', '[' and '<'.
    const std::u32string u = text::to_u32(soft_str(v));
    auto separator = [](char32_t c) {
        return text::is_space(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    };
    std::string out;
    for (size_t i = 0; i < u.size();) {
        const bool sep = separator(u[i]);
        size_t j = i;
        while (j < u.size() && separator(u[j]) == sep) ++j;
        const std::string piece = text::to_utf8(std::u32string_view(u).substr(i, j - i));
        size_t first_end = 0;
        text::decode_utf8(piece, first_end);
        out += text::upper(piece.substr(0, first_end)) + text::lower(piece.substr(first_end));
        i = j;
    }
    return Value::string(std::move(out));
}

Value f_tojson(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    json::DumpOptions o;
    o.ensure_ascii = flag(a[0]);
    o.sort_keys = flag(a[3]);
    if (a[1] && !a[1]->is_none()) {
        o.indent = a[1]->is_string()
                       ? a[1]->as_string()
                       : std::string(static_cast<size_t>(std::clamp<int64_t>(to_int(*a[1], "tojson"), 0, 256)), ' ');
    }
    if (a[2] && !a[2]->is_none()) {
        const Array seps = a[2]->iterate();
        if (seps.size() != 2) throw EvalError("tojson: separators must be an (item, key) pair");
        o.item_separator = to_str(seps[0], "tojson");
        o.key_separator = to_str(seps[1], "tojson");
    }
    std::string out = json::dump(v, o);
    check_string_size(out.size());
    return Value::string(std::move(out));
}

Value f_trim(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("trim", args, {"chars"});
    std::optional<std::string> chars;
    if (a[0] && !a[0]->is_none()) chars = to_str(*a[0], "trim");
    return like(v, text::strip(soft_str(v), chars, true, true));
}

Value f_truncate(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("truncate", args, {"length", "killwords", "end", "leeway"});
    const int64_t length = a[0] ? to_int(*a[0], "truncate") : 255;
    const int64_t leeway = a[3] && !a[3]->is_none() ? to_int(*a[3], "truncate") : 5;
    if (!v.is_string()) {  // Jinja takes len() of the value as it is: a short list passes
        if (v.is_undefined()) return v;
        if (!v.is_sequence() && !v.is_dict())
            throw EvalError(std::string("object of type '") + v.type_name() + "' has no len()");
        const auto n = static_cast<int64_t>(v.is_dict() ? v.as_dict().size() : v.items().size());
        if (n <= length + leeway) return v;
        throw EvalError("truncate: expected a string, not '" + std::string(v.type_name()) + "'");
    }
    const std::u32string s = text::to_u32(v.as_string());
    const std::u32string end = text::to_u32(a[2] ? to_str(*a[2], "truncate") : "...");
    if (length < static_cast<int64_t>(end.size()))
        throw EvalError("expected length >= " + std::to_string(end.size()) + ", got " + std::to_string(length));
    if (leeway < 0) throw EvalError("expected leeway >= 0, got " + std::to_string(leeway));
    if (static_cast<int64_t>(s.size()) <= length + leeway) return Value::string(text::to_utf8(s));
    std::u32string head = s.substr(0, static_cast<size_t>(length) - end.size());
    if (!flag(a[1])) {
        const size_t space = head.rfind(U' ');
        if (space != std::u32string::npos) head.resize(space);
    }
    return Value::string(text::to_utf8(head + end));
}

Value f_unique(Renderer&, const Value& v, CallArgs& args) {
    const Args a = bind_args("unique", args, {"case_sensitive", "attribute"});
    const auto key = key_function(a[1], flag(a[0]));
    std::unordered_map<std::string, bool> seen;
    Array out;
    for (const Value& item : v.iterate())
        if (seen.emplace(key(item).hash_key(), true).second) out.push_back(item);
    return Value::iterator(std::move(out));
}

Value f_wordcount(Renderer&, const Value& v, CallArgs& args) {
    bind_args("wordcount", args, {});
    int64_t n = 0;
    bool in_word = false;
    const std::string s = soft_str(v);
    for (size_t i = 0; i < s.size();) {
        const char32_t c = text::decode_utf8(s, i);
        const bool w = text::is_alnum(c) || c == '_';
        if (w && !in_word) ++n;
        in_word = w;
    }
    return Value::integer(n);
}

struct NamedFilter {
    std::string_view name;
    FilterFn fn;
};

constexpr NamedFilter kFilters[] = {
    {"abs", f_abs},           {"attr", f_attr},
    {"batch", f_batch},       {"capitalize", f_capitalize},
    {"center", f_center},     {"count", f_length},
    {"d", f_default},         {"default", f_default},
    {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape},     {"first", f_first},
    {"float", f_float},       {"forceescape", f_forceescape},
    {"format", f_format},     {"indent", f_indent},
    {"int", f_int},           {"items", f_items},
    {"join", f_join},         {"last", f_last},
    {"length", f_length},     {"list", f_list},
    {"lower", f_lower},       {"map", f_map},
    {"max", f_max},           {"min", f_min},
    {"reject", f_reject},     {"rejectattr", f_rejectattr},
    {"replace", f_replace},   {"reverse", f_reverse},
    {"round", f_round},       {"safe", f_safe},
    {"select", f_select},     {"selectattr", f_selectattr},
    {"sort", f_sort},         {"string", f_string},
    {"sum", f_sum},           {"title", f_title},
    {"tojson", f_tojson},     {"trim", f_trim},
    {"truncate", f_truncate}, {"unique", f_unique},
    {"upper", f_upper},       {"wordcount", f_wordcount},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
    for (const NamedFilter& f : kFilters)
        if (f.name == name) return f.fn;
    return nullptr;
}

}  // namespace tessera::chat
