// Helpers the subcommands share.
#include "common.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace tessera_cli {

bool parse_int(const char* option, const char* text, long min, long max, long* out) {
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(text, &end, 10);
    if (!*text || *end || errno || v < min || v > max) {
        std::fprintf(stderr, "error: %s needs a whole number from %ld to %ld (got '%s')\n", option, min, max, text);
        return false;
    }
    *out = v;
    return true;
}

bool parse_float(const char* option, const char* text, double min, double max, double* out) {
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(text, &end);
    if (!*text || *end || errno || !std::isfinite(v) || v < min || v > max) {
        std::fprintf(stderr, "error: %s needs a number from %g to %g (got '%s')\n", option, min, max, text);
        return false;
    }
    *out = v;
    return true;
}

const char* option_value(int argc, char** argv, int* i) {
    if (*i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", argv[*i]);
        return nullptr;
    }
    return argv[++*i];
}

tessera_model* load_model_or_report(const char* path) {
    tessera_model_params p = tessera_model_default_params();
    p.vocab_only = 0;
    tessera_model* m = nullptr;
    if (tessera_model_load(path, &p, &m) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return nullptr;
    }
    return m;
}

bool tokenize(const tessera_model* model, const std::string& text, bool add_special, bool parse_special,
              std::vector<int32_t>* out) {
    int32_t n = 0;
    out->assign(text.size() + 8, 0);
    tessera_status st = tessera_tokenize(model, text.data(), text.size(), add_special, parse_special, out->data(),
                                         static_cast<int32_t>(out->size()), &n);
    if (st != TESSERA_OK && n > static_cast<int32_t>(out->size())) {
        out->assign(static_cast<size_t>(n), 0);
        st = tessera_tokenize(model, text.data(), text.size(), add_special, parse_special, out->data(), n, &n);
    }
    if (st != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return false;
    }
    out->resize(static_cast<size_t>(n));
    return true;
}

bool read_file(const char* path, std::string* out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        std::fprintf(stderr, "error: %s: cannot open file: %s\n", path, std::strerror(errno));
        return false;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    if (f.bad()) {
        std::fprintf(stderr, "error: %s: read failed\n", path);
        return false;
    }
    *out = ss.str();
    return true;
}

}  // namespace tessera_cli
