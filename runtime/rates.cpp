// Measuring the speeds of rates.h: the real kernels on synthetic weights of each type.
#include "runtime/rates.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/kernels/repack.h"
#include "runtime/loader.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"
#include "tensor/graph.h"
#include "tensor/quant/quant.h"
#include "tensor/scheduler.h"

namespace tessera::runtime {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kChain = 64;                              // nodes in the chain that measures a node's fixed cost

// Weights a decoding measurement reads, to be well past any cache: 256 MiB, or eight times a
// CPU's last-level cache where that is larger (a server's 100 MiB L3 would hold a good part
// of 256 MiB and make decoding look faster than a model's gigabytes stream), at most 1 GiB.
size_t matvec_bytes(const Backend& dev) {
    size_t bytes = size_t{256} << 20;
#ifdef _SC_LEVEL3_CACHE_SIZE
    if (dev.host_memory()) {
        const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        if (l3 > 0) bytes = std::clamp<size_t>(8 * static_cast<size_t>(l3), bytes, size_t{1} << 30);
    }
#endif
    return bytes;
}

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Runs `g` to warm up, then until `budget` seconds passed (at least 3, at most 20 runs; one
// when a run takes longer than the budget); the median run in seconds. Reading one output
// waits for the device.
double time_graph(Scheduler& s, Graph& g, Tensor* sync, double budget) {
    float sink[1];
    auto run = [&] {
        const auto t0 = Clock::now();
        s.compute(g);
        s.read(sync, sink, sizeof sink);
        return seconds(t0);
    };
    if (run() > budget) return run();
    std::vector<double> t;
    const auto start = Clock::now();
    while (t.size() < 3 || (t.size() < 20 && seconds(start) < budget)) t.push_back(run());
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

void fill_inputs(Tensor* x) {
    float* p = static_cast<float*>(x->data);
    for (int64_t i = 0; i < x->n_elements(); ++i) p[i] = 0.01f * static_cast<float>(i % 97) - 0.48f;
}

// An F32 input made once in dev's memory, so that a measurement times the device's kernels
// and not the copy of their inputs from the host (in a model, activations stay on the device).
Tensor* resident_input(Graph& g, Backend& dev, std::vector<std::unique_ptr<Buffer>>& keep, std::vector<int64_t> ne,
                       const char* name) {
    Tensor* x = g.new_tensor(DType::F32, ne, name);
    Tensor* xs[] = {x};
    keep.push_back(allocate_tensors(dev, xs, BufferUsage::Cache, 256));
    std::vector<float> host(static_cast<size_t>(x->n_elements()));
    for (size_t i = 0; i < host.size(); ++i) host[i] = 0.01f * static_cast<float>(i % 97) - 0.48f;
    dev.upload(x, host.data(), 0, x->n_bytes());
    return x;
}

// Synthetic weights on one device: for each matrix, one real row quantized and repeated, in
// the layout the device computes with (the CPU's interleaved one where the loader makes it).
struct Weights {
    Graph g;  // holds the weight tensors
    std::vector<Tensor*> w;
    std::vector<std::unique_ptr<Buffer>> buffers;
    size_t bytes = 0;
};

Tensor* add_weight(Weights& ws, Backend& dev, DType type, int64_t k, int64_t n) {
    const size_t row_bytes = row_size(type, k);
    // Rows are cut to what one buffer of the device holds; the rates count the bytes used.
    n = std::min<int64_t>(n, static_cast<int64_t>(dev.max_buffer_bytes() / row_bytes) / 16 * 16);
    if (n < 16) throw Error("a row of " + std::to_string(k) + " elements does not fit a buffer", ErrorKind::Internal);
    Tensor* t = ws.g.new_tensor(type, {k, n}, "w");
    std::vector<float> row(static_cast<size_t>(k));
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 0.02f);
    for (float& v : row) v = nd(rng);
    std::vector<uint8_t> one(row_bytes);
    quant::quantize_row(type, row.data(), one.data(), k);
    std::vector<uint8_t> host(row_bytes * static_cast<size_t>(n));
    for (int64_t r = 0; r < n; ++r) std::copy(one.begin(), one.end(), host.begin() + static_cast<ptrdiff_t>(r * row_bytes));
    if (dev.host_memory() && cpu_wants_r16(*t, "w")) {
        std::vector<uint8_t> packed(cpu::kernels::r16_bytes(type, k, n));
        cpu::kernels::repack_r16(type, host.data(), packed.data(), k, n);
        host.swap(packed);
        t->flags |= kFlagRepacked;
    }
    if (!dev.host_memory()) t->flags |= kFlagProductWeight;  // as the loader marks a model's matrices
    ws.buffers.push_back(dev.alloc_buffer(host.size(), BufferUsage::Weights));
    t->data = ws.buffers.back()->base();
    t->buffer = ws.buffers.back().get();
    dev.upload(t, host.data(), 0, host.size());
    ws.w.push_back(t);
    ws.bytes += row_bytes * static_cast<size_t>(n);
    return t;
}

std::vector<Backend*> order_of(Backend& dev, Backend& cpu) {
    std::vector<Backend*> order = {&dev};
    if (&dev != &cpu) order.push_back(&cpu);
    return order;
}

// The products of weights w (copies of one layer's matrices, per_copy each) over `tokens`
// tokens; seconds per copy.
double time_products(Backend& dev, Backend& cpu, std::span<Tensor* const> w, size_t per_copy, int64_t tokens,
                     int n_threads, double budget) {
    Graph g;
    std::vector<std::unique_ptr<Buffer>> keep;
    std::map<int64_t, Tensor*> inputs;  // one per row length
    Tensor* last = nullptr;
    // Each product reads the one before where the lengths allow (in a layer most do): a CPU
    // team then waits between them as it does in a model, instead of streaming one product
    // after another.
    for (Tensor* t : w) {
        Tensor* x = last && last->ne[0] == t->ne[0] ? last : nullptr;
        if (!x) {
            Tensor*& in = inputs[t->ne[0]];
            if (!in) in = resident_input(g, dev, keep, {t->ne[0], tokens}, "x");
            x = in;
        }
        g.mark_output(last = g.mul_mat(t, x));
    }
    Scheduler s(order_of(dev, cpu));
    s.set_threads(n_threads);
    s.plan(g);
    return time_graph(s, g, last, budget) / static_cast<double>(w.size() / per_copy);
}

// A layer's nodes besides its products (and, over a prompt, its attention) on `tokens` rows,
// in seconds: chains of dependent nodes of the kinds a layer has at the model's widths, per
// node, times their count in a layer: norms, their scales, RoPE, residual adds and cache
// writes as wide as the model (and the attention over a short cache, when decoding), and a
// gated activation as wide as the feed-forward layer.
double time_ops(Backend& dev, Backend& cpu, const ModelSizes& m, int64_t tokens, int n_threads) {
    auto per_node = [&](int64_t width, bool gated) {
        Graph g;
        std::vector<std::unique_ptr<Buffer>> keep;
        Tensor* x = resident_input(g, dev, keep, {width, tokens}, "x");
        const int n = gated ? kChain / 8 : kChain;
        Tensor* h = x;
        for (int i = 0; i < n; ++i) h = gated ? g.swiglu(h, x) : i % 2 ? g.add(h, x) : g.rms_norm(h, 1e-5f);
        g.mark_output(h);
        Scheduler s(order_of(dev, cpu));
        s.set_threads(n_threads);
        s.plan(g);
        return time_graph(s, g, h, 0.1) / n;
    };
    const int wide = tokens > 1 ? kLayerWideNodes : kLayerWideNodes + 1;
    return wide * per_node(m.n_embd, false) + per_node(m.n_ff > 0 ? m.n_ff : m.n_embd, true);
}

// A layer's attention over a prompt step of n tokens from an empty cache (causal mask), the
// keys and values in F16 on the device as a KV cache is.
double time_attention(Backend& dev, Backend& cpu, const ModelSizes& m, int64_t n, int n_threads) {
    Graph g;
    Tensor* k = g.new_tensor(DType::F16, {m.head_dim, n, m.n_head_kv}, "k");
    Tensor* v = g.new_tensor(DType::F16, {m.head_dim_v, n, m.n_head_kv}, "v");
    Tensor* kv[] = {k, v};
    auto buf = allocate_tensors(dev, kv, BufferUsage::Cache, 256);
    std::vector<uint16_t> host(static_cast<size_t>(std::max(k->n_elements(), v->n_elements())), 0x3c00);  // 1.0
    dev.upload(k, host.data(), 0, k->n_bytes());
    dev.upload(v, host.data(), 0, v->n_bytes());
    std::vector<std::unique_ptr<Buffer>> keep;
    Tensor* q = resident_input(g, dev, keep, {m.head_dim, n, m.n_head, 1}, "q");
    Tensor* mask = g.new_tensor(DType::F16, {n, n}, "mask");
    Tensor* masks[] = {mask};
    keep.push_back(allocate_tensors(dev, masks, BufferUsage::Cache, 256));
    std::vector<uint16_t> mk(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) mk[static_cast<size_t>(i * n + j)] = j <= i ? 0x0000 : 0xfc00;  // 0 or -inf
    dev.upload(mask, mk.data(), 0, mask->n_bytes());
    Tensor* a = g.flash_attn(q, k, v, mask, 1.0f / std::sqrt(static_cast<float>(m.head_dim)));
    g.mark_output(a);
    Scheduler s(order_of(dev, cpu));
    s.set_threads(n_threads);
    s.plan(g);
    return time_graph(s, g, a, 0.2);
}

// Everything of DeviceRates but the name, for one device.
void measure_device(Backend& dev, Backend& cpu, const ModelSizes& m, int64_t n_batch, int n_threads,
                    DeviceRates& d) {
    const PartSizes& sample = m.layers[m.sample_layer];
    {
        // Decoding: copies of the sample layer past any cache.
        Weights ws;
        // As many as the model's layers weigh, where that is less: a small model decodes out
        // of a large cache and is measured so.
        const size_t layer_bytes = std::max<size_t>(sample.matmul_bytes(), 1);
        size_t model_bytes = 0;
        for (const PartSizes& p : m.layers) model_bytes += p.matmul_bytes();
        const size_t bytes = std::min(matvec_bytes(dev), std::max(model_bytes, layer_bytes));
        const size_t copies = std::clamp<size_t>((bytes + layer_bytes - 1) / layer_bytes, 1, 64);
        for (size_t c = 0; c < copies; ++c)
            for (const PartSizes::Matrix& x : sample.mats) add_weight(ws, dev, x.type, x.k, x.n);
        const size_t per_copy = sample.mats.size();
        const double copy_bytes = static_cast<double>(ws.bytes / copies);
        const double scale = static_cast<double>(sample.matmul_bytes()) / copy_bytes;  // rows cut to a buffer
        d.layer_matvec_us = time_products(dev, cpu, ws.w, per_copy, 1, n_threads, 0.3) * 1e6 * scale;
        // A prompt step over one copy: 64 tokens first; where that is slow already (a large
        // layer on a few cores) its rate stands for the whole step, else the step is timed.
        const std::span<Tensor* const> one(ws.w.data(), per_copy);
        const int64_t probe = std::min<int64_t>(64, n_batch);
        const double t_probe = time_products(dev, cpu, one, per_copy, probe, n_threads, 0.2);
        const double t_step = t_probe > 0.25 ? t_probe * static_cast<double>(n_batch) / static_cast<double>(probe)
                                             : time_products(dev, cpu, one, per_copy, n_batch, n_threads, 0.3);
        d.layer_gemm_us = t_step * 1e6 * scale;
    }
    d.layer_ops_us = time_ops(dev, cpu, m, 1, n_threads) * 1e6;
    d.layer_ops_prompt_us = time_ops(dev, cpu, m, n_batch, n_threads) * 1e6;
    if (m.n_head > 0 && m.n_head_kv > 0 && m.head_dim > 0)
        d.layer_attn_prompt_us = time_attention(dev, cpu, m, n_batch, n_threads) * 1e6;
    if (!m.head.mats.empty()) {
        // The head's type on rows of its length, 32 MiB of them.
        const PartSizes::Matrix& h = m.head.mats.front();
        const int64_t rows = std::max<int64_t>(16, static_cast<int64_t>((size_t{32} << 20) / row_size(h.type, h.k)));
        Weights ws;
        add_weight(ws, dev, h.type, h.k, std::min(rows, h.n));
        d.head_gbs = static_cast<double>(ws.bytes) / time_products(dev, cpu, ws.w, 1, 1, n_threads, 0.2) / 1e9;
    }
}

// A host-to-device copy of 64 MiB, and a small round trip (a seam's copy each way).
void measure_copies(Backend& gpu, Backend& cpu, MachineRates& r) {
    Graph g;
    Tensor* big = g.new_tensor(DType::F32, {16 << 20}, "big");
    Tensor* ts[] = {big};
    auto buf = allocate_tensors(gpu, ts, BufferUsage::Weights, 256);
    std::vector<uint8_t> host(big->n_bytes(), 1);
    gpu.upload(big, host.data(), 0, host.size());
    std::vector<double> t;
    for (int i = 0; i < 5; ++i) {
        const auto t0 = Clock::now();
        gpu.upload(big, host.data(), 0, host.size());
        gpu.synchronize();
        t.push_back(seconds(t0));
    }
    std::sort(t.begin(), t.end());
    r.h2d_gbs = static_cast<double>(host.size()) / t[t.size() / 2] / 1e9;
    // From page-locked memory, on the copy queue, where the device has both.
    if (auto pinned = gpu.alloc_pinned_host(cpu, host.size(), BufferUsage::Weights)) {
        std::memset(pinned->base(), 1, host.size());
        t.clear();
        for (int i = 0; i < 6; ++i) {
            const auto t0 = Clock::now();
            const Backend::HostCopy c{big, pinned->base(), host.size()};
            gpu.wait_uploads(gpu.upload_async({&c, 1}));
            gpu.synchronize();
            if (i > 0) t.push_back(seconds(t0));  // the first one warms up
        }
        std::sort(t.begin(), t.end());
        r.stream_gbs = static_cast<double>(host.size()) / t[t.size() / 2] / 1e9;
    }

    Weights ws;
    Tensor* w = add_weight(ws, gpu, DType::F32, 4096, 16);
    Graph rg;
    Tensor* x = rg.input(DType::F32, {4096, 1}, "x");
    Tensor* y = rg.mul_mat(w, x);
    rg.mark_output(y);
    Scheduler s({&gpu, &cpu});
    s.plan(rg);
    fill_inputs(x);
    const double round_trip = time_graph(s, rg, y, 0.05) * 1e6;
    r.seam_us = std::max(0.1, (round_trip - r.gpu.layer_ops_us / (kLayerWideNodes + 2)) / 2.0);
}

// ---- the cache ----

std::string device_key(Backend& b, int n_threads) {
    std::ostringstream k;
    if (b.host_memory()) {
        k << b.name() << ':' << cpu::kernels::active().target << ":t" << n_threads;
    } else {
        k << b.name() << ':' << (b.memory().total >> 20) << "MiB";
    }
    return k.str();
}

struct Cache {
    std::map<std::string, double> values;  // "device\tshapes\tmeasure" -> value
    bool changed = false;
};

std::mutex g_cache_mu;
const std::string kCacheVersion = "v4\t";  // lines of other versions are measured again

Cache read_cache(const std::string& path) {
    Cache c;
    if (path.empty()) return c;
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line)) {
        // version \t device key \t measure \t value
        // v4 \t device \t shapes \t measure \t value (v2: copies were timed without the copy
        // queue; v3: CUDA decoding before its block-per-row kernels, split rows and fusions)
        if (line.rfind(kCacheVersion, 0) != 0) continue;
        const size_t tab = line.rfind('\t');
        if (tab <= 3) continue;
        const std::string value = line.substr(tab + 1);
        char* end = nullptr;
        const double v = std::strtod(value.c_str(), &end);
        if (end != value.c_str() && v > 0) c.values[line.substr(3, tab - 3)] = v;
    }
    return c;
}

void write_cache(const std::string& path, const Cache& c) {
    if (path.empty() || !c.changed) return;
    try {  // a cache that cannot be written costs only a measurement next time
        std::filesystem::create_directories(std::filesystem::path(path).parent_path());
        std::string text;
        for (const auto& [k, v] : c.values) text += kCacheVersion + k + '\t' + std::to_string(v) + '\n';
        AtomicFile f(path);
        f.write(text);
        f.commit();
    } catch (const std::exception&) {
    }
}

}  // namespace

std::string rates_cache_path() {
    if (const char* p = std::getenv("TESSERA_RATES_FILE"); p && *p) return p;
    const char* home = std::getenv("HOME");
    if (!home || !*home) return {};
    return (std::filesystem::path(home) / ".cache/tessera/rates.tsv").string();
}

// What identifies the measured shapes: the sample layer's matrices and the head's.
std::string shape_key(const ModelSizes& m, int64_t n_batch) {
    std::ostringstream k;
    k << "b" << n_batch << ":e" << m.n_embd;
    for (const PartSizes::Matrix& x : m.layers[m.sample_layer].mats)
        k << ':' << type_name(x.type) << 'x' << x.k << 'x' << x.n;
    if (!m.head.mats.empty()) k << ":head" << type_name(m.head.mats.front().type) << 'x' << m.head.mats.front().k;
    return k.str();
}

MachineRates machine_rates(Backend& cpu, Backend* gpu, const ModelSizes& m, int64_t n_batch,
                           const RatesOptions& options) {
    MachineRates r;
    r.cpu.name = cpu.name();
    if (gpu) r.gpu.name = gpu->name();
    if (m.layers.empty()) return r;
    std::lock_guard<std::mutex> lock(g_cache_mu);
    const int n_threads = options.n_threads > 0 ? options.n_threads
                                                : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    const std::string path = options.use_cache ? rates_cache_path() : std::string();
    Cache cache = read_cache(path);
    const std::string shapes = shape_key(m, n_batch);
    bool noted = false;
    // Reads device b's rates from the cache, or measures them all.
    auto device = [&](Backend& b, DeviceRates& d) {
        const std::string key = device_key(b, n_threads) + '\t' + shapes + '\t';
        double* fields[] = {&d.layer_matvec_us, &d.layer_gemm_us, &d.layer_ops_us, &d.layer_ops_prompt_us,
                            &d.layer_attn_prompt_us, &d.head_gbs};
        const char* names[] = {"layer_matvec_us", "layer_gemm_us", "layer_ops_us", "layer_ops_prompt_us",
                               "layer_attn_prompt_us", "head_gbs"};
        constexpr size_t kFields = 6;
        bool all = true;
        for (size_t i = 0; i < kFields; ++i) {
            auto it = cache.values.find(key + names[i]);
            if (it == cache.values.end()) all = false;
            else *fields[i] = it->second;
        }
        if (all || !options.measure) return;
        if (!noted && options.note) {
            options.note("measuring this machine's speeds for the model's shapes (once; kept in " +
                         (path.empty() ? std::string("no file") : path) + ")");
            noted = true;
        }
        measure_device(b, cpu, m, n_batch, n_threads, d);
        for (size_t i = 0; i < kFields; ++i)
            if (*fields[i] > 0) cache.values[key + names[i]] = *fields[i];
        cache.changed = true;
    };
    device(cpu, r.cpu);
    if (gpu) {
        device(*gpu, r.gpu);
        const std::string key = device_key(*gpu, n_threads) + "\tcopies\t";
        auto h2d = cache.values.find(key + "h2d_gbs"), seam = cache.values.find(key + "seam_us");
        if (h2d != cache.values.end() && seam != cache.values.end()) {
            r.h2d_gbs = h2d->second;
            r.seam_us = seam->second;
            auto stream = cache.values.find(key + "stream_gbs");
            r.stream_gbs = stream != cache.values.end() ? stream->second : 0.0;
        } else if (options.measure) {
            measure_copies(*gpu, cpu, r);
            cache.values[key + "h2d_gbs"] = r.h2d_gbs;
            cache.values[key + "seam_us"] = r.seam_us;
            if (r.stream_gbs > 0) cache.values[key + "stream_gbs"] = r.stream_gbs;
            cache.changed = true;
        }
    }
    write_cache(path, cache);
    return r;
}

}  // namespace tessera::runtime
