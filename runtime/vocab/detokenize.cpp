// Ids back to text: each token's piece, the leading-space rule, and a UTF-8 gate that
// holds back an unfinished character and turns invalid bytes into U+FFFD. Whole-sequence
// detokenizing is the streaming detokenizer run to the end, so the two always agree.
#include <string>

#include "runtime/vocab/vocab.h"
#include "tensor/error.h"

namespace tessera::vocab {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

void append_valid_utf8(std::string& pending, std::string_view bytes, std::string& out) {
    pending.append(bytes);
    const auto* p = reinterpret_cast<const unsigned char*>(pending.data());
    const size_t n = pending.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        size_t len = 0;
        unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        }
        if (len == 0) {  // a byte that cannot start a character
            out += kReplacement;
            ++i;
            continue;
        }
        // Check the continuation bytes we have; the first bad one ends the maximal
        // subpart, which becomes one U+FFFD (the Unicode "best practice").
        size_t k = 1;
        bool bad = false;
        for (; k < len && i + k < n; ++k) {
            const unsigned char b = p[i + k];
            const bool ok = k == 1 ? (b >= lo && b <= hi) : (b & 0xc0) == 0x80;
            if (!ok) {
                bad = true;
                break;
            }
        }
        if (bad) {
            out += kReplacement;
            i += k;
            continue;
        }
        if (i + len > n) break;  // valid so far but unfinished: hold it back
        out.append(pending, i, len);
        i += len;
    }
    pending.erase(0, i);
}

std::string_view Vocab::piece(int32_t id, bool render_special) const {
    check_token(id);
    const size_t i = static_cast<size_t>(id);
    if (piece_kinds_[i] == PieceKind::Control && !render_special) return {};
    return std::string_view(piece_arena_).substr(piece_offsets_[i], piece_offsets_[i + 1] - piece_offsets_[i]);
}

std::string Vocab::detokenize(std::span<const int32_t> ids, const DetokenizeOptions& options) const {
    for (int32_t id : ids) check_token(id);
    Detokenizer d(*this, options);
    std::string text;
    for (int32_t id : ids) text += d.push(id);
    text += d.flush();
    return text;
}

Detokenizer::Detokenizer(const Vocab& vocab, const DetokenizeOptions& options) : vocab_(vocab), options_(options) {}

std::string_view Detokenizer::push(int32_t id) {
    vocab_.check_token(id);
    out_.clear();
    std::string_view p = vocab_.piece(id, options_.render_special);
    switch (vocab_.piece_kind(id)) {
        case Vocab::PieceKind::Control:
        case Vocab::PieceKind::Special:
            after_special_ = true;
            break;
        case Vocab::PieceKind::Byte:
            after_special_ = false;
            break;
        case Vocab::PieceKind::Text:
            if (p.empty()) break;
            // The tokenizer put a space in front of the segment; take it away again.
            if (after_special_ && vocab_.strips_leading_space() && p[0] == ' ') p.remove_prefix(1);
            after_special_ = false;
            break;
    }
    append_valid_utf8(pending_, p, out_);
    return out_;
}

std::string_view Detokenizer::flush() {
    out_.clear();
    if (!pending_.empty()) out_ += kReplacement;  // the valid start of a character that never finished
    pending_.clear();
    after_special_ = true;
    return out_;
}

void Detokenizer::reset() {
    pending_.clear();
    out_.clear();
    after_special_ = true;
}

}  // namespace tessera::vocab
