// What the CPU backend knows about the processor it runs on, for the system-info API and
// `tessera bench`.
#pragma once

#include <string>

namespace tessera::cpu {

// The kernels' code path in use, as TESSERA_CPU_TARGET spells it: "avx512_vnni", "avx512",
// "avx2_vnni", "avx2", "sse4", "sve2", "sve", "neon_dotprod", "neon", "scalar" (or "emu128").
const char* cpu_target_name();

// The CPU features the kernels can use, space-separated, e.g. "SSE4.1 SSE4.2 AVX FMA F16C AVX2
// ... AVX512_VNNI AVX_VNNI".
std::string cpu_features();

}  // namespace tessera::cpu
