// The activations that ew.comp and quant_act.comp (gated, before an int8 product) share.

// tanh from one exponential of -2|x|: no overflow for large |x| (exp(2x) / exp(2x) is NaN).
float tanh_safe(float x) {
    const float t = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - t) / (1.0 + t);
}
float gelu_tanh(float x) { return 0.5 * x * (1.0 + tanh_safe(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
float silu(float x) { return x / (1.0 + exp(-x)); }
