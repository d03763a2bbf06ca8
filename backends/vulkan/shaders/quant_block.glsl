// Blocks of 32 activations as int8 for the decoding products on integer dot products
// (mul_vec_int.glsl): d = max |x| / 127, q = round(x / d) (0 where the block is all zeros),
// packed 4 to a word in element order; ds = (d, d * sum of the quants). A workgroup of
// QUANT_LANES invocations (the includer defines it) makes them together: four consecutive
// elements an invocation, invocations 8i to 8i + 7 a block, whose largest magnitude and sum
// of quants meet in shared memory. Every invocation of the workgroup calls quantize4 (it has
// barriers), those past the data with zeros. It returns the invocation's four quants packed
// in a word, and its block's ds.
shared vec2 qshare[QUANT_LANES];

uint quantize4(vec4 x, out vec2 ds) {
    const uint t = gl_LocalInvocationID.x, g = t & ~7u;
    const vec4 ax = abs(x);
    barrier();  // the previous call's reads are done
    qshare[t].x = max(max(ax.x, ax.y), max(ax.z, ax.w));
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
    return (uint(q.x) & 0xFFu) | (uint(q.y) & 0xFFu) << 8 | (uint(q.z) & 0xFFu) << 16 | (uint(q.w) & 0xFFu) << 24;
}
