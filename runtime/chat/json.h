// JSON text to template values and back. The reader keeps object key order and
// reports errors with line and column; the writer is Python's json.dumps (what Hugging
// Face's `tojson` filter calls), so rendered tool schemas match byte for byte.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "runtime/chat/template_value.h"

namespace tessera::chat::json {

// Deepest nesting of arrays and objects the reader accepts.
constexpr int kMaxDepth = 256;

// Parses one JSON document (RFC 8259, plus Python's NaN, Infinity and -Infinity).
// Objects become dicts in key order (a repeated key keeps its first place and its last
// value), integers that fit int64 become ints, other numbers floats. Throws
// tessera::Error ("JSON line L, column C: ...") on malformed or non-UTF-8 input.
Value parse(std::string_view text);

struct DumpOptions {
    std::optional<std::string> indent;          // none: one line; else a newline and this per level
    std::optional<std::string> item_separator;  // default ", " (or "," when indenting)
    std::string key_separator = ": ";
    bool ensure_ascii = false;  // escape non-ASCII as \uXXXX
    bool sort_keys = false;
};

// Serializes like Python's json.dumps(value, ...). Tuples are arrays; undefined values,
// namespaces, iterators and functions throw EvalError ("Object of type X is not JSON
// serializable").
std::string dump(const Value& value, const DumpOptions& options = {});

// Appends `s` as a JSON string literal (with its quotes).
void append_quoted(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace tessera::chat::json
