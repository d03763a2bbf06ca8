// libFuzzer target for the GGUF reader: any input either parses, and then every value
// and tensor byte it exposes can be read, or fails with tessera::Error. A file that parses
// and names a known architecture goes on to the placement's planning (its hyper-parameters
// and sizes, read from the header alone, as `tessera fit` reads them).
#include <cstddef>
#include <cstdint>

#include "models/arch.h"
#include "runtime/placement.h"
#include "tensor/error.h"
#include "tensor/gguf.h"

namespace {

uint64_t visit(const tessera::gguf::Value& v) {
    using tessera::gguf::ValueType;
    uint64_t h = 0;
    if (v.type() == ValueType::STRING) return v.as_string().size();
    if (v.type() != ValueType::ARRAY) return v.as_float() != 0;
    for (uint64_t i = 0; i < v.size(); ++i) {
        if (v.array_type() == ValueType::ARRAY) h += visit(v.array_at(i));
        else if (v.array_type() == ValueType::STRING) h += v.string_at(i).size();
        else h += v.float_at(i) != 0;
    }
    return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = tessera::gguf::File::from_memory(data, size, "fuzz.gguf");
        volatile uint64_t h = 0;
        for (size_t i = 0; i < f->n_kv(); ++i) h = h + visit(f->kv(i).value);
        for (size_t i = 0; i < f->n_tensors(); ++i) {
            const auto& t = f->tensor(i);
            if (t.n_bytes) h = h + t.data[0] + t.data[t.n_bytes - 1];
        }
        if (const auto* arch = f->find("general.architecture")) {
            if (const auto* a = tessera::models::find_architecture(std::string(f->get_string("general.architecture")))) {
                tessera::models::HParams hp;
                a->read_hparams(*f, hp);
                const auto sizes = tessera::runtime::model_sizes(*f, hp);
                tessera::runtime::MachineRates none;
                none.gpu.name = "GPU";
                const auto plan = tessera::runtime::choose_plan(sizes, none, tessera::runtime::PlanRequest{});
                h = h + plan.n_gpu_layers;
            }
            (void)arch;
        }
    } catch (const tessera::Error&) {
    }
    return 0;
}
