// Implements the contexts, decoding, sampling and model-information parts of tessera.h.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "runtime/c_api_internal.h"
#include "runtime/context.h"
#include "runtime/model.h"
#include "runtime/sampling.h"

using tessera::Error;
using tessera::ErrorKind;
using tessera::capi::guard;
using tessera::capi::set_error;

struct tessera_context {
    std::unique_ptr<tessera::runtime::Context> ctx;
    const tessera_model* model = nullptr;
    bool parse_special = true;  // tessera_generate: control-token text in prompts becomes tokens
};

struct tessera_sampler {
    std::unique_ptr<tessera::runtime::Sampler> sampler;
};

extern "C" {

tessera_context_params tessera_context_default_params(void) {
    tessera_context_params p;
    p.n_ctx = 0;
    p.n_batch = 512;
    p.n_threads = 0;
    p.kv_type = static_cast<int32_t>(tessera::DType::F16);
    p.parse_special = 1;
    p.n_seq = 0;
    return p;
}

tessera_status tessera_context_new(const tessera_model* model, const tessera_context_params* params,
                                   tessera_context** out) {
    if (out) *out = nullptr;
    return guard([&] {
        if (!model || !out) throw Error("tessera_context_new: null argument");
        if (!model->runtime)
            throw Error("tessera_context_new: the model was loaded vocab-only; load it with vocab_only = 0");
        tessera_context_params p = params ? *params : tessera_context_default_params();
        if (p.n_ctx < 0) throw Error("tessera_context_new: n_ctx " + std::to_string(p.n_ctx) + " is negative");
        if (p.n_threads < 0 || p.n_threads > TESSERA_MAX_THREADS)
            throw Error("tessera_context_new: n_threads " + std::to_string(p.n_threads) + " is outside 0.." +
                        std::to_string(TESSERA_MAX_THREADS) + " (0: all cores)");
        tessera::runtime::ContextOptions o;
        o.n_ctx = p.n_ctx;
        o.n_batch = p.n_batch > 0 ? p.n_batch : 512;
        o.n_threads = p.n_threads;
        o.kv_type = static_cast<tessera::DType>(p.kv_type);
        if (p.n_seq < 0) throw Error("tessera_context_new: n_seq " + std::to_string(p.n_seq) + " is negative");
        o.n_seq = p.n_seq;
        auto c = std::make_unique<tessera_context>();
        c->ctx = std::make_unique<tessera::runtime::Context>(*model->runtime, o);
        c->model = model;
        c->parse_special = p.parse_special != 0;
        *out = c.release();
    });
}

void tessera_context_free(tessera_context* ctx) { delete ctx; }

int32_t tessera_context_n_ctx(const tessera_context* ctx) { return ctx ? ctx->ctx->n_ctx() : 0; }
int32_t tessera_context_n_past(const tessera_context* ctx) { return ctx ? ctx->ctx->n_past() : 0; }

int32_t tessera_context_truncate(tessera_context* ctx, int32_t n) { return ctx ? ctx->ctx->truncate(n) : 0; }

void tessera_context_set_abort(tessera_context* ctx, tessera_abort_fn fn, void* user) {
    if (!ctx) return;
    guard([&] {
        if (fn)
            ctx->ctx->set_abort([fn, user] { return fn(user) != 0; });
        else
            ctx->ctx->set_abort({});
    });
}

tessera_status tessera_decode(tessera_context* ctx, const int32_t* tokens, int32_t n, int32_t all_logits) {
    return guard([&] {
        if (!ctx || (!tokens && n > 0)) throw Error("tessera_decode: null argument");
        if (n <= 0) throw Error("tessera_decode: no tokens");
        ctx->ctx->decode(std::span<const int32_t>(tokens, static_cast<size_t>(n)), all_logits != 0);
    });
}

tessera_status tessera_decode_seqs(tessera_context* ctx, const tessera_seq_token* batch, int32_t n) {
    return guard([&] {
        if (!ctx || (!batch && n > 0)) throw Error("tessera_decode_seqs: null argument");
        if (n <= 0) throw Error("tessera_decode_seqs: no tokens");
        std::vector<tessera::runtime::SeqToken> toks(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; ++i)
            toks[static_cast<size_t>(i)] = {batch[i].token, batch[i].seq, batch[i].logits != 0};
        ctx->ctx->decode_seqs(toks);
    });
}

int32_t tessera_seq_len(const tessera_context* ctx, int32_t seq) { return ctx ? ctx->ctx->seq_len(seq) : 0; }

int32_t tessera_seq_cells(const tessera_context* ctx) { return ctx ? ctx->ctx->seq_cells() : 0; }

void tessera_seq_truncate(tessera_context* ctx, int32_t seq, int32_t n) {
    if (ctx) ctx->ctx->seq_truncate(seq, n);
}

size_t tessera_seq_state_size(const tessera_context* ctx, int32_t n) {
    return ctx && ctx->ctx->n_seq() > 0 && n >= 0 && n <= ctx->ctx->seq_cells() ? ctx->ctx->seq_state_bytes(n) : 0;
}

tessera_status tessera_seq_state_save(const tessera_context* ctx, int32_t seq, int32_t n, void* dst, size_t size) {
    return guard([&] {
        if (!ctx || (!dst && size > 0)) throw Error("tessera_seq_state_save: null argument");
        ctx->ctx->seq_save(seq, n, std::span<uint8_t>(static_cast<uint8_t*>(dst), size));
    });
}

tessera_status tessera_seq_state_load(tessera_context* ctx, int32_t seq, int32_t n, const void* src, size_t size) {
    return guard([&] {
        if (!ctx || (!src && size > 0)) throw Error("tessera_seq_state_load: null argument");
        ctx->ctx->seq_load(seq, n, std::span<const uint8_t>(static_cast<const uint8_t*>(src), size));
    });
}

int32_t tessera_context_free_cells(const tessera_context* ctx) { return ctx ? ctx->ctx->free_cells() : 0; }

tessera_status tessera_context_memory(const tessera_context* ctx, tessera_memory* out) {
    if (out) *out = tessera_memory{};
    return guard([&] {
        if (!ctx || !out)
            throw Error("tessera_context_memory: ctx and out must not be NULL", ErrorKind::InvalidArgument);
        const tessera::runtime::Model& m = ctx->ctx->model();
        const auto mem = ctx->ctx->memory();
        out->gpu_weight_bytes = m.gpu_weight_bytes;
        out->cpu_weight_bytes = m.weight_bytes - m.gpu_weight_bytes;
        out->gpu_kv_bytes = mem.gpu_kv;
        out->cpu_kv_bytes = mem.cpu_kv;
        out->gpu_compute_bytes = mem.gpu_compute;
        out->cpu_compute_bytes = mem.cpu_compute;
    });
}

const float* tessera_get_logits(const tessera_context* ctx, int32_t i) {
    if (!ctx) {
        set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_get_logits: ctx is NULL");
        return nullptr;
    }
    const float* row = ctx->ctx->logits(i);
    if (!row)
        guard([&] {
            throw Error("tessera_get_logits: no logits row " + std::to_string(i) + " (the last decode kept " +
                        std::to_string(ctx->ctx->n_outputs()) + "; -1 is the last)");
        });
    return row;
}

int32_t tessera_get_n_logits(const tessera_context* ctx) { return ctx ? ctx->ctx->n_outputs() : 0; }

tessera_status tessera_context_timings(const tessera_context* ctx, tessera_timings* out) {
    if (!ctx || !out) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_context_timings: null argument");
    const auto& t = ctx->ctx->timings();
    out->load_ms = ctx->model->load_ms;
    out->prompt_ms = t.prompt_ms;
    out->prompt_tokens = t.prompt_tokens;
    out->gen_ms = t.gen_ms;
    out->gen_tokens = t.gen_tokens;
    return TESSERA_OK;
}

void tessera_context_reset_timings(tessera_context* ctx) {
    if (ctx) ctx->ctx->reset_timings();
}

tessera_sampler_params tessera_sampler_default_params(void) {
    tessera::runtime::SamplerParams d;
    tessera_sampler_params p;
    p.temperature = d.temperature;
    p.top_k = d.top_k;
    p.top_p = d.top_p;
    p.min_p = d.min_p;
    p.repeat_penalty = d.repeat_penalty;
    p.repeat_last_n = d.repeat_last_n;
    p.presence_penalty = d.presence_penalty;
    p.frequency_penalty = d.frequency_penalty;
    p.seed = d.seed;
    return p;
}

tessera_status tessera_sampler_new(const tessera_sampler_params* params, tessera_sampler** out) {
    if (out) *out = nullptr;
    return guard([&] {
        if (!out) throw Error("tessera_sampler_new: out is null");
        tessera_sampler_params p = params ? *params : tessera_sampler_default_params();
        tessera::runtime::SamplerParams s;
        s.temperature = p.temperature;
        s.top_k = p.top_k;
        s.top_p = p.top_p;
        s.min_p = p.min_p;
        s.repeat_penalty = p.repeat_penalty;
        s.repeat_last_n = p.repeat_last_n;
        s.presence_penalty = p.presence_penalty;
        s.frequency_penalty = p.frequency_penalty;
        s.seed = p.seed;
        auto smp = std::make_unique<tessera_sampler>();
        smp->sampler = std::make_unique<tessera::runtime::Sampler>(s);
        *out = smp.release();
    });
}

void tessera_sampler_free(tessera_sampler* sampler) { delete sampler; }

tessera_status tessera_sampler_sample(tessera_sampler* sampler, const tessera_context* ctx, int32_t i, int32_t* token) {
    return guard([&] {
        if (!sampler || !ctx || !token) throw Error("tessera_sampler_sample: null argument");
        const float* logits = ctx->ctx->logits(i);
        if (!logits) throw Error("tessera_sampler_sample: no logits row " + std::to_string(i) + " (decode first)");
        *token = sampler->sampler->sample(logits, ctx->ctx->model().hp.n_vocab);
    });
}

void tessera_sampler_accept(tessera_sampler* sampler, int32_t token) {
    // Out of memory: the token is not recorded (the penalties miss it); the last error
    // says so.
    if (sampler) guard([&] { sampler->sampler->accept(token); });
}

void tessera_sampler_reset(tessera_sampler* sampler) {
    if (sampler) sampler->sampler->reset();
}

tessera_status tessera_generate(tessera_context* ctx, tessera_sampler* sampler, const char* prompt, size_t len,
                                int32_t n_predict, tessera_token_fn on_token, void* user, int32_t* n_generated) {
    if (n_generated) *n_generated = 0;
    if (!ctx || !sampler || (!prompt && len > 0))
        return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_generate: null argument");
    int32_t done = 0;
    const tessera_status st = guard([&] {
        tessera::runtime::Context& c = *ctx->ctx;
        tessera::runtime::Sampler& smp = *sampler->sampler;
        const tessera::vocab::Vocab& vocab = *ctx->model->vocab;
        // BOS only at the start of the sequence: a second call continues the first.
        const std::vector<int32_t> tokens =
            vocab.tokenize(std::string_view(prompt ? prompt : "", len), c.n_past() == 0, ctx->parse_special);
        if (!tokens.empty()) {
            c.decode(tokens, false);
            for (int32_t t : tokens) smp.accept(t);
        } else if (c.n_past() == 0 || !c.logits(-1)) {
            throw Error("tessera_generate: the prompt has no tokens and there is no sequence to continue");
        }
        tessera::vocab::Detokenizer detok(vocab);
        const int32_t n_vocab = c.model().hp.n_vocab;
        while (done < n_predict) {
            const int32_t tok = smp.sample(c.logits(-1), n_vocab);
            const bool room = c.n_past() < c.n_ctx();
            if (vocab.is_eog(tok)) {  // ends the generation; kept in the sequence
                if (room) c.decode(std::span<const int32_t>(&tok, 1), false);
                break;
            }
            smp.accept(tok);
            const std::string_view text = detok.push(tok);
            ++done;
            const bool go_on = !on_token || on_token(text.data(), text.size(), tok, user) != 0;
            if (!room) break;  // the context is full: this last token could not be added
            c.decode(std::span<const int32_t>(&tok, 1), false);
            if (!go_on) break;
        }
        const std::string_view rest = detok.flush();
        if (!rest.empty() && on_token) on_token(rest.data(), rest.size(), -1, user);
    });
    if (n_generated) *n_generated = done;
    return st;
}

const char* tessera_model_architecture(const tessera_model* model) {
    return model && model->runtime ? model->runtime->hp.arch.c_str() : "";
}

const char* tessera_model_name(const tessera_model* model) {
    return model && model->runtime ? model->runtime->hp.name.c_str() : "";
}

int32_t tessera_model_n_ctx_train(const tessera_model* model) {
    return model && model->runtime ? model->runtime->hp.n_ctx_train : 0;
}
int32_t tessera_model_n_layer(const tessera_model* model) {
    return model && model->runtime ? model->runtime->hp.n_layer : 0;
}
int32_t tessera_model_n_embd(const tessera_model* model) {
    return model && model->runtime ? model->runtime->hp.n_embd : 0;
}
uint64_t tessera_model_n_params(const tessera_model* model) {
    return model && model->runtime ? model->runtime->n_params : 0;
}
uint64_t tessera_model_size(const tessera_model* model) {
    return model && model->runtime ? model->runtime->weight_bytes : 0;
}
double tessera_model_load_ms(const tessera_model* model) { return model ? model->load_ms : 0.0; }

int32_t tessera_model_n_gpu_layers(const tessera_model* model) {
    return model && model->runtime ? model->runtime->n_gpu_layers : 0;
}

const char* tessera_model_gpu(const tessera_model* model) {
    return model && model->runtime ? model->runtime->gpu_names.c_str() : "";
}

int32_t tessera_model_gpu_layers(const tessera_model* model, int32_t i) {
    if (!model || !model->runtime || i < 0 || static_cast<size_t>(i) >= model->runtime->gpus.size()) return 0;
    const tessera::Backend* g = model->runtime->gpus[static_cast<size_t>(i)];
    const auto& layers = model->runtime->layer_backend;
    return static_cast<int32_t>(std::count(layers.begin(), layers.end(), g));
}

double tessera_model_gpu_bandwidth(const tessera_model* model) {
    if (!model || !model->runtime || !model->runtime->gpu) return 0.0;
    try {
        return model->runtime->gpu->copy_bandwidth_gbs();
    } catch (...) {
        return 0.0;
    }
}

uint64_t tessera_model_gpu_bytes(const tessera_model* model) {
    return model && model->runtime ? model->runtime->gpu_weight_bytes : 0;
}

const tessera_gguf* tessera_model_gguf(const tessera_model* model) { return model ? &model->gguf_view : nullptr; }

}  // extern "C"
