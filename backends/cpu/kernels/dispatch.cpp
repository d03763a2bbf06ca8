// Chooses the kernel table: the best code path this CPU runs, or the one TESSERA_CPU_TARGET
// names. A code path is a Highway target (the kernel files are compiled for each in
// hwy_config.h) plus whether the variant of the integer dot products with the dot-product
// extension is used (x86 VNNI, Arm DOTPROD); Highway's targets do not say whether it is there
// (AVX3 may or may not have VNNI, AVX2 CPUs may have AVX-VNNI, NEON CPUs may have DOTPROD),
// so this file asks the CPU itself.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "backends/cpu/kernels/fill.h"
#include "backends/cpu/kernels/hwy_config.h"
#include "backends/cpu/kernels/kernels.h"
#include "hwy/highway.h"
#include "hwy/targets.h"
#include "tensor/fp16.h"
#include "tensor/quant/blocks.h"

#if HWY_ARCH_X86
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif HWY_ARCH_ARM && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace tessera::cpu::kernels {

namespace {

struct CpuInfo {
    int64_t hwy_targets = 0;  // Highway targets this CPU supports, before any forcing
    bool avx512_vnni = false;
    bool avx512_bf16 = false;
    bool avx_vnni = false;
    bool amx_int8 = false;  // AMX tiles with int8, and Linux lets this process use them
    bool dotprod = false;  // Arm sdot/udot
    std::string features;
};

#if HWY_ARCH_X86
uint64_t read_xcr0() {
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return static_cast<uint64_t>(hi) << 32 | lo;
}
#endif

CpuInfo detect_cpu() {
    CpuInfo info;
    info.hwy_targets = hwy::SupportedTargets();
    std::string& f = info.features;
    const auto add = [&f](bool present, const char* name) {
        if (!present) return;
        if (!f.empty()) f += ' ';
        f += name;
    };
#if HWY_ARCH_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return info;
    const bool osxsave = c >> 27 & 1;
    const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
    const bool ymm = (xcr0 & 0x6) == 0x6;    // the OS saves SSE and AVX state
    const bool zmm = (xcr0 & 0xe6) == 0xe6;  // ... and the AVX-512 opmask and upper registers
    add(c >> 19 & 1, "SSE4.1");
    add(c >> 20 & 1, "SSE4.2");
    add(ymm && (c >> 28 & 1), "AVX");
    add(ymm && (c >> 12 & 1), "FMA");
    add(ymm && (c >> 29 & 1), "F16C");
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (__get_cpuid_count(7, 0, &a, &b7, &c7, &d7)) {
        unsigned b71 = 0, c71 = 0, d71 = 0;
        if (a >= 1) __get_cpuid_count(7, 1, &a71, &b71, &c71, &d71);
    }
    add(ymm && (b7 >> 5 & 1), "AVX2");
    add(b7 >> 8 & 1, "BMI2");
    add(zmm && (b7 >> 16 & 1), "AVX512F");
    add(zmm && (b7 >> 30 & 1), "AVX512BW");
    add(zmm && (b7 >> 17 & 1), "AVX512DQ");
    add(zmm && (b7 >> 31 & 1), "AVX512VL");
    info.avx512_vnni = zmm && (c7 >> 11 & 1);
    add(info.avx512_vnni, "AVX512_VNNI");
    info.avx512_bf16 = zmm && (a71 >> 5 & 1);
    add(info.avx512_bf16, "AVX512_BF16");
    add(zmm && (d7 >> 23 & 1), "AVX512_FP16");
    info.avx_vnni = ymm && (a71 >> 4 & 1);
    add(info.avx_vnni, "AVX_VNNI");
    // AMX: the CPU has tiles and int8 products, the OS saves tile state (XCR0 bits 17, 18),
    // and Linux grants this process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM).
    const bool amx = zmm && (d7 >> 24 & 1) && (d7 >> 25 & 1) && (xcr0 & 0x60000) == 0x60000;
#if defined(__linux__)
    info.amx_int8 = amx && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#endif
    add(info.amx_int8, "AMX_INT8");
#elif HWY_ARCH_ARM && defined(__linux__) && defined(__aarch64__)
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    add(hw >> 1 & 1, "NEON");     // HWCAP_ASIMD
    info.dotprod = hw >> 20 & 1;  // HWCAP_ASIMDDP
    add(info.dotprod, "DOTPROD");
    add(hw >> 22 & 1, "SVE");    // HWCAP_SVE
    add(hw2 >> 1 & 1, "SVE2");   // HWCAP2_SVE2
    add(hw2 >> 13 & 1, "I8MM");  // HWCAP2_I8MM
#else
    add(true, "(feature detection not implemented for this architecture)");
#endif
    return info;
}

const CpuInfo& cpu() {
    static const CpuInfo info = detect_cpu();
    return info;
}

// A code path as TESSERA_CPU_TARGET names it.
struct Variant {
    int64_t hwy_target;
    bool vnni;  // the integer dot-product extension: x86 VNNI, Arm DOTPROD
    const char* name;
    const char* alias;  // another accepted spelling, or ""
    bool amx = false;   // x86: AMX tiles for the Q4_0 and Q8_0 prompt kernels
};

// Every compiled code path, best first (a lower Highway target bit is a better target).
std::vector<Variant> variants() {
    std::vector<Variant> v;
    for (int64_t targets = HWY_TARGETS; targets != 0; targets &= targets - 1) {
        const int64_t t = targets & -targets;
        if (t == HWY_AVX3) {
            v.push_back({t, true, "avx512_amx", "", true});
            v.push_back({t, true, "avx512_vnni", "avx3_vnni"});
            v.push_back({t, false, "avx512", "avx3"});
        } else if (t == HWY_AVX2) {
            v.push_back({t, true, "avx2_vnni", ""});
            v.push_back({t, false, "avx2", ""});
        } else if (t == HWY_SSE4) {
            v.push_back({t, false, "sse4", ""});
        } else if (t == HWY_SVE2) {
            v.push_back({t, false, "sve2", ""});
        } else if (t == HWY_SVE) {
            v.push_back({t, false, "sve", ""});
        } else if (t == HWY_NEON) {
            v.push_back({t, true, "neon_dotprod", ""});
            v.push_back({t, false, "neon", ""});
        } else if (t == HWY_EMU128) {
            v.push_back({t, false, "emu128", "scalar"});
        } else if (t == HWY_SCALAR) {
            v.push_back({t, false, "scalar", "emu128"});
        }
    }
    return v;
}

bool runnable(const Variant& v) {
    if ((cpu().hwy_targets & v.hwy_target) == 0) return false;
    if (v.amx && !cpu().amx_int8) return false;
    if (!v.vnni) return true;
    if (v.hwy_target == HWY_NEON) return cpu().dotprod;
    return v.hwy_target == HWY_AVX3 ? cpu().avx512_vnni : cpu().avx_vnni;
}

KernelTable g_table;

// Fills g_table for one code path. Highway's dispatch picks the best compiled target that is
// not disabled, so a forced lower one disables every better one (process-wide: Highway keeps
// one choice per process); the best code path disables nothing.
void load(const Variant& v, bool best) {
    hwy::DisableTargets(best ? 0 : v.hwy_target - 1);
    KernelTable t;
    detail::fill_float_kernels(&t);
    // The SVE paths run the NEON quantized tiles (hwy_config.h): with sdot where the CPU has it.
    const bool sve = (v.hwy_target & (HWY_SVE | HWY_SVE2)) != 0;
    detail::fill_legacy_kernels(&t, v.vnni || (sve && cpu().dotprod));
    detail::fill_kquant_kernels(&t);
    detail::fill_attn_kernels(&t);
    detail::fill_gate_kernels(&t);
#if HWY_ARCH_X86
    if (v.hwy_target == HWY_AVX3 && v.vnni)
        for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::F16, DType::F32})
            t.dot_r16[static_cast<uint32_t>(type)] = dot_r16_avx512_vnni(type);
    if (v.hwy_target == HWY_AVX3 && cpu().avx512_bf16) t.dot_r16[static_cast<uint32_t>(DType::BF16)] = dot_r16_avx512_bf16();
    if (v.amx)
        for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K}) t.dot_r16[static_cast<uint32_t>(type)] = dot_r16_amx(type);
    if (v.hwy_target == HWY_AVX2 || (v.hwy_target == HWY_AVX3 && !v.vnni))
        for (DType type : {DType::Q4_0, DType::Q4_1, DType::Q8_0, DType::Q4_K}) t.dot_r16[static_cast<uint32_t>(type)] = dot_r16_avx2(type);
#endif
    t.target = v.name;
    g_table = t;
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        const char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
        if (x != b[i]) return false;
    }
    return true;
}

std::mutex g_select_mutex;

void initialize() {
    const char* env = std::getenv("TESSERA_CPU_TARGET");
    std::string why;
    if (env && *env && select_target(env, &why)) return;
    select_target("best");
    if (env && *env)
        std::fprintf(stderr, "tessera: TESSERA_CPU_TARGET=%s: %s; using %s\n", env, why.c_str(), g_table.target);
}

}  // namespace

const KernelTable& active() {
    static const bool initialized = (initialize(), true);
    (void)initialized;
    return g_table;
}

std::vector<TargetInfo> compiled_targets() {
    std::vector<TargetInfo> out;
    for (const Variant& v : variants()) out.push_back({v.name, runnable(v)});
    return out;
}

bool select_target(std::string_view name, std::string* why) {
    std::lock_guard<std::mutex> lock(g_select_mutex);
    const std::vector<Variant> all = variants();
    if (equals_ignoring_case(name, "best") || equals_ignoring_case(name, "native")) {
        for (const Variant& v : all) {
            if (runnable(v)) {
                load(v, true);
                return true;
            }
        }
    }
    for (const Variant& v : all) {
        if (!equals_ignoring_case(name, v.name) && !(*v.alias && equals_ignoring_case(name, v.alias))) continue;
        if (!runnable(v)) {
            if (why) *why = "this CPU cannot run it";
            return false;
        }
        load(v, false);
        return true;
    }
    if (why) {
        *why = "unknown target (this build has:";
        for (const Variant& v : all) *why += std::string(" ") + v.name;
        *why += ", best)";
    }
    return false;
}

std::string cpu_feature_string() { return cpu().features; }

const float* fp16_table() {
    static const float* const table = [] {
        static float t[65536];
        for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_fp32(static_cast<uint16_t>(h));
        return t;
    }();
    return table;
}

size_t act_row_size(ActFormat f, int64_t k) {
    switch (f) {
        case ActFormat::Q8_0:
            return static_cast<size_t>(k / quant::kQK) * sizeof(quant::block_q8_0);
        case ActFormat::Q8_K:
            return static_cast<size_t>(k / quant::kQKK) * sizeof(quant::block_q8_K);
        case ActFormat::BF16:
            return static_cast<size_t>(k) * sizeof(uint16_t);
        case ActFormat::F32:
            break;
    }
    return static_cast<size_t>(k) * sizeof(float);
}

}  // namespace tessera::cpu::kernels
