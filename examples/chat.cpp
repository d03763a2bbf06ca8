// chat.cpp: a minimal chat loop with the C++ wrapper (tessera.hpp): the model's chat
// template, streamed replies, the KV cache reused across turns.
// usage: chat MODEL.gguf   (then type; an empty line or end of input leaves)
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "tessera.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: " << argv[0] << " MODEL.gguf\n";
        return 2;
    }
    try {
        tessera::Model model(argv[1]);
        tessera::Context ctx(model);
        tessera::Sampler sampler;
        std::vector<std::pair<std::string, std::string>> messages;
        std::vector<int32_t> cached;  // tokens in the context, to decode only what is new
        for (std::string line; std::getline(std::cin, line) && !line.empty();) {
            messages.emplace_back("user", line);
            std::vector<int32_t> prompt = model.tokenize(model.apply_chat_template(messages), false, true);
            size_t same = 0;
            while (same < cached.size() && same + 1 < prompt.size() && cached[same] == prompt[same]) ++same;
            same = static_cast<size_t>(ctx.truncate(static_cast<int32_t>(same)));
            ctx.decode(std::vector<int32_t>(prompt.begin() + static_cast<std::ptrdiff_t>(same), prompt.end()));
            cached = prompt;

            tessera::Detokenizer detok(model);
            std::string reply;
            for (int i = 0; i < 256 && ctx.n_past() < ctx.n_ctx(); ++i) {
                int32_t t = sampler.sample(ctx);
                if (t == model.eos()) break;
                std::string piece = detok.push(t);
                std::cout << piece << std::flush;
                reply += piece;
                ctx.decode(t);
                cached.push_back(t);
            }
            reply += detok.flush();
            std::cout << "\n\n" << std::flush;
            messages.emplace_back("assistant", reply);
        }
    } catch (const tessera::Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
