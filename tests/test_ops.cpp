// The op table on the CPU: every row x every floating dtype against its float64 reference, over
// fresh random shapes (broadcasting corners, 0-d, size-0 dims) and non-contiguous inputs; and
// every row's bad inputs (wrong shapes, indices, dtypes) giving the right nn::Error naming the op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "tests/op_harness.h"

namespace nn::test {
namespace {

constexpr int kTrials = 20;

std::vector<std::string> row_names() {
  std::vector<std::string> names;
  for (const OpCase& row : op_table()) names.push_back(row.name);
  return names;
}

using RowDtype = std::tuple<std::string, Dtype>;

std::string row_dtype_name(const ::testing::TestParamInfo<RowDtype>& p) {
  return case_name(std::get<0>(p.param), std::get<1>(p.param));
}

// Runs one draw of a row on the CPU and checks it against the reference; false on failure.
bool check_case(const OpCase& row, Dtype dtype, const Draw& draw, std::mt19937& rng, bool layouts,
                const std::string& label) {
  const std::vector<InputSpec> specs = make_inputs(row, draw, dtype, rng, layouts);
  const std::string ctx = label + ": " + describe(draw) + " " + describe(specs);
  std::vector<Tensor> ins;
  std::vector<HostTensor> host;
  for (const InputSpec& s : specs) {
    ins.push_back(realize(s, dtype, Device::cpu()));
    host.push_back(s.logical);
  }
  std::vector<Tensor> outs;
  try {
    outs = row.run(ins, draw);
  } catch (const std::exception& e) {
    ADD_FAILURE() << ctx << ": threw " << e.what();
    return false;
  }
  expect_outputs_match(row, dtype, outs, row.ref(host, draw), Device::cpu(), cpu_tolerance, ctx);
  return !::testing::Test::HasFailure();
}

class OpVsReference : public ::testing::TestWithParam<RowDtype> {};

TEST_P(OpVsReference, MatchesFloat64Reference) {
  const OpCase& row = op_case(std::get<0>(GetParam()));
  const Dtype dtype = std::get<1>(GetParam());
  const uint32_t seed = case_seed(row.name, dtype);
  std::mt19937 rng(seed);
  for (int trial = 0; trial < kTrials; ++trial) {
    const Draw draw = row.draw(rng);
    // The first trial keeps every input contiguous, so a layout bug cannot hide a maths bug.
    const std::string label = row.name + " " + dtype_name(dtype) + " seed " + std::to_string(seed) +
                              " trial " + std::to_string(trial);
    if (!check_case(row, dtype, draw, rng, trial > 0, label)) break;
  }
}

// Sizes past the thresholds where a backend switches to its parallel or vectorised paths.
TEST(OpVsReferenceLarge, RepresentativeRows) {
  struct Big {
    const char* row;
    Draw draw;
  };
  auto with = [](Draw d, bool keepdim) {
    d.keepdim = keepdim;
    return d;
  };
  const std::vector<Big> cases = {
      {"exp", Draw({{300, 257}})},
      {"gelu_backward", Draw({Shape{70001}, Shape{70001}})},
      {"add", Draw({{64, 1, 300}, {1, 30, 300}})},
      {"where", Draw({{1, 4000}, {13, 4000}, {1, 1}})},
      {"sum", Draw({Shape{100003}})},
      {"sum", with(Draw({{64, 3000}}, {0}), true)},
      {"mean", Draw({{37, 2049}}, {1})},
      {"var_unbiased", Draw({{5, 40000}}, {-1})},
      {"amax", Draw({{3000, 40}}, {0})},
      {"max_dim", Draw({{16, 5000}}, {1})},
      {"argmax_all", Draw({{200, 301}})},
      {"softmax", Draw({{8, 5000}}, {-1})},
      {"softmax", Draw({{3000, 64}}, {0})},
      {"log_softmax", Draw({{4, 20000}}, {1})},
      {"softmax_backward", Draw({{8, 5000}, {8, 5000}}, {1})},
      {"matmul", Draw({{130, 257}, {257, 40}})},
      {"bmm", Draw({{3, 65, 129}, {3, 129, 33}})},
      {"to_float16", Draw({Shape{100000}})},
  };
  std::mt19937 rng(2024);
  for (Dtype dtype : {Dtype::Float32, Dtype::BFloat16}) {
    for (const Big& c : cases) {
      const OpCase& row = op_case(c.row);
      check_case(row, dtype, c.draw, rng, true,
                 std::string("large ") + c.row + " " + dtype_name(dtype));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpVsReference,
                         ::testing::Combine(::testing::ValuesIn(row_names()),
                                            ::testing::ValuesIn(float_dtypes())),
                         row_dtype_name);

// Inputs for a bad-input check: float32 and contiguous, except position `pos` in `dtype`.
std::vector<Tensor> bad_inputs(const OpCase& row, const Draw& draw, int pos, Dtype dtype,
                               std::mt19937& rng) {
  std::vector<InputSpec> specs = make_inputs(row, draw, Dtype::Float32, rng, false);
  std::vector<Tensor> ins;
  for (int i = 0; i < row.arity; ++i) {
    InputSpec s = specs[i];
    if (i == pos) s.boolean = false;  // a float given where a mask belongs is itself the error
    ins.push_back(realize(s, i == pos ? dtype : Dtype::Float32, Device::cpu()));
  }
  return ins;
}

class OpBadInput : public ::testing::TestWithParam<std::string> {};

TEST_P(OpBadInput, ThrowsNamedError) {
  const OpCase& row = op_case(GetParam());
  std::mt19937 rng(case_seed(row.name, Dtype::Int64));
  int checks = 0;
  for (const BadCase& bad : row.bad) {
    const std::vector<Tensor> ins = bad_inputs(row, bad.draw, -1, Dtype::Float32, rng);
    expect_error(
        bad.kind, row.err_name, [&] { row.run(ins, bad.draw); },
        row.name + " " + describe(bad.draw));
    ++checks;
  }
  if (row.dtype_errors) {
    Draw draw = row.draw(rng);
    std::vector<int> floats, masks;
    for (int i = 0; i < row.arity; ++i) (row.domains[i].boolean ? masks : floats).push_back(i);
    const std::string ctx = row.name + " " + describe(draw);
    for (Dtype bad : {Dtype::Int64, Dtype::Bool}) {
      if (std::find(row.accepts.begin(), row.accepts.end(), bad) != row.accepts.end()) continue;
      const std::vector<Tensor> ins = bad_inputs(row, draw, floats.at(0), bad, rng);
      expect_error(
          ErrKind::Dtype, row.err_name, [&] { row.run(ins, draw); },
          ctx + " with a " + dtype_name(bad) + " input");
      ++checks;
    }
    if (floats.size() >= 2) {  // float32 with float64: no silent promotion
      const std::vector<Tensor> ins = bad_inputs(row, draw, floats[1], Dtype::Float64, rng);
      expect_error(
          ErrKind::Dtype, row.err_name, [&] { row.run(ins, draw); }, ctx + " float32 with float64");
      ++checks;
    }
    for (int m : masks) {
      const std::vector<Tensor> ins = bad_inputs(row, draw, m, Dtype::Float32, rng);
      expect_error(
          ErrKind::Dtype, row.err_name, [&] { row.run(ins, draw); }, ctx + " float32 mask");
      ++checks;
    }
  }
  if (checks == 0) GTEST_SKIP() << row.name << " accepts every dtype and shape it is given";
}

std::vector<std::string> rows_with_bad_inputs() {
  std::vector<std::string> names;
  for (const OpCase& row : op_table())
    if (!row.bad.empty() || row.dtype_errors) names.push_back(row.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Table, OpBadInput, ::testing::ValuesIn(rows_with_bad_inputs()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// The harness itself: every layout appears, builds the view it claims, and reads back the
// logical values (which also exercises to_vector on strided and broadcast views).
TEST(OpHarness, LayoutsAreRealAndFaithful) {
  const OpCase& row = op_case("add");
  std::mt19937 rng(7);
  int seen[4] = {0, 0, 0, 0};
  for (int trial = 0; trial < 200; ++trial) {
    Draw draw(std::vector<Shape>(2, Shape{3, 2, 4}));
    for (const InputSpec& s : make_inputs(row, draw, Dtype::Float64, rng, true)) {
      const Tensor t = realize(s, Dtype::Float64, Device::cpu());
      ++seen[int(s.layout)];
      EXPECT_EQ(t.shape(), s.logical.shape);
      EXPECT_EQ(t.is_contiguous(), s.layout == Layout::Contiguous) << describe({s});
      EXPECT_EQ(to_host(t).v, s.logical.v) << describe({s});
      for (double v : s.logical.v) EXPECT_GE(std::abs(v), 0.01);  // never zeros
    }
  }
  for (int k = 0; k < 4; ++k) EXPECT_GT(seen[k], 10) << "layout " << k;
}

TEST(OpHarness, BroadcastReferenceHelpers) {
  EXPECT_EQ(broadcast_shapes({{2, 1, 3}, {4, 1}, {}}), (Shape{2, 4, 3}));
  EXPECT_EQ(broadcast_offset({4, 1}, {2, 4, 3}, {1, 2, 2}), 2);
  EXPECT_EQ(ravel(unravel(17, {2, 3, 4}), {2, 3, 4}), 17);
  EXPECT_EQ(round_to(Dtype::BFloat16, 1.0 + 1.0 / 256), 1.0);
  HostTensor a{{2}, {1.0, std::nan("")}}, b{{2}, {1.0 + 1e-6, std::nan("")}};
  EXPECT_NEAR(max_rel_error(a, b, 1e-3), 1e-6, 1e-9);
  EXPECT_TRUE(std::isinf(max_rel_error(a, HostTensor{{1, 2}, a.v}, 1e-3)));
}

// Every unary op has a forward and a backward row and every binary op a row, so a new op
// without a row is noticed (the named forms are spelled in the table, the enums here).
TEST(OpTable, CoversEveryUnaryAndBinaryOp) {
  int backward_rows = 0, binary_rows = 0;
  std::set<std::string> binary_names;  // other two-input rows (matmul, linear, ...) do not count
  for (int op = 0; op <= int(BinaryOp::Ge); ++op) binary_names.insert(binary_op_name(BinaryOp(op)));
  for (const OpCase& row : op_table()) {
    const std::string& n = row.name;
    backward_rows += n.size() > 9 && n.compare(n.size() - 9, 9, "_backward") == 0 &&
                     row.arity == 2 && n.find("softmax") == std::string::npos;
    binary_rows += row.arity == 2 && binary_names.count(row.err_name) > 0 &&
                   n.find("_backward") == std::string::npos &&
                   n.find("_inplace") == std::string::npos;
  }
  EXPECT_EQ(backward_rows, int(UnaryOp::Softplus) + 1);
  EXPECT_EQ(binary_rows, int(BinaryOp::Ge) + 1);
  std::set<std::string> names;
  for (int op = 0; op <= int(UnaryOp::Softplus); ++op) names.insert(unary_op_name(UnaryOp(op)));
  for (int op = 0; op <= int(BinaryOp::Ge); ++op) names.insert(binary_op_name(BinaryOp(op)));
  EXPECT_GE(names.size(), size_t(UnaryOp::Softplus) + 1 + size_t(BinaryOp::Ge) + 1 - 1)
      << "op names must be distinct (pow may be both a unary and a binary op's name)";
}

}  // namespace
}  // namespace nn::test
