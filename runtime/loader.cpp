// The model loader: architecture lookup, weight checks, placement on the CPU backend
// (zero-copy from the file mapping by default).
#include "runtime/loader.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <regex>
#include <unordered_map>
#include <vector>

#include "backends/cpu/kernels/kernels.h"
#include "backends/cpu/onednn.h"
#include "backends/registry.h"
#include "runtime/rates.h"
#include "tensor/error.h"

namespace tessera::runtime {

namespace {

// The file mapping seen as a CPU buffer: weight tensors point straight into it.
class FileBuffer : public Buffer {
public:
    FileBuffer(Backend* b, const gguf::File& f) : Buffer(b, BufferUsage::Weights), f_(f) {}
    void* base() override { return const_cast<uint8_t*>(f_.bytes()); }
    size_t size() const override { return static_cast<size_t>(f_.file_size()); }

private:
    const gguf::File& f_;
};

// Gives the pages wholly inside [p, p + n) of a read-only file mapping back to the kernel:
// they leave the resident set and are read again from the file if ever touched.
void release_file_pages(const void* p, size_t n) {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n) & ~(page - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

bool cpu_wants_r16(const Tensor& t, const std::string& name) {
    if (name == "token_embd.weight" || t.ne[2] != 1 || t.ne[3] != 1) return false;
    // Float tables that are not matrix weights (rope factors, norms) stay as they are.
    if (name.find("norm") != std::string::npos || name.find("rope") != std::string::npos) return false;
    if (!cpu::kernels::r16_fits(t.type, t.ne[0], t.ne[1])) return false;
    // Weights whose prompt products go to oneDNN keep the layout it reads.
    if (cpu::onednn::chosen(t.type)) return false;
    return cpu::kernels::active().dot_r16[static_cast<uint32_t>(t.type)] != nullptr;
}

namespace {

// The GPU backend named `name` (empty: the first GPU), or null when there is none.
Backend* choose_gpu(const std::vector<std::unique_ptr<Backend>>& backends, const std::string& name) {
    std::string names;
    for (const auto& b : backends) {
        if (b->host_memory()) continue;
        if ((name.empty() && b->offload_by_default()) || b->name() == name) return b.get();
        names += (names.empty() ? "" : ", ") + b->name();
    }
    if (!name.empty() && name != "CPU")
        throw Error("device '" + name + "' not found (GPU devices here: " + (names.empty() ? "none" : names) + ")",
                    ErrorKind::InvalidArgument);
    return nullptr;
}

// A backend's kind: its name without the device number ("CUDA" for "CUDA1").
std::string kind_of(const std::string& name) {
    size_t n = name.size();
    while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9') --n;
    return name.substr(0, n);
}

// The GPUs a model's layers go to, in order. `names`: comma-separated GPU names; one listed
// again gets another instance of its device (added to `backends`, before the CPU). None
// listed: the first GPU found by default and, split by layer, every other GPU of its kind
// found by default (discrete ones with a discrete one, not an integrated GPU). "CPU": none.
std::vector<Backend*> choose_gpus(std::vector<std::unique_ptr<Backend>>& backends, const std::string& names,
                                  SplitMode mode) {
    std::vector<Backend*> out;
    if (names.empty()) {
        Backend* first = choose_gpu(backends, "");
        if (!first) return out;
        out.push_back(first);
        if (mode == SplitMode::Layer)
            for (const auto& b : backends)
                if (b.get() != first && !b->host_memory() && b->offload_by_default() &&
                    kind_of(b->name()) == kind_of(first->name()) &&
                    b->shares_host_memory() == first->shares_host_memory())
                    out.push_back(b.get());
        return out;
    }
    std::vector<std::string> list;
    for (size_t at = 0;;) {
        const size_t comma = names.find(',', at);
        std::string name = names.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        name.erase(0, name.find_first_not_of(" \t"));
        name.erase(name.find_last_not_of(" \t") + 1);
        if (name.empty()) throw Error("device list '" + names + "' has an empty name", ErrorKind::InvalidArgument);
        list.push_back(name);
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    if (list.size() == 1 && (list[0] == "CPU" || list[0] == "cpu")) return out;
    if (list.size() > 1 && mode == SplitMode::None)
        throw Error("device list '" + names + "': one GPU without a split (split mode none)",
                    ErrorKind::InvalidArgument);
    for (const std::string& name : list) {
        Backend* b = choose_gpu(backends, name);
        if (!b) throw Error("device list '" + names + "': the CPU is not a GPU", ErrorKind::InvalidArgument);
        if (std::find(out.begin(), out.end(), b) != out.end()) {
            // Named again: the first instance not taken yet, else a new one.
            Backend* free = nullptr;
            for (const auto& o : backends)
                if (o->name() == name && std::find(out.begin(), out.end(), o.get()) == out.end()) free = o.get();
            if (!free) {
                std::unique_ptr<Backend> extra = backends::create_instance(name);
                if (!extra) throw Error("device '" + name + "': no further instance", ErrorKind::InvalidArgument);
                free = extra.get();
                backends.insert(backends.end() - 1, std::move(extra));
            }
            b = free;
        }
        out.push_back(b);
    }
    return out;
}

// Whether `gpu` computes with a weight of this type (asked as a matrix product).
bool gpu_can_hold(const Backend& gpu, Tensor& weight) {
    Tensor b, node;
    b.type = DType::F32;
    b.ne[0] = weight.ne[0];
    node.op = Op::MulMat;
    node.src[0] = &weight;
    node.src[1] = &b;
    return gpu.supports(node) && weight.n_bytes() <= gpu.max_buffer_bytes();
}

// Prints an informational line once per process.
void note_once(const std::string& line) {
    static std::once_flag once;
    std::call_once(once, [&] { std::fprintf(stderr, "%s\n", line.c_str()); });
}

// The context a plan makes room for when none is given: the contexts' own default.
int32_t default_n_ctx(const models::HParams& hp) { return hp.n_ctx_train > 0 ? std::min(hp.n_ctx_train, 4096) : 4096; }

// Bytes of `gpu` a plan may fill: `limit` when given, else its free memory less 512 MiB
// (the driver's and other programs' share).
size_t gpu_budget(const Backend& gpu, size_t limit) {
    const size_t free = gpu.memory().free;
    const size_t room = free > (size_t{512} << 20) ? free - (size_t{512} << 20) : 0;
    return limit > 0 ? std::min(room, limit) : room;
}

// The request's GPU budgets and layer split over `gpus`: each one's budget, their sum, and
// with several the proportions given (one per GPU), else their budgets.
void request_gpus(const std::vector<Backend*>& gpus, size_t gpu_mem, const std::vector<double>& tensor_split,
                  PlanRequest& req) {
    if (!tensor_split.empty() && tensor_split.size() != gpus.size())
        throw Error("tensor split: " + std::to_string(tensor_split.size()) + " proportions for " +
                        std::to_string(gpus.size()) + " GPU" + (gpus.size() == 1 ? "" : "s"),
                    ErrorKind::InvalidArgument);
    req.gpu_budget = 0;
    req.gpu_budgets.clear();
    for (Backend* g : gpus) {
        req.gpu_budgets.push_back(gpu_budget(*g, gpu_mem));
        req.gpu_budget += req.gpu_budgets.back();
    }
    req.gpu_split.clear();
    if (gpus.size() > 1)
        req.gpu_split =
            tensor_split.empty() ? std::vector<double>(req.gpu_budgets.begin(), req.gpu_budgets.end()) : tensor_split;
}

// The architecture `general.architecture` names, its hyper-parameters read into hp. An
// unsupported one lists the supported ones.
const models::Architecture* read_architecture(const gguf::File& f, models::HParams& hp) {
    if (!f.find("general.architecture"))
        throw Error(f.path() + ": missing metadata key 'general.architecture'", ErrorKind::BadFile);
    hp.arch = std::string(f.get_string("general.architecture"));
    const models::Architecture* arch = models::find_architecture(hp.arch);
    if (!arch) {
        std::string list;
        for (const std::string& a : models::supported_architectures()) {
            if (!list.empty()) list += ", ";
            list += a;
        }
        throw Error(f.path() + ": architecture '" + hp.arch + "' is not supported (supported: " + list + ")",
                    ErrorKind::Unsupported);
    }
    arch->read_hparams(f, hp);
    return arch;
}

// The automatic layer count: a GPU the user named gets as many layers as fit, whatever the
// speeds; one found by default gets the cost model's choice (fewer, or none when it is
// slower than the CPU).
int32_t automatic_layers(const ModelSizes& sizes, const MachineRates& rates, PlanRequest req, bool named) {
    req.n_gpu_layers = -1;
    MachineRates unmeasured;
    unmeasured.gpu.name = rates.gpu.name;
    return choose_plan(sizes, named ? unmeasured : rates, req).n_gpu_layers;
}

std::string shape_text(std::initializer_list<int64_t> ne) {
    std::string s = "[";
    for (int64_t d : ne) {
        if (s.size() > 1) s += ", ";
        s += std::to_string(d);
    }
    return s + "]";
}

std::string shape_text(const gguf::TensorInfo& t) {
    std::string s = "[";
    for (int i = 0; i < t.n_dims; ++i) {
        if (i) s += ", ";
        s += std::to_string(t.ne[i]);
    }
    return s + "]";
}

// Creates weight leaves for the tensors an architecture asks for, checking each.
class FileWeights : public models::WeightSource {
public:
    FileWeights(const gguf::File& f, Graph& g) : f_(f), g_(g) {}

    Tensor* require(const std::string& name, std::initializer_list<int64_t> ne) override {
        Tensor* t = get(name, ne);
        if (!t && !f_.find_tensor(name)) problems_.push_back("missing tensor '" + name + "' " + shape_text(ne));
        return t;
    }

    Tensor* optional(const std::string& name, std::initializer_list<int64_t> ne) override { return get(name, ne); }

    const std::vector<std::string>& problems() const { return problems_; }
    const std::vector<std::pair<Tensor*, const gguf::TensorInfo*>>& loaded() const { return loaded_; }

private:
    Tensor* get(const std::string& name, std::initializer_list<int64_t> ne) {
        const gguf::TensorInfo* info = f_.find_tensor(name);
        if (!info) return nullptr;
        for (auto& [t, i] : loaded_)
            if (i == info) return t;  // asked for twice (tied embeddings)
        bool same = true;
        int d = 0;
        for (int64_t want : ne) same = same && info->ne[d++] == want;
        for (; d < gguf::kMaxDims; ++d) same = same && info->ne[d] == 1;
        if (!same) {
            problems_.push_back("tensor '" + name + "' has shape " + shape_text(*info) + ", expected " +
                                shape_text(ne));
            return nullptr;
        }
        if (!type_traits(info->type).has_reference) {
            problems_.push_back("tensor '" + name + "' has type " + std::string(type_name(info->type)) +
                                ", which this build cannot compute with");
            return nullptr;
        }
        Tensor* t = g_.new_tensor(info->type, std::span<const int64_t>(info->ne, static_cast<size_t>(gguf::kMaxDims)),
                                  name.c_str());
        loaded_.emplace_back(t, info);
        return t;
    }

    const gguf::File& f_;
    Graph& g_;
    std::vector<std::string> problems_;
    std::vector<std::pair<Tensor*, const gguf::TensorInfo*>> loaded_;
};

}  // namespace

std::unique_ptr<Model> load_model(std::unique_ptr<gguf::File> file, const LoadOptions& options) {
    auto t0 = std::chrono::steady_clock::now();
    auto m = std::make_unique<Model>();
    m->file = std::move(file);
    const gguf::File& f = *m->file;

    m->arch = read_architecture(f, m->hp);
    const std::string& arch_name = m->hp.arch;

    FileWeights source(f, m->weights_graph);
    m->arch->load_weights(source, m->hp, m->weights);
    if (!source.problems().empty()) {
        std::string msg = f.path() + ": the " + arch_name + " model's tensors do not match its metadata: ";
        for (size_t i = 0; i < source.problems().size(); ++i) {
            if (i) msg += "; ";
            msg += source.problems()[i];
        }
        throw Error(msg, ErrorKind::BadFile);
    }

    m->backends = backends::create_available();
    Backend& cpu = m->cpu();
    for (auto& [t, info] : source.loaded()) {
        m->weight_bytes += info->n_bytes;
        m->n_params += static_cast<uint64_t>(info->n_elements);
    }

    // Placement: the last n_gpu_layers layers (weights and KV cache) and the output head on
    // the GPU, the rest on the CPU; then the tensor overrides.
    struct Override {
        std::regex pattern;
        bool gpu = false;
        std::string device, text;   // DEVICE, and PATTERN=DEVICE
        Backend* target = nullptr;  // the GPU it names
    };
    std::vector<Override> overrides;
    std::string device = options.device;
    for (const auto& [pattern, dev] : options.tensor_overrides) {
        Override o;
        try {
            o.pattern = std::regex(pattern, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            throw Error("tensor override '" + pattern + "=" + dev + "': not a regular expression (" + e.what() + ")",
                        ErrorKind::InvalidArgument);
        }
        o.gpu = dev != "CPU" && dev != "cpu";
        o.device = dev;
        o.text = pattern + "=" + dev;
        if (o.gpu && device.empty()) device = dev;  // the GPU an override names, alone
        overrides.push_back(std::move(o));
    }
    const std::vector<Backend*> gpus = choose_gpus(m->backends, device, options.split_mode);
    Backend* gpu = gpus.empty() ? nullptr : gpus.front();
    for (Override& o : overrides) {
        if (!o.gpu) continue;
        for (Backend* g : gpus)
            if (g->name() == o.device) {
                o.target = g;
                break;
            }
        if (!o.target)
            throw Error("tensor override '" + o.text + "' names a GPU the model does not use (" +
                            (device.empty() ? std::string("none") : device) + ")",
                        ErrorKind::InvalidArgument);
    }
    PlanRequest req;
    request_gpus(gpus, options.gpu_mem, options.tensor_split, req);
    const int32_t n_layer = m->hp.n_layer;
    int32_t ngl = options.n_gpu_layers < 0 ? n_layer : std::min(options.n_gpu_layers, n_layer);
    const bool gpu_overrides = std::any_of(overrides.begin(), overrides.end(), [](const Override& o) { return o.gpu; });
    if (!gpu) {
        const std::string why = backends::gpu_unavailable_reason();
        if ((options.n_gpu_layers != 0 || gpu_overrides) && !why.empty())
            note_once("tessera: no GPU to use (" + why + "): the CPU runs the model");
        ngl = 0;
    }
    const bool tied = f.find_tensor("output.weight") == nullptr;
    auto layer_of = [](const std::string& name) {
        if (name.rfind("blk.", 0) != 0) return -1;
        return std::atoi(name.c_str() + 4);
    };

    // The machine's speeds for this model's shapes: measured (once per machine, then cached)
    // when the automatic count has a GPU found by default to weigh against the CPU; otherwise
    // whatever the cache holds.
    const bool automatic = gpu && ngl > 0 && options.n_gpu_layers < 0;
    req.n_ctx = options.plan_n_ctx > 0 ? options.plan_n_ctx : default_n_ctx(m->hp);
    if (gpu) {
        const ModelSizes sizes = model_sizes(f, m->hp);
        MachineRates rates;
        rates.gpu.name = gpu->name();
        RatesOptions ro;
        ro.n_threads = options.plan_threads;
        ro.measure = automatic && device.empty();
        ro.note = [](const std::string& line) { note_once("tessera: " + line); };
        try {
            rates = machine_rates(cpu, gpu, sizes, req.n_batch, ro);
        } catch (const std::exception& e) {
            note_once(std::string("tessera: measuring the placement's speeds failed (") + e.what() +
                      "): as many layers as fit go to the GPU");
            rates = MachineRates{};
            rates.gpu.name = gpu->name();
        }
        if (automatic) ngl = automatic_layers(sizes, rates, req, !device.empty());
        m->plan = plan_for(sizes, rates, req, ngl);
        // Prompt products over the CPU's layers go to the GPU from the batch where that pays
        // (measured); when the speeds are not known yet, from 32 tokens on a real GPU and
        // never on a CPU in disguise (lavapipe); TESSERA_OFFLOAD_MIN_BATCH overrides (0: never).
        if (ngl < n_layer) {
            const bool known = rates.cpu.measured() && rates.gpu.measured() && rates.h2d_gbs > 0;
            m->offload_min_batch = known                       ? offload_min_batch(sizes, rates, req.n_batch)
                                   : gpu->offload_by_default() ? 32
                                                               : 0;
            if (const char* e = std::getenv("TESSERA_OFFLOAD_MIN_BATCH"); e && *e)
                m->offload_min_batch = std::max(0L, std::strtol(e, nullptr, 10));
        }
    }
    m->n_gpu_layers = ngl;
    // The GPU layers in order over the GPUs (the first takes the earliest), the head with the
    // last layer.
    m->layer_backend.assign(static_cast<size_t>(n_layer), &cpu);
    {
        const std::vector<int32_t> counts = split_layers(ngl, req.gpu_split);
        size_t il = static_cast<size_t>(n_layer - ngl);
        for (size_t g = 0; g < counts.size() && g < gpus.size(); ++g) {
            if (counts[g] > 0) m->gpus.push_back(gpus[g]);
            for (int32_t k = 0; k < counts[g]; ++k) m->layer_backend[il++] = gpus[g];
        }
        for (const Override& o : overrides)  // the GPUs overrides send weights to
            if (o.target && std::find(m->gpus.begin(), m->gpus.end(), o.target) == m->gpus.end())
                m->gpus.push_back(o.target);
        m->gpu = m->gpus.empty() ? nullptr : m->gpus.front();
        for (Backend* g : m->gpus) m->gpu_names += (m->gpu_names.empty() ? "" : ",") + g->name();
    }
    Backend* head = ngl > 0 ? m->layer_backend.back() : &cpu;
    // Where a weight goes: the first override matching its name, else its layer's device (the
    // output head, its norm and the rope factors with the last layer; the token embedding stays
    // on the CPU unless it is the head too).
    auto home = [&](const std::string& name) -> Backend* {
        for (const Override& o : overrides)
            if (std::regex_search(name, o.pattern)) return o.gpu ? o.target : &cpu;
        const int il = layer_of(name);
        if (il >= 0 && il < n_layer) return m->layer_backend[static_cast<size_t>(il)];
        if (name == "token_embd.weight" && !tied) return &cpu;
        return head;
    };

    std::vector<std::pair<Tensor*, const gguf::TensorInfo*>> on_cpu;
    std::vector<std::pair<Backend*, std::vector<std::pair<Tensor*, const gguf::TensorInfo*>>>> on_gpu;
    std::string too_large;  // weights meant for a GPU but larger than its largest buffer
    Backend* too_large_on = nullptr;
    for (auto& [t, info] : source.loaded()) {
        Backend* want = home(info->name);
        if (want != &cpu && gpu_can_hold(*want, *t)) {
            auto it = std::find_if(on_gpu.begin(), on_gpu.end(), [&](const auto& g) { return g.first == want; });
            if (it == on_gpu.end()) it = on_gpu.insert(on_gpu.end(), {want, {}});
            it->second.emplace_back(t, info);
            continue;
        }
        if (want != &cpu && t->n_bytes() > want->max_buffer_bytes()) {
            too_large +=
                (too_large.empty() ? "" : ", ") + info->name + " (" + std::to_string(t->n_bytes() >> 20) + " MiB)";
            too_large_on = want;
        }
        on_cpu.emplace_back(t, info);
    }
    static std::once_flag said_too_large;
    if (!too_large.empty())
        std::call_once(said_too_large, [&] {
            std::fprintf(stderr, "tessera: on the CPU, larger than %s's largest buffer (%zu MiB): %s\n",
                         too_large_on->name().c_str(), too_large_on->max_buffer_bytes() >> 20, too_large.c_str());
        });
    size_t done = 0;
    auto report = [&](size_t n) {
        done += n;
        if (options.progress && !options.progress(static_cast<float>(done) / static_cast<float>(m->weight_bytes)))
            throw Error(f.path() + ": loading cancelled");
    };
    for (auto& [dev, weights] : on_gpu) {
        std::vector<Tensor*> tensors;
        for (auto& [t, info] : weights) tensors.push_back(t);
        for (auto& b : allocate_tensors_split(*dev, tensors, BufferUsage::Weights, 256))
            m->buffers.push_back(std::move(b));
        for (auto& [t, info] : weights) {
            // The families' weights are read by products and row lookups alone: the device
            // may keep a matrix in a layout of its own.
            if (t->ne[1] > 1) t->flags |= kFlagProductWeight;
            dev->upload(t, info->data, 0, info->n_bytes);
            m->gpu_weight_bytes += info->n_bytes;
            // The file's pages of an uploaded tensor are not needed again.
            if (options.use_mmap) release_file_pages(info->data, info->n_bytes);
            report(info->n_bytes);
        }
    }
    // The weights that prompts stream to the GPU (the CPU layers' products) are copied into
    // page-locked memory, which the GPU's copy engine reads beside the computation; the CPU
    // computes on that copy too (or on its own rearranged one). Where the device has no such
    // memory they are streamed from where they are.
    std::unordered_map<const Tensor*, const void*> pinned;  // tensor -> its file layout there
    std::vector<std::pair<Tensor*, const gguf::TensorInfo*>> streamed;
    if (m->gpu && m->offload_min_batch > 0) {
        const bool tied = f.find_tensor("output.weight") == nullptr;
        size_t total = 0;
        for (auto& [t, info] : on_cpu) {
            if (info->n_bytes < (size_t{1} << 20) || t->ne[1] < 2 || !gpu_can_hold(*m->gpu, *t)) continue;
            if (!tied && info->name == "token_embd.weight") continue;  // rows looked up, never multiplied
            streamed.emplace_back(t, info);
            total += (info->n_bytes + 63) & ~size_t{63};
        }
        // Page-locked memory cannot be swapped out: taken only while it leaves most of what is
        // available to the rest of the system (the copy sits beside the CPU's own).
        const size_t available = cpu.memory().free;
        const bool room = available == 0 || total <= available / 2;
        if (!room && !streamed.empty())
            note_once("tessera: not enough free memory to page-lock the CPU layers' weights (" +
                      std::to_string(total >> 20) + " MiB): prompts stream them from pageable memory, more slowly");
        std::unique_ptr<Buffer> buf =
            streamed.empty() || !room ? nullptr : m->gpu->alloc_pinned_host(cpu, total, BufferUsage::Weights);
        if (buf) {
            size_t at = 0;
            for (auto& [t, info] : streamed) {
                uint8_t* p = static_cast<uint8_t*>(buf->base()) + at;
                std::memcpy(p, info->data, info->n_bytes);
                if (options.use_mmap) release_file_pages(info->data, info->n_bytes);
                t->data = p;
                t->buffer = buf.get();
                pinned.emplace(t, p);
                at += (info->n_bytes + 63) & ~size_t{63};
                report(info->n_bytes);
            }
            m->pinned_bytes = total;
            static std::once_flag said;
            std::call_once(said, [&] {
                std::fprintf(stderr, "%s\n",
                             ("tessera: " + std::to_string(total >> 20) +
                              " MiB of the CPU layers' weights in page-locked memory, streamed to " + m->gpu->name() +
                              " for prompts of " + std::to_string(m->offload_min_batch) + " tokens or more")
                                 .c_str());
            });
            m->buffers.push_back(std::move(buf));
            std::erase_if(on_cpu, [&](const auto& c) { return pinned.count(c.first) != 0; });
        } else {
            streamed.clear();
        }
    }
    // The activations and KV cells that cross between the CPU's layers and the GPU's go
    // without staging too.
    if (m->gpu && m->offload_min_batch > 0) cpu.set_page_locked_source(m->gpu);
    if (options.use_mmap) {
        auto buf = std::make_unique<FileBuffer>(&cpu, f);
        size_t n = 0;
        for (auto& [t, info] : on_cpu) {
            t->data = const_cast<uint8_t*>(info->data);
            t->buffer = buf.get();
            n += info->n_bytes;
        }
        m->buffers.push_back(std::move(buf));
        report(n);
    } else if (!on_cpu.empty()) {
        std::vector<Tensor*> tensors;
        for (auto& [t, info] : on_cpu) tensors.push_back(t);
        m->buffers.push_back(allocate_tensors(cpu, tensors, BufferUsage::Weights));
        for (auto& [t, info] : on_cpu) {
            cpu.upload(t, info->data, 0, info->n_bytes);
            report(info->n_bytes);
        }
    }
    if (options.repack) {
        std::vector<std::pair<Tensor*, const gguf::TensorInfo*>> chosen;
        for (auto& [t, info] : on_cpu)
            if (cpu_wants_r16(*t, info->name)) chosen.emplace_back(t, info);
        if (options.use_mmap)  // (read into memory, the copy is rearranged in place: not the pinned one)
            for (auto& [t, info] : streamed)
                if (cpu_wants_r16(*t, info->name)) chosen.emplace_back(t, info);
        // The file's layout of a weight: its page-locked copy, or the file's bytes.
        auto blocks_of = [&](const Tensor* t, const gguf::TensorInfo* info) {
            auto it = pinned.find(t);
            return it != pinned.end() ? it->second : static_cast<const void*>(info->data);
        };
        if (options.use_mmap && !chosen.empty()) {
            // Out of the mapping into one new buffer, tensor by tensor, releasing each one's
            // file pages as soon as it is rearranged.
            std::vector<size_t> offsets;
            size_t total = 0;
            for (auto& [t, info] : chosen) {
                offsets.push_back(total);
                total += (cpu::kernels::r16_bytes(t->type, t->ne[0], t->ne[1]) + 63) & ~size_t{63};
            }
            auto buf = cpu.alloc_buffer(total, BufferUsage::Weights);
            for (size_t i = 0; i < chosen.size(); ++i) {
                auto [t, info] = chosen[i];
                t->data = static_cast<uint8_t*>(buf->base()) + offsets[i];
                t->buffer = buf.get();
                cpu::kernels::repack_r16(t->type, blocks_of(t, info), t->data, t->ne[0], t->ne[1]);
                release_file_pages(info->data, info->n_bytes);
            }
            m->buffers.push_back(std::move(buf));
        } else {
            // Read into memory: the copy is rewritten from the file in the new layout, where
            // that layout takes the same bytes (Q4_0, Q8_0); the others stay plain.
            std::erase_if(chosen, [](const auto& c) {
                return cpu::kernels::r16_bytes(c.first->type, c.first->ne[0], c.first->ne[1]) != c.second->n_bytes;
            });
            for (auto& [t, info] : chosen) cpu::kernels::repack_r16(t->type, info->data, t->data, t->ne[0], t->ne[1]);
        }
        for (auto& [t, info] : chosen) {
            t->flags |= kFlagRepacked;
            t->host_blocks = blocks_of(t, info);  // the file's layout, for prompt products sent to a GPU
            m->repacked_bytes += info->n_bytes;
        }
    }
    m->load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return m;
}

FitResult fit_model(const std::string& path, const FitOptions& options) {
    auto file = gguf::File::open(path);
    const gguf::File& f = *file;
    FitResult r;
    models::HParams hp;
    read_architecture(f, hp);
    r.arch = hp.arch;
    r.name = hp.name;
    const ModelSizes sizes = model_sizes(f, hp);

    auto backends = backends::create_available();
    Backend& cpu = *backends.back();
    const std::vector<Backend*> gpus = choose_gpus(backends, options.device, options.split_mode);
    Backend* gpu = gpus.empty() ? nullptr : gpus.front();
    PlanRequest req;
    request_gpus(gpus, options.gpu_mem, options.tensor_split, req);
    req.n_ctx = r.n_ctx = options.n_ctx > 0 ? options.n_ctx : default_n_ctx(hp);
    req.n_batch = options.n_batch > 0 ? options.n_batch : 512;
    req.n_gpu_layers = gpu ? options.n_gpu_layers : 0;
    for (Backend* g : gpus) {
        r.gpus.push_back(g->name());
        r.gpu += (r.gpu.empty() ? "" : ",") + g->name();
    }
    r.gpu_budgets = req.gpu_budgets;
    r.gpu_budget = req.gpu_budget;
    RatesOptions ro;
    ro.n_threads = options.n_threads;
    ro.measure = options.measure;
    ro.note = options.note;
    r.rates = machine_rates(cpu, gpu, sizes, req.n_batch, ro);
    if (gpu && req.n_gpu_layers < 0) req.n_gpu_layers = automatic_layers(sizes, r.rates, req, !options.device.empty());
    r.plan = choose_plan(sizes, r.rates, req);
    return r;
}

}  // namespace tessera::runtime
