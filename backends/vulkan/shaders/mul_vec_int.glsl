// mul_vec.comp's INTDOT variants: decoding products on integer dot products. The activations
// come quantized (quant_act.comp): int8 in blocks of 32, each row K bytes from b_off on (rows
// b_nb1 apart, 16-byte aligned), and per block a (d, d * sum of its quants) pair from ds_off.
// An invocation takes 32-element slices of the weight rows, adjacent invocations adjacent
// slices; a slice's weights become 8 words of packed signed bytes and three factors, and
//   sum over the slice of w * x = ds.x * (f.x * dot(q[0..3], x[0..3]) + f.y * dot(q[4..7], x[4..7]))
//                                 + f.z * ds.y
// (f.z carries the offset or minimum that the bytes leave out). OpSDot on 4 packed bytes
// (SPV_KHR_integer_dot_product) is dp4a on NVIDIA and AMD GPUs.
layout(binding = 2) readonly buffer BQ { uvec4 bq[]; };
layout(binding = 2) readonly buffer BD { vec2 bd[]; };

spirv_instruction(extensions = ["SPV_KHR_integer_dot_product"], capabilities = [6019, 6018], id = 4450)
int sdot_packed(uint a, uint b, spirv_literal int packed_format);
int dot4(uint a, uint b) { return sdot_packed(a, b, 0); }  // format 0: 4 x 8-bit packed

// Sixteen bytes of A from an even byte offset, as four little-endian words.
void words16(uint o, out uint w[4]) {
    const uint base = o >> 2, odd = (o >> 1) & 1u;
    uint raw[5];
    [[unroll]] for (uint i = 0u; i < 4u; ++i) raw[i] = A[base + i];
    raw[4] = A[base + 4u * odd];  // only used when odd
    [[unroll]] for (uint i = 0u; i < 4u; ++i) w[i] = odd != 0u ? (raw[i] >> 16) | (raw[i + 1u] << 16) : raw[i];
}

// Bits 0..3 of v, one to a byte (bit i to bit 8i).
uint spread4(uint v) { return ((v & 15u) * 0x00204081u) & 0x01010101u; }

// Slice s (elements 32s .. 32s + 31) of the row at byte r: its quants as signed bytes in
// element order, and the factors f.
void weight_slice(uint r, uint s, out uint q[8], out vec3 f) {
    uint lo[4], hi[4];
    if ((WTYPE == T_Q8_0 || WTYPE == T_Q4_0) && split_nb != 0u) {
        // A split row (dequant.glsl): the quants in one or two 16-byte loads.
        const float d = F16(A, block_scale_at(WTYPE, r, s));
        const uint qa = block_quants_at(WTYPE, r, s) >> 4;
        const uvec4 w0 = A4[qa];
        if (WTYPE == T_Q8_0) {
            const uvec4 w1 = A4[qa + 1u];
            q = uint[8](w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w);
            f = vec3(d, d, 0.0);
        } else {
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                q[i] = w0[i] & 0x0F0F0F0Fu;
                q[i + 4u] = (w0[i] >> 4) & 0x0F0F0F0Fu;
            }
            f = vec3(d, d, -8.0 * d);
        }
        return;
    }
    if (WTYPE == T_Q8_0) {
        const uint b = r + 34u * s;
        const float d = F16(A, b);
        words16(b + 2u, lo);
        words16(b + 18u, hi);
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            q[i] = lo[i];
            q[i + 4u] = hi[i];
        }
        f = vec3(d, d, 0.0);
    } else if (WTYPE == T_Q4_0 || WTYPE == T_Q4_1 || WTYPE == T_Q5_0 || WTYPE == T_Q5_1) {
        // Elements 0..15: the low nibbles of the 16 quant bytes; 16..31: the high ones.
        const uint b = r + block_bytes(WTYPE) * s;
        const uint qs = WTYPE == T_Q4_0 ? 2u : WTYPE == T_Q4_1 ? 4u : WTYPE == T_Q5_0 ? 6u : 8u;
        const vec2 dm = unpackHalf2x16(bytes4(b));  // d, and m for Q4_1 and Q5_1
        const uint qh = WTYPE == T_Q5_0 ? bytes4(b + 2u) : WTYPE == T_Q5_1 ? bytes4(b + 4u) : 0u;
        words16(b + qs, lo);
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            q[i] = lo[i] & 0x0F0F0F0Fu;
            q[i + 4u] = (lo[i] >> 4) & 0x0F0F0F0Fu;
            if (WTYPE == T_Q5_0 || WTYPE == T_Q5_1) {
                q[i] |= spread4(qh >> (4u * i)) << 4;
                q[i + 4u] |= spread4(qh >> (16u + 4u * i)) << 4;
            }
        }
        const float z = WTYPE == T_Q4_0 ? -8.0 * dm.x : WTYPE == T_Q5_0 ? -16.0 * dm.x : dm.y;
        f = vec3(dm.x, dm.x, z);
    } else if (WTYPE == T_Q4_K || WTYPE == T_Q5_K) {
        // Sub-block j of super-block s / 8: nibbles of bytes 32 (j / 2) on, the low ones for
        // even j; Q5_K's fifth bit is bit j of 32 bytes from 16 on.
        const uint b = r + block_bytes(WTYPE) * (s / 8u), j = s % 8u;
        float mn;
        const float sc = q4k_scale_min(b, j, mn);
        const vec2 dd = unpackHalf2x16(bytes4(b));
        const uint qs = b + (WTYPE == T_Q4_K ? 16u : 48u) + 32u * (j / 2u), shift = 4u * (j & 1u);
        words16(qs, lo);
        words16(qs + 16u, hi);
        uint h[8];
        if (WTYPE == T_Q5_K) {
            uint h0[4], h1[4];
            words16(b + 16u, h0);
            words16(b + 32u, h1);
            [[unroll]] for (uint i = 0u; i < 4u; ++i) {
                h[i] = ((h0[i] >> j) & 0x01010101u) << 4;
                h[i + 4u] = ((h1[i] >> j) & 0x01010101u) << 4;
            }
        }
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            q[i] = (lo[i] >> shift) & 0x0F0F0F0Fu;
            q[i + 4u] = (hi[i] >> shift) & 0x0F0F0F0Fu;
            if (WTYPE == T_Q5_K) {
                q[i] |= h[i];
                q[i + 4u] |= h[i + 4u];
            }
        }
        f = vec3(dd.x * sc, dd.x * sc, -dd.y * mn);
    } else {  // Q6_K: part p of half n; 4 low bits from ql, 2 high from qh, less 32
        const uint b = r + 210u * (s / 8u), n = (s % 8u) / 4u, p = s % 4u;
        uint h0[4], h1[4];
        words16(b + 64u * n + 32u * (p & 1u), lo);
        words16(b + 64u * n + 32u * (p & 1u) + 16u, hi);
        words16(b + 128u + 32u * n, h0);
        words16(b + 144u + 32u * n, h1);
        const uint ls = p >= 2u ? 4u : 0u, hs = 2u * p;
        [[unroll]] for (uint i = 0u; i < 4u; ++i) {
            const uint v0 = ((lo[i] >> ls) & 0x0F0F0F0Fu) | (((h0[i] >> hs) & 0x03030303u) << 4);
            const uint v1 = ((hi[i] >> ls) & 0x0F0F0F0Fu) | (((h1[i] >> hs) & 0x03030303u) << 4);
            // v - 32 in each byte (0..63 to -32..31), without borrows between bytes.
            q[i] = ((v0 | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
            q[i + 4u] = ((v1 | 0x80808080u) - 0x20202020u) ^ 0x80808080u;
        }
        const float d = F16(A, b + 208u);
        f = vec3(d * float(I8(A, b + 192u + 8u * n + 2u * p)), d * float(I8(A, b + 193u + 8u * n + 2u * p)), 0.0);
    }
}

// The slice's part of a product with one activation block: its quants and (d, d * sum).
float slice_dot(uint q[8], vec3 f, uvec4 x0, uvec4 x1, vec2 ds) {
    const int lo = dot4(q[0], x0.x) + dot4(q[1], x0.y) + dot4(q[2], x0.z) + dot4(q[3], x0.w);
    const int hi = dot4(q[4], x1.x) + dot4(q[5], x1.y) + dot4(q[6], x1.z) + dot4(q[7], x1.w);
    return ds.x * (f.x * float(lo) + f.y * float(hi)) + f.z * ds.y;
}
