// Added tokens (control, user-defined and unknown ones) found in raw text before the
// tokenizer family's own segmentation. User-defined tokens (Gemma's runs of spaces, tabs
// and newlines, GPT-NeoX's runs of spaces, DeepSeek's added characters) are always split
// out; control and unknown tokens only when special-token text is parsed.
//
// Which occurrences win follows llama.cpp's reading of a GGUF vocabulary, the reference
// for the ids a GGUF model expects: the longest token text first over the whole input
// (equal lengths: the lower id first), each token's occurrences left to right in the text
// still unclaimed, so an occurrence that overlaps a longer token's is dropped. Tokens
// marked to strip whitespace take the ASCII whitespace beside them (on their left, their
// right) out of the text.
//
// The search is one walk of a byte trie per text position (a 256-entry table for the
// first byte, so text with no added token costs one table read per byte); occurrences
// are resolved per group of mutually overlapping ones, so memory stays proportional to
// one group, not the text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "runtime/vocab/text_index.h"

namespace tessera::vocab {

class AddedTokens {
public:
    enum Strip : uint8_t { kStripNone = 0, kStripLeft = 1, kStripRight = 2 };

    // A run of the input: raw text [begin, end) for the encoder (token < 0), or one added
    // token that stood at [begin, end).
    struct Fragment {
        size_t begin;
        size_t end;
        int32_t token;
    };

    AddedTokens();

    // Registers a token. `plain`: matched even when special-token text is not parsed
    // (user-defined tokens). Empty texts are ignored. Call before any split().
    void add(std::string_view text, int32_t id, bool plain, uint8_t strip);
    bool empty() const { return nodes_.size() <= 1; }

    // Cuts `text` into fragments in text order (raw text and tokens alternate; whitespace
    // that a token strips belongs to no fragment). Clears `out` first. Never throws except
    // bad_alloc.
    void split(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;

private:
    struct Node {
        int32_t any_id = -1;       // the token whose text ends here, special or plain
        int32_t plain_id = -1;     // the plain (user-defined) token whose text ends here
        int32_t only_child = -1;   // the child, when there is exactly one (else edges_)
        int16_t children = 0;      // how many children (saturates)
        uint8_t only_byte = 0;     // the byte that leads to only_child
        bool plain_below = false;  // a plain token's text continues below this node
        bool byte_run = false;     // the text to here is one byte repeated ("    ", "\n\n")
    };
    struct Match {
        size_t pos;
        uint32_t len;
        int32_t id;
    };
    class Splitter;

    int32_t child(int32_t node, uint8_t byte) const {
        const Node& n = nodes_[static_cast<size_t>(node)];
        if (n.children <= 1) return n.children == 1 && n.only_byte == byte ? n.only_child : -1;
        const uint64_t* c = edges_.find(node, byte);
        return c ? static_cast<int32_t>(*c) : -1;
    }
    uint8_t strip_of(int32_t id) const {
        const size_t i = static_cast<size_t>(id);
        return i < strip_.size() ? strip_[i] : static_cast<uint8_t>(kStripNone);
    }

    std::vector<Node> nodes_;  // nodes_[0] is the root
    PairIndex edges_;          // (node, byte) -> child node
    int32_t root_any_[256];
    int32_t root_plain_[256];
    std::vector<uint8_t> strip_;  // by token id; empty when no token strips
    bool any_left_strip_ = false;
};

}  // namespace tessera::vocab
