// Loading a vocabulary from GGUF metadata, validating it, and the tokenize entry point
// (special tokens, BOS/SEP/EOS) that hands raw text to the family's encoder.
#include "runtime/vocab/vocab.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "runtime/vocab/byte_level.h"
#include "runtime/vocab/unicode.h"
#include "tensor/error.h"
#include "tensor/gguf.h"

namespace tessera::vocab {

int parse_byte_token(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    const int hi = hex(t[3]), lo = hex(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

namespace {

constexpr std::string_view kSpmSpace = "▁";  // U+2581, SPM's visible space

// Appends s to out with every U+2581 turned into a space.
void append_unescaped_spaces(std::string_view s, std::string& out) {
    size_t i = 0;
    while (i < s.size()) {
        if (s.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
            out += ' ';
            i += kSpmSpace.size();
        } else {
            out += s[i++];
        }
    }
}

}  // namespace

// Reads the metadata into a Vocab; a friend so it can fill the private fields.
class VocabLoader {
public:
    VocabLoader(const gguf::File& file, const LoadOptions& options)
        : file_(file), options_(options), name_(file.path()) {}

    std::unique_ptr<Vocab> load() {
        std::unique_ptr<Vocab> v(new Vocab());
        v_ = v.get();
        read_model();
        read_tokens();
        read_pre();
        read_special_ids();
        read_flags();
        apply_reference_types();
        build_pieces();
        build_added_tokens();
        std::vector<std::string_view> merges;
        if (v_->kind_ == TokenizerKind::Bpe) merges = read_merges();
        switch (v_->kind_) {
            case TokenizerKind::Spm:
                v_->encoder_ = make_spm_encoder(*v_);
                break;
            case TokenizerKind::Bpe:
                v_->encoder_ = make_bpe_encoder(*v_, merges, name_);
                break;
            case TokenizerKind::WordPiece:
                v_->encoder_ = make_wordpiece_encoder(*v_);
                break;
        }
        return v;
    }

private:
    [[noreturn]] void fail(const std::string& what, ErrorKind kind = ErrorKind::BadFile) const {
        throw Error(name_ + ": " + what, kind);
    }

    const gguf::Value& require_array(std::string_view key, const char* what) const {
        const gguf::Value& val = file_.require(key);
        if (val.type() != gguf::ValueType::ARRAY)
            fail(std::string(key) + " is a " + std::string(gguf::value_type_name(val.type())) + ", expected " + what);
        return val;
    }

    void read_model() {
        const std::string_view model = file_.get_string("tokenizer.ggml.model");
        v_->model_name_ = std::string(model);
        if (model == "llama") {
            v_->kind_ = TokenizerKind::Spm;
        } else if (model == "gpt2") {
            v_->kind_ = TokenizerKind::Bpe;
        } else if (model == "bert") {
            v_->kind_ = TokenizerKind::WordPiece;
        } else {
            fail("tokenizer.ggml.model '" + std::string(model) +
                     "' is not a tokenizer this build supports (supported: 'llama' (SPM), 'gpt2' (byte-level BPE), "
                     "'bert' (WordPiece))",
                 ErrorKind::Unsupported);
        }
    }

    void read_tokens() {
        const gguf::Value& tokens = require_array("tokenizer.ggml.tokens", "an array of strings");
        if (tokens.array_type() != gguf::ValueType::STRING)
            fail("tokenizer.ggml.tokens holds " + std::string(gguf::value_type_name(tokens.array_type())) +
                 " values, expected strings");
        const uint64_t n = tokens.size();
        if (n == 0) fail("tokenizer.ggml.tokens is empty");
        if (n > static_cast<uint64_t>(INT32_MAX) / 2)
            fail("tokenizer.ggml.tokens has too many tokens (" + std::to_string(n) + ")");

        size_t bytes = 0;
        for (uint64_t i = 0; i < n; ++i) bytes += tokens.string_at(i).size();
        if (bytes > UINT32_MAX / 4)
            fail("tokenizer.ggml.tokens holds " + std::to_string(bytes) + " bytes of text, too many");
        v_->text_arena_.reserve(bytes);
        v_->text_offsets_.reserve(n + 1);
        for (uint64_t i = 0; i < n; ++i) {
            v_->text_offsets_.push_back(static_cast<uint32_t>(v_->text_arena_.size()));
            v_->text_arena_ += tokens.string_at(i);
        }
        v_->text_offsets_.push_back(static_cast<uint32_t>(v_->text_arena_.size()));

        v_->types_.assign(n, TokenType::Normal);
        if (const gguf::Value* types = file_.find("tokenizer.ggml.token_type")) {
            check_parallel_array(*types, "tokenizer.ggml.token_type", n, true);
            for (uint64_t i = 0; i < n; ++i) {
                const int64_t t = types->int_at(i);
                if (t < 0 || t > 6)
                    fail("tokenizer.ggml.token_type[" + std::to_string(i) + "] = " + std::to_string(t) +
                         " is not a token type (0 to 6)");
                v_->types_[i] = static_cast<TokenType>(t);
            }
        }
        if (const gguf::Value* scores = file_.find("tokenizer.ggml.scores")) {
            check_parallel_array(*scores, "tokenizer.ggml.scores", n, false);
            v_->scores_.resize(n);
            for (uint64_t i = 0; i < n; ++i) v_->scores_[i] = static_cast<float>(scores->float_at(i));
        }

        v_->text_index_.reserve(n);
        for (int32_t id = 0; id < static_cast<int32_t>(n); ++id) {
            std::string_view t = v_->token_text(id);
            if (!t.empty()) v_->text_index_.insert(t, id, true);
        }
    }

    void check_parallel_array(const gguf::Value& val, const char* key, uint64_t n, bool integers) const {
        if (val.type() != gguf::ValueType::ARRAY) fail(std::string(key) + " is not an array");
        const gguf::ValueType t = val.array_type();
        const bool ok = integers ? gguf::is_integer_type(t) : (gguf::is_integer_type(t) || gguf::is_float_type(t));
        if (!ok)
            fail(std::string(key) + " holds " + std::string(gguf::value_type_name(t)) + " values, expected " +
                 (integers ? "integers" : "numbers"));
        if (val.size() != n)
            fail(std::string(key) + " has " + std::to_string(val.size()) + " entries but tokenizer.ggml.tokens has " +
                 std::to_string(n));
    }

    void read_pre() {
        const gguf::Value* pre = file_.find("tokenizer.ggml.pre");
        if (pre) {
            if (pre->type() != gguf::ValueType::STRING) fail("tokenizer.ggml.pre is not a string");
            v_->pre_name_ = std::string(pre->as_string());
        }
        if (v_->kind_ != TokenizerKind::Bpe) return;  // SPM and WordPiece have no pre-tokenizer choice
        // Files written before the key existed get the default split, as llama.cpp gives them.
        const std::string name = v_->pre_name_.empty() ? "default" : v_->pre_name_;
        v_->pre_ = find_pre_tokenizer(name);
        if (v_->pre_) return;
        if (!options_.allow_unknown_pre) {
            std::string known;
            for (std::string_view s : supported_pre_names()) known += (known.empty() ? "" : ", ") + std::string(s);
            fail("tokenizer.ggml.pre '" + name + "' is not a pre-tokenizer this build knows (known: " + known +
                     "); allow unknown pre-tokenizers to fall back to the GPT-2 split",
                 ErrorKind::Unsupported);
        }
        v_->pre_ = &gpt2_pre_tokenizer();
        v_->warnings_.push_back(
            name_ + ": tokenizer.ggml.pre '" + name +
            "' is unknown; using the GPT-2 split, so tokens may differ from the model's own tokenizer");
    }

    int32_t read_id(std::string_view key) const {
        const gguf::Value* val = file_.find(key);
        if (!val) return -1;
        if (!gguf::is_integer_type(val->type()))
            fail(std::string(key) + " is a " + std::string(gguf::value_type_name(val->type())) +
                 ", expected an integer");
        const int64_t id = val->as_int();
        if (id == -1) return -1;  // some converters write -1 for "none"
        if (id < 0 || id >= v_->size())
            fail(std::string(key) + " = " + std::to_string(id) + " is not a token id (the vocabulary has " +
                 std::to_string(v_->size()) + " tokens)");
        return static_cast<int32_t>(id);
    }

    void read_special_ids() {
        v_->bos_ = read_id("tokenizer.ggml.bos_token_id");
        v_->eos_ = read_id("tokenizer.ggml.eos_token_id");
        v_->unk_ = read_id("tokenizer.ggml.unknown_token_id");
        v_->sep_ = read_id("tokenizer.ggml.seperator_token_id");  // sic: the GGUF spelling
        if (v_->sep_ < 0) v_->sep_ = read_id("tokenizer.ggml.separator_token_id");
        v_->pad_ = read_id("tokenizer.ggml.padding_token_id");
        v_->cls_ = read_id("tokenizer.ggml.cls_token_id");
        v_->mask_ = read_id("tokenizer.ggml.mask_token_id");
        v_->eot_ = read_id("tokenizer.ggml.eot_token_id");
        if (v_->kind_ == TokenizerKind::WordPiece && v_->bos_ < 0) v_->bos_ = v_->cls_;  // [CLS] opens a sequence
    }

    bool read_flag(std::string_view key, bool fallback) const {
        const gguf::Value* val = file_.find(key);
        if (!val) return fallback;
        if (val->type() != gguf::ValueType::BOOL && !gguf::is_integer_type(val->type()))
            fail(std::string(key) + " is a " + std::string(gguf::value_type_name(val->type())) + ", expected a bool");
        return val->as_int() != 0;
    }

    void read_flags() {
        bool bos = false, sep = false, prefix = false;
        switch (v_->kind_) {
            case TokenizerKind::Spm:
                bos = true, prefix = true;
                break;
            case TokenizerKind::WordPiece:
                bos = true, sep = true;
                break;
            case TokenizerKind::Bpe:
                if (v_->pre_->default_add_bos >= 0) bos = v_->pre_->default_add_bos == 1;
                if (v_->pre_->default_add_sep >= 0) sep = v_->pre_->default_add_sep == 1;
                break;
        }
        v_->add_bos_ = read_flag("tokenizer.ggml.add_bos_token", bos);
        v_->add_eos_ = read_flag("tokenizer.ggml.add_eos_token", false);
        v_->add_sep_ = read_flag("tokenizer.ggml.add_sep_token", sep);
        v_->add_space_prefix_ = read_flag("tokenizer.ggml.add_space_prefix", prefix);
        // Detokenizing undoes the space the tokenizer put in front of a segment; WordPiece
        // marks every word start, so its first word sheds the mark's space too.
        v_->strip_leading_space_ = v_->add_space_prefix_ || v_->kind_ == TokenizerKind::WordPiece;
    }

    // What each token contributes to detokenized text.
    void build_pieces() {
        const int32_t n = v_->size();
        bool wordpiece_hashes = false;  // the "##suffix" spelling instead of "▁word"
        if (v_->kind_ == TokenizerKind::WordPiece) {
            size_t marks = 0, hashes = 0;
            for (int32_t id = 0; id < n; ++id) {
                std::string_view t = v_->token_text(id);
                if (t.substr(0, kSpmSpace.size()) == kSpmSpace) ++marks;
                if (t.size() > 2 && t.substr(0, 2) == "##") ++hashes;
            }
            wordpiece_hashes = hashes > marks;
        }
        v_->piece_offsets_.reserve(static_cast<size_t>(n) + 1);
        v_->piece_kinds_.reserve(static_cast<size_t>(n));
        std::string p;
        for (int32_t id = 0; id < n; ++id) {
            const std::string_view text = v_->token_text(id);
            const TokenType type = v_->token_type(id);
            Vocab::PieceKind kind = Vocab::PieceKind::Text;
            p.clear();
            int byte = -1;
            if (type == TokenType::Byte) byte = parse_byte_token(text);
            if (type == TokenType::Control && id != v_->unk_) {
                kind = Vocab::PieceKind::Control;
                p.append(text);
            } else if (type == TokenType::UserDefined) {
                kind = Vocab::PieceKind::Special;
                p.append(text);
            } else if (byte >= 0) {
                kind = Vocab::PieceKind::Byte;
                p += static_cast<char>(byte);
            } else if (v_->kind_ == TokenizerKind::Bpe) {
                append_byte_level_decoded(text, p);
            } else if (v_->kind_ == TokenizerKind::WordPiece && id == v_->unk_) {
                p += ' ';  // [UNK] stands for a whole word
                p.append(text);
            } else if (v_->kind_ == TokenizerKind::WordPiece && wordpiece_hashes) {
                if (text.size() > 2 && text.substr(0, 2) == "##") {
                    p.append(text.substr(2));
                } else {
                    p += ' ';
                    p.append(text);
                }
            } else {  // SPM, and WordPiece as GGUF converters store it ("▁word", "suffix")
                append_unescaped_spaces(text, p);
            }
            v_->piece_offsets_.push_back(static_cast<uint32_t>(v_->piece_arena_.size()));
            v_->piece_arena_ += p;
            v_->piece_kinds_.push_back(kind);
        }
        v_->piece_offsets_.push_back(static_cast<uint32_t>(v_->piece_arena_.size()));
    }

    static void append_byte_level_decoded(std::string_view text, std::string& out) {
        size_t i = 0;
        while (i < text.size()) {
            uint32_t cp;
            const size_t len = utf8_decode(text.data() + i, text.size() - i, &cp);
            const int b = gpt2_char_to_byte(cp);
            if (b >= 0)
                out += static_cast<char>(b);
            else
                out.append(text.data() + i, len);  // not in the alphabet: the character itself
            i += len;
        }
    }

    // Token types the way the reference runtime reads a GGUF vocabulary, where it overrides
    // the file: end-of-generation and infill markers that a converter left user-defined
    // are control tokens (so plain text never turns into them), and the whitespace-strip
    // flags of added tokens, which GGUF does not carry, for the models known to set them.
    void apply_reference_types() {
        auto set_type = [&](std::string_view text, TokenType type) {
            const int32_t id = v_->find_token(text);
            if (id >= 0) v_->types_[static_cast<size_t>(id)] = type;
        };
        // End-of-generation markers: control tokens, and where generation stops.
        auto add_eog = [&](int32_t id) {
            if (id >= 0 && std::find(v_->eog_.begin(), v_->eog_.end(), id) == v_->eog_.end()) v_->eog_.push_back(id);
        };
        for (std::string_view t :
             {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
              "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"}) {
            set_type(t, TokenType::Control);
            add_eog(v_->find_token(t));
        }
        add_eog(v_->eos_);
        add_eog(v_->eot_);
        add_eog(read_id("tokenizer.ggml.eom_token_id"));
        // Without an id in the metadata, the first of each group that the vocabulary has.
        auto first_of = [&](const char* key, std::initializer_list<std::string_view> texts) {
            if (file_.find(key)) return;
            for (std::string_view t : texts) {
                if (v_->find_token(t) >= 0) {
                    set_type(t, TokenType::Control);
                    return;
                }
            }
        };
        first_of("tokenizer.ggml.eot_token_id", {"<｜end▁of▁sentence｜>"});
        first_of("tokenizer.ggml.fim_pre_token_id", {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                                                     "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>"});
        first_of("tokenizer.ggml.fim_suf_token_id", {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>",
                                                     "<SUF>", "▁<SUF>", "<|code_suffix|>"});
        first_of("tokenizer.ggml.fim_mid_token_id", {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>",
                                                     "<MID>", "▁<MID>", "<|code_middle|>"});
        first_of("tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"});
        first_of("tokenizer.ggml.fim_rep_token_id",
                 {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
        first_of("tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"});
        // gpt-oss's channel markers are always rendered, so they are user-defined; its
        // "<|end|>" too, where "<|return|>" and "<|call|>" end the generation instead.
        for (std::string_view t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
            set_type(t, TokenType::UserDefined);
        if (v_->find_token("<|return|>") >= 0 && v_->find_token("<|call|>") >= 0) {
            set_type("<|end|>", TokenType::UserDefined);
            const int32_t end = v_->find_token("<|end|>");
            if (end != v_->eos_ && end != v_->eot_) std::erase(v_->eog_, end);
        }

        strip_.assign(static_cast<size_t>(v_->size()), AddedTokens::kStripNone);
        auto text_of = [&](const char* key) {
            const gguf::Value* val = file_.find(key);
            std::string s = val && val->type() == gguf::ValueType::STRING ? std::string(val->as_string()) : "";
            for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            return s;
        };
        auto contains_any = [](const std::string& s, std::initializer_list<std::string_view> parts) {
            for (std::string_view p : parts)
                if (s.find(p) != std::string::npos) return true;
            return false;
        };
        const std::string name = text_of("general.name"), arch = text_of("general.architecture");
        if (contains_any(v_->pre_name_, {"jina-v2-de", "jina-v2-es", "jina-v2-code"}) ||
            contains_any(arch, {"nomic-bert-moe", "jina-bert-v3"})) {
            const int32_t mask = v_->find_token("<mask>");
            if (mask >= 0) strip_[static_cast<size_t>(mask)] = AddedTokens::kStripLeft;
        } else if (contains_any(name, {"phi-3", "phi3"})) {
            // Phi-3's added tokens take the whitespace after them, except these three.
            for (int32_t id = 0; id < v_->size(); ++id)
                if (is_added(v_->token_type(id))) strip_[static_cast<size_t>(id)] = AddedTokens::kStripRight;
            const int32_t eos = v_->find_token("</s>");
            if (eos >= 0) strip_[static_cast<size_t>(eos)] = AddedTokens::kStripRight;
            for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
                const int32_t id = v_->find_token(t);
                if (id >= 0) strip_[static_cast<size_t>(id)] = AddedTokens::kStripNone;
            }
        }
    }

    // The tokens looked for in raw text: control, user-defined and unknown ones.
    static bool is_added(TokenType t) {
        return t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
    }

    void build_added_tokens() {
        for (int32_t id = 0; id < v_->size(); ++id) {
            const TokenType t = v_->token_type(id);
            if (!is_added(t)) continue;
            v_->added_.add(v_->token_text(id), id, t == TokenType::UserDefined, strip_[static_cast<size_t>(id)]);
        }
    }

    std::vector<std::string_view> read_merges() const {
        const gguf::Value* merges = file_.find("tokenizer.ggml.merges");
        if (!merges) fail("tokenizer.ggml.merges is missing; a 'gpt2' (BPE) vocabulary needs its merges");
        if (merges->type() != gguf::ValueType::ARRAY || merges->array_type() != gguf::ValueType::STRING)
            fail("tokenizer.ggml.merges is not an array of strings");
        std::vector<std::string_view> out;
        out.reserve(merges->size());
        for (uint64_t i = 0; i < merges->size(); ++i) out.push_back(merges->string_at(i));
        return out;
    }

    const gguf::File& file_;
    LoadOptions options_;
    std::string name_;
    Vocab* v_ = nullptr;
    std::vector<uint8_t> strip_;  // AddedTokens::Strip flags by token id
};

std::unique_ptr<Vocab> Vocab::load(const gguf::File& file, const LoadOptions& options) {
    return VocabLoader(file, options).load();
}

Vocab::~Vocab() = default;

std::string_view Vocab::token_text(int32_t id) const {
    const size_t i = static_cast<size_t>(id);
    return std::string_view(text_arena_).substr(text_offsets_[i], text_offsets_[i + 1] - text_offsets_[i]);
}

void Vocab::check_token(int32_t id) const {
    if (!valid(id))
        throw Error("token id " + std::to_string(id) + " is out of range (the vocabulary has " +
                        std::to_string(size()) + " tokens)",
                    ErrorKind::InvalidArgument);
}

void Vocab::tokenize(std::string_view text, bool add_special, bool parse_special, std::vector<int32_t>& out) const {
    if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);
    std::vector<AddedTokens::Fragment> fragments;
    added_.split(text, parse_special, fragments);
    encoder_->encode(text, fragments, out);
    if (add_special && add_sep_ && sep_ >= 0) out.push_back(sep_);
    if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
}

std::vector<int32_t> Vocab::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    tokenize(text, add_special, parse_special, out);
    return out;
}

}  // namespace tessera::vocab
