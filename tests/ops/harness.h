// The backend-generic op-parity harness: a case builds a graph over leaf tensors, a
// plain scalar reference (double precision, dense logical indexing) computes what the
// result must be, and the harness runs the graph on every backend the registry lists
// (plus a restricted second CPU instance that forces seams) and compares by normalized
// mean squared error against a bound per type.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/backend.h"
#include "tensor/graph.h"

namespace tessera::test {

// A leaf's contents as the backends see them: `values` are the logical elements (after
// the type's own rounding: quantize then dequantize), `bytes` the stored form.
struct Leaf {
    DType type = DType::F32;
    std::vector<int64_t> ne;
    std::vector<double> values;  // dense, ne[0] fastest
    std::vector<uint8_t> bytes;

    int64_t n() const;
    double at(int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) const;
    int64_t dim(int i) const { return i < static_cast<int>(ne.size()) ? ne[static_cast<size_t>(i)] : 1; }
};

// Random floats in [-scale, scale] (fixed seed), stored as `type`.
Leaf random_leaf(DType type, std::vector<int64_t> ne, uint32_t seed, double scale = 1.0);
// Integer leaves (I32 or I64) from explicit values.
Leaf int_leaf(DType type, std::vector<int64_t> ne, const std::vector<int64_t>& values);
// A leaf of explicit float values (F32 or F16 masks).
Leaf float_leaf(DType type, std::vector<int64_t> ne, const std::vector<double>& values);

struct OpCase {
    std::string name;
    std::vector<Leaf> leaves;
    std::function<Tensor*(Graph&, std::vector<Tensor*>&)> build;
    // The expected result, dense in the output's logical order.
    std::function<std::vector<double>(const std::vector<Leaf>&)> reference;
    double max_nmse = 1e-6;
    // Times the planned graph is computed: the result is the last's (a device that records a
    // graph once and submits it again must give the same result the second time).
    int evaluations = 1;
};

// Runs a case with its leaves placed on `place_on`, scheduled over `backends` (the last
// is the fallback). Returns the result as dense doubles (dequantized if needed).
std::vector<double> run_case(const OpCase& c, Backend& place_on, const std::vector<Backend*>& backends);

double nmse(const std::vector<double>& got, const std::vector<double>& want);

// Every case: each op x types x shapes (odd sizes, 1-row, non-contiguous views, large).
std::vector<OpCase> all_op_cases();

}  // namespace tessera::test
