// Byte-level BPE ("gpt2" vocabularies): the pre-tokenizer splits the text into pieces;
// each piece starts as one symbol per byte (the token of the byte's GPT-2 character) and
// the adjacent pair with the lowest merge rank is merged, the leftmost first among equal
// ranks, until no pair has a merge. With ignore_merges (Llama 3, Tekken) a piece that is
// a whole token is taken as it is.
#include <algorithm>
#include <string>
#include <vector>

#include "runtime/vocab/byte_level.h"
#include "runtime/vocab/unicode.h"
#include "runtime/vocab/vocab.h"
#include "tensor/error.h"

namespace tessera::vocab {

namespace {

constexpr int32_t kMerged = -2;  // a symbol absorbed by its left neighbour

// Byte-level BPE reads its input as UTF-8 the way the reference reader does: a byte that
// cannot start a character, or a lead byte without the continuation bytes it announces,
// is one U+FFFD (whose three bytes every byte-level vocabulary has), never a token of
// its own: a vocabulary may lack tokens for bytes that valid UTF-8 never holds, and then
// the byte would become the unknown token (<|endoftext|> for some). The reader takes any
// lead byte up to 0xF7 with its continuation bytes, without checking the value.
size_t readable_length(const unsigned char* p, size_t n) {
    const unsigned char c = p[0];
    size_t len = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
    if (len == 0 || len > n) return 0;
    for (size_t k = 1; k < len; ++k)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return len;
}

// The offset of the first byte the reader rejects, or text.size().
size_t first_unreadable_byte(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    size_t i = 0;
    while (i < text.size()) {
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        const size_t len = readable_length(p + i, text.size() - i);
        if (len == 0) return i;
        i += len;
    }
    return i;
}

// Appends `text` with each rejected byte replaced by U+FFFD.
void append_readable(std::string_view text, std::string& out) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    size_t i = 0;
    while (i < text.size()) {
        const size_t len = readable_length(p + i, text.size() - i);
        if (len == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(text.substr(i, len));
            i += len;
        }
    }
}

class BpeEncoder final : public Encoder {
public:
    BpeEncoder(const Vocab& vocab, const std::vector<std::string_view>& merges, const std::string& file_name)
        : vocab_(vocab), pre_(*vocab.pre_tokenizer()) {
        for (int b = 0; b < 256; ++b) {
            std::string ch;
            utf8_append(byte_to_gpt2_char(static_cast<uint8_t>(b)), ch);
            byte_ids_[b] = vocab.find_token(ch);
        }
        merges_.reserve(merges.size());
        std::string joined;
        for (size_t rank = 0; rank < merges.size(); ++rank) {
            const std::string_view m = merges[rank];
            const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
            auto where = [&] {
                return file_name + ": tokenizer.ggml.merges[" + std::to_string(rank) + "] = '" + std::string(m) + "'";
            };
            if (sp == std::string_view::npos || sp + 1 >= m.size())
                throw Error(where() + " is not two tokens separated by a space", ErrorKind::BadFile);
            const std::string_view left = m.substr(0, sp), right = m.substr(sp + 1);
            const int32_t l = vocab.find_token(left), r = vocab.find_token(right);
            if (l < 0)
                throw Error(where() + " names '" + std::string(left) + "', which is not a token", ErrorKind::BadFile);
            if (r < 0)
                throw Error(where() + " names '" + std::string(right) + "', which is not a token", ErrorKind::BadFile);
            joined.assign(left);
            joined += right;
            const int32_t result = vocab.find_token(joined);
            if (result < 0) throw Error(where() + " makes '" + joined + "', which is not a token", ErrorKind::BadFile);
            merges_.insert(l, r, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(result));
        }
        if (pre_.ignore_merges) {
            // Whole pieces are looked up by their bytes: decode each normal token once.
            std::vector<uint32_t> offsets{0};
            for (int32_t id = 0; id < vocab.size(); ++id) {
                if (vocab.token_type(id) == TokenType::Normal) raw_arena_ += vocab.piece(id);
                offsets.push_back(static_cast<uint32_t>(raw_arena_.size()));
            }
            raw_index_.reserve(static_cast<size_t>(vocab.size()));
            for (int32_t id = 0; id < vocab.size(); ++id) {
                const size_t b = offsets[static_cast<size_t>(id)], e = offsets[static_cast<size_t>(id) + 1];
                if (e > b) raw_index_.insert(std::string_view(raw_arena_).substr(b, e - b), id, false);
            }
        }
    }

    void encode(std::string_view text, std::span<const Fragment> fragments, std::vector<int32_t>& out) const override {
        Segment seg;
        Work work;
        for_each_fragment(text, fragments, out, [&](std::string_view raw) { encode_segment(raw, seg, work, out); });
    }

private:
    // Working memory of the pre-tokenizer, kept across the segments of one text.
    struct Segment {
        std::string prefixed;
        CodepointText cpt;
        std::vector<Span> pieces, scratch;
    };
    struct Work;

    void encode_segment(std::string_view text, Segment& seg, Work& work, std::vector<int32_t>& out) const {
        const bool prefix = vocab_.add_space_prefix();
        const size_t bad = first_unreadable_byte(text);
        if (prefix || bad < text.size()) {
            seg.prefixed.clear();
            seg.prefixed.reserve(text.size() + 1);
            if (prefix) seg.prefixed += ' ';
            seg.prefixed.append(text.substr(0, bad));
            if (bad < text.size()) append_readable(text.substr(bad), seg.prefixed);
            text = seg.prefixed;
        }
        seg.cpt.assign(text);
        pre_tokenize(pre_, seg.cpt, seg.pieces, seg.scratch);
        for (const Span& s : seg.pieces) {
            const size_t b = seg.cpt.offsets[s.begin], e = seg.cpt.offsets[s.end];
            const std::string_view word = text.substr(b, e - b);
            if (pre_.ignore_merges) {
                const int32_t id = raw_index_.find(word);
                if (id >= 0) {
                    out.push_back(id);
                    continue;
                }
            }
            encode_word(word, work, out);
        }
    }

    struct Symbol {
        int32_t id;  // -1: a byte without a token; kMerged: absorbed
        int32_t prev;
        int32_t next;
    };
    struct Bigram {
        uint32_t rank;
        int32_t left, right;
        int32_t left_id, right_id;
        int32_t result;
    };
    // Max-heap order with the lowest rank on top, then the leftmost.
    struct BigramOrder {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
        }
    };
    struct Work {
        std::vector<Symbol> sym;
        std::vector<Bigram> heap;
    };

    void try_add(Work& w, int32_t left, int32_t right) const {
        const int32_t l = w.sym[static_cast<size_t>(left)].id, r = w.sym[static_cast<size_t>(right)].id;
        if (l < 0 || r < 0) return;
        const uint64_t* m = merges_.find(l, r);
        if (!m) return;
        w.heap.push_back(
            Bigram{static_cast<uint32_t>(*m >> 32), left, right, l, r, static_cast<int32_t>(*m & 0xffffffffu)});
        std::push_heap(w.heap.begin(), w.heap.end(), BigramOrder{});
    }

    void emit(int32_t id, std::vector<int32_t>& out) const {
        if (id >= 0)
            out.push_back(id);
        else if (vocab_.unk() >= 0)
            out.push_back(vocab_.unk());
    }

    void encode_word(std::string_view word, Work& w, std::vector<int32_t>& out) const {
        if (word.size() == 1) {
            emit(byte_ids_[static_cast<uint8_t>(word[0])], out);
            return;
        }
        const int32_t n = static_cast<int32_t>(word.size());
        w.sym.resize(word.size());
        for (int32_t i = 0; i < n; ++i)
            w.sym[static_cast<size_t>(i)] = {byte_ids_[static_cast<uint8_t>(word[static_cast<size_t>(i)])], i - 1,
                                             i + 1};
        w.sym.back().next = -1;
        w.heap.clear();
        for (int32_t i = 0; i + 1 < n; ++i) try_add(w, i, i + 1);
        while (!w.heap.empty()) {
            std::pop_heap(w.heap.begin(), w.heap.end(), BigramOrder{});
            const Bigram b = w.heap.back();
            w.heap.pop_back();
            Symbol& l = w.sym[static_cast<size_t>(b.left)];
            Symbol& r = w.sym[static_cast<size_t>(b.right)];
            // Stale when either side changed since the pair was queued (ids only grow).
            if (l.id != b.left_id || r.id != b.right_id || l.next != b.right) continue;
            l.id = b.result;
            r.id = kMerged;
            l.next = r.next;
            if (r.next >= 0) w.sym[static_cast<size_t>(r.next)].prev = b.left;
            if (l.prev >= 0) try_add(w, l.prev, b.left);
            if (l.next >= 0) try_add(w, b.left, l.next);
        }
        for (int32_t i = 0; i >= 0; i = w.sym[static_cast<size_t>(i)].next) emit(w.sym[static_cast<size_t>(i)].id, out);
    }

    const Vocab& vocab_;
    const PreTokenizer& pre_;
    int32_t byte_ids_[256];
    PairIndex merges_;
    std::string raw_arena_;
    TextIndex raw_index_;
};

}  // namespace

std::unique_ptr<Encoder> make_bpe_encoder(const Vocab& vocab, const std::vector<std::string_view>& merges,
                                          const std::string& file_name) {
    return std::make_unique<BpeEncoder>(vocab, merges, file_name);
}

}  // namespace tessera::vocab
