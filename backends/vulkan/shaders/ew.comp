#version 450
// Element-wise ops, one invocation per output element: add and mul (b broadcast over a),
// scale and the activations, the gated activations, copies between F32/F16/BF16 (any
// strides), and concat. Tensors are (offset, ne[4], nb[4]) in bytes.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
layout(local_size_x = 256) in;
layout(binding = 0) buffer O { uint o[]; };

// A 16-bit store as two atomics on its 32-bit word: the invocation writing the word's other
// half may run at the same time, and neither needs 16-bit storage.
void store16(uint byte, uint v) {
    const uint shift = (byte & 2u) * 8u;
    atomicAnd(o[byte >> 2], ~(0xFFFFu << shift));
    atomicOr(o[byte >> 2], (v & 0xFFFFu) << shift);
}
layout(binding = 1) readonly buffer A { uint a[]; };
layout(binding = 2) readonly buffer B { uint b[]; };
struct Ten { uint off, ne0, ne1, ne2, ne3, nb0, nb1, nb2, nb3; };
layout(push_constant) uniform P { Ten to, ta, tb; uint op; float param; uint types; } p;

const uint ADD = 0u, MUL = 1u, SCALE = 2u, SILU = 3u, GELU = 4u, GELU_ERF = 5u, TANH = 6u, SWIGLU = 7u, GEGLU = 8u,
           COPY = 9u, CONCAT = 10u;

uint at(Ten t, uint i0, uint i1, uint i2, uint i3) { return t.off + i0 * t.nb0 + i1 * t.nb1 + i2 * t.nb2 + i3 * t.nb3; }

#include "act.glsl"
// erf by Abramowitz-Stegun 7.1.26 is not precise enough; this series/continued form is
// within 1e-7: erf(x) = 1 - erfc(x), erfc from Numerical Recipes' erfcc (Chebyshev).
float erf_approx(float x) {
    const float z = abs(x);
    const float t = 1.0 / (1.0 + 0.5 * z);
    const float r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
                    t * (-0.82215223 + t * 0.17087277)))))))));
    return x >= 0.0 ? 1.0 - r : r - 1.0;
}

float load_a(uint type, uint byte) {
    if (type == T_F16) return F16(a, byte);
    if (type == T_BF16) return BF16(a, byte);
    return F32(a, byte);
}

void store(uint type, uint byte, float v) {
    if (type == T_F32) o[byte >> 2] = floatBitsToUint(v);
    else if (type == T_F16) store16(byte, packHalf2x16(vec2(v, 0.0)) & 0xFFFFu);
    else {  // BF16, round to nearest even
        uint u = floatBitsToUint(v);
        u = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        store16(byte, u);
    }
}

void main() {
    const uint i = group_id() * 256u + gl_LocalInvocationID.x;
    // The logical shape walked: the source's for a copy (the destination may be reshaped).
    const bool copy = p.op == COPY;
    const uint ne0 = copy ? p.ta.ne0 : p.to.ne0, ne1 = copy ? p.ta.ne1 : p.to.ne1, ne2 = copy ? p.ta.ne2 : p.to.ne2,
               ne3 = copy ? p.ta.ne3 : p.to.ne3;
    if (i >= ne0 * ne1 * ne2 * ne3) return;
    const uint i0 = i % ne0, i1 = (i / ne0) % ne1, i2 = (i / (ne0 * ne1)) % ne2, i3 = i / (ne0 * ne1 * ne2);
    if (p.op == COPY) {
        const uint j0 = i % p.to.ne0, j1 = (i / p.to.ne0) % p.to.ne1, j2 = (i / (p.to.ne0 * p.to.ne1)) % p.to.ne2,
                   j3 = i / (p.to.ne0 * p.to.ne1 * p.to.ne2);
        store(p.types >> 8, at(p.to, j0, j1, j2, j3), load_a(p.types & 255u, at(p.ta, i0, i1, i2, i3)));
        return;
    }
    float r;
    if (p.op == CONCAT) {
        uint c[4] = uint[4](i0, i1, i2, i3);
        const uint dim = uint(p.param);
        const uint na[4] = uint[4](p.ta.ne0, p.ta.ne1, p.ta.ne2, p.ta.ne3);
        if (c[dim] < na[dim]) {
            r = F32(a, at(p.ta, c[0], c[1], c[2], c[3]));
        } else {
            c[dim] -= na[dim];
            r = F32(b, at(p.tb, c[0], c[1], c[2], c[3]));
        }
    } else {
        const float x = F32(a, at(p.ta, i0, i1, i2, i3));
        if (p.op == ADD || p.op == MUL) {
            const float y = F32(b, at(p.tb, i0 % p.tb.ne0, i1 % p.tb.ne1, i2 % p.tb.ne2, i3 % p.tb.ne3));
            r = p.op == ADD ? x + y : x * y;
        } else if (p.op == SWIGLU || p.op == GEGLU) {
            const float g = F32(b, at(p.tb, i0, i1, i2, i3));
            r = (p.op == SWIGLU ? silu(x) : gelu_tanh(x)) * g;
        } else if (p.op == SCALE) r = x * p.param;
        else if (p.op == SILU) r = silu(x);
        else if (p.op == GELU) r = gelu_tanh(x);
        else if (p.op == TANH) r = tanh_safe(x);
        else r = 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
    }
    o[at(p.to, i0, i1, i2, i3) >> 2] = floatBitsToUint(r);
}
