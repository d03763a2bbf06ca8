// The expression half of the template parser (Jinja2's grammar: precedence, tuples,
// filters, tests, calls, subscripts), shared with the statement parser in
// template_parser.cpp. Internal to runtime/chat.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/chat/template_ast.h"
#include "tensor/error.h"

namespace tessera::chat {

// Bounds on nesting, so that a hostile template cannot exhaust the stack while being
// parsed or rendered.
constexpr int kMaxNesting = 100;    // brackets, unary chains, nested blocks
constexpr int kMaxExprDepth = 400;  // height of one expression tree

class ExprParser {
public:
    ExprParser(const Source& source, std::vector<Token> tokens) : src_(source), toks_(std::move(tokens)) {}

protected:
    const Source& src_;
    std::vector<Token> toks_;
    size_t i_ = 0;
    int nesting_ = 0;

    // Counts one level of nesting for the life of the C++ block; fails past kMaxNesting.
    struct Nest {
        ExprParser& p;
        Nest(ExprParser& parser, uint32_t offset);
        ~Nest() { --p.nesting_; }
        Nest(const Nest&) = delete;
        Nest& operator=(const Nest&) = delete;
    };

    struct Subscript {
        bool is_slice = false;
        ExprPtr index, start, stop, step;
    };

    // ---- tokens ----
    const Token& cur() const { return toks_[i_]; }
    const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
    void advance();
    bool at_op(std::string_view op) const { return cur().kind == TokenKind::Operator && cur().text == op; }
    bool at_name(std::string_view n) const { return cur().kind == TokenKind::Name && cur().text == n; }
    bool skip_op(std::string_view op);
    bool skip_name(std::string_view n);
    [[noreturn]] void fail(uint32_t offset, const std::string& what) const { throw Error(src_.where(offset) + what); }
    static std::string describe(const Token& t);
    void expect_op(std::string_view op);
    std::string expect_name(std::string_view what);
    void expect_block_end(std::string_view tag);

    // ---- expressions ----
    ExprPtr node(ExprKind kind, uint32_t offset);
    // Computes the tree height once the node's children are in place.
    ExprPtr finish(ExprPtr e);
    ExprPtr binary(ExprKind kind, std::string op, ExprPtr l, ExprPtr r, uint32_t offset);
    ExprPtr literal(Value v, uint32_t offset);
    bool is_tuple_end(std::initializer_list<std::string_view> extra) const;
    // An expression, or a tuple when commas follow (`a, b`); `extra_end` names that end it.
    ExprPtr parse_tuple(bool with_condexpr = true, std::initializer_list<std::string_view> extra_end = {},
                        bool explicit_parens = false);
    ExprPtr parse_expression(bool with_condexpr = true);
    ExprPtr parse_primary(bool with_namespace);
    ExprPtr parse_postfix(ExprPtr e);
    // One or more filters; `target` is null for a filter block or a set block.
    ExprPtr parse_filter(ExprPtr target, bool start_inline);

private:
    ExprPtr parse_condexpr();
    ExprPtr parse_or();
    ExprPtr parse_and();
    ExprPtr parse_not();
    ExprPtr parse_compare();
    ExprPtr left_assoc(std::initializer_list<std::string_view> ops, ExprPtr (ExprParser::*next)());
    ExprPtr parse_math1();
    ExprPtr parse_concat();
    ExprPtr parse_math2();
    ExprPtr parse_pow();
    ExprPtr parse_unary_filtered();
    ExprPtr parse_unary(bool with_filter);
    ExprPtr parse_list();
    ExprPtr parse_dict();
    ExprPtr parse_filter_expr(ExprPtr e);
    ExprPtr parse_subscript(ExprPtr target);
    Subscript parse_subscribed();
    void parse_call_args(Expr& call);
    ExprPtr parse_call(ExprPtr callee);
    std::string dotted_name(std::string_view what);
    ExprPtr parse_test(ExprPtr target);
};

}  // namespace tessera::chat
