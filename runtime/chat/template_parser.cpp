// The template parser: Jinja2's grammar (precedence, tuples, filters, tests, calls)
// for expressions, and the statements chat templates use. Unknown filters, tests and
// tags are errors here, with their position, before anything renders.
#include <algorithm>

#include "runtime/chat/template_ast.h"
#include "runtime/chat/template_builtins.h"
#include "tensor/error.h"

namespace tessera::chat {

namespace {

// Bounds on nesting, so that a hostile template cannot exhaust the stack while being
// parsed or rendered.
constexpr int kMaxNesting = 100;     // brackets, unary chains, nested blocks
constexpr int kMaxExprDepth = 400;   // height of one expression tree

constexpr std::string_view kUnsupportedTags[] = {"extends", "include", "import", "from", "block", "autoescape"};

struct OpenBlock {
    std::string tag;
    uint32_t offset;
    std::string ends;  // for messages: "'endfor' or 'else'"
};

struct Subscript {
    bool is_slice = false;
    ExprPtr index, start, stop, step;
};

class Parser {
public:
    Parser(const Source& source, std::vector<Token> tokens) : src_(source), toks_(std::move(tokens)) {}

    Body parse() {
        std::string found;
        return subparse({}, &found);
    }

private:
    const Source& src_;
    std::vector<Token> toks_;
    size_t i_ = 0;
    int nesting_ = 0;
    int loop_depth_ = 0;
    std::vector<OpenBlock> open_;

    struct Nest {
        Parser& p;
        explicit Nest(Parser& parser, uint32_t offset) : p(parser) {
            if (++p.nesting_ > kMaxNesting)
                p.fail(offset, "template nested too deeply (more than " + std::to_string(kMaxNesting) + " levels)");
        }
        ~Nest() { --p.nesting_; }
    };

    // ---- tokens ----

    const Token& cur() const { return toks_[i_]; }
    const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
    void advance() {
        if (i_ + 1 < toks_.size()) ++i_;
    }
    bool at_op(std::string_view op) const { return cur().kind == TokenKind::Operator && cur().text == op; }
    bool at_name(std::string_view n) const { return cur().kind == TokenKind::Name && cur().text == n; }
    bool skip_op(std::string_view op) {
        if (!at_op(op)) return false;
        advance();
        return true;
    }
    bool skip_name(std::string_view n) {
        if (!at_name(n)) return false;
        advance();
        return true;
    }

    [[noreturn]] void fail(uint32_t offset, const std::string& what) const { throw Error(src_.where(offset) + what); }

    static std::string describe(const Token& t) {
        switch (t.kind) {
        case TokenKind::Text: return "template text";
        case TokenKind::VarBegin: return "'{{'";
        case TokenKind::VarEnd: return "end of print statement '}}'";
        case TokenKind::BlockBegin: return "'{%'";
        case TokenKind::BlockEnd: return "end of statement block '%}'";
        case TokenKind::Name:
        case TokenKind::Operator: return "'" + t.text + "'";
        case TokenKind::String: return "string literal";
        case TokenKind::Integer: return "integer literal";
        case TokenKind::Float: return "float literal";
        case TokenKind::End: return "end of template";
        }
        return "token";
    }

    void expect_op(std::string_view op) {
        if (!skip_op(op)) fail(cur().offset, "expected '" + std::string(op) + "', got " + describe(cur()));
    }

    std::string expect_name(std::string_view what) {
        if (cur().kind != TokenKind::Name) fail(cur().offset, "expected " + std::string(what) + ", got " + describe(cur()));
        std::string n = cur().text;
        advance();
        return n;
    }

    void expect_block_end(std::string_view tag) {
        if (cur().kind == TokenKind::BlockEnd) {
            advance();
            return;
        }
        fail(cur().offset, "expected '%}' to end the '" + std::string(tag) + "' tag, got " + describe(cur()));
    }

    // ---- expressions ----

    ExprPtr node(ExprKind kind, uint32_t offset) {
        auto e = std::make_unique<Expr>();
        e->kind = kind;
        e->offset = offset;
        return e;
    }

    // Computes the tree height once the node's children are in place.
    ExprPtr finish(ExprPtr e) {
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

    ExprPtr binary(ExprKind kind, std::string op, ExprPtr l, ExprPtr r, uint32_t offset) {
        ExprPtr e = node(kind, offset);
        e->name = std::move(op);
        e->args.push_back(std::move(l));
        e->args.push_back(std::move(r));
        return finish(std::move(e));
    }

    bool is_tuple_end(std::initializer_list<std::string_view> extra) const {
        const TokenKind k = cur().kind;
        if (k == TokenKind::VarEnd || k == TokenKind::BlockEnd || k == TokenKind::End || at_op(")")) return true;
        for (std::string_view n : extra)
            if (at_name(n)) return true;
        return false;
    }

    ExprPtr parse_tuple(bool with_condexpr = true, std::initializer_list<std::string_view> extra_end = {},
                        bool explicit_parens = false) {
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

    ExprPtr parse_expression(bool with_condexpr = true) {
        Nest nest(*this, cur().offset);
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
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

    ExprPtr parse_or() {
        ExprPtr e = parse_and();
        while (at_name("or")) {
            const uint32_t offset = cur().offset;
            advance();
            e = binary(ExprKind::Or, "or", std::move(e), parse_and(), offset);
        }
        return e;
    }

    ExprPtr parse_and() {
        ExprPtr e = parse_not();
        while (at_name("and")) {
            const uint32_t offset = cur().offset;
            advance();
            e = binary(ExprKind::And, "and", std::move(e), parse_not(), offset);
        }
        return e;
    }

    ExprPtr parse_not() {
        if (!at_name("not")) return parse_compare();
        const uint32_t offset = cur().offset;
        Nest nest(*this, offset);
        advance();
        ExprPtr e = node(ExprKind::Unary, offset);
        e->name = "not";
        e->args.push_back(parse_not());
        return finish(std::move(e));
    }

    ExprPtr parse_compare() {
        const uint32_t offset = cur().offset;
        ExprPtr first = parse_math1();
        ExprPtr cmp;
        while (true) {
            std::string op;
            if (cur().kind == TokenKind::Operator &&
                (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                 cur().text == ">" || cur().text == ">=")) {
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

    template <typename Next>
    ExprPtr left_assoc(std::initializer_list<std::string_view> ops, Next next) {
        ExprPtr e = (this->*next)();
        while (cur().kind == TokenKind::Operator &&
               std::find(ops.begin(), ops.end(), cur().text) != ops.end()) {
            const uint32_t offset = cur().offset;
            std::string op = cur().text;
            advance();
            e = binary(ExprKind::Binary, op, std::move(e), (this->*next)(), offset);
        }
        return e;
    }

    ExprPtr parse_math1() { return left_assoc({"+", "-"}, &Parser::parse_concat); }
    ExprPtr parse_concat() { return left_assoc({"~"}, &Parser::parse_math2); }
    ExprPtr parse_math2() { return left_assoc({"*", "/", "//", "%"}, &Parser::parse_pow); }
    ExprPtr parse_pow() { return left_assoc({"**"}, &Parser::parse_unary_filtered); }
    ExprPtr parse_unary_filtered() { return parse_unary(true); }

    ExprPtr parse_unary(bool with_filter) {
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

    ExprPtr literal(Value v, uint32_t offset) {
        ExprPtr e = node(ExprKind::Literal, offset);
        e->literal = std::move(v);
        return e;
    }

    ExprPtr parse_primary(bool with_namespace) {
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
        default: break;
        }
        fail(offset, "unexpected " + describe(t));
    }

    ExprPtr parse_list() {
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

    ExprPtr parse_dict() {
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

    ExprPtr parse_postfix(ExprPtr e) {
        while (true) {
            if (at_op(".") || at_op("[")) e = parse_subscript(std::move(e));
            else if (at_op("(")) e = parse_call(std::move(e));
            else return e;
        }
    }

    ExprPtr parse_filter_expr(ExprPtr e) {
        while (true) {
            if (at_op("|")) e = parse_filter(std::move(e), false);
            else if (at_name("is")) e = parse_test(std::move(e));
            else if (at_op("(")) e = parse_call(std::move(e));
            else return e;
        }
    }

    ExprPtr parse_subscript(ExprPtr target) {
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

    Subscript parse_subscribed() {
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

    void parse_call_args(Expr& call) {
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

    ExprPtr parse_call(ExprPtr callee) {
        ExprPtr e = node(ExprKind::Call, cur().offset);
        e->args.push_back(std::move(callee));
        parse_call_args(*e);
        return finish(std::move(e));
    }

    std::string dotted_name(std::string_view what) {
        std::string n = expect_name(what);
        while (skip_op(".")) n += "." + expect_name(what);
        return n;
    }

    // One or more filters; `target` is null for a filter block or a set block.
    ExprPtr parse_filter(ExprPtr target, bool start_inline) {
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

    ExprPtr parse_test(ExprPtr target) {
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
        const bool arg_follows = t.kind == TokenKind::Name || t.kind == TokenKind::String ||
                                 t.kind == TokenKind::Integer || t.kind == TokenKind::Float || at_op("[") ||
                                 at_op("{");
        if (at_op("(")) {
            parse_call_args(*e);
        } else if (arg_follows && !at_name("else") && !at_name("or") && !at_name("and")) {
            if (at_name("is")) fail(t.offset, "tests cannot be chained with 'is'");
            e->args.push_back(parse_postfix(parse_primary(false)));
        }
        return finish(std::move(e));
    }

    // ---- statements ----

    std::unique_ptr<Stmt> stmt(StmtKind kind, uint32_t offset) {
        auto s = std::make_unique<Stmt>();
        s->kind = kind;
        s->offset = offset;
        return s;
    }

    // Statements up to a `{% name %}` tag with `name` in `ends`; leaves the parser at that
    // name and stores it in *found.
    Body subparse(std::initializer_list<std::string_view> ends, std::string* found) {
        Body body;
        while (true) {
            const Token& t = cur();
            switch (t.kind) {
            case TokenKind::Text: {
                auto s = stmt(StmtKind::Text, t.offset);
                s->text = t.text;
                body.push_back(std::move(s));
                advance();
                break;
            }
            case TokenKind::VarBegin: {
                auto s = stmt(StmtKind::Output, t.offset);
                advance();
                s->expr = parse_tuple();
                if (cur().kind != TokenKind::VarEnd)
                    fail(cur().offset, "expected '}}' to end the expression, got " + describe(cur()));
                advance();
                body.push_back(std::move(s));
                break;
            }
            case TokenKind::BlockBegin: {
                const uint32_t offset = t.offset;
                advance();
                if (cur().kind == TokenKind::Name &&
                    std::find(ends.begin(), ends.end(), cur().text) != ends.end()) {
                    *found = cur().text;
                    return body;
                }
                body.push_back(parse_statement(offset));
                break;
            }
            case TokenKind::End:
                if (ends.size() != 0) {
                    const OpenBlock& b = open_.back();
                    fail(b.offset, "the '" + b.tag + "' tag is never closed: expected " + b.ends +
                                       " before the end of the template");
                }
                return body;
            default: fail(t.offset, "unexpected " + describe(t));
            }
        }
    }

    // The body of a block tag whose opening tag has been read up to its '%}'.
    Body block_body(const std::string& tag, uint32_t offset, std::initializer_list<std::string_view> ends,
                    std::string* found) {
        std::string names;
        for (std::string_view e : ends) names += (names.empty() ? "'" : " or '") + std::string(e) + "'";
        open_.push_back(OpenBlock{tag, offset, names});
        Body body = subparse(ends, found);
        open_.pop_back();
        advance();  // the end tag's name
        return body;
    }

    // The body up to `{% end %}`, which must close right away.
    Body simple_body(const std::string& tag, uint32_t offset, const char* end) {
        std::string found;
        Body body = block_body(tag, offset, {end}, &found);
        expect_block_end(end);
        return body;
    }

    std::unique_ptr<Stmt> parse_statement(uint32_t offset) {
        if (cur().kind != TokenKind::Name) fail(cur().offset, "expected a tag name after '{%', got " + describe(cur()));
        Nest nest(*this, offset);
        const std::string tag = cur().text;
        const uint32_t name_offset = cur().offset;
        advance();
        if (tag == "if") return parse_if(offset);
        if (tag == "for") return parse_for(offset);
        if (tag == "set") return parse_set(offset);
        if (tag == "macro" || tag == "call") return parse_macro_or_call(offset, tag == "macro");
        if (tag == "filter") {
            auto s = stmt(StmtKind::FilterBlock, offset);
            flatten_filters(parse_filter(nullptr, true), s->filters);
            expect_block_end(tag);
            s->bodies.push_back(simple_body(tag, offset, "endfilter"));
            return s;
        }
        if (tag == "with") return parse_with(offset);
        if (tag == "generation") {
            auto s = stmt(StmtKind::Scope, offset);
            expect_block_end(tag);
            s->bodies.push_back(simple_body(tag, offset, "endgeneration"));
            return s;
        }
        if (tag == "print") {
            auto s = stmt(StmtKind::Output, offset);
            s->expr = parse_tuple();
            expect_block_end(tag);
            return s;
        }
        if (tag == "break" || tag == "continue") {
            if (loop_depth_ == 0) fail(name_offset, "'" + tag + "' outside of a loop");
            expect_block_end(tag);
            return stmt(tag == "break" ? StmtKind::Break : StmtKind::Continue, offset);
        }
        if (std::find(std::begin(kUnsupportedTags), std::end(kUnsupportedTags), tag) != std::end(kUnsupportedTags))
            fail(name_offset, "'" + tag + "' tags are not supported: a chat template is rendered on its own");
        if (!open_.empty() && (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif")) {
            const OpenBlock& b = open_.back();
            fail(name_offset, "unexpected '" + tag + "': the innermost open tag is '" + b.tag + "' (" +
                                  src_.position(b.offset) + "), which expects " + b.ends);
        }
        fail(name_offset, "unknown tag '" + tag + "'");
    }

    // A filter chain a|f|g is nested as g(f(a)); the list holds f then g, each with a
    // null target.
    void flatten_filters(ExprPtr chain, std::vector<ExprPtr>& out) {
        out.clear();
        while (chain) {
            ExprPtr inner = std::move(chain->args[0]);
            out.insert(out.begin(), std::move(chain));
            chain = std::move(inner);
        }
    }

    std::unique_ptr<Stmt> parse_if(uint32_t offset) {
        auto s = stmt(StmtKind::If, offset);
        std::string found;
        while (true) {
            s->conditions.push_back(parse_tuple(false));
            expect_block_end("if");
            s->bodies.push_back(block_body("if", offset, {"elif", "else", "endif"}, &found));
            if (found == "elif") continue;
            if (found == "else") {
                expect_block_end("else");
                s->bodies.push_back(simple_body("if", offset, "endif"));
            } else {
                expect_block_end("endif");
            }
            return s;
        }
    }

    // Loop or assignment targets: names (or ns.attr when `with_namespace`), maybe a tuple.
    void parse_targets(Stmt& s, bool with_namespace, std::initializer_list<std::string_view> extra_end) {
        while (true) {
            if (!s.targets.empty()) {
                if (!skip_op(",")) break;
                s.unpack = true;
                if (is_tuple_end(extra_end) || at_op("=")) break;
            }
            const uint32_t at = cur().offset;
            ExprPtr t = parse_primary(with_namespace);
            if (t->kind != ExprKind::Name && t->kind != ExprKind::Attr)
                fail(at, "can only assign to names" + std::string(with_namespace ? " and namespace attributes" : ""));
            s.targets.push_back(std::move(t));
        }
    }

    std::unique_ptr<Stmt> parse_for(uint32_t offset) {
        auto s = stmt(StmtKind::For, offset);
        parse_targets(*s, false, {"in"});
        if (!skip_name("in")) fail(cur().offset, "expected 'in' in the 'for' tag, got " + describe(cur()));
        s->expr = parse_tuple(false, {"recursive"});
        if (skip_name("if")) s->filter = parse_expression();
        if (at_name("recursive")) fail(cur().offset, "recursive loops are not supported");
        expect_block_end("for");
        ++loop_depth_;
        std::string found;
        s->bodies.push_back(block_body("for", offset, {"endfor", "else"}, &found));
        --loop_depth_;
        if (found == "else") {
            expect_block_end("else");
            s->bodies.push_back(simple_body("for", offset, "endfor"));
        } else {
            expect_block_end("endfor");
        }
        return s;
    }

    std::unique_ptr<Stmt> parse_set(uint32_t offset) {
        auto s = stmt(StmtKind::Set, offset);
        parse_targets(*s, true, {});
        if (skip_op("=")) {
            s->expr = parse_tuple();
            expect_block_end("set");
            return s;
        }
        if (s->unpack) fail(cur().offset, "a block 'set' assigns one name");
        s->kind = StmtKind::SetBlock;
        if (at_op("|")) flatten_filters(parse_filter(nullptr, false), s->filters);
        expect_block_end("set");
        s->bodies.push_back(simple_body("set", offset, "endset"));
        return s;
    }

    void parse_signature(Stmt& s) {
        expect_op("(");
        while (!at_op(")")) {
            if (!s.params.empty()) expect_op(",");
            if (at_op(")")) break;
            s.params.push_back(expect_name("a parameter name"));
            if (skip_op("=")) s.defaults.push_back(parse_expression());
            else if (!s.defaults.empty() && s.defaults.back()) fail(cur().offset, "non-default argument follows default argument");
            else s.defaults.push_back(nullptr);
        }
        expect_op(")");
    }

    std::unique_ptr<Stmt> parse_macro_or_call(uint32_t offset, bool is_macro) {
        auto s = stmt(is_macro ? StmtKind::Macro : StmtKind::CallBlock, offset);
        const int saved_loops = loop_depth_;
        loop_depth_ = 0;  // `break` inside a macro body cannot leave the caller's loop
        if (is_macro) {
            s->text = expect_name("a macro name");
            parse_signature(*s);
        } else {
            if (at_op("(")) parse_signature(*s);
            s->expr = parse_expression();
            if (s->expr->kind != ExprKind::Call) fail(s->expr->offset, "a 'call' tag needs a call expression");
        }
        const std::string tag = is_macro ? "macro" : "call";
        expect_block_end(tag);
        s->bodies.push_back(simple_body(tag, offset, is_macro ? "endmacro" : "endcall"));
        loop_depth_ = saved_loops;
        return s;
    }

    std::unique_ptr<Stmt> parse_with(uint32_t offset) {
        auto s = stmt(StmtKind::With, offset);
        while (cur().kind != TokenKind::BlockEnd) {
            if (!s->targets.empty()) expect_op(",");
            ExprPtr t = node(ExprKind::Name, cur().offset);
            t->name = expect_name("a variable name");
            s->targets.push_back(std::move(t));
            expect_op("=");
            s->values.push_back(parse_expression());
        }
        expect_block_end("with");
        s->bodies.push_back(simple_body("with", offset, "endwith"));
        return s;
    }
};

}  // namespace

std::unique_ptr<Program> parse_template(std::string_view source) {
    auto program = std::unique_ptr<Program>(new Program{Source(source), {}});
    program->body = Parser(program->source, tokenize(program->source)).parse();
    return program;
}

}  // namespace tessera::chat
