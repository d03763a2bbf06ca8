// Which Highway targets the kernel files are compiled for. Every file that includes a
// Highway header in backends/cpu/kernels includes this first, so all of them (and the
// dispatcher) agree on one set.
//
// x86: EMU128 (the portable fallback every x86-64 runs), SSE4, AVX2, AVX3 (AVX-512
// F/BW/DQ/VL). SSSE3 adds little over EMU128 for these kernels, and AVX3_DL is opt-in in
// Highway 1.0 and bundles features we do not need: the one that matters, VNNI, is detected
// on its own (dispatch.cpp) and compiled as a variant of the AVX2 and AVX3 code.
// Arm: NEON, SVE and SVE2 (vector length chosen by the CPU). The specialised SVE_256 and
// SVE2_128 targets are left out: a V1 or N2 runs the generic SVE code, and each target costs
// compile time. SVE vectors are sizeless types, which cannot sit in arrays or structs: the
// float tiles hold SVE accumulators in named variables (float_kernels.cpp), and the quantized
// dot tiles, whose 128-bit Ops keep vectors in structs, run their NEON code on SVE CPUs.
#pragma once

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV | HWY_WASM_EMU256)
#endif
