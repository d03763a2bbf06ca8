// Implements the "model conversion" part of include/tessera.h over runtime/quantize.
#include "runtime/c_api_internal.h"
#include "runtime/quantize.h"
#include "tensor/error.h"
#include "tessera.h"

tessera_quantize_params tessera_quantize_default_params(void) {
    tessera_quantize_params p{};
    p.type = "Q4_K_M";
    return p;
}

tessera_status tessera_quantize(const char* in_path, const char* out_path, const tessera_quantize_params* params) {
    return tessera::capi::guard([&] {
        if (!in_path || !out_path) throw tessera::Error("in_path or out_path is null");
        const tessera_quantize_params p = params ? *params : tessera_quantize_default_params();
        if (p.n_threads < 0 || p.n_threads > TESSERA_MAX_THREADS)
            throw tessera::Error("n_threads " + std::to_string(p.n_threads) + " is outside 0.." +
                                 std::to_string(TESSERA_MAX_THREADS) + " (0: all cores)");
        tessera::QuantizeOptions opt;
        opt.type = p.type ? p.type : "Q4_K_M";
        opt.n_threads = p.n_threads;
        opt.pure = p.pure != 0;
        if (p.progress) opt.progress = [&p](float f) { return p.progress(f, p.progress_user) != 0; };
        tessera::quantize_file(in_path, out_path, opt);
    });
}
