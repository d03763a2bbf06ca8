// Blocks of 32 activations as int8 for the decoding products on integer dot products
// (mul_vec_int.glsl): d = max |x| / 127, q = round(x / d) (0 where the block is all zeros),
// packed 4 to a word in element order; ds = (d, d * sum of the quants). A workgroup of
// QUANT_LANES invocations (the includer defines it) makes them together: four consecutive
// elements an invocation, the invocations at quant_lane() 8i to 8i + 7 a block, whose largest
// magnitude and sum of quants meet in shared memory, or (SUBGROUPS, where every subgroup of
// the workgroup is full and has at least 8 invocations) through shuffles within 8 adjacent
// lanes of a subgroup, with no barrier. Every invocation of the workgroup calls quantize4 (it may have barriers), those
// past the data with zeros. It returns the invocation's four quants packed in a word, and its
// block's ds.
#ifdef SUBGROUPS
#extension GL_KHR_shader_subgroup_shuffle : require
// Uniform over the workgroup: full subgroups of at least 8 (each then a whole number of blocks).
bool quant_shuffles() { return gl_SubgroupSize >= 8u && gl_NumSubgroups * gl_SubgroupSize == QUANT_LANES; }
#else
bool quant_shuffles() { return false; }
#endif
// The invocation's place among the workgroup's QUANT_LANES: which four elements it takes.
uint quant_lane() {
#ifdef SUBGROUPS
    if (quant_shuffles()) return gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
#endif
    return gl_LocalInvocationID.x;
}

shared vec2 qshare[QUANT_LANES];

uint quant_pack(ivec4 q) {
    return (uint(q.x) & 0xFFu) | (uint(q.y) & 0xFFu) << 8 | (uint(q.z) & 0xFFu) << 16 | (uint(q.w) & 0xFFu) << 24;
}

uint quantize4(vec4 x, out vec2 ds) {
    const vec4 ax = abs(x);
    const float m4 = max(max(ax.x, ax.y), max(ax.z, ax.w));
#ifdef SUBGROUPS
    if (quant_shuffles()) {
        float amax = m4;
        [[unroll]] for (uint m = 1u; m < 8u; m <<= 1) amax = max(amax, subgroupShuffleXor(amax, m));
        const float id = amax > 0.0 ? 127.0 / amax : 0.0;
        const ivec4 q = clamp(ivec4(round(x * id)), ivec4(-127), ivec4(127));
        int sum = (q.x + q.y) + (q.z + q.w);
        [[unroll]] for (uint m = 1u; m < 8u; m <<= 1) sum += subgroupShuffleXor(sum, m);
        ds = vec2(amax / 127.0, amax / 127.0 * float(sum));
        return quant_pack(q);
    }
#endif
    const uint t = gl_LocalInvocationID.x, g = t & ~7u;
    barrier();  // the previous call's reads are done
    qshare[t].x = m4;
    barrier();
    float amax = 0.0;
    [[unroll]] for (uint k = 0u; k < 8u; ++k) amax = max(amax, qshare[g + k].x);
    const float d = amax / 127.0, id = amax > 0.0 ? 127.0 / amax : 0.0;
    const ivec4 q = clamp(ivec4(round(x * id)), ivec4(-127), ivec4(127));
    qshare[t].y = float((q.x + q.y) + (q.z + q.w));  // beside the .x words still being read
    barrier();
    float sum = 0.0;
    [[unroll]] for (uint k = 0u; k < 8u; ++k) sum += qshare[g + k].y;
    ds = vec2(d, d * sum);
    return quant_pack(q);
}
