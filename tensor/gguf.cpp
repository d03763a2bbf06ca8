// GGUF v2/v3 reader: the memory mapping, the validating parser and typed access.
#include "tensor/gguf.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

#include "tensor/error.h"

#ifdef _WIN32
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#else
#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace tessera::gguf {

// ---------------------------------------------------------------------------------------
// Mapping: a read-only view of a whole regular file.

class Mapping {
public:
    explicit Mapping(const std::string& path);
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    const uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }

private:
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
#ifdef _WIN32
    HANDLE file_ = INVALID_HANDLE_VALUE;
    HANDLE map_ = nullptr;
#endif
};

#ifdef _WIN32
Mapping::Mapping(const std::string& path) {
    file_ = CreateFileA(path.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                        FILE_ATTRIBUTE_NORMAL, nullptr);
    if (file_ == INVALID_HANDLE_VALUE)
        throw Error(path + ": cannot open file (Windows error " + std::to_string(GetLastError()) + ")",
                    ErrorKind::Io);
    LARGE_INTEGER sz;
    if (!GetFileSizeEx(file_, &sz)) {
        CloseHandle(file_);
        throw Error(path + ": cannot read the file size", ErrorKind::Io);
    }
    size_ = static_cast<uint64_t>(sz.QuadPart);
    if (size_ == 0) {
        CloseHandle(file_);
        throw Error(path + ": invalid GGUF: the file is empty", ErrorKind::BadFile);
    }
    map_ = CreateFileMappingA(file_, nullptr, PAGE_READONLY, 0, 0, nullptr);
    if (!map_) {
        CloseHandle(file_);
        throw Error(path + ": cannot map the file", ErrorKind::Io);
    }
    data_ = static_cast<const uint8_t*>(MapViewOfFile(map_, FILE_MAP_READ, 0, 0, 0));
    if (!data_) {
        CloseHandle(map_);
        CloseHandle(file_);
        throw Error(path + ": cannot map the file", ErrorKind::Io);
    }
}

Mapping::~Mapping() {
    if (data_) UnmapViewOfFile(data_);
    if (map_) CloseHandle(map_);
    if (file_ != INVALID_HANDLE_VALUE) CloseHandle(file_);
}
#else
Mapping::Mapping(const std::string& path) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; we refuse non-regular files below.
    int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open file: " + std::strerror(errno), ErrorKind::Io);
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw Error(path + ": cannot stat file: " + std::strerror(e), ErrorKind::Io);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path + ": not a regular file", ErrorKind::Io);
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) {
        ::close(fd);
        throw Error(path + ": invalid GGUF: the file is empty", ErrorKind::BadFile);
    }
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw Error(path + ": cannot map file: " + std::strerror(e), ErrorKind::Io);
    data_ = static_cast<const uint8_t*>(p);
}

Mapping::~Mapping() {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}
#endif

// ---------------------------------------------------------------------------------------
// Value types

std::string_view value_type_name(ValueType t) {
    switch (t) {
    case ValueType::U8: return "uint8";
    case ValueType::I8: return "int8";
    case ValueType::U16: return "uint16";
    case ValueType::I16: return "int16";
    case ValueType::U32: return "uint32";
    case ValueType::I32: return "int32";
    case ValueType::F32: return "float32";
    case ValueType::BOOL: return "bool";
    case ValueType::STRING: return "string";
    case ValueType::ARRAY: return "array";
    case ValueType::U64: return "uint64";
    case ValueType::I64: return "int64";
    case ValueType::F64: return "float64";
    }
    return "?";
}

size_t value_type_size(ValueType t) {
    switch (t) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::BOOL: return 1;
    case ValueType::U16:
    case ValueType::I16: return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32: return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64: return 8;
    case ValueType::STRING:
    case ValueType::ARRAY: return 0;
    }
    return 0;
}

namespace {

template <typename T>
T load(const uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

std::string type_mismatch(ValueType have, const char* want) {
    return "value is " + std::string(value_type_name(have)) + ", expected " + want;
}

}  // namespace

uint64_t Value::raw_uint(ValueType t, const uint8_t* p) const {
    switch (t) {
    case ValueType::U8:
    case ValueType::BOOL: return p[0];
    case ValueType::U16: return load<uint16_t>(p);
    case ValueType::U32: return load<uint32_t>(p);
    case ValueType::U64: return load<uint64_t>(p);
    case ValueType::I8:
    case ValueType::I16:
    case ValueType::I32:
    case ValueType::I64: {
        int64_t v = raw_int(t, p);
        if (v < 0) throw Error("negative value " + std::to_string(v) + " where an unsigned one is expected");
        return static_cast<uint64_t>(v);
    }
    default: throw Error(type_mismatch(t, "an integer"));
    }
}

int64_t Value::raw_int(ValueType t, const uint8_t* p) const {
    switch (t) {
    case ValueType::I8: return load<int8_t>(p);
    case ValueType::I16: return load<int16_t>(p);
    case ValueType::I32: return load<int32_t>(p);
    case ValueType::I64: return load<int64_t>(p);
    case ValueType::U8:
    case ValueType::BOOL:
    case ValueType::U16:
    case ValueType::U32:
    case ValueType::U64: {
        uint64_t v = raw_uint(t, p);
        if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw Error("value " + std::to_string(v) + " does not fit in int64");
        return static_cast<int64_t>(v);
    }
    default: throw Error(type_mismatch(t, "an integer"));
    }
}

double Value::raw_float(ValueType t, const uint8_t* p) const {
    switch (t) {
    case ValueType::F32: return load<float>(p);
    case ValueType::F64: return load<double>(p);
    case ValueType::I8:
    case ValueType::I16:
    case ValueType::I32:
    case ValueType::I64: return static_cast<double>(raw_int(t, p));
    case ValueType::U8:
    case ValueType::BOOL:
    case ValueType::U16:
    case ValueType::U32:
    case ValueType::U64: return static_cast<double>(raw_uint(t, p));
    default: throw Error(type_mismatch(t, "a number"));
    }
}

int64_t Value::as_int() const {
    if (!is_integer_type(type_) && type_ != ValueType::BOOL) throw Error(type_mismatch(type_, "an integer"));
    return raw_int(type_, data_);
}

uint64_t Value::as_uint() const {
    if (!is_integer_type(type_) && type_ != ValueType::BOOL) throw Error(type_mismatch(type_, "an integer"));
    return raw_uint(type_, data_);
}

double Value::as_float() const {
    if (type_ == ValueType::STRING || type_ == ValueType::ARRAY) throw Error(type_mismatch(type_, "a number"));
    return raw_float(type_, data_);
}

bool Value::as_bool() const {
    if (type_ != ValueType::BOOL) throw Error(type_mismatch(type_, "bool"));
    return data_[0] != 0;
}

std::string_view Value::as_string() const {
    if (type_ != ValueType::STRING) throw Error(type_mismatch(type_, "string"));
    return {reinterpret_cast<const char*>(data_), static_cast<size_t>(count_)};
}

ValueType Value::array_type() const {
    if (type_ != ValueType::ARRAY) throw Error(type_mismatch(type_, "array"));
    return elem_type_;
}

uint64_t Value::size() const {
    if (type_ != ValueType::ARRAY) throw Error(type_mismatch(type_, "array"));
    return count_;
}

void Value::expect_array(ValueType elem, const char* what) const {
    if (type_ != ValueType::ARRAY) throw Error(type_mismatch(type_, "array"));
    bool ok = elem == ValueType::U8 ? (is_integer_type(elem_type_) || is_float_type(elem_type_) ||
                                       elem_type_ == ValueType::BOOL)
                                    : elem_type_ == elem;
    if (!ok)
        throw Error("array of " + std::string(value_type_name(elem_type_)) + ", expected an array of " + what);
}

int64_t Value::int_at(uint64_t i) const {
    expect_array(ValueType::U8, "integers");
    if (i >= count_) throw Error("array index out of range");
    return raw_int(elem_type_, data_ + i * value_type_size(elem_type_));
}

uint64_t Value::uint_at(uint64_t i) const {
    expect_array(ValueType::U8, "integers");
    if (i >= count_) throw Error("array index out of range");
    return raw_uint(elem_type_, data_ + i * value_type_size(elem_type_));
}

double Value::float_at(uint64_t i) const {
    expect_array(ValueType::U8, "numbers");
    if (i >= count_) throw Error("array index out of range");
    return raw_float(elem_type_, data_ + i * value_type_size(elem_type_));
}

bool Value::bool_at(uint64_t i) const {
    expect_array(ValueType::BOOL, "bool");
    if (i >= count_) throw Error("array index out of range");
    return data_[i] != 0;
}

std::string_view Value::string_at(uint64_t i) const {
    expect_array(ValueType::STRING, "strings");
    if (i >= count_) throw Error("array index out of range");
    return strings_[i];
}

const Value& Value::array_at(uint64_t i) const {
    expect_array(ValueType::ARRAY, "arrays");
    if (i >= count_) throw Error("array index out of range");
    return items_[i];
}

const uint8_t* Value::array_data() const {
    if (type_ != ValueType::ARRAY) throw Error(type_mismatch(type_, "array"));
    return value_type_size(elem_type_) ? data_ : nullptr;
}

// ---------------------------------------------------------------------------------------
// Parser: walks the header with a cursor that never moves past the end of the bytes.

class Parser {
public:
    Parser(File& f) : f_(f), p_(f.base_), size_(f.size_) {}
    void parse();

private:
    [[noreturn]] void fail(const std::string& field, uint64_t at, const std::string& problem) const {
        throw Error(f_.path_ + ": invalid GGUF: " + field + " at offset " + std::to_string(at) + ": " + problem,
                    ErrorKind::BadFile);
    }
    uint64_t left() const { return size_ - pos_; }
    void need(uint64_t n, const std::string& field) const {
        if (n > left())
            fail(field, pos_,
                 "needs " + std::to_string(n) + " bytes but the file ends after " + std::to_string(left()) +
                     " (truncated?)");
    }
    template <typename T>
    T read(const std::string& field) {
        need(sizeof(T), field);
        T v = load<T>(p_ + pos_);
        pos_ += sizeof(T);
        return v;
    }
    std::string_view read_string(const std::string& field);
    void read_value(Value& v, ValueType type, const std::string& field, int depth);
    ValueType read_value_type(const std::string& field);
    void read_tensor_info(size_t index);

    File& f_;
    const uint8_t* p_;
    uint64_t size_;
    uint64_t pos_ = 0;
};

std::string_view Parser::read_string(const std::string& field) {
    uint64_t at = pos_;
    uint64_t len = read<uint64_t>(field + " length");
    if (len > left())
        fail(field, at,
             "string length " + std::to_string(len) + " exceeds the " + std::to_string(left()) +
                 " bytes left in the file");
    std::string_view s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
    pos_ += len;
    return s;
}

ValueType Parser::read_value_type(const std::string& field) {
    uint64_t at = pos_;
    uint32_t t = read<uint32_t>(field + " type");
    if (t >= kValueTypeCount) fail(field, at, "unknown value type id " + std::to_string(t));
    return static_cast<ValueType>(t);
}

void Parser::read_value(Value& v, ValueType type, const std::string& field, int depth) {
    v.type_ = type;
    uint64_t at = pos_;
    if (type == ValueType::STRING) {
        std::string_view s = read_string(field);
        v.data_ = reinterpret_cast<const uint8_t*>(s.data());
        v.count_ = s.size();
        return;
    }
    if (type != ValueType::ARRAY) {
        size_t n = value_type_size(type);
        need(n, field);
        v.data_ = p_ + pos_;
        if (type == ValueType::BOOL && v.data_[0] > 1)
            fail(field, pos_, "bool value " + std::to_string(v.data_[0]) + " is neither 0 nor 1");
        pos_ += n;
        return;
    }

    if (depth >= kMaxArrayDepth)
        fail(field, at, "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
    v.elem_type_ = read_value_type(field + " element");
    uint64_t count_at = pos_;
    v.count_ = read<uint64_t>(field + " length");
    // Every element takes at least this many bytes, so a count past left()/min is a lie.
    size_t elem_size = value_type_size(v.elem_type_);
    uint64_t min_bytes = elem_size ? elem_size : (v.elem_type_ == ValueType::STRING ? 8 : 12);
    if (v.count_ > left() / min_bytes)
        fail(field, count_at,
             "array of " + std::to_string(v.count_) + " " + std::string(value_type_name(v.elem_type_)) +
                 " values cannot fit in the " + std::to_string(left()) + " bytes left in the file");
    if (elem_size) {
        v.data_ = p_ + pos_;
        if (v.elem_type_ == ValueType::BOOL)
            for (uint64_t i = 0; i < v.count_; ++i)
                if (v.data_[i] > 1)
                    fail(field + "[" + std::to_string(i) + "]", pos_ + i,
                         "bool value " + std::to_string(v.data_[i]) + " is neither 0 nor 1");
        pos_ += v.count_ * elem_size;
    } else if (v.elem_type_ == ValueType::STRING) {
        // Vocabularies hold 10^5 strings: name the element only when it is wrong.
        v.strings_.reserve(static_cast<size_t>(v.count_));
        for (uint64_t i = 0; i < v.count_; ++i) {
            if (left() < 8 || load<uint64_t>(p_ + pos_) > left() - 8)
                read_string(field + "[" + std::to_string(i) + "]");  // fails with the message
            uint64_t len = load<uint64_t>(p_ + pos_);
            v.strings_.emplace_back(reinterpret_cast<const char*>(p_ + pos_ + 8), static_cast<size_t>(len));
            pos_ += 8 + len;
        }
    } else {
        v.items_.resize(static_cast<size_t>(v.count_));
        for (uint64_t i = 0; i < v.count_; ++i) {
            std::string item_field = field + "[" + std::to_string(i) + "]";
            read_value(v.items_[i], ValueType::ARRAY, item_field, depth + 1);
        }
    }
}

void Parser::read_tensor_info(size_t index) {
    TensorInfo& t = f_.tensors_[index];
    std::string field = "tensor[" + std::to_string(index) + "]";
    uint64_t at = pos_;
    std::string_view name = read_string(field + ".name");
    if (name.empty()) fail(field + ".name", at, "empty tensor name");
    t.name = std::string(name);
    field = "tensor[" + std::to_string(index) + "] '" + t.name + "'";

    at = pos_;
    uint32_t n_dims = read<uint32_t>(field + ".n_dims");
    if (n_dims == 0 || n_dims > static_cast<uint32_t>(kMaxDims))
        fail(field + ".n_dims", at, std::to_string(n_dims) + " dimensions (expected 1 to 4)");
    t.n_dims = static_cast<int>(n_dims);
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
        at = pos_;
        uint64_t ne = read<uint64_t>(field + ".ne[" + std::to_string(d) + "]");
        if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            fail(field + ".ne[" + std::to_string(d) + "]", at, "dimension " + std::to_string(ne) + " is too large");
        t.ne[d] = static_cast<int64_t>(ne);
        if (__builtin_mul_overflow(n_elements, t.ne[d], &n_elements))
            fail(field + ".ne", at, "the product of the dimensions overflows 64 bits");
    }
    t.n_elements = n_elements;

    at = pos_;
    uint32_t type = read<uint32_t>(field + ".type");
    const TypeTraits& tr = type_traits(type);
    if (!tr.known) fail(field + ".type", at, "unknown tensor type id " + std::to_string(type));
    t.type = static_cast<DType>(type);
    if (t.ne[0] % tr.block_size != 0)
        fail(field + ".ne[0]", at,
             "row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + std::string(tr.name) +
                 " block size " + std::to_string(tr.block_size));
    uint64_t blocks = static_cast<uint64_t>(n_elements) / tr.block_size;
    if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(tr.type_size), &t.n_bytes))
        fail(field, at, "the tensor's byte size overflows 64 bits");

    at = pos_;
    t.offset = read<uint64_t>(field + ".offset");
}

void Parser::parse() {
    uint64_t at = 0;
    uint32_t magic = read<uint32_t>("magic");
    if (magic != kMagic) {
        std::string shown;
        for (int i = 0; i < 4; ++i) {
            unsigned c = (magic >> (8 * i)) & 0xff;
            char buf[8];
            std::snprintf(buf, sizeof buf, (c >= 32 && c < 127) ? "%c" : "\\x%02x", c);
            shown += buf;
        }
        fail("magic", 0, "not a GGUF file (magic '" + shown + "', expected 'GGUF')");
    }
    at = pos_;
    uint32_t version = read<uint32_t>("version");
    if (version != 2 && version != 3) {
        if ((version & 0xffff) == 0 && version != 0)
            fail("version", at, "big-endian GGUF files are not supported");
        fail("version", at, "GGUF version " + std::to_string(version) + " is not supported (only 2 and 3)");
    }
    f_.version_ = version;

    at = pos_;
    uint64_t n_tensors = read<uint64_t>("tensor_count");
    // The smallest tensor info: name length + 1 byte + n_dims + one dim + type + offset.
    if (n_tensors > left() / 33)
        fail("tensor_count", at,
             std::to_string(n_tensors) + " tensors cannot fit in a file of " + std::to_string(size_) + " bytes");
    at = pos_;
    uint64_t n_kv = read<uint64_t>("metadata_kv_count");
    // The smallest key/value: key length + 1 byte + type + a 1-byte value.
    if (n_kv > left() / 14)
        fail("metadata_kv_count", at,
             std::to_string(n_kv) + " key/value pairs cannot fit in a file of " + std::to_string(size_) + " bytes");

    f_.kvs_.resize(static_cast<size_t>(n_kv));
    f_.kv_index_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        KeyValue& kv = f_.kvs_[i];
        std::string field = "metadata[" + std::to_string(i) + "]";
        at = pos_;
        std::string_view key = read_string(field + ".key");
        if (key.empty()) fail(field + ".key", at, "empty key");
        kv.key = std::string(key);
        field = "metadata[" + std::to_string(i) + "] '" + kv.key + "'";
        if (f_.kv_index_.count(kv.key)) fail(field, at, "duplicate key '" + kv.key + "'");
        ValueType type = read_value_type(field);
        read_value(kv.value, type, field, 0);
        f_.kv_index_.emplace(kv.key, i);
    }

    if (int64_t ai = f_.find_index("general.alignment"); ai >= 0) {
        const Value& v = f_.kvs_[ai].value;
        if (v.type() != ValueType::U32)
            fail("general.alignment", 0, "has type " + std::string(value_type_name(v.type())) + ", expected uint32");
        uint64_t a = v.as_uint();
        if (a == 0 || (a & (a - 1)) != 0)
            fail("general.alignment", 0, "alignment " + std::to_string(a) + " is not a power of two");
        f_.alignment_ = a;
    }

    f_.tensors_.resize(static_cast<size_t>(n_tensors));
    f_.tensor_index_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        at = pos_;
        read_tensor_info(i);
        const TensorInfo& t = f_.tensors_[i];
        if (f_.tensor_index_.count(t.name))
            fail("tensor[" + std::to_string(i) + "].name", at, "duplicate tensor name '" + t.name + "'");
        f_.tensor_index_.emplace(t.name, i);
    }

    // The data section starts at the first aligned offset after the header.
    uint64_t data_offset = pos_ + (f_.alignment_ - pos_ % f_.alignment_) % f_.alignment_;
    if (n_tensors > 0 && data_offset > size_)
        fail("data section", pos_,
             "the file ends at " + std::to_string(size_) + " before the data section starts at " +
                 std::to_string(data_offset));
    f_.data_offset_ = data_offset;
    uint64_t data_size = data_offset <= size_ ? size_ - data_offset : 0;
    for (TensorInfo& t : f_.tensors_) {
        std::string field = "tensor '" + t.name + "'.offset";
        if (t.offset % f_.alignment_ != 0)
            fail(field, data_offset,
                 "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                     std::to_string(f_.alignment_));
        if (t.offset > data_size || t.n_bytes > data_size - t.offset)
            fail(field, data_offset,
                 "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.n_bytes) +
                     ") lies outside the data section of " + std::to_string(data_size) + " bytes (truncated?)");
        t.data = p_ + data_offset + t.offset;
    }
}

// ---------------------------------------------------------------------------------------
// File

File::~File() = default;

std::unique_ptr<File> File::open(const std::string& path) {
    std::unique_ptr<File> f(new File());
    f->path_ = path;
    f->mapping_ = std::make_unique<Mapping>(path);
    f->base_ = f->mapping_->data();
    f->size_ = f->mapping_->size();
    Parser(*f).parse();
    return f;
}

std::unique_ptr<File> File::from_memory(const void* data, size_t size, std::string name) {
    std::unique_ptr<File> f(new File());
    f->path_ = std::move(name);
    f->base_ = static_cast<const uint8_t*>(data);
    f->size_ = size;
    Parser(*f).parse();
    return f;
}

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

int64_t File::find_index(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? -1 : static_cast<int64_t>(it->second);
}

const Value& File::require(std::string_view key) const {
    const Value* v = find(key);
    if (!v) throw Error(path_ + ": missing metadata key '" + std::string(key) + "'", ErrorKind::BadFile);
    return *v;
}

namespace {
// Runs a typed accessor and turns its type error into one that names the key and file.
template <typename F>
auto typed(const std::string& path, std::string_view key, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const Error& e) {
        throw Error(path + ": metadata key '" + std::string(key) + "': " + e.what(), ErrorKind::BadFile);
    }
}
}  // namespace

std::string_view File::get_string(std::string_view key) const {
    const Value& v = require(key);
    return typed(path_, key, [&] { return v.as_string(); });
}

std::string_view File::get_string(std::string_view key, std::string_view fallback) const {
    const Value* v = find(key);
    return v ? typed(path_, key, [&] { return v->as_string(); }) : fallback;
}

int64_t File::get_int(std::string_view key) const {
    const Value& v = require(key);
    return typed(path_, key, [&] { return v.as_int(); });
}

int64_t File::get_int(std::string_view key, int64_t fallback) const {
    const Value* v = find(key);
    return v ? typed(path_, key, [&] { return v->as_int(); }) : fallback;
}

double File::get_float(std::string_view key, double fallback) const {
    const Value* v = find(key);
    return v ? typed(path_, key, [&] { return v->as_float(); }) : fallback;
}

bool File::get_bool(std::string_view key, bool fallback) const {
    const Value* v = find(key);
    return v ? typed(path_, key, [&] { return v->as_bool(); }) : fallback;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace tessera::gguf
