// The processor as the CPU backend sees it (kernels/dispatch.cpp does the detection).
#include "backends/cpu/cpu_info.h"

#include "backends/cpu/kernels/kernels.h"

namespace tessera::cpu {

const char* cpu_target_name() { return kernels::active().target; }

std::string cpu_features() { return kernels::cpu_feature_string(); }

}  // namespace tessera::cpu
