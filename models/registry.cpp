// general.architecture -> the architecture that runs it.
#include <array>

#include "models/arch.h"

namespace tessera::models {

const Architecture& llama_architecture();
const Architecture& gemma2_architecture();
const Architecture& gemma3_architecture();
const Architecture& qwen2_architecture();
const Architecture& qwen3_architecture();
const Architecture& phi3_architecture();

namespace {
const Architecture* const kArchitectures[] = {&llama_architecture(), &qwen2_architecture(), &qwen3_architecture(),
                                              &phi3_architecture(),  &gemma2_architecture(), &gemma3_architecture()};
}  // namespace

const Architecture* find_architecture(std::string_view name) {
    for (const Architecture* a : kArchitectures)
        if (a->name() == name) return a;
    return nullptr;
}

std::vector<std::string> supported_architectures() {
    std::vector<std::string> out;
    for (const Architecture* a : kArchitectures) out.emplace_back(a->name());
    return out;
}

}  // namespace tessera::models
