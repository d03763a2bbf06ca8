// The prompt products' loads (mul_mat_cm.comp, mul_mat_tile.comp): a step of BK elements of
// K of a tile of BM weight rows and BN activation rows, in registers: NA groups of 8 weights
// an invocation (dequantized, as WREG: vec4 or f16vec4) and NB quads of 4 activations (as
// loaded). The includer declares A, A4, b, b4, p, BM, BN, BK, NA, NB and WREG.
WREG ra[NA][2];
vec4 rb[NB];

// Elements 8g .. 8g + 7 of the weight row at byte r.
void load8(uint r, uint g, out float v[8]) {
    if (WTYPE == T_F32 || WTYPE == T_F16 || WTYPE == T_BF16) {
        [[unroll]] for (uint i = 0u; i < 8u; ++i) v[i] = dequant(WTYPE, r + (8u * g + i) * block_bytes(WTYPE), 0u);
    } else {
        dequant8(WTYPE, r, g, v);
    }
}

// Step k0's weights, dequantized into ra: adjacent invocations take adjacent groups of a row;
// rows past the edge repeat the last (never stored).
void load_weights(uint k0, uint t, uint wg, uint abase, uint i0, bool avec) {
    [[unroll]] for (uint u = 0u; u < NA; ++u) {
        const uint q = t + u * wg;
        if (q < BM * (BK / 8u)) {
            const uint r = q / (BK / 8u), g = q % (BK / 8u);
            const uint row = abase + min(i0 + r, p.N - 1u) * p.a_nb1;
            if (avec) {
                const uvec4 w = A4[(row >> 4) + k0 / 8u + g];
                ra[u][0] = WREG(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
                ra[u][1] = WREG(unpackHalf2x16(w.z), unpackHalf2x16(w.w));
            } else {
                float v[8];
                load8(row, k0 / 8u + g, v);
                ra[u][0] = WREG(v[0], v[1], v[2], v[3]);
                ra[u][1] = WREG(v[4], v[5], v[6], v[7]);
            }
        }
    }
}

// Step k0's activations as loaded (f32) into rb. Rows past the edge repeat the last and are
// stored as zeros: a load behind a bounds check (a branch) instead made mul_mat_cm.comp's
// products about 1.6x slower on the H100.
void load_acts(uint k0, uint t, uint wg, uint bbase, uint j0, bool vec) {
    [[unroll]] for (uint u = 0u; u < NB; ++u) {
        const uint q = t + u * wg;
        if (q < BN * (BK / 4u)) {
            const uint r = q / (BK / 4u), c = q % (BK / 4u);
            const uint o = bbase + min(j0 + r, p.M - 1u) * p.b_nb1 + 4u * (k0 + 4u * c);
            rb[u] = vec ? b4[o >> 4] : vec4(F32(b, o), F32(b, o + 4u), F32(b, o + 8u), F32(b, o + 12u));
        }
    }
}

