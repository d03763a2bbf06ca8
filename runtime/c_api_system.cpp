// Implements the system-information part of tessera.h: what this build and this machine
// offer (CPU code path and features, thread count, backends).
#include <string>
#include <thread>

#include "backends/cpu/cpu_info.h"
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
