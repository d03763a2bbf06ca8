// Attention with an online softmax (one pass over the keys): scores q.k * scale (optionally
// soft-capped) plus the mask, accumulated into V rows.
//
// Two schedules. Prompts: work units of one KV head x a block of kQueryBlock queries, which
// covers every query head that shares the KV head; keys go in tiles of kKeyTile, converted to
// F32 once per unit and tile (other K/V types dequantized a row at a time), and both products
// (scores = Q K^T and the weighted sum of V) run as register-tiled matrix products; tiles
// masked for every row of the unit are skipped, so causal attention costs about half.
// Decoding (few queries): the same tiles, with the keys split into chunks so every thread has
// work, the chunks' partial softmaxes merged at the end (flash_attn_split).
//
// Both schedules compute a row the same way, bit for bit: its keys in the same chunks, each
// chunk's online softmax over the same tiles (keys a row does not see add exact zeros), the
// chunks folded in key order by fold_chunk. So a row's result does not depend on the other
// rows of the batch (how many there are, which schedule they chose, how far they see),
// which makes several sequences decoded together give what each gives alone.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/ops.h"
#include "tensor/fp16.h"
#include "tensor/quant/quant.h"

namespace tessera::cpu {

namespace {

constexpr int64_t kQueryBlock = 16;
constexpr int64_t kKeyTile = kernels::kAttnTile;
constexpr int64_t kPrefetchTiles = 2;
// Prompts of at least this many queries take the tiled schedule.
constexpr int64_t kTiledMinQueries = 4;

bool splits_keys(const Tensor& node) { return node.src[0]->ne[1] < kTiledMinQueries; }

struct TiledScratch {
    float *kt, *vt, *s, *acc, *m, *l, *row, *mt, *q, *fold;
};

TiledScratch tiled_scratch(char* work, int64_t rows, int64_t D, int64_t Dv) {
    float* f = reinterpret_cast<float*>(work);
    TiledScratch t;
    t.kt = f;                        // [D][kKeyTile]    keys of the tile, transposed
    t.vt = t.kt + D * kKeyTile;      // [kKeyTile][Dv]   values of the tile
    t.s = t.vt + kKeyTile * Dv;      // [rows][kKeyTile] scores, then weights
    t.acc = t.s + rows * kKeyTile;   // [rows][Dv]
    t.m = t.acc + rows * Dv;         // [rows] running max
    t.l = t.m + rows;                // [rows] running sum
    t.row = t.l + rows;              // [D] one key row as floats
    t.mt = t.row + D;                // [kQueryBlock][kKeyTile] the mask of the tile
    t.q = t.mt + kQueryBlock * kKeyTile;  // [rows][D]  the unit's queries, contiguous
    t.fold = t.q + rows * D;              // [rows][2 + Dv] the chunks folded so far (prompts)
    return t;
}

size_t tiled_floats(int64_t rows, int64_t D, int64_t Dv) {
    return static_cast<size_t>(D * kKeyTile + kKeyTile * Dv + rows * kKeyTile + rows * Dv + 2 * rows + D +
                               kQueryBlock * kKeyTile + rows * D + rows * (2 + Dv) + 16);
}

// A row of K or V as floats: F32 in place, F16 through the SIMD conversion, other types
// dequantized into `buf`.
const float* row_f32(const Tensor& t, const char* src, float* buf, int64_t n, const kernels::KernelTable& kt) {
    if (t.type == DType::F32) return reinterpret_cast<const float*>(src);
    if (t.type == DType::F16) kt.f16_to_f32(reinterpret_cast<const uint16_t*>(src), buf, n);
    else quant::dequantize_row(t.type, src, buf, n);
    return buf;
}

void prefetch_row(const char* p, size_t bytes) {
    for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o);
}

// The mask of queries [q0, q0 + nq) (of mask slice s) over keys [j0, j0 + nk) as floats, a row
// of kKeyTile per query. Returns 1 + the last key any of the queries sees: 0 when the tile is masked for all.
int64_t tile_mask(const Tensor& mask, int64_t q0, int64_t nq, int64_t s, int64_t j0, int64_t nk, float* mt,
                  const kernels::KernelTable& kt) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    int64_t seen = 0;
    for (int64_t i = 0; i < nq; ++i) {
        float* row = mt + i * kKeyTile;
        const char* mr = mask.row_ptr(q0 + i, 0, s);
        if (mask.type == DType::F16) kt.f16_to_f32(reinterpret_cast<const uint16_t*>(mr) + j0, row, nk);
        else std::memcpy(row, reinterpret_cast<const float*>(mr) + j0, static_cast<size_t>(nk) * sizeof(float));
        for (int64_t j = nk; j > seen; --j)
            if (row[j - 1] != neg_inf) {
                seen = j;
                break;
            }
    }
    return seen;
}

// One node's operands and shape.
struct Attn {
    const Tensor& q;  // [D, n_q, H, S]
    const Tensor& k;  // [D, n_kv, H_kv, S], or the whole cache [D, rows, H_kv] with kv0
    const Tensor& v;  // [Dv, n_kv, H_kv, S], likewise
    const Tensor* mask;
    const int32_t* kv0;  // with several sequences: sequence s's first cache row (else null)
    float scale, softcap;
    int64_t D, Dv, n_q, H, n_kv, H_kv, group;
    explicit Attn(const Tensor& node)
        : q(*node.src[0]), k(*node.src[1]), v(*node.src[2]), mask(node.src[3]),
          kv0(node.src[4] ? static_cast<const int32_t*>(node.src[4]->data) : nullptr), scale(node.param_f(0)),
          softcap(node.param_f(1)), D(q.ne[0]), Dv(v.ne[0]), n_q(q.ne[1]), H(q.ne[2]),
          n_kv(kv0 ? mask->ne[0] : k.ne[1]), H_kv(k.ne[2]), group(H / H_kv) {}
    // Key or value j of KV head hk for sequence s.
    const char* k_row(int64_t j, int64_t hk, int64_t s) const {
        return kv0 ? k.row_ptr(kv0[s] + j, hk, 0) : k.row_ptr(j, hk, s);
    }
    const char* v_row(int64_t j, int64_t hk, int64_t s) const {
        return kv0 ? v.row_ptr(kv0[s] + j, hk, 0) : v.row_ptr(j, hk, s);
    }
    int64_t mask_slice(int64_t s) const { return kv0 ? s : 0; }
    // A sequence whose cache rows are out of the cache's range sees nothing (its output is 0).
    bool seq_ok(int64_t s) const { return !kv0 || (kv0[s] >= 0 && kv0[s] + n_kv <= k.ne[1]); }
};

// The online softmax of one unit, the query heads of KV head hk x queries [q0, q0 + nq) of
// sequence s, over keys [jb, je): leaves each row's running max, sum and weighted values in
// w.m, w.l, w.acc (row g * nq + i: query head hk * group + g, query q0 + i).
void attend(const Attn& a, const TiledScratch& w, int64_t hk, int64_t q0, int64_t nq, int64_t s, int64_t jb,
            int64_t je, const kernels::KernelTable& kt) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    const int64_t D = a.D, Dv = a.Dv, rows = a.group * nq;
    for (int64_t r = 0; r < rows; ++r) {
        w.m[r] = neg_inf;
        w.l[r] = 0.0f;
    }
    std::memset(w.acc, 0, static_cast<size_t>(rows * Dv) * sizeof(float));
    // The queries side by side: in the tensor, consecutive queries of a head are a whole
    // row of heads apart, and such strides map onto few cache sets.
    for (int64_t r = 0; r < rows; ++r)
        std::memcpy(w.q + r * D, a.q.row_ptr(q0 + r % nq, hk * a.group + r / nq, s), static_cast<size_t>(D) * sizeof(float));

    // The key and value rows kPrefetchTiles tiles ahead are asked for before each tile: rows
    // of one KV head are a whole cache row apart, a stride the hardware prefetchers follow
    // poorly, and decoding over a long context otherwise waits on every line.
    const size_t k_bytes = row_size(a.k.type, D), v_bytes = row_size(a.v.type, Dv);
    const auto prefetch = [&](int64_t from, int64_t to) {
        for (int64_t j = from; j < std::min(je, to); ++j) {
            prefetch_row(a.k_row(j, hk, s), k_bytes);
            prefetch_row(a.v_row(j, hk, s), v_bytes);
        }
    };
    prefetch(jb, jb + kPrefetchTiles * kKeyTile);
    for (int64_t j0 = jb; j0 < je; j0 += kKeyTile) {
        // Keys past the last one any query of the unit sees are left out (the diagonal tile
        // of a causal mask); a tile masked for all is skipped.
        int64_t nk = std::min(kKeyTile, je - j0);
        prefetch(j0 + kPrefetchTiles * kKeyTile, j0 + (kPrefetchTiles + 1) * kKeyTile);
        if (a.mask) nk = tile_mask(*a.mask, q0, nq, a.mask_slice(s), j0, nk, w.mt, kt);
        if (nk == 0) continue;

        for (int64_t j = 0; j < nk; ++j) {
            const float* kr = row_f32(a.k, a.k_row(j0 + j, hk, s), w.row, D, kt);
            for (int64_t d = 0; d < D; ++d) w.kt[d * kKeyTile + j] = kr[d];
        }
        for (int64_t j = 0; j < nk; ++j) {
            float* vr = w.vt + j * Dv;
            const float* src = row_f32(a.v, a.v_row(j0 + j, hk, s), vr, Dv, kt);
            if (src != vr) std::memcpy(vr, src, static_cast<size_t>(Dv) * sizeof(float));
        }
        // Per query head sharing the KV head: the scores of its block of queries against the
        // tile, the online softmax row by row, then the weighted values (the tile stays in
        // cache across the heads). A unit of one or a few queries takes all its heads at once,
        // so the products get several rows.
        const int64_t step = nq >= kTiledMinQueries ? nq : rows;
        for (int64_t r0 = 0; r0 < rows; r0 += step) {
            float* sg = w.s + r0 * kKeyTile;
            kt.attn_scores(w.q + r0 * D, static_cast<size_t>(D), step, w.kt, D, nk, sg, kKeyTile);
            for (int64_t r = r0; r < r0 + step; ++r) {
                float* sr = w.s + r * kKeyTile;
                const float* mr = w.mt + (r % nq) * kKeyTile;
                float mx;
                if (a.softcap > 0.0f) {
                    mx = neg_inf;
                    for (int64_t j = 0; j < nk; ++j)
                        mx = std::max(mx, sr[j] = a.softcap * std::tanh(sr[j] * a.scale / a.softcap) + mr[j]);
                } else {
                    mx = kt.scale_mask_max(sr, mr, nk, a.scale);
                }
                if (mx == neg_inf) {  // nothing of this tile for this row: weights 0
                    std::memset(sr, 0, static_cast<size_t>(nk) * sizeof(float));
                    continue;
                }
                if (mx > w.m[r]) {
                    const float c = std::exp(w.m[r] - mx);  // 0 on the first tile (m = -inf)
                    kt.scale_f32(w.acc + r * Dv, c, Dv);
                    w.l[r] *= c;
                    w.m[r] = mx;
                }
                w.l[r] += kt.exp_sum(sr, nk, w.m[r]);
            }
            kt.attn_accumulate(w.acc + r0 * Dv, static_cast<size_t>(Dv), step, Dv, sg, kKeyTile, nk, w.vt);
        }
    }
}

// Keys are taken in chunks (of the same size in both schedules): a chunk's keys and values
// fit in kChunkBytes, so decoding streams a chunk into L2 once for all its heads.
constexpr int64_t kMaxKeyChunk = 256;
constexpr size_t kChunkBytes = 256 << 10;

// Keys per chunk: a multiple of the tile, at most kMaxKeyChunk, a chunk's cache rows within
// kChunkBytes where a tile's allow.
int64_t key_chunk(const Attn& a) {
    const size_t per_key = a.k.nb[1] + a.v.nb[1];
    const int64_t tiles = static_cast<int64_t>(kChunkBytes / (per_key * kKeyTile));
    return std::clamp<int64_t>(tiles, 1, kMaxKeyChunk / kKeyTile) * kKeyTile;
}

// Floats of one unit's partial results: per row, m, l and Dv weighted values.
size_t split_unit_floats(const Attn& a) { return static_cast<size_t>(a.group * a.n_q * (a.Dv + 2)); }

int64_t split_chunks(const Attn& a) { return (a.n_kv + key_chunk(a) - 1) / key_chunk(a); }

// Folds a chunk's partial softmax of one row (max m, sum l, weighted values acc) into the
// row's result so far (max *M, sum *L, values A), the chunks taken in key order:
//   M' = max(M, m), A' = A exp(M - M') + acc exp(m - M'), L' likewise.
void fold_chunk(float m, float l, const float* acc, float* M, float* L, float* A, int64_t Dv,
                const kernels::KernelTable& kt) {
    if (m == -std::numeric_limits<float>::infinity()) return;  // a chunk the row sees nothing of
    if (m > *M) {
        const float c = std::exp(*M - m);  // 0 for the first chunk (M = -inf, A = 0)
        kt.scale_f32(A, c, Dv);
        *L *= c;
        *M = m;
    }
    const float f = std::exp(m - *M);
    *L += l * f;
    kt.axpy_f32(A, f, acc, Dv);
}

// A row's output: the folded values over the folded sum.
void finish_row(const float* A, float L, float* out, int64_t Dv) {
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    for (int64_t d = 0; d < Dv; ++d) out[d] = A[d] * inv;
}

// Prompts: units of one KV head x a block of kQueryBlock queries over all keys, a chunk at a
// time, each chunk folded into the unit's rows as it is done.
void flash_attn_tiled(const Tensor& node, const ComputeParams& p) {
    const Attn a(node);
    const int64_t n_blocks = (a.n_q + kQueryBlock - 1) / kQueryBlock;
    const kernels::KernelTable& kt = kernels::active();
    const TiledScratch w = tiled_scratch(p.work, a.group * kQueryBlock, a.D, a.Dv);
    if (!a.mask) std::fill(w.mt, w.mt + kQueryBlock * kKeyTile, 0.0f);
    const int64_t chunk = key_chunk(a), unit = a.Dv + 2;
    const float neg_inf = -std::numeric_limits<float>::infinity();

    // Units (kv head, query block, seq) are dealt round-robin: under a causal mask a block's
    // cost grows with its position, so contiguous ranges would leave the last thread about
    // twice the average work.
    for (int64_t u = p.ith; u < a.H_kv * n_blocks * a.q.ne[3]; u += p.nth) {
        const int64_t hk = u % a.H_kv, qb = (u / a.H_kv) % n_blocks, s = u / (a.H_kv * n_blocks);
        const int64_t q0 = qb * kQueryBlock, nq = std::min(kQueryBlock, a.n_q - q0), rows = a.group * nq;
        for (int64_t r = 0; r < rows; ++r) {
            float* f = w.fold + r * unit;
            f[0] = neg_inf, f[1] = 0.0f;
            std::fill(f + 2, f + unit, 0.0f);
        }
        for (int64_t jb = 0; jb < a.n_kv && a.seq_ok(s); jb += chunk) {
            attend(a, w, hk, q0, nq, s, jb, std::min(a.n_kv, jb + chunk), kt);
            for (int64_t r = 0; r < rows; ++r) {
                float* f = w.fold + r * unit;
                fold_chunk(w.m[r], w.l[r], w.acc + r * a.Dv, &f[0], &f[1], f + 2, a.Dv, kt);
            }
        }
        for (int64_t r = 0; r < rows; ++r) {
            const float* f = w.fold + r * unit;
            finish_row(f + 2, f[1], reinterpret_cast<float*>(node.row_ptr(hk * a.group + r / nq, q0 + r % nq, s)),
                       a.Dv);
        }
    }
}

// Decoding ("split keys"): a few queries give too few (KV head) units for the threads, so
// the keys are cut into chunks and each (chunk, KV head) is a unit; each unit's rows leave
// their max, sum and weighted values in the team's shared scratch, and after a barrier the
// threads fold the chunks of each row (fold_chunk).
// A thread takes a contiguous range of units, KV head fastest, and first reads the rows of
// each new chunk (every head's keys and values, one contiguous range of the cache each) in
// one stream: a single head's rows are a whole cache row apart, a pattern that reads memory
// at a fraction of its speed, while a stream into L2 runs at full speed and leaves each
// head's pass to L2.

// Reads [b, e) a cache line at a time, so the hardware streams it into the cache.
void stream_in(const char* b, const char* e) {
    uint64_t x = 0;
    for (const char* c = b; c < e; c += 64) {
        uint64_t v;
        std::memcpy(&v, c, sizeof v);
        x ^= v;
    }
    asm volatile("" : : "r"(x));
}

// The cache rows of keys [jb, je) of sequence s, every head: one range when the heads of a
// key are packed within its row (a KV cache view), else nothing is read ahead.
void stream_rows(const Attn& a, const Tensor& t, int64_t jb, int64_t je, int64_t s) {
    const size_t heads = static_cast<size_t>(t.ne[2] - 1) * t.nb[2] + row_size(t.type, t.ne[0]);
    if (heads > t.nb[1]) return;
    const int64_t base = a.kv0 ? a.kv0[s] : 0;
    stream_in(t.row_ptr(base + jb, 0, a.kv0 ? 0 : s), t.row_ptr(base + je - 1, 0, a.kv0 ? 0 : s) + heads);
}

void flash_attn_split(const Tensor& node, const ComputeParams& p) {
    const Attn a(node);
    const kernels::KernelTable& kt = kernels::active();
    const TiledScratch w = tiled_scratch(p.work, a.group * a.n_q, a.D, a.Dv);
    if (!a.mask) std::fill(w.mt, w.mt + kQueryBlock * kKeyTile, 0.0f);
    const int64_t chunk = key_chunk(a), chunks = split_chunks(a), rows = a.group * a.n_q, S = a.q.ne[3];
    const size_t unit_floats = split_unit_floats(a);
    float* partial = reinterpret_cast<float*>(p.shared);  // unit (s, hk, c) at ((s * H_kv + hk) * chunks + c)

    int64_t ub, ue;
    split_rows(S * chunks * a.H_kv, p.ith, p.nth, &ub, &ue);
    for (int64_t u = ub; u < ue; ++u) {
        const int64_t hk = u % a.H_kv, c = (u / a.H_kv) % chunks, s = u / (a.H_kv * chunks);
        const int64_t jb = c * chunk, je = std::min(a.n_kv, jb + chunk);
        if (!a.seq_ok(s)) {  // nothing seen: the merge skips the chunk
            for (int64_t r = 0; r < rows; ++r) w.m[r] = -std::numeric_limits<float>::infinity(), w.l[r] = 0.0f;
        } else {
            if (u == ub || hk == 0) {
                stream_rows(a, a.k, jb, je, s);
                stream_rows(a, a.v, jb, je, s);
            }
            attend(a, w, hk, 0, a.n_q, s, jb, je, kt);
        }
        float* dst = partial + static_cast<size_t>((s * a.H_kv + hk) * chunks + c) * unit_floats;
        for (int64_t r = 0; r < rows; ++r) {
            float* pr = dst + r * (a.Dv + 2);
            pr[0] = w.m[r];
            pr[1] = w.l[r];
            std::memcpy(pr + 2, w.acc + r * a.Dv, static_cast<size_t>(a.Dv) * sizeof(float));
        }
    }
#ifdef _OPENMP
#pragma omp barrier
#endif
    // Merge: rows (s, hk, r) split over the threads, each folding its chunks in key order.
    int64_t rb, re;
    split_rows(S * a.H_kv * rows, p.ith, p.nth, &rb, &re);
    for (int64_t i = rb; i < re; ++i) {
        const int64_t r = i % rows, hk = (i / rows) % a.H_kv, s = i / (rows * a.H_kv);
        const float* first = partial + static_cast<size_t>((s * a.H_kv + hk) * chunks) * unit_floats + r * (a.Dv + 2);
        float* out = reinterpret_cast<float*>(node.row_ptr(hk * a.group + r / a.n_q, r % a.n_q, s));
        std::fill(out, out + a.Dv, 0.0f);
        float M = -std::numeric_limits<float>::infinity(), L = 0.0f;
        for (int64_t c = 0; c < chunks; ++c) {
            const float* pc = first + c * unit_floats;
            fold_chunk(pc[0], pc[1], pc + 2, &M, &L, out, a.Dv, kt);
        }
        finish_row(out, L, out, a.Dv);
    }
}

}  // namespace

size_t flash_attn_work_per_thread(const Tensor& node) {
    const Tensor& q = *node.src[0];
    const int64_t D = q.ne[0], Dv = node.src[2]->ne[0];
    const int64_t group = q.ne[2] / node.src[1]->ne[2];
    const int64_t rows = group * (splits_keys(node) ? q.ne[1] : kQueryBlock);
    return tiled_floats(rows, D, Dv) * sizeof(float);
}

size_t flash_attn_work_shared(const Tensor& node) {
    if (!splits_keys(node)) return 0;
    const Attn a(node);
    return static_cast<size_t>(a.q.ne[3] * a.H_kv * split_chunks(a)) * split_unit_floats(a) * sizeof(float);
}

void op_flash_attn(const Tensor& node, const ComputeParams& p) {
    if (splits_keys(node)) return flash_attn_split(node, p);
    flash_attn_tiled(node, p);
}

}  // namespace tessera::cpu
