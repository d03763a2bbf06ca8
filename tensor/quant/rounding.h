// Rounding shared by the reference quantizers.
#pragma once

namespace tessera::quant {

// Nearest integer (ties to even) to v, clamped to [lo, hi]; NaN gives lo. Clamping first
// keeps the float-to-int conversion defined for every input, and lets the rounding use
// the 1.5 * 2^23 trick: adding it leaves no fraction bits, so the FPU rounds (to nearest
// even) for us, inline and without a libm call. Valid for |v| < 2^22, far above any level;
// it relies on IEEE float arithmetic, so the quantizers must not be built with -ffast-math.
inline int round_clamped(float v, int lo, int hi) {
    constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
    const float flo = static_cast<float>(lo);
    const float fhi = static_cast<float>(hi);
    float c = v > flo ? v : flo;  // NaN compares false: lo
    c = c < fhi ? c : fhi;
    return static_cast<int>((c + kMagic) - kMagic);
}

}  // namespace tessera::quant
