// What the C API's tessera_model handle holds: the mapped GGUF file and what was loaded
// from it. This build loads the vocabulary; the model-loading work adds the weights here.
#pragma once

#include <memory>

#include "runtime/vocab/vocab.h"
#include "tensor/gguf.h"

struct tessera_model {
    std::unique_ptr<tessera::gguf::File> file;  // kept open: later parts point into its mapping
    std::unique_ptr<tessera::vocab::Vocab> vocab;
};
