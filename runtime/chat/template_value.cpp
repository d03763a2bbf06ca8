// The template language's values: construction, Python's truthiness, str/repr,
// equality, ordering and hashing.
#include "runtime/chat/template_value.h"

#include <cmath>

#include "runtime/chat/template_text.h"

namespace tessera::chat {

namespace {

// Containers may hold themselves (a list appended to itself); printing or comparing
// such a value stops here instead of exhausting the stack.
constexpr int kMaxValueDepth = 256;

void check_depth(int depth) {
    if (depth > kMaxValueDepth) throw EvalError("value nested too deeply (or containing itself)");
}

std::string repr_at(const Value& v, int depth);

std::string join_repr(const Array& items, int depth) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += repr_at(items[i], depth + 1);
    }
    return out;
}

std::string dict_repr(const Dict& d, int depth) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : d.entries()) {
        if (!first) out += ", ";
        first = false;
        out += repr_at(k, depth + 1) + ": " + repr_at(v, depth + 1);
    }
    return out + "}";
}

std::string repr_at(const Value& v, int depth) {
    check_depth(depth);
    switch (v.type()) {
        case Value::Type::String:
            return v.is_markup() ? text::concat({"Markup(", text::repr(v.as_string()), ")"})
                                 : text::repr(v.as_string());
        case Value::Type::List:
            return text::concat({"[", join_repr(v.items(), depth), "]"});
        case Value::Type::Tuple:
            return text::concat({"(", join_repr(v.items(), depth), v.items().size() == 1 ? ",)" : ")"});
        case Value::Type::Dict:
            return dict_repr(v.as_dict(), depth);
        case Value::Type::Namespace:
            return "<Namespace " + dict_repr(v.as_dict(), depth) + ">";
        case Value::Type::Undefined:
            return "Undefined";
        default:
            return v.str();
    }
}

bool equals_at(const Value& a, const Value& b, int depth) {
    check_depth(depth);
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
        return a.as_int() == b.as_int();
    }
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case Value::Type::Undefined:
        case Value::Type::None:
            return true;
        case Value::Type::String:
            return a.as_string() == b.as_string();
        case Value::Type::List:
        case Value::Type::Tuple: {
            const Array &x = a.items(), &y = b.items();
            if (&x == &y) return true;
            if (x.size() != y.size()) return false;
            for (size_t i = 0; i < x.size(); ++i)
                if (!equals_at(x[i], y[i], depth + 1)) return false;
            return true;
        }
        case Value::Type::Dict: {
            const Dict &x = a.as_dict(), &y = b.as_dict();
            if (&x == &y) return true;
            if (x.size() != y.size()) return false;
            for (const auto& [k, v] : x.entries()) {
                const Value* other = y.find(k);
                if (!other || !equals_at(v, *other, depth + 1)) return false;
            }
            return true;
        }
        default:
            return a.identity() == b.identity();  // namespaces, iterators, functions
    }
}

bool less_at(const Value& a, const Value& b, int depth) {
    check_depth(depth);
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
        return a.as_int() < b.as_int();
    }
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code point order
    if (a.type() == b.type() && a.is_sequence()) {
        const Array &x = a.items(), &y = b.items();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (equals_at(x[i], y[i], depth + 1)) continue;
            return less_at(x[i], y[i], depth + 1);
        }
        return x.size() < y.size();
    }
    if (a.is_undefined() || b.is_undefined()) throw EvalError((a.is_undefined() ? a : b).undefined_message());
    throw EvalError(std::string("'<' not supported between instances of '") + a.type_name() + "' and '" +
                    b.type_name() + "'");
}

}  // namespace

Value Value::undefined(std::string message) {
    Value v;
    if (!message.empty()) v.ptr_ = std::make_shared<std::string>(std::move(message));
    return v;
}

Value Value::none() {
    Value v;
    v.type_ = Type::None;
    return v;
}

Value Value::boolean(bool b) {
    Value v;
    v.type_ = Type::Bool;
    v.b_ = b;
    return v;
}

Value Value::integer(int64_t i) {
    Value v;
    v.type_ = Type::Int;
    v.i_ = i;
    return v;
}

Value Value::number(double d) {
    Value v;
    v.type_ = Type::Float;
    v.f_ = d;
    return v;
}

Value Value::string(std::string s) {
    Value v;
    v.type_ = Type::String;
    v.ptr_ = std::make_shared<std::string>(std::move(s));
    return v;
}

Value Value::markup(std::string s) {
    Value v = string(std::move(s));
    v.markup_ = true;
    return v;
}

Value Value::list(Array items) {
    Value v;
    v.type_ = Type::List;
    v.ptr_ = std::make_shared<Array>(std::move(items));
    return v;
}

Value Value::tuple(Array items) {
    Value v = list(std::move(items));
    v.type_ = Type::Tuple;
    return v;
}

Value Value::dict() { return dict(std::make_shared<Dict>()); }

Value Value::dict(std::shared_ptr<Dict> d) {
    Value v;
    v.type_ = Type::Dict;
    v.ptr_ = std::move(d);
    return v;
}

Value Value::namespace_object() {
    Value v = dict();
    v.type_ = Type::Namespace;
    return v;
}

Value Value::iterator(Array items, std::string kind) {
    Value v;
    v.type_ = Type::Iterator;
    auto state = std::make_shared<IteratorState>();
    state->items = std::move(items);
    state->kind = std::move(kind);
    v.ptr_ = std::move(state);
    return v;
}

Value Value::function(std::string name, std::function<Value(Renderer&, CallArgs&)> call) {
    return function(std::move(name), std::move(call), Value());
}

Value Value::function(std::string name, std::function<Value(Renderer&, CallArgs&)> call, Value receiver) {
    Value v;
    v.type_ = Type::Function;
    v.ptr_ = std::make_shared<Function>(Function{std::move(name), std::move(call), std::move(receiver)});
    return v;
}

namespace {

bool holds_at(const Value& v, const void* target, int depth) {
    check_depth(depth);
    if (v.identity() == target && target) return true;
    switch (v.type()) {
        case Value::Type::List:
        case Value::Type::Tuple:
            for (const Value& item : v.items())
                if (holds_at(item, target, depth + 1)) return true;
            return false;
        case Value::Type::Dict:
        case Value::Type::Namespace:
            for (const auto& entry : v.as_dict().entries())
                if (holds_at(entry.second, target, depth + 1)) return true;
            return false;
        case Value::Type::Iterator:
            for (const Value& item : v.as_iterator().items)
                if (holds_at(item, target, depth + 1)) return true;
            return false;
        case Value::Type::Function:
            return holds_at(v.as_function().receiver, target, depth + 1);
        default:
            return false;
    }
}

}  // namespace

bool holds(const Value& v, const void* target) { return holds_at(v, target, 0); }

double Value::as_double() const {
    switch (type_) {
        case Type::Float:
            return f_;
        case Type::Int:
            return static_cast<double>(i_);
        case Type::Bool:
            return b_ ? 1.0 : 0.0;
        default:
            return 0.0;
    }
}

std::string Value::undefined_message() const {
    if (ptr_) return *static_cast<const std::string*>(ptr_.get());
    return "value is undefined";
}

const char* Value::type_name() const {
    switch (type_) {
        case Type::Undefined:
            return "Undefined";
        case Type::None:
            return "NoneType";
        case Type::Bool:
            return "bool";
        case Type::Int:
            return "int";
        case Type::Float:
            return "float";
        case Type::String:
            return "str";
        case Type::List:
            return "list";
        case Type::Tuple:
            return "tuple";
        case Type::Dict:
            return "dict";
        case Type::Namespace:
            return "Namespace";
        case Type::Iterator:
            return as_iterator().kind.c_str();
        case Type::Function:
            return "function";
    }
    return "object";
}

std::string object_description(const Value& v) {
    if (v.is_none()) return "None";
    return std::string(v.type_name()) + " object";
}

bool Value::truthy() const {
    switch (type_) {
        case Type::Undefined:
        case Type::None:
            return false;
        case Type::Bool:
            return b_;
        case Type::Int:
            return i_ != 0;
        case Type::Float:
            return f_ != 0.0;
        case Type::String:
            return !as_string().empty();
        case Type::List:
        case Type::Tuple:
            return !items().empty();
        case Type::Dict:
            return !as_dict().empty();
        case Type::Namespace:
        case Type::Iterator:
        case Type::Function:
            return true;
    }
    return false;
}

std::string Value::str() const {
    switch (type_) {
        case Type::Undefined:
            return "";
        case Type::None:
            return "None";
        case Type::Bool:
            return b_ ? "True" : "False";
        case Type::Int:
            return std::to_string(i_);
        case Type::Float:
            return text::format_float(f_);
        case Type::String:
            return as_string();
        case Type::Iterator:
            return "<" + as_iterator().kind + " object>";
        case Type::Function:
            return "<function " + as_function().name + ">";
        default:
            return repr_at(*this, 0);
    }
}

std::string Value::repr() const { return repr_at(*this, 0); }

bool Value::equals(const Value& other) const { return equals_at(*this, other, 0); }

bool Value::less(const Value& other) const { return less_at(*this, other, 0); }

std::string Value::hash_key() const {
    switch (type_) {
        case Type::None:
            return "z";
        case Type::Bool:
        case Type::Int:
            return text::concat({"n", std::to_string(as_int())});
        case Type::Float:
            if (std::isfinite(f_) && f_ == std::trunc(f_) && std::fabs(f_) < 9.2e18)
                return text::concat({"n", std::to_string(static_cast<int64_t>(f_))});
            return text::concat({"f", text::format_float(f_)});
        case Type::String:
            return "s" + as_string();
        case Type::Tuple: {
            std::string key = "t(";
            for (const Value& item : items()) {
                const std::string k = item.hash_key();
                key += std::to_string(k.size()) + ":" + k;
            }
            return key + ")";
        }
        default:
            throw EvalError(std::string("unhashable type: '") + type_name() + "'");
    }
}

Array Value::iterate() const {
    switch (type_) {
        case Type::Undefined:
            return {};
        case Type::String: {
            Array out;
            const std::string& s = as_string();
            for (size_t i = 0; i < s.size();) {
                const size_t at = i;
                text::decode_utf8(s, i);
                out.push_back(Value::string(s.substr(at, i - at)));
            }
            return out;
        }
        case Type::List:
        case Type::Tuple:
            return items();
        case Type::Dict: {
            Array out;
            out.reserve(as_dict().size());
            for (const auto& entry : as_dict().entries()) out.push_back(entry.first);
            return out;
        }
        case Type::Iterator: {
            IteratorState& it = as_iterator();
            Array out(it.items.begin() + static_cast<std::ptrdiff_t>(it.pos), it.items.end());
            it.pos = it.items.size();
            return out;
        }
        default:
            throw EvalError(std::string("'") + type_name() + "' object is not iterable");
    }
}

const Value* Dict::find(const Value& key) const {
    if (!key.is_string() && !key.is_number() && !key.is_none() && !key.is_tuple()) return nullptr;
    const auto it = index_.find(key.hash_key());
    return it == index_.end() ? nullptr : &entries_[it->second].second;
}

const Value* Dict::find(std::string_view key) const {
    const auto it = index_.find(text::concat({"s", key}));
    return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void Dict::set(const Value& key, Value value) {
    std::string k = key.hash_key();
    const auto it = index_.find(k);
    if (it != index_.end()) {
        entries_[it->second].second = std::move(value);
        return;
    }
    index_.emplace(std::move(k), entries_.size());
    entries_.emplace_back(key, std::move(value));
}

bool Dict::erase(const Value& key) {
    const auto it = index_.find(key.hash_key());
    if (it == index_.end()) return false;
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
    index_.clear();
    for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].first.hash_key(), i);
    return true;
}

}  // namespace tessera::chat
