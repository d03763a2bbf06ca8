// The CUDA backend: one Backend per NVIDIA GPU, named CUDA0, CUDA1, ... A binary built
// with it runs where there is no GPU or no driver: the backends are then not available
// and cuda::unavailable_reason() says why.
#pragma once

#include <string>
#include <vector>

namespace tessera::cuda {

// Registers a backend factory for each device the driver reports (once).
void register_cuda_backends();

// One line per device: "CUDA0: NVIDIA H200, 139.8 GiB (137.2 free), compute 9.0".
std::vector<std::string> describe_devices();

// Why no CUDA device can be used ("no CUDA-capable device is detected"), or empty.
std::string unavailable_reason();

}  // namespace tessera::cuda
