// What the prompt attention shaders in f16 blocks share (flash_attn_cm.comp on cooperative
// matrices, flash_attn_h.comp in packed f16 arithmetic): a workgroup of 256 takes BR query
// rows that share a KV head ("virtual rows" v = position * G + head in group) and walks the
// keys BC at a time. Included after attn.glsl and the declarations of the queries
// (uvec4 qsh[BR * LDQ], 8 halves a vector), of live_lo and live_hi, and of the keys and
// values seen 16 bytes at a time (k4 and v4).

f16vec4 halves(vec4 x) { return f16vec4(clamp(x, vec4(-65504.0), vec4(65504.0))); }

uvec4 pack8(f16vec4 a, f16vec4 b) {
    return uvec4(packFloat2x16(a.xy), packFloat2x16(a.zw), packFloat2x16(b.xy), packFloat2x16(b.zw));
}

bool hidden(float mv) { return isinf(mv) && mv < 0.0; }

// Elements e .. e + 7 of the key (or value) row at byte r of type kt as f16, e a multiple of
// 8: F16 rows whose offsets are multiples of 16 (wide) in one 16-byte load.
uvec4 key8(uint kt, uint r, uint e, bool wide) {
    return wide ? k4[(r >> 4) + e / 8u] : pack8(halves(key4(kt, r, e)), halves(key4(kt, r, e + 4u)));
}
uvec4 value8(uint vt, uint r, uint e, bool wide) {
    return wide ? v4[(r >> 4) + e / 8u] : pack8(halves(value4_of(vt, r, e)), halves(value4_of(vt, r, e + 4u)));
}

// The rows v0 .. v0 + BR - 1 of KV head hk and sequence s: their queries into qsh as f16
// (zeros past the last, VR), 8 a vector.
void load_queries(uint t, uint v0, uint VR, uint G, uint hk, uint s) {
    const uint D8 = p.D / 8u;
    for (uint x = t; x < BR * D8; x += 256u) {
        const uint row = x / D8, c = x % D8, vr = v0 + row;
        vec4 lo = vec4(0.0), hi = vec4(0.0);
        if (vr < VR) {
            const uint qr = p.q_off + (vr / G) * p.q_nb1 + (hk * G + vr % G) * p.q_nb2 + s * p.q_nb3 + 32u * c;
            lo = vec4(F32(q, qr), F32(q, qr + 4u), F32(q, qr + 8u), F32(q, qr + 12u));
            hi = vec4(F32(q, qr + 16u), F32(q, qr + 20u), F32(q, qr + 24u), F32(q, qr + 28u));
        }
        qsh[row * LDQ + c] = pack8(halves(lo), halves(hi));
    }
}

// The keys of key0 .. key_end - 1 that some row v0 .. v0 + BR - 1 sees, from the mask: the
// first step's first key (whole steps from key0) and the end of those keys.
uvec2 live_keys(uint t, uint v0, uint VR, uint G, uint key0, uint key_end) {
    const uint p_first = v0 / G, p_last = (min(v0 + BR, VR) - 1u) / G;
    if (t == 0u) {
        live_lo = key_end;
        live_hi = key0;
    }
    barrier();
    if ((p.flags & 0x10000u) != 0u) {
        uint lo = key_end, hi = key0;
        for (uint j = key0 + t; j < key_end; j += 256u)
            for (uint i = p_first; i <= p_last; ++i)
                if (!hidden(attn_mask(i, j))) {
                    lo = min(lo, j);
                    hi = j + 1u;
                    break;
                }
        if (lo < hi) {
            atomicMin(live_lo, lo);
            atomicMax(live_hi, hi);
        }
    } else if (t == 0u) {
        live_lo = key0;
        live_hi = key_end;
    }
    barrier();
    return uvec2(key0 + (live_lo - key0) / BC * BC, live_hi);
}
