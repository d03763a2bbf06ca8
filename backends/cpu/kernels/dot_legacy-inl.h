// Dot-product tiles of the 32-element weight formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against
// Q8_0 activation blocks, written in the `Ops` of simd_ops-inl.h. Per block b and pair
// (weight row r, activation row c), with wd, yd the blocks' scales and y the activation quants:
//   Q4_0, Q5_0: wd * yd * sum((u - k) * y)           u the stored unsigned quant, k = 8 or 16
//   Q4_1, Q5_1: wd * yd * sum(u * y) + wm * yd * sum(y)       wm the block's offset
//   Q8_0:       wd * yd * sum(w * y)
// The scalar twins are in ref_kernels.cpp. No include guard: see simd_ops-inl.h.

namespace legacy {

using quant::block_q4_0;
using quant::block_q4_1;
using quant::block_q5_0;
using quant::block_q5_1;
using quant::block_q8_0;

enum class Kind { Offset, Min, Signed };

struct Q4_0 {
    using Block = block_q4_0;
    static constexpr Kind kKind = Kind::Offset;
    static constexpr uint8_t kOffset = 8;
    static HWY_INLINE Ops::VB quants(const Block& b) { return Ops::nibbles(b.qs); }
};

struct Q5_0 {
    using Block = block_q5_0;
    static constexpr Kind kKind = Kind::Offset;
    static constexpr uint8_t kOffset = 16;
    static HWY_INLINE Ops::VB quants(const Block& b) {
        uint32_t qh;
        std::memcpy(&qh, b.qh, 4);  // little-endian hosts only, as blocks.h says
        return Ops::or_(Ops::nibbles(b.qs), Ops::expand_bits(qh, 0x10));
    }
};

struct Q4_1 {
    using Block = block_q4_1;
    static constexpr Kind kKind = Kind::Min;
    static constexpr uint8_t kOffset = 0;
    static HWY_INLINE Ops::VB quants(const Block& b) { return Ops::nibbles(b.qs); }
};

struct Q5_1 {
    using Block = block_q5_1;
    static constexpr Kind kKind = Kind::Min;
    static constexpr uint8_t kOffset = 0;
    static HWY_INLINE Ops::VB quants(const Block& b) {
        uint32_t qh;
        std::memcpy(&qh, b.qh, 4);
        return Ops::or_(Ops::nibbles(b.qs), Ops::expand_bits(qh, 0x10));
    }
};

struct Q8_0 {
    using Block = block_q8_0;
    static constexpr Kind kKind = Kind::Signed;
    static constexpr uint8_t kOffset = 0;
    static HWY_INLINE Ops::VB quants(const Block& b) { return Ops::load(b.qs); }
};

// R weight rows x C activation rows, all k / 32 blocks. out[c * os + r]. Per pair and block:
// acc += float(integer sum) * yd * wd, the scales broadcast from fp16_table().
template <class F, int R, int C>
HWY_NOINLINE void tile(int64_t k, const uint8_t* w, size_t ws, const uint8_t* x, size_t xs, float* out, size_t os) {
    using Block = typename F::Block;
    const int64_t nb = k / quant::kQK;
    const float* f16 = fp16_table();
    const size_t prefetch_ahead = kPrefetchTiles * R * ws;
    Ops::VF acc[R][C];
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) acc[r][c] = Ops::zero_f();

    for (int64_t i = 0; i < nb; ++i) {
        Ops::VB y[C];
        Ops::VF yd[C];
        [[maybe_unused]] typename Ops::Off off[C];
        [[maybe_unused]] Ops::VF ysum[C];  // yd * sum(y), spread over lanes
        for (int c = 0; c < C; ++c) {
            const block_q8_0& yb = reinterpret_cast<const block_q8_0*>(x + c * xs)[i];
            y[c] = Ops::load(yb.qs);
            yd[c] = Ops::bcast(&f16[yb.d]);
            if constexpr (F::kKind == Kind::Offset) off[c] = Ops::offset(y[c], F::kOffset);
            if constexpr (F::kKind == Kind::Min) ysum[c] = Ops::mul(Ops::to_f(Ops::dot_u(Ops::set1(1), y[c])), yd[c]);
        }
        for (int r = 0; r < R; ++r) {
            const Block& wb = reinterpret_cast<const Block*>(w + r * ws)[i];
            hwy::Prefetch(reinterpret_cast<const uint8_t*>(&wb) + prefetch_ahead);
            const Ops::VB u = F::quants(wb);
            const Ops::VF wd = Ops::bcast(&f16[wb.d]);
            [[maybe_unused]] Ops::VF wm;
            if constexpr (F::kKind == Kind::Min) wm = Ops::bcast(&f16[wb.m]);
            for (int c = 0; c < C; ++c) {
                Ops::VI p;
                if constexpr (F::kKind == Kind::Offset)
                    p = Ops::dot_off(u, y[c], off[c]);
                else if constexpr (F::kKind == Kind::Signed)
                    p = Ops::dot_s(u, y[c]);
                else
                    p = Ops::dot_u(u, y[c]);
                acc[r][c] = Ops::fma(Ops::mul(Ops::to_f(p), yd[c]), wd, acc[r][c]);
                if constexpr (F::kKind == Kind::Min) acc[r][c] = Ops::fma(ysum[c], wm, acc[r][c]);
            }
        }
    }
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) out[c * os + r] = Ops::reduce(acc[r][c]);
}

template <class F>
void dot_tile(int64_t k, const void* w, size_t ws, int nr, const void* x, size_t xs, int nc, float* out, size_t os) {
    const uint8_t* wp = static_cast<const uint8_t*>(w);
    const uint8_t* xp = static_cast<const uint8_t*>(x);
    for_each_piece<Ops::kTileRows, Ops::kTileCols>(nr, nc, [&]<int R, int C>(int r, int c) {
        tile<F, R, C>(k, wp + r * ws, ws, xp + c * xs, xs, out + c * os + r, os);
    });
}

inline void fill(KernelTable* t) {
    const auto set = [t](DType type, DotTileFn fn) {
        t->dot[static_cast<uint32_t>(type)] = fn;
        t->act[static_cast<uint32_t>(type)] = ActFormat::Q8_0;
    };
    set(DType::Q4_0, &dot_tile<Q4_0>);
    set(DType::Q4_1, &dot_tile<Q4_1>);
    set(DType::Q5_0, &dot_tile<Q5_0>);
    set(DType::Q5_1, &dot_tile<Q5_1>);
    set(DType::Q8_0, &dot_tile<Q8_0>);
    t->tile_rows = Ops::kTileRows;
    t->tile_cols = Ops::kTileCols;
}

}  // namespace legacy
