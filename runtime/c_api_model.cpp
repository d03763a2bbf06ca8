// Implements the "models and tokenization" part of include/tessera.h over runtime::Vocab.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "runtime/c_api_internal.h"
#include "runtime/model.h"
#include "runtime/vocab/vocab.h"
#include "tensor/error.h"
#include "tensor/gguf.h"
#include "tessera.h"

struct tessera_detokenizer {
    explicit tessera_detokenizer(const tessera::vocab::Vocab& v) : stream(v) {}
    tessera::vocab::Detokenizer stream;
    std::string text;  // NUL-terminated copy handed out
};

using tessera::Error;
using tessera::ErrorKind;
using tessera::capi::guard;

namespace {

const tessera::vocab::Vocab& vocab_of(const tessera_model* model) {
    if (!model || !model->vocab) throw Error("null model", ErrorKind::InvalidArgument);
    return *model->vocab;
}

// Copies bytes out under the API's sizing rule: *len_out = needed; too small a buffer is
// an error (nothing truncated silently); a NUL follows when there is room.
void copy_out(std::string_view bytes, char* buf, size_t buf_size, size_t* len_out, const char* what) {
    if (!len_out) throw Error("len_out is null", ErrorKind::InvalidArgument);
    *len_out = bytes.size();
    if (bytes.size() > buf_size)
        throw Error(std::string(what) + " needs " + std::to_string(bytes.size()) + " bytes, the buffer has " +
                        std::to_string(buf_size),
                    ErrorKind::InvalidArgument);
    if (!buf) {
        if (!bytes.empty()) throw Error("buf is null", ErrorKind::InvalidArgument);
        return;
    }
    if (!bytes.empty()) std::memcpy(buf, bytes.data(), bytes.size());
    if (bytes.size() < buf_size) buf[bytes.size()] = '\0';
}

tessera::runtime::SplitMode split_mode(int32_t mode) {
    if (mode == TESSERA_SPLIT_NONE) return tessera::runtime::SplitMode::None;
    if (mode == TESSERA_SPLIT_LAYER) return tessera::runtime::SplitMode::Layer;
    throw Error("split_mode must be TESSERA_SPLIT_NONE or TESSERA_SPLIT_LAYER, not " + std::to_string(mode),
                ErrorKind::InvalidArgument);
}

// A tensor split's proportions: finite, none negative, not all zero.
std::vector<double> proportions(const float* split, int32_t n) {
    if (n < 0 || (n > 0 && !split))
        throw Error("tensor_split: " + std::to_string(n) + " proportions and no array", ErrorKind::InvalidArgument);
    std::vector<double> out(split, split + n);
    double sum = 0;
    for (double v : out) {
        if (!(v >= 0 && v < 1e30))
            throw Error("tensor_split: a proportion must be 0 or more", ErrorKind::InvalidArgument);
        sum += v;
    }
    if (n > 0 && sum <= 0) throw Error("tensor_split: the proportions are all 0", ErrorKind::InvalidArgument);
    return out;
}

}  // namespace

extern "C" {

tessera_model_params tessera_model_default_params(void) {
    tessera_model_params p;
    p.vocab_only = 0;
    p.allow_unknown_pre = 0;
    p.use_mmap = 1;
    p.repack = 1;
    p.progress = nullptr;
    p.progress_user = nullptr;
    p.n_gpu_layers = -1;
    p.device = nullptr;
    p.split_mode = TESSERA_SPLIT_LAYER;
    p.tensor_split = nullptr;
    p.n_tensor_split = 0;
    p.tensor_overrides = nullptr;
    p.n_tensor_overrides = 0;
    p.gpu_mem = 0;
    p.plan_n_ctx = 0;
    p.plan_n_threads = 0;
    return p;
}

tessera_status tessera_model_load(const char* path, const tessera_model_params* params, tessera_model** out) {
    if (out) *out = nullptr;
    return guard([&] {
        if (!path) throw Error("model path is null", ErrorKind::InvalidArgument);
        if (!out) throw Error("out is null", ErrorKind::InvalidArgument);
        const auto t0 = std::chrono::steady_clock::now();
        const tessera_model_params p = params ? *params : tessera_model_default_params();
        auto model = std::make_unique<tessera_model>();
        model->file = tessera::gguf::File::open(path);
        tessera::vocab::LoadOptions options;
        options.allow_unknown_pre = p.allow_unknown_pre != 0;
        model->vocab = tessera::vocab::Vocab::load(*model->file, options);
        for (const std::string& w : model->vocab->warnings()) std::fprintf(stderr, "tessera: warning: %s\n", w.c_str());
        if (!p.vocab_only) {
            tessera::runtime::LoadOptions lo;
            lo.use_mmap = p.use_mmap != 0;
            lo.repack = p.repack != 0;
            if (p.n_gpu_layers < -1)
                throw Error("n_gpu_layers must be -1 (auto), 0 or more", ErrorKind::InvalidArgument);
            lo.n_gpu_layers = p.n_gpu_layers;
            if (p.device) lo.device = p.device;
            lo.split_mode = split_mode(p.split_mode);
            lo.tensor_split = proportions(p.tensor_split, p.n_tensor_split);
            if (p.n_tensor_overrides < 0 || (p.n_tensor_overrides > 0 && !p.tensor_overrides))
                throw Error("tensor_overrides: " + std::to_string(p.n_tensor_overrides) + " overrides and no array",
                            ErrorKind::InvalidArgument);
            for (int32_t i = 0; i < p.n_tensor_overrides; ++i) {
                const std::string o = p.tensor_overrides[i] ? p.tensor_overrides[i] : "";
                const size_t eq = o.rfind('=');
                if (eq == std::string::npos || eq == 0 || eq + 1 == o.size())
                    throw Error("tensor override '" + o + "' is not PATTERN=DEVICE", ErrorKind::InvalidArgument);
                lo.tensor_overrides.emplace_back(o.substr(0, eq), o.substr(eq + 1));
            }
            lo.gpu_mem = static_cast<size_t>(p.gpu_mem);
            if (p.plan_n_ctx < 0 || p.plan_n_threads < 0)
                throw Error("plan_n_ctx and plan_n_threads must be 0 (the defaults) or more",
                            ErrorKind::InvalidArgument);
            lo.plan_n_ctx = p.plan_n_ctx;
            lo.plan_threads = p.plan_n_threads;
            if (p.progress) {
                auto fn = p.progress;
                void* user = p.progress_user;
                lo.progress = [fn, user](float f) { return fn(f, user) != 0; };
            }
            model->runtime = tessera::runtime::load_model(std::move(model->file), lo);
            if (model->runtime->hp.n_vocab != model->vocab->size())
                throw Error(std::string(path) + ": the model has " + std::to_string(model->runtime->hp.n_vocab) +
                                " output tokens but its tokenizer has " + std::to_string(model->vocab->size()),
                            ErrorKind::BadFile);
        }
        model->gguf_view.file = &model->gguf();
        model->load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        *out = model.release();
    });
}

void tessera_model_free(tessera_model* model) { delete model; }

int32_t tessera_vocab_size(const tessera_model* model) { return model && model->vocab ? model->vocab->size() : 0; }

int32_t tessera_token_bos(const tessera_model* model) { return model && model->vocab ? model->vocab->bos() : -1; }

int32_t tessera_token_eos(const tessera_model* model) { return model && model->vocab ? model->vocab->eos() : -1; }

int32_t tessera_token_is_eog(const tessera_model* model, int32_t token) {
    return model && model->vocab && model->vocab->valid(token) && model->vocab->is_eog(token) ? 1 : 0;
}

tessera_status tessera_tokenize(const tessera_model* model, const char* text, size_t len, int32_t add_special,
                                int32_t parse_special, int32_t* tokens, int32_t n_max, int32_t* n_out) {
    return guard([&] {
        const auto& vocab = vocab_of(model);
        if (!n_out) throw Error("n_out is null", ErrorKind::InvalidArgument);
        *n_out = 0;
        if (!text && len > 0) throw Error("text is null", ErrorKind::InvalidArgument);
        if (n_max < 0) throw Error("n_max is negative", ErrorKind::InvalidArgument);
        if (!tokens && n_max > 0) throw Error("tokens is null", ErrorKind::InvalidArgument);
        std::vector<int32_t> ids;
        vocab.tokenize(std::string_view(text ? text : "", len), add_special != 0, parse_special != 0, ids);
        if (ids.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
            throw Error("the text gives more than 2^31 tokens", ErrorKind::InvalidArgument);
        *n_out = static_cast<int32_t>(ids.size());
        const size_t n = std::min(ids.size(), static_cast<size_t>(n_max));
        if (n) std::memcpy(tokens, ids.data(), n * sizeof(int32_t));
        if (ids.size() > static_cast<size_t>(n_max))
            throw Error("the text gives " + std::to_string(ids.size()) + " tokens but the buffer holds " +
                            std::to_string(n_max),
                        ErrorKind::InvalidArgument);
    });
}

tessera_status tessera_token_to_piece(const tessera_model* model, int32_t token, char* buf, size_t buf_size,
                                      size_t* len_out) {
    return guard([&] {
        const auto& vocab = vocab_of(model);
        if (len_out) *len_out = 0;
        copy_out(vocab.piece(token), buf, buf_size, len_out, "the piece");
    });
}

tessera_status tessera_token_text(const tessera_model* model, int32_t token, const char** text, size_t* len) {
    return guard([&] {
        const auto& vocab = vocab_of(model);
        if (!text || !len) throw Error("text or len is null", ErrorKind::InvalidArgument);
        vocab.check_token(token);
        const std::string_view t = vocab.token_text(token);
        *text = t.data();
        *len = t.size();
    });
}

tessera_status tessera_detokenize(const tessera_model* model, const int32_t* tokens, int32_t n, char* buf,
                                  size_t buf_size, size_t* len_out) {
    return guard([&] {
        const auto& vocab = vocab_of(model);
        if (len_out) *len_out = 0;
        if (n < 0) throw Error("n is negative", ErrorKind::InvalidArgument);
        if (!tokens && n > 0) throw Error("tokens is null", ErrorKind::InvalidArgument);
        const std::string text = vocab.detokenize(std::span<const int32_t>(tokens, static_cast<size_t>(n)));
        copy_out(text, buf, buf_size, len_out, "the text");
    });
}

tessera_status tessera_detokenizer_new(const tessera_model* model, tessera_detokenizer** out) {
    if (out) *out = nullptr;
    return guard([&] {
        const auto& vocab = vocab_of(model);
        if (!out) throw Error("out is null", ErrorKind::InvalidArgument);
        *out = new tessera_detokenizer(vocab);
    });
}

tessera_status tessera_detokenizer_push(tessera_detokenizer* d, int32_t token, const char** text, size_t* len) {
    return guard([&] {
        if (!d) throw Error("null detokenizer", ErrorKind::InvalidArgument);
        if (!text || !len) throw Error("text or len is null", ErrorKind::InvalidArgument);
        d->text.assign(d->stream.push(token));
        *text = d->text.c_str();
        *len = d->text.size();
    });
}

tessera_status tessera_detokenizer_flush(tessera_detokenizer* d, const char** text, size_t* len) {
    return guard([&] {
        if (!d) throw Error("null detokenizer", ErrorKind::InvalidArgument);
        if (!text || !len) throw Error("text or len is null", ErrorKind::InvalidArgument);
        d->text.assign(d->stream.flush());
        *text = d->text.c_str();
        *len = d->text.size();
    });
}

void tessera_detokenizer_free(tessera_detokenizer* d) { delete d; }

}  // extern "C"

tessera_fit_params tessera_fit_default_params(void) {
    tessera_fit_params p;
    p.n_ctx = 0;
    p.n_batch = 512;
    p.n_threads = 0;
    p.n_gpu_layers = -1;
    p.device = nullptr;
    p.split_mode = TESSERA_SPLIT_LAYER;
    p.tensor_split = nullptr;
    p.n_tensor_split = 0;
    p.gpu_mem = 0;
    p.measure = 1;
    return p;
}

tessera_status tessera_fit(const char* path, const tessera_fit_params* params, tessera_fit_plan* plan) {
    if (plan) *plan = tessera_fit_plan{};
    return guard([&] {
        if (!path) throw Error("model path is null", ErrorKind::InvalidArgument);
        if (!plan) throw Error("plan is null", ErrorKind::InvalidArgument);
        const tessera_fit_params p = params ? *params : tessera_fit_default_params();
        if (p.n_ctx < 0 || p.n_batch < 0 || p.n_threads < 0 || p.n_gpu_layers < -1)
            throw Error("fit parameters: n_ctx, n_batch and n_threads must be 0 or more, n_gpu_layers -1 or more",
                        ErrorKind::InvalidArgument);
        tessera::runtime::FitOptions fo;
        fo.n_ctx = p.n_ctx;
        fo.n_batch = p.n_batch;
        fo.n_threads = p.n_threads;
        fo.n_gpu_layers = p.n_gpu_layers;
        if (p.device) fo.device = p.device;
        fo.split_mode = split_mode(p.split_mode);
        fo.tensor_split = proportions(p.tensor_split, p.n_tensor_split);
        fo.gpu_mem = static_cast<size_t>(p.gpu_mem);
        fo.measure = p.measure != 0;
        fo.note = [](const std::string& line) { std::fprintf(stderr, "tessera: %s\n", line.c_str()); };
        const tessera::runtime::FitResult r = tessera::runtime::fit_model(path, fo);
        const tessera::runtime::Plan& pl = r.plan;
        plan->n_layer = pl.n_layer;
        plan->n_gpu_layers = pl.n_gpu_layers;
        plan->n_ctx = r.n_ctx;
        plan->fits = pl.fits ? 1 : 0;
        std::snprintf(plan->gpu, sizeof plan->gpu, "%s", r.gpu.c_str());
        plan->gpu_budget = r.gpu_budget;
        plan->gpu_weight_bytes = pl.gpu_weight_bytes;
        plan->gpu_kv_bytes = pl.gpu_kv_bytes;
        plan->gpu_compute_bytes = pl.gpu_compute_bytes;
        plan->cpu_weight_bytes = pl.cpu_weight_bytes;
        plan->cpu_kv_bytes = pl.cpu_kv_bytes;
        plan->cpu_compute_bytes = pl.cpu_compute_bytes;
        plan->cpu_pinned_bytes = pl.cpu_pinned_bytes;
        plan->pp_tokens_per_s = pl.pp_tokens_per_s;
        plan->tg_tokens_per_s = pl.tg_tokens_per_s;
        plan->n_gpus = static_cast<int32_t>(std::min<size_t>(r.gpus.size(), TESSERA_MAX_GPUS));
        for (size_t g = 0; g < static_cast<size_t>(plan->n_gpus); ++g) {
            tessera_fit_gpu& o = plan->gpus[g];
            std::snprintf(o.name, sizeof o.name, "%s", r.gpus[g].c_str());
            o.budget = r.gpu_budgets[g];
            if (g < pl.gpus.size()) {
                o.n_layers = pl.gpus[g].n_layers;
                o.weight_bytes = pl.gpus[g].weight_bytes;
                o.kv_bytes = pl.gpus[g].kv_bytes;
                o.compute_bytes = pl.gpus[g].compute_bytes;
            }
        }
    });
}
