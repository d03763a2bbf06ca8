// The renderer: statements, expressions, scopes, loops, macros and call blocks.
#include "runtime/chat/template_eval.h"

#include <optional>

#include "runtime/chat/template_builtins.h"
#include "runtime/chat/template_ops.h"

namespace tessera::chat {

const Value* Scope::find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
        const auto it = s->vars.find(name);
        if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
}

// Makes `scope` the current scope until the end of the C++ block.
struct Renderer::ScopeSwap {
    Renderer& r;
    std::shared_ptr<Scope> saved;
    ScopeSwap(Renderer& renderer, std::shared_ptr<Scope> scope) : r(renderer), saved(std::move(renderer.scope_)) {
        r.scope_ = std::move(scope);
    }
    ~ScopeSwap() { r.scope_ = std::move(saved); }
    ScopeSwap(const ScopeSwap&) = delete;
    ScopeSwap& operator=(const ScopeSwap&) = delete;
};

namespace {

std::shared_ptr<Scope> child_of(std::shared_ptr<Scope> parent) {
    auto s = std::make_shared<Scope>();
    s->parent = std::move(parent);
    return s;
}

}  // namespace

Renderer::Renderer(const Program& program, const RenderLimits& limits) : program_(program), limits_(limits) {}

std::string Renderer::render(const Value& variables) {
    auto globals = std::make_shared<Scope>();
    Dict builtins;
    add_globals(builtins);
    for (const auto& [k, v] : builtins.entries()) globals->vars[k.as_string()] = v;
    root_ = child_of(globals);
    if (!variables.is_dict()) throw Error("template variables must be a JSON object (a dict)");
    for (const auto& [k, v] : variables.as_dict().entries()) {
        if (!k.is_string()) throw Error("template variable names must be strings");
        root_->vars[k.as_string()] = v;
    }
    scope_ = root_;
    std::string out;
    exec(program_.body, out);
    return out;
}

void Renderer::step(uint64_t cost) {
    steps_ += cost;
    if (steps_ > limits_.max_steps)
        throw EvalError("rendering took more than " + std::to_string(limits_.max_steps) +
                        " steps (a runaway loop?); stopped");
}

void Renderer::append(std::string& out, std::string_view s) const {
    if (out.size() + s.size() > limits_.max_output_bytes)
        throw EvalError("rendered text longer than " + std::to_string(limits_.max_output_bytes) + " bytes; stopped");
    out += s;
}

Value Renderer::lookup(const std::string& name) const {
    if (const Value* v = scope_->find(name)) return *v;
    return Value::undefined("'" + name + "' is undefined");
}

// ---- statements ----

Renderer::Flow Renderer::exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
        const Flow f = exec_stmt(*s, out);
        if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
}

std::string Renderer::render_block(const Body& body) {
    std::string out;
    exec(body, out);
    return out;
}

Renderer::Flow Renderer::exec_stmt(const Stmt& s, std::string& out) {
    step();
    try {
        switch (s.kind) {
            case StmtKind::Text:
                append(out, s.text);
                break;
            case StmtKind::Output:
                append(out, eval(*s.expr).str());
                break;
            case StmtKind::If:
                for (size_t i = 0; i < s.conditions.size(); ++i)
                    if (eval(*s.conditions[i]).truthy()) return exec(s.bodies[i], out);
                if (s.bodies.size() > s.conditions.size()) return exec(s.bodies.back(), out);
                break;
            case StmtKind::For:
                return exec_for(s, out);
            case StmtKind::Set:
                assign(s, eval(*s.expr));
                break;
            case StmtKind::SetBlock:
            case StmtKind::FilterBlock: {
                Value v = Value::string(render_block(s.bodies[0]));
                for (const auto& f : s.filters) {
                    CallArgs args;
                    collect_args(*f, 1, args);
                    v = f->filter(*this, v, args);
                }
                if (s.kind == StmtKind::SetBlock)
                    assign(s, v);
                else
                    append(out, v.str());
                break;
            }
            case StmtKind::Macro:
                scope_->vars[s.text] = make_macro(s, s.text);
                break;
            case StmtKind::CallBlock:
                exec_call_block(s, out);
                break;
            case StmtKind::With: {
                auto scope = child_of(scope_);
                for (size_t i = 0; i < s.targets.size(); ++i) scope->vars[s.targets[i]->name] = eval(*s.values[i]);
                ScopeSwap swap(*this, scope);
                return exec(s.bodies[0], out);
            }
            case StmtKind::Break:
                return Flow::Break;
            case StmtKind::Continue:
                return Flow::Continue;
            case StmtKind::Scope:
                return exec(s.bodies[0], out);
        }
    } catch (const EvalError& e) {
        throw Error(program_.source.where(s.offset) + e.what());
    }
    return Flow::Normal;
}

namespace {

// The keys of a loop object, in the order make_loop creates them (update_loop relies on it).
constexpr const char* kLoopKeys[] = {"index", "index0", "revindex", "revindex0", "first", "last",   "length",
                                     "depth", "depth0", "previtem", "nextitem",  "cycle", "changed"};

}  // namespace

Value Renderer::make_loop(const Array& items, std::shared_ptr<size_t> index) {
    Value loop = Value::dict();
    Dict& d = loop.as_dict();
    for (const char* key : kLoopKeys) d.set(key, Value());
    d.set("depth", Value::integer(1));
    d.set("depth0", Value::integer(0));
    d.set("length", Value::integer(static_cast<int64_t>(items.size())));
    d.set("cycle", Value::function("cycle", [index](Renderer&, CallArgs& args) {
              if (args.positional.empty()) throw EvalError("no items for cycling given");
              return args.positional[*index % args.positional.size()];
          }));
    auto last = std::make_shared<std::optional<Value>>();  // what loop.changed() saw last
    d.set("changed", Value::function("changed", [last](Renderer&, CallArgs& args) {
              Value now = Value::list(args.positional);
              if (*last && (*last)->equals(now)) return Value::boolean(false);
              *last = std::move(now);
              return Value::boolean(true);
          }));
    return loop;
}

void Renderer::update_loop(Value& loop, const Array& items, size_t i) {
    Dict& d = loop.as_dict();
    const auto n = static_cast<int64_t>(items.size());
    const auto k = static_cast<int64_t>(i);
    d.set_at(0, Value::integer(k + 1));
    d.set_at(1, Value::integer(k));
    d.set_at(2, Value::integer(n - k));
    d.set_at(3, Value::integer(n - k - 1));
    d.set_at(4, Value::boolean(k == 0));
    d.set_at(5, Value::boolean(k == n - 1));
    d.set_at(9, i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
    d.set_at(10, i + 1 < items.size() ? items[i + 1] : Value::undefined("there is no next item"));
}

Renderer::Flow Renderer::exec_for(const Stmt& s, std::string& out) {
    Array items = eval(*s.expr).iterate();
    step(items.size());
    const std::shared_ptr<Scope> outer = scope_;
    if (s.filter) {  // `for x in xs if cond`: the loop (and loop.length) sees only the kept items
        Array kept;
        for (const Value& item : items) {
            ScopeSwap swap(*this, child_of(outer));
            assign(s, item);
            if (eval(*s.filter).truthy()) kept.push_back(item);
        }
        items.swap(kept);
    }
    if (items.empty()) {
        if (s.bodies.size() < 2) return Flow::Normal;
        ScopeSwap swap(*this, child_of(outer));
        return exec(s.bodies[1], out);
    }
    auto index = std::make_shared<size_t>(0);
    Value loop = make_loop(items, index);
    // loop.changed() keeps the values it was given; drop them when the loop ends so that
    // `loop.changed(loop)` cannot leave a cycle behind.
    struct DropChanged {
        Value& loop;
        ~DropChanged() { loop.as_dict().set_at(12, Value()); }
    } drop_changed{loop};
    std::shared_ptr<Scope> scope;
    for (size_t i = 0; i < items.size(); ++i) {
        // Each iteration starts from the outer names; the scope is reused when nothing
        // kept hold of it.
        if (scope && scope.use_count() == 1)
            scope->vars.clear();
        else
            scope = child_of(outer);
        ScopeSwap swap(*this, scope);
        assign(s, items[i]);
        *index = i;
        update_loop(loop, items, i);
        scope_->vars["loop"] = loop;
        if (exec(s.bodies[0], out) == Flow::Break) break;
    }
    return Flow::Normal;
}

void Renderer::assign(const Stmt& s, const Value& value) {
    if (!s.unpack) return assign_one(*s.targets[0], value);
    const Array parts = value.iterate();
    const size_t n = s.targets.size();
    if (parts.size() < n)
        throw EvalError("not enough values to unpack (expected " + std::to_string(n) + ", got " +
                        std::to_string(parts.size()) + ")");
    if (parts.size() > n) throw EvalError("too many values to unpack (expected " + std::to_string(n) + ")");
    for (size_t i = 0; i < n; ++i) assign_one(*s.targets[i], parts[i]);
}

void Renderer::assign_one(const Expr& target, const Value& value) {
    if (target.kind == ExprKind::Name) {
        scope_->vars[target.name] = value;
        return;
    }
    const Value ns = lookup(target.args[0]->name);  // {% set ns.attr = value %}
    if (!ns.is_namespace()) throw EvalError("cannot assign attribute on non-namespace object");
    if (holds(value, ns.identity())) throw EvalError("a namespace cannot contain itself");
    ns.as_dict().set(target.name, value);
}

// ---- macros and call blocks ----

Value Renderer::make_macro(const Stmt& def, const std::string& name) {
    // The macro sees the names of the scope it was defined in, as they are when it is
    // called. It holds that scope weakly: the scope holds the macro.
    std::weak_ptr<Scope> closure = scope_;
    const Stmt* d = &def;
    return Value::function(name, [d, closure, name](Renderer& r, CallArgs& args) {
        const std::shared_ptr<Scope> scope = closure.lock();
        return r.call_macro(*d, scope ? scope : r.root_, args, name);
    });
}

Value Renderer::call_macro(const Stmt& def, const std::shared_ptr<Scope>& closure, CallArgs& args,
                           const std::string& name) {
    if (call_depth_ >= limits_.max_call_depth)
        throw EvalError("maximum recursion depth exceeded: macro calls nested deeper than " +
                        std::to_string(limits_.max_call_depth) + " (in '" + name + "')");
    auto scope = child_of(closure);
    const size_t n = def.params.size();
    std::vector<bool> given(n, false);
    Array varargs;
    for (size_t i = 0; i < args.positional.size(); ++i) {
        if (i < n) {
            scope->vars[def.params[i]] = args.positional[i];
            given[i] = true;
        } else {
            varargs.push_back(args.positional[i]);
        }
    }
    Value kwargs = Value::dict();
    for (auto& [key, value] : args.keyword) {
        size_t p = 0;
        while (p < n && def.params[p] != key) ++p;
        if (p == n) {
            if (key == "caller")
                scope->vars["caller"] = value;
            else
                kwargs.as_dict().set(key, value);
            continue;
        }
        if (given[p]) throw EvalError("macro '" + name + "' got multiple values for argument '" + key + "'");
        scope->vars[key] = value;
        given[p] = true;
    }
    struct Depth {
        int& d;
        explicit Depth(int& depth) : d(depth) { ++d; }
        ~Depth() { --d; }
    } depth(call_depth_);
    ScopeSwap swap(*this, scope);
    for (size_t i = 0; i < n; ++i) {
        if (given[i]) continue;
        scope->vars[def.params[i]] = def.defaults[i]
                                         ? eval(*def.defaults[i])
                                         : Value::undefined("parameter '" + def.params[i] + "' was not provided");
    }
    scope->vars["varargs"] = Value::tuple(std::move(varargs));
    scope->vars["kwargs"] = kwargs;
    return Value::string(render_block(def.bodies[0]));
}

void Renderer::exec_call_block(const Stmt& s, std::string& out) {
    std::weak_ptr<Scope> closure = scope_;
    const Stmt* d = &s;
    const Value caller = Value::function("caller", [d, closure](Renderer& r, CallArgs& args) {
        const std::shared_ptr<Scope> scope = closure.lock();
        return r.call_macro(*d, scope ? scope : r.root_, args, "caller");
    });
    append(out, eval_call(*s.expr, &caller).str());
}

// ---- expressions ----

Value Renderer::call(const Value& callee, CallArgs& args) {
    if (callee.is_function()) {
        step();
        return callee.as_function().call(*this, args);
    }
    if (callee.is_undefined()) throw EvalError(callee.undefined_message());
    throw EvalError(std::string("'") + callee.type_name() + "' object is not callable");
}

Value Renderer::apply_filter(std::string_view name, const Value& input, CallArgs& args) {
    const FilterFn f = find_filter(name);
    if (!f) throw EvalError("no filter named '" + std::string(name) + "'");
    step();
    return f(*this, input, args);
}

bool Renderer::apply_test(std::string_view name, const Value& input, CallArgs& args) {
    const TestFn t = find_test(name);
    if (!t) throw EvalError("no test named '" + std::string(name) + "'");
    step();
    return t(*this, input, args);
}

void Renderer::collect_args(const Expr& e, size_t first, CallArgs& args) {
    for (size_t i = first; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i]));
    if (e.star) {
        const Array more = eval(*e.star).iterate();
        args.positional.insert(args.positional.end(), more.begin(), more.end());
    }
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
    if (e.star_star) {
        const Value d = eval(*e.star_star);
        if (!d.is_dict()) throw EvalError(std::string("argument after ** must be a mapping, not ") + d.type_name());
        for (const auto& [k, v] : d.as_dict().entries()) {
            if (!k.is_string()) throw EvalError("keywords must be strings");
            args.keyword.emplace_back(k.as_string(), v);
        }
    }
}

Value Renderer::eval_call(const Expr& e, const Value* caller) {
    const Value callee = eval(*e.args[0]);
    CallArgs args;
    collect_args(e, 1, args);
    if (caller) args.keyword.emplace_back("caller", *caller);
    return call(callee, args);
}

Value Renderer::eval(const Expr& e) {
    step();
    try {
        return eval_expr(e);
    } catch (const EvalError& err) {
        throw Error(program_.source.where(e.offset) + err.what());
    }
}

Value Renderer::eval_expr(const Expr& e) {
    switch (e.kind) {
        case ExprKind::Literal:
            return e.literal;
        case ExprKind::Name:
            return lookup(e.name);
        case ExprKind::List:
        case ExprKind::Tuple: {
            Array items;
            items.reserve(e.args.size());
            for (const auto& a : e.args) items.push_back(eval(*a));
            return e.kind == ExprKind::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
        }
        case ExprKind::Dict: {
            Value d = Value::dict();
            for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
                Value key = eval(*e.args[i]);
                d.as_dict().set(key, eval(*e.args[i + 1]));
            }
            return d;
        }
        case ExprKind::Attr:
            return get_attribute(eval(*e.args[0]), e.name);
        case ExprKind::Item: {
            const Value obj = eval(*e.args[0]);
            return get_item(obj, eval(*e.args[1]));
        }
        case ExprKind::Slice: {
            const Value obj = eval(*e.args[0]);
            auto bound = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
            const Value start = bound(1), stop = bound(2), step_v = bound(3);
            return slice(obj, start, stop, step_v);
        }
        case ExprKind::Call:
            return eval_call(e, nullptr);
        case ExprKind::Filter: {
            const Value input = eval(*e.args[0]);
            CallArgs args;
            collect_args(e, 1, args);
            return e.filter(*this, input, args);
        }
        case ExprKind::Test: {
            const Value input = eval(*e.args[0]);
            CallArgs args;
            collect_args(e, 1, args);
            return Value::boolean(e.test(*this, input, args) != e.negated);
        }
        case ExprKind::Unary: {
            const Value v = eval(*e.args[0]);
            if (e.name == "not") return Value::boolean(!v.truthy());
            return unary_op(e.name, v);
        }
        case ExprKind::Binary: {
            const Value a = eval(*e.args[0]);
            return binary_op(e.name, a, eval(*e.args[1]));
        }
        case ExprKind::Compare: {
            Value left = eval(*e.args[0]);
            for (size_t i = 0; i < e.ops.size(); ++i) {
                Value right = eval(*e.args[i + 1]);
                if (!compare_op(e.ops[i], left, right)) return Value::boolean(false);
                left = std::move(right);
            }
            return Value::boolean(true);
        }
        case ExprKind::And: {
            Value a = eval(*e.args[0]);
            return a.truthy() ? eval(*e.args[1]) : a;
        }
        case ExprKind::Or: {
            Value a = eval(*e.args[0]);
            return a.truthy() ? a : eval(*e.args[1]);
        }
        case ExprKind::Conditional:
            if (eval(*e.args[1]).truthy()) return eval(*e.args[0]);
            return e.args[2] ? eval(*e.args[2])
                             : Value::undefined(
                                   "the inline if-expression evaluated to false and no else section was defined");
    }
    return Value();
}

// ---- the template object ----

ChatTemplate::ChatTemplate(std::string_view source) : program_(parse_template(source)) {}
ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const Value& variables, const RenderLimits& limits) const {
    Renderer renderer(*program_, limits);
    try {
        return renderer.render(variables);
    } catch (const EvalError& e) {  // one raised outside any statement (none should be)
        throw Error(e.what());
    }
}

}  // namespace tessera::chat
