// The template language's built-ins: filters, tests, methods of built-in types and
// the global functions (the evaluator itself is in template_eval.h).
#pragma once

#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "runtime/chat/template_ast.h"
#include "runtime/chat/template_value.h"

namespace tessera::chat {

// nullptr when there is no such filter or test.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// `self.name` for a built-in method (str.strip, dict.items, list.append, ...) bound to
// `self`; nullopt when `self` has no such method.
std::optional<Value> find_method(const Value& self, std::string_view name);

// The global names every template sees: range, dict, namespace, cycler, joiner,
// raise_exception and strftime_now.
void add_globals(Dict& globals);

// Binds a call's arguments to the parameters `names`, Python-style: positional ones in
// order, then keywords by name. Unknown keywords and surplus positionals throw
// EvalError naming `function`; a parameter not given is nullopt.
std::vector<std::optional<Value>> bind_args(std::string_view function, CallArgs& args,
                                            std::initializer_list<std::string_view> names);

// Conversions that throw EvalError with a message naming `what` when the value has the
// wrong type.
int64_t to_int(const Value& v, std::string_view what);
std::string to_str(const Value& v, std::string_view what);  // requires a str

// String forms that Python's str() gives, in the limits of one rendered string.
constexpr size_t kMaxStringBytes = size_t{32} << 20;
void check_string_size(size_t bytes);

}  // namespace tessera::chat
