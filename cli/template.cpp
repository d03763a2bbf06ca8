// `tessera template (TEMPLATE.jinja | -m MODEL.gguf) < REQUEST.json`: renders a chat
// template with the variables of a JSON request and prints exactly the rendered text.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kTemplateHelp =
    "usage: tessera template (TEMPLATE.jinja | -m MODEL.gguf) < REQUEST.json\n"
    "\n"
    "Renders a chat template (Jinja2, as Hugging Face's apply_chat_template renders it)\n"
    "with the variables of the JSON object read from standard input: messages,\n"
    "add_generation_prompt, bos_token, eos_token, tools, date_string and any other\n"
    "top-level key. Prints the rendered text exactly, with no newline added.\n"
    "\n"
    "With -m, the template is the model's tokenizer.chat_template; bos_token and\n"
    "eos_token default to the model's BOS and EOS token texts.\n"
    "\n"
    "Exit status 0 on success; 1 with one line 'error: ...' when the template raises\n"
    "(the line is 'error: ' and its message) or fails; 2 on a usage error.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE  take the template from a GGUF model\n"
    "  -h, --help        show this help\n";

int usage_error(const char* what) {
    std::fprintf(stderr, "error: %s\n%s", what, kTemplateHelp);
    return 2;
}

bool read_stream(std::FILE* f, std::string& out) {
    char buf[65536];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    return !std::ferror(f);
}

bool read_file(const std::string& path, std::string& out) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    const bool ok = read_stream(f, out);
    std::fclose(f);
    return ok;
}

// Appends `s` as a JSON string (with quotes); bytes >= 0x80 pass through as they are.
void append_json_string(std::string& out, const char* s, size_t n) {
    out += '"';
    for (size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            out += esc;
        } else {
            out += static_cast<char>(c);
        }
    }
    out += '"';
}

// The text of token `key`'s id in the model's vocabulary, as a JSON member; "" if absent.
std::string token_member(const tessera_gguf* g, const char* name, const char* id_key) {
    const int64_t id_at = tessera_gguf_find_key(g, id_key);
    const int64_t tokens_at = tessera_gguf_find_key(g, "tokenizer.ggml.tokens");
    if (id_at < 0 || tokens_at < 0) return "";
    uint64_t id = 0;
    const char* data = nullptr;
    size_t len = 0;
    if (tessera_gguf_value_uint(tessera_gguf_kv_value(g, id_at), &id) != TESSERA_OK ||
        tessera_gguf_array_string(tessera_gguf_kv_value(g, tokens_at), id, &data, &len) != TESSERA_OK)
        return "";
    std::string member = "\"";
    member += name;
    member += "\": ";
    append_json_string(member, data, len);
    return member;
}

// Reads the model's chat template and the defaults for bos_token/eos_token.
bool load_model_template(const std::string& path, std::string& tmpl, std::string& defaults) {
    tessera_gguf* g = nullptr;
    if (tessera_gguf_open(path.c_str(), &g) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return false;
    }
    const int64_t at = tessera_gguf_find_key(g, "tokenizer.chat_template");
    const char* data = nullptr;
    size_t len = 0;
    if (at < 0 || tessera_gguf_value_string(tessera_gguf_kv_value(g, at), &data, &len) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s has no tokenizer.chat_template string\n", path.c_str());
        tessera_gguf_close(g);
        return false;
    }
    tmpl.assign(data, len);
    defaults.clear();
    defaults += '{';
    for (const std::string& member : {token_member(g, "bos_token", "tokenizer.ggml.bos_token_id"),
                                      token_member(g, "eos_token", "tokenizer.ggml.eos_token_id")}) {
        if (member.empty()) continue;
        if (defaults.size() > 1) defaults += ", ";
        defaults += member;
    }
    defaults += "}";
    tessera_gguf_close(g);
    return true;
}

}  // namespace

int cmd_template(int argc, char** argv) {
    std::string template_path, model_path;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::fputs(kTemplateHelp, stdout);
            return 0;
        }
        if (!std::strcmp(a, "-m") || !std::strcmp(a, "--model")) {
            if (i + 1 >= argc) return usage_error("-m needs a GGUF file");
            if (!model_path.empty()) return usage_error("-m given twice");
            model_path = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error((std::string("unknown option '") + a + "'").c_str());
        } else {
            if (!template_path.empty()) return usage_error("more than one template given");
            template_path = a;
        }
    }
    if (template_path.empty() == model_path.empty()) return usage_error("give either a template file or -m MODEL.gguf");

    std::string tmpl, defaults;
    if (!model_path.empty()) {
        if (!load_model_template(model_path, tmpl, defaults)) return 1;
    } else if (!read_file(template_path, tmpl)) {
        std::fprintf(stderr, "error: cannot read %s: %s\n", template_path.c_str(), std::strerror(errno));
        return 1;
    }
    if (tmpl.find('\0') != std::string::npos) {
        std::fprintf(stderr, "error: the template contains a NUL byte\n");
        return 1;
    }
    std::string request;
    if (!read_stream(stdin, request)) {
        std::fprintf(stderr, "error: cannot read the request from standard input\n");
        return 1;
    }

    char* out = nullptr;
    const tessera_status st = tessera_chat_render_json_defaults(tmpl.c_str(), request.c_str(),
                                                                defaults.empty() ? nullptr : defaults.c_str(), &out);
    if (st != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return 1;
    }
    const size_t n = std::strlen(out);
    const bool ok = std::fwrite(out, 1, n, stdout) == n && std::fflush(stdout) == 0;
    tessera_free(out);
    if (!ok) {
        std::fprintf(stderr, "error: cannot write the output\n");
        return 1;
    }
    return 0;
}

}  // namespace tessera_cli
