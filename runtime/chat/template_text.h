// UTF-8 and Python `str` operations for the chat-template language. Templates see
// strings as sequences of code points (length, slicing, case mapping), as Python does;
// we store UTF-8 and decode where a code-point view matters.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::chat::text {

// Decodes one code point at s[pos] and advances pos. Invalid bytes decode as U+FFFD
// and advance by one byte, so the loop always makes progress.
char32_t decode_utf8(std::string_view s, size_t& pos);
void append_utf8(std::string& out, char32_t cp);
std::u32string to_u32(std::string_view s);
std::string to_utf8(std::u32string_view s);
// Whether s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view s);
size_t length(std::string_view s);  // in code points

// Python's str.isspace(), and the \s class of Python's re on str.
bool is_space(char32_t c);
// The case mappings Python applies for ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic
// and fullwidth Latin (other scripts are caseless here).
char32_t to_upper(char32_t c);
char32_t to_lower(char32_t c);
bool is_cased(char32_t c);
bool is_alnum(char32_t c);      // letters (cased or CJK/other non-ASCII) and digits
bool is_printable(char32_t c);  // Python's str.isprintable() for one character

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string capitalize(std::string_view s);  // str.capitalize
std::string title(std::string_view s);       // str.title
std::string swapcase(std::string_view s);

// strip/lstrip/rstrip with an optional set of characters (whitespace when absent).
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit): whitespace runs when sep is absent.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
// str.splitlines(keepends) with all of Python's line boundaries.
std::vector<std::string> splitlines(std::string_view s, bool keepends);
// str.replace(old, new, count); count < 0 replaces all.
std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
// str.find / str.rfind in code points (-1 when absent), str.count.
int64_t find(std::string_view s, std::string_view sub, bool reverse);
int64_t count(std::string_view s, std::string_view sub);
std::string center(std::string_view s, int64_t width, char32_t fill);
// markupsafe's escape: & < > " ' as &amp; &lt; &gt; &#34; &#39;.
std::string html_escape(std::string_view s);
// Python's repr() of a str: quotes chosen as Python chooses them, escapes as Python writes.
std::string repr(std::string_view s);
// Python's repr() of a float ("1.0", "1e+16", "0.0001", "1e-05", "inf", "nan").
std::string format_float(double d);
// Joins pieces into one string (also sidesteps a GCC 12 -Wrestrict false positive on
// `"literal" + std::string&&`).
std::string concat(std::initializer_list<std::string_view> pieces);

}  // namespace tessera::chat::text
