// A compute graph: an arena of tensors and the builder functions that create op nodes.
// Builders infer the result's shape and check the inputs when the node is built, with
// a message that names the op and the shapes. Nodes are created after their inputs, so
// creation order is an evaluation order.
#pragma once

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace tessera {

// RoPE modes, as in GGUF models: normal rotates adjacent pairs (x[2i], x[2i+1]); NeoX
// rotates (x[i], x[i + n_dims/2]).
enum class RopeMode : int32_t { Normal = 0, NeoX = 2 };

struct RopeParams {
    int32_t n_dims = 0;  // rotated dimensions (<= head size); the rest pass through
    RopeMode mode = RopeMode::Normal;
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;  // 1 / linear scaling factor
    // YaRN: ext_factor 0 disables it; attn_factor scales cos/sin.
    float ext_factor = 0.0f;
    float attn_factor = 1.0f;
    float beta_fast = 32.0f;
    float beta_slow = 1.0f;
    int32_t n_ctx_orig = 0;  // training context, for YaRN's correction dims
};

class Graph {
public:
    Graph() = default;
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;

    // ---- leaves ----
    // A tensor whose data the caller provides (an input) or places in a buffer (a weight).
    Tensor* new_tensor(DType type, std::span<const int64_t> ne, const char* name = nullptr);
    Tensor* new_tensor(DType type, std::initializer_list<int64_t> ne, const char* name = nullptr) {
        return new_tensor(type, std::span<const int64_t>(ne.begin(), ne.size()), name);
    }
    // An input leaf: memory from the graph's compute buffer, set before each evaluation.
    Tensor* input(DType type, std::initializer_list<int64_t> ne, const char* name = nullptr);
    // Marks a tensor to be read after evaluation (its memory is not reused).
    void mark_output(Tensor* t);

    // ---- views (no computation) ----
    Tensor* view(Tensor* a, std::span<const int64_t> ne, std::span<const size_t> nb, size_t offset);
    Tensor* reshape(Tensor* a, std::initializer_list<int64_t> ne);
    // Dimension i of `a` becomes dimension axes[i] of the result.
    Tensor* permute(Tensor* a, int ax0, int ax1, int ax2, int ax3);
    Tensor* transpose(Tensor* a) { return permute(a, 1, 0, 2, 3); }
    Tensor* cont(Tensor* a);

    // ---- ops ----
    // Rows of `a` ([E, R], any type) picked by `ids` (I32 [n]) -> F32 [E, n].
    Tensor* get_rows(Tensor* a, Tensor* ids);
    // Element-wise, `b` broadcast over `a` (each b.ne[i] divides a.ne[i]); F32.
    Tensor* add(Tensor* a, Tensor* b);
    Tensor* mul(Tensor* a, Tensor* b);
    Tensor* scale(Tensor* a, float s);
    // Over ne[0]: x / sqrt(mean(x^2) + eps), and (x - mean) / sqrt(var + eps). rms_norm with
    // a `weight` (F32 [ne[0]]) multiplies each row by it in the same pass: the result of
    // mul(rms_norm(a), weight), bit for bit, without writing and reading the rows twice.
    Tensor* rms_norm(Tensor* a, float eps, Tensor* weight = nullptr);
    Tensor* norm(Tensor* a, float eps);
    // a: [K, N, A2, A3] any type; b: [K, M, B2, B3] F32 with A2 | B2, A3 | B3
    // -> F32 [N, M, B2, B3], out[m][n] = dot(a row n, b row m).
    Tensor* mul_mat(Tensor* a, Tensor* b);
    // x: [head_dim, n_head, n_tokens] F32, pos: I32 [n_tokens], freq_factors: optional
    // F32 [n_dims/2] dividing each frequency (Llama 3, LongRoPE).
    Tensor* rope(Tensor* x, Tensor* pos, Tensor* freq_factors, const RopeParams& p);
    // softmax(a * scale + mask) over ne[0]; mask: optional F32/F16 [ne0, >= ne1], broadcast
    // over dims 2 and 3.
    Tensor* soft_max(Tensor* a, Tensor* mask, float scale);
    // q: [D, n_q, H, S] F32; k: [D, n_kv, H_kv, S], v: [Dv, n_kv, H_kv, S] F32/F16/Q8_0 with
    // H_kv | H; mask: optional F32/F16 [n_kv, >= n_q] (0 or -inf: causal, sliding window).
    // softcap > 0 applies softcap * tanh(s / softcap) to the scores. -> F32 [Dv, H, n_q, S].
    // kv_start (optional, I32 [S]): the S slices of q are S sequences of one cache; k and v
    // are the whole cache (dim 3 of 1) and slice s attends over its rows kv_start[s] ..
    // kv_start[s] + n_kv - 1 with its own mask [n_kv, >= n_q, 1, S] (n_kv = mask's rows).
    Tensor* flash_attn(Tensor* q, Tensor* k, Tensor* v, Tensor* mask, float scale, float softcap = 0.0f,
                       Tensor* kv_start = nullptr);
    Tensor* silu(Tensor* a);
    Tensor* gelu(Tensor* a);      // tanh approximation
    Tensor* gelu_erf(Tensor* a);  // exact
    Tensor* tanh(Tensor* a);
    // silu(a) * b and gelu(a) * b, a and b of the same shape.
    Tensor* swiglu(Tensor* a, Tensor* b);
    Tensor* geglu(Tensor* a, Tensor* b);
    // Copies `a` into `b`'s memory, converting the type (e.g. F32 -> F16 for the KV
    // cache); returns a view of `b`. Same element count; same ne[0] when `b` is quantized.
    Tensor* cpy(Tensor* a, Tensor* b);
    // Writes rows of `src` (F32 [E, n]) into `dst` ([E, R], any type with a quantizer) at
    // rows `idx` (I32 or I64 [n]); returns a view of `dst`.
    Tensor* set_rows(Tensor* dst, Tensor* src, Tensor* idx);
    // set_rows(dst, rope(x, pos, freq_factors, p) as [head * n_head, n], idx) in one pass
    // (the rotated keys go straight into the cache): x F32 [head, n_head, n]; each token's
    // rotated heads become row idx[t] of dst. The values are those of the two ops.
    Tensor* rope_set_rows(Tensor* dst, Tensor* x, Tensor* pos, Tensor* freq_factors, const RopeParams& p,
                          Tensor* idx);
    // a and b joined along `dim`; F32.
    Tensor* concat(Tensor* a, Tensor* b, int dim);
    // Index of the largest element of each row: F32 [E, n] -> I32 [n].
    Tensor* argmax(Tensor* a);

    // From now on, matrix products are marked kFlagBatchInvariant.
    void set_batch_invariant(bool on) { batch_invariant_ = on; }

    // Every tensor, in creation order (a valid evaluation order).
    const std::deque<Tensor>& tensors() const { return tensors_; }
    std::deque<Tensor>& tensors() { return tensors_; }
    size_t size() const { return tensors_.size(); }

private:
    Tensor* make(DType type, std::span<const int64_t> ne);
    Tensor* make_op(Op op, DType type, std::span<const int64_t> ne, std::initializer_list<Tensor*> srcs);
    Tensor* make_view(Tensor* a, std::span<const int64_t> ne, std::span<const size_t> nb, size_t offset);

    std::deque<Tensor> tensors_;  // a deque keeps pointers stable as it grows
    bool batch_invariant_ = false;
};

// "[4096, 32, 7]" for messages.
std::string shape_string(const Tensor* t);

}  // namespace tessera
