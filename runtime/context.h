// A context: the KV cache, the compute buffers and the logits of the last decode.
// With one sequence (the default), decode() appends tokens to it, in batches of at most
// n_batch. With n_seq >= 1, the cache's rows ("cells") are split evenly between n_seq
// sequences: decode_seqs() appends tokens of any of them in one batch (each token sees only
// its own sequence's cells), which is how a server decodes all its users in one pass; a
// sequence gets the same logits whatever else the batch holds.
// A context belongs to one thread at a time; many contexts may share one model.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/kv_cache.h"
#include "runtime/loader.h"
#include "tensor/scheduler.h"

namespace tessera::runtime {

struct ContextOptions {
    int32_t n_ctx = 0;      // 0: the model's training context, at most 4096
    int32_t n_batch = 512;  // tokens per forward pass
    int32_t n_threads = 0;  // 0: all cores
    DType kv_type = DType::F16;
    int32_t n_seq = 0;  // 0: one sequence, decode(); 1 or more: n_ctx / n_seq cells each, decode_seqs()
};

// One token of a multi-sequence batch: appended to sequence `seq` at its next position;
// `logits`: keep this token's logits.
struct SeqToken {
    int32_t token = 0;
    int32_t seq = 0;
    bool logits = false;
};

struct Timings {
    double prompt_ms = 0;  // decodes of more than one token
    int64_t prompt_tokens = 0;
    double gen_ms = 0;  // decodes of one token
    int64_t gen_tokens = 0;
};

class Context {
public:
    Context(const Model& model, const ContextOptions& options);
    ~Context();

    // Appends `tokens` at the end of the sequence. With all_logits, logits of every
    // token are kept (perplexity); otherwise only the last token's. Throws when the
    // tokens do not fit in the context, an id is out of range, or the abort check asked to
    // stop (ErrorKind::Aborted); the sequence is then as it was before the call (sliding-
    // window rings included: rows a later batch overwrote are put back).
    void decode(std::span<const int32_t> tokens, bool all_logits);
    // Asked between the nodes of a decode (on the calling thread); true stops it.
    void set_abort(AbortCheck abort) { scheduler_.set_abort(std::move(abort)); }
    // Logits of output row i of the last decode (-1: the last row); null if there is no
    // such row (other negative i included).
    const float* logits(int32_t i) const;
    int32_t n_outputs() const { return n_outputs_; }

    int32_t n_past() const { return n_past_; }
    int32_t n_ctx() const { return cache_.n_ctx(); }
    // Forgets tokens from position n on. Returns how many tokens the sequence keeps: fewer
    // than n (0) when a sliding-window ring no longer holds what position n would see.
    int32_t truncate(int32_t n);
    // ---- several sequences (n_seq >= 1) ----
    int32_t n_seq() const { return options_.n_seq; }
    // Tokens one sequence may hold: n_ctx / n_seq (n_ctx with n_seq 0).
    int32_t seq_cells() const;
    // Appends each token to its sequence, in order, in batches of at most n_batch; the logits
    // of the tokens marked are output rows 0, 1, ... Throws when a sequence's cells do not suffice, a
    // sequence or token id is out of range, or the abort check stops it; every sequence is
    // then as it was before the call.
    void decode_seqs(std::span<const SeqToken> batch);
    // Tokens sequence `seq` holds (its next position).
    int32_t seq_len(int32_t seq) const;
    // Forgets the tokens of sequence `seq` from position n on (0: all of them), freeing
    // their cells.
    void seq_truncate(int32_t seq, int32_t n);
    // Cells no sequence holds (all sequences together).
    int32_t free_cells() const;
    // A sequence's first n tokens as bytes (their cells of every layer), to keep outside the
    // context and load into any sequence of a context of the same model, n_ctx, n_seq and
    // cache type later: a server's cache of prompts. seq_state_bytes(n) is their size.
    size_t seq_state_bytes(int32_t n) const;
    void seq_save(int32_t seq, int32_t n, std::span<uint8_t> out) const;
    // Sequence `seq` then holds the n tokens of the state (what it held is forgotten).
    void seq_load(int32_t seq, int32_t n, std::span<const uint8_t> state);

    const Timings& timings() const { return timings_; }
    void reset_timings() { timings_ = Timings{}; }
    const Model& model() const { return model_; }
    const KvCache& cache() const { return cache_; }
    size_t compute_bytes() const;
    // The compute buffers and KV cache rows held in host memory and in a GPU's.
    struct Memory {
        size_t cpu_kv = 0, gpu_kv = 0, cpu_compute = 0, gpu_compute = 0;
    };
    Memory memory() const;

private:
    struct BatchGraph;
    // What a batch's graph is built for: equal shapes share one planned graph.
    struct SpanShape {
        int32_t n_rows = 0, cell0 = 0, n_kv = 0;
        bool operator==(const SpanShape&) const = default;
    };
    struct BatchShape {
        int32_t n = 0, n_kv = 0, n_out = 0, n_kv_swa = 0;
        bool any_swa = false;
        std::vector<SpanShape> spans;  // several sequences: one per sequence in the batch
        int32_t n_single = 0, n_kv_single = 0;  // leading one-row spans attending in one node
        bool operator==(const BatchShape&) const = default;
    };
    void decode_batch(const int32_t* tokens, int32_t n, bool all_logits);
    void decode_seq_batch(std::span<const SeqToken> chunk);
    BatchGraph& batch_graph(const BatchShape& shape);
    void check_ids(std::span<const int32_t> tokens) const;

    const Model& model_;
    ContextOptions options_;
    KvCache cache_;
    Scheduler scheduler_;
    // The last batch's graph, planned. The next batch of the same shape only refills its
    // inputs: decoding rebuilds the graph once every kKvPadding tokens, not every token.
    std::unique_ptr<BatchGraph> graph_;
    int32_t n_past_ = 0;
    std::vector<int32_t> ring_pos_;  // position held by each ring row (-1: none)
    // Several sequences: each one's length (its tokens are in rows s * seq_cells() on).
    std::vector<int32_t> seq_len_;
    // Whether sequences of one row in a batch attend in one node (every layer's backend
    // runs such a node: the CPU's).
    bool group_singles_ = false;
    std::vector<float> logits_;  // [n_outputs][n_vocab]
    int32_t n_outputs_ = 0;
    Timings timings_;
};

}  // namespace tessera::runtime
