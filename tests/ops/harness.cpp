// The op-parity harness: leaves, running a case on a backend, comparing.
#include "tests/ops/harness.h"

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "tensor/quant/quant.h"
#include "tensor/scheduler.h"

namespace tessera::test {

int64_t Leaf::n() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

double Leaf::at(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
    return values[static_cast<size_t>(i0 + dim(0) * (i1 + dim(1) * (i2 + dim(2) * i3)))];
}

namespace {

// Stores dense floats as `type` and reads them back, so `values` is what a backend sees.
void store(Leaf& l, const std::vector<float>& x) {
    const int64_t row = l.ne[0];
    const size_t row_bytes = row_size(l.type, row);
    const int64_t rows = l.n() / row;
    l.bytes.assign(row_bytes * static_cast<size_t>(rows), 0);
    l.values.resize(x.size());
    std::vector<float> back(static_cast<size_t>(row));
    for (int64_t r = 0; r < rows; ++r) {
        quant::quantize_row(l.type, x.data() + r * row, l.bytes.data() + r * row_bytes, row);
        quant::dequantize_row(l.type, l.bytes.data() + r * row_bytes, back.data(), row);
        for (int64_t i = 0; i < row; ++i) l.values[static_cast<size_t>(r * row + i)] = back[static_cast<size_t>(i)];
    }
}

}  // namespace

Leaf random_leaf(DType type, std::vector<int64_t> ne, uint32_t seed, double scale) {
    Leaf l;
    l.type = type;
    l.ne = std::move(ne);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(static_cast<float>(-scale), static_cast<float>(scale));
    std::vector<float> x(static_cast<size_t>(l.n()));
    for (float& v : x) v = u(rng);
    store(l, x);
    return l;
}

Leaf int_leaf(DType type, std::vector<int64_t> ne, const std::vector<int64_t>& values) {
    Leaf l;
    l.type = type;
    l.ne = std::move(ne);
    if (static_cast<int64_t>(values.size()) != l.n()) throw std::runtime_error("int_leaf: wrong value count");
    size_t w = type == DType::I64 ? 8 : 4;
    l.bytes.resize(values.size() * w);
    for (size_t i = 0; i < values.size(); ++i) {
        if (w == 8)
            std::memcpy(&l.bytes[i * 8], &values[i], 8);
        else {
            int32_t v = static_cast<int32_t>(values[i]);
            std::memcpy(&l.bytes[i * 4], &v, 4);
        }
        l.values.push_back(static_cast<double>(values[i]));
    }
    return l;
}

Leaf float_leaf(DType type, std::vector<int64_t> ne, const std::vector<double>& values) {
    Leaf l;
    l.type = type;
    l.ne = std::move(ne);
    if (static_cast<int64_t>(values.size()) != l.n()) throw std::runtime_error("float_leaf: wrong value count");
    std::vector<float> x(values.begin(), values.end());
    store(l, x);
    return l;
}

std::vector<double> run_case(const OpCase& c, Backend& place_on, const std::vector<Backend*>& backends) {
    Graph g;
    std::vector<Tensor*> leaves;
    for (size_t i = 0; i < c.leaves.size(); ++i) {
        const Leaf& l = c.leaves[i];
        std::string name = "leaf" + std::to_string(i);
        leaves.push_back(g.new_tensor(l.type, l.ne, name.c_str()));
    }
    // In as many buffers as the device's largest allows, as a model's weights are.
    auto buffers = allocate_tensors_split(place_on, leaves, BufferUsage::Weights);
    for (size_t i = 0; i < leaves.size(); ++i)
        place_on.upload(leaves[i], c.leaves[i].bytes.data(), 0, c.leaves[i].bytes.size());

    Tensor* out = c.build(g, leaves);
    g.mark_output(out);
    // On a device, leaves that only products (as their first source) and row lookups read are
    // uploaded again marked as a loader marks a model's matrices, so the device may keep them
    // in a layout of its own.
    if (!place_on.host_memory()) {
        std::vector<bool> other_use(leaves.size(), false);
        for (const Tensor& n : g.tensors()) {
            if (n.view_src) continue;  // a view's readers are what counts
            for (int s = 0; s < kMaxSrc; ++s) {
                const Tensor* src = n.src[s];
                if (!src) continue;
                for (size_t i = 0; i < leaves.size(); ++i)
                    if (src->root() == leaves[i] && (s != 0 || (n.op != Op::MulMat && n.op != Op::GetRows)))
                        other_use[i] = true;
            }
        }
        for (size_t i = 0; i < leaves.size(); ++i)
            if (!other_use[i] && leaves[i]->ne[1] > 1) {
                leaves[i]->flags |= kFlagProductWeight;
                place_on.upload(leaves[i], c.leaves[i].bytes.data(), 0, c.leaves[i].bytes.size());
            }
    }
    Scheduler sched(backends);
    for (int i = 0; i < c.evaluations; ++i) sched.compute(g);

    // Read the result back densely, whatever its strides.
    std::vector<uint8_t> raw(out->root()->n_bytes());
    Tensor* root = out->root();
    sched.read(root, raw.data(), raw.size());
    const size_t root_offset = out->view_src ? out->view_offset : 0;
    std::vector<double> result;
    result.reserve(static_cast<size_t>(out->n_elements()));
    std::vector<float> row(static_cast<size_t>(out->ne[0]));
    for (int64_t i3 = 0; i3 < out->ne[3]; ++i3)
        for (int64_t i2 = 0; i2 < out->ne[2]; ++i2)
            for (int64_t i1 = 0; i1 < out->ne[1]; ++i1) {
                const uint8_t* p = raw.data() + root_offset + i1 * out->nb[1] + i2 * out->nb[2] + i3 * out->nb[3];
                if (out->type == DType::I32) {
                    for (int64_t i0 = 0; i0 < out->ne[0]; ++i0) {
                        int32_t v;
                        std::memcpy(&v, p + i0 * 4, 4);
                        result.push_back(v);
                    }
                    continue;
                }
                quant::dequantize_row(out->type, p, row.data(), out->ne[0]);
                for (float v : row) result.push_back(v);
            }
    return result;
}

double nmse(const std::vector<double>& got, const std::vector<double>& want) {
    if (got.size() != want.size()) return INFINITY;
    double err = 0, ref = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(got[i]) != std::isnan(want[i])) return INFINITY;
        err += (got[i] - want[i]) * (got[i] - want[i]);
        ref += want[i] * want[i];
    }
    return ref > 0 ? err / ref : err;
}

}  // namespace tessera::test
