// The Vulkan backend: one Backend per Vulkan 1.2 device with a compute queue, named Vulkan0,
// Vulkan1, ... The loader library (libvulkan.so.1) is opened at run time, so a binary built
// with the backend runs where there is no Vulkan at all; vulkan::unavailable_reason() then
// says why there is no device.
#pragma once

#include <string>
#include <vector>

namespace tessera::vulkan {

// Registers a backend factory for each usable device (once).
void register_vulkan_backends();

// One line per device: "Vulkan0: llvmpipe (LLVM 15.0.6, 256 bits), CPU, 23.5 GiB, baseline".
std::vector<std::string> describe_devices();

// Why no Vulkan device can be used, or empty.
std::string unavailable_reason();

}  // namespace tessera::vulkan
