// The template parser's expressions: Jinja2's precedence climbing (conditional, or,
// and, not, comparisons, + -, ~, * / // %, **, unary, filters and tests, postfix), with
// literals, lists, dicts, tuples, subscripts, slices and calls. Unknown filters and
// tests are errors here, with their position.
#include <algorithm>

#include "runtime/chat/template_builtins.h"
#include "runtime/chat/template_parser.h"

namespace tessera::chat {

// ---- tokens ----

ExprParser::Nest::Nest(ExprParser& parser, uint32_t offset) : p(parser) {
    if (++p.nesting_ > kMaxNesting)
        p.fail(offset, "template nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
}

void ExprParser::advance() {
    if (i_ + 1 < toks_.size()) ++i_;
}
bool ExprParser::skip_op(std::string_view op) {
    if (!at_op(op)) return false;
    advance();
    return true;
}
bool ExprParser::skip_name(std::string_view n) {
    if (!at_name(n)) return false;
    advance();
    return true;
}

std::string ExprParser::describe(const Token& t) {
    switch (t.kind) {
        case TokenKind::Text:
            return "template text";
        case TokenKind::VarBegin:
            return "'{{'";
        case TokenKind::VarEnd:
            return "end of print statement '}}'";
        case TokenKind::BlockBegin:
            return "'{%'";
        case TokenKind::BlockEnd:
            return "end of statement block '%}'";
        case TokenKind::Name:
        case TokenKind::Operator:
            return "'" + t.text + "'";
        case TokenKind::String:
            return "string literal";
        case TokenKind::Integer:
            return "integer literal";
        case TokenKind::Float:
            return "float literal";
        case TokenKind::End:
            return "end of template";
    }
    return "token";
}

void ExprParser::expect_op(std::string_view op) {
    if (!skip_op(op)) fail(cur().offset, "expected '" + std::string(op) + "', got " + describe(cur()));
}

std::string ExprParser::expect_name(std::string_view what) {
    if (cur().kind != TokenKind::Name) fail(cur().offset, "expected " + std::string(what) + ", got " + describe(cur()));
    std::string n = cur().text;
    advance();
    return n;
}

void ExprParser::expect_block_end(std::string_view tag) {
    if (cur().kind == TokenKind::BlockEnd) {
        advance();
        return;
    }
    fail(cur().offset, "expected '%}' to end the '" + std::string(tag) + "' tag, got " + describe(cur()));
}

// ---- expressions ----

ExprPtr ExprParser::node(ExprKind kind, uint32_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
}

// Computes the tree height once the node's children are in place.
ExprPtr ExprParser::finish(ExprPtr e) {
    int d = 0;
    auto see = [&](const ExprPtr& c) {
        if (c) d = std::max(d, c->depth);
    };
    for (const auto& a : e->args) see(a);
    for (const auto& kw : e->kwargs) see(kw.second);
    see(e->star);
    see(e->star_star);
    e->depth = d + 1;
    if (e->depth > kMaxExprDepth) fail(e->offset, "expression nested too deeply");
    return e;
}

ExprPtr ExprParser::binary(ExprKind kind, std::string op, ExprPtr l, ExprPtr r, uint32_t offset) {
    ExprPtr e = node(kind, offset);
    e->name = std::move(op);
    e->args.push_back(std::move(l));
    e->args.push_back(std::move(r));
    return finish(std::move(e));
}

bool ExprParser::is_tuple_end(std::initializer_list<std::string_view> extra) const {
    const TokenKind k = cur().kind;
    if (k == TokenKind::VarEnd || k == TokenKind::BlockEnd || k == TokenKind::End || at_op(")")) return true;
    for (std::string_view n : extra)
        if (at_name(n)) return true;
    return false;
}

ExprPtr ExprParser::parse_tuple(bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                                bool explicit_parens) {
    const uint32_t offset = cur().offset;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
        if (!items.empty()) expect_op(",");
        if (is_tuple_end(extra_end)) break;
        items.push_back(parse_expression(with_condexpr));
        if (!at_op(",")) break;
        is_tuple = true;
    }
    if (!is_tuple) {
        if (!items.empty()) return std::move(items[0]);
        if (!explicit_parens) fail(cur().offset, "expected an expression, got " + describe(cur()));
    }
    ExprPtr t = node(ExprKind::Tuple, offset);
    t->args = std::move(items);
    return finish(std::move(t));
}

ExprPtr ExprParser::parse_expression(bool with_condexpr) {
    Nest nest(*this, cur().offset);
    return with_condexpr ? parse_condexpr() : parse_or();
}

ExprPtr ExprParser::parse_condexpr() {
    ExprPtr e = parse_or();
    while (at_name("if")) {
        const uint32_t offset = cur().offset;
        advance();
        ExprPtr cond = parse_or();
        ExprPtr otherwise;
        if (skip_name("else")) otherwise = parse_expression();
        ExprPtr c = node(ExprKind::Conditional, offset);
        c->args.push_back(std::move(e));
        c->args.push_back(std::move(cond));
        c->args.push_back(std::move(otherwise));
        e = finish(std::move(c));
    }
    return e;
}

ExprPtr ExprParser::parse_or() {
    ExprPtr e = parse_and();
    while (at_name("or")) {
        const uint32_t offset = cur().offset;
        advance();
        e = binary(ExprKind::Or, "or", std::move(e), parse_and(), offset);
    }
    return e;
}

ExprPtr ExprParser::parse_and() {
    ExprPtr e = parse_not();
    while (at_name("and")) {
        const uint32_t offset = cur().offset;
        advance();
        e = binary(ExprKind::And, "and", std::move(e), parse_not(), offset);
    }
    return e;
}

ExprPtr ExprParser::parse_not() {
    if (!at_name("not")) return parse_compare();
    const uint32_t offset = cur().offset;
    Nest nest(*this, offset);
    advance();
    ExprPtr e = node(ExprKind::Unary, offset);
    e->name = "not";
    e->args.push_back(parse_not());
    return finish(std::move(e));
}

ExprPtr ExprParser::parse_compare() {
    const uint32_t offset = cur().offset;
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
        std::string op;
        if (cur().kind == TokenKind::Operator && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                                  cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
            op = cur().text;
            advance();
        } else if (at_name("in")) {
            op = "in";
            advance();
        } else if (at_name("not") && look().kind == TokenKind::Name && look().text == "in") {
            op = "notin";
            advance();
            advance();
        } else {
            break;
        }
        if (!cmp) {
            cmp = node(ExprKind::Compare, offset);
            cmp->args.push_back(std::move(first));
        }
        cmp->ops.push_back(op);
        cmp->args.push_back(parse_math1());
    }
    return cmp ? finish(std::move(cmp)) : std::move(first);
}

ExprPtr ExprParser::left_assoc(std::initializer_list<std::string_view> ops, ExprPtr (ExprParser::*next)()) {
    ExprPtr e = (this->*next)();
    while (cur().kind == TokenKind::Operator && std::find(ops.begin(), ops.end(), cur().text) != ops.end()) {
        const uint32_t offset = cur().offset;
        std::string op = cur().text;
        advance();
        e = binary(ExprKind::Binary, op, std::move(e), (this->*next)(), offset);
    }
    return e;
}

ExprPtr ExprParser::parse_math1() { return left_assoc({"+", "-"}, &ExprParser::parse_concat); }
ExprPtr ExprParser::parse_concat() { return left_assoc({"~"}, &ExprParser::parse_math2); }
ExprPtr ExprParser::parse_math2() { return left_assoc({"*", "/", "//", "%"}, &ExprParser::parse_pow); }
ExprPtr ExprParser::parse_pow() { return left_assoc({"**"}, &ExprParser::parse_unary_filtered); }
ExprPtr ExprParser::parse_unary_filtered() { return parse_unary(true); }

ExprPtr ExprParser::parse_unary(bool with_filter) {
    const uint32_t offset = cur().offset;
    Nest nest(*this, offset);
    ExprPtr e;
    if (at_op("-") || at_op("+")) {
        e = node(ExprKind::Unary, offset);
        e->name = cur().text;
        advance();
        e->args.push_back(parse_unary(false));
        e = finish(std::move(e));
    } else {
        e = parse_primary(false);
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
}

ExprPtr ExprParser::literal(Value v, uint32_t offset) {
    ExprPtr e = node(ExprKind::Literal, offset);
    e->literal = std::move(v);
    return e;
}

ExprPtr ExprParser::parse_primary(bool with_namespace) {
    const Token& t = cur();
    const uint32_t offset = t.offset;
    switch (t.kind) {
        case TokenKind::Name: {
            const std::string n = t.text;
            advance();
            if (n == "true" || n == "True") return literal(Value::boolean(true), offset);
            if (n == "false" || n == "False") return literal(Value::boolean(false), offset);
            if (n == "none" || n == "None") return literal(Value::none(), offset);
            ExprPtr e = node(ExprKind::Name, offset);
            e->name = n;
            if (with_namespace && at_op(".")) {
                advance();
                ExprPtr attr = node(ExprKind::Attr, offset);
                attr->name = expect_name("an attribute name");
                attr->args.push_back(std::move(e));
                return finish(std::move(attr));
            }
            return e;
        }
        case TokenKind::String: {
            std::string s;
            while (cur().kind == TokenKind::String) {  // adjacent literals concatenate
                s += cur().text;
                advance();
            }
            return literal(Value::string(std::move(s)), offset);
        }
        case TokenKind::Integer: {
            const int64_t v = t.integer;
            advance();
            return literal(Value::integer(v), offset);
        }
        case TokenKind::Float: {
            const double v = t.number;
            advance();
            return literal(Value::number(v), offset);
        }
        case TokenKind::Operator:
            if (t.text == "(") {
                Nest nest(*this, offset);
                advance();
                ExprPtr e = parse_tuple(true, {}, true);
                expect_op(")");
                return e;
            }
            if (t.text == "[" || t.text == "{") {
                Nest nest(*this, offset);
                return t.text == "[" ? parse_list() : parse_dict();
            }
            break;
        default:
            break;
    }
    fail(offset, "unexpected " + describe(t));
}

ExprPtr ExprParser::parse_list() {
    ExprPtr e = node(ExprKind::List, cur().offset);
    expect_op("[");
    while (!at_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (at_op("]")) break;
        e->args.push_back(parse_expression());
    }
    expect_op("]");
    return finish(std::move(e));
}

ExprPtr ExprParser::parse_dict() {
    ExprPtr e = node(ExprKind::Dict, cur().offset);
    expect_op("{");
    while (!at_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (at_op("}")) break;
        e->args.push_back(parse_expression());
        expect_op(":");
        e->args.push_back(parse_expression());
    }
    expect_op("}");
    return finish(std::move(e));
}

ExprPtr ExprParser::parse_postfix(ExprPtr e) {
    while (true) {
        if (at_op(".") || at_op("["))
            e = parse_subscript(std::move(e));
        else if (at_op("("))
            e = parse_call(std::move(e));
        else
            return e;
    }
}

ExprPtr ExprParser::parse_filter_expr(ExprPtr e) {
    while (true) {
        if (at_op("|"))
            e = parse_filter(std::move(e), false);
        else if (at_name("is"))
            e = parse_test(std::move(e));
        else if (at_op("("))
            e = parse_call(std::move(e));
        else
            return e;
    }
}

ExprPtr ExprParser::parse_subscript(ExprPtr target) {
    const uint32_t offset = cur().offset;
    if (skip_op(".")) {
        if (cur().kind == TokenKind::Name) {
            ExprPtr e = node(ExprKind::Attr, offset);
            e->name = cur().text;
            advance();
            e->args.push_back(std::move(target));
            return finish(std::move(e));
        }
        if (cur().kind != TokenKind::Integer) fail(cur().offset, "expected a name or a number after '.'");
        ExprPtr e = node(ExprKind::Item, offset);
        e->args.push_back(std::move(target));
        e->args.push_back(literal(Value::integer(cur().integer), cur().offset));
        advance();
        return finish(std::move(e));
    }
    expect_op("[");
    std::vector<Subscript> subs;
    while (!at_op("]")) {
        if (!subs.empty()) expect_op(",");
        subs.push_back(parse_subscribed());
    }
    expect_op("]");
    if (subs.size() == 1 && subs[0].is_slice) {
        ExprPtr e = node(ExprKind::Slice, offset);
        e->args.push_back(std::move(target));
        e->args.push_back(std::move(subs[0].start));
        e->args.push_back(std::move(subs[0].stop));
        e->args.push_back(std::move(subs[0].step));
        return finish(std::move(e));
    }
    ExprPtr e = node(ExprKind::Item, offset);
    e->args.push_back(std::move(target));
    if (subs.size() == 1) {
        e->args.push_back(std::move(subs[0].index));
    } else {
        ExprPtr t = node(ExprKind::Tuple, offset);
        for (auto& s : subs) {
            if (s.is_slice) fail(offset, "slices inside a tuple subscript are not supported");
            t->args.push_back(std::move(s.index));
        }
        e->args.push_back(finish(std::move(t)));
    }
    return finish(std::move(e));
}

ExprParser::Subscript ExprParser::parse_subscribed() {
    Subscript s;
    if (!at_op(":")) {
        ExprPtr first = parse_expression();
        if (!at_op(":")) {
            s.index = std::move(first);
            return s;
        }
        s.start = std::move(first);
    }
    advance();  // the first ':'
    s.is_slice = true;
    if (!at_op(":") && !at_op("]") && !at_op(",")) s.stop = parse_expression();
    if (skip_op(":") && !at_op("]") && !at_op(",")) s.step = parse_expression();
    return s;
}

void ExprParser::parse_call_args(Expr& call) {
    const uint32_t offset = cur().offset;
    expect_op("(");
    bool need_comma = false;
    while (!at_op(")")) {
        if (need_comma) {
            expect_op(",");
            if (at_op(")")) break;
        }
        auto ensure = [&](bool ok) {
            if (!ok) fail(offset, "invalid syntax for function call expression");
        };
        if (skip_op("*")) {
            ensure(!call.star && !call.star_star);
            call.star = parse_expression();
        } else if (skip_op("**")) {
            ensure(!call.star_star);
            call.star_star = parse_expression();
        } else if (cur().kind == TokenKind::Name && look().kind == TokenKind::Operator && look().text == "=") {
            ensure(!call.star_star);
            std::string key = cur().text;
            advance();
            advance();
            call.kwargs.emplace_back(std::move(key), parse_expression());
        } else {
            ensure(!call.star && !call.star_star && call.kwargs.empty());
            call.args.push_back(parse_expression());
        }
        need_comma = true;
    }
    expect_op(")");
}

ExprPtr ExprParser::parse_call(ExprPtr callee) {
    ExprPtr e = node(ExprKind::Call, cur().offset);
    e->args.push_back(std::move(callee));
    parse_call_args(*e);
    return finish(std::move(e));
}

std::string ExprParser::dotted_name(std::string_view what) {
    std::string n = expect_name(what);
    while (skip_op(".")) {
        n += '.';
        n += expect_name(what);
    }
    return n;
}

// One or more filters; `target` is null for a filter block or a set block.
ExprPtr ExprParser::parse_filter(ExprPtr target, bool start_inline) {
    while (at_op("|") || start_inline) {
        if (!start_inline) advance();
        start_inline = false;
        const uint32_t offset = cur().offset;
        ExprPtr e = node(ExprKind::Filter, offset);
        e->name = dotted_name("a filter name");
        e->filter = find_filter(e->name);
        if (!e->filter) fail(offset, "unknown filter '" + e->name + "'");
        e->args.push_back(std::move(target));
        if (at_op("(")) parse_call_args(*e);
        target = finish(std::move(e));
    }
    return target;
}

ExprPtr ExprParser::parse_test(ExprPtr target) {
    advance();  // 'is'
    const bool negated = skip_name("not");
    const uint32_t offset = cur().offset;
    ExprPtr e = node(ExprKind::Test, offset);
    e->name = dotted_name("a test name");
    e->negated = negated;
    e->test = find_test(e->name);
    if (!e->test) fail(offset, "unknown test '" + e->name + "'");
    e->args.push_back(std::move(target));
    const Token& t = cur();
    const bool arg_follows = t.kind == TokenKind::Name || t.kind == TokenKind::String || t.kind == TokenKind::Integer ||
                             t.kind == TokenKind::Float || at_op("[") || at_op("{");
    if (at_op("(")) {
        parse_call_args(*e);
    } else if (arg_follows && !at_name("else") && !at_name("or") && !at_name("and")) {
        if (at_name("is")) fail(t.offset, "tests cannot be chained with 'is'");
        e->args.push_back(parse_postfix(parse_primary(false)));
    }
    return finish(std::move(e));
}

}  // namespace tessera::chat
