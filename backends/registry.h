// The backends compiled into this build.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tensor/backend.h"

namespace tessera::backends {

// Registers every compiled-in backend (once) and creates those whose device is present
// at run time, the CPU last.
std::vector<std::unique_ptr<Backend>> create_available();

// Another instance of the available backend `name`: its own queues and memory on the same
// device, as a second GPU would have (a layer split across two instances of one GPU tests the
// split without two GPUs). Null when no such backend is available.
std::unique_ptr<Backend> create_instance(const std::string& name);

// The GPU backends compiled in and the devices they found, for system information:
// "CUDA: CUDA0: NVIDIA H200, 139.8 GiB (137.2 free), compute 9.0", or "CUDA: no device
// (no CUDA-capable device is detected)"; empty when no GPU backend is compiled in.
std::vector<std::string> gpu_devices();

// Why a build with a GPU backend has no GPU to use ("CUDA: no CUDA-capable device is
// detected"), or empty when it has one or none is compiled in.
std::string gpu_unavailable_reason();

}  // namespace tessera::backends
