// GGUF reader and writer: round trips, real vocabulary files, and a corpus of malformed
// files that must all fail cleanly (run under ASan+UBSan by scripts/test.sh).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <random>

#include "tensor/error.h"
#include "tensor/gguf.h"
#include "tensor/gguf_writer.h"
#include "tests/tensor/gguf_corpus.h"
#include "tests/test_support.h"

using namespace tessera;
using gguf::File;
using gguf::ValueType;

namespace {

// Parses a private heap copy of exactly `n` bytes, so a sanitizer sees any over-read.
std::unique_ptr<File> parse_copy(const std::vector<uint8_t>& bytes, size_t n, std::vector<uint8_t>& keep) {
    keep.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    keep.shrink_to_fit();
    return File::from_memory(keep.data(), keep.size(), "sample.gguf");
}

// Touches every value and tensor byte a successful parse exposes.
uint64_t walk(const File& f) {
    uint64_t h = 0;
    std::function<void(const gguf::Value&)> visit = [&](const gguf::Value& v) {
        if (v.type() == ValueType::STRING) {
            for (char c : v.as_string()) h += static_cast<uint8_t>(c);
        } else if (v.type() == ValueType::ARRAY) {
            for (uint64_t i = 0; i < v.size(); ++i) {
                if (v.array_type() == ValueType::ARRAY) visit(v.array_at(i));
                else if (v.array_type() == ValueType::STRING) h += v.string_at(i).size();
                else h += static_cast<uint64_t>(v.float_at(i) != 0);
            }
        } else {
            h += static_cast<uint64_t>(v.as_float() != 0);
        }
    };
    for (size_t i = 0; i < f.n_kv(); ++i) visit(f.kv(i).value);
    for (size_t i = 0; i < f.n_tensors(); ++i) {
        const gguf::TensorInfo& t = f.tensor(i);
        for (uint64_t b = 0; b < t.n_bytes; ++b) h += t.data[b];
    }
    return h;
}

}  // namespace

TEST_CASE("every value type round-trips through the writer and reader") {
    std::vector<uint8_t> bytes = test::valid_sample_gguf();
    auto f = File::from_memory(bytes.data(), bytes.size(), "sample.gguf");
    CHECK(f->version() == 3);
    CHECK(f->alignment() == 64);
    CHECK(f->require("v.u8").type() == ValueType::U8);
    CHECK(f->get_int("v.u8") == 200);
    CHECK(f->get_int("v.i8") == -100);
    CHECK(f->get_int("v.u16") == 60000);
    CHECK(f->get_int("v.i16") == -30000);
    CHECK(f->require("v.u32").as_uint() == 4000000000u);
    CHECK(f->get_int("v.i32") == -2000000000);
    CHECK(f->get_float("v.f32", 0) == 0.15625);
    CHECK(f->get_bool("v.bool", false) == true);
    CHECK(f->get_string("v.string") == "h\xc3\xa9llo \"w\"\n\x01");
    CHECK(f->require("v.u64").as_uint() == 18000000000000000000ull);
    CHECK_THROWS_AS(f->require("v.u64").as_int(), Error);  // does not fit in int64
    CHECK(f->get_int("v.i64") == -9000000000000000000ll);
    CHECK(f->get_float("v.f64", 0) == -2.5e300);

    const gguf::Value& ai = f->require("a.i32");
    REQUIRE(ai.array_type() == ValueType::I32);
    REQUIRE(ai.size() == 10);
    CHECK(ai.int_at(0) == 1);
    CHECK(ai.int_at(9) == -10);
    CHECK_THROWS_AS(ai.int_at(10), Error);
    CHECK_THROWS_AS(ai.uint_at(1), Error);  // negative
    CHECK(f->require("a.f32").float_at(1) == -1.25);
    CHECK(f->require("a.bool").bool_at(1) == false);
    const gguf::Value& as = f->require("a.string");
    REQUIRE(as.size() == 4);
    CHECK(as.string_at(1).empty());
    CHECK(as.string_at(2) == "\xe2\x96\x81token");
    const gguf::Value& nested = f->require("a.nested");
    REQUIRE(nested.array_type() == ValueType::ARRAY);
    REQUIRE(nested.size() == 3);
    CHECK(nested.array_at(0).array_type() == ValueType::U16);
    CHECK(nested.array_at(0).uint_at(1) == 8);
    CHECK(nested.array_at(1).string_at(0) == "x");
    CHECK(nested.array_at(2).array_at(0).string_at(0) == "deep");
    CHECK(f->require("a.empty").size() == 0);
    CHECK(f->find("missing") == nullptr);
    CHECK(f->get_int("missing", 42) == 42);
}

TEST_CASE("tensor infos: types, shapes, aligned offsets, data inside the file") {
    std::vector<uint8_t> bytes = test::valid_sample_gguf();
    auto f = File::from_memory(bytes.data(), bytes.size(), "sample.gguf");
    REQUIRE(f->n_tensors() == 6);
    CHECK(f->data_offset() % 64 == 0);
    struct Want { const char* name; DType type; int n_dims; int64_t ne0, ne1; uint64_t bytes; };
    const Want want[] = {
        {"weights.f32", DType::F32, 2, 5, 3, 60},     {"weights.f16", DType::F16, 1, 7, 1, 14},
        {"weights.bf16", DType::BF16, 4, 2, 2, 32},   {"weights.q4_0", DType::Q4_0, 2, 64, 3, 6 * 18},
        {"weights.q8_0", DType::Q8_0, 3, 32, 1, 68}, {"weights.q4_k", DType::Q4_K, 2, 256, 2, 288},
    };
    for (const Want& w : want) {
        CAPTURE(w.name);
        const gguf::TensorInfo* t = f->find_tensor(w.name);
        REQUIRE(t != nullptr);
        CHECK(t->type == w.type);
        CHECK(t->n_dims == w.n_dims);
        CHECK(t->ne[0] == w.ne0);
        CHECK(t->ne[1] == w.ne1);
        CHECK(t->n_bytes == w.bytes);
        CHECK(t->offset % 64 == 0);
        CHECK(t->data == bytes.data() + f->data_offset() + t->offset);
        CHECK(t->data[0] == 7);  // the sample's data starts with byte 7
    }
    const gguf::TensorInfo& last = f->tensor(5);
    CHECK(f->data_offset() + last.offset + last.n_bytes == bytes.size());
}

TEST_CASE("a file copied value by value is byte-identical") {
    std::vector<uint8_t> bytes = test::valid_sample_gguf();
    auto f = File::from_memory(bytes.data(), bytes.size(), "sample.gguf");
    gguf::Writer w;
    w.set_alignment(static_cast<uint32_t>(f->alignment()));
    for (size_t i = 0; i < f->n_kv(); ++i) w.set(f->kv(i).key, gguf::OwnedValue::copy_of(f->kv(i).value));
    for (size_t i = 0; i < f->n_tensors(); ++i) {
        const gguf::TensorInfo& t = f->tensor(i);
        w.add_tensor(t.name, t.type, std::span<const int64_t>(t.ne, static_cast<size_t>(t.n_dims)), t.data);
    }
    CHECK(w.to_bytes() == bytes);

    test::ScratchDir dir;
    std::string path = dir.file("copy.gguf").string();
    w.write(path);
    CHECK(test::read_file_bytes(path) == bytes);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    auto g = File::open(path);
    CHECK(g->n_kv() == f->n_kv());
    CHECK(g->path() == path);
}

TEST_CASE("the writer refuses what the reader would refuse") {
    gguf::Writer w;
    static const uint8_t data[64] = {};
    const int64_t ne33[] = {33};
    const int64_t ne32[] = {32};
    CHECK_THROWS_AS(w.add_tensor("q", DType::Q4_0, ne33, data), Error);
    w.add_tensor("q", DType::Q4_0, ne32, data);
    CHECK_THROWS_AS(w.add_tensor("q", DType::Q4_0, ne32, data), Error);
    CHECK_THROWS_AS(w.add_tensor("", DType::F32, ne32, data), Error);
    CHECK_THROWS_AS(w.set_alignment(48), Error);
    CHECK_THROWS_AS(w.set("", gguf::OwnedValue::u8(1)), Error);
    test::ScratchDir dir;
    CHECK_THROWS_AS(w.write((dir.path() / "no-such-dir" / "x.gguf").string()), Error);
}

TEST_CASE("real vocabulary files load and report their token counts") {
    auto data = test::test_data_dir();
    if (!data) {
        test::skip_because("shared test data not found (set TESSERA_TEST_DATA to the shared/data folder)");
        return;
    }
    struct Want { const char* file; const char* model; uint64_t tokens; };
    const Want want[] = {
        {"ggml-vocab-llama-spm.gguf", "llama", 32000},
        {"ggml-vocab-phi-3.gguf", "llama", 32064},
        {"ggml-vocab-gpt-2.gguf", "gpt2", 50257},
        {"ggml-vocab-bert-bge.gguf", "bert", 30522},
    };
    for (const Want& w : want) {
        CAPTURE(w.file);
        auto f = File::open((*data / "vocab" / w.file).string());
        CHECK(f->n_tensors() == 0);
        CHECK(f->get_string("tokenizer.ggml.model") == w.model);
        const gguf::Value& tokens = f->require("tokenizer.ggml.tokens");
        CHECK(tokens.array_type() == ValueType::STRING);
        CHECK(tokens.size() == w.tokens);
        CHECK(f->require("tokenizer.ggml.token_type").size() == w.tokens);
        walk(*f);
    }
}

TEST_CASE("every malformed file in the corpus fails with a clear message") {
    auto corpus = test::malformed_gguf_corpus();
    REQUIRE(corpus.size() >= 40);
    for (const auto& c : corpus) {
        CAPTURE(c.name);
        std::vector<uint8_t> keep;
        try {
            parse_copy(c.bytes, c.bytes.size(), keep);
            FAIL("parsed without error");
        } catch (const Error& e) {
            std::string msg = e.what();
            CAPTURE(msg);
            CHECK(e.kind() == ErrorKind::BadFile);
            CHECK(msg.find("sample.gguf: invalid GGUF: ") == 0);
            CHECK(msg.find(" at offset ") != std::string::npos);
            CHECK(msg.find(c.expected) != std::string::npos);
        }
    }
}

TEST_CASE("truncation at every byte offset fails cleanly") {
    std::vector<uint8_t> bytes = test::valid_sample_gguf();
    std::vector<uint8_t> keep;
    for (size_t n = 0; n < bytes.size(); ++n) {
        CAPTURE(n);
        CHECK_THROWS_AS(parse_copy(bytes, n, keep), Error);
    }
    CHECK_NOTHROW(parse_copy(bytes, bytes.size(), keep));
}

TEST_CASE("random corruption either parses consistently or fails cleanly") {
    std::vector<uint8_t> bytes = test::valid_sample_gguf();
    // Only the header is interesting: corrupting tensor data changes nothing.
    auto f = File::from_memory(bytes.data(), bytes.size(), "sample.gguf");
    const size_t header = static_cast<size_t>(f->data_offset());
    std::mt19937 rng(1234);
    const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0x09, 0x08, 0x40};
    int failed = 0;
    for (int iter = 0; iter < 4000; ++iter) {
        std::vector<uint8_t> m = bytes;
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) {
            size_t at = rng() % header;
            m[at] = (rng() & 1) ? interesting[rng() % sizeof interesting] : static_cast<uint8_t>(rng());
        }
        std::vector<uint8_t> keep;
        try {
            auto g = parse_copy(m, m.size(), keep);
            walk(*g);
        } catch (const Error& e) {
            ++failed;
            CHECK(std::string(e.what()).find("invalid GGUF") != std::string::npos);
        }
    }
    CHECK(failed > 100);  // most corruptions of the header are caught
}

TEST_CASE("arrays nested 8 deep are fine") {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    auto u32 = [&](uint32_t v) {
        for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    auto u64 = [&](uint64_t v) {
        for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    u64(0);
    u64(1);
    u64(1);
    b.push_back('k');
    u32(9);
    for (int i = 0; i < 7; ++i) u32(9), u64(1);
    u32(4), u64(0);
    auto f = File::from_memory(b.data(), b.size(), "nested.gguf");
    const gguf::Value* v = &f->require("k");
    for (int depth = 0; depth < 7; ++depth) v = &v->array_at(0);
    CHECK(v->array_type() == ValueType::U32);
    CHECK(v->size() == 0);
}

TEST_CASE("typed look-ups name the key and the file") {
    std::vector<uint8_t> bytes = test::valid_sample_gguf();
    auto f = File::from_memory(bytes.data(), bytes.size(), "sample.gguf");
    try {
        f->get_int("v.string");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == "sample.gguf: metadata key 'v.string': value is string, expected an integer");
    }
    try {
        f->get_string("general.architecture");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) == "sample.gguf: missing metadata key 'general.architecture'");
    }
}

TEST_CASE("files that cannot be opened give one clear error, never a hang") {
    test::ScratchDir dir;
    auto expect_error = [](const std::string& path, const char* fragment, ErrorKind kind) {
        CAPTURE(path);
        try {
            File::open(path);
            FAIL("opened");
        } catch (const Error& e) {
            std::string msg = e.what();
            CAPTURE(msg);
            CHECK(msg.find(path) == 0);
            CHECK(msg.find(fragment) != std::string::npos);
            CHECK(e.kind() == kind);
        }
    };
    expect_error(dir.file("missing.gguf").string(), "No such file", ErrorKind::Io);
    expect_error(dir.path().string(), "not a regular file", ErrorKind::Io);
    test::write_file_bytes(dir.file("empty.gguf"), {});
    expect_error(dir.file("empty.gguf").string(), "empty", ErrorKind::BadFile);
    std::string fifo = dir.file("fifo.gguf").string();
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    expect_error(fifo, "not a regular file", ErrorKind::Io);
    for (const auto& c : test::malformed_gguf_corpus()) {
        std::string path = dir.file(c.name + ".gguf").string();
        test::write_file_bytes(path, c.bytes);
        expect_error(path, c.expected.c_str(), ErrorKind::BadFile);
    }
}
