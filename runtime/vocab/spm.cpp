// SentencePiece BPE ("llama" vocabularies): spaces become U+2581 (and one goes in front of
// each segment when add_space_prefix is set), the text starts as one symbol per UTF-8
// character, and the adjacent pair whose concatenation is the highest-scoring token is
// merged, the leftmost first among equal scores, until no pair is a token. A character
// left that is no token falls back to its bytes' <0xXX> tokens.
#include <algorithm>
#include <vector>

#include "runtime/vocab/unicode.h"
#include "runtime/vocab/vocab.h"

namespace tessera::vocab {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";

class SpmEncoder final : public Encoder {
public:
    explicit SpmEncoder(const Vocab& vocab) : vocab_(vocab) {
        // The pieces that take part in merges, as SentencePiece uses them: normal and
        // user-defined ones (not control, byte, unknown or unused ones).
        index_.reserve(static_cast<size_t>(vocab.size()));
        for (int32_t id = 0; id < vocab.size(); ++id) {
            const TokenType t = vocab.token_type(id);
            if (t != TokenType::Normal && t != TokenType::UserDefined && t != TokenType::Undefined) continue;
            const std::string_view text = vocab.token_text(id);
            if (text.empty()) continue;
            index_.insert(text, id, true);
            max_len_ = std::max(max_len_, text.size());
            // Every pair of neighbouring characters inside a token.
            uint32_t prev = 0;
            for (size_t i = 0; i < text.size();) {
                uint32_t cp;
                const bool first = i == 0;
                i += utf8_decode(text.data() + i, text.size() - i, &cp);
                if (!first) joinable_.insert(prev, cp);
                prev = cp;
            }
        }
        std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
        for (int32_t id = 0; id < vocab.size(); ++id) {
            if (vocab.token_type(id) != TokenType::Byte) continue;
            const int b = parse_byte_token(vocab.token_text(id));
            if (b >= 0 && byte_ids_[b] < 0) byte_ids_[b] = id;
        }
    }

    void encode(std::string_view text, std::span<const Fragment> fragments, std::vector<int32_t>& out) const override {
        Work w;
        for_each_fragment(text, fragments, out, [&](std::string_view raw) { encode_segment(raw, w, out); });
    }

private:
    struct Symbol {
        uint32_t start;  // byte offset in the escaped text
        uint32_t len;    // 0 once merged into its left neighbour
        int32_t prev;
        int32_t next;
    };
    struct Bigram {
        float score;
        int32_t left;
        int32_t right;
        uint32_t len;
    };
    // Working memory, kept across the segments of one text.
    struct Work {
        std::string s;
        std::vector<Symbol> sym;
        std::vector<uint32_t> cps;
        std::vector<Bigram> heap;
    };

    void encode_segment(std::string_view text, Work& w, std::vector<int32_t>& out) const {
        // Escape: ' ' -> U+2581, with the segment's space prefix.
        std::string& s = w.s;
        s.clear();
        s.reserve(text.size() + text.size() / 4 + 3);
        if (vocab_.add_space_prefix()) s += kSpmSpace;
        for (char c : text) {
            if (c == ' ')
                s += kSpmSpace;
            else
                s += c;
        }

        // One symbol per character (an invalid byte is a character of its own).
        std::vector<Symbol>& sym = w.sym;
        std::vector<uint32_t>& cps = w.cps;
        sym.clear();
        cps.clear();
        sym.reserve(s.size());
        cps.reserve(s.size());
        for (size_t i = 0; i < s.size();) {
            uint32_t cp;
            const size_t n = utf8_decode(s.data() + i, s.size() - i, &cp);
            sym.push_back(Symbol{static_cast<uint32_t>(i), static_cast<uint32_t>(n), -1, -1});
            cps.push_back(cp);
            i += n;
        }
        // A merge makes a token holding both characters on either side of any boundary it
        // crosses. Where two neighbours occur together in no token, nothing can merge
        // across, so the text splits there into chunks that merge independently: the
        // same result as one queue over the whole text, with small queues.
        size_t begin = 0;
        for (size_t i = 1; i <= sym.size(); ++i) {
            if (i < sym.size() && joinable_.contains(cps[i - 1], cps[i])) continue;
            encode_chunk(s, sym, begin, i, w.heap, out);
            begin = i;
        }
    }

    // Max-heap order: the highest score on top, then the leftmost.
    struct BigramOrder {
        bool operator()(const Bigram& a, const Bigram& b) const {
            return a.score < b.score || (a.score == b.score && a.left > b.left);
        }
    };

    // Merges symbols [begin, end) and appends their ids.
    void encode_chunk(const std::string& s, std::vector<Symbol>& sym, size_t begin, size_t end,
                      std::vector<Bigram>& heap, std::vector<int32_t>& out) const {
        for (size_t k = begin; k < end; ++k) {
            sym[k].prev = k == begin ? -1 : static_cast<int32_t>(k - 1);
            sym[k].next = k + 1 == end ? -1 : static_cast<int32_t>(k + 1);
        }
        heap.clear();
        for (size_t k = begin; k + 1 < end; ++k)
            try_add(s, sym, static_cast<int32_t>(k), static_cast<int32_t>(k + 1), heap);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), BigramOrder{});
            const Bigram b = heap.back();
            heap.pop_back();
            Symbol& l = sym[static_cast<size_t>(b.left)];
            Symbol& r = sym[static_cast<size_t>(b.right)];
            // Stale when either side has merged since the pair was queued.
            if (l.len == 0 || r.len == 0 || l.next != b.right || l.len + r.len != b.len) continue;
            l.len += r.len;
            r.len = 0;
            l.next = r.next;
            if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = b.left;
            if (l.prev >= 0) try_add(s, sym, l.prev, b.left, heap);
            if (l.next >= 0) try_add(s, sym, b.left, l.next, heap);
        }
        for (int32_t i = static_cast<int32_t>(begin); i >= 0; i = sym[static_cast<size_t>(i)].next) {
            const Symbol& x = sym[static_cast<size_t>(i)];
            const int32_t id = index_.find(s.data() + x.start, x.len);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            for (uint32_t k = 0; k < x.len; ++k) {  // byte fallback
                const int32_t b = byte_ids_[static_cast<uint8_t>(s[x.start + k])];
                if (b >= 0)
                    out.push_back(b);
                else if (vocab_.unk() >= 0)
                    out.push_back(vocab_.unk());
            }
        }
    }

    void try_add(const std::string& s, const std::vector<Symbol>& sym, int32_t left, int32_t right,
                 std::vector<Bigram>& heap) const {
        const Symbol& l = sym[static_cast<size_t>(left)];
        const Symbol& r = sym[static_cast<size_t>(right)];
        const size_t len = l.len + r.len;
        if (len > max_len_) return;
        const int32_t id = index_.find(s.data() + l.start, len);
        if (id < 0) return;
        heap.push_back(Bigram{vocab_.token_score(id), left, right, static_cast<uint32_t>(len)});
        std::push_heap(heap.begin(), heap.end(), BigramOrder{});
    }

    const Vocab& vocab_;
    TextIndex index_;
    PairSet joinable_;  // neighbouring characters that occur together in some token
    size_t max_len_ = 0;
    int32_t byte_ids_[256];
};

}  // namespace

std::unique_ptr<Encoder> make_spm_encoder(const Vocab& vocab) { return std::make_unique<SpmEncoder>(vocab); }

}  // namespace tessera::vocab
