// Values of the chat-template language: Python's None, bool, int, float, str, list,
// tuple and dict, plus Jinja's undefined, namespaces, one-shot iterators (what Python's
// generators are to a template) and callables. Lists, dicts and namespaces are shared
// by reference, as in Python; strings are immutable and shared.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tessera::chat {

class Value;
class Dict;
class Renderer;
using Array = std::vector<Value>;

// A failure while evaluating (a type error, an undefined value used, a bad argument).
// The evaluator adds the template position before it leaves the renderer.
class EvalError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Arguments of a call: positional, then keyword (in source order).
struct CallArgs {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> keyword;
};

struct Function;

// The state of a one-shot iterator: iterating it consumes it.
struct IteratorState {
    Array items;
    size_t pos = 0;
    std::string kind;  // what Python would call it, for messages ("generator")
};

class Value {
public:
    enum class Type : uint8_t {
        Undefined,
        None,
        Bool,
        Int,
        Float,
        String,
        List,
        Tuple,
        Dict,
        Namespace,
        Iterator,
        Function
    };

    Value() = default;  // undefined
    static Value undefined(std::string message = {});
    static Value none();
    static Value boolean(bool b);
    static Value integer(int64_t i);
    static Value number(double d);
    static Value string(std::string s);
    // A string marked safe for HTML (markupsafe's Markup): what |safe and |escape return.
    // Python's `+` with a Markup escapes the other operand.
    static Value markup(std::string s);
    static Value list(Array items = {});
    static Value tuple(Array items);
    static Value dict();
    static Value dict(std::shared_ptr<Dict> d);
    static Value namespace_object();
    static Value iterator(Array items, std::string kind = "generator");
    // `receiver` is the object a bound method holds (str.strip's string, list.append's list).
    static Value function(std::string name, std::function<Value(Renderer&, CallArgs&)> call);
    static Value function(std::string name, std::function<Value(Renderer&, CallArgs&)> call, Value receiver);

    Type type() const { return type_; }
    bool is_undefined() const { return type_ == Type::Undefined; }
    bool is_none() const { return type_ == Type::None; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_int() const { return type_ == Type::Int; }
    bool is_float() const { return type_ == Type::Float; }
    bool is_number() const { return type_ == Type::Int || type_ == Type::Float || type_ == Type::Bool; }
    bool is_string() const { return type_ == Type::String; }
    bool is_markup() const { return type_ == Type::String && markup_; }
    bool is_list() const { return type_ == Type::List; }
    bool is_tuple() const { return type_ == Type::Tuple; }
    bool is_sequence() const { return type_ == Type::List || type_ == Type::Tuple; }
    bool is_dict() const { return type_ == Type::Dict; }
    bool is_namespace() const { return type_ == Type::Namespace; }
    bool is_mapping_like() const { return type_ == Type::Dict || type_ == Type::Namespace; }
    bool is_iterator() const { return type_ == Type::Iterator; }
    bool is_function() const { return type_ == Type::Function; }

    bool as_bool() const { return b_; }
    int64_t as_int() const { return type_ == Type::Bool ? (b_ ? 1 : 0) : i_; }  // Int or Bool
    double as_double() const;                                                   // any number
    const std::string& as_string() const { return *static_cast<const std::string*>(ptr_.get()); }
    Array& items() const { return *static_cast<Array*>(ptr_.get()); }  // List or Tuple
    Dict& as_dict() const { return *static_cast<Dict*>(ptr_.get()); }  // Dict or Namespace
    IteratorState& as_iterator() const { return *static_cast<IteratorState*>(ptr_.get()); }
    const Function& as_function() const { return *static_cast<const Function*>(ptr_.get()); }
    const void* identity() const { return ptr_.get(); }  // Python's `is` for shared objects
    // Why an undefined value is undefined, as Jinja says it ("'x' is undefined").
    std::string undefined_message() const;

    // Python's type name ("str", "int", "NoneType", "dict", ...).
    const char* type_name() const;
    // Python's truthiness (undefined is false; an iterator is always true).
    bool truthy() const;
    // str(value) as a template prints it; repr(value) as Python writes it in containers.
    std::string str() const;
    std::string repr() const;
    // Python's ==. Numbers compare by value across int, float and bool.
    bool equals(const Value& other) const;
    // Python's <, for numbers, strings and sequences; an EvalError for other types.
    bool less(const Value& other) const;
    // A key equal for values Python hashes equal (1, 1.0 and True); EvalError if unhashable.
    std::string hash_key() const;
    // The items of an iterable value (consuming an iterator): a string's characters, a
    // dict's keys; EvalError if the value is not iterable. Undefined is empty.
    Array iterate() const;

private:
    Type type_ = Type::Undefined;
    bool markup_ = false;
    union {
        bool b_;
        int64_t i_ = 0;
        double f_;
    };
    std::shared_ptr<void> ptr_;  // string, array, Dict, IteratorState or Function by type_
};

// A callable: a global (range, namespace, ...), a bound method, a macro or `caller`.
struct Function {
    std::string name;
    std::function<Value(Renderer&, CallArgs&)> call;
    Value receiver;  // a bound method's object (undefined otherwise)
};

// Whether `v` holds (through lists, tuples, dicts, namespaces, iterators and bound
// methods) the object `target`. Containers must never hold themselves: shared
// ownership would leak them. EvalError past the nesting limit.
bool holds(const Value& v, const void* target);

// An insertion-ordered dict (Python 3.7+ semantics: re-setting a key keeps its place).
class Dict {
public:
    const Value* find(const Value& key) const;
    const Value* find(std::string_view key) const;
    void set(const Value& key, Value value);
    void set(std::string_view key, Value value) { set(Value::string(std::string(key)), std::move(value)); }
    bool erase(const Value& key);
    void set_at(size_t i, Value value) { entries_[i].second = std::move(value); }  // i < size()
    size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }

private:
    std::vector<std::pair<Value, Value>> entries_;
    std::unordered_map<std::string, size_t> index_;  // hash_key -> position in entries_
};

// Python's type(...).__name__ for messages, and how Jinja names an object in its
// undefined messages ("dict object", "None").
std::string object_description(const Value& v);

}  // namespace tessera::chat
