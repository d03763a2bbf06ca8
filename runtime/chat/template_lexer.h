// Template source to tokens: text, tag delimiters and the expression tokens inside
// tags. Whitespace control is applied here, as Jinja2 does it with trim_blocks and
// lstrip_blocks on (Hugging Face's settings): `-` strips all whitespace on that side,
// `+` keeps it, a block or comment tag eats the newline after it and the indentation
// before it on its own line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::chat {

enum class TokenKind : uint8_t {
    Text,        // template data (raw blocks included)
    VarBegin,    // {{
    VarEnd,      // }}
    BlockBegin,  // {%
    BlockEnd,    // %}
    Name,
    String,  // text holds the decoded literal
    Integer,
    Float,
    Operator,  // text holds the operator ("+", "//", "(", ...)
    End,       // end of the template
};

struct Token {
    TokenKind kind;
    uint32_t offset;  // in the normalized source
    std::string text;
    int64_t integer = 0;
    double number = 0;
};

// The normalized template source (newlines as "\n", one trailing newline dropped, as
// Jinja2 does by default) and the way from a byte offset to a line and column.
class Source {
public:
    explicit Source(std::string_view raw);
    const std::string& text() const { return text_; }
    // "line L, column C" for the position of `offset`, and "template line L, column C: ".
    std::string position(size_t offset) const;
    std::string where(size_t offset) const { return "template " + position(offset) + ": "; }
    int line(size_t offset) const;

private:
    std::string text_;
    std::vector<size_t> line_starts_;
};

// Throws tessera::Error naming the line and column on a malformed tag, literal or
// comment.
std::vector<Token> tokenize(const Source& source);

}  // namespace tessera::chat
