// GGUF v3 writer.
#include "tensor/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace tessera::gguf {

OwnedValue OwnedValue::scalar(ValueType t, const void* p, size_t n) {
    OwnedValue v;
    v.type = t;
    v.bytes.assign(static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    return v;
}

OwnedValue OwnedValue::string(std::string_view s) {
    OwnedValue v;
    v.type = ValueType::STRING;
    v.str = std::string(s);
    return v;
}

OwnedValue OwnedValue::numeric_array(ValueType elem, const void* data, uint64_t count) {
    size_t n = value_type_size(elem);
    if (n == 0) throw Error("numeric_array: element type " + std::string(value_type_name(elem)) + " is not numeric");
    OwnedValue v;
    v.type = ValueType::ARRAY;
    v.elem_type = elem;
    v.count = count;
    v.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n * count);
    return v;
}

OwnedValue OwnedValue::string_array(std::vector<std::string> s) {
    OwnedValue v;
    v.type = ValueType::ARRAY;
    v.elem_type = ValueType::STRING;
    v.count = s.size();
    v.strings = std::move(s);
    return v;
}

OwnedValue OwnedValue::array_of_arrays(std::vector<OwnedValue> items) {
    for (const OwnedValue& it : items)
        if (it.type != ValueType::ARRAY) throw Error("array_of_arrays: every item must be an array");
    OwnedValue v;
    v.type = ValueType::ARRAY;
    v.elem_type = ValueType::ARRAY;
    v.count = items.size();
    v.items = std::move(items);
    return v;
}

OwnedValue OwnedValue::copy_of(const Value& src) {
    switch (src.type()) {
    case ValueType::STRING: return string(src.as_string());
    case ValueType::ARRAY: {
        ValueType elem = src.array_type();
        if (elem == ValueType::STRING) {
            std::vector<std::string> s;
            s.reserve(src.size());
            for (uint64_t i = 0; i < src.size(); ++i) s.emplace_back(src.string_at(i));
            return string_array(std::move(s));
        }
        if (elem == ValueType::ARRAY) {
            std::vector<OwnedValue> items;
            items.reserve(src.size());
            for (uint64_t i = 0; i < src.size(); ++i) items.push_back(copy_of(src.array_at(i)));
            return array_of_arrays(std::move(items));
        }
        return numeric_array(elem, src.array_data(), src.size());
    }
    default: {
        // Scalars: re-read the raw bytes through the typed accessors.
        OwnedValue v;
        v.type = src.type();
        size_t n = value_type_size(src.type());
        v.bytes.resize(n);
        if (is_float_type(src.type())) {
            if (src.type() == ValueType::F32) {
                float f = static_cast<float>(src.as_float());
                std::memcpy(v.bytes.data(), &f, 4);
            } else {
                double d = src.as_float();
                std::memcpy(v.bytes.data(), &d, 8);
            }
        } else if (src.type() == ValueType::I8 || src.type() == ValueType::I16 || src.type() == ValueType::I32 ||
                   src.type() == ValueType::I64) {
            int64_t i = src.as_int();
            std::memcpy(v.bytes.data(), &i, n);  // little-endian: the low bytes
        } else {
            uint64_t u = src.as_uint();
            std::memcpy(v.bytes.data(), &u, n);
        }
        return v;
    }
    }
}

void Writer::set(std::string_view key, OwnedValue value) {
    if (key.empty()) throw Error("GGUF writer: empty key");
    for (auto& kv : kvs_)
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    kvs_.emplace_back(std::string(key), std::move(value));
}

void Writer::remove(std::string_view key) {
    for (auto it = kvs_.begin(); it != kvs_.end(); ++it)
        if (it->first == key) {
            kvs_.erase(it);
            return;
        }
}

void Writer::set_alignment(uint32_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        throw Error("GGUF writer: alignment " + std::to_string(alignment) + " is not a power of two");
    if (!tensors_.empty()) throw Error("GGUF writer: set the alignment before adding tensors");
    alignment_ = alignment;
    set_u32("general.alignment", alignment);
}

void Writer::add_tensor(std::string_view name, DType type, std::span<const int64_t> ne, const void* data) {
    const TypeTraits& tr = type_traits(type);
    if (!tr.known) throw Error("GGUF writer: tensor '" + std::string(name) + "': unknown type");
    if (name.empty()) throw Error("GGUF writer: empty tensor name");
    if (ne.empty() || ne.size() > static_cast<size_t>(kMaxDims))
        throw Error("GGUF writer: tensor '" + std::string(name) + "': 1 to 4 dimensions expected");
    for (const Tensor& t : tensors_)
        if (t.name == name) throw Error("GGUF writer: duplicate tensor name '" + std::string(name) + "'");
    if (ne[0] % tr.block_size != 0)
        throw Error("GGUF writer: tensor '" + std::string(name) + "': row length " + std::to_string(ne[0]) +
                    " is not a multiple of the " + std::string(tr.name) + " block size");
    uint64_t n = 1;
    for (int64_t d : ne) {
        if (d < 0) throw Error("GGUF writer: tensor '" + std::string(name) + "': negative dimension");
        n *= static_cast<uint64_t>(d);
    }
    uint64_t n_bytes = n / tr.block_size * tr.type_size;
    uint64_t offset = (data_size_ + alignment_ - 1) / alignment_ * alignment_;
    tensors_.push_back(Tensor{std::string(name), type, std::vector<int64_t>(ne.begin(), ne.end()), data, n_bytes, offset});
    data_size_ = offset + n_bytes;
}

namespace {

struct VectorSink {
    std::vector<uint8_t>& out;
    void put(const void* p, size_t n) {
        if (n == 0) return;
        size_t at = out.size();
        out.resize(at + n);
        std::memcpy(out.data() + at, p, n);
    }
    uint64_t pos() const { return out.size(); }
};

struct FileSink {
    std::FILE* f;
    const std::string& path;
    uint64_t written = 0;
    void put(const void* p, size_t n) {
        if (n && std::fwrite(p, 1, n, f) != n)
            throw Error(path + ": write failed (disk full?)", ErrorKind::Io);
        written += n;
    }
    uint64_t pos() const { return written; }
};

template <typename Sink, typename T>
void put_scalar(Sink& s, T v) {
    s.put(&v, sizeof v);
}

template <typename Sink>
void put_string(Sink& s, std::string_view str) {
    put_scalar<Sink, uint64_t>(s, str.size());
    s.put(str.data(), str.size());
}

template <typename Sink>
void put_value(Sink& s, const OwnedValue& v, bool with_type) {
    if (with_type) put_scalar<Sink, uint32_t>(s, static_cast<uint32_t>(v.type));
    switch (v.type) {
    case ValueType::STRING: put_string(s, v.str); return;
    case ValueType::ARRAY:
        put_scalar<Sink, uint32_t>(s, static_cast<uint32_t>(v.elem_type));
        put_scalar<Sink, uint64_t>(s, v.count);
        if (v.elem_type == ValueType::STRING)
            for (const std::string& str : v.strings) put_string(s, str);
        else if (v.elem_type == ValueType::ARRAY)
            for (const OwnedValue& it : v.items) put_value(s, it, false);
        else
            s.put(v.bytes.data(), v.bytes.size());
        return;
    default: s.put(v.bytes.data(), v.bytes.size()); return;
    }
}

template <typename Sink>
void put_padding(Sink& s, uint64_t alignment) {
    static const uint8_t zeros[64] = {};
    uint64_t pad = (alignment - s.pos() % alignment) % alignment;
    while (pad > 0) {
        uint64_t n = pad < sizeof zeros ? pad : sizeof zeros;
        s.put(zeros, n);
        pad -= n;
    }
}

}  // namespace

template <typename Sink>
void Writer::emit(Sink& s) const {
    put_scalar<Sink, uint32_t>(s, kMagic);
    put_scalar<Sink, uint32_t>(s, 3);
    put_scalar<Sink, uint64_t>(s, tensors_.size());
    put_scalar<Sink, uint64_t>(s, kvs_.size());
    for (const auto& [key, value] : kvs_) {
        put_string(s, key);
        put_value(s, value, true);
    }
    for (const Tensor& t : tensors_) {
        put_string(s, t.name);
        put_scalar<Sink, uint32_t>(s, static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) put_scalar<Sink, uint64_t>(s, static_cast<uint64_t>(d));
        put_scalar<Sink, uint32_t>(s, static_cast<uint32_t>(t.type));
        put_scalar<Sink, uint64_t>(s, t.offset);
    }
    put_padding(s, alignment_);
    uint64_t data_start = s.pos();
    for (const Tensor& t : tensors_) {
        put_padding(s, alignment_);
        if (s.pos() - data_start != t.offset) throw Error("GGUF writer: internal offset mismatch", ErrorKind::Internal);
        s.put(t.data, t.n_bytes);
    }
}

std::vector<uint8_t> Writer::to_bytes() const {
    std::vector<uint8_t> out;
    VectorSink s{out};
    emit(s);
    return out;
}

void Writer::write(const std::string& path) const {
    AtomicFile out(path);
    FileSink s{out.file(), path};
    emit(s);
    out.commit();
}

}  // namespace tessera::gguf
