// Python's arithmetic, comparison, membership, slicing and printf-style formatting,
// and Jinja's attribute/item lookup rules, on template values.
#include "runtime/chat/template_ops.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "runtime/chat/template_builtins.h"
#include "runtime/chat/template_text.h"

namespace tessera::chat {

namespace {

constexpr size_t kMaxListItems = size_t{1} << 22;

[[noreturn]] void unsupported(std::string_view op, const Value& a, const Value& b) {
    if (a.is_undefined()) throw EvalError(a.undefined_message());
    if (b.is_undefined()) throw EvalError(b.undefined_message());
    throw EvalError("unsupported operand type(s) for " + std::string(op) + ": '" + a.type_name() + "' and '" +
                    b.type_name() + "'");
}

// Checked 64-bit arithmetic (true on overflow), portable beyond GCC and Clang.
bool add_overflow(int64_t a, int64_t b, int64_t* r) {
    if ((b > 0 && a > std::numeric_limits<int64_t>::max() - b) ||
        (b < 0 && a < std::numeric_limits<int64_t>::min() - b))
        return true;
    *r = a + b;
    return false;
}

bool sub_overflow(int64_t a, int64_t b, int64_t* r) {
    if ((b < 0 && a > std::numeric_limits<int64_t>::max() + b) ||
        (b > 0 && a < std::numeric_limits<int64_t>::min() + b))
        return true;
    *r = a - b;
    return false;
}

bool mul_overflow(int64_t a, int64_t b, int64_t* r) {
    if (a == 0 || b == 0) {
        *r = 0;
        return false;
    }
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
    if ((a == -1 && b == kMin) || (b == -1 && a == kMin)) return true;
    if (a > 0 ? (b > 0 ? a > kMax / b : b < kMin / a) : (b > 0 ? a < kMin / b : a < kMax / b)) return true;
    *r = a * b;
    return false;
}

int64_t checked(bool overflow, int64_t v) {
    if (overflow) throw EvalError("integer overflow (results beyond 64 bits are not supported)");
    return v;
}

Value repeat(const Value& seq, int64_t n) {
    if (n < 0) n = 0;
    if (seq.is_string()) {
        const std::string& s = seq.as_string();
        if (!s.empty() && static_cast<uint64_t>(n) > kMaxStringBytes / s.size()) check_string_size(kMaxStringBytes + 1);
        std::string out;
        out.reserve(s.size() * static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) out += s;
        return seq.is_markup() ? Value::markup(std::move(out)) : Value::string(std::move(out));
    }
    const Array& items = seq.items();
    if (!items.empty() && static_cast<uint64_t>(n) > kMaxListItems / items.size())
        throw EvalError("list too long (more than " + std::to_string(kMaxListItems) + " items)");
    Array out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
    return seq.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

Value concat_sequences(const Value& a, const Value& b) {
    if (a.items().size() + b.items().size() > kMaxListItems)
        throw EvalError("list too long (more than " + std::to_string(kMaxListItems) + " items)");
    Array out = a.items();
    out.insert(out.end(), b.items().begin(), b.items().end());
    return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

// Python's float divmod: the quotient's floor and a remainder with the divisor's sign.
std::pair<double, double> float_divmod(double a, double b) {
    double mod = std::fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0.0) {
        if ((b < 0) != (mod < 0)) {
            mod += b;
            div -= 1.0;
        }
    } else {
        mod = std::copysign(0.0, b);
    }
    double floordiv = 0.0;
    if (div != 0.0) {
        floordiv = std::floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = std::copysign(0.0, a / b);
    }
    return {floordiv, mod};
}

Value int_pow(int64_t base, int64_t exp) {
    int64_t result = 1;
    while (exp > 0) {
        if ((exp & 1) && mul_overflow(result, base, &result)) checked(true, 0);
        exp >>= 1;
        if (exp > 0 && mul_overflow(base, base, &base)) checked(true, 0);
    }
    return Value::integer(result);
}

Value arithmetic(std::string_view op, const Value& a, const Value& b) {
    const bool use_float = a.is_float() || b.is_float();
    if (op == "+" || op == "-" || op == "*") {
        if (use_float) {
            const double x = a.as_double(), y = b.as_double();
            return Value::number(op == "+" ? x + y : op == "-" ? x - y : x * y);
        }
        int64_t r = 0;
        const int64_t x = a.as_int(), y = b.as_int();
        const bool o = op == "+" ? add_overflow(x, y, &r) : op == "-" ? sub_overflow(x, y, &r) : mul_overflow(x, y, &r);
        checked(o, 0);
        return Value::integer(r);
    }
    if (op == "/") {
        if (b.as_double() == 0.0) throw EvalError("division by zero");
        return Value::number(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
        if (use_float) {
            if (b.as_double() == 0.0) throw EvalError(op == "%" ? "float modulo" : "float floor division by zero");
            const auto [q, m] = float_divmod(a.as_double(), b.as_double());
            return Value::number(op == "//" ? q : m);
        }
        const int64_t x = a.as_int(), y = b.as_int();
        if (y == 0) throw EvalError("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1)
            return op == "%" ? Value::integer(0) : Value::integer(checked(true, 0));
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
            m += y;
            q -= 1;
        }
        return Value::integer(op == "//" ? q : m);
    }
    // "**"
    if (!use_float && b.as_int() >= 0) return int_pow(a.as_int(), b.as_int());
    const double x = a.as_double(), y = b.as_double();
    if (x == 0.0 && y < 0) throw EvalError("0.0 cannot be raised to a negative power");
    if (x < 0 && y != std::floor(y)) throw EvalError("complex results of ** are not supported");
    return Value::number(std::pow(x, y));
}

}  // namespace

Value markup_escape(const Value& v) {
    if (v.is_markup()) return v;
    return Value::markup(text::html_escape(v.str()));
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
    if (op == "~") {
        std::string s = a.str() + b.str();
        check_string_size(s.size());
        return Value::string(std::move(s));
    }
    if (a.is_number() && b.is_number()) return arithmetic(op, a, b);
    if (op == "+") {
        if (a.is_string() && b.is_string()) {
            if (a.is_markup() || b.is_markup()) {  // Markup + str escapes the str
                std::string s = markup_escape(a).as_string() + markup_escape(b).as_string();
                check_string_size(s.size());
                return Value::markup(std::move(s));
            }
            check_string_size(a.as_string().size() + b.as_string().size());
            return Value::string(a.as_string() + b.as_string());
        }
        if ((a.is_list() && b.is_list()) || (a.is_tuple() && b.is_tuple())) return concat_sequences(a, b);
        if ((a.is_string() || a.is_list() || a.is_tuple()) && !b.is_undefined())
            throw EvalError(std::string("can only concatenate ") + a.type_name() + " (not \"" + b.type_name() +
                            "\") to " + a.type_name());
    }
    if (op == "*") {
        const bool a_seq = a.is_string() || a.is_sequence(), b_seq = b.is_string() || b.is_sequence();
        if (a_seq && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
        if (b_seq && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
        if ((a_seq && b.is_number()) || (b_seq && a.is_number()))
            throw EvalError("can't multiply sequence by non-int of type 'float'");
    }
    if (op == "%" && a.is_string()) {
        if (!a.is_markup()) {
            std::string s = percent_format(a.as_string(), b);
            check_string_size(s.size());
            return Value::string(std::move(s));
        }
        // Markup % args escapes the arguments that are not numbers.
        auto escaped = [](const Value& x) { return x.is_number() ? x : markup_escape(x); };
        Value args;
        if (b.is_tuple()) {
            Array items;
            for (const Value& x : b.items()) items.push_back(escaped(x));
            args = Value::tuple(std::move(items));
        } else if (b.is_dict()) {
            args = Value::dict();
            for (const auto& [k, x] : b.as_dict().entries()) args.as_dict().set(k, escaped(x));
        } else {
            args = escaped(b);
        }
        std::string s = percent_format(a.as_string(), args);
        check_string_size(s.size());
        return Value::markup(std::move(s));
    }
    unsupported(op, a, b);
}

Value unary_op(std::string_view op, const Value& v) {
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    if (!v.is_number()) throw EvalError("bad operand type for unary " + std::string(op) + ": '" + v.type_name() + "'");
    if (v.is_float()) return Value::number(op == "-" ? -v.as_double() : v.as_double());
    if (op == "+") return Value::integer(v.as_int());
    return Value::integer(checked(v.as_int() == std::numeric_limits<int64_t>::min(), -v.as_int()));
}

bool compare_op(std::string_view op, const Value& a, const Value& b) {
    if (op == "==") return a.equals(b);
    if (op == "!=") return !a.equals(b);
    if (op == "<") return a.less(b);
    if (op == ">") return b.less(a);
    if (op == "<=") return a.less(b) || a.equals(b);
    if (op == ">=") return b.less(a) || a.equals(b);
    if (op == "in") return contains(b, a);
    return !contains(b, a);  // "notin"
}

bool contains(const Value& container, const Value& item) {
    switch (container.type()) {
        case Value::Type::Undefined:
            return false;
        case Value::Type::String:
            if (!item.is_string())
                throw EvalError(std::string("'in <string>' requires string as left operand, not ") + item.type_name());
            return container.as_string().find(item.as_string()) != std::string::npos;
        case Value::Type::List:
        case Value::Type::Tuple:
            for (const Value& v : container.items())
                if (v.equals(item)) return true;
            return false;
        case Value::Type::Dict:
            if (!item.is_undefined()) item.hash_key();  // unhashable keys are a TypeError
            return container.as_dict().find(item) != nullptr;
        case Value::Type::Iterator: {
            IteratorState& it = container.as_iterator();
            while (it.pos < it.items.size())
                if (it.items[it.pos++].equals(item)) return true;
            return false;
        }
        default:
            throw EvalError(std::string("argument of type '") + container.type_name() + "' is not iterable");
    }
}

Value slice(const Value& v, const Value& start_v, const Value& stop_v, const Value& step_v) {
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    // Jinja emits slices as Python subscripts: no undefined fallback, a TypeError.
    if (v.is_mapping_like()) throw EvalError("unhashable type: 'slice'");
    if (!v.is_string() && !v.is_sequence())
        throw EvalError(std::string("'") + v.type_name() + "' object is not subscriptable");
    auto bound = [](const Value& b, const char* which) -> std::optional<int64_t> {
        if (b.is_none()) return std::nullopt;
        if (b.is_undefined()) throw EvalError(b.undefined_message());
        if (!b.is_int() && !b.is_bool())
            throw EvalError(std::string("slice ") + which + " must be an integer or None, not " + b.type_name());
        return b.as_int();
    };
    const std::optional<int64_t> start_o = bound(start_v, "start"), stop_o = bound(stop_v, "stop");
    const int64_t step = bound(step_v, "step").value_or(1);
    if (step == 0) throw EvalError("slice step cannot be zero");
    std::u32string chars;
    if (v.is_string()) chars = text::to_u32(v.as_string());
    const int64_t len = static_cast<int64_t>(v.is_string() ? chars.size() : v.items().size());
    const int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? len : len - 1;
    auto adjust = [&](std::optional<int64_t> b, int64_t missing) {
        if (!b) return missing;
        int64_t x = *b;
        if (x < 0)
            x = std::max(x + len, lower);
        else if (x > upper)
            x = upper;
        return x;
    };
    const int64_t start = adjust(start_o, step > 0 ? lower : upper);
    const int64_t stop = adjust(stop_o, step > 0 ? upper : lower);
    std::u32string out_chars;
    Array out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (v.is_string())
            out_chars += chars[static_cast<size_t>(i)];
        else
            out.push_back(v.items()[static_cast<size_t>(i)]);
    }
    if (v.is_string())
        return v.is_markup() ? Value::markup(text::to_utf8(out_chars)) : Value::string(text::to_utf8(out_chars));
    return v.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

namespace {

Value missing_attribute(const Value& obj, const std::string& name) {
    return Value::undefined(text::repr(object_description(obj)) + " has no attribute " + text::repr(name));
}

Value missing_item(const Value& obj, const Value& key) {
    if (key.is_string()) return missing_attribute(obj, key.as_string());
    return Value::undefined(object_description(obj) + " has no element " + key.repr());
}

}  // namespace

Value get_attribute(const Value& obj, const std::string& name) {
    if (obj.is_undefined()) throw EvalError(obj.undefined_message());
    if (obj.is_namespace()) {
        const Value* v = obj.as_dict().find(name);
        return v ? *v : missing_attribute(obj, name);
    }
    if (std::optional<Value> method = find_method(obj, name)) return *method;
    if (obj.is_dict()) {
        const Value* v = obj.as_dict().find(name);
        if (v) return *v;
    }
    return missing_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) throw EvalError(obj.undefined_message());
    switch (obj.type()) {
        case Value::Type::Dict:
        case Value::Type::Namespace:
            if (key.is_string() || key.is_number() || key.is_none() || key.is_tuple()) {
                if (const Value* v = obj.as_dict().find(key)) return *v;
            }
            break;
        case Value::Type::List:
        case Value::Type::Tuple:
        case Value::Type::String:
            if (key.is_int() || key.is_bool()) {
                int64_t i = key.as_int();
                if (obj.is_string()) {
                    const std::u32string chars = text::to_u32(obj.as_string());
                    const auto n = static_cast<int64_t>(chars.size());
                    if (i < 0) i += n;
                    if (i >= 0 && i < n) {
                        std::string c = text::to_utf8(chars.substr(static_cast<size_t>(i), 1));
                        return obj.is_markup() ? Value::markup(std::move(c)) : Value::string(std::move(c));
                    }
                } else {
                    const auto n = static_cast<int64_t>(obj.items().size());
                    if (i < 0) i += n;
                    if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
                }
            }
            break;
        default:
            break;
    }
    if (key.is_string()) return get_attribute(obj, key.as_string());
    return missing_item(obj, key);
}

namespace {

std::string format_one(char type, const std::string& flags, int width, int precision, const Value& arg) {
    std::string body;
    char buf[512];
    const std::string spec = text::concat({"%", flags, width >= 0 ? std::to_string(width) : "",
                                           precision >= 0 ? "." : "", precision >= 0 ? std::to_string(precision) : ""});
    switch (type) {
        case 's':
        case 'r':
        case 'a': {
            std::string s = type == 's' ? arg.str() : arg.repr();
            if (precision >= 0) s = text::to_utf8(text::to_u32(s).substr(0, static_cast<size_t>(precision)));
            const auto len = static_cast<int>(text::length(s));
            if (width > len) {
                const std::string pad(static_cast<size_t>(width - len), ' ');
                s = flags.find('-') != std::string::npos ? s + pad : pad + s;
            }
            return s;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o': {
            if (!arg.is_number())
                throw EvalError(std::string("%") + type + " format: a real number is required, not " + arg.type_name());
            const long long v = arg.is_float() ? static_cast<long long>(arg.as_double()) : arg.as_int();
            const char conv = type == 'i' || type == 'u' ? 'd' : type;
            std::snprintf(buf, sizeof buf, (spec + "ll" + conv).c_str(), v);
            return buf;
        }
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
            if (!arg.is_number()) throw EvalError(std::string("must be real number, not ") + arg.type_name());
            std::snprintf(buf, sizeof buf, (spec + type).c_str(), arg.as_double());
            return buf;
        case 'c':
            if (arg.is_string()) return arg.as_string();
            body.clear();
            text::append_utf8(body, static_cast<char32_t>(arg.as_int()));
            return body;
        default:
            throw EvalError(std::string("unsupported format character '") + type + "'");
    }
}

}  // namespace

std::string percent_format(const std::string& format, const Value& args) {
    // Python takes any argument with __getitem__ (but a tuple or str) as a mapping, which
    // only turns off the "not all arguments converted" check unless a key is used.
    const bool mapping = args.is_dict() || args.is_list() || args.is_undefined();
    Array list = args.is_tuple() ? args.items() : Array{args};
    size_t next = 0;
    std::string out;
    for (size_t i = 0; i < format.size(); ++i) {
        if (format[i] != '%') {
            out += format[i];
            continue;
        }
        if (++i >= format.size()) throw EvalError("incomplete format");
        if (format[i] == '%') {
            out += '%';
            continue;
        }
        const Value* arg = nullptr;
        Value keyed;
        if (format[i] == '(') {
            const size_t close = format.find(')', i);
            if (close == std::string::npos || !args.is_dict()) throw EvalError("format requires a mapping");
            const Value* v = args.as_dict().find(format.substr(i + 1, close - i - 1));
            if (!v) throw EvalError("KeyError: " + text::repr(format.substr(i + 1, close - i - 1)));
            keyed = *v;
            arg = &keyed;
            i = close + 1;
        }
        std::string flags;
        while (i < format.size() && std::string_view("-+ #0").find(format[i]) != std::string_view::npos)
            flags += format[i++];
        int width = -1, precision = -1;
        while (i < format.size() && format[i] >= '0' && format[i] <= '9')
            width = std::max(width, 0) * 10 + (format[i++] - '0');
        if (i < format.size() && format[i] == '.') {
            precision = 0;
            while (++i < format.size() && format[i] >= '0' && format[i] <= '9')
                precision = precision * 10 + (format[i] - '0');
        }
        if (width > 256 || precision > 256) throw EvalError("format width or precision too large");
        if (i >= format.size()) throw EvalError("incomplete format");
        if (!arg) {
            if (next >= list.size()) throw EvalError("not enough arguments for format string");
            arg = &list[next++];
        }
        out += format_one(format[i], flags, width, precision, *arg);
    }
    if (!mapping && next < list.size()) throw EvalError("not all arguments converted during string formatting");
    return out;
}

}  // namespace tessera::chat
