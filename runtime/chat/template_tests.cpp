// Tests (`value is name(args)`), with the behaviour of Jinja2 3.1's tests.
#include "runtime/chat/template_builtins.h"
#include "runtime/chat/template_ops.h"
#include "runtime/chat/template_text.h"

namespace tessera::chat {

namespace {

using Args = std::vector<std::optional<Value>>;

std::optional<Value> one_arg(std::string_view name, CallArgs& args) {
    const Args a = bind_args(name, args, {"other"});
    if (!a[0]) throw EvalError(std::string(name) + "() missing 1 required positional argument");
    return a[0];
}

bool t_defined(Renderer&, const Value& v, CallArgs& a) {
    bind_args("defined", a, {});
    return !v.is_undefined();
}
bool t_undefined(Renderer&, const Value& v, CallArgs& a) {
    bind_args("undefined", a, {});
    return v.is_undefined();
}
bool t_none(Renderer&, const Value& v, CallArgs& a) {
    bind_args("none", a, {});
    return v.is_none();
}
bool t_boolean(Renderer&, const Value& v, CallArgs& a) {
    bind_args("boolean", a, {});
    return v.is_bool();
}
bool t_true(Renderer&, const Value& v, CallArgs& a) {
    bind_args("true", a, {});
    return v.is_bool() && v.as_bool();
}
bool t_false(Renderer&, const Value& v, CallArgs& a) {
    bind_args("false", a, {});
    return v.is_bool() && !v.as_bool();
}
bool t_integer(Renderer&, const Value& v, CallArgs& a) {
    bind_args("integer", a, {});
    return v.is_int();
}
bool t_float(Renderer&, const Value& v, CallArgs& a) {
    bind_args("float", a, {});
    return v.is_float();
}
bool t_number(Renderer&, const Value& v, CallArgs& a) {
    bind_args("number", a, {});
    return v.is_number();
}
bool t_string(Renderer&, const Value& v, CallArgs& a) {
    bind_args("string", a, {});
    return v.is_string();
}
bool t_mapping(Renderer&, const Value& v, CallArgs& a) {
    bind_args("mapping", a, {});
    return v.is_dict();
}
bool t_callable(Renderer&, const Value& v, CallArgs& a) {
    bind_args("callable", a, {});
    return v.is_function();
}
bool t_escaped(Renderer&, const Value&, CallArgs& a) {
    bind_args("escaped", a, {});
    return false;
}

bool t_iterable(Renderer&, const Value& v, CallArgs& a) {
    bind_args("iterable", a, {});
    return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict() || v.is_iterator();
}

bool t_sequence(Renderer&, const Value& v, CallArgs& a) {
    bind_args("sequence", a, {});
    return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict();
}

bool t_odd(Renderer&, const Value& v, CallArgs& a) {
    bind_args("odd", a, {});
    return binary_op("%", v, Value::integer(2)).equals(Value::integer(1));
}

bool t_even(Renderer&, const Value& v, CallArgs& a) {
    bind_args("even", a, {});
    return binary_op("%", v, Value::integer(2)).equals(Value::integer(0));
}

bool t_divisibleby(Renderer&, const Value& v, CallArgs& a) {
    return binary_op("%", v, *one_arg("divisibleby", a)).equals(Value::integer(0));
}

bool t_lower(Renderer&, const Value& v, CallArgs& a) {
    bind_args("lower", a, {});
    const std::string s = v.str();
    return text::lower(s) == s && text::upper(s) != s;
}

bool t_upper(Renderer&, const Value& v, CallArgs& a) {
    bind_args("upper", a, {});
    const std::string s = v.str();
    return text::upper(s) == s && text::lower(s) != s;
}

bool t_sameas(Renderer&, const Value& v, CallArgs& a) {
    const Value other = *one_arg("sameas", a);
    if (v.type() != other.type()) return false;
    switch (v.type()) {
        case Value::Type::None:
        case Value::Type::Undefined:
            return true;
        case Value::Type::Bool:
            return v.as_bool() == other.as_bool();
        case Value::Type::Int:
            return v.as_int() == other.as_int() && v.as_int() >= -5 && v.as_int() <= 256;  // CPython's cached ints
        case Value::Type::Float:
            return false;
        default:
            return v.identity() == other.identity();
    }
}

bool t_in(Renderer&, const Value& v, CallArgs& a) { return contains(*one_arg("in", a), v); }
bool t_eq(Renderer&, const Value& v, CallArgs& a) { return compare_op("==", v, *one_arg("eq", a)); }
bool t_ne(Renderer&, const Value& v, CallArgs& a) { return compare_op("!=", v, *one_arg("ne", a)); }
bool t_lt(Renderer&, const Value& v, CallArgs& a) { return compare_op("<", v, *one_arg("lt", a)); }
bool t_le(Renderer&, const Value& v, CallArgs& a) { return compare_op("<=", v, *one_arg("le", a)); }
bool t_gt(Renderer&, const Value& v, CallArgs& a) { return compare_op(">", v, *one_arg("gt", a)); }
bool t_ge(Renderer&, const Value& v, CallArgs& a) { return compare_op(">=", v, *one_arg("ge", a)); }

bool t_filter(Renderer&, const Value& v, CallArgs& a) {
    bind_args("filter", a, {});
    return v.is_string() && find_filter(v.as_string()) != nullptr;
}

bool t_test(Renderer&, const Value& v, CallArgs& a) {
    bind_args("test", a, {});
    return v.is_string() && find_test(v.as_string()) != nullptr;
}

struct NamedTest {
    std::string_view name;
    TestFn fn;
};

constexpr NamedTest kTests[] = {
    {"defined", t_defined},
    {"undefined", t_undefined},
    {"none", t_none},
    {"boolean", t_boolean},
    {"true", t_true},
    {"false", t_false},
    {"integer", t_integer},
    {"float", t_float},
    {"number", t_number},
    {"string", t_string},
    {"mapping", t_mapping},
    {"callable", t_callable},
    {"escaped", t_escaped},
    {"iterable", t_iterable},
    {"sequence", t_sequence},
    {"odd", t_odd},
    {"even", t_even},
    {"divisibleby", t_divisibleby},
    {"lower", t_lower},
    {"upper", t_upper},
    {"sameas", t_sameas},
    {"in", t_in},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"==", t_eq},
    {"ne", t_ne},
    {"!=", t_ne},
    {"lt", t_lt},
    {"lessthan", t_lt},
    {"<", t_lt},
    {"le", t_le},
    {"<=", t_le},
    {"gt", t_gt},
    {"greaterthan", t_gt},
    {">", t_gt},
    {"ge", t_ge},
    {">=", t_ge},
    {"filter", t_filter},
    {"test", t_test},
};

}  // namespace

TestFn find_test(std::string_view name) {
    for (const NamedTest& t : kTests)
        if (t.name == name) return t.fn;
    return nullptr;
}

}  // namespace tessera::chat
