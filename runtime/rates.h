// The machine's speeds that the placement's cost model needs, measured in short runs of the
// real kernels and kept on disk so each is measured once per machine:
// $TESSERA_RATES_FILE, else ~/.cache/tessera/rates.tsv (one line per device, shapes and measure).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runtime/placement.h"
#include "tensor/backend.h"

namespace tessera::runtime {

struct RatesOptions {
    int n_threads = 0;            // the CPU's threads (0: all cores)
    bool measure = true;          // measure what the cache lacks (else those rates stay 0)
    bool use_cache = true;        // read and write the cache file
    std::function<void(const std::string&)> note;  // told once before the first measurement
};

// The rates of the CPU and of `gpu` (may be null) for the shapes and types of model `m`,
// prompt steps of n_batch tokens. Measuring takes a second or two per device on a desktop
// (longer for a large model on a few cores); the results are cached per device, thread
// count and shapes.
MachineRates machine_rates(Backend& cpu, Backend* gpu, const ModelSizes& m, int64_t n_batch,
                           const RatesOptions& options);

// The cache's path ("" when there is no home directory).
std::string rates_cache_path();

}  // namespace tessera::runtime
