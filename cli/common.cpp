// Helpers the subcommands share.
#include "common.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
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

int parse_sampling_option(const char* a, const char* v, tessera_sampler_params* sp, bool* seeded) {
    long n = 0;
    double d = 0;
    auto is = [&](const char* name) { return !std::strcmp(a, name); };
    if (is("--temp")) {
        if (!parse_float(a, v, 0, 100, &d)) return -1;
        sp->temperature = static_cast<float>(d);
    } else if (is("--top-k")) {
        if (!parse_int(a, v, 0, 1 << 30, &n)) return -1;
        sp->top_k = static_cast<int32_t>(n);
    } else if (is("--top-p")) {
        if (!parse_float(a, v, 0, 1, &d)) return -1;
        sp->top_p = static_cast<float>(d);
    } else if (is("--min-p")) {
        if (!parse_float(a, v, 0, 1, &d)) return -1;
        sp->min_p = static_cast<float>(d);
    } else if (is("--repeat-penalty")) {
        if (!parse_float(a, v, 0.01, 100, &d)) return -1;
        sp->repeat_penalty = static_cast<float>(d);
    } else if (is("--repeat-last-n")) {
        if (!parse_int(a, v, 0, 1 << 20, &n)) return -1;
        sp->repeat_last_n = static_cast<int32_t>(n);
    } else if (is("--presence-penalty")) {
        if (!parse_float(a, v, -100, 100, &d)) return -1;
        sp->presence_penalty = static_cast<float>(d);
    } else if (is("--frequency-penalty")) {
        if (!parse_float(a, v, -100, 100, &d)) return -1;
        sp->frequency_penalty = static_cast<float>(d);
    } else if (is("--seed")) {
        char* end = nullptr;
        errno = 0;
        unsigned long long s = std::strtoull(v, &end, 10);
        if (!*v || *end || *v == '-' || errno) {
            std::fprintf(stderr, "error: --seed needs a non-negative whole number (got '%s')\n", v);
            return -1;
        }
        sp->seed = s;
        *seeded = true;
    } else {
        return 0;
    }
    return 1;
}

const char* option_value(int argc, char** argv, int* i) {
    if (*i + 1 >= argc) {
        std::fprintf(stderr, "error: %s needs a value\n", argv[*i]);
        return nullptr;
    }
    return argv[++*i];
}

const char* const kGpuHelp =
    "  -ngl, --gpu-layers N    layers on the GPU, counted from the last (the output head goes\n"
    "                          with the last layer); 'all', or 'auto' (the default: the count\n"
    "                          'tessera fit' predicts fastest among those that fit: all that\n"
    "                          fit, unless the GPU is slower than the CPU); 0: all on the CPU\n"
    "  --device NAME[,NAME...] the GPUs to use, e.g. CUDA0 or CUDA0,CUDA1 (default: the first\n"
    "                          GPU and every other of its kind; see 'tessera --version')\n"
    "  -sm, --split-mode MODE  how the GPU layers spread over several GPUs: layer (default:\n"
    "                          consecutive layers on each, activations crossing between them)\n"
    "                          or none (the first GPU only)\n"
    "  -ts, --tensor-split A,B each GPU's share of the GPU layers, in --device order (default:\n"
    "                          in proportion to their free memory)\n"
    "  -ot, --override-tensor PATTERN=DEVICE\n"
    "                          weights whose name matches PATTERN (a regular expression)\n"
    "                          go to DEVICE (CPU or the GPU) whatever -ngl says, e.g.\n"
    "                          -ot 'blk\\.[0-9]+\\.ffn_.*=CPU'; repeatable, the first match wins\n"
    "  --gpu-mem SIZE          GPU memory the automatic placement may fill with weights, KV\n"
    "                          cache and compute buffer (e.g. 1.5G, 800M; default: its free\n"
    "                          memory less 512 MiB)\n"
    "  -nr, --no-repack        keep the CPU's weights in the file's layout (by default the\n"
    "                          types with interleaved kernels are rearranged at load, for\n"
    "                          faster prompts; their sums round slightly differently)\n";

bool parse_load_flag(const char* option, GpuOptions* g) {
    if (std::strcmp(option, "-nr") != 0 && std::strcmp(option, "--no-repack") != 0) return false;
    g->repack = false;
    return true;
}

int parse_gpu_option(const char* option, const char* value, GpuOptions* g, bool layers) {
    if (!std::strcmp(option, "-ot") || !std::strcmp(option, "--override-tensor")) {
        const char* eq = std::strrchr(value, '=');
        if (!eq || eq == value || !eq[1]) {
            std::fprintf(stderr, "error: %s needs PATTERN=DEVICE (got '%s')\n", option, value);
            return -1;
        }
        g->overrides.push_back(value);
        return 1;
    }
    if (!std::strcmp(option, "--gpu-mem")) {
        char* end = nullptr;
        errno = 0;
        const double v = std::strtod(value, &end);
        double scale = 1.0;
        if (end && *end) {
            const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(*end)));
            scale = u == 'K'   ? 1024.0
                    : u == 'M' ? 1048576.0
                    : u == 'G' ? 1073741824.0
                    : u == 'T' ? 1099511627776.0
                               : 0.0;
            const char* rest = end + 1;
            if (*rest == 'i' || *rest == 'I') ++rest;
            if (*rest == 'B' || *rest == 'b') ++rest;
            if (*rest) scale = 0.0;
        }
        if (errno || end == value || !(v > 0) || scale == 0.0 || v * scale > 1e18) {
            std::fprintf(stderr, "error: %s needs a size such as 1.5G, 800M or 4096 (bytes) (got '%s')\n", option,
                         value);
            return -1;
        }
        g->gpu_mem = static_cast<uint64_t>(v * scale);
        return 1;
    }
    if (!std::strcmp(option, "--device") || !std::strcmp(option, "-dev")) {
        g->device = value;
        return 1;
    }
    if (!std::strcmp(option, "-sm") || !std::strcmp(option, "--split-mode")) {
        if (!std::strcmp(value, "none")) {
            g->split_mode = TESSERA_SPLIT_NONE;
        } else if (!std::strcmp(value, "layer")) {
            g->split_mode = TESSERA_SPLIT_LAYER;
        } else if (!std::strcmp(value, "row")) {
            std::fprintf(stderr, "error: %s row (tensor parallelism) is not available yet: use layer\n", option);
            return -1;
        } else {
            std::fprintf(stderr, "error: %s takes none or layer (got '%s')\n", option, value);
            return -1;
        }
        return 1;
    }
    if (!std::strcmp(option, "-ts") || !std::strcmp(option, "--tensor-split")) {
        // Proportions split by commas or slashes, as "3,1" or "3/1".
        g->tensor_split.clear();
        double sum = 0;
        for (const char* at = value;;) {
            char* end = nullptr;
            errno = 0;
            const double v = std::strtod(at, &end);
            if (errno || end == at || !(v >= 0) || v > 1e6) {
                std::fprintf(stderr, "error: %s takes proportions such as 3,1 (got '%s')\n", option, value);
                return -1;
            }
            g->tensor_split.push_back(static_cast<float>(v));
            sum += v;
            if (*end == '\0') break;
            if (*end != ',' && *end != '/') {
                std::fprintf(stderr, "error: %s takes proportions such as 3,1 (got '%s')\n", option, value);
                return -1;
            }
            at = end + 1;
        }
        if (sum <= 0) {
            std::fprintf(stderr, "error: %s: the proportions are all 0 (got '%s')\n", option, value);
            return -1;
        }
        return 1;
    }
    if (!layers) return 0;
    if (!std::strcmp(option, "-ngl") || !std::strcmp(option, "--gpu-layers") ||
        !std::strcmp(option, "--n-gpu-layers")) {
        if (!std::strcmp(value, "all")) {
            g->n_gpu_layers = 1 << 20;
        } else if (!std::strcmp(value, "auto")) {
            g->n_gpu_layers = -1;
        } else {
            long n = 0;
            if (!parse_int(option, value, 0, 1 << 20, &n)) return -1;
            g->n_gpu_layers = static_cast<int32_t>(n);
        }
        return 1;
    }
    return 0;
}

namespace {

int32_t show_progress(float f, void*) {
    std::fprintf(stderr, "\rloading: %3d%%", static_cast<int>(f * 100.0f + 0.5f));
    if (f >= 1.0f) std::fputc('\n', stderr);
    return 1;
}

}  // namespace

tessera_model* load_model_or_report(const char* path, const GpuOptions& gpu) {
    tessera_model_params p = tessera_model_default_params();
    p.vocab_only = 0;
    p.repack = gpu.repack ? 1 : 0;
    p.n_gpu_layers = gpu.n_gpu_layers;
    p.device = gpu.device.empty() ? nullptr : gpu.device.c_str();
    p.split_mode = gpu.split_mode;
    p.tensor_split = gpu.tensor_split.empty() ? nullptr : gpu.tensor_split.data();
    p.n_tensor_split = static_cast<int32_t>(gpu.tensor_split.size());
    std::vector<const char*> overrides;
    for (const std::string& o : gpu.overrides) overrides.push_back(o.c_str());
    p.tensor_overrides = overrides.data();
    p.n_tensor_overrides = static_cast<int32_t>(overrides.size());
    p.gpu_mem = gpu.gpu_mem;
    p.plan_n_ctx = gpu.plan_n_ctx;
    p.plan_n_threads = gpu.plan_threads;
    // A progress line while weights are uploaded to a GPU (the CPU maps its weights at once).
    if (p.n_gpu_layers != 0 && isatty(fileno(stderr))) p.progress = show_progress;
    tessera_model* m = nullptr;
    if (tessera_model_load(path, &p, &m) != TESSERA_OK) {
        std::fprintf(stderr, "error: %s\n", tessera_last_error());
        return nullptr;
    }
    if (tessera_model_n_gpu_layers(m) > 0) {
        // "on CUDA0", or split by layer "on CUDA0 (16), CUDA1 (16)".
        std::string where;
        const std::string names = tessera_model_gpu(m);
        const bool several = names.find(',') != std::string::npos;
        int32_t i = 0;
        for (size_t at = 0; at <= names.size(); ++i) {
            const size_t comma = std::min(names.find(',', at), names.size());
            where += (where.empty() ? "" : ", ") + names.substr(at, comma - at);
            if (several) where += " (" + std::to_string(tessera_model_gpu_layers(m, i)) + ")";
            at = comma + 1;
        }
        std::fprintf(stderr, "tessera: %d of %d layers on %s (%.0f MiB of weights)\n", tessera_model_n_gpu_layers(m),
                     tessera_model_n_layer(m), where.c_str(),
                     static_cast<double>(tessera_model_gpu_bytes(m)) / (1024.0 * 1024.0));
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

// Appends `s` as the inside of a JSON string: control characters escaped, invalid
// UTF-8 bytes replaced by U+FFFD so the output is always valid JSON.
void json_escape(std::string& out, const char* s, size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(s);
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            switch (c) {
                case '"':
                    out += "\\\"";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                default:
                    if (c < 0x20 || c == 0x7f) {
                        char buf[8];
                        std::snprintf(buf, sizeof buf, "\\u%04x", c);
                        out += buf;
                    } else {
                        out += static_cast<char>(c);
                    }
            }
            ++i;
            continue;
        }
        // Length and validity of a UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF).
        size_t len = 0;
        uint32_t cp = 0;
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; ++k) {
            ok = (p[i + k] & 0xc0) == 0x80;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (ok)
            ok = !((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10ffff)));
        if (ok) {
            out.append(s + i, len);
            i += len;
        } else {
            out += "\xef\xbf\xbd";
            ++i;
        }
    }
}

void json_quote(std::string& out, const std::string& s) {
    out += '"';
    json_escape(out, s.data(), s.size());
    out += '"';
}

std::string default_model_path(const std::string& name) {
    const char* dir = std::getenv("TESSERA_MODELS");
    std::string base =
        dir && *dir ? dir : std::string(std::getenv("HOME") ? std::getenv("HOME") : ".") + "/.cache/tessera/models";
    return base + "/" + name + ".gguf";
}

namespace {

// ChatML, the format most instruction-tuned models without a template of their own follow.
const char* kChatML =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Gemma's turn format, for Gemma models whose metadata carries no template (system text
// goes in as a user turn).
const char* kGemma =
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else "
    "('user' if message['role'] == 'system' else message['role']) %}{{ '<start_of_turn>' + role + '\\n' + "
    "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<start_of_turn>model\\n' }}{% endif %}";

// The id of `text` when the vocabulary has it as one token, else -1.
int32_t single_token(const tessera_model* model, const char* text) {
    int32_t ids[4];
    int32_t n = 0;
    if (tessera_tokenize(model, text, std::strlen(text), 0, 1, ids, 4, &n) == TESSERA_OK && n == 1 &&
        token_text(model, ids[0]) == text)
        return ids[0];
    return -1;
}

}  // namespace

std::string token_text(const tessera_model* model, int32_t token) {
    const char* t = nullptr;
    size_t n = 0;
    if (tessera_token_text(model, token, &t, &n) != TESSERA_OK) return "";
    return std::string(t, n);
}

bool chat_format(const tessera_model* model, const std::string& template_file, ChatFormat* out) {
    *out = ChatFormat{};
    const tessera_gguf* g = tessera_model_gguf(model);
    const int64_t k = tessera_gguf_find_key(g, "tokenizer.chat_template");
    const char* data = nullptr;
    size_t len = 0;
    if (!template_file.empty()) {
        if (!read_file(template_file.c_str(), &out->tmpl)) return false;
    } else if (k >= 0 && tessera_gguf_value_string(tessera_gguf_kv_value(g, k), &data, &len) == TESSERA_OK) {
        out->tmpl.assign(data, len);
    } else {
        const bool gemma = single_token(model, "<start_of_turn>") >= 0;
        out->tmpl = gemma ? kGemma : kChatML;
        out->fallback = gemma ? "warning: %s has no chat template; using Gemma's turn format"
                              : "warning: %s has no chat template; using ChatML";
    }
    if (int32_t b = tessera_token_bos(model); b >= 0) out->bos = token_text(model, b);
    if (int32_t e = tessera_token_eos(model); e >= 0) {
        out->eos = token_text(model, e);
        out->end_ids.push_back(e);
    }
    // End-of-turn markers of the common template families, when the vocabulary has them
    // as single tokens.
    for (const char* marker : {"<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>"})
        if (int32_t id = single_token(model, marker); id >= 0) out->end_ids.push_back(id);
    return true;
}

}  // namespace tessera_cli
