// Chat templates (the Jinja2 subset that models ship in `tokenizer.chat_template`):
// parse once, render per conversation. Rendering matches Python's jinja2 as Hugging
// Face's apply_chat_template configures it (trim_blocks, lstrip_blocks, loop controls,
// raise_exception, strftime_now and a tojson that keeps non-ASCII characters).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "runtime/chat/template_value.h"
#include "tensor/error.h"

namespace tessera::chat {

struct Program;

// What `raise_exception(message)` throws; what() is the template's message, as is.
class TemplateRaised : public Error {
public:
    explicit TemplateRaised(const std::string& message) : Error(message, ErrorKind::InvalidArgument) {}
};

// Bounds that keep a hostile template from running away.
struct RenderLimits {
    size_t max_output_bytes = size_t{32} << 20;  // of the rendered text (one string: 32 MiB)
    uint64_t max_steps = 5'000'000;              // statements, expressions and loop items
    int max_call_depth = 64;                     // nested macro calls
};

class ChatTemplate {
public:
    // Throws tessera::Error ("template line L, column C: ...") on a syntax error or an
    // unknown tag, filter or test.
    explicit ChatTemplate(std::string_view source);
    ~ChatTemplate();
    ChatTemplate(ChatTemplate&&) noexcept;
    ChatTemplate& operator=(ChatTemplate&&) noexcept;

    // Renders with each key of `variables` (a dict) as a top-level name. Throws
    // TemplateRaised for raise_exception(), tessera::Error with the position for any
    // other failure. A template may be rendered from several threads at once. Lists and
    // dicts are shared, as in Python: a template that calls append() or update() on them
    // changes `variables`.
    std::string render(const Value& variables, const RenderLimits& limits = {}) const;

private:
    std::unique_ptr<Program> program_;
};

}  // namespace tessera::chat
