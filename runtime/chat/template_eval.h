// The renderer: walks a parsed template with Jinja2's scoping (a `for` iteration, a
// macro call and a `with` block get their own scope; `if` does not), loop variables,
// macros and call blocks, and the limits that keep hostile templates bounded.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "runtime/chat/template.h"
#include "runtime/chat/template_ast.h"

namespace tessera::chat {

struct Scope {
    std::unordered_map<std::string, Value> vars;
    std::shared_ptr<Scope> parent;

    const Value* find(const std::string& name) const;
};

class Renderer {
public:
    Renderer(const Program& program, const RenderLimits& limits);
    std::string render(const Value& variables);

    // For built-ins that call back into the language (map, select, macros, caller).
    Value call(const Value& callee, CallArgs& args);
    Value apply_filter(std::string_view name, const Value& input, CallArgs& args);
    bool apply_test(std::string_view name, const Value& input, CallArgs& args);
    // Charges `cost` against the step budget; throws when it is spent.
    void step(uint64_t cost = 1);

private:
    enum class Flow { Normal, Break, Continue };

    const Program& program_;
    RenderLimits limits_;
    std::shared_ptr<Scope> root_;   // the template's top-level names (over the globals)
    std::shared_ptr<Scope> scope_;  // the innermost scope now
    uint64_t steps_ = 0;
    int call_depth_ = 0;

    struct ScopeSwap;

    Flow exec(const Body& body, std::string& out);
    Flow exec_stmt(const Stmt& s, std::string& out);
    Flow exec_for(const Stmt& s, std::string& out);
    void exec_call_block(const Stmt& s, std::string& out);
    std::string render_block(const Body& body);
    void append(std::string& out, std::string_view s) const;

    Value eval(const Expr& e);
    Value eval_expr(const Expr& e);
    Value eval_call(const Expr& e, const Value* caller);
    void collect_args(const Expr& e, size_t first, CallArgs& args);
    Value lookup(const std::string& name) const;

    void assign(const Stmt& s, const Value& value);
    void assign_one(const Expr& target, const Value& value);
    Value make_macro(const Stmt& def, const std::string& name);
    Value call_macro(const Stmt& def, const std::shared_ptr<Scope>& closure, CallArgs& args, const std::string& name);
    // The `loop` object of a for loop: one dict per loop, updated for each item (as
    // Jinja's LoopContext is one object), so that an iteration allocates little.
    Value make_loop(const Array& items, std::shared_ptr<size_t> index);
    static void update_loop(Value& loop, const Array& items, size_t i);
};

}  // namespace tessera::chat
