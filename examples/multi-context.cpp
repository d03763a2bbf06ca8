// multi-context.cpp: one model, two threads, two contexts generating at once. A model is
// immutable after load and shared; each context belongs to its own thread.
// usage: multi-context MODEL.gguf
#include <iostream>
#include <string>
#include <thread>

#include "tessera.hpp"

namespace {

std::string generate(const tessera::Model& model, const std::string& prompt, int n) {
    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = 256;
    cp.n_threads = 1;
    tessera::Context ctx(model, cp);
    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.temperature = 0.0f;
    tessera::Sampler sampler(sp);
    tessera::Detokenizer detok(model);
    ctx.decode(model.tokenize(prompt));
    std::string out;
    for (int i = 0; i < n; ++i) {
        int32_t t = sampler.sample(ctx);
        if (t == model.eos()) break;
        out += detok.push(t);
        ctx.decode(t);
    }
    return out + detok.flush();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf\n";
        return 2;
    }
    try {
        tessera::Model model(argv[1]);
        std::string a, b;
        std::thread ta([&] { a = generate(model, "The capital of France is", 16); });
        std::thread tb([&] { b = generate(model, "Water boils at", 16); });
        ta.join();
        tb.join();
        std::cout << "[1] The capital of France is" << a << "\n[2] Water boils at" << b << "\n";
    } catch (const tessera::Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
