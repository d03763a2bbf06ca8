// bench-model SHAPE TYPE OUT.gguf: writes a random-weight Llama model of a real model's
// shape, for speed measurements at sizes no small real model has. The weights are uniform
// noise scaled like trained ones, quantized by the same mix rules as `tessera quantize`;
// the vocabulary is a synthetic SentencePiece one of the real size (byte tokens plus
// fillers), so any GGUF reader that expects a tokenizer loads the file.
//
// Shapes: smollm2-135m (30 layers, 576 wide, FFN 1536, 9 heads, 3 KV heads, 49152 tokens,
// the output tied to the embeddings), tinyllama-1.1b (22 layers, 2048 wide, FFN 5632, 32
// heads, 4 KV heads, 32000 tokens) and llama3-8b (32 layers, 4096 wide, FFN 14336, 32
// heads, 8 KV heads, 128256 tokens).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "runtime/quantize.h"
#include "tensor/error.h"
#include "tensor/gguf_writer.h"
#include "tensor/quant/quant.h"

namespace {

struct Shape {
    const char* name;
    const char* display;
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab, n_ctx;
    float rope_base;
    bool tied = false;  // no output.weight: the output head is the embedding matrix
};

const Shape kShapes[] = {
    {"smollm2-135m", "SmolLM2-135M shape (random weights)", 30, 576, 1536, 9, 3, 49152, 8192, 100000.0f, true},
    {"tinyllama-1.1b", "TinyLlama-1.1B shape (random weights)", 22, 2048, 5632, 32, 4, 32000, 2048, 10000.0f},
    {"llama3-8b", "Llama-3-8B shape (random weights)", 32, 4096, 14336, 32, 8, 128256, 8192, 500000.0f},
};

uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct Builder {
    tessera::gguf::Writer w;
    std::vector<std::unique_ptr<std::vector<uint8_t>>> blobs;
    const tessera::QuantMix* mix;
    int n_layer;
    uint64_t seed = 1;

    void matrix(const std::string& name, int64_t cols, int64_t rows, float scale) {
        const int64_t ne[2] = {cols, rows};
        const int il = name.rfind("blk.", 0) == 0 ? std::atoi(name.c_str() + 4) : -1;
        const tessera::DType t = tessera::choose_quant_type(*mix, name, 2, ne, il, n_layer, true, false);
        const size_t rs = tessera::row_size(t, cols);
        auto blob = std::make_unique<std::vector<uint8_t>>(rs * static_cast<size_t>(rows));
        const uint64_t s = ++seed;
#pragma omp parallel
        {
            std::vector<float> x(static_cast<size_t>(cols));
#pragma omp for schedule(dynamic, 64)
            for (int64_t r = 0; r < rows; ++r) {
                uint64_t state = mix64(s * 0x100000001b3ull + static_cast<uint64_t>(r));
                for (float& v : x) {
                    state = mix64(state);
                    v = scale * (static_cast<float>(static_cast<int32_t>(state >> 40) - (1 << 23)) / (1 << 23));
                }
                tessera::quant::quantize_row(t, x.data(), blob->data() + static_cast<size_t>(r) * rs, cols);
            }
        }
        w.add_tensor(name, t, ne, blob->data());
        blobs.push_back(std::move(blob));
    }
    void norm(const std::string& name, int64_t n) {
        auto blob = std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(n) * 4);
        for (int64_t i = 0; i < n; ++i) {
            const float v = 1.0f + 0.1f * static_cast<float>(static_cast<int64_t>(mix64(seed + static_cast<uint64_t>(i)) % 201) - 100) / 100.0f;
            std::memcpy(blob->data() + i * 4, &v, 4);
        }
        const int64_t ne[1] = {n};
        w.add_tensor(name, tessera::DType::F32, ne, blob->data());
        blobs.push_back(std::move(blob));
    }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: bench-model SHAPE TYPE OUT.gguf\n  SHAPE: smollm2-135m | tinyllama-1.1b | llama3-8b\n"
                             "  TYPE: any 'tessera quantize' type (F16, Q8_0, Q4_0, Q4_K_M, ...)\n");
        return 2;
    }
    const Shape* shape = nullptr;
    for (const Shape& s : kShapes)
        if (!std::strcmp(argv[1], s.name)) shape = &s;
    const tessera::QuantMix* mix = tessera::find_quant_mix(argv[2]);
    if (!shape || !mix) {
        std::fprintf(stderr, "error: unknown %s '%s'\n", shape ? "type" : "shape", shape ? argv[2] : argv[1]);
        return 2;
    }
    try {
        Builder b{{}, {}, mix, shape->n_layer};
        auto& w = b.w;
        const Shape& s = *shape;
        const int head_dim = s.n_embd / s.n_head;
        w.set_string("general.architecture", "llama");
        w.set_string("general.name", s.display);
        w.set_u32("general.file_type", mix->file_type);
        w.set_u32("llama.block_count", static_cast<uint32_t>(s.n_layer));
        w.set_u32("llama.context_length", static_cast<uint32_t>(s.n_ctx));
        w.set_u32("llama.embedding_length", static_cast<uint32_t>(s.n_embd));
        w.set_u32("llama.feed_forward_length", static_cast<uint32_t>(s.n_ff));
        w.set_u32("llama.attention.head_count", static_cast<uint32_t>(s.n_head));
        w.set_u32("llama.attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
        w.set_u32("llama.rope.dimension_count", static_cast<uint32_t>(head_dim));
        w.set_f32("llama.rope.freq_base", s.rope_base);
        w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        w.set_u32("llama.vocab_size", static_cast<uint32_t>(s.n_vocab));
        // A synthetic SentencePiece vocabulary: <unk> <s> </s>, the 256 byte tokens, fillers.
        std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
        std::vector<float> scores = {0, 0, 0};
        std::vector<int32_t> types = {2, 3, 3};
        for (int i = 0; i < 256; ++i) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "<0x%02X>", i);
            tokens.push_back(buf);
            scores.push_back(0);
            types.push_back(6);
        }
        for (int i = static_cast<int>(tokens.size()); i < s.n_vocab; ++i) {
            tokens.push_back("\xe2\x96\x81t" + std::to_string(i));
            scores.push_back(-static_cast<float>(i));
            types.push_back(1);
        }
        w.set_string("tokenizer.ggml.model", "llama");
        w.set("tokenizer.ggml.tokens", tessera::gguf::OwnedValue::string_array(std::move(tokens)));
        w.set("tokenizer.ggml.scores", tessera::gguf::OwnedValue::numeric_array(tessera::gguf::ValueType::F32,
                                                                               scores.data(), scores.size()));
        w.set("tokenizer.ggml.token_type", tessera::gguf::OwnedValue::numeric_array(tessera::gguf::ValueType::I32,
                                                                                   types.data(), types.size()));
        w.set_u32("tokenizer.ggml.bos_token_id", 1);
        w.set_u32("tokenizer.ggml.eos_token_id", 2);

        const int64_t q = static_cast<int64_t>(s.n_head) * head_dim, kv = static_cast<int64_t>(s.n_head_kv) * head_dim;
        const float ws = 1.0f / std::sqrt(static_cast<float>(s.n_embd));
        b.matrix("token_embd.weight", s.n_embd, s.n_vocab, 1.0f);
        b.norm("output_norm.weight", s.n_embd);
        if (!s.tied) b.matrix("output.weight", s.n_embd, s.n_vocab, ws);
        for (int il = 0; il < s.n_layer; ++il) {
            const std::string p = "blk." + std::to_string(il) + ".";
            b.norm(p + "attn_norm.weight", s.n_embd);
            b.matrix(p + "attn_q.weight", s.n_embd, q, 2 * ws);
            b.matrix(p + "attn_k.weight", s.n_embd, kv, 2 * ws);
            b.matrix(p + "attn_v.weight", s.n_embd, kv, ws);
            b.matrix(p + "attn_output.weight", q, s.n_embd, 1.0f / std::sqrt(static_cast<float>(q)));
            b.norm(p + "ffn_norm.weight", s.n_embd);
            b.matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, 2 * ws);
            b.matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, 2 * ws);
            b.matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, 1.0f / std::sqrt(static_cast<float>(s.n_ff)));
            std::fprintf(stderr, "\rbench-model: layer %d/%d", il + 1, s.n_layer);
        }
        std::fprintf(stderr, "\n");
        w.write(argv[3]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
