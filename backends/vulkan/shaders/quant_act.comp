#version 450
// Activation rows to int8 for the decoding products on integer dot products (mul_vec.comp's
// INTDOT variants), eight blocks of 32 elements a workgroup (quant_block.glsl); rows.comp's
// RMS norm writes the same form beside its output where a product takes that; a gated
// activation (SwiGLU, GeGLU) whose output a product takes is computed here, written and
// quantized. Row j's quants go to q_off + j q_nb1 (K bytes), block s's (d, d * sum of its
// quants) to pair (ds_off / 8) + j (K / 32) + s.
#extension GL_GOOGLE_include_directive : enable
#include "common.glsl"
#include "act.glsl"
#define QUANT_LANES 64u
#include "quant_block.glsl"
layout(local_size_x = 64) in;
layout(binding = 0) buffer Q { uint q[]; };
layout(binding = 0) buffer D { vec2 ds[]; };
layout(binding = 1) readonly buffer B { uint b[]; };
layout(binding = 2) readonly buffer U { uint u[]; };  // the gated activations' second input
layout(binding = 3) buffer O { uint o[]; };           // and their f32 output
// op 0: b as it is; 1: swiglu(b, u), 2: geglu(b, u), also written to o (the node's output).
layout(push_constant) uniform P { uint b_off, b_nb1, K, M, q_off, q_nb1, ds_off, op, u_off, u_nb1, o_off, o_nb1; } p;

vec4 load4(uint at) { return vec4(F32(b, at), F32(b, at + 4u), F32(b, at + 8u), F32(b, at + 12u)); }
vec4 load4u(uint at) { return vec4(F32(u, at), F32(u, at + 4u), F32(u, at + 8u), F32(u, at + 12u)); }

void main() {
    const uint per_row = p.K / 32u, lane = gl_LocalInvocationID.x;
    const uint blk = group_id() * (QUANT_LANES / 8u) + lane / 8u, part = lane % 8u;
    const bool live = blk < per_row * p.M;  // the last workgroup's others still meet the barriers
    const uint j = live ? blk / per_row : 0u, s = blk % per_row;
    vec4 x = vec4(0.0);
    if (live) {
        x = load4(p.b_off + j * p.b_nb1 + 128u * s + 16u * part);
        if (p.op != 0u) {
            const vec4 g = load4u(p.u_off + j * p.u_nb1 + 128u * s + 16u * part);
            [[unroll]] for (uint e = 0u; e < 4u; ++e) x[e] = (p.op == 1u ? silu(x[e]) : gelu_tanh(x[e])) * g[e];
            const uint dst_o = (p.o_off + j * p.o_nb1 + 128u * s + 16u * part) >> 2;
            [[unroll]] for (uint e = 0u; e < 4u; ++e) o[dst_o + e] = floatBitsToUint(x[e]);
        }
    }
    vec2 d;
    const uint w = quantize4(x, d);
    if (!live) return;
    q[((p.q_off + j * p.q_nb1 + 32u * s) >> 2) + part] = w;
    if (part == 0u) ds[p.ds_off / 8u + blk] = d;
}
