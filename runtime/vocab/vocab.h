// A model's vocabulary, read from GGUF metadata (`tokenizer.ggml.*`), and the three
// tokenizer families it selects: SPM ("llama"), byte-level BPE ("gpt2", with the
// pre-tokenizer `tokenizer.ggml.pre` names) and WordPiece ("bert"). Text -> ids with
// special tokens and BOS/EOS as the metadata says; ids -> text, whole or streamed.
//
// A Vocab is immutable after load and may be used from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vocab/added_tokens.h"
#include "runtime/vocab/pretokenize.h"
#include "runtime/vocab/text_index.h"

namespace tessera::gguf {
class File;
}

namespace tessera::vocab {

enum class TokenizerKind : uint8_t { Spm, Bpe, WordPiece };

// tokenizer.ggml.token_type values.
enum class TokenType : uint8_t {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
};

struct LoadOptions {
    // An unknown tokenizer.ggml.pre falls back to the GPT-2 split (recorded in warnings())
    // instead of failing.
    bool allow_unknown_pre = false;
};

struct DetokenizeOptions {
    bool render_special = false;  // control tokens (BOS, EOS, ...) emit their text
};

class Vocab;

// A tokenizer family's encoder. Internal.
class Encoder {
public:
    using Fragment = AddedTokens::Fragment;
    virtual ~Encoder() = default;
    // Appends the ids of `text` cut into `fragments` (AddedTokens::split): an added
    // token's id, or the encoding of a raw fragment. Each raw fragment is a segment of its
    // own: it starts the text or follows a token (SPM puts its space prefix there). One
    // call for all fragments, so working memory is allocated once. Never throws except
    // bad_alloc.
    virtual void encode(std::string_view text, std::span<const Fragment> fragments,
                        std::vector<int32_t>& out) const = 0;

protected:
    // Calls raw(fragment_text) for each raw fragment in order and appends token ids.
    template <typename Raw>
    static void for_each_fragment(std::string_view text, std::span<const Fragment> fragments, std::vector<int32_t>& out,
                                  Raw&& raw) {
        for (const Fragment& f : fragments) {
            if (f.token >= 0)
                out.push_back(f.token);
            else
                raw(text.substr(f.begin, f.end - f.begin));
        }
    }
};

class Vocab {
public:
    // Reads and validates the vocabulary of an open GGUF file (a vocab-only file is fine).
    // Throws tessera::Error naming the file and the key on anything inconsistent.
    static std::unique_ptr<Vocab> load(const gguf::File& file, const LoadOptions& options = {});
    ~Vocab();
    Vocab(const Vocab&) = delete;
    Vocab& operator=(const Vocab&) = delete;

    TokenizerKind kind() const { return kind_; }
    const std::string& model_name() const { return model_name_; }  // tokenizer.ggml.model
    const std::string& pre_name() const { return pre_name_; }      // tokenizer.ggml.pre ("" if absent)
    const PreTokenizer* pre_tokenizer() const { return pre_; }     // BPE only, else nullptr
    const std::vector<std::string>& warnings() const { return warnings_; }

    int32_t size() const { return static_cast<int32_t>(types_.size()); }
    bool valid(int32_t id) const { return id >= 0 && id < size(); }
    std::string_view token_text(int32_t id) const;  // as stored in the file
    TokenType token_type(int32_t id) const { return types_[static_cast<size_t>(id)]; }
    float token_score(int32_t id) const { return scores_.empty() ? 0.0f : scores_[static_cast<size_t>(id)]; }
    // The id whose stored text is exactly `text` (the last one, if several), or -1.
    int32_t find_token(std::string_view text) const { return text_index_.find(text); }
    // Control and user-defined tokens: added to the model's base vocabulary. Both are found
    // in raw text before the family's segmentation; control ones only when parsing special
    // tokens (see tokenize()).
    bool is_special(int32_t id) const {
        const TokenType t = token_type(id);
        return t == TokenType::Control || t == TokenType::UserDefined;
    }

    // Special ids, -1 when the vocabulary has none.
    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    int32_t unk() const { return unk_; }
    int32_t sep() const { return sep_; }
    int32_t pad() const { return pad_; }
    int32_t cls() const { return cls_; }
    int32_t mask() const { return mask_; }
    int32_t eot() const { return eot_; }
    // Whether generation ends at this token: EOS, EOT, EOM (from the metadata) and the
    // end-of-turn and end-of-text markers the vocabulary has (<|im_end|>, <end_of_turn>,
    // <|eot_id|>, <|end|>, <|endoftext|>, ...), as the reference reads a GGUF vocabulary.
    bool is_eog(int32_t id) const {
        for (int32_t e : eog_)
            if (e == id) return true;
        return false;
    }
    const std::vector<int32_t>& eog_ids() const { return eog_; }
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }
    bool add_sep() const { return add_sep_; }
    bool add_space_prefix() const { return add_space_prefix_; }

    // Appends the ids of `text`. add_special: BOS (and SEP/EOS at the end) as the metadata
    // says. User-defined token texts in `text` always become those tokens; with
    // parse_special, control and unknown token texts do too (otherwise they are plain
    // text). The longest such text wins where occurrences overlap (AddedTokens); the text
    // between them goes through the family's encoder, each piece as a segment of its own.
    // Any bytes are accepted, invalid UTF-8 included. Never throws except bad_alloc.
    void tokenize(std::string_view text, bool add_special, bool parse_special, std::vector<int32_t>& out) const;
    std::vector<int32_t> tokenize(std::string_view text, bool add_special = false, bool parse_special = false) const;

    // The bytes a token contributes to detokenized text, before the leading-space rule
    // (see Detokenizer): SPM's U+2581 and WordPiece's word-start mark become a space,
    // BPE's byte-level characters their bytes, a byte token <0xE2> the byte 0xE2 (maybe
    // a partial UTF-8 sequence). Control tokens contribute nothing unless
    // `render_special`. Throws tessera::Error for an id out of range.
    std::string_view piece(int32_t id, bool render_special = false) const;

    // Whole text of a sequence: valid UTF-8 (an invalid or unfinished sequence becomes
    // U+FFFD). Throws tessera::Error for an id out of range.
    std::string detokenize(std::span<const int32_t> ids, const DetokenizeOptions& options = {}) const;

    // Throws tessera::Error unless 0 <= id < size().
    void check_token(int32_t id) const;

    // Internal: how a piece joins the text before it.
    enum class PieceKind : uint8_t { Text, Byte, Control, Special };
    PieceKind piece_kind(int32_t id) const { return piece_kinds_[static_cast<size_t>(id)]; }
    // Whether a text piece that follows the start or a special token drops one leading space.
    bool strips_leading_space() const { return strip_leading_space_; }

private:
    Vocab() = default;
    friend class VocabLoader;

    TokenizerKind kind_ = TokenizerKind::Spm;
    std::string model_name_;
    std::string pre_name_;
    const PreTokenizer* pre_ = nullptr;
    std::vector<std::string> warnings_;

    std::string text_arena_;              // every token's text, back to back
    std::vector<uint32_t> text_offsets_;  // size()+1 offsets into text_arena_
    std::vector<TokenType> types_;
    std::vector<float> scores_;  // empty when the file has none
    TextIndex text_index_;

    std::string piece_arena_;
    std::vector<uint32_t> piece_offsets_;
    std::vector<PieceKind> piece_kinds_;

    // Control, user-defined and unknown tokens, found in raw text before encoding.
    AddedTokens added_;

    int32_t bos_ = -1, eos_ = -1, unk_ = -1, sep_ = -1, pad_ = -1, cls_ = -1, mask_ = -1, eot_ = -1;
    std::vector<int32_t> eog_;  // end-of-generation tokens, a handful
    bool add_bos_ = false, add_eos_ = false, add_sep_ = false, add_space_prefix_ = false;
    bool strip_leading_space_ = false;

    std::unique_ptr<Encoder> encoder_;
};

// Streams text as ids arrive: push() returns only complete UTF-8 text and holds back a
// piece that ends inside a multi-byte character until the rest arrives. The text pushed
// so far plus flush() equals Vocab::detokenize of the same ids.
class Detokenizer {
public:
    explicit Detokenizer(const Vocab& vocab, const DetokenizeOptions& options = {});
    // Text completed by this token; valid until the next call. Throws tessera::Error for
    // an id out of range (the state is unchanged then).
    std::string_view push(int32_t id);
    // Whatever is held back, as U+FFFD; then the state is as new.
    std::string_view flush();
    void reset();

private:
    const Vocab& vocab_;
    DetokenizeOptions options_;
    bool after_special_ = true;  // at the start, or right after a control/user-defined token
    std::string pending_;        // bytes of an unfinished UTF-8 sequence
    std::string out_;
};

// Model-family encoders (spm.cpp, bpe.cpp, wordpiece.cpp).
std::unique_ptr<Encoder> make_spm_encoder(const Vocab& vocab);
std::unique_ptr<Encoder> make_bpe_encoder(const Vocab& vocab, const std::vector<std::string_view>& merges,
                                          const std::string& file_name);
std::unique_ptr<Encoder> make_wordpiece_encoder(const Vocab& vocab);

// "<0xE2>" -> 0xE2; -1 when the text is not a byte token's.
int parse_byte_token(std::string_view text);

// Appends the valid UTF-8 prefix of `pending` + `bytes` to `out`, replacing each invalid
// sequence by U+FFFD; an unfinished sequence at the end stays in `pending`.
void append_valid_utf8(std::string& pending, std::string_view bytes, std::string& out);

}  // namespace tessera::vocab
