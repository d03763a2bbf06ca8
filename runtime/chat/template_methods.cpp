// Methods of built-in types (str, dict, list, tuple) as templates call them, the
// global functions, and the argument-binding helpers the built-ins share.
#include <algorithm>
#include <ctime>

#include "runtime/chat/template.h"
#include "runtime/chat/template_builtins.h"
#include "runtime/chat/template_eval.h"
#include "runtime/chat/template_ops.h"
#include "runtime/chat/template_text.h"

namespace tessera::chat {

// ---- shared helpers ----

std::vector<std::optional<Value>> bind_args(std::string_view function, CallArgs& args,
                                            std::initializer_list<std::string_view> names) {
    std::vector<std::optional<Value>> out(names.size());
    if (args.positional.size() > names.size())
        throw EvalError(std::string(function) + "() takes at most " + std::to_string(names.size()) + " argument(s) (" +
                        std::to_string(args.positional.size()) + " given)");
    for (size_t i = 0; i < args.positional.size(); ++i) out[i] = args.positional[i];
    for (auto& [key, value] : args.keyword) {
        const auto it = std::find(names.begin(), names.end(), key);
        if (it == names.end())
            throw EvalError(std::string(function) + "() got an unexpected keyword argument '" + key + "'");
        auto& slot = out[static_cast<size_t>(it - names.begin())];
        if (slot) throw EvalError(std::string(function) + "() got multiple values for argument '" + key + "'");
        slot = value;
    }
    return out;
}

int64_t to_int(const Value& v, std::string_view what) {
    if (v.is_int() || v.is_bool()) return v.as_int();
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    throw EvalError(std::string(what) + ": an integer is required, not '" + v.type_name() + "'");
}

std::string to_str(const Value& v, std::string_view what) {
    if (v.is_string()) return v.as_string();
    if (v.is_undefined()) throw EvalError(v.undefined_message());
    throw EvalError(std::string(what) + ": expected a string, not '" + v.type_name() + "'");
}

void check_string_size(size_t bytes) {
    if (bytes > kMaxStringBytes)
        throw EvalError("string longer than " + std::to_string(kMaxStringBytes) + " bytes; stopped");
}

namespace {

// Refuses to put `item` into the container `self` when `item` holds `self`.
void check_no_cycle(const Value& self, const Value& item) {
    if (holds(item, self.identity())) throw EvalError(std::string("a ") + self.type_name() + " cannot contain itself");
}

Value str_list(const std::vector<std::string>& parts) {
    Array out;
    out.reserve(parts.size());
    for (const std::string& p : parts) out.push_back(Value::string(p));
    return Value::list(std::move(out));
}

std::optional<std::string> opt_str(const std::optional<Value>& v, std::string_view what) {
    if (!v || v->is_none()) return std::nullopt;
    return to_str(*v, what);
}

// startswith/endswith accept one string or a tuple of them.
bool affix_match(const std::string& s, const Value& affix, bool prefix) {
    if (affix.is_tuple()) {
        for (const Value& a : affix.items())
            if (affix_match(s, a, prefix)) return true;
        return false;
    }
    const std::string a = to_str(affix, prefix ? "startswith" : "endswith");
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0 : s.compare(s.size() - a.size(), a.size(), a) == 0;
}

// str.format with automatic ({}) or explicit ({0}, {name}) fields and no format specs.
std::string str_format(const std::string& fmt, CallArgs& args) {
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if (c == '}') {
            if (i + 1 < fmt.size() && fmt[i + 1] == '}')
                ++i;
            else
                throw EvalError("Single '}' encountered in format string");
            out += '}';
            continue;
        }
        if (c != '{') {
            out += c;
            continue;
        }
        if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
            out += '{';
            ++i;
            continue;
        }
        const size_t close = fmt.find('}', i);
        if (close == std::string::npos) throw EvalError("Single '{' encountered in format string");
        std::string field = fmt.substr(i + 1, close - i - 1);
        i = close;
        if (field.find_first_of(":!") != std::string::npos)
            throw EvalError("format specs and conversions in str.format are not supported");
        const Value* v = nullptr;
        if (field.empty() || std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
            const size_t idx = field.empty() ? auto_index++ : std::stoul(field);
            if (idx >= args.positional.size())
                throw EvalError("Replacement index " + std::to_string(idx) + " out of range for positional args tuple");
            v = &args.positional[idx];
        } else {
            for (auto& kw : args.keyword)
                if (kw.first == field) v = &kw.second;
            if (!v) throw EvalError("KeyError: " + text::repr(field));
        }
        out += v->str();
    }
    return out;
}

Value string_method(const Value& self, std::string_view name, CallArgs& args) {
    const std::string& s = self.as_string();
    auto one = [&](std::string_view fn, std::initializer_list<std::string_view> names) {
        return bind_args(fn, args, names);
    };
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        const auto a = one(name, {"chars"});
        return Value::string(text::strip(s, opt_str(a[0], name), name != "rstrip", name != "lstrip"));
    }
    if (name == "upper" || name == "lower" || name == "casefold" || name == "title" || name == "capitalize" ||
        name == "swapcase") {
        one(name, {});
        if (name == "upper") return Value::string(text::upper(s));
        if (name == "title") return Value::string(text::title(s));
        if (name == "capitalize") return Value::string(text::capitalize(s));
        if (name == "swapcase") return Value::string(text::swapcase(s));
        return Value::string(text::lower(s));
    }
    if (name == "startswith" || name == "endswith") {
        const auto a = one(name, {"prefix", "start", "end"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes at least 1 argument (0 given)");
        std::string sub = s;
        if (a[1] || a[2]) {
            const Value start = a[1] ? *a[1] : Value::none(), stop = a[2] ? *a[2] : Value::none();
            sub = slice(self, start, stop, Value::none()).as_string();
        }
        return Value::boolean(affix_match(sub, *a[0], name == "startswith"));
    }
    if (name == "split" || name == "rsplit") {
        const auto a = one(name, {"sep", "maxsplit"});
        const std::optional<std::string> sep = opt_str(a[0], name);
        if (sep && sep->empty()) throw EvalError("empty separator");
        const int64_t maxsplit = a[1] ? to_int(*a[1], name) : -1;
        return str_list(name == "split" ? text::split(s, sep, maxsplit) : text::rsplit(s, sep, maxsplit));
    }
    if (name == "splitlines") {
        const auto a = one(name, {"keepends"});
        return str_list(text::splitlines(s, a[0] && a[0]->truthy()));
    }
    if (name == "replace") {
        const auto a = one(name, {"old", "new", "count"});
        if (!a[0] || !a[1]) throw EvalError("replace() takes at least 2 arguments");
        std::string r = text::replace(s, to_str(*a[0], name), to_str(*a[1], name), a[2] ? to_int(*a[2], name) : -1);
        check_string_size(r.size());
        return Value::string(std::move(r));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
        const auto a = one(name, {"sub"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes exactly one argument (0 given)");
        const std::string sub = to_str(*a[0], name);
        if (name == "count") return Value::integer(text::count(s, sub));
        const int64_t at = text::find(s, sub, name[0] == 'r');
        if (at < 0 && (name == "index" || name == "rindex")) throw EvalError("substring not found");
        return Value::integer(at);
    }
    if (name == "join") {
        const auto a = one(name, {"iterable"});
        if (!a[0]) throw EvalError("join() takes exactly one argument (0 given)");
        std::string out;
        const Array items = a[0]->iterate();
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += s;
            out += to_str(items[i], "sequence item " + std::to_string(i));
            check_string_size(out.size());
        }
        return Value::string(std::move(out));
    }
    if (name == "format") {
        std::string r = str_format(s, args);
        check_string_size(r.size());
        return Value::string(std::move(r));
    }
    if (name == "center" || name == "ljust" || name == "rjust" || name == "zfill") {
        const auto a = name == "zfill" ? one(name, {"width"}) : one(name, {"width", "fillchar"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes at least 1 argument (0 given)");
        const int64_t width = std::min<int64_t>(to_int(*a[0], name), static_cast<int64_t>(kMaxStringBytes));
        const std::u32string fill = text::to_u32(a.size() > 1 && a[1] ? to_str(*a[1], name) : " ");
        if (fill.size() != 1) throw EvalError("The fill character must be exactly one character long");
        if (name == "center") return Value::string(text::center(s, width, fill[0]));
        const auto len = static_cast<int64_t>(text::length(s));
        std::string pad;
        for (int64_t i = len; i < width; ++i) text::append_utf8(pad, name == "zfill" ? U'0' : fill[0]);
        if (name == "ljust") return Value::string(s + pad);
        if (name == "zfill" && !s.empty() && (s[0] == '-' || s[0] == '+'))
            return Value::string(s.substr(0, 1) + pad + s.substr(1));
        return Value::string(pad + s);
    }
    if (name == "partition" || name == "rpartition") {
        const auto a = one(name, {"sep"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes exactly one argument (0 given)");
        const std::string sep = to_str(*a[0], name);
        if (sep.empty()) throw EvalError("empty separator");
        const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
        if (at == std::string::npos) return name == "partition" ? str_list({s, "", ""}) : str_list({"", "", s});
        Value t = str_list({s.substr(0, at), sep, s.substr(at + sep.size())});
        return Value::tuple(t.items());
    }
    if (name == "removeprefix" || name == "removesuffix") {
        const auto a = one(name, {"affix"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes exactly one argument (0 given)");
        const std::string x = to_str(*a[0], name);
        if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value::string(s.substr(x.size()));
        if (name == "removesuffix" && s.size() >= x.size() && !x.empty() &&
            s.compare(s.size() - x.size(), x.size(), x) == 0)
            return Value::string(s.substr(0, s.size() - x.size()));
        return self;
    }
    // Character-class predicates.
    one(name, {});
    const std::u32string u = text::to_u32(s);
    bool any_cased = false, all_lower = true, all_upper = true;
    for (char32_t c : u) {
        if (!text::is_cased(c)) continue;
        any_cased = true;
        if (text::to_lower(c) != c) all_lower = false;
        if (text::to_upper(c) != c && c != 0xdf) all_upper = false;
    }
    auto all_of = [&](auto pred) { return !u.empty() && std::all_of(u.begin(), u.end(), pred); };
    auto digit = [](char32_t c) { return (c >= '0' && c <= '9') || (c >= 0xff10 && c <= 0xff19); };
    if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") return Value::boolean(all_of(digit));
    if (name == "isalpha") return Value::boolean(all_of([&](char32_t c) { return text::is_alnum(c) && !digit(c); }));
    if (name == "isalnum") return Value::boolean(all_of([](char32_t c) { return text::is_alnum(c); }));
    if (name == "isspace") return Value::boolean(all_of([](char32_t c) { return text::is_space(c); }));
    if (name == "islower") return Value::boolean(any_cased && all_lower);
    if (name == "isupper") return Value::boolean(any_cased && all_upper);
    throw EvalError("str has no method '" + std::string(name) + "'");
}

// Markup's methods: the arguments that become part of the text are escaped, and the
// string results (or their pieces) are Markup again.
Value markup_method(const Value& self, std::string_view name, CallArgs& args) {
    static constexpr std::string_view kKeeps[] = {
        "strip",     "lstrip",     "rstrip", "upper",  "lower",      "casefold", "title",        "capitalize",
        "swapcase",  "replace",    "center", "ljust",  "rjust",      "zfill",    "removeprefix", "removesuffix",
        "partition", "rpartition", "split",  "rsplit", "splitlines", "join",     "format"};
    if (std::find(std::begin(kKeeps), std::end(kKeeps), name) == std::end(kKeeps))
        return string_method(self, name, args);
    if (name == "replace" && args.positional.size() >= 2) args.positional[1] = markup_escape(args.positional[1]);
    if (name == "format") {
        for (Value& a : args.positional) a = markup_escape(a);
        for (auto& kw : args.keyword) kw.second = markup_escape(kw.second);
    }
    if (name == "join" && !args.positional.empty()) {
        Array items;
        for (const Value& x : args.positional[0].iterate()) items.push_back(markup_escape(x));
        args.positional[0] = Value::list(std::move(items));
    }
    Value r = string_method(self, name, args);
    if (r.is_string()) return Value::markup(r.as_string());
    if (r.is_sequence())
        for (Value& piece : r.items()) piece = Value::markup(piece.as_string());
    return r;
}

Value dict_method(const Value& self, std::string_view name, CallArgs& args) {
    Dict& d = self.as_dict();
    if (name == "get" || name == "pop" || name == "setdefault") {
        const auto a = bind_args(name, args, {"key", "default"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes at least 1 argument (0 given)");
        a[0]->hash_key();  // unhashable keys are a TypeError
        const Value* v = d.find(*a[0]);
        if (name == "get") return v ? *v : (a[1] ? *a[1] : Value::none());
        if (name == "setdefault") {
            if (v) return *v;
            if (a[1]) check_no_cycle(self, *a[1]);
            d.set(*a[0], a[1] ? *a[1] : Value::none());
            return a[1] ? *a[1] : Value::none();
        }
        if (!v) {
            if (a[1]) return *a[1];
            throw EvalError("KeyError: " + a[0]->repr());
        }
        Value out = *v;
        d.erase(*a[0]);
        return out;
    }
    if (name == "update") {
        if (args.positional.size() > 1) throw EvalError("update expected at most 1 argument");
        if (!args.positional.empty()) {
            const Value& other = args.positional[0];
            if (other.is_mapping_like()) {
                for (const auto& [k, v] : other.as_dict().entries()) check_no_cycle(self, v);
                for (const auto& [k, v] : other.as_dict().entries()) d.set(k, v);
            } else {
                for (const Value& pair : other.iterate()) {
                    const Array kv = pair.iterate();
                    if (kv.size() != 2) throw EvalError("dictionary update sequence element has the wrong length");
                    check_no_cycle(self, kv[1]);
                    d.set(kv[0], kv[1]);
                }
            }
        }
        for (auto& kw : args.keyword) check_no_cycle(self, kw.second);
        for (auto& [k, v] : args.keyword) d.set(k, v);
        return Value::none();
    }
    bind_args(name, args, {});
    Array out;
    out.reserve(d.size());
    for (const auto& [k, v] : d.entries()) {
        if (name == "items")
            out.push_back(Value::tuple({k, v}));
        else if (name == "keys")
            out.push_back(k);
        else
            out.push_back(v);
    }
    if (name == "copy") {
        Value c = Value::dict();
        for (const auto& [k, v] : d.entries()) c.as_dict().set(k, v);
        return c;
    }
    return Value::list(std::move(out));
}

Value list_method(const Value& self, std::string_view name, CallArgs& args) {
    Array& items = self.items();
    if (name == "append") {
        const auto a = bind_args(name, args, {"object"});
        if (!a[0]) throw EvalError("append() takes exactly one argument (0 given)");
        if (items.size() >= (size_t{1} << 22)) throw EvalError("list too long");
        check_no_cycle(self, *a[0]);
        items.push_back(*a[0]);
        return Value::none();
    }
    if (name == "extend") {
        const auto a = bind_args(name, args, {"iterable"});
        if (!a[0]) throw EvalError("extend() takes exactly one argument (0 given)");
        const Array more = a[0]->iterate();
        if (items.size() + more.size() > (size_t{1} << 22)) throw EvalError("list too long");
        for (const Value& x : more) check_no_cycle(self, x);
        items.insert(items.end(), more.begin(), more.end());
        return Value::none();
    }
    if (name == "pop" || name == "insert") {
        const auto a = bind_args(name, args, {"index", "object"});
        const auto n = static_cast<int64_t>(items.size());
        int64_t i = a[0] ? to_int(*a[0], name) : (name == "pop" ? -1 : 0);
        if (name == "insert") {
            if (!a[1]) throw EvalError("insert expected 2 arguments");
            if (i < 0) i = std::max<int64_t>(0, i + n);
            check_no_cycle(self, *a[1]);
            items.insert(items.begin() + std::min(i, n), *a[1]);
            return Value::none();
        }
        if (n == 0) throw EvalError("pop from empty list");
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw EvalError("pop index out of range");
        Value out = items[static_cast<size_t>(i)];
        items.erase(items.begin() + i);
        return out;
    }
    if (name == "remove" || name == "index" || name == "count") {
        const auto a = bind_args(name, args, {"value"});
        if (!a[0]) throw EvalError(std::string(name) + "() takes exactly one argument (0 given)");
        int64_t found = -1, n = 0;
        for (size_t i = 0; i < items.size(); ++i) {
            if (!items[i].equals(*a[0])) continue;
            if (found < 0) found = static_cast<int64_t>(i);
            ++n;
        }
        if (name == "count") return Value::integer(n);
        if (found < 0)
            throw EvalError(name == "index" ? a[0]->repr() + " is not in list" : "list.remove(x): x not in list");
        if (name == "index") return Value::integer(found);
        items.erase(items.begin() + found);
        return Value::none();
    }
    bind_args(name, args, {});
    if (name == "copy") return Value::list(items);
    if (name == "reverse") {
        std::reverse(items.begin(), items.end());
        return Value::none();
    }
    throw EvalError("list has no method '" + std::string(name) + "'");
}

constexpr std::string_view kStringMethods[] = {
    "strip",     "lstrip",     "rstrip",    "upper",      "lower",        "casefold",     "title",   "capitalize",
    "swapcase",  "startswith", "endswith",  "split",      "rsplit",       "splitlines",   "replace", "find",
    "rfind",     "index",      "rindex",    "count",      "join",         "format",       "center",  "ljust",
    "rjust",     "zfill",      "partition", "rpartition", "removeprefix", "removesuffix", "isdigit", "isnumeric",
    "isdecimal", "isalpha",    "isalnum",   "isspace",    "islower",      "isupper"};
constexpr std::string_view kDictMethods[] = {"get", "items", "keys", "values", "copy", "pop", "update", "setdefault"};
constexpr std::string_view kListMethods[] = {"append", "extend", "pop",  "insert", "remove",
                                             "index",  "count",  "copy", "reverse"};
constexpr std::string_view kTupleMethods[] = {"index", "count"};

template <size_t N>
bool listed(const std::string_view (&names)[N], std::string_view name) {
    return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

}  // namespace

std::optional<Value> find_method(const Value& self, std::string_view name) {
    using Impl = Value (*)(const Value&, std::string_view, CallArgs&);
    Impl impl = nullptr;
    if (self.is_string() && listed(kStringMethods, name))
        impl = self.is_markup() ? markup_method : string_method;
    else if (self.is_dict() && listed(kDictMethods, name))
        impl = dict_method;
    else if (self.is_list() && listed(kListMethods, name))
        impl = list_method;
    else if (self.is_tuple() && listed(kTupleMethods, name))
        impl = list_method;
    if (!impl) return std::nullopt;
    std::string method(name);
    return Value::function(
        method, [self, impl, method](Renderer&, CallArgs& args) { return impl(self, method, args); }, self);
}

// ---- globals ----

namespace {

// Jinja's sandbox refuses ranges longer than this; we do the same.
constexpr int64_t kMaxRange = 100000;

Value global_range(Renderer& r, CallArgs& args) {
    if (!args.keyword.empty()) throw EvalError("range() takes no keyword arguments");
    const auto& p = args.positional;
    if (p.empty() || p.size() > 3) throw EvalError("range expected 1 to 3 arguments, got " + std::to_string(p.size()));
    int64_t start = 0, stop = 0, step = 1;
    if (p.size() == 1) {
        stop = to_int(p[0], "range");
    } else {
        start = to_int(p[0], "range");
        stop = to_int(p[1], "range");
        if (p.size() == 3) step = to_int(p[2], "range");
    }
    if (step == 0) throw EvalError("range() arg 3 must not be zero");
    // The item count, in unsigned arithmetic so that no bound can overflow.
    uint64_t n = 0;
    if (step > 0 && stop > start)
        n = (static_cast<uint64_t>(stop) - static_cast<uint64_t>(start) - 1) / static_cast<uint64_t>(step) + 1;
    else if (step < 0 && start > stop)
        n = (static_cast<uint64_t>(start) - static_cast<uint64_t>(stop) - 1) /
                (static_cast<uint64_t>(-(step + 1)) + 1) +
            1;
    if (n > static_cast<uint64_t>(kMaxRange))
        throw EvalError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (" + std::to_string(kMaxRange) +
                        ").");
    r.step(n);
    Array out;
    out.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) out.push_back(Value::integer(start + i * step));
    return Value::list(std::move(out));
}

void fill_from(Dict& d, const Value& source, const char* fn) {
    if (source.is_mapping_like()) {
        for (const auto& [k, v] : source.as_dict().entries()) d.set(k, v);
        return;
    }
    for (const Value& pair : source.iterate()) {
        const Array kv = pair.iterate();
        if (kv.size() != 2) throw EvalError(std::string(fn) + ": sequence elements must be pairs");
        d.set(kv[0], kv[1]);
    }
}

Value global_dict(Renderer&, CallArgs& args) {
    if (args.positional.size() > 1) throw EvalError("dict expected at most 1 argument");
    Value d = Value::dict();
    if (!args.positional.empty()) fill_from(d.as_dict(), args.positional[0], "dict");
    for (auto& [k, v] : args.keyword) d.as_dict().set(k, v);
    return d;
}

Value global_namespace(Renderer&, CallArgs& args) {
    Value ns = Value::namespace_object();
    for (const Value& p : args.positional) fill_from(ns.as_dict(), p, "namespace");
    for (auto& [k, v] : args.keyword) ns.as_dict().set(k, v);
    return ns;
}

Value global_joiner(Renderer&, CallArgs& args) {
    const auto a = bind_args("joiner", args, {"sep"});
    const std::string sep = a[0] ? a[0]->str() : ", ";
    auto used = std::make_shared<bool>(false);
    return Value::function("joiner", [sep, used](Renderer&, CallArgs&) {
        if (!*used) {
            *used = true;
            return Value::string("");
        }
        return Value::string(sep);
    });
}

Value global_raise_exception(Renderer&, CallArgs& args) {
    const auto a = bind_args("raise_exception", args, {"message"});
    throw TemplateRaised(a[0] ? a[0]->str() : "");
}

Value global_strftime_now(Renderer&, CallArgs& args) {
    const auto a = bind_args("strftime_now", args, {"format"});
    if (!a[0]) throw EvalError("strftime_now() takes exactly one argument (0 given)");
    const std::string fmt = to_str(*a[0], "strftime_now");
    if (fmt.empty()) return Value::string("");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
#if defined(_WIN32)
    localtime_s(&local, &now);
#else
    localtime_r(&now, &local);
#endif
    std::string buf(256 + fmt.size() * 16, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &local);
    buf.resize(n);
    return Value::string(buf);
}

}  // namespace

void add_globals(Dict& globals) {
    globals.set("range", Value::function("range", global_range));
    globals.set("dict", Value::function("dict", global_dict));
    globals.set("namespace", Value::function("namespace", global_namespace));
    globals.set("joiner", Value::function("joiner", global_joiner));
    globals.set("raise_exception", Value::function("raise_exception", global_raise_exception));
    globals.set("strftime_now", Value::function("strftime_now", global_strftime_now));
}

}  // namespace tessera::chat
