// The template parser's statements (if, for, set, macro, call, filter, with, generation,
// break/continue) and parse_template(). Unknown tags and tags left open are errors here,
// with their position, before anything renders.
#include <algorithm>

#include "runtime/chat/template_parser.h"

namespace tessera::chat {

namespace {

constexpr std::string_view kUnsupportedTags[] = {"extends", "include", "import", "from", "block", "autoescape"};

struct OpenBlock {
    std::string tag;
    uint32_t offset;
    std::string ends;  // for messages: "'endfor' or 'else'"
};

class Parser : public ExprParser {
public:
    using ExprParser::ExprParser;

    Body parse() {
        std::string found;
        return subparse({}, &found);
    }

private:
    int loop_depth_ = 0;
    std::vector<OpenBlock> open_;

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
                default:
                    fail(t.offset, "unexpected " + describe(t));
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
            if (skip_op("="))
                s.defaults.push_back(parse_expression());
            else if (!s.defaults.empty() && s.defaults.back())
                fail(cur().offset, "non-default argument follows default argument");
            else
                s.defaults.push_back(nullptr);
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
