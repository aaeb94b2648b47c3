// The table-driven op harness (after ggml's test-backend-ops). One OpCase row per op says how
// many inputs it takes, from which domain they are drawn, how shapes and parameters are drawn,
// how to run the op through the public API, and a plain float64 reference written here with
// naive loops (broadcasting included) that never calls the library. test_ops.cpp derives the
// CPU-vs-reference and bad-input checks from every row, test_ops_gpu.cpp the CUDA-vs-CPU parity.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace nn::test {

// A host float64 tensor: a shape and its values in row-major order.
struct HostTensor {
  Shape shape;
  std::vector<double> v;
  int64_t numel() const { return shape_numel(shape); }
};

// Where an input's values come from. Values are drawn fresh (never zeros) from [lo, hi],
// either continuous (sign-symmetric domains avoid a small band around 0) or integers.
struct Domain {
  double lo = -2.0;
  double hi = 2.0;
  bool integer = false;  // integers in [lo, hi]: ties and equalities happen
  bool boolean = false;  // a bool mask (cond of where), regardless of the tested dtype
};

// Shapes and op parameters drawn for one case.
struct Draw {
  Draw() = default;
  explicit Draw(std::vector<Shape> s, std::vector<int64_t> d = {})
      : shapes(std::move(s)), dims(std::move(d)) {}
  std::vector<Shape> shapes;  // one per input
  std::vector<int64_t> dims;  // reduced axes, or the softmax/max axis in dims[0]
  bool keepdim = false;       // reductions; trans_a for matmul
  bool flag = false;          // trans_b for matmul
  int64_t correction = 1;     // var
  Shape out_shape;            // copy_: the destination shape
};

// How an input tensor is laid out in memory: the harness builds non-contiguous views on purpose.
enum class Layout : uint8_t { Contiguous, Transposed, Sliced, Expanded };

// One realisable input: logical values plus a layout recipe, so the same input can be built on
// the CPU and on CUDA, in any dtype.
struct InputSpec {
  HostTensor logical;  // the values the op sees (already rounded to the test dtype)
  Layout layout = Layout::Contiguous;
  int64_t d0 = 0, d1 = 0;  // transposed dims; sliced / expanded dim in d0
  bool boolean = false;
  bool integer = false;
};

enum class ErrKind : uint8_t { Shape, Dtype, Index, Value, Device };
const char* err_kind_name(ErrKind k);

struct BadCase {
  Draw draw;
  ErrKind kind;
};

using RunFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&, const Draw&)>;
using RefFn = std::function<std::vector<HostTensor>(const std::vector<HostTensor>&, const Draw&)>;
using DrawFn = std::function<Draw(std::mt19937&)>;

struct OpCase {
  std::string name;      // unique, a C identifier (the test name)
  std::string err_name;  // what an error message must mention (e.g. "add")
  int arity = 1;
  std::vector<Domain> domains;  // one per input
  DrawFn draw;
  RunFn run;
  RefFn ref;
  // Output dtypes: nullopt means the test dtype; int64/bool outputs must match exactly.
  std::vector<std::optional<Dtype>> out_dtypes = {std::nullopt};
  double tol_scale = 1.0;     // multiplies the per-dtype tolerance (matmul: 10x)
  double floor = 1e-3;        // denominators below this count as this (cancellation-prone rows: 1)
  bool dtype_errors = true;   // derive int64-input and mixed-dtype checks
  // Non-floating dtypes the op takes (tests/op_table_int.cpp checks their results): the derived
  // checks expect a DtypeError only for the others.
  std::vector<Dtype> accepts;
  bool noncontiguous = true;  // build transposed / sliced / expanded inputs
  bool expand_ok = true;      // false for in-place rows: writing through a stride-0 view is racy
  std::vector<BadCase> bad;   // shape / index checks specific to the row
};

// The table (op_harness.cpp).
const std::vector<OpCase>& op_table();
// The integer and bool rows (tests/op_table_int.cpp), each with the dtype it runs in.
const std::vector<std::pair<OpCase, Dtype>>& int_op_cases();
const OpCase& op_case(const std::string& name);

// ---- building inputs ------------------------------------------------------------------------
double round_to(Dtype d, double x);  // the value x becomes when stored in d (host-side rounding)
std::vector<InputSpec> make_inputs(const OpCase& row, const Draw& draw, Dtype dtype,
                                   std::mt19937& rng, bool allow_layouts);
Tensor realize(const InputSpec& spec, Dtype dtype, Device device);
HostTensor to_host(const Tensor& t);

// ---- comparing ------------------------------------------------------------------------------
// The tolerance on |out - ref| / max(|ref|, floor) for outputs of dtype d.
double cpu_tolerance(Dtype d);  // CPU vs float64 reference
double gpu_tolerance(Dtype d);  // CUDA vs CPU
// Runs `row` on the CPU and on cuda:0 from the same inputs for `trials` draws (seeded by the row
// and dtype) and expects the GPU's outputs to match the CPU's within gpu_tolerance; the GPU tests
// call it after NN_REQUIRE_GPU().
void expect_gpu_matches_cpu(const OpCase& row, Dtype dtype, int trials);
// Max relative error, NaN == NaN and inf == inf counting as equal; +inf when shapes differ.
double max_rel_error(const HostTensor& out, const HostTensor& ref, double floor);
std::string describe(const Draw& d);
std::string describe(const std::vector<InputSpec>& inputs);  // the layouts, for failure messages

// ---- shapes and broadcasting used by the references -----------------------------------------
Shape broadcast_shapes(const std::vector<Shape>& shapes);
// Row-major index of `out_index` (a multi-index into `out`) in a tensor of shape `in` that
// broadcasts to `out`.
int64_t broadcast_offset(const Shape& in, const Shape& out, const std::vector<int64_t>& out_index);
std::vector<int64_t> unravel(int64_t i, const Shape& s);
int64_t ravel(const std::vector<int64_t>& idx, const Shape& s);

// Runs fn and expects an nn::Error of `kind` whose message mentions `name` (gtest failures
// otherwise, prefixed with `context`).
void expect_error(ErrKind kind, const std::string& name, const std::function<void()>& fn,
                  const std::string& context);

// The checks shared by test_ops.cpp and test_ops_gpu.cpp: every row's outputs against
// references, with the dtype each output must have.
// The tolerance for an output of dtype d is tol_of(d), times row.tol_scale for float32/64.
void expect_outputs_match(const OpCase& row, Dtype dtype, const std::vector<Tensor>& outs,
                          const std::vector<HostTensor>& refs, Device device,
                          double (*tol_of)(Dtype), const std::string& context);

// A seed per (row, dtype) so each test's draws are reproducible and independent of the others.
uint32_t case_seed(const std::string& name, Dtype dtype);
std::string case_name(const std::string& row, Dtype dtype);  // "add_float32"

inline const std::vector<Dtype>& float_dtypes() {
  static const std::vector<Dtype> kAll = {Dtype::Float32, Dtype::Float64, Dtype::BFloat16,
                                          Dtype::Float16};
  return kAll;
}

}  // namespace nn::test

namespace nn {
// gtest prints parameters through this (found by argument-dependent lookup).
void PrintTo(Dtype d, std::ostream* os);
}  // namespace nn
