// The pre-tokenizer splitters on tricky strings (contractions, digit groups, CJK, emoji,
// newlines, runs of spaces), with expected pieces worked out by hand from each family's
// regular expression, and the Unicode tables they stand on.
#include <doctest/doctest.h>

#include "runtime/vocab/pretokenize.h"
#include "runtime/vocab/unicode.h"

using namespace tessera::vocab;
using Pieces = std::vector<std::string>;

namespace {

Pieces split(std::string_view pre_name, std::string_view text) {
    const PreTokenizer* pre = find_pre_tokenizer(pre_name);
    REQUIRE_MESSAGE(pre != nullptr, "unknown pre-tokenizer " << pre_name);
    return pre_tokenize_to_strings(*pre, text);
}

std::string show(const Pieces& p) {
    std::string s = "[";
    for (size_t i = 0; i < p.size(); ++i) {
        if (i) s += ", ";
        s += "'" + p[i] + "'";
    }
    return s + "]";
}

#define CHECK_SPLIT(pre, text, ...)                                                                       \
    do {                                                                                                  \
        const Pieces got_ = split(pre, text);                                                             \
        const Pieces want_ = __VA_ARGS__;                                                                 \
        CHECK_MESSAGE(got_ == want_,                                                                      \
                      pre << " on '" << text << "': got " << show(got_) << ", expected " << show(want_)); \
    } while (0)

}  // namespace

TEST_CASE("GPT-2 split: contractions, letters, digits, spaces") {
    CHECK_SPLIT("gpt-2", "Hello world", {"Hello", " world"});
    CHECK_SPLIT("gpt-2", "I'm can't they're we've I'll he'd it's",
                {"I", "'m", " can", "'t", " they", "'re", " we", "'ve", " I", "'ll", " he", "'d", " it", "'s"});
    // Case-sensitive contractions: "'S" is punctuation then a letter.
    CHECK_SPLIT("gpt-2", "IT'S", {"IT", "'", "S"});
    CHECK_SPLIT("gpt-2", "12345 678", {"12345", " 678"});
    // \s+(?!\S) leaves the last space of a run to the word after it.
    CHECK_SPLIT("gpt-2", "a   b", {"a", "  ", " b"});
    CHECK_SPLIT("gpt-2", "a  ", {"a", "  "});
    CHECK_SPLIT("gpt-2", "a\n\nb", {"a", "\n", "\n", "b"});
    CHECK_SPLIT("gpt-2", "\n\n", {"\n\n"});
    CHECK_SPLIT("gpt-2", "我想 🦙!", {"我想", " 🦙!"});
    CHECK_SPLIT("gpt-2", "", {});
    // Every name of the family splits the same way.
    for (const char* alias : {"phi-2", "mpt", "olmo", "jais", "roberta-bpe", "jina-v2-es"})
        CHECK_SPLIT(alias, "a   b's 12", {"a", "  ", " b", "'s", " 12"});
}

TEST_CASE("Llama 3 split: case-insensitive contractions, 1-3 digit groups, newline runs") {
    CHECK_SPLIT("llama3", "IT'S ok", {"IT", "'S", " ok"});
    CHECK_SPLIT("llama-bpe", "1234567", {"123", "456", "7"});
    CHECK_SPLIT("llama3", "hello\n\n  world", {"hello", "\n\n", " ", " world"});
    // One non-letter, non-digit character may lead a word.
    CHECK_SPLIT("llama3", ",hello", {",hello"});
    CHECK_SPLIT("llama3", "\tword", {"\tword"});
    CHECK_SPLIT("llama3", "a...\n\nb", {"a", "...\n\n", "b"});
    CHECK_SPLIT("llama3", "x  \n y", {"x", "  \n", " y"});
    CHECK_SPLIT("llama3", "我想在apple工作1314151天～", {"我想在apple工作", "131", "415", "1", "天", "～"});
    CHECK_SPLIT("dbrx", "1234567", {"123", "456", "7"});
}

TEST_CASE("Qwen2 and seed-coder split: single digits") {
    CHECK_SPLIT("qwen2", "1234", {"1", "2", "3", "4"});
    CHECK_SPLIT("qwen2", "abc123 x", {"abc", "1", "2", "3", " x"});
    CHECK_SPLIT("stablelm2", "a.\n", {"a", ".\n"});
    // seed-coder takes no line breaks after punctuation.
    CHECK_SPLIT("seed-coder", "a.\n", {"a", ".", "\n"});
}

TEST_CASE("Tekken and GPT-4o split: case-shaped words") {
    CHECK_SPLIT("tekken", "HelloWorld", {"Hello", "World"});
    CHECK_SPLIT("tekken", "HELLOworld", {"HELLOworld"});
    CHECK_SPLIT("tekken", "ABC def", {"ABC", " def"});
    CHECK_SPLIT("tekken", "foo//bar", {"foo", "//", "bar"});
    CHECK_SPLIT("tekken", "end.\n\nNext", {"end", ".\n\n", "Next"});
    CHECK_SPLIT("tekken", "123", {"1", "2", "3"});
    CHECK_SPLIT("gpt-4o", "I'M here", {"I'M", " here"});
    CHECK_SPLIT("gpt-4o", "don't", {"don't"});
    CHECK_SPLIT("gpt-4o", "12345", {"123", "45"});
    CHECK_SPLIT("llama4", "HelloWorld", {"Hello", "World"});
}

TEST_CASE("DeepSeek splits") {
    CHECK_SPLIT("deepseek-v3", "12345", {"123", "45"});
    CHECK_SPLIT("deepseek-v3", "中文abc", {"中文", "abc"});
    CHECK_SPLIT("deepseek-v3", "(hello)", {"(hello", ")"});
    CHECK_SPLIT("deepseek-v3", "a 1b", {"a", " ", "1", "b"});
    CHECK_SPLIT("deepseek-llm", "Hello 世界 123\n", {"Hello", " ", "世界", " ", "123", "\n"});
    CHECK_SPLIT("deepseek-llm", "x  ", {"x", "  "});
    CHECK_SPLIT("deepseek-coder", "foo_bar(1, 2)", {"foo", "_", "bar", "(", "1", ",", " ", "2", ")"});
}

TEST_CASE("Falcon, default BPE and StarCoder splits") {
    CHECK_SPLIT("falcon", "x=1234+5", {"x", "=", "123", "4", "+", "5"});
    CHECK_SPLIT("default", "a+b 12345", {"a", "+", "b", " ", "123", "45"});
    CHECK_SPLIT("starcoder", "abc123 x", {"abc", "1", "2", "3", " x"});
    CHECK_SPLIT("smollm", "abc123 x", {"abc", "1", "2", "3", " x"});
}

TEST_CASE("BLOOM, Viking and Chameleon splits") {
    CHECK_SPLIT("bloom", "Hello, world. (Yes)", {"Hello", ",", " world", ". (", "Yes", ")"});
    CHECK_SPLIT("poro-chat", "a|b", {"a", "|", "b"});
    CHECK_SPLIT("viking", "abc12 d3", {"abc", "1", "2", " d", "3"});
    CHECK_SPLIT("chameleon", "a,b  c1", {"a", ",", "b", "  ", "c", "1"});
}

TEST_CASE("pieces always cover the text exactly, invalid UTF-8 included") {
    const std::string text = "ab\xff\xfe cd \xe2\x82 12\xc3";
    for (std::string_view name : supported_pre_names()) {
        const Pieces p = split(name, text);
        std::string joined;
        for (const std::string& s : p) {
            CHECK_MESSAGE(!s.empty(), name << " made an empty piece");
            joined += s;
        }
        CHECK_MESSAGE(joined == text, name << " lost or changed bytes");
    }
}

TEST_CASE("unknown pre-tokenizer names are not found") {
    CHECK(find_pre_tokenizer("no-such-pre") == nullptr);
    CHECK(find_pre_tokenizer("") == nullptr);
    CHECK(find_pre_tokenizer("gpt-2") != nullptr);
    CHECK(supported_pre_names().size() >= 40);
}

TEST_CASE("Unicode tables: categories, white space, lower case, NFD") {
    CHECK(std::string(unicode_version()) == "15.0.0");
    CHECK(category('A') == Category::Lu);
    CHECK(category('z') == Category::Ll);
    CHECK(category(0x01C5) == Category::Lt);
    CHECK(category(0x02B0) == Category::Lm);
    CHECK(category(0x6211) == Category::Lo);  // 我
    CHECK(category(0x0301) == Category::Mn);
    CHECK(category(0x0BBE) == Category::Mc);
    CHECK(category('7') == Category::Nd);
    CHECK(category(0x216B) == Category::Nl);  // Ⅻ
    CHECK(category(0x00BD) == Category::No);  // ½
    CHECK(category('_') == Category::Pc);
    CHECK(category(0x1F999) == Category::So);  // 🦙, outside the BMP
    CHECK(category(0x20000) == Category::Lo);  // CJK extension B, a range in UnicodeData.txt
    CHECK(category(0x0378) == Category::Cn);   // unassigned
    CHECK(category(0x200D) == Category::Cf);
    CHECK(is_white_space(0x3000));
    CHECK(is_white_space(0x85));
    CHECK_FALSE(is_white_space(0x200B));  // zero width space is not White_Space
    CHECK((char_flags(0xA0) & kSpace) != 0);
    CHECK((char_flags(0x0301) & kMark) != 0);
    CHECK(to_lower('Q') == 'q');
    CHECK(to_lower(0x03A3) == 0x03C3);  // Σ -> σ
    CHECK(to_lower(0x0410) == 0x0430);  // А -> а
    CHECK(to_lower(0x0100) == 0x0101);  // stride-2 run
    CHECK(to_lower(0x0101) == 0x0101);
    CHECK(to_lower(0x10400) == 0x10428);  // Deseret
    std::vector<uint32_t> out;
    append_lower(0x130, out);
    CHECK(out == std::vector<uint32_t>{'i', 0x307});

    std::vector<uint32_t> nfd;
    to_nfd({0xE9}, nfd);  // é
    CHECK(nfd == std::vector<uint32_t>{'e', 0x301});
    to_nfd({0xD55C}, nfd);  // 한: Hangul, algorithmic
    CHECK(nfd == std::vector<uint32_t>{0x1112, 0x1161, 0x11AB});
    to_nfd({0x1E69}, nfd);  // ṩ: recursive decomposition
    CHECK(nfd == std::vector<uint32_t>{'s', 0x323, 0x307});
    to_nfd({'a', 0x301, 0x316}, nfd);  // canonical order: class 220 before class 230
    CHECK(nfd == std::vector<uint32_t>{'a', 0x316, 0x301});
}

TEST_CASE("UTF-8 decoding turns every invalid byte into a marker of its own") {
    auto cps = decode_utf8("a\xC0\x80\xED\xA0\x80\xF4\x90\x80\x80\xE2\x82");
    REQUIRE(cps.size() == 12);
    CHECK(cps[0] == 'a');
    for (size_t i = 1; i < cps.size(); ++i) CHECK(is_invalid_byte(cps[i]));
    CHECK(cps[1] == kInvalidByteBase + 0xC0);
    CHECK(decode_utf8("\xF0\x9F\xA6\x99") == std::vector<uint32_t>{0x1F999});
    std::string s;
    for (uint32_t cp : decode_utf8("x\xff\xF0\x9F\xA6\x99")) utf8_append(cp, s);
    CHECK(s == "x\xff\xF0\x9F\xA6\x99");
}
