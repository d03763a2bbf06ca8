#version 450
// Activation rows to int8 for the decoding products on integer dot products (mul_vec.comp's
// INTDOT variants), an invocation per block of 32 elements (quant_block.glsl); rows.comp's RMS
// norm writes the same form beside its output where a product takes that; a gated activation
// (SwiGLU, GeGLU) whose output a product takes is computed here, written and quantized. Row
// j's quants go to q_off + j q_nb1 (K bytes), block s's (d, d * sum of its quants) to pair
// (ds_off / 8) + j (K / 32) + s.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
#include "act.glsl"
#include "quant_block.glsl"
layout(local_size_x = 64) in;
layout(binding = 0) buffer Q { uint q[]; };
layout(binding = 0) buffer D { vec2 ds[]; };
layout(binding = 1) readonly buffer B { uint b[]; };
layout(binding = 2) readonly buffer U { uint u[]; };  // the gated activations' second input
layout(binding = 3) buffer O { uint o[]; };           // and their f32 output
// op 0: b as it is; 1: swiglu(b, u), 2: geglu(b, u), also written to o (the node's output).
layout(push_constant) uniform P { uint b_off, b_nb1, K, M, q_off, q_nb1, ds_off, op, u_off, u_nb1, o_off, o_nb1; } p;

void main() {
    const uint per_row = p.K / 32u, blk = group_id() * 64u + gl_LocalInvocationID.x;
    if (blk >= per_row * p.M) return;
    const uint j = blk / per_row, s = blk % per_row;
    const uint src = p.b_off + j * p.b_nb1 + 128u * s;
    float x[32];
    [[unroll]] for (uint e = 0u; e < 32u; ++e) x[e] = F32(b, src + 4u * e);
    if (p.op != 0u) {
        const uint up = p.u_off + j * p.u_nb1 + 128u * s, dst_o = (p.o_off + j * p.o_nb1 + 128u * s) >> 2;
        [[unroll]] for (uint e = 0u; e < 32u; ++e) {
            x[e] = (p.op == 1u ? silu(x[e]) : gelu_tanh(x[e])) * F32(u, up + 4u * e);
            o[dst_o + e] = floatBitsToUint(x[e]);
        }
    }
    uint w[8];
    vec2 d;
    quantize32(x, w, d);
    const uint dst = (p.q_off + j * p.q_nb1 + 32u * s) >> 2;
    [[unroll]] for (uint i = 0u; i < 8u; ++i) q[dst + i] = w[i];
    ds[p.ds_off / 8u + blk] = d;
}
