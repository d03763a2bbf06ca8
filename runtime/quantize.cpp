// Model conversion between storage types (see quantize.h).
#include "runtime/quantize.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>

#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/gguf.h"
#include "tensor/gguf_writer.h"
#include "tensor/quant/quant.h"

namespace tessera {

namespace {

// llama.cpp's general.file_type values, so other tools read the files the same way.
enum FileType : uint32_t {
    kAllF32 = 0,
    kF16 = 1,
    kQ4_0 = 2,
    kQ4_1 = 3,
    kQ8_0 = 7,
    kQ5_0 = 8,
    kQ5_1 = 9,
    kQ2_K = 10,
    kQ3_K_M = 12,
    kQ4_K_S = 14,
    kQ4_K_M = 15,
    kQ5_K_S = 16,
    kQ5_K_M = 17,
    kQ6_K = 18,
    kBF16 = 32,
};

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The layers whose attn_v / ffn_down get more bits: the first and last eighth, and every
// third layer between them.
bool favoured_layer(int i, int n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

// A type whose block divides `n`, as close to `t` in bits as the legacy formats allow.
DType fitting_type(DType t, int64_t n) {
    if (n % static_cast<int64_t>(type_traits(t).block_size) == 0) return t;
    DType legacy = DType::F16;
    switch (t) {
        case DType::Q2_K:
        case DType::Q3_K: legacy = DType::Q4_0; break;
        case DType::Q4_K: legacy = DType::Q5_0; break;
        case DType::Q5_K: legacy = DType::Q5_1; break;
        case DType::Q6_K: legacy = DType::Q8_0; break;
        default: break;
    }
    return n % static_cast<int64_t>(type_traits(legacy).block_size) == 0 ? legacy : DType::F16;
}

int layer_of(std::string_view name) {
    if (name.substr(0, 4) != "blk.") return -1;
    int v = 0;
    size_t i = 4;
    if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
    for (; i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); ++i) v = v * 10 + (name[i] - '0');
    return v;
}

}  // namespace

const std::vector<QuantMix>& quant_mixes() {
    static const std::vector<QuantMix> mixes = {
        {"Q4_0", DType::Q4_0, DType::Q4_0, DType::Q6_K, kQ4_0, "4.5 bits per weight, legacy blocks of 32"},
        {"Q4_1", DType::Q4_1, DType::Q4_1, DType::Q6_K, kQ4_1, "5.0 bpw, legacy with a minimum"},
        {"Q5_0", DType::Q5_0, DType::Q5_0, DType::Q6_K, kQ5_0, "5.5 bpw, legacy"},
        {"Q5_1", DType::Q5_1, DType::Q5_1, DType::Q6_K, kQ5_1, "6.0 bpw, legacy with a minimum"},
        {"Q8_0", DType::Q8_0, DType::Q8_0, DType::Q8_0, kQ8_0, "8.5 bpw, nearly lossless"},
        {"Q2_K", DType::Q2_K, DType::Q3_K, DType::Q6_K, kQ2_K, "about 2.6 bpw, Q3_K where it matters"},
        {"Q3_K_M", DType::Q3_K, DType::Q4_K, DType::Q6_K, kQ3_K_M, "about 3.9 bpw mix"},
        {"Q4_K_S", DType::Q4_K, DType::Q4_K, DType::Q6_K, kQ4_K_S, "4.5 bpw, Q4_K everywhere but the output"},
        {"Q4_K_M", DType::Q4_K, DType::Q6_K, DType::Q6_K, kQ4_K_M, "about 4.9 bpw mix, the usual choice"},
        {"Q5_K_S", DType::Q5_K, DType::Q5_K, DType::Q6_K, kQ5_K_S, "5.5 bpw, Q5_K everywhere but the output"},
        {"Q5_K_M", DType::Q5_K, DType::Q6_K, DType::Q6_K, kQ5_K_M, "about 5.7 bpw mix"},
        {"Q6_K", DType::Q6_K, DType::Q6_K, DType::Q6_K, kQ6_K, "6.6 bpw"},
        {"F16", DType::F16, DType::F16, DType::F16, kF16, "16 bits, lossless for F16 sources"},
        {"BF16", DType::BF16, DType::BF16, DType::BF16, kBF16, "16 bits, the range of F32"},
        {"F32", DType::F32, DType::F32, DType::F32, kAllF32, "32 bits"},
    };
    return mixes;
}

const QuantMix* find_quant_mix(std::string_view name) {
    for (const QuantMix& m : quant_mixes())
        if (iequals(m.name, name)) return &m;
    return nullptr;
}

DType choose_quant_type(const QuantMix& mix, std::string_view name, int n_dims, const int64_t* ne, int layer,
                        int n_layer, bool has_output, bool pure) {
    // Vectors (norms, biases, rope factors) and non-weights stay F32.
    if (n_dims < 2 || !ends_with(name, ".weight")) return DType::F32;
    DType t = mix.base;
    if (!pure) {
        const bool output = name == "output.weight" || (!has_output && name == "token_embd.weight");
        if (output) {
            t = mix.output;
        } else if (layer >= 0 && (name.find(".attn_v.") != std::string_view::npos ||
                                  name.find(".ffn_down.") != std::string_view::npos)) {
            if (favoured_layer(layer, n_layer)) t = mix.more_bits;
        }
    }
    return fitting_type(t, ne[0]);
}

QuantizeReport quantize_file(const std::string& in_path, const std::string& out_path, const QuantizeOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const QuantMix* mix = find_quant_mix(opt.type);
    if (!mix) {
        std::string names;
        for (const QuantMix& m : quant_mixes()) names += std::string(names.empty() ? "" : ", ") + m.name;
        throw Error("unknown quantization type '" + opt.type + "' (known: " + names + ")", ErrorKind::InvalidArgument);
    }
    std::error_code ec;
    if (std::filesystem::exists(out_path, ec) && std::filesystem::equivalent(in_path, out_path, ec))
        throw Error("the output file '" + out_path + "' is the input file", ErrorKind::InvalidArgument);

    auto file = gguf::File::open(in_path);
    AtomicFile::check_writable(out_path);  // before the work, not after it
    const std::string arch(file->get_string("general.architecture", ""));
    const int n_layer = arch.empty() ? 0 : static_cast<int>(file->get_int(arch + ".block_count", 0));
    const bool has_output = file->find_tensor("output.weight") != nullptr;

    gguf::Writer w;
    for (size_t i = 0; i < file->n_kv(); ++i) {
        const gguf::KeyValue& kv = file->kv(i);
        if (kv.key == "general.alignment") continue;
        w.set(kv.key, gguf::OwnedValue::copy_of(kv.value));
    }
    w.set_u32("general.file_type", mix->file_type);
    w.set_u32("general.quantization_version", 2);

    QuantizeReport report;
    report.bytes_in = file->file_size();
    const int threads = opt.n_threads > 0 ? opt.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    (void)threads;  // unused without OpenMP
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < file->n_tensors(); ++i) total += static_cast<uint64_t>(file->tensor(i).n_elements);

    std::vector<std::unique_ptr<std::vector<uint8_t>>> blobs;
    for (size_t i = 0; i < file->n_tensors(); ++i) {
        const gguf::TensorInfo& ti = file->tensor(i);
        DType dst = choose_quant_type(*mix, ti.name, ti.n_dims, ti.ne, layer_of(ti.name), n_layer, has_output, opt.pure);
        // Vectors and tensors already of the chosen type are copied as they are; a
        // quantized vector (rare) is kept too rather than expanded.
        if (ti.n_dims < 2 && ti.type != DType::F32) dst = ti.type;
        const int64_t row = ti.ne[0];
        const int64_t rows = ti.n_elements / std::max<int64_t>(row, 1);
        if (dst == ti.type) {
            w.add_tensor(ti.name, ti.type, std::span<const int64_t>(ti.ne, static_cast<size_t>(ti.n_dims)), ti.data);
        } else {
            if (!quant::has_reference(ti.type))
                throw Error("tensor '" + ti.name + "' is " + std::string(type_name(ti.type)) +
                                ", which cannot be converted here",
                            ErrorKind::Unsupported);
            const size_t src_row = row_size(ti.type, row), dst_row = row_size(dst, row);
            auto blob = std::make_unique<std::vector<uint8_t>>(dst_row * static_cast<size_t>(rows));
            std::atomic<bool> failed{false};
            std::string failure;
#pragma omp parallel num_threads(threads)
            {
                std::vector<float> buf(static_cast<size_t>(row));
#pragma omp for schedule(dynamic, 16)
                for (int64_t r = 0; r < rows; ++r) {
                    if (failed.load(std::memory_order_relaxed)) continue;
                    try {
                        quant::dequantize_row(ti.type, ti.data + static_cast<size_t>(r) * src_row, buf.data(), row);
                        quant::quantize_row(dst, buf.data(), blob->data() + static_cast<size_t>(r) * dst_row, row);
                    } catch (const std::exception& e) {
#pragma omp critical
                        if (!failed.exchange(true)) failure = e.what();
                    }
                }
            }
            if (failed) throw Error("tensor '" + ti.name + "': " + failure, ErrorKind::BadFile);
            w.add_tensor(ti.name, dst, std::span<const int64_t>(ti.ne, static_cast<size_t>(ti.n_dims)), blob->data());
            blobs.push_back(std::move(blob));
            ++report.n_quantized;
        }
        ++report.n_tensors;
        done += static_cast<uint64_t>(ti.n_elements);
        if (opt.progress && !opt.progress(total ? static_cast<float>(done) / static_cast<float>(total) : 1.0f))
            throw Error(in_path + ": quantization cancelled", ErrorKind::InvalidArgument);
    }
    w.write(out_path);
    report.bytes_out = std::filesystem::file_size(out_path, ec);
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return report;
}

}  // namespace tessera
