// The JSON reader and writer of runtime/chat: strictness, positions in errors, Unicode,
// limits, and Python's json.dumps layout on output.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>

#include "runtime/chat/json.h"
#include "tensor/error.h"

namespace chat = tessera::chat;
namespace json = tessera::chat::json;

namespace {

std::string error_of(std::string_view text) {
    try {
        json::parse(text);
    } catch (const tessera::Error& e) {
        return e.what();
    }
    return "";
}

// Parse then dump with Python's defaults: a compact way to check what was read.
std::string round_trip(std::string_view text) { return json::dump(json::parse(text)); }

}  // namespace

TEST_CASE("JSON values read as template values") {
    CHECK(round_trip("null") == "null");
    CHECK(round_trip(" true ") == "true");
    CHECK(round_trip("false") == "false");
    CHECK(round_trip("0") == "0");
    CHECK(round_trip("-12") == "-12");
    CHECK(round_trip("9223372036854775807") == "9223372036854775807");
    CHECK(round_trip("1.5") == "1.5");
    CHECK(round_trip("1.0") == "1.0");
    CHECK(round_trip("-0.0") == "-0.0");
    CHECK(round_trip("1e2") == "100.0");
    CHECK(round_trip("2.5E-3") == "0.0025");
    CHECK(round_trip("1e400") == "Infinity");
    CHECK(round_trip("99999999999999999999") == "1e+20");  // too big for int64: a float
    CHECK(round_trip("NaN") == "NaN");
    CHECK(round_trip("-Infinity") == "-Infinity");
    CHECK(round_trip(R"("a\"b\\c\/d\n\t\r\b\f")") == R"("a\"b\\c/d\n\t\r\b\f")");
    CHECK(round_trip(R"([1, [], {}, [null]])") == "[1, [], {}, [null]]");

    const chat::Value v = json::parse(R"({"n": 3, "f": 0.5, "s": "x", "l": [true], "d": {}})");
    REQUIRE(v.is_dict());
    CHECK(v.as_dict().find("n")->is_int());
    CHECK(v.as_dict().find("f")->is_float());
    CHECK(v.as_dict().find("s")->is_string());
    CHECK(v.as_dict().find("l")->is_list());
    CHECK(v.as_dict().find("d")->is_dict());
}

TEST_CASE("JSON objects keep their key order") {
    CHECK(round_trip(R"({"z": 1, "a": 2, "m": {"y": 1, "b": 2}})") == R"({"z": 1, "a": 2, "m": {"y": 1, "b": 2}})");
    // A repeated key keeps its first place and takes its last value, as Python's dict does.
    CHECK(round_trip(R"({"a": 1, "b": 2, "a": 3})") == R"({"a": 3, "b": 2})");
}

TEST_CASE("JSON Unicode escapes, surrogate pairs and raw UTF-8") {
    CHECK(json::parse(R"("\u00e9")").as_string() == "\xc3\xa9");
    CHECK(json::parse(R"("\u20AC")").as_string() == "\xe2\x82\xac");
    CHECK(json::parse(R"("\ud83d\ude00")").as_string() == "\xf0\x9f\x98\x80");
    CHECK(json::parse(R"("\u0000x")").as_string() == std::string("\0x", 2));
    CHECK(json::parse("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"").as_string() == "caf\xc3\xa9 \xf0\x9f\x98\x80");
    CHECK(json::parse("\xef\xbb\xbf[1]").is_list());  // a byte order mark is skipped
}

TEST_CASE("malformed JSON is an error with its line and column") {
    CHECK(error_of("") == "JSON line 1, column 1: expected a value, found end of input");
    CHECK(error_of("{\n  \"a\": 1,\n}") == "JSON line 3, column 1: expected a string key in an object, found '}'");
    CHECK(error_of("[1 2]") == "JSON line 1, column 4: expected ',' or ']' in an array, found '2'");
    CHECK(error_of(R"({"a" 1})") == "JSON line 1, column 6: expected ':' after an object key, found '1'");
    CHECK(error_of("[1,]") == "JSON line 1, column 4: expected a value, found ']'");
    CHECK(error_of("\"abc") == "JSON line 1, column 1: unterminated string");
    CHECK(error_of("\"a\nb\"") == "JSON line 1, column 3: control character (byte 0x0a) inside a string; escape it");
    CHECK(error_of(R"("\q")") == "JSON line 1, column 2: invalid escape '\\q' in a string");
    CHECK(error_of(R"("\u12zz")") == "JSON line 1, column 6: invalid hex digit in a \\u escape");
    CHECK(error_of(R"("\u12")") == "JSON line 1, column 4: truncated \\u escape");
    CHECK(error_of(R"("\ud83d")") == "JSON line 1, column 2: unpaired surrogate in a \\u escape");
    CHECK(error_of(R"("\ude00")") == "JSON line 1, column 2: unpaired surrogate in a \\u escape");
    CHECK(error_of("012") == "JSON line 1, column 1: a number may not start with 0");
    CHECK(error_of("1.") == "JSON line 1, column 3: expected a digit after the decimal point, found end of input");
    CHECK(error_of("-") == "JSON line 1, column 2: expected a digit in a number, found end of input");
    CHECK(error_of("tru") == "JSON line 1, column 1: expected a value, found 't'");
    CHECK(error_of("{} x") == "JSON line 1, column 4: unexpected content after the JSON value");
    CHECK(error_of("\"\xff\"") == "JSON line 1, column 2: invalid UTF-8 inside a string");
    CHECK(error_of("\"\xc3\xa9\" \xc3\xa9") == "JSON line 1, column 5: unexpected content after the JSON value");
}

TEST_CASE("JSON nesting is limited") {
    const std::string ok = std::string(json::kMaxDepth, '[') + std::string(json::kMaxDepth, ']');
    CHECK(json::parse(ok).is_list());
    const std::string deep = std::string(json::kMaxDepth + 1, '[') + std::string(json::kMaxDepth + 1, ']');
    CHECK(error_of(deep).find("nesting deeper than 256 levels") != std::string::npos);
    CHECK(error_of(std::string(1000000, '[')).find("nesting deeper") != std::string::npos);
}

TEST_CASE("JSON writer follows Python's json.dumps") {
    const chat::Value v =
        json::parse(R"({"name": "caf\u00e9", "args": {"a": [1, 2.0, null, true]}, "e": [], "o": {}})");
    CHECK(json::dump(v) == R"({"name": "café", "args": {"a": [1, 2.0, null, true]}, "e": [], "o": {}})");
    json::DumpOptions indented;
    indented.indent = "  ";
    CHECK(json::dump(v, indented) ==
          "{\n  \"name\": \"café\",\n  \"args\": {\n    \"a\": [\n      1,\n      2.0,\n      null,\n      true\n"
          "    ]\n  },\n  \"e\": [],\n  \"o\": {}\n}");
    json::DumpOptions ascii;
    ascii.ensure_ascii = true;
    CHECK(json::dump(json::parse(R"("é😀")"), ascii) == R"("\u00e9\ud83d\ude00")");
    json::DumpOptions sorted;
    sorted.sort_keys = true;
    sorted.item_separator = ",";
    sorted.key_separator = ":";
    CHECK(json::dump(json::parse(R"({"b": 1, "a": {"d": 1, "c": 2}})"), sorted) == R"({"a":{"c":2,"d":1},"b":1})");
    CHECK(json::dump(json::parse(R"("\u0001\u001f\u007f")")) == R"("\u0001\u001f)"
                                                                "\x7f\"");
    CHECK(json::dump(chat::Value::tuple({chat::Value::integer(1), chat::Value::string("x")})) == R"([1, "x"])");
    CHECK(json::dump(chat::Value::number(1e16)) == "1e+16");
    CHECK(json::dump(chat::Value::number(0.1)) == "0.1");
    CHECK_THROWS_WITH_AS(json::dump(chat::Value()), "Object of type Undefined is not JSON serializable",
                         chat::EvalError);
}

TEST_CASE("the JSON reader survives random and mutated input") {
    std::mt19937 rng(1234);
    const std::string seed =
        R"({"messages": [{"role": "user", "content": "h\u00e9llo \ud83d\ude00"}], "n": -1.5e3, "ok": [true, false, null]})";
    int parsed = 0, rejected = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string text = seed;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            const size_t at = rng() % text.size();
            switch (rng() % 3) {
                case 0:
                    text[at] = static_cast<char>(rng() % 256);
                    break;
                case 1:
                    text.erase(at, 1 + rng() % 3);
                    break;
                default:
                    text.insert(at, 1, "{}[]\",:\\u0"[rng() % 11]);
            }
            if (text.empty()) text.push_back('x');
        }
        try {
            json::parse(text);
            ++parsed;
        } catch (const tessera::Error&) {
            ++rejected;
        }
    }
    CHECK(parsed + rejected == 3000);
    CHECK(rejected > 0);
}
