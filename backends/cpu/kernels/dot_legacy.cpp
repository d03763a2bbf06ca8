// Dot-product tiles of the 32-element weight formats (dot_legacy-inl.h), compiled once per
// Highway target and, for x86 AVX2 and AVX3, a second time with the VNNI dot-product
// instruction (vpdpbusd) enabled: AVX-VNNI for AVX2, AVX512-VNNI for AVX3. dispatch.cpp
// picks the variant after checking the CPU for the feature itself, because Highway's
// targets do not say whether it is there. Likewise on Arm, the NEON code a second time with
// the 8-bit dot-product instruction (sdot, the DOTPROD extension).
#include <cstdint>
#include <cstring>

#include "backends/cpu/kernels/hwy_config.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/kernels/dot_legacy.cpp"
#include "hwy/cache_control.h"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/ref_kernels.h"
#include "backends/cpu/kernels/tile_pieces.h"
#include "tensor/fp16.h"
#include "tensor/quant/blocks.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#elif HWY_ARCH_ARM_A64
#include <arm_neon.h>
#endif

#if HWY_HAVE_SCALABLE
// SVE: the 128-bit Ops keep vectors in structs and arrays, which SVE's sizeless vector types
// cannot; every SVE CPU has NEON too, so the SVE targets take the NEON code of this file.
#if !(HWY_TARGETS & HWY_NEON)
#error "the SVE kernels need the NEON target, which Highway drops when -march already has SVE"
#endif
namespace tessera::cpu::kernels::N_NEON {
void FillLegacy(KernelTable* t, bool use_vnni);
}  // namespace tessera::cpu::kernels::N_NEON
#endif

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
void FillLegacy(KernelTable* t, bool) { ref::fill(t); }
#elif HWY_HAVE_SCALABLE
void FillLegacy(KernelTable* t, bool use_vnni) { N_NEON::FillLegacy(t, use_vnni); }
#else

namespace base {
#define TESSERA_KERNEL_VNNI 0
#include "backends/cpu/kernels/simd_ops-inl.h"  // first: the kernels are written in its Ops

#include "backends/cpu/kernels/dot_legacy-inl.h"
#undef TESSERA_KERNEL_VNNI
}  // namespace base

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
// The target's attributes plus the VNNI extension. Replaced rather than nested: clang does
// not merge nested target attributes.
HWY_POP_ATTRIBUTES
#if HWY_TARGET == HWY_AVX2
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR ",avxvnni")
#else
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR ",avx512vnni")
#endif
namespace vnni {
#define TESSERA_KERNEL_VNNI 1
#include "backends/cpu/kernels/simd_ops-inl.h"  // first: the kernels are written in its Ops

#include "backends/cpu/kernels/dot_legacy-inl.h"
#undef TESSERA_KERNEL_VNNI
}  // namespace vnni
HWY_POP_ATTRIBUTES
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR)
#elif HWY_ARCH_ARM_A64 && HWY_TARGET == HWY_NEON
HWY_POP_ATTRIBUTES
// (Arm v8.2 as well: GCC declares the sdot intrinsics for it, and DOTPROD CPUs are v8.2 or later.)
HWY_PUSH_ATTRIBUTES("arch=armv8.2-a" HWY_TARGET_STR "+dotprod")
namespace vnni {
#define TESSERA_KERNEL_SDOT 1
#include "backends/cpu/kernels/simd_ops-inl.h"  // first: the kernels are written in its Ops

#include "backends/cpu/kernels/dot_legacy-inl.h"
#undef TESSERA_KERNEL_SDOT
}  // namespace vnni
HWY_POP_ATTRIBUTES
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR)
#endif

// use_vnni: the variant with the dot-product extension (x86 VNNI, Arm DOTPROD).
void FillLegacy(KernelTable* t, bool use_vnni) {
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2) || (HWY_ARCH_ARM_A64 && HWY_TARGET == HWY_NEON)
    if (use_vnni) {
        vnni::legacy::fill(t);
        return;
    }
#endif
    (void)use_vnni;
    base::legacy::fill(t);
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace tessera::cpu::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::kernels {

HWY_EXPORT(FillLegacy);

void detail::fill_legacy_kernels(KernelTable* t, bool vnni) { HWY_DYNAMIC_DISPATCH(FillLegacy)(t, vnni); }

}  // namespace tessera::cpu::kernels
#endif
