// `tessera tokenize`: a model's tokenizer on a text or a file's bytes; one line per token
// (ID<TAB>'piece') or, with --ids, the ids on one line.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "commands.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kTokenizeHelp =
    "usage: tessera tokenize -m FILE.gguf (-p TEXT | -f FILE) [options]\n"
    "\n"
    "Tokenizes text with a model's vocabulary (only the tokenizer is loaded, so a\n"
    "vocab-only GGUF file is enough) and prints one line per token, ID<TAB>'piece', or\n"
    "with --ids the ids on one line separated by single spaces.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE     the GGUF file\n"
    "  -p, --prompt TEXT    the text to tokenize\n"
    "  -f, --file FILE      tokenize the file's bytes exactly as they are (a trailing\n"
    "                       newline is kept and tokenized too)\n"
    "  --ids                print only the ids\n"
    "  --no-add-special     do not add BOS/EOS (by default they are added as the model's\n"
    "                       metadata says)\n"
    "  --parse-special      text of control tokens (e.g. <|im_start|>) becomes those\n"
    "                       tokens; by default it is plain text (user-defined tokens,\n"
    "                       such as Gemma's runs of spaces, are found either way)\n"
    "  --allow-unknown-pre  an unknown tokenizer.ggml.pre falls back to the GPT-2 split\n"
    "                       (with a warning) instead of failing\n"
    "  -h, --help           show this help\n"
    "\n"
    "A piece is the text the token adds when detokenized, between single quotes, with\n"
    "\\n \\r \\t \\\\ \\' escaped and other control bytes and bytes that are not valid UTF-8\n"
    "(part of a character split across byte tokens) shown as \\xNN. A control token that\n"
    "adds no text (BOS, EOS, ...) shows its vocabulary text instead.\n"
    "\n"
    "Exit status: 0 on success; 1 with one line 'error: ...' when the model file is\n"
    "missing, unreadable or not a usable vocabulary, or the text file cannot be read;\n"
    "2 on a usage error.\n";

int usage_error(const std::string& msg) {
    std::fprintf(stderr, "error: %s (try 'tessera tokenize --help')\n", msg.c_str());
    return 2;
}

int failure(const std::string& msg) {
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    return 1;
}

bool read_file(const char* path, std::string& out, std::string& err) {
    std::FILE* f = std::fopen(path, "rb");
    if (!f) {
        err = std::string("cannot read ") + path + ": " + std::strerror(errno);
        return false;
    }
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    const bool ok = !std::ferror(f);
    if (!ok) err = std::string("cannot read ") + path + ": " + std::strerror(errno);
    std::fclose(f);
    return ok;
}

// Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one.
size_t valid_utf8_length(const unsigned char* s, size_t n) {
    const unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; ++k)
        if ((s[k] & 0xc0) != 0x80) return 0;
    return len;
}

std::string quote_piece(const char* data, size_t len) {
    const auto* p = reinterpret_cast<const unsigned char*>(data);
    std::string out = "'";
    size_t i = 0;
    while (i < len) {
        const unsigned char c = p[i];
        if (c >= 0x80) {
            if (size_t n = valid_utf8_length(p + i, len - i)) {
                out.append(data + i, n);
                i += n;
                continue;
            }
        }
        switch (c) {
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\'':
                out += "\\'";
                break;
            default:
                if (c < 0x20 || c >= 0x7f) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\x%02x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
        ++i;
    }
    return out + "'";
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
    const char* model_path = nullptr;
    const char* prompt = nullptr;
    const char* text_path = nullptr;
    bool ids_only = false, add_special = true, parse_special = false, allow_unknown_pre = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char** dst) {
            if (i + 1 >= argc) return false;
            *dst = argv[++i];
            return true;
        };
        if (a == "-h" || a == "--help") {
            std::fputs(kTokenizeHelp, stdout);
            return 0;
        } else if (a == "-m" || a == "--model") {
            if (!value(&model_path)) return usage_error(a + " needs a file");
        } else if (a == "-p" || a == "--prompt") {
            if (!value(&prompt)) return usage_error(a + " needs a text");
        } else if (a == "-f" || a == "--file") {
            if (!value(&text_path)) return usage_error(a + " needs a file");
        } else if (a == "--ids") {
            ids_only = true;
        } else if (a == "--no-add-special") {
            add_special = false;
        } else if (a == "--parse-special") {
            parse_special = true;
        } else if (a == "--allow-unknown-pre") {
            allow_unknown_pre = true;
        } else {
            return usage_error("unknown argument '" + a + "'");
        }
    }
    if (!model_path) return usage_error("no model: pass -m FILE.gguf");
    if (!prompt == !text_path) return usage_error("pass exactly one of -p TEXT and -f FILE");

    std::string text;
    if (prompt) {
        text = prompt;
    } else {
        std::string err;
        if (!read_file(text_path, text, err)) return failure(err);
    }

    tessera_model_params params = tessera_model_default_params();
    params.vocab_only = 1;
    params.allow_unknown_pre = allow_unknown_pre ? 1 : 0;
    tessera_model* model = nullptr;
    if (tessera_model_load(model_path, &params, &model) != TESSERA_OK) return failure(tessera_last_error());

    std::vector<int32_t> ids(text.size() + 16);
    int32_t n = 0;
    tessera_status st = tessera_tokenize(model, text.data(), text.size(), add_special, parse_special, ids.data(),
                                         static_cast<int32_t>(ids.size()), &n);
    if (st == TESSERA_ERROR_INVALID_ARGUMENT && n > static_cast<int32_t>(ids.size())) {
        ids.resize(static_cast<size_t>(n));
        st = tessera_tokenize(model, text.data(), text.size(), add_special, parse_special, ids.data(), n, &n);
    }
    if (st != TESSERA_OK) {
        const std::string msg = tessera_last_error();
        tessera_model_free(model);
        return failure(msg);
    }
    ids.resize(static_cast<size_t>(n));

    std::string out;
    if (ids_only) {
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) out += ' ';
            out += std::to_string(ids[i]);
        }
        out += '\n';
    } else {
        std::vector<char> piece(64);
        for (int32_t id : ids) {
            size_t len = 0;
            if (tessera_token_to_piece(model, id, piece.data(), piece.size(), &len) != TESSERA_OK) {
                piece.resize(len + 1);
                tessera_token_to_piece(model, id, piece.data(), piece.size(), &len);
            }
            const char* shown = piece.data();
            if (len == 0) tessera_token_text(model, id, &shown, &len);  // a control token: its text
            out += std::to_string(id);
            out += '\t';
            out += quote_piece(shown, len);
            out += '\n';
        }
    }
    tessera_model_free(model);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : failure("cannot write the output");
}

}  // namespace tessera_cli
