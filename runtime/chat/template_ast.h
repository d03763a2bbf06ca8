// The parsed form of a chat template: expression and statement trees. The parser
// builds them once; the renderer walks them for every conversation.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/chat/template_lexer.h"
#include "runtime/chat/template_value.h"

namespace tessera::chat {

using FilterFn = Value (*)(Renderer&, const Value& input, CallArgs& args);
using TestFn = bool (*)(Renderer&, const Value& input, CallArgs& args);

enum class ExprKind : uint8_t {
    Literal,      // literal
    Name,         // name
    List,         // args: the items
    Tuple,        // args: the items
    Dict,         // args: key0, value0, key1, value1, ...
    Attr,         // args[0].name
    Item,         // args[0][args[1]]
    Slice,        // args[0][args[1]:args[2]:args[3]], each bound may be null
    Call,         // args[0](args[1..], kwargs, *star, **star_star)
    Filter,       // args[0] | name(args[1..], kwargs); args[0] is null in a filter block
    Test,         // args[0] is [not] name(args[1..], kwargs)
    Unary,        // name ("-", "+", "not") applied to args[0]
    Binary,       // args[0] name args[1] with name one of + - * / // % ** ~
    Compare,      // args[0] ops[0] args[1] ops[1] args[2] ... (Python's chained comparison)
    And,          // args[0] and args[1]
    Or,           // args[0] or args[1]
    Conditional,  // args[0] if args[1] else args[2] (args[2] null: undefined)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    ExprKind kind;
    uint32_t offset;  // in the source, for messages
    int depth = 1;    // of this tree, so that evaluation recursion stays bounded
    std::string name;
    Value literal;
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    ExprPtr star, star_star;       // Call, Filter, Test: *args and **kwargs
    std::vector<std::string> ops;  // Compare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
    bool negated = false;          // Test: `is not`
    FilterFn filter = nullptr;     // Filter: resolved at parse time
    TestFn test = nullptr;         // Test: resolved at parse time
};

enum class StmtKind : uint8_t {
    Text,         // text
    Output,       // {{ expr }}
    If,           // conditions[i] -> bodies[i]; bodies has one more when there is an else
    For,          // for targets in expr [if filter]: bodies[0]; else bodies[1]
    Set,          // set targets = expr
    SetBlock,     // set targets[0] | filters: bodies[0]
    Macro,        // macro name(params = defaults): bodies[0]
    CallBlock,    // call(params = defaults) expr: bodies[0] is `caller`
    FilterBlock,  // filter filters: bodies[0]
    With,         // with targets = values: bodies[0]
    Break,
    Continue,
    Scope,  // a block that renders its body (generation)
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
    StmtKind kind;
    uint32_t offset;
    std::string text;                 // Text: the data; Macro: the name
    ExprPtr expr;                     // Output, For (iterable), Set (value), CallBlock (call)
    ExprPtr filter;                   // For: the `if` clause
    std::vector<ExprPtr> targets;     // For / Set / SetBlock / With: Name, or Attr of a Name
    bool unpack = false;              // For / Set: the targets form a tuple
    std::vector<ExprPtr> conditions;  // If
    std::vector<ExprPtr> values;      // With: one per target
    std::vector<ExprPtr> filters;     // SetBlock / FilterBlock: Filter nodes, applied in order
    std::vector<std::string> params;  // Macro / CallBlock
    std::vector<ExprPtr> defaults;    // Macro / CallBlock: one per param (null: none)
    std::vector<Body> bodies;
};

struct Program {
    Source source;
    Body body;
};

// Parses a template; throws tessera::Error naming the line and column of the problem
// (a syntax error, an unknown tag, filter or test, a tag left open).
std::unique_ptr<Program> parse_template(std::string_view source);

}  // namespace tessera::chat
