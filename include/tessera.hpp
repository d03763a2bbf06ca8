// tessera.hpp: a header-only C++ convenience layer over tessera.h. RAII handles that
// free themselves, errors as tessera::Error exceptions (thrown in the app's own code,
// never across the C boundary), and std::string / std::vector in place of buffers.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tessera.h"

namespace tessera {

class Error : public std::runtime_error {
public:
    Error(tessera_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    tessera_status status() const { return status_; }

private:
    tessera_status status_;
};

inline void check(tessera_status st) {
    if (st != TESSERA_OK) throw Error(st, tessera_last_error());
}

class Model {
public:
    explicit Model(const std::string& path, tessera_model_params params = tessera_model_default_params()) {
        tessera_model* m = nullptr;
        check(tessera_model_load(path.c_str(), &params, &m));
        m_.reset(m);
    }
    tessera_model* get() const { return m_.get(); }

    std::vector<int32_t> tokenize(std::string_view text, bool add_special = true, bool parse_special = true) const {
        std::vector<int32_t> ids(text.size() + 8);
        int32_t n = 0;
        tessera_status st = tessera_tokenize(get(), text.data(), text.size(), add_special, parse_special, ids.data(),
                                             static_cast<int32_t>(ids.size()), &n);
        if (st != TESSERA_OK && n > static_cast<int32_t>(ids.size())) {
            ids.resize(static_cast<size_t>(n));
            st = tessera_tokenize(get(), text.data(), text.size(), add_special, parse_special, ids.data(), n, &n);
        }
        check(st);
        ids.resize(static_cast<size_t>(n));
        return ids;
    }

    std::string detokenize(const std::vector<int32_t>& ids) const {
        size_t n = 0;
        tessera_detokenize(get(), ids.data(), static_cast<int32_t>(ids.size()), nullptr, 0, &n);
        std::string s(n + 1, '\0');
        check(tessera_detokenize(get(), ids.data(), static_cast<int32_t>(ids.size()), s.data(), s.size(), &n));
        s.resize(n);
        return s;
    }

    // The model's chat template applied to `messages` ({role, content} pairs).
    std::string apply_chat_template(const std::vector<std::pair<std::string, std::string>>& messages,
                                    bool add_generation_prompt = true) const;

    int32_t eos() const { return tessera_token_eos(get()); }
    int32_t n_vocab() const { return tessera_vocab_size(get()); }

private:
    struct Free {
        void operator()(tessera_model* m) const { tessera_model_free(m); }
    };
    std::unique_ptr<tessera_model, Free> m_;
};

class Context {
public:
    explicit Context(const Model& model, tessera_context_params params = tessera_context_default_params()) {
        tessera_context* c = nullptr;
        check(tessera_context_new(model.get(), &params, &c));
        c_.reset(c);
    }
    tessera_context* get() const { return c_.get(); }
    void decode(const std::vector<int32_t>& tokens, bool all_logits = false) {
        check(tessera_decode(get(), tokens.data(), static_cast<int32_t>(tokens.size()), all_logits));
    }
    void decode(int32_t token) { check(tessera_decode(get(), &token, 1, 0)); }
    int32_t n_past() const { return tessera_context_n_past(get()); }
    int32_t n_ctx() const { return tessera_context_n_ctx(get()); }
    // Returns how many tokens the sequence keeps (see tessera_context_truncate).
    int32_t truncate(int32_t n) { return tessera_context_truncate(get(), n); }

private:
    struct Free {
        void operator()(tessera_context* c) const { tessera_context_free(c); }
    };
    std::unique_ptr<tessera_context, Free> c_;
};

class Sampler {
public:
    explicit Sampler(tessera_sampler_params params = tessera_sampler_default_params()) {
        tessera_sampler* s = nullptr;
        check(tessera_sampler_new(&params, &s));
        s_.reset(s);
    }
    int32_t sample(const Context& ctx, int32_t row = -1) {
        int32_t t = 0;
        check(tessera_sampler_sample(s_.get(), ctx.get(), row, &t));
        return t;
    }
    void accept(int32_t token) { tessera_sampler_accept(s_.get(), token); }

private:
    struct Free {
        void operator()(tessera_sampler* s) const { tessera_sampler_free(s); }
    };
    std::unique_ptr<tessera_sampler, Free> s_;
};

// Streams token text: push() returns only complete UTF-8.
class Detokenizer {
public:
    explicit Detokenizer(const Model& model) {
        tessera_detokenizer* d = nullptr;
        check(tessera_detokenizer_new(model.get(), &d));
        d_.reset(d);
    }
    std::string push(int32_t token) {
        const char* t = nullptr;
        size_t n = 0;
        check(tessera_detokenizer_push(d_.get(), token, &t, &n));
        return std::string(t, n);
    }
    std::string flush() {
        const char* t = nullptr;
        size_t n = 0;
        check(tessera_detokenizer_flush(d_.get(), &t, &n));
        return std::string(t, n);
    }

private:
    struct Free {
        void operator()(tessera_detokenizer* d) const { tessera_detokenizer_free(d); }
    };
    std::unique_ptr<tessera_detokenizer, Free> d_;
};

inline std::string Model::apply_chat_template(const std::vector<std::pair<std::string, std::string>>& messages,
                                              bool add_generation_prompt) const {
    const tessera_gguf* g = tessera_model_gguf(get());
    int64_t k = tessera_gguf_find_key(g, "tokenizer.chat_template");
    const char* data = nullptr;
    size_t len = 0;
    if (k < 0 || tessera_gguf_value_string(tessera_gguf_kv_value(g, k), &data, &len) != TESSERA_OK)
        throw Error(TESSERA_ERROR_UNSUPPORTED, "the model has no chat template");
    std::string tmpl(data, len);
    std::vector<tessera_chat_message> msgs;
    for (const auto& [role, content] : messages) msgs.push_back({role.c_str(), content.c_str()});
    auto token_text = [&](int32_t id) {
        const char* t = nullptr;
        size_t n = 0;
        return id >= 0 && tessera_token_text(get(), id, &t, &n) == TESSERA_OK ? std::string(t, n) : std::string();
    };
    std::string bos = token_text(tessera_token_bos(get())), eos = token_text(tessera_token_eos(get()));
    char* out = nullptr;
    check(tessera_chat_render(tmpl.c_str(), msgs.data(), msgs.size(), add_generation_prompt, bos.c_str(), eos.c_str(),
                              &out));
    std::string s(out);
    tessera_free(out);
    return s;
}

}  // namespace tessera
