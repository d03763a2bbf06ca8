// What the C API's tessera_model handle holds: the mapped GGUF file, the vocabulary
// and (unless loaded vocab-only) the weights.
#pragma once

#include <memory>

#include "runtime/c_api_internal.h"
#include "runtime/loader.h"
#include "runtime/vocab/vocab.h"
#include "tensor/gguf.h"

struct tessera_model {
    // The mapped file: owned here for a vocab-only model, by `runtime` otherwise (the
    // vocabulary and the weights point into its mapping either way).
    std::unique_ptr<tessera::gguf::File> file;
    std::unique_ptr<tessera::vocab::Vocab> vocab;
    std::unique_ptr<tessera::runtime::Model> runtime;  // null for a vocab-only model
    tessera_gguf gguf_view;                            // tessera_model_gguf's handle
    double load_ms = 0;

    const tessera::gguf::File& gguf() const { return runtime ? *runtime->file : *file; }
};
