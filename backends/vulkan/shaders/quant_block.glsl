// A block of 32 activations as int8 for the decoding products on integer dot products
// (mul_vec_int.glsl): d = max |x| / 127, q = round(x / d) (0 where the block is all zeros),
// packed 4 to a word in element order; ds = (d, d * sum of the quants).
void quantize32(float x[32], out uint w[8], out vec2 ds) {
    float amax = 0.0;
    [[unroll]] for (uint u = 0u; u < 32u; ++u) amax = max(amax, abs(x[u]));
    const float d = amax / 127.0, id = amax > 0.0 ? 127.0 / amax : 0.0;
    int sum = 0;
    [[unroll]] for (uint i = 0u; i < 8u; ++i) {
        w[i] = 0u;
        [[unroll]] for (uint k = 0u; k < 4u; ++k) {
            const int v = clamp(int(round(x[4u * i + k] * id)), -127, 127);
            sum += v;
            w[i] |= (uint(v) & 0xFFu) << (8u * k);
        }
    }
    ds = vec2(d, d * float(sum));
}
