// Which Highway targets the kernel files are compiled for. Every file that includes a
// Highway header in backends/cpu/kernels includes this first, so all of them (and the
// dispatcher) agree on one set.
//
// x86: EMU128 (the portable fallback every x86-64 runs), SSE4, AVX2, AVX3 (AVX-512
// F/BW/DQ/VL). SSSE3 adds little over EMU128 for these kernels, and AVX3_DL is opt-in in
// Highway 1.0 and bundles features we do not need: the one that matters, VNNI, is detected
// on its own (dispatch.cpp) and compiled as a variant of the AVX2 and AVX3 code.
// Arm: NEON. The SVE targets are left out: their vectors are sizeless types, which the
// register tiles (arrays of vectors) cannot hold.
#pragma once

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS \
    (HWY_SSSE3 | HWY_AVX3_DL | HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV | HWY_WASM_EMU256)
#endif
