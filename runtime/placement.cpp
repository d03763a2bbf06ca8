// The cost model behind -ngl auto and `tessera fit` (placement.h).
#include "runtime/placement.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "tensor/error.h"

namespace tessera::runtime {

namespace {

bool is_matrix(const gguf::TensorInfo& t) {
    return t.n_dims == 2 && t.name.find("norm") == std::string::npos && t.name.find("rope") == std::string::npos;
}

void add(PartSizes& p, const gguf::TensorInfo& t) {
    p.weight_bytes += t.n_bytes;
    if (is_matrix(t)) p.mats.push_back({t.type, t.ne[0], t.ne[1], static_cast<size_t>(t.n_bytes)});
}

// Microseconds layer `l` takes on device d for a step of n tokens: the sample layer's measured
// products scaled by this layer's bytes (decoding) or elements (a prompt), and its other nodes.
double layer_us(const ModelSizes& m, size_t l, const DeviceRates& d, int64_t n, int64_t n_batch) {
    const PartSizes& sample = m.layers[m.sample_layer];
    const PartSizes& p = m.layers[l];
    if (n <= 1) {
        const double bytes = static_cast<double>(sample.matmul_bytes());
        return d.layer_ops_us + (bytes > 0 ? d.layer_matvec_us * static_cast<double>(p.matmul_bytes()) / bytes : 0.0);
    }
    const double params = sample.matmul_params();
    const double steps = static_cast<double>(n) / static_cast<double>(n_batch);
    double us = steps * (d.layer_ops_prompt_us + (params > 0 ? d.layer_gemm_us * p.matmul_params() / params : 0.0));
    us += steps * d.layer_attn_prompt_us;
    return us;
}

// A CPU-resident layer's prompt step with its weights sent to the GPU (Scheduler::set_offload):
// the copy of its products' weights, the whole layer there, and the batch's keys and values
// written into its host KV cache on the CPU (F32 there, the cells in F16 back for the
// attention, each way a seam), at the rate of the CPU's other nodes as wide. Where the GPU
// has page-locked memory, the weights' copy runs beside the previous layer's work, so the
// layer takes the longer of the two, and the keys and values cross at that rate too.
double streamed_layer_us(const ModelSizes& m, size_t l, const MachineRates& r, int64_t n, int64_t n_batch) {
    const double kv = static_cast<double>(n) * static_cast<double>(m.n_head_kv * (m.head_dim + m.head_dim_v));
    const double link_gbs = r.stream_gbs > 0 ? r.stream_gbs : r.h2d_gbs;
    double work = kv * (4.0 + 2.0) / (link_gbs * 1e3) + 4 * r.seam_us;
    const double cpu_elements = static_cast<double>(n_batch) * static_cast<double>(kLayerWideNodes * m.n_embd + m.n_ff);
    if (cpu_elements > 0) work += r.cpu.layer_ops_prompt_us * kv / cpu_elements;
    work += layer_us(m, l, r.gpu, n, n_batch);
    const double bytes = static_cast<double>(m.layers[l].matmul_bytes());
    if (r.stream_gbs > 0) return std::max(work, bytes / (r.stream_gbs * 1e3));
    return work + bytes / (r.h2d_gbs * 1e3);
}

// A step of n tokens with the last `ngl` layers and the head on `n_gpus` GPUs alike, in
// microseconds.
double step_us(const ModelSizes& m, const MachineRates& r, int32_t ngl, int n_gpus, int64_t n, int64_t n_batch) {
    const int32_t n_layer = static_cast<int32_t>(m.layers.size());
    const int64_t stream_from = ngl > 0 ? offload_min_batch(m, r, n_batch) : 0;
    double us = 0;
    for (int32_t il = 0; il < n_layer; ++il) {
        const size_t l = static_cast<size_t>(il);
        if (il >= n_layer - ngl)
            us += layer_us(m, l, r.gpu, n, n_batch);
        else if (stream_from > 0 && n >= stream_from)
            us += streamed_layer_us(m, l, r, n, n_batch);
        else
            us += layer_us(m, l, r.cpu, n, n_batch);
    }
    // The head computes the last token's logits only (a decoding product).
    const DeviceRates& hd = ngl > 0 ? r.gpu : r.cpu;
    if (hd.head_gbs > 0) us += static_cast<double>(m.head.matmul_bytes()) / (hd.head_gbs * 1e3);
    // Seams: the embeddings come from the CPU and the logits go back to it.
    if (ngl > 0 && r.h2d_gbs > 0) {
        const double activations = static_cast<double>(n) * static_cast<double>(m.n_embd) * 4.0;
        us += r.seam_us + activations / (r.h2d_gbs * 1e3);
        us += r.seam_us + static_cast<double>(m.n_vocab) * 4.0 / (r.h2d_gbs * 1e3);
        // A crossing between two GPUs, counted as through host memory: down and up again (a
        // peer copy between CUDA devices takes less).
        us += (n_gpus - 1) * 2.0 * (r.seam_us + activations / (r.h2d_gbs * 1e3));
    }
    return us;
}

}  // namespace

int64_t offload_min_batch(const ModelSizes& m, const MachineRates& r, int64_t n_batch) {
    if (m.layers.empty() || !r.cpu.measured() || !r.gpu.measured() || r.h2d_gbs <= 0) return 0;
    const size_t l = m.sample_layer;
    for (int64_t n = 1; n <= n_batch; n = n < 8 ? n + 1 : n + n / 8)
        if (streamed_layer_us(m, l, r, n, n_batch) < layer_us(m, l, r.cpu, n, n_batch)) return n;
    return 0;
}

size_t PartSizes::matmul_bytes() const {
    size_t n = 0;
    for (const Matrix& x : mats) n += x.bytes;
    return n;
}

double PartSizes::matmul_params() const {
    double n = 0;
    for (const Matrix& x : mats) n += static_cast<double>(x.k) * static_cast<double>(x.n);
    return n;
}

ModelSizes model_sizes(const gguf::File& f, const models::HParams& hp) {
    ModelSizes m;
    // Every layer has tensors: a count beyond the file's tensors is a broken header.
    if (hp.n_layer < 0 || static_cast<size_t>(hp.n_layer) > f.n_tensors())
        throw Error(f.path() + ": " + std::to_string(hp.n_layer) + " layers, but the file holds " +
                        std::to_string(f.n_tensors()) + " tensors",
                    ErrorKind::BadFile);
    m.layers.resize(static_cast<size_t>(hp.n_layer));
    const bool tied = f.find_tensor("output.weight") == nullptr;
    for (size_t i = 0; i < f.n_tensors(); ++i) {
        const gguf::TensorInfo& t = f.tensor(i);
        m.total_bytes += t.n_bytes;
        if (t.name.rfind("blk.", 0) == 0) {
            const long il = std::strtol(t.name.c_str() + 4, nullptr, 10);
            if (il >= 0 && il < hp.n_layer) add(m.layers[static_cast<size_t>(il)], t);
        } else if (t.name == "token_embd.weight") {
            if (tied)
                add(m.head, t);
            else
                m.embd_bytes += t.n_bytes;
        } else {
            add(m.head, t);
        }
    }
    m.sample_layer = m.layers.empty() ? 0 : m.layers.size() / 2;
    const int64_t kv_heads = std::max<int64_t>(hp.n_head_kv, 0);
    m.kv_bytes_per_cell =
        static_cast<size_t>(kv_heads * (std::max<int64_t>(hp.head_dim_k, 0) + std::max<int64_t>(hp.head_dim_v, 0))) * 2;
    m.layer_is_swa = hp.layer_is_swa;
    m.sliding_window = hp.sliding_window;
    m.n_embd = hp.n_embd;
    m.n_ff = hp.n_ff;
    m.n_vocab = hp.n_vocab;
    m.n_head = hp.n_head;
    m.head_dim = hp.head_dim_k;
    m.head_dim_v = hp.head_dim_v;
    m.n_head_kv = hp.n_head_kv;
    m.n_ctx_train = hp.n_ctx_train;
    return m;
}

size_t compute_bytes_estimate(const ModelSizes& m, int32_t n_batch, bool holds_head) {
    // The residual stream, a normed copy, the attention's q, k, v and output, the FFN's
    // gate, up and product: float rows of n_batch tokens, about this many live at once.
    const double row = static_cast<double>(4 * m.n_embd + 3 * m.n_ff + 2 * m.n_head * m.head_dim);
    double bytes = static_cast<double>(n_batch) * row * 4.0;
    if (holds_head) bytes += static_cast<double>(m.n_vocab) * 4.0 * 2.0;
    return static_cast<size_t>(bytes) + (size_t{16} << 20);  // and the kernels' scratch
}

std::vector<int32_t> split_layers(int32_t n_gpu_layers, const std::vector<double>& split) {
    const size_t n = std::max<size_t>(split.size(), 1);
    double sum = 0;
    for (double w : split) sum += std::max(w, 0.0);
    std::vector<int32_t> counts(n, 0);
    std::vector<std::pair<double, size_t>> remainders;  // (fraction left over, GPU)
    int32_t given = 0;
    for (size_t i = 0; i < n; ++i) {
        const double w = split.empty() ? 1.0 : sum > 0 ? std::max(split[i], 0.0) : 1.0;
        const double exact = static_cast<double>(n_gpu_layers) * w / (sum > 0 ? sum : static_cast<double>(n));
        counts[i] = static_cast<int32_t>(exact);
        given += counts[i];
        remainders.emplace_back(exact - counts[i], i);
    }
    // The layers rounding left over go to the largest remainders, the later GPU on a tie (it
    // holds the head).
    std::sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second > b.second;
    });
    for (size_t k = 0; given < n_gpu_layers; ++k, ++given) ++counts[remainders[k % n].second];
    return counts;
}

Plan plan_for(const ModelSizes& m, const MachineRates& r, const PlanRequest& req, int32_t n_gpu_layers) {
    Plan p;
    p.n_layer = static_cast<int32_t>(m.layers.size());
    const int32_t ngl = r.gpu.name.empty() ? 0 : std::clamp(n_gpu_layers, 0, p.n_layer);
    p.n_gpu_layers = ngl;
    // The GPU layers, GPU by GPU in order; the head on the last GPU holding any.
    const std::vector<int32_t> counts = split_layers(ngl, req.gpu_split);
    p.gpus.resize(counts.size());
    std::vector<int> gpu_of(static_cast<size_t>(p.n_layer), -1);
    size_t head_gpu = 0;
    for (size_t g = 0, il = static_cast<size_t>(p.n_layer - ngl); g < counts.size(); ++g) {
        p.gpus[g].n_layers = counts[g];
        for (int32_t k = 0; k < counts[g]; ++k) gpu_of[il++] = static_cast<int>(g);
        if (counts[g] > 0) head_gpu = g;
    }
    for (int32_t il = 0; il < p.n_layer; ++il) {
        const int g = gpu_of[static_cast<size_t>(il)];
        const bool swa = static_cast<size_t>(il) < m.layer_is_swa.size() && m.layer_is_swa[static_cast<size_t>(il)];
        int64_t cells = req.n_ctx;
        if (swa && m.sliding_window > 0) cells = std::min<int64_t>(cells, m.sliding_window + req.n_batch);
        const size_t kv = m.kv_bytes_per_cell * static_cast<size_t>(cells);
        const size_t w = m.layers[static_cast<size_t>(il)].weight_bytes;
        if (g >= 0) {
            p.gpus[static_cast<size_t>(g)].weight_bytes += w;
            p.gpus[static_cast<size_t>(g)].kv_bytes += kv;
        } else {
            p.cpu_weight_bytes += w;
            p.cpu_kv_bytes += kv;
        }
    }
    (ngl > 0 ? p.gpus[head_gpu].weight_bytes : p.cpu_weight_bytes) += m.head.weight_bytes;
    p.cpu_weight_bytes += m.embd_bytes;
    p.cpu_compute_bytes = compute_bytes_estimate(m, req.n_batch, ngl == 0);
    for (size_t g = 0; g < p.gpus.size(); ++g)
        if (p.gpus[g].n_layers > 0) p.gpus[g].compute_bytes = compute_bytes_estimate(m, req.n_batch, g == head_gpu);
    // A prompt over the CPU's layers copies their weights into the (first) GPU's compute
    // buffer, a layer's while the one before computes (Scheduler::set_offload): two layers' at
    // a time. With page-locked memory on the GPU's side, the host keeps a copy of them there.
    if (ngl > 0 && ngl < p.n_layer) {
        size_t widest = 0, streamed = 0;
        for (int32_t il = 0; il < p.n_layer - ngl; ++il) {
            widest = std::max(widest, m.layers[static_cast<size_t>(il)].weight_bytes);
            streamed += m.layers[static_cast<size_t>(il)].matmul_bytes();
        }
        p.gpus.front().compute_bytes += 2 * widest;
        if (r.stream_gbs > 0 && offload_min_batch(m, r, req.n_batch) > 0) p.cpu_pinned_bytes = streamed;
    }
    int n_gpus = 0;
    for (size_t g = 0; g < p.gpus.size(); ++g) {
        p.gpu_weight_bytes += p.gpus[g].weight_bytes;
        p.gpu_kv_bytes += p.gpus[g].kv_bytes;
        p.gpu_compute_bytes += p.gpus[g].compute_bytes;
        if (g < req.gpu_budgets.size() && p.gpus[g].total() > req.gpu_budgets[g]) p.fits = false;
        n_gpus += p.gpus[g].n_layers > 0;
    }
    if (p.gpu_total() > req.gpu_budget) p.fits = false;
    // Speeds only where every device the plan uses was measured.
    const bool uses_cpu = ngl<p.n_layer, uses_gpu = ngl> 0;
    if ((uses_cpu && !r.cpu.measured()) || (uses_gpu && !r.gpu.measured())) return p;
    const int64_t n = std::max(req.n_batch, 1);
    const double pp_us = m.layers.empty() ? 0.0 : step_us(m, r, ngl, n_gpus, n, n);
    const double tg_us = m.layers.empty() ? 0.0 : step_us(m, r, ngl, n_gpus, 1, n);
    p.pp_tokens_per_s = pp_us > 0 ? 1e6 * static_cast<double>(n) / pp_us : 0.0;
    p.tg_tokens_per_s = tg_us > 0 ? 1e6 / tg_us : 0.0;
    return p;
}

Plan choose_plan(const ModelSizes& m, const MachineRates& r, const PlanRequest& req) {
    if (req.n_gpu_layers >= 0 || r.gpu.name.empty()) return plan_for(m, r, req, std::max(req.n_gpu_layers, 0));
    const int32_t n_layer = static_cast<int32_t>(m.layers.size());
    Plan best = plan_for(m, r, req, 0);
    auto cost = [&](const Plan& p) {
        return (p.pp_tokens_per_s > 0 ? req.n_prompt / p.pp_tokens_per_s : 0.0) +
               (p.tg_tokens_per_s > 0 ? req.n_gen / p.tg_tokens_per_s : 0.0);
    };
    double best_cost = cost(best);
    for (int32_t ngl = 1; ngl <= n_layer; ++ngl) {
        const Plan p = plan_for(m, r, req, ngl);
        // Not monotonic: all layers on the GPU take less than all but one, whose weights
        // the GPU's compute buffer streams two layers' worth of.
        if (!p.fits) continue;
        // More on the GPU wins a tie (within 1%): the CPU stays free for the rest.
        if (const double c = cost(p); c <= best_cost * 1.01) best = p, best_cost = std::min(c, best_cost);
    }
    return best;
}

}  // namespace tessera::runtime
