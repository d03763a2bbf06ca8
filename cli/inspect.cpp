// `tessera inspect FILE.gguf`: version, alignment, metadata, tensors and totals, as text
// or (--json) as one JSON object.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "commands.h"
#include "common.h"
#include "tessera.h"

namespace tessera_cli {
namespace {

const char* kInspectHelp =
    "usage: tessera inspect [options] FILE.gguf\n"
    "\n"
    "Validates a GGUF file and prints its version, alignment, metadata, tensors and\n"
    "totals (parameters, bytes by type). Exit status 0 on success, 1 with one line\n"
    "'error: ...' on a bad or unreadable file.\n"
    "\n"
    "options:\n"
    "  --json            print one JSON object instead of text\n"
    "  --max-items N     array elements shown per array (text default 8, JSON default all;\n"
    "                    -1 shows all)\n"
    "  --max-string N    characters of a string shown in text output (default 120; -1 all)\n"
    "  --no-tensors      leave the tensor list out (the totals stay)\n"
    "  -h, --help        show this help\n";

// A string for humans: quoted, control characters escaped, cut after `max` bytes.
std::string text_string(const char* s, size_t n, long max) {
    std::string out = "'";
    size_t shown = (max >= 0 && n > static_cast<size_t>(max)) ? static_cast<size_t>(max) : n;
    for (size_t i = 0; i < shown; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c == '\'') out += "\\'";
        else if (c == '\\') out += "\\\\";
        else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += static_cast<char>(c);
    }
    out += "'";
    if (shown < n) out += "... (" + std::to_string(n) + " bytes)";
    return out;
}

std::string number_text(double v, bool is_f64) {
    if (std::isnan(v) || std::isinf(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
    char buf[40];
    std::snprintf(buf, sizeof buf, is_f64 ? "%.17g" : "%.9g", v);
    return buf;
}

bool is_float(tessera_gguf_type t) { return t == TESSERA_GGUF_FLOAT32 || t == TESSERA_GGUF_FLOAT64; }
bool is_signed(tessera_gguf_type t) {
    return t == TESSERA_GGUF_INT8 || t == TESSERA_GGUF_INT16 || t == TESSERA_GGUF_INT32 || t == TESSERA_GGUF_INT64;
}

struct Options {
    bool json = false;
    long max_items = 8;
    long max_string = 120;
    bool tensors = true;
};

// One array element or scalar, formatted. `json` selects JSON syntax.
std::string scalar_text(const tessera_gguf_value* v, bool array, uint64_t i, tessera_gguf_type t, bool json,
                        long max_string) {
    if (t == TESSERA_GGUF_STRING) {
        const char* s = nullptr;
        size_t n = 0;
        if (array) tessera_gguf_array_string(v, i, &s, &n);
        else tessera_gguf_value_string(v, &s, &n);
        if (!json) return text_string(s, n, max_string);
        std::string out = "\"";
        json_escape(out, s, n);
        return out + "\"";
    }
    if (t == TESSERA_GGUF_BOOL) {
        uint64_t b = 0;
        if (array) tessera_gguf_array_uint(v, i, &b);
        else tessera_gguf_value_uint(v, &b);
        return b ? "true" : "false";
    }
    if (is_float(t)) {
        double d = 0;
        if (array) tessera_gguf_array_float(v, i, &d);
        else tessera_gguf_value_float(v, &d);
        if (json && (std::isnan(d) || std::isinf(d))) return "null";
        return number_text(d, t == TESSERA_GGUF_FLOAT64);
    }
    if (is_signed(t)) {
        int64_t x = 0;
        if (array) tessera_gguf_array_int(v, i, &x);
        else tessera_gguf_value_int(v, &x);
        return std::to_string(x);
    }
    uint64_t x = 0;
    if (array) tessera_gguf_array_uint(v, i, &x);
    else tessera_gguf_value_uint(v, &x);
    return std::to_string(x);
}

std::string value_text(const tessera_gguf_value* v, const Options& o) {
    tessera_gguf_type t = tessera_gguf_value_type(v);
    if (t != TESSERA_GGUF_ARRAY) return scalar_text(v, false, 0, t, o.json, o.max_string);
    tessera_gguf_type et = tessera_gguf_array_type(v);
    uint64_t n = tessera_gguf_array_length(v);
    uint64_t shown = (o.max_items >= 0 && n > static_cast<uint64_t>(o.max_items)) ? o.max_items : n;
    std::string out = "[";
    for (uint64_t i = 0; i < shown; ++i) {
        if (i) out += ", ";
        if (et == TESSERA_GGUF_ARRAY) out += value_text(tessera_gguf_array_item(v, i), o);
        else out += scalar_text(v, true, i, et, o.json, o.max_string);
    }
    if (shown < n) out += ", ...";
    out += "]";
    return out;
}

std::string type_text(const tessera_gguf_value* v) {
    tessera_gguf_type t = tessera_gguf_value_type(v);
    if (t != TESSERA_GGUF_ARRAY) return tessera_gguf_type_name(t);
    std::string elem = tessera_gguf_array_type(v) == TESSERA_GGUF_ARRAY
                           ? (tessera_gguf_array_length(v) ? type_text(tessera_gguf_array_item(v, 0)) : "array")
                           : tessera_gguf_type_name(tessera_gguf_array_type(v));
    return elem + "[" + std::to_string(tessera_gguf_array_length(v)) + "]";
}

std::string shape_text(const tessera_tensor_info& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
    return s + "]";
}

std::string human_bytes(uint64_t b) {
    char buf[32];
    if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ull << 30));
    else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", b / double(1ull << 20));
    else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.2f KiB", b / double(1ull << 10));
    else std::snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
    return buf;
}

void print_text(const char* path, const tessera_gguf* f, const Options& o) {
    std::printf("file:        %s\n", path);
    std::printf("version:     %u\n", tessera_gguf_version(f));
    std::printf("alignment:   %" PRIu64 "\n", tessera_gguf_alignment(f));
    std::printf("size:        %" PRIu64 " bytes (%s)\n", tessera_gguf_file_size(f),
                human_bytes(tessera_gguf_file_size(f)).c_str());
    int64_t n_kv = tessera_gguf_kv_count(f);
    std::printf("\nmetadata: %" PRId64 " keys\n", n_kv);
    size_t width = 0;
    for (int64_t i = 0; i < n_kv; ++i) width = std::max(width, std::strlen(tessera_gguf_kv_key(f, i)));
    for (int64_t i = 0; i < n_kv; ++i) {
        const tessera_gguf_value* v = tessera_gguf_kv_value(f, i);
        std::printf("  %-*s  %-14s %s\n", static_cast<int>(width), tessera_gguf_kv_key(f, i), type_text(v).c_str(),
                    value_text(v, o).c_str());
    }

    int64_t n_t = tessera_gguf_tensor_count(f);
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // name -> (tensors, bytes)
    uint64_t params = 0, bytes = 0;
    std::printf("\ntensors: %" PRId64 "\n", n_t);
    for (int64_t i = 0; i < n_t; ++i) {
        tessera_tensor_info t;
        tessera_gguf_tensor(f, i, &t);
        uint64_t n = 1;
        for (int d = 0; d < 4; ++d) n *= static_cast<uint64_t>(t.ne[d]);
        params += n;
        bytes += t.size;
        auto& e = by_type[tessera_type_name(t.type)];
        e.first += 1;
        e.second += t.size;
        if (o.tensors)
            std::printf("  %-40s %-7s %-24s %12" PRIu64 " bytes\n", t.name, tessera_type_name(t.type),
                        shape_text(t).c_str(), t.size);
    }
    std::printf("\ntotals:\n  parameters:  %" PRIu64 "\n  tensor data: %" PRIu64 " bytes (%s)\n", params, bytes,
                human_bytes(bytes).c_str());
    for (const auto& [name, e] : by_type)
        std::printf("  %-7s %5" PRIu64 " tensors %14" PRIu64 " bytes (%s)\n", name.c_str(), e.first, e.second,
                    human_bytes(e.second).c_str());
}

void print_json(const char* path, const tessera_gguf* f, const Options& o) {
    std::string out = "{\"file\":\"";
    json_escape(out, path, std::strlen(path));
    out += "\",\"version\":" + std::to_string(tessera_gguf_version(f));
    out += ",\"alignment\":" + std::to_string(tessera_gguf_alignment(f));
    out += ",\"data_offset\":" + std::to_string(tessera_gguf_data_offset(f));
    out += ",\"size\":" + std::to_string(tessera_gguf_file_size(f));
    out += ",\"metadata\":[";
    int64_t n_kv = tessera_gguf_kv_count(f);
    for (int64_t i = 0; i < n_kv; ++i) {
        const tessera_gguf_value* v = tessera_gguf_kv_value(f, i);
        const char* key = tessera_gguf_kv_key(f, i);
        out += i ? ",{\"key\":\"" : "{\"key\":\"";
        json_escape(out, key, std::strlen(key));
        out += "\",\"type\":\"" + type_text(v) + "\",\"value\":" + value_text(v, o) + "}";
    }
    out += "],\"tensors\":[";
    int64_t n_t = tessera_gguf_tensor_count(f);
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;
    uint64_t params = 0, bytes = 0;
    for (int64_t i = 0; i < n_t; ++i) {
        tessera_tensor_info t;
        tessera_gguf_tensor(f, i, &t);
        uint64_t n = 1;
        for (int d = 0; d < 4; ++d) n *= static_cast<uint64_t>(t.ne[d]);
        params += n;
        bytes += t.size;
        auto& e = by_type[tessera_type_name(t.type)];
        e.first += 1;
        e.second += t.size;
        if (!o.tensors) continue;
        out += (i ? ",{\"name\":\"" : "{\"name\":\"");
        json_escape(out, t.name, std::strlen(t.name));
        out += "\",\"type\":\"" + std::string(tessera_type_name(t.type)) + "\",\"shape\":" + shape_text(t) +
               ",\"offset\":" + std::to_string(t.offset) + ",\"bytes\":" + std::to_string(t.size) + "}";
    }
    out += "],\"totals\":{\"tensors\":" + std::to_string(n_t) + ",\"parameters\":" + std::to_string(params) +
           ",\"bytes\":" + std::to_string(bytes) + ",\"by_type\":{";
    bool first = true;
    for (const auto& [name, e] : by_type) {
        out += (first ? "\"" : ",\"") + name + "\":{\"tensors\":" + std::to_string(e.first) +
               ",\"bytes\":" + std::to_string(e.second) + "}";
        first = false;
    }
    out += "}}}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
}

bool parse_long(const char* s, long* out) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (!*s || *end || v < -1) return false;
    *out = v;
    return true;
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
    Options o;
    const char* path = nullptr;
    bool items_set = false;
    for (int i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            std::fputs(kInspectHelp, stdout);
            return 0;
        } else if (!std::strcmp(a, "--json")) {
            o.json = true;
        } else if (!std::strcmp(a, "--no-tensors")) {
            o.tensors = false;
        } else if (!std::strcmp(a, "--max-items") || !std::strcmp(a, "--max-string")) {
            long v = 0;
            if (i + 1 >= argc || !parse_long(argv[i + 1], &v)) {
                std::fprintf(stderr, "error: %s needs a number >= -1\n", a);
                return 2;
            }
            if (!std::strcmp(a, "--max-items")) o.max_items = v, items_set = true;
            else o.max_string = v;
            ++i;
        } else if (a[0] == '-' && a[1] != '\0') {
            std::fprintf(stderr, "error: unknown option '%s' (see 'tessera inspect --help')\n", a);
            return 2;
        } else if (path) {
            std::fprintf(stderr, "error: one file at a time (got '%s' and '%s')\n", path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        std::fputs(kInspectHelp, stderr);
        return 2;
    }
    if (o.json && !items_set) o.max_items = -1;

    tessera_gguf* f = nullptr;
    if (tessera_gguf_open(path, &f) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return 1;
    }
    if (o.json) print_json(path, f, o);
    else print_text(path, f, o);
    tessera_gguf_close(f);
    std::fflush(stdout);
    return std::ferror(stdout) ? 1 : 0;
}

}  // namespace tessera_cli
