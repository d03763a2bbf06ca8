// Operators of the template language with Python's semantics: arithmetic, comparison,
// membership, and Jinja's attribute and item lookup (which turns a missing key into an
// undefined value rather than an error). All throw EvalError on a type error.
#pragma once

#include <string>
#include <string_view>

#include "runtime/chat/template_value.h"

namespace tessera::chat {

// op: + - * / // % ** ~
Value binary_op(std::string_view op, const Value& a, const Value& b);
// op: - + (unary)
Value unary_op(std::string_view op, const Value& v);
// op: == != < <= > >= in notin
bool compare_op(std::string_view op, const Value& a, const Value& b);
// Python's `item in container`.
bool contains(const Value& container, const Value& item);
// value[start:stop:step] on strings, lists and tuples (null bounds are none); a
// TypeError (EvalError) on anything else, as in Python.
Value slice(const Value& v, const Value& start, const Value& stop, const Value& step);

// `obj.name`: a built-in method first (as Python's getattr finds it), then a dict key or
// namespace attribute. Missing: undefined, with Jinja's message. On an undefined `obj`:
// EvalError.
Value get_attribute(const Value& obj, const std::string& name);
// `obj[key]`: a dict key, a sequence index (negative from the end) or a character;
// then, for a string key, a method. Missing: undefined. On an undefined `obj`: EvalError.
Value get_item(const Value& obj, const Value& key);

// markupsafe's escape(): a Markup stays as it is; anything else becomes its str(),
// HTML-escaped, as a Markup.
Value markup_escape(const Value& v);

// Python's printf-style `format % args`.
std::string percent_format(const std::string& format, const Value& args);

}  // namespace tessera::chat
