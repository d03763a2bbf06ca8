// Random-weight Llama models for the model tests.
#include "tests/models/random_model.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>

#include "tensor/gguf_writer.h"
#include "tensor/quant/quant.h"

namespace tessera::test {

namespace {

// splitmix64: exactly specified, so weights are identical everywhere.
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    // Uniform in [-scale, scale), a multiple of 2^-24 * scale.
    float uniform(float scale) {
        int32_t v = static_cast<int32_t>(next() >> 40) - (1 << 23);
        return static_cast<float>(v) * (scale / static_cast<float>(1 << 23));
    }
};

struct Store {
    std::vector<std::unique_ptr<std::vector<uint8_t>>> blobs;
};

void add(gguf::Writer& w, Store& st, Rng& rng, const std::string& name, DType type, std::vector<int64_t> ne,
         float scale, float offset = 0.0f) {
    const int64_t row = ne[0];
    int64_t rows = 1;
    for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
    std::vector<float> x(static_cast<size_t>(row));
    auto blob = std::make_unique<std::vector<uint8_t>>(row_size(type, row) * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        for (float& v : x) v = offset + rng.uniform(scale);
        quant::quantize_row(type, x.data(), blob->data() + static_cast<size_t>(r) * row_size(type, row), row);
    }
    w.add_tensor(name, type, ne, blob->data());
    st.blobs.push_back(std::move(blob));
}

}  // namespace

std::vector<RandomLlamaConfig> random_llama_configs() {
    return {
        // name, vocab, embd, layers, heads, kv heads, head dim, ff, type, tied, rope_freqs, base, seed
        {"llama-gqa1-hd64-f32", 67, 128, 2, 2, 2, 64, 96, DType::F32, false, false, 10000.0f, 1},
        {"llama-gqa3-hd64-f16-tied", 101, 192, 2, 3, 1, 64, 160, DType::F16, true, false, 500000.0f, 2},
        {"llama-gqa4-hd128-q8_0", 83, 256, 2, 4, 1, 128, 224, DType::Q8_0, false, true, 500000.0f, 3},
        {"llama-gqa3-hd128-q4_0-tied", 59, 384, 2, 6, 2, 64 * 2, 288, DType::Q4_0, true, false, 10000.0f, 4},
        {"llama-swa3-gqa2-f32", 61, 128, 2, 4, 2, 32, 96, DType::F32, false, false, 10000.0f, 5, "llama", 3},
        {"qwen2-gqa2-hd64-q8_0", 71, 128, 2, 4, 2, 64, 160, DType::Q8_0, false, false, 1000000.0f, 6, "qwen2"},
        {"qwen3-gqa2-hd128-f16", 53, 192, 2, 2, 1, 128, 96, DType::F16, true, false, 1000000.0f, 7, "qwen3"},
        {"phi3-fused-hd32-q4_0", 67, 96, 2, 3, 3, 32, 64, DType::Q4_0, false, true, 10000.0f, 8, "phi3"},
        {"gemma3-swa4-hd64-q8_0", 73, 128, 6, 2, 1, 64, 128, DType::Q8_0, true, false, 1000000.0f, 9, "gemma3", 4},
        {"gemma2-swa3-softcap-f16", 79, 128, 2, 2, 2, 64, 96, DType::F16, true, false, 10000.0f, 10, "gemma2", 3},
    };
}

std::vector<int32_t> reference_tokens(const RandomLlamaConfig& c) {
    std::vector<int32_t> t;
    for (int i = 0; i < 7; ++i) t.push_back(static_cast<int32_t>((i * 37 + 5) % c.n_vocab));
    return t;
}

void write_random_llama(const RandomLlamaConfig& c, const std::string& path) {
    gguf::Writer w;
    Store st;
    Rng rng{c.seed};
    const std::string a = c.arch;
    const bool phi3 = a == "phi3", gemma3 = a == "gemma3", gemma = gemma3 || a == "gemma2";
    w.set_string("general.architecture", a);
    w.set_string("general.name", c.name);
    w.set_u32(a + ".block_count", static_cast<uint32_t>(c.n_layer));
    w.set_u32(a + ".context_length", 256);
    w.set_u32(a + ".embedding_length", static_cast<uint32_t>(c.n_embd));
    w.set_u32(a + ".feed_forward_length", static_cast<uint32_t>(c.n_ff));
    w.set_u32(a + ".attention.head_count", static_cast<uint32_t>(c.n_head));
    w.set_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(c.n_head_kv));
    w.set_u32(a + ".attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.set_u32(a + ".attention.value_length", static_cast<uint32_t>(c.head_dim));
    w.set_u32(a + ".rope.dimension_count", static_cast<uint32_t>(c.head_dim));
    w.set_f32(a + ".rope.freq_base", c.rope_base);
    w.set_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_u32(a + ".vocab_size", static_cast<uint32_t>(c.n_vocab));
    if (c.sliding_window > 0) w.set_u32(a + ".attention.sliding_window", static_cast<uint32_t>(c.sliding_window));
    if (phi3) w.set_u32(a + ".rope.scaling.original_context_length", 256);
    if (a == "gemma2") {  // small caps, so random weights actually reach them
        w.set_f32(a + ".attn_logit_softcapping", 0.5f);
        w.set_f32(a + ".final_logit_softcapping", 2.0f);
    }

    const int64_t q_out = static_cast<int64_t>(c.n_head) * c.head_dim, kv_out = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
    const float ws = 1.0f / std::sqrt(static_cast<float>(c.n_embd));
    add(w, st, rng, "token_embd.weight", c.weight_type, {c.n_embd, c.n_vocab}, gemma ? ws : 1.0f);
    add(w, st, rng, "output_norm.weight", DType::F32, {c.n_embd}, 0.2f, 1.0f);
    if (!c.tied_output) add(w, st, rng, "output.weight", c.weight_type, {c.n_embd, c.n_vocab}, ws);
    if (c.rope_freqs) {
        // Llama 3 style: high frequencies kept, low ones divided by up to 8.
        auto blob = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(c.head_dim / 2) * 4);
        for (int i = 0; i < c.head_dim / 2; ++i) {
            float f = 1.0f + 7.0f * static_cast<float>(i) / static_cast<float>(c.head_dim / 2 - 1);
            std::memcpy(blob->data() + i * 4, &f, 4);
        }
        const int64_t ne[] = {c.head_dim / 2};
        w.add_tensor(phi3 ? "rope_factors_short.weight" : "rope_freqs.weight", DType::F32, ne, blob->data());
        if (phi3) {
            // Long factors too, so the loader has both; a context of 256 uses the short ones.
            auto lblob = std::make_unique<std::vector<uint8_t>>(*blob);
            for (int i = 0; i < c.head_dim / 2; ++i) {
                float f = 4.0f;
                std::memcpy(lblob->data() + i * 4, &f, 4);
            }
            w.add_tensor("rope_factors_long.weight", DType::F32, ne, lblob->data());
            st.blobs.push_back(std::move(lblob));
        }
        st.blobs.push_back(std::move(blob));
    }
    const float wo_scale = 1.0f / std::sqrt(static_cast<float>(q_out));
    const float down_scale = 1.0f / std::sqrt(static_cast<float>(c.n_ff));
    for (int il = 0; il < c.n_layer; ++il) {
        const std::string p = "blk." + std::to_string(il) + ".";
        add(w, st, rng, p + "attn_norm.weight", DType::F32, {c.n_embd}, 0.2f, 1.0f);
        if (phi3) {
            add(w, st, rng, p + "attn_qkv.weight", c.weight_type, {c.n_embd, q_out + 2 * kv_out}, ws * 2.0f);
        } else {
            add(w, st, rng, p + "attn_q.weight", c.weight_type, {c.n_embd, q_out}, ws * 2.0f);
            add(w, st, rng, p + "attn_k.weight", c.weight_type, {c.n_embd, kv_out}, ws * 2.0f);
            add(w, st, rng, p + "attn_v.weight", c.weight_type, {c.n_embd, kv_out}, ws);
        }
        if (a == "qwen2") {
            add(w, st, rng, p + "attn_q.bias", DType::F32, {q_out}, 0.5f);
            add(w, st, rng, p + "attn_k.bias", DType::F32, {kv_out}, 0.5f);
            add(w, st, rng, p + "attn_v.bias", DType::F32, {kv_out}, 0.5f);
        }
        if (a == "qwen3" || gemma3) {
            add(w, st, rng, p + "attn_q_norm.weight", DType::F32, {c.head_dim}, 0.2f, 1.0f);
            add(w, st, rng, p + "attn_k_norm.weight", DType::F32, {c.head_dim}, 0.2f, 1.0f);
        }
        add(w, st, rng, p + "attn_output.weight", c.weight_type, {q_out, c.n_embd}, wo_scale);
        if (gemma) add(w, st, rng, p + "post_attention_norm.weight", DType::F32, {c.n_embd}, 0.2f, 1.0f);
        add(w, st, rng, p + "ffn_norm.weight", DType::F32, {c.n_embd}, 0.2f, 1.0f);
        if (phi3) {
            add(w, st, rng, p + "ffn_up.weight", c.weight_type, {c.n_embd, 2 * c.n_ff}, ws * 2.0f);
        } else {
            add(w, st, rng, p + "ffn_gate.weight", c.weight_type, {c.n_embd, c.n_ff}, ws * 2.0f);
            add(w, st, rng, p + "ffn_up.weight", c.weight_type, {c.n_embd, c.n_ff}, ws * 2.0f);
        }
        add(w, st, rng, p + "ffn_down.weight", c.weight_type, {c.n_ff, c.n_embd}, down_scale);
        if (gemma) add(w, st, rng, p + "post_ffw_norm.weight", DType::F32, {c.n_embd}, 0.2f, 1.0f);
    }
    w.write(path);
}

uint64_t file_fingerprint(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    uint64_t h = 0xcbf29ce484222325ull;
    char buf[65536];
    while (f) {
        f.read(buf, sizeof buf);
        for (std::streamsize i = 0; i < f.gcount(); ++i) {
            h ^= static_cast<uint8_t>(buf[i]);
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

}  // namespace tessera::test
