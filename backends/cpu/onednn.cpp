// oneDNN matmul primitives for prompt products (onednn.h). Each thread of the CPU team calls
// matmul() for its own range of weight rows, inside the team's OpenMP region, where oneDNN
// (built on OpenMP by Debian) runs on the calling thread alone. Primitives are made once per
// shape and shared by the threads; each thread executes on its own stream.
#include "backends/cpu/onednn.h"

#include <cstdlib>

namespace tessera::cpu::onednn {

const std::string& gemm_mode() {
    static const std::string mode = [] {
        const char* e = std::getenv("TESSERA_GEMM");
        return std::string(e ? e : "");
    }();
    return mode;
}

}  // namespace tessera::cpu::onednn

#ifdef TESSERA_HAVE_ONEDNN

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "backends/cpu/kernels/kernels.h"
#include "tensor/error.h"

namespace tessera::cpu::onednn {

namespace {

using dnnl::memory;

// oneDNN chooses its own instruction set; where the kernels run a lower code path
// (TESSERA_CPU_TARGET=avx2 on an AVX-512 machine, to see what an AVX2 machine gets), it is
// held to the same one before its first primitive, so the GEMM choice is measured as such a
// machine would run it.
void match_code_path() {
#if defined(__x86_64__) || defined(_M_X64)
    const std::string target = kernels::active().target;
    if (target.rfind("avx512", 0) == 0) return;
    const auto isa = target == "avx2" || target == "avx2_vnni" ? dnnl::cpu_isa::avx2 : dnnl::cpu_isa::sse41;
    try {
        dnnl::set_max_cpu_isa(isa);
    } catch (const dnnl::error&) {  // set already (ONEDNN_MAX_CPU_ISA), or too late
    }
#endif
}

dnnl::engine& engine() {
    static dnnl::engine e = [] {
        match_code_path();
        return dnnl::engine(dnnl::engine::kind::cpu, 0);
    }();
    return e;
}

memory::data_type dnnl_type(DType t) {
    switch (t) {
        case DType::F32: return memory::data_type::f32;
        case DType::F16: return memory::data_type::f16;
        case DType::BF16: return memory::data_type::bf16;
        default: return memory::data_type::undef;
    }
}

using Key = std::tuple<int, int64_t, int64_t, int64_t, size_t, size_t, size_t>;

struct Primitive {
    dnnl::matmul matmul;
    memory::desc src, wei, dst;
};

struct Cache {
    std::mutex mu;
    std::map<Key, Primitive> primitives;
};

Cache& cache() {
    static Cache c;
    return c;
}

// A product of t weights by activations of the same type (F32 for F32), F32 results.
dnnl::matmul::primitive_desc describe(DType t, int64_t M, int64_t K, int64_t rows, size_t ldx, size_t ldw, size_t ldy) {
    const auto at = dnnl_type(t), wt = dnnl_type(t);
    const memory::desc src({M, K}, at, memory::dims{static_cast<memory::dim>(ldx), 1});
    const memory::desc wei({K, rows}, wt, memory::dims{1, static_cast<memory::dim>(ldw)});
    const memory::desc dst({M, rows}, memory::data_type::f32, memory::dims{static_cast<memory::dim>(ldy), 1});
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), engine());
}

// What oneDNN would run a type's products with ("" where it cannot).
std::string probe(DType t) {
    if (dnnl_type(t) == memory::data_type::undef) return "";
    try {
        return describe(t, 64, 512, 64, 512, 512, 64).impl_info_str();
    } catch (const dnnl::error&) {
        return "";
    }
}

struct Choice {
    std::string impl[static_cast<int>(kTypeCount)];       // what oneDNN runs each type with natively
    std::string described[static_cast<int>(kTypeCount)];  // ... or on converted slices
};

const Choice& choice() {
    static const Choice c = [] {
        Choice c;
        for (DType t : {DType::F32, DType::F16, DType::BF16}) c.impl[static_cast<int>(t)] = probe(t);
        for (DType t : {DType::F16, DType::BF16}) {
            std::string& d = c.described[static_cast<int>(t)];
            d = c.impl[static_cast<int>(t)];
            if (d.empty() && !c.impl[static_cast<int>(DType::F32)].empty())
                d = "F32 slices, " + c.impl[static_cast<int>(DType::F32)];
        }
        c.described[static_cast<int>(DType::F32)] = c.impl[static_cast<int>(DType::F32)];
        return c;
    }();
    return c;
}

}  // namespace

bool native(DType t) {
    const int i = static_cast<int>(t);
    return i >= 0 && i < static_cast<int>(kTypeCount) && !choice().impl[i].empty();
}

bool chosen(DType t) {
    if (t != DType::F32 && t != DType::F16 && t != DType::BF16) return false;
    const Choice& c = choice();
    const std::string& mode = gemm_mode();
    if (mode == "own" || mode == "openblas" || !native(DType::F32)) return false;
    if (mode == "onednn") return true;
    // The defaults, measured in ops_matmul.cpp: BF16 on AMX tiles; every float type where the
    // code path has no interleaved kernel for it (no AVX-512: in place of OpenBLAS).
    if (t == DType::BF16 && c.impl[static_cast<int>(t)].find("amx") != std::string::npos) return true;
    return kernels::active().dot_r16[static_cast<uint32_t>(t)] == nullptr;
}

DType act_type(DType t) { return t == DType::F32 || !native(t) ? DType::F32 : t; }

const char* implementation(DType t) {
    const int i = static_cast<int>(t);
    return i >= 0 && i < static_cast<int>(kTypeCount) ? choice().described[i].c_str() : "";
}

void matmul(DType t, const void* x, size_t ldx, const void* w, size_t ldw, float* y, size_t ldy, int64_t M,
            int64_t K, int64_t rows) {
    const Key key{static_cast<int>(t), M, K, rows, ldx, ldw, ldy};
    Primitive prim;
    {
        Cache& c = cache();
        std::lock_guard<std::mutex> lock(c.mu);
        auto it = c.primitives.find(key);
        if (it == c.primitives.end()) {
            try {
                const dnnl::matmul::primitive_desc pd = describe(t, M, K, rows, ldx, ldw, ldy);
                it = c.primitives.emplace(key, Primitive{dnnl::matmul(pd), pd.src_desc(), pd.weights_desc(), pd.dst_desc()})
                         .first;
            } catch (const dnnl::error& e) {
                throw Error("oneDNN matmul for " + std::string(type_name(t)) + " weights: " + e.what(),
                            ErrorKind::Internal);
            }
        }
        prim = it->second;
    }
    thread_local dnnl::stream stream(engine());
    memory src(prim.src, engine(), const_cast<void*>(x));
    memory wei(prim.wei, engine(), const_cast<void*>(w));
    memory dst(prim.dst, engine(), y);
    try {
        prim.matmul.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
        stream.wait();
    } catch (const dnnl::error& e) {
        throw Error("oneDNN matmul for " + std::string(type_name(t)) + " weights: " + e.what(), ErrorKind::Internal);
    }
}

}  // namespace tessera::cpu::onednn

#else

#include "tensor/error.h"

namespace tessera::cpu::onednn {
bool chosen(DType) { return false; }
bool native(DType) { return false; }
DType act_type(DType t) { return t; }
void matmul(DType, const void*, size_t, const void*, size_t, float*, size_t, int64_t, int64_t, int64_t) {
    throw Error("oneDNN is not compiled into this build", ErrorKind::Internal);
}
const char* implementation(DType) { return ""; }
}  // namespace tessera::cpu::onednn

#endif
