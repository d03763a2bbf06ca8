// Element e of one block of a weight type, read from the buffer named A at byte offset b:
// the layouts of tensor/quant/blocks.h (the same bits as GGUF files).
float q4k_scale_min(uint b, uint j, out float m) {
    uint sc, mn;
    if (j < 4u) {
        sc = U8(A, b + 4u + j) & 63u;
        mn = U8(A, b + 8u + j) & 63u;
    } else {
        sc = (U8(A, b + 8u + j) & 15u) | ((U8(A, b + j) >> 6) << 4);
        mn = (U8(A, b + 8u + j) >> 4) | ((U8(A, b + 4u + j) >> 6) << 4);
    }
    m = float(mn);
    return float(sc);
}

float dequant(uint type, uint b, uint e) {
    if (type == T_F32) return F32(A, b + 4u * e);
    if (type == T_F16) return F16(A, b + 2u * e);
    if (type == T_BF16) return BF16(A, b + 2u * e);
    if (type == T_Q8_0) return F16(A, b) * float(I8(A, b + 2u + e));
    if (type == T_Q4_0 || type == T_Q4_1) {
        const uint qs = type == T_Q4_0 ? 2u : 4u;
        const uint q = U8(A, b + qs + (e & 15u));
        const uint v = e < 16u ? q & 15u : q >> 4;
        return type == T_Q4_0 ? F16(A, b) * (float(v) - 8.0) : F16(A, b) * float(v) + F16(A, b + 2u);
    }
    if (type == T_Q5_0 || type == T_Q5_1) {
        const uint qh_at = type == T_Q5_0 ? 2u : 4u;
        const uint q = U8(A, b + qh_at + 4u + (e & 15u));
        const uint v = (e < 16u ? q & 15u : q >> 4) | (((U32(A, b + qh_at) >> e) & 1u) << 4);
        return type == T_Q5_0 ? F16(A, b) * (float(v) - 16.0) : F16(A, b) * float(v) + F16(A, b + 2u);
    }
    if (type == T_Q4_K || type == T_Q5_K) {
        const uint c = e / 64u, l = e % 64u;
        const uint qs_at = type == T_Q4_K ? 16u : 48u;
        const uint q = U8(A, b + qs_at + 32u * c + (l & 31u));
        uint v = l < 32u ? q & 15u : q >> 4;
        if (type == T_Q5_K) v |= ((U8(A, b + 16u + (e & 31u)) >> (e / 32u)) & 1u) << 4;
        float mn;
        const float sc = q4k_scale_min(b, e / 32u, mn);
        return F16(A, b) * sc * float(v) - F16(A, b + 2u) * mn;
    }
    if (type == T_Q6_K) {
        const uint n = e / 128u, r = e % 128u, l = r % 32u, p = r / 32u;
        const uint ql = U8(A, b + 64u * n + l + (p & 1u) * 32u);
        const uint qh = U8(A, b + 128u + 32u * n + l);
        const int v = int(((ql >> (p >= 2u ? 4u : 0u)) & 15u) | (((qh >> (2u * p)) & 3u) << 4)) - 32;
        return F16(A, b + 208u) * float(I8(A, b + 192u + 8u * n + l / 16u + 2u * p)) * float(v);
    }
    return 0.0;
}

// Bytes of a block and elements in it.
uint block_bytes(uint type) {
    switch (type) {
        case T_F32: return 4u;
        case T_F16: case T_BF16: return 2u;
        case T_Q4_0: return 18u;
        case T_Q4_1: return 20u;
        case T_Q5_0: return 22u;
        case T_Q5_1: return 24u;
        case T_Q8_0: return 34u;
        case T_Q4_K: return 144u;
        case T_Q5_K: return 176u;
        case T_Q6_K: return 210u;
    }
    return 0u;
}

uint block_elems(uint type) {
    if (type == T_F32 || type == T_F16 || type == T_BF16) return 1u;
    if (type == T_Q4_K || type == T_Q5_K || type == T_Q6_K) return 256u;
    return 32u;
}

// Element k of a weight row starting at byte r.
float weight_at(uint type, uint r, uint k) {
    const uint be = block_elems(type);
    return dequant(type, r + (k / be) * block_bytes(type), k % be);
}
