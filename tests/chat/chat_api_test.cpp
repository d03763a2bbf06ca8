// The chat-template C API: rendering from structs and from JSON, status codes and
// messages, and every shared real-template case through tessera_chat_render_json.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tessera.h"
#include "tests/test_support.h"

namespace {

const char* kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

std::string slurp(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// Renders through the JSON entry point; returns the status and fills `text` (output or error).
tessera_status render_json(const char* tmpl, const char* request, std::string& text) {
    char* out = nullptr;
    const tessera_status st = tessera_chat_render_json(tmpl, request, &out);
    if (st == TESSERA_OK) {
        REQUIRE(out != nullptr);
        text = out;
        tessera_free(out);
    } else {
        CHECK(out == nullptr);
        text = tessera_last_error();
    }
    return st;
}

}  // namespace

TEST_CASE("tessera_chat_render renders messages from structs") {
    const tessera_chat_message messages[] = {{"system", "Be brief."}, {"user", "Hi \xc3\xa9"}};
    char* out = nullptr;
    REQUIRE(tessera_chat_render(kChatml, messages, 2, 1, "<s>", "</s>", &out) == TESSERA_OK);
    CHECK(std::string(out) ==
          "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi \xc3\xa9<|im_end|>\n<|im_start|>assistant\n");
    tessera_free(out);

    out = nullptr;
    REQUIRE(tessera_chat_render(
                "{{ bos_token }}|{{ eos_token is defined }}|{{ messages|length }}|{{ add_generation_prompt }}",
                messages, 0, 0, "<s>", nullptr, &out) == TESSERA_OK);
    CHECK(std::string(out) == "<s>|False|0|False");  // a NULL token is left undefined
    tessera_free(out);

    const tessera_chat_message null_content[] = {{"user", nullptr}};
    out = nullptr;
    REQUIRE(tessera_chat_render("{{ messages[0].content is none }}", null_content, 1, 0, nullptr, nullptr, &out) ==
            TESSERA_OK);
    CHECK(std::string(out) == "True");
    tessera_free(out);
}

TEST_CASE("tessera_chat_render_json takes every top-level key as a variable") {
    std::string text;
    REQUIRE(render_json("{{ tools|length }} {{ date_string }} {{ custom.x }}",
                        R"({"tools": [{"type": "function"}], "date_string": "1 Jan 2030", "custom": {"x": [1]}})",
                        text) == TESSERA_OK);
    CHECK(text == "1 1 Jan 2030 [1]");

    char* out = nullptr;
    REQUIRE(tessera_chat_render_json_defaults("{{ bos_token }}{{ eos_token }}", R"({"bos_token": "<b>"})",
                                              R"({"bos_token": "<default>", "eos_token": "</e>"})",
                                              &out) == TESSERA_OK);
    CHECK(std::string(out) == "<b></e>");
    tessera_free(out);
}

TEST_CASE("chat API statuses and messages") {
    std::string text;
    CHECK(render_json("{{ raise_exception('Roles must alternate') }}", "{}", text) == TESSERA_ERROR_TEMPLATE_RAISED);
    CHECK(text == "Roles must alternate");
    CHECK(std::string(tessera_status_name(TESSERA_ERROR_TEMPLATE_RAISED)) == "template raised an exception");

    CHECK(render_json("line\n{% if %}", "{}", text) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(text.find("template line 2") != std::string::npos);
    CHECK(render_json("{{ 1 + 'a' }}", "{}", text) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(text.find("template line 1, column 6") != std::string::npos);
    CHECK(render_json("{{ x }}", "{\"x\": }", text) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(text.find("JSON line 1, column 7") != std::string::npos);
    CHECK(render_json("{{ x }}", "[1, 2]", text) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(text.find("must be a JSON object") != std::string::npos);

    char* out = reinterpret_cast<char*>(1);
    CHECK(tessera_chat_render_json(nullptr, "{}", &out) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(out == nullptr);
    CHECK(tessera_chat_render_json("x", nullptr, &out) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_chat_render_json("x", "{}", nullptr) == TESSERA_ERROR_INVALID_ARGUMENT);
    CHECK(tessera_chat_render("x", nullptr, 1, 0, nullptr, nullptr, &out) == TESSERA_ERROR_INVALID_ARGUMENT);
    tessera_free(nullptr);
}

TEST_CASE("the shared real templates render exactly as Python's jinja2 does") {
    const auto data = tessera::test::test_data_dir();
    if (!data || !std::filesystem::is_directory(*data / "templates" / "expected")) {
        tessera::test::skip_because("shared template cases not found (set TESSERA_TEST_DATA)");
        return;
    }
    const std::filesystem::path dir = *data / "templates";
    int cases = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir / "expected")) {
        const std::string file = entry.path().filename().string();
        const std::string suffix = ".request.json";
        if (file.size() <= suffix.size() || file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        const std::string stem = file.substr(0, file.size() - suffix.size());  // NAME.CONV
        const std::string name = stem.substr(0, stem.rfind('.'));
        CAPTURE(stem);
        const std::string tmpl = slurp(dir / (name + ".jinja"));
        std::string text;
        const tessera_status st = render_json(tmpl.c_str(), slurp(entry.path()).c_str(), text);
        const auto expected = dir / "expected" / (stem + ".expected");
        if (std::filesystem::exists(expected)) {
            CHECK(st == TESSERA_OK);
            CHECK(text == slurp(expected));
        } else {
            const std::string message = slurp(dir / "expected" / (stem + ".error"));
            CHECK(st != TESSERA_OK);
            CHECK(text.find(message) != std::string::npos);
            if (st == TESSERA_ERROR_TEMPLATE_RAISED) CHECK(text == message);
        }
        ++cases;
    }
    CHECK(cases >= 21);
}
