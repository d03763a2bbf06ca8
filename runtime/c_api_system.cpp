// Implements the system-information part of tessera.h: what this build and this machine
// offer (CPU code path and features, thread count, backends).
#include <string>
#include <thread>

#include "backends/cpu/cpu_info.h"
#include "backends/cpu/onednn.h"
#include "backends/registry.h"
#include "tessera.h"

extern "C" {

const char* tessera_system_info(void) try {
    static const std::string info = [] {
        std::string s = "tessera ";
        s += tessera_version();
        s += " | CPU: ";
        s += tessera::cpu::cpu_target_name();
        s += " (" + tessera::cpu::cpu_features() + ")";
        s += " | threads: " + std::to_string(std::thread::hardware_concurrency());
        // The GEMM libraries compiled in for prompts on float weights, and what oneDNN takes.
        std::string gemm;
#ifdef TESSERA_HAVE_OPENBLAS
        gemm += " OpenBLAS";
#endif
#ifdef TESSERA_HAVE_ONEDNN
        gemm += " oneDNN (";
        std::string taken;
        for (tessera::DType t : {tessera::DType::F32, tessera::DType::F16, tessera::DType::BF16})
            if (tessera::cpu::onednn::chosen(t))
                taken += std::string(taken.empty() ? "" : ", ") + std::string(tessera::type_name(t)) + ": " +
                         tessera::cpu::onednn::implementation(t);
        gemm += (taken.empty() ? std::string("not used on this CPU") : taken) + ")";
#endif
        s += " | GEMM:" + (gemm.empty() ? std::string(" none") : gemm);
        s += " | backends:";
        for (const auto& b : tessera::backends::create_available()) s += " " + b->name();
        for (const std::string& d : tessera::backends::gpu_devices()) s += " | " + d;
        return s;
    }();
    return info.c_str();
} catch (...) {  // out of memory on the first call: the next one tries again
    return "tessera (system information unavailable: out of memory)";
}

const char* tessera_cpu_target(void) { return tessera::cpu::cpu_target_name(); }

}  // extern "C"
