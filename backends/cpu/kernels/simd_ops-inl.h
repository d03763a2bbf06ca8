// The operations the quantized dot kernels are written in, for one Highway target: `Ops`
// works on one 32-byte block of 8-bit quants (VB), int32 partial sums (VI), 16 int16
// values (VW) and float partial sums (VF). Only the sum over all lanes of a VI or VF is
// meaningful; how products are spread over lanes differs between implementations.
//
// Two implementations:
//  - x86 AVX2 and AVX3: 256-bit registers, one block per register, vpmaddubsw/vpmaddwd, and
//    vpdpbusd where TESSERA_KERNEL_VNNI is 1 (the includer compiles that copy with the
//    target's attributes plus avxvnni or avx512vnni);
//  - every other target: Highway's portable 128-bit operations (two vectors per block),
//    widening to int16 so no product can saturate; on Arm NEON with TESSERA_KERNEL_SDOT 1
//    (the includer adds the dotprod extension to the target's attributes), the 8-bit dot
//    products are sdot instructions instead.
// (HWY_SCALAR, the one-lane fallback of GCC < 12.3, cannot hold these vectors: the kernel
// files use the scalar twins there.)
//
// No include guard: included inside HWY_NAMESPACE once per target, and on x86 twice (with
// and without VNNI) in different inner namespaces. The includer includes <immintrin.h> (x86)
// and hwy/highway.h at file scope and defines TESSERA_KERNEL_VNNI (and, for Arm,
// TESSERA_KERNEL_SDOT; undefined reads as 0).

#undef TESSERA_X86_WIDE
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
#define TESSERA_X86_WIDE 1
#else
#define TESSERA_X86_WIDE 0
#endif

// Decoding streams the weights from memory at a few bytes per instruction, too slowly for the
// hardware prefetchers to run far enough ahead when a tile reads several rows at once. The
// kernels prefetch the same position of the rows of the tile after next: the tiles of one
// thread lie one after another in memory, so that is where the stream goes.
inline constexpr size_t kPrefetchTiles = 2;

// Byte-shuffle controls that broadcast one int16 lane of a 128-bit half: kSplatControl[i]
// picks lane i (16 bytes, used for both halves); kPairControl[j] picks lane 2j in the low half
// and lane 2j + 1 in the high half (32 bytes).
alignas(32) inline constexpr uint8_t kSplatControl[8][16] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
    {2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
    {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5},
    {6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
    {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9},
    {10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
    {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13},
    {14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15},
};
alignas(32) inline constexpr uint8_t kPairControl[4][32] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
    {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
    {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
    {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13,
     14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15},
};

#if TESSERA_X86_WIDE

struct Ops {
    using VB = __m256i;  // 32 quants
    using VI = __m256i;  // 8 int32 partial sums
    using VW = __m256i;  // 16 int16
    using VF = __m256;   // 8 float partial sums
    // AVX3 has 32 registers, AVX2 16: accumulators R*C plus C activation blocks must fit.
    static constexpr int kTileRows = 4;
    static constexpr int kTileCols = HWY_TARGET == HWY_AVX2 ? 2 : 4;

    static HWY_INLINE VB load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
    static HWY_INLINE VB set1(uint8_t v) { return _mm256_set1_epi8(static_cast<char>(v)); }
    static HWY_INLINE VB and_(VB a, VB b) { return _mm256_and_si256(a, b); }
    static HWY_INLINE VB or_(VB a, VB b) { return _mm256_or_si256(a, b); }
    // (v >> bits) & mask, per byte.
    static HWY_INLINE VB shr_and(VB v, int bits, uint8_t mask) {
        return and_(_mm256_srl_epi16(v, _mm_cvtsi32_si128(bits)), set1(mask));
    }
    // v << bits, per byte; every byte must be below 2^(8 - bits).
    static HWY_INLINE VB shl(VB v, int bits) { return _mm256_sll_epi16(v, _mm_cvtsi32_si128(bits)); }
    // 16 bytes -> 32 nibbles: the low nibbles of p[0..15], then their high nibbles.
    // (A broadcast load and a per-lane shift: no cross-lane shuffle, which would take the
    // same port as the dot products' shuffles and broadcasts.)
    static HWY_INLINE VB nibbles(const uint8_t* p) {
        const __m256i q = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return and_(_mm256_srlv_epi64(q, _mm256_set_epi64x(4, 4, 0, 0)), set1(0x0F));
    }
    // Byte i = value where bit i of `bits` is set, else 0.
    static HWY_INLINE VB expand_bits(uint32_t bits, uint8_t value) {
        const __m256i which = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
        const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), which);
        const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
        return and_(_mm256_cmpeq_epi8(and_(spread, bit), bit), set1(value));
    }

#if TESSERA_KERNEL_VNNI
    static HWY_INLINE VI dpbusd(VI acc, VB u, VB s) {
#if HWY_TARGET == HWY_AVX2
        return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
        return _mm256_dpbusd_epi32(acc, u, s);
#endif
    }
#endif
    static HWY_INLINE VI pairs_to_i32(__m256i p16) { return _mm256_madd_epi16(p16, _mm256_set1_epi16(1)); }

    // Sum of u * y. u unsigned, y in [-127, 127], each u * |y| pair sum below 2^15.
    static HWY_INLINE VI dot_u(VB u, VB y) {
#if TESSERA_KERNEL_VNNI
        return dpbusd(_mm256_setzero_si256(), u, y);
#else
        return pairs_to_i32(_mm256_maddubs_epi16(u, y));
#endif
    }
    // Sum of w * y, both signed (w may be -128, y in [-127, 127]): |w| times y with w's sign.
    static HWY_INLINE VI dot_s(VB w, VB y) { return dot_u(_mm256_sign_epi8(w, w), _mm256_sign_epi8(y, w)); }

    // Sum of (u - k) * y, for quants stored with an offset k (k <= 16, u < 32): offset(y, k)
    // is the k part, computed once per activation block and shared by all weight rows.
#if TESSERA_KERNEL_VNNI
    struct Off {
        VI v;
    };
    static HWY_INLINE Off offset(VB y, uint8_t k) {
        return {_mm256_sub_epi32(_mm256_setzero_si256(), dpbusd(_mm256_setzero_si256(), set1(k), y))};
    }
    static HWY_INLINE VI dot_off(VB u, VB y, Off o) { return dpbusd(o.v, u, y); }
#else
    struct Off {
        __m256i v;  // int16 pair sums of k * y
    };
    static HWY_INLINE Off offset(VB y, uint8_t k) { return {_mm256_maddubs_epi16(set1(k), y)}; }
    static HWY_INLINE VI dot_off(VB u, VB y, Off o) {
        return pairs_to_i32(_mm256_sub_epi16(_mm256_maddubs_epi16(u, y), o.v));
    }
#endif

    // Scale vectors for dot_u_sc are picked out of a VW of scales with a byte shuffle whose
    // control comes from a table (loads, not shuffles, build them).
    // splat(v, i): every lane of each half = lane i of that half.
    static HWY_INLINE VW splat(VW v, int i) {
        return _mm256_shuffle_epi8(v, _mm256_broadcastsi128_si256(load16(kSplatControl[i])));
    }
    // pair(v, j): the low half's lanes = lane 2j, the high half's = lane 8 + 2j + 1.
    static HWY_INLINE VW pair(VW v, int j) {
        return _mm256_shuffle_epi8(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kPairControl[j])));
    }
    // Both halves = half h of v.
    // (The permute takes an immediate: one call per half, so no build mode depends on
    // constant propagation through h.)
    static HWY_INLINE VW dup_half(VW v, int h) {
        return h ? _mm256_permute2x128_si256(v, v, 0x11) : _mm256_permute2x128_si256(v, v, 0x00);
    }
    static HWY_INLINE __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
    // Sum of u * y * scale, with the products of quants 0..15 scaled by lanes 0..7 of sc and of
    // 16..31 by lanes 8..15 (pairs of products share a lane); u below 64.
    static HWY_INLINE VI dot_u_sc(VB u, VB y, VW sc) { return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), sc); }
    static HWY_INLINE VW load_w(const int16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
    // 16 int8 -> 16 int16.
    static HWY_INLINE VW widen_s8(const int8_t* p) {
        return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    // 16 uint8 -> 16 int16.
    static HWY_INLINE VW widen_u8(const uint8_t* p) { return _mm256_cvtepu8_epi16(load16(p)); }
    // The 16 bytes of two words (lo first) -> 16 int16.
    static HWY_INLINE VW widen_u8(uint64_t lo, uint64_t hi) {
        return _mm256_cvtepu8_epi16(_mm_set_epi64x(static_cast<long long>(hi), static_cast<long long>(lo)));
    }
    // The 8 bytes of a word -> 16 int16: lanes 0..7 and again 8..15.
    static HWY_INLINE VW widen_u8x8(uint64_t v) {
        return _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(v))));
    }
    // The 8 bytes of a word -> 16 int16, each value twice (one per 32 quants -> one per 16).
    static HWY_INLINE VW widen_dup_u8(uint64_t w) {
        const __m128i v = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(w)));
        return _mm256_set_m128i(_mm_unpackhi_epi16(v, v), _mm_unpacklo_epi16(v, v));
    }
    static HWY_INLINE VW and_w(VW v, int16_t m) { return _mm256_and_si256(v, _mm256_set1_epi16(m)); }
    static HWY_INLINE VW shr_w(VW v, int bits) { return _mm256_srl_epi16(v, _mm_cvtsi32_si128(bits)); }
    static HWY_INLINE VW add_w(VW v, int16_t a) { return _mm256_add_epi16(v, _mm256_set1_epi16(a)); }
    static HWY_INLINE VW shl_w(VW v, int bits) { return _mm256_sll_epi16(v, _mm_cvtsi32_si128(bits)); }
    static HWY_INLINE VI madd_w(VW a, VW b) { return _mm256_madd_epi16(a, b); }

    static HWY_INLINE VI zero_i() { return _mm256_setzero_si256(); }
    static HWY_INLINE VI add(VI a, VI b) { return _mm256_add_epi32(a, b); }
    static HWY_INLINE VI sub(VI a, VI b) { return _mm256_sub_epi32(a, b); }
    static HWY_INLINE VF zero_f() { return _mm256_setzero_ps(); }
    static HWY_INLINE VF to_f(VI p) { return _mm256_cvtepi32_ps(p); }
    // acc + float(p) * s
    static HWY_INLINE VF fma_i(VF acc, VI p, float s) {
        return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(s), acc);
    }
    static HWY_INLINE VF fma_f(VF acc, VF x, float s) { return _mm256_fmadd_ps(x, _mm256_set1_ps(s), acc); }
    static HWY_INLINE float reduce(VF v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    static HWY_INLINE float half(uint16_t h) { return _cvtsh_ss(h); }
    static HWY_INLINE VF bcast(const float* p) { return _mm256_broadcast_ss(p); }
    static HWY_INLINE VF mul(VF a, VF b) { return _mm256_mul_ps(a, b); }
    static HWY_INLINE VF fma(VF a, VF b, VF acc) { return _mm256_fmadd_ps(a, b, acc); }
};

#else  // portable Highway code, 128-bit vectors

struct Ops {
    using D8 = hn::FixedTag<uint8_t, 16>;
    using DI8 = hn::FixedTag<int8_t, 16>;
    using D16 = hn::FixedTag<int16_t, 8>;
    using D32 = hn::FixedTag<int32_t, 4>;
    using DF = hn::FixedTag<float, 4>;
    using V8 = hn::Vec<D8>;
    using V16 = hn::Vec<D16>;
    // On Arm the constructors are spelt out: GCC 12 compiles implicit ones without the
    // target's attributes there, and they then cannot inline Highway's vector constructors.
    // (Elsewhere the structs stay aggregates, as the x86 code was tuned with.)
    struct VB {
        V8 lo, hi;  // quants 0..15, 16..31
#if HWY_ARCH_ARM
        HWY_INLINE VB() {}
        HWY_INLINE VB(V8 l, V8 h) : lo(l), hi(h) {}
#endif
    };
    struct VW {
        V16 lo, hi;  // values 0..7, 8..15
#if HWY_ARCH_ARM
        HWY_INLINE VW() {}
        HWY_INLINE VW(V16 l, V16 h) : lo(l), hi(h) {}
#endif
    };
    using VI = hn::Vec<D32>;
    using VF = hn::Vec<DF>;
    static constexpr int kTileRows = 2;
    static constexpr int kTileCols = 2;

    static HWY_INLINE VB load(const void* p) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        return {hn::LoadU(D8(), b), hn::LoadU(D8(), b + 16)};
    }
    static HWY_INLINE VB set1(uint8_t v) { return {hn::Set(D8(), v), hn::Set(D8(), v)}; }
    static HWY_INLINE VB and_(VB a, VB b) { return {hn::And(a.lo, b.lo), hn::And(a.hi, b.hi)}; }
    static HWY_INLINE VB or_(VB a, VB b) { return {hn::Or(a.lo, b.lo), hn::Or(a.hi, b.hi)}; }
    static HWY_INLINE VB shr_and(VB v, int bits, uint8_t mask) {
        const V8 m = hn::Set(D8(), mask);
        return {hn::And(hn::ShiftRightSame(v.lo, bits), m), hn::And(hn::ShiftRightSame(v.hi, bits), m)};
    }
    static HWY_INLINE VB shl(VB v, int bits) { return {hn::ShiftLeftSame(v.lo, bits), hn::ShiftLeftSame(v.hi, bits)}; }
    static HWY_INLINE VB nibbles(const uint8_t* p) {
        const V8 q = hn::LoadU(D8(), p);
        return {hn::And(q, hn::Set(D8(), 0x0F)), hn::ShiftRight<4>(q)};
    }
    static HWY_INLINE VB expand_bits(uint32_t bits, uint8_t value) {
        alignas(16) static constexpr uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
        alignas(16) uint8_t spread[32];
        for (int i = 0; i < 32; ++i) spread[i] = static_cast<uint8_t>(bits >> (i & ~7));
        const V8 bit = hn::Load(D8(), kBit);
        const V8 val = hn::Set(D8(), value);
        const V8 lo = hn::LoadU(D8(), spread), hi = hn::LoadU(D8(), spread + 16);
        return {hn::And(hn::VecFromMask(D8(), hn::Eq(hn::And(lo, bit), bit)), val),
                hn::And(hn::VecFromMask(D8(), hn::Eq(hn::And(hi, bit), bit)), val)};
    }

    static HWY_INLINE V16 lo_u(V8 v) { return hn::PromoteTo(D16(), hn::LowerHalf(v)); }
    static HWY_INLINE V16 hi_u(V8 v) { return hn::PromoteTo(D16(), hn::UpperHalf(hn::Half<D8>(), v)); }
    static HWY_INLINE V16 lo_s(V8 v) { return hn::PromoteTo(D16(), hn::LowerHalf(hn::BitCast(DI8(), v))); }
    static HWY_INLINE V16 hi_s(V8 v) {
        return hn::PromoteTo(D16(), hn::UpperHalf(hn::Half<DI8>(), hn::BitCast(DI8(), v)));
    }
    // Sum of a * b over 8 int16 pairs, exact in int32.
    static HWY_INLINE VI madd(V16 a, V16 b) {
        VI odd = hn::Zero(D32());
        const VI even = hn::ReorderWidenMulAccumulate(D32(), a, b, hn::Zero(D32()), odd);
        return hn::RearrangeToOddPlusEven(even, odd);
    }
    static HWY_INLINE VI dot16(V16 a0, V16 b0, V16 a1, V16 b1) { return hn::Add(madd(a0, b0), madd(a1, b1)); }

#if TESSERA_KERNEL_SDOT
    // Sum of a * b, both read as int8, four products per int32 lane (Arm sdot).
    static HWY_INLINE VI sdot(VI acc, V8 a, V8 b) {
        return VI(vdotq_s32(acc.raw, vreinterpretq_s8_u8(a.raw), vreinterpretq_s8_u8(b.raw)));
    }
    static HWY_INLINE VI sdot(VB a, VB b) { return sdot(sdot(hn::Zero(D32()), a.lo, b.lo), a.hi, b.hi); }
    // u below 128, so it reads the same as int8.
    static HWY_INLINE VI dot_u(VB u, VB y) { return sdot(u, y); }
    static HWY_INLINE VI dot_s(VB w, VB y) { return sdot(w, y); }
    struct Off {
        V8 k;
        HWY_INLINE Off() {}
        HWY_INLINE Off(V8 v) : k(v) {}
    };
    static HWY_INLINE Off offset(VB, uint8_t k) { return {hn::Set(D8(), k)}; }
    // u - k in [-16, 15]: an int8 (the byte subtraction wraps to its two's complement).
    static HWY_INLINE VI dot_off(VB u, VB y, Off o) { return sdot(VB{hn::Sub(u.lo, o.k), hn::Sub(u.hi, o.k)}, y); }
#else
    static HWY_INLINE VI dot_u(VB u, VB y) {
        return hn::Add(dot16(lo_u(u.lo), lo_s(y.lo), hi_u(u.lo), hi_s(y.lo)),
                       dot16(lo_u(u.hi), lo_s(y.hi), hi_u(u.hi), hi_s(y.hi)));
    }
    static HWY_INLINE VI dot_s(VB w, VB y) {
        return hn::Add(dot16(lo_s(w.lo), lo_s(y.lo), hi_s(w.lo), hi_s(y.lo)),
                       dot16(lo_s(w.hi), lo_s(y.hi), hi_s(w.hi), hi_s(y.hi)));
    }
    struct Off {
        V16 k;
#if HWY_ARCH_ARM
        HWY_INLINE Off() {}
        HWY_INLINE Off(V16 v) : k(v) {}
#endif
    };
    static HWY_INLINE Off offset(VB, uint8_t k) { return {hn::Set(D16(), static_cast<int16_t>(k))}; }
    static HWY_INLINE VI dot_off(VB u, VB y, Off o) {
        return hn::Add(dot16(hn::Sub(lo_u(u.lo), o.k), lo_s(y.lo), hn::Sub(hi_u(u.lo), o.k), hi_s(y.lo)),
                       dot16(hn::Sub(lo_u(u.hi), o.k), lo_s(y.hi), hn::Sub(hi_u(u.hi), o.k), hi_s(y.hi)));
    }
#endif

    static HWY_INLINE V16 shuffle(V16 v, const uint8_t* control) {
        return hn::BitCast(D16(), hn::TableLookupBytes(hn::BitCast(D8(), v), hn::LoadU(D8(), control)));
    }
    static HWY_INLINE VW splat(VW v, int i) {
        return {shuffle(v.lo, kSplatControl[i]), shuffle(v.hi, kSplatControl[i])};
    }
    static HWY_INLINE VW pair(VW v, int j) {
        return {shuffle(v.lo, kPairControl[j]), shuffle(v.hi, kPairControl[j] + 16)};
    }
    static HWY_INLINE VW dup_half(VW v, int h) { return h ? VW{v.hi, v.hi} : VW{v.lo, v.lo}; }
    // Products u * y fit int16 (u < 64, |y| <= 127); the scale multiplies them exactly in int32.
    static HWY_INLINE VI dot_u_sc(VB u, VB y, VW sc) {
        const V16 p0 = hn::Mul(lo_u(u.lo), lo_s(y.lo)), p1 = hn::Mul(hi_u(u.lo), hi_s(y.lo));
        const V16 p2 = hn::Mul(lo_u(u.hi), lo_s(y.hi)), p3 = hn::Mul(hi_u(u.hi), hi_s(y.hi));
        return hn::Add(dot16(p0, sc.lo, p1, sc.lo), dot16(p2, sc.hi, p3, sc.hi));
    }
    static HWY_INLINE VW load_w(const int16_t* p) { return {hn::LoadU(D16(), p), hn::LoadU(D16(), p + 8)}; }
    static HWY_INLINE VW widen_s8(const int8_t* p) {
        const hn::FixedTag<int8_t, 8> d8;
        return {hn::PromoteTo(D16(), hn::LoadU(d8, p)), hn::PromoteTo(D16(), hn::LoadU(d8, p + 8))};
    }
    static HWY_INLINE V16 widen8(const uint8_t* p) {
        return hn::PromoteTo(D16(), hn::LoadU(hn::FixedTag<uint8_t, 8>(), p));
    }
    static HWY_INLINE V16 widen8(uint64_t w) {
        uint8_t b[8];
        std::memcpy(b, &w, 8);
        return widen8(b);
    }
    static HWY_INLINE VW widen_u8(const uint8_t* p) { return {widen8(p), widen8(p + 8)}; }
    static HWY_INLINE VW widen_u8(uint64_t lo, uint64_t hi) { return {widen8(lo), widen8(hi)}; }
    static HWY_INLINE VW widen_u8x8(uint64_t w) {
        const V16 v = widen8(w);
        return {v, v};
    }
    static HWY_INLINE VW and_w(VW v, int16_t m) {
        return {hn::And(v.lo, hn::Set(D16(), m)), hn::And(v.hi, hn::Set(D16(), m))};
    }
    static HWY_INLINE VW shr_w(VW v, int bits) {
        return {hn::ShiftRightSame(v.lo, bits), hn::ShiftRightSame(v.hi, bits)};
    }
    static HWY_INLINE VW add_w(VW v, int16_t a) {
        return {hn::Add(v.lo, hn::Set(D16(), a)), hn::Add(v.hi, hn::Set(D16(), a))};
    }
    static HWY_INLINE VW widen_dup_u8(uint64_t w) {
        const V16 v = widen8(w);
        return {hn::InterleaveLower(D16(), v, v), hn::InterleaveUpper(D16(), v, v)};
    }
    static HWY_INLINE VW shl_w(VW v, int bits) {
        return {hn::ShiftLeftSame(v.lo, bits), hn::ShiftLeftSame(v.hi, bits)};
    }
    static HWY_INLINE VI madd_w(VW a, VW b) { return dot16(a.lo, b.lo, a.hi, b.hi); }

    static HWY_INLINE VI zero_i() { return hn::Zero(D32()); }
    static HWY_INLINE VI add(VI a, VI b) { return hn::Add(a, b); }
    static HWY_INLINE VI sub(VI a, VI b) { return hn::Sub(a, b); }
    static HWY_INLINE VF zero_f() { return hn::Zero(DF()); }
    static HWY_INLINE VF to_f(VI p) { return hn::ConvertTo(DF(), p); }
    static HWY_INLINE VF fma_i(VF acc, VI p, float s) {
        return hn::MulAdd(hn::ConvertTo(DF(), p), hn::Set(DF(), s), acc);
    }
    static HWY_INLINE VF fma_f(VF acc, VF x, float s) { return hn::MulAdd(x, hn::Set(DF(), s), acc); }
    static HWY_INLINE float reduce(VF v) { return hn::GetLane(hn::SumOfLanes(DF(), v)); }
    static HWY_INLINE float half(uint16_t h) { return fp16_to_fp32(h); }
    static HWY_INLINE VF bcast(const float* p) { return hn::Set(DF(), *p); }
    static HWY_INLINE VF mul(VF a, VF b) { return hn::Mul(a, b); }
    static HWY_INLINE VF fma(VF a, VF b, VF acc) { return hn::MulAdd(a, b, acc); }
};

#endif  // TESSERA_X86_WIDE
