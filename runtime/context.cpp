// decode(): builds the architecture's graph for a batch, fills its inputs (tokens,
// positions, the causal mask over the cache) and runs it.
#include "runtime/context.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "tensor/error.h"
#include "tensor/fp16.h"

namespace tessera::runtime {

namespace {

constexpr int32_t kKvPadding = 32;  // attend to a multiple of this many cache rows

int32_t choose_n_ctx(const Model& m, int32_t requested) {
    if (requested > 0) return requested;
    int32_t train = m.hp.n_ctx_train > 0 ? m.hp.n_ctx_train : 4096;
    return std::min(train, 4096);
}

std::vector<Backend*> scheduler_backends(const Model& m) {
    std::vector<Backend*> out;
    for (const auto& b : m.backends) out.push_back(b.get());
    return out;
}

}  // namespace

Context::Context(const Model& model, const ContextOptions& options)
    : model_(model),
      options_(options),
      cache_(model.layer_backend, model.hp, choose_n_ctx(model, options.n_ctx),
             options.n_batch > 0 ? options.n_batch : 512, options.kv_type, options.n_seq == 0),
      scheduler_(scheduler_backends(model)) {
    if (options_.n_seq < 0) throw Error("context: n_seq must be 0 or more, not " + std::to_string(options_.n_seq));
    scheduler_.set_threads(options.n_threads);
    // Prompt products of CPU layers on the GPU; not where several sequences share a batch,
    // whose rows must come out as they would alone.
    if (model.gpu && options_.n_seq == 0) scheduler_.set_offload(model.gpu, model.offload_min_batch);
    if (options_.n_batch <= 0) options_.n_batch = 512;
    ring_pos_.assign(static_cast<size_t>(cache_.ring_rows()), -1);
    if (options_.n_seq > 0) {
        if (options_.n_seq > n_ctx())
            throw Error("context: " + std::to_string(options_.n_seq) + " sequences do not fit in a context of " +
                        std::to_string(n_ctx()) + " tokens");
        seq_len_.assign(static_cast<size_t>(options_.n_seq), 0);
        group_singles_ = std::all_of(model.layer_backend.begin(), model.layer_backend.end(),
                                     [](const Backend* b) { return b->host_memory(); });
    }
}

Context::~Context() = default;

size_t Context::compute_bytes() const {
    size_t n = 0;
    for (int i = 0; i < scheduler_.n_backends(); ++i) n += scheduler_.reserved_bytes(i);
    return n;
}

Context::Memory Context::memory() const {
    Memory m;
    for (int i = 0; i < scheduler_.n_backends(); ++i)
        (scheduler_.backend(i).host_memory() ? m.cpu_compute : m.gpu_compute) += scheduler_.reserved_bytes(i);
    for (const auto* kv : {&cache_.k(), &cache_.v()})
        for (const Tensor* t : *kv)
            if (t && t->buffer) (t->buffer->backend().host_memory() ? m.cpu_kv : m.gpu_kv) += t->n_bytes();
    return m;
}

int32_t Context::truncate(int32_t n) {
    n = std::clamp(n, 0, n_past_);
    if (n < n_past_) n_outputs_ = 0;  // the logits were of tokens no longer in the sequence
    if (!ring_pos_.empty()) {
        const int32_t window = model_.hp.sliding_window;
        int32_t oldest = n_past_;  // the oldest position the ring holds below n
        for (int32_t& p : ring_pos_) {
            if (p >= n)
                p = -1;
            else if (p >= 0)
                oldest = std::min(oldest, p);
        }
        const int32_t needed = std::max(0, n - window + 1);
        if (n > 0 && oldest > needed) {  // overwritten: start the sequence afresh
            n = 0;
            std::fill(ring_pos_.begin(), ring_pos_.end(), -1);
        }
    }
    n_past_ = n;
    return n_past_;
}

const float* Context::logits(int32_t i) const {
    if (n_outputs_ == 0 || i < -1 || i >= n_outputs_) return nullptr;
    if (i == -1) i = n_outputs_ - 1;
    return logits_.data() + static_cast<size_t>(i) * static_cast<size_t>(model_.hp.n_vocab);
}

void Context::check_ids(std::span<const int32_t> tokens) const {
    for (int32_t t : tokens)
        if (t < 0 || t >= model_.hp.n_vocab)
            throw Error("decode: token id " + std::to_string(t) + " is outside the vocabulary of " +
                        std::to_string(model_.hp.n_vocab));
}

void Context::decode(std::span<const int32_t> tokens, bool all_logits) {
    const int32_t n = static_cast<int32_t>(tokens.size());
    if (options_.n_seq > 0) throw Error("decode: a context of sequences (n_seq > 0) decodes with decode_seqs");
    if (n == 0) throw Error("decode: no tokens");
    if (n_past_ + static_cast<int64_t>(tokens.size()) > n_ctx())
        throw Error("decode: " + std::to_string(n) + " tokens after " + std::to_string(n_past_) +
                    " do not fit in the context of " + std::to_string(n_ctx()) + " tokens");
    check_ids(tokens);

    auto t0 = std::chrono::steady_clock::now();
    const size_t n_vocab = static_cast<size_t>(model_.hp.n_vocab);
    logits_.resize((all_logits ? static_cast<size_t>(n) : 1) * n_vocab);
    n_outputs_ = 0;
    const int32_t start = n_past_;
    // A ring row written at position p held position p - ring, which the sequence before
    // this decode still needs when p - ring > start - window: only from the second batch
    // on. Those rows are saved first, so a failure can put them back.
    const int32_t ring = cache_.ring_rows(), window = model_.hp.sliding_window;
    KvCache::RingRows saved;
    std::vector<int32_t> saved_pos;  // the positions the saved rows held
    if (ring > 0 && n > ring - window) {
        std::vector<int32_t> needed;
        for (int32_t r = 0; r < ring; ++r) {
            const int32_t pos = ring_pos_[static_cast<size_t>(r)];
            if (pos >= 0 && pos > start - window) needed.push_back(r), saved_pos.push_back(pos);
        }
        saved = cache_.save_ring_rows(std::move(needed));
    }
    try {
        for (int32_t i = 0; i < n; i += options_.n_batch) {
            const int32_t nb = std::min(options_.n_batch, n - i);
            const bool last = i + nb == n;
            if (all_logits || last)
                decode_batch(tokens.data() + i, nb, all_logits);
            else
                decode_batch(tokens.data() + i, nb, false), n_outputs_ = 0;  // logits of a middle batch unused
        }
    } catch (...) {
        n_past_ = start;
        n_outputs_ = 0;
        if (ring > 0) {
            // Rows this decode wrote hold nothing of the sequence before it, except those
            // put back; the finished batches recorded only those rows.
            for (int32_t i = 0; i < std::min(n, ring); ++i) ring_pos_[static_cast<size_t>((start + i) % ring)] = -1;
            cache_.restore_ring_rows(saved);
            for (size_t k = 0; k < saved.rows.size(); ++k) ring_pos_[static_cast<size_t>(saved.rows[k])] = saved_pos[k];
        }
        throw;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (n > 1) {
        timings_.prompt_ms += ms;
        timings_.prompt_tokens += n;
    } else {
        timings_.gen_ms += ms;
        timings_.gen_tokens += 1;
    }
}

// A batch's graph with its inputs; the shape it was built for is the key for reuse.
struct Context::BatchGraph {
    Graph g;
    models::ForwardInputs in;
    Tensor* logits = nullptr;
    BatchShape shape;
};

Context::BatchGraph& Context::batch_graph(const BatchShape& shape) {
    // Everything else a graph depends on (weights, caches, hyperparameters, the ring) is
    // fixed for the context's life; positions, the masks and the rows written are inputs.
    if (graph_ && graph_->shape == shape && scheduler_.planned(graph_->g)) return *graph_;
    graph_.reset();  // the old graph's tensors point into the compute buffers plan() may replace
    auto bg = std::make_unique<BatchGraph>();
    const models::HParams& hp = model_.hp;
    const int32_t n = shape.n;
    Graph& g = bg->g;
    g.set_batch_invariant(options_.n_seq > 0);
    models::ForwardInputs& in = bg->in;
    in.g = &g;
    in.hp = &hp;
    in.w = &model_.weights;
    in.tokens = g.input(DType::I32, {n}, "tokens");
    in.positions = g.input(DType::I32, {n}, "positions");
    if (shape.spans.empty()) {
        in.mask = g.input(DType::F16, {shape.n_kv, n}, "mask");
        if (shape.any_swa) in.mask_swa = g.input(DType::F16, {shape.n_kv_swa, n}, "mask_swa");
    }
    int32_t row0 = 0;
    for (const SpanShape& s : shape.spans) {
        models::SeqSpan sp;
        sp.row0 = row0;
        sp.n_rows = s.n_rows;
        sp.cell0 = s.cell0;
        sp.n_kv = s.n_kv;
        if (static_cast<int32_t>(in.spans.size()) >= shape.n_single) {
            sp.mask = g.input(DType::F16, {s.n_kv, s.n_rows}, "mask");
            if (shape.any_swa) sp.mask_swa = g.input(DType::F16, {s.n_kv, s.n_rows}, "mask_swa");
        }
        in.spans.push_back(sp);
        row0 += s.n_rows;
    }
    if (shape.n_single > 0) {
        in.n_single = shape.n_single;
        in.n_kv_single = shape.n_kv_single;
        in.kv_start = g.input(DType::I32, {shape.n_single}, "kv_start");
        in.mask_single = g.input(DType::F16, {shape.n_kv_single, 1, 1, shape.n_single}, "mask");
        if (shape.any_swa)
            in.mask_single_swa = g.input(DType::F16, {shape.n_kv_single, 1, 1, shape.n_single}, "mask_swa");
    }
    if (cache_.ring_rows() > 0) in.rows_swa = g.input(DType::I32, {n}, "rows_swa");
    if (options_.n_seq > 0) in.rows = g.input(DType::I32, {n}, "rows");
    in.n_kv_swa = shape.n_kv_swa;
    in.out_ids = g.input(DType::I32, {shape.n_out}, "out_ids");
    in.k_cache = &cache_.k();
    in.v_cache = &cache_.v();
    in.n_tokens = n;
    in.n_kv = shape.n_kv;
    in.n_ctx = n_ctx();
    bg->logits = model_.arch->build(in);
    g.mark_output(bg->logits);
    scheduler_.plan(g);
    bg->shape = shape;
    graph_ = std::move(bg);
    return *graph_;
}

void Context::decode_batch(const int32_t* tokens, int32_t n, bool all_logits) {
    const models::HParams& hp = model_.hp;
    const int32_t n_kv = std::min(n_ctx(), (n_past_ + n + kKvPadding - 1) / kKvPadding * kKvPadding);
    const int32_t n_out = all_logits ? n : 1;
    const bool any_swa =
        hp.sliding_window > 0 && std::any_of(hp.layer_is_swa.begin(), hp.layer_is_swa.end(), [](bool b) { return b; });
    const int32_t ring = cache_.ring_rows();
    BatchShape shape;
    shape.n = n;
    shape.n_kv = n_kv;
    shape.n_out = n_out;
    shape.n_kv_swa = ring > 0 ? ring : n_kv;
    shape.any_swa = any_swa;
    const int32_t n_kv_swa = shape.n_kv_swa;
    BatchGraph& bg = batch_graph(shape);
    const models::ForwardInputs& in = bg.in;

    int32_t* tok = static_cast<int32_t*>(in.tokens->data);
    int32_t* pos = static_cast<int32_t*>(in.positions->data);
    for (int32_t i = 0; i < n; ++i) {
        tok[i] = tokens[i];
        pos[i] = n_past_ + i;
    }
    int32_t* out_ids = static_cast<int32_t*>(in.out_ids->data);
    for (int32_t i = 0; i < n_out; ++i) out_ids[i] = all_logits ? i : n - 1;
    const uint16_t zero = fp32_to_fp16(0.0f), hidden = fp32_to_fp16(-INFINITY);
    // The ring after this batch's writes: row (n_past + i) % ring holds position n_past + i.
    std::vector<int32_t> ring_after = ring_pos_;
    for (int32_t i = 0; i < n && ring > 0; ++i) {
        ring_after[static_cast<size_t>((n_past_ + i) % ring)] = n_past_ + i;
        static_cast<int32_t*>(in.rows_swa->data)[i] = (n_past_ + i) % ring;
    }
    for (int32_t i = 0; i < n; ++i) {
        const int32_t p = n_past_ + i;
        uint16_t* row = static_cast<uint16_t*>(in.mask->data) + static_cast<size_t>(i) * n_kv;
        for (int32_t j = 0; j < n_kv; ++j) row[j] = j <= p ? zero : hidden;
        if (in.mask_swa) {
            uint16_t* srow = static_cast<uint16_t*>(in.mask_swa->data) + static_cast<size_t>(i) * n_kv_swa;
            for (int32_t j = 0; j < n_kv_swa; ++j) {
                const int32_t q = ring > 0 ? ring_after[static_cast<size_t>(j)] : j;  // the row's position
                srow[j] = (q >= 0 && q <= p && p - q < hp.sliding_window) ? zero : hidden;
            }
        }
    }

    scheduler_.compute(bg.g);
    ring_pos_.swap(ring_after);
    const size_t n_vocab = static_cast<size_t>(hp.n_vocab);
    scheduler_.read(bg.logits, logits_.data() + static_cast<size_t>(n_outputs_) * n_vocab,
                    static_cast<size_t>(n_out) * n_vocab * sizeof(float));
    n_outputs_ += n_out;
    n_past_ += n;
}

// ---- several sequences ----
//
// Sequence s owns cache rows [s * R, (s + 1) * R), R = n_ctx / n_seq: its token at position p
// lives in row s * R + p. A batch's tokens are grouped by sequence (in the order they
// came within each), and each group attends over its own rows only, with the same graph
// pieces as when it is alone in a batch: a sequence's logits never depend on the others.

int32_t Context::seq_cells() const { return options_.n_seq > 0 ? n_ctx() / options_.n_seq : n_ctx(); }

int32_t Context::seq_len(int32_t seq) const {
    if (seq < 0 || seq >= static_cast<int32_t>(seq_len_.size())) return 0;
    return seq_len_[static_cast<size_t>(seq)];
}

int32_t Context::free_cells() const {
    if (options_.n_seq == 0) return n_ctx() - n_past_;
    int32_t n = 0;
    for (int32_t len : seq_len_) n += seq_cells() - len;
    return n;
}

void Context::seq_truncate(int32_t seq, int32_t n) {
    if (seq < 0 || seq >= static_cast<int32_t>(seq_len_.size())) return;
    int32_t& len = seq_len_[static_cast<size_t>(seq)];
    len = std::clamp(n, 0, len);
    n_outputs_ = 0;
}

size_t Context::seq_state_bytes(int32_t n) const { return cache_.rows_bytes(n); }

namespace {
void check_state(int32_t n_seq, int32_t seq, int32_t n, int32_t max_n, size_t have, size_t want) {
    if (n_seq == 0) throw Error("sequence state: the context holds one plain sequence (n_seq 0)");
    if (seq < 0 || seq >= n_seq)
        throw Error("sequence state: sequence " + std::to_string(seq) + " is outside 0.." + std::to_string(n_seq - 1));
    if (n < 0 || n > max_n)
        throw Error("sequence state: " + std::to_string(n) + " tokens is outside 0.." + std::to_string(max_n));
    if (have != want)
        throw Error("sequence state: " + std::to_string(have) + " bytes given, " + std::to_string(want) +
                    " expected for " + std::to_string(n) + " tokens of this context");
}
}  // namespace

void Context::seq_save(int32_t seq, int32_t n, std::span<uint8_t> out) const {
    check_state(options_.n_seq, seq, n, seq_len(seq), out.size(), seq_state_bytes(n));
    cache_.save_rows(seq * seq_cells(), n, out.data());
}

void Context::seq_load(int32_t seq, int32_t n, std::span<const uint8_t> state) {
    check_state(options_.n_seq, seq, n, seq_cells(), state.size(), seq_state_bytes(n));
    seq_len_[static_cast<size_t>(seq)] = 0;
    n_outputs_ = 0;
    cache_.load_rows(seq * seq_cells(), n, state.data());
    seq_len_[static_cast<size_t>(seq)] = n;
}

void Context::decode_seqs(std::span<const SeqToken> batch) {
    if (options_.n_seq == 0) throw Error("decode_seqs: the context holds one plain sequence (n_seq 0); use decode");
    if (batch.empty()) throw Error("decode: no tokens");
    int32_t n_logits = 0;
    std::vector<int32_t> grows(seq_len_.size(), 0);
    for (const SeqToken& t : batch) {
        if (t.seq < 0 || t.seq >= options_.n_seq)
            throw Error("decode: sequence " + std::to_string(t.seq) + " is outside 0.." +
                        std::to_string(options_.n_seq - 1));
        check_ids(std::span<const int32_t>(&t.token, 1));
        n_logits += t.logits ? 1 : 0;
        ++grows[static_cast<size_t>(t.seq)];
    }
    for (size_t s = 0; s < grows.size(); ++s)
        if (seq_len_[s] + grows[s] > seq_cells())
            throw Error("decode: " + std::to_string(grows[s]) + " tokens after " + std::to_string(seq_len_[s]) +
                        " do not fit in sequence " + std::to_string(s) + "'s " + std::to_string(seq_cells()) +
                        " cells (the context of " + std::to_string(n_ctx()) + " tokens shared by " +
                        std::to_string(options_.n_seq) + " sequences)");

    const auto t0 = std::chrono::steady_clock::now();
    logits_.resize(static_cast<size_t>(n_logits) * static_cast<size_t>(model_.hp.n_vocab));
    n_outputs_ = 0;
    const std::vector<int32_t> saved_len = seq_len_;
    try {
        for (size_t i = 0; i < batch.size(); i += static_cast<size_t>(options_.n_batch))
            decode_seq_batch(batch.subspan(i, std::min(batch.size() - i, static_cast<size_t>(options_.n_batch))));
    } catch (...) {
        seq_len_ = saved_len;  // rows written past the old lengths are hidden again
        n_outputs_ = 0;
        throw;
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (batch.size() > 1) {
        timings_.prompt_ms += ms;
        timings_.prompt_tokens += static_cast<int64_t>(batch.size());
    } else {
        timings_.gen_ms += ms;
        timings_.gen_tokens += 1;
    }
}

// One batch of several sequences: the graph's rows are the chunk's tokens grouped by sequence
// (in the order they came within each), the sequences of one token first (they may attend in
// one node), and its output rows are put back in the chunk's order by out_ids.
void Context::decode_seq_batch(std::span<const SeqToken> chunk) {
    const models::HParams& hp = model_.hp;
    const int32_t n = static_cast<int32_t>(chunk.size());
    std::vector<int32_t> count(seq_len_.size(), 0);
    for (const SeqToken& t : chunk) ++count[static_cast<size_t>(t.seq)];
    auto key = [&](int32_t i) {
        const int32_t s = chunk[static_cast<size_t>(i)].seq;
        return std::pair<bool, int32_t>(count[static_cast<size_t>(s)] > 1, s);
    };
    std::vector<int32_t> order(static_cast<size_t>(n));  // graph row -> chunk index
    for (int32_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return key(a) < key(b); });
    const int32_t R = seq_cells();
    BatchShape shape;
    shape.n = n;
    shape.any_swa =
        hp.sliding_window > 0 && std::any_of(hp.layer_is_swa.begin(), hp.layer_is_swa.end(), [](bool b) { return b; });
    auto padded = [&](int32_t len) { return std::min(R, (len + kKvPadding - 1) / kKvPadding * kKvPadding); };
    struct Run {
        int32_t seq, row0, n_rows;
    };
    std::vector<Run> runs;
    for (int32_t r = 0; r < n;) {
        const int32_t s = chunk[static_cast<size_t>(order[static_cast<size_t>(r)])].seq;
        const int32_t rows = count[static_cast<size_t>(s)];
        runs.push_back({s, r, rows});
        shape.spans.push_back({rows, s * R, padded(seq_len_[static_cast<size_t>(s)] + rows)});
        r += rows;
    }
    // The one-token sequences (first in the order) share one attention node; the graph then
    // depends on their count and the longest one's cells only.
    int32_t singles = 0;
    while (singles < static_cast<int32_t>(runs.size()) && runs[static_cast<size_t>(singles)].n_rows == 1) ++singles;
    if (group_singles_ && singles >= 2) {
        shape.n_single = singles;
        for (int32_t k = 0; k < singles; ++k) {
            SpanShape& sp = shape.spans[static_cast<size_t>(k)];
            shape.n_kv_single = std::max(shape.n_kv_single, sp.n_kv);
            sp.cell0 = sp.n_kv = 0;
        }
    }
    std::vector<int32_t> outs;  // graph rows of the tokens whose logits are kept, in chunk order
    std::vector<int32_t> row_of(static_cast<size_t>(n));
    for (int32_t r = 0; r < n; ++r) row_of[static_cast<size_t>(order[static_cast<size_t>(r)])] = r;
    for (int32_t i = 0; i < n; ++i)
        if (chunk[static_cast<size_t>(i)].logits) outs.push_back(row_of[static_cast<size_t>(i)]);
    // A batch whose logits nobody wants still computes one row (a graph has an output).
    shape.n_out = std::max<int32_t>(1, static_cast<int32_t>(outs.size()));
    BatchGraph& bg = batch_graph(shape);
    const models::ForwardInputs& in = bg.in;

    int32_t* tok = static_cast<int32_t*>(in.tokens->data);
    int32_t* pos = static_cast<int32_t*>(in.positions->data);
    int32_t* rows = static_cast<int32_t*>(in.rows->data);
    const uint16_t zero = fp32_to_fp16(0.0f), hidden = fp32_to_fp16(-INFINITY);
    for (size_t k = 0; k < runs.size(); ++k) {
        const Run& run = runs[k];
        const int32_t start = seq_len_[static_cast<size_t>(run.seq)], cell0 = run.seq * R;
        // This span's mask rows: its own input, or its slice of the shared one.
        const bool single = static_cast<int64_t>(k) < in.n_single;
        const int64_t n_kv = single ? in.n_kv_single : in.spans[k].n_kv;
        uint16_t* mask = single ? static_cast<uint16_t*>(in.mask_single->data) + k * static_cast<size_t>(n_kv)
                                : static_cast<uint16_t*>(in.spans[k].mask->data);
        uint16_t* mask_swa = nullptr;
        if (single && in.mask_single_swa)
            mask_swa = static_cast<uint16_t*>(in.mask_single_swa->data) + k * static_cast<size_t>(n_kv);
        else if (!single && in.spans[k].mask_swa)
            mask_swa = static_cast<uint16_t*>(in.spans[k].mask_swa->data);
        if (single) static_cast<int32_t*>(in.kv_start->data)[k] = cell0;
        for (int32_t i = 0; i < run.n_rows; ++i) {
            const int32_t r = run.row0 + i, p = start + i;
            tok[r] = chunk[static_cast<size_t>(order[static_cast<size_t>(r)])].token;
            pos[r] = p;
            rows[r] = cell0 + p;
            uint16_t* row = mask + static_cast<size_t>(i) * static_cast<size_t>(n_kv);
            uint16_t* srow = mask_swa ? mask_swa + static_cast<size_t>(i) * static_cast<size_t>(n_kv) : nullptr;
            for (int64_t j = 0; j < n_kv; ++j) {
                row[j] = j <= p ? zero : hidden;
                if (srow) srow[j] = j <= p && p - j < hp.sliding_window ? zero : hidden;
            }
        }
    }
    int32_t* out_ids = static_cast<int32_t*>(in.out_ids->data);
    for (int32_t i = 0; i < shape.n_out; ++i) out_ids[i] = outs.empty() ? n - 1 : outs[static_cast<size_t>(i)];

    scheduler_.compute(bg.g);
    for (const Run& run : runs) seq_len_[static_cast<size_t>(run.seq)] += run.n_rows;
    if (outs.empty()) return;
    const size_t n_vocab = static_cast<size_t>(hp.n_vocab);
    scheduler_.read(bg.logits, logits_.data() + static_cast<size_t>(n_outputs_) * n_vocab,
                    outs.size() * n_vocab * sizeof(float));
    n_outputs_ += static_cast<int32_t>(outs.size());
}

}  // namespace tessera::runtime
