// Integer and bool tensors on the CPU: the rows of tests/op_table_int.cpp against their exact
// host references, plus what a random row cannot show: exactness beyond 2^53, wrapping overflow,
// the in-place forms, the autograd boundary, BatchNorm's int64 batch count and the dtype errors
// (no promotion between dtypes).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "graph/functions.h"
#include "layers/batchnorm.h"
#include "tests/op_refs.h"
#include "tests/test_util.h"

namespace nn::test {
namespace {

using ::testing::HasSubstr;

constexpr int kTrials = 24;
constexpr int64_t kTwo53 = int64_t(1) << 53;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

std::string case_label(const ::testing::TestParamInfo<size_t>& p) {
  return int_op_cases()[p.param].first.name;
}

std::vector<size_t> case_indices() {
  std::vector<size_t> idx(int_op_cases().size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  return idx;
}

// ---- the table on the CPU against the references ---------------------------------------------

class IntOpTable : public ::testing::TestWithParam<size_t> {};

TEST_P(IntOpTable, MatchesExactReference) {
  const auto& [row, dtype] = int_op_cases()[GetParam()];
  const uint32_t seed = case_seed(row.name, dtype);
  std::mt19937 rng(seed);
  for (int trial = 0; trial < kTrials && !HasFailure(); ++trial) {
    const Draw draw = row.draw(rng);
    const std::vector<InputSpec> specs = make_inputs(row, draw, dtype, rng, trial > 0);
    std::vector<Tensor> ins;
    std::vector<HostTensor> host;
    for (const InputSpec& s : specs) {
      ins.push_back(realize(s, dtype, Device::cpu()));
      host.push_back(s.logical);
    }
    std::ostringstream ctx;
    ctx << row.name << " seed " << seed << " trial " << trial << ": " << describe(draw) << " "
        << describe(specs);
    std::vector<Tensor> outs;
    try {
      outs = row.run(ins, draw);
    } catch (const std::exception& e) {
      ADD_FAILURE() << ctx.str() << ": threw " << e.what();
      return;
    }
    expect_outputs_match(row, dtype, outs, row.ref(host, draw), Device::cpu(), cpu_tolerance,
                         ctx.str());
  }
}

INSTANTIATE_TEST_SUITE_P(Int, IntOpTable, ::testing::ValuesIn(case_indices()), case_label);

// ---- exactness, overflow, empty tensors ---------------------------------------------------

Tensor ints(const std::vector<int64_t>& v, Shape shape = {}) {
  if (shape.empty() && v.size() != 1) shape = {int64_t(v.size())};
  return from_vector<int64_t>(v, shape, {Dtype::Int64});
}
Tensor bools(const std::vector<int64_t>& v) {
  return from_vector<int64_t>(v, {int64_t(v.size())}, {Dtype::Bool});
}
std::vector<int64_t> vals(const Tensor& t) { return t.to_vector<int64_t>(); }

TEST(IntOps, SumsAreExactBeyondTwoPow53) {
  // float64 would round 2^53 + 1 to 2^53.
  Tensor x = ints({kTwo53, 1});
  Tensor s = sum(x);
  EXPECT_EQ(s.dtype(), Dtype::Int64);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(vals(s), (std::vector<int64_t>{kTwo53 + 1}));
  // Along an axis, over a transposed view, with keepdim.
  Tensor m = ints({kTwo53, 3, 1, kTwo53 + 2}, {2, 2}).t();  // [[2^53, 1], [3, 2^53 + 2]]
  EXPECT_EQ(vals(sum(m, {1})), (std::vector<int64_t>{kTwo53 + 1, kTwo53 + 5}));
  EXPECT_EQ(sum(m, {0}, true).shape(), (Shape{1, 2}));
  EXPECT_EQ(vals(sum(m, {0}, true)), (std::vector<int64_t>{kTwo53 + 3, kTwo53 + 3}));
  // Long rows take the chunked path; the parts merge exactly.
  Tensor big =
      add(zeros({100000}, {Dtype::Int64}), full({}, double(kTwo53 / 1024), {Dtype::Int64}));
  EXPECT_EQ(vals(sum(big)), (std::vector<int64_t>{(kTwo53 / 1024) * 100000}));
}

TEST(IntOps, ArithmeticAndComparisonsAreExactBeyondTwoPow53) {
  Tensor a = ints({kTwo53, kTwo53 + 1, -kTwo53 - 3});
  Tensor b = ints({1, 1, -1});
  EXPECT_EQ(vals(add(a, b)), (std::vector<int64_t>{kTwo53 + 1, kTwo53 + 2, -kTwo53 - 4}));
  EXPECT_EQ(vals(sub(a, b)), (std::vector<int64_t>{kTwo53 - 1, kTwo53, -kTwo53 - 2}));
  EXPECT_EQ(vals(mul(a, ints({3}))),
            (std::vector<int64_t>{3 * kTwo53, 3 * kTwo53 + 3, -3 * kTwo53 - 9}));
  EXPECT_EQ(vals(maximum(a, ints({kTwo53 + 1}))),
            (std::vector<int64_t>{kTwo53 + 1, kTwo53 + 1, kTwo53 + 1}));
  EXPECT_EQ(vals(minimum(a, ints({kTwo53}))), (std::vector<int64_t>{kTwo53, kTwo53, -kTwo53 - 3}));
  EXPECT_EQ(vals(neg(a)), (std::vector<int64_t>{-kTwo53, -kTwo53 - 1, kTwo53 + 3}));
  EXPECT_EQ(vals(abs(a)), (std::vector<int64_t>{kTwo53, kTwo53 + 1, kTwo53 + 3}));
  // Equal as doubles, different as int64.
  Tensor c = ints({kTwo53, kTwo53, kTwo53});
  Tensor d = ints({kTwo53 + 1, kTwo53, kTwo53 - 1});
  EXPECT_THAT(eq(c, d).to_vector<bool>(), ::testing::ElementsAre(false, true, false));
  EXPECT_THAT(lt(c, d).to_vector<bool>(), ::testing::ElementsAre(true, false, false));
  EXPECT_THAT(ge(c, d).to_vector<bool>(), ::testing::ElementsAre(false, true, true));
  // Extremes and their indices.
  Tensor e = ints({kTwo53, kTwo53 + 1, kTwo53 - 1, kTwo53 + 1});
  EXPECT_EQ(vals(amax(e)), (std::vector<int64_t>{kTwo53 + 1}));
  EXPECT_EQ(vals(amin(e)), (std::vector<int64_t>{kTwo53 - 1}));
  EXPECT_EQ(vals(argmax(e)), (std::vector<int64_t>{1}));  // the first of the tie
  auto [v, i] = min(e, 0);
  EXPECT_EQ(vals(v), (std::vector<int64_t>{kTwo53 - 1}));
  EXPECT_EQ(vals(i), (std::vector<int64_t>{2}));
  EXPECT_EQ(vals(max(ints({kMin, kMax, 0}))), (std::vector<int64_t>{kMax}));
  EXPECT_EQ(vals(min(ints({kMax, kMin, 0}))), (std::vector<int64_t>{kMin}));
}

TEST(IntOps, OverflowWrapsAsInPyTorch) {
  EXPECT_EQ(vals(add(ints({kMax}), ints({1}))), (std::vector<int64_t>{kMin}));
  EXPECT_EQ(vals(sub(ints({kMin}), ints({1}))), (std::vector<int64_t>{kMax}));
  EXPECT_EQ(vals(mul(ints({kMax}), ints({2}))), (std::vector<int64_t>{-2}));
  EXPECT_EQ(vals(neg(ints({kMin}))), (std::vector<int64_t>{kMin}));
  EXPECT_EQ(vals(abs(ints({kMin}))), (std::vector<int64_t>{kMin}));
  EXPECT_EQ(vals(sum(ints({kMax, 1}))), (std::vector<int64_t>{kMin}));
}

TEST(IntOps, BoolSumsCountExactly) {
  Tensor mask = bools({1, 0, 1, 1, 0});
  Tensor s = sum(mask);
  EXPECT_EQ(s.dtype(), Dtype::Int64);
  EXPECT_EQ(vals(s), (std::vector<int64_t>{3}));
  // Past 2^24, where a float accumulator stops counting by ones.
  const int64_t n = (int64_t(1) << 24) + 3;
  EXPECT_EQ(vals(sum(ones({n}, {Dtype::Bool}))), (std::vector<int64_t>{n}));
  Tensor grid = from_vector<int64_t>({1, 0, 1, 1, 1, 0}, {2, 3}, {Dtype::Bool});
  EXPECT_EQ(vals(sum(grid, {0})), (std::vector<int64_t>{2, 1, 1}));
  EXPECT_EQ(vals(sum(grid, {-1}, true)), (std::vector<int64_t>{2, 2}));
}

TEST(IntOps, EmptyTensors) {
  Tensor e = zeros({0, 3}, {Dtype::Int64});
  EXPECT_EQ(vals(sum(e)), (std::vector<int64_t>{0}));
  EXPECT_EQ(sum(e).dtype(), Dtype::Int64);
  EXPECT_EQ(vals(sum(e, {0})), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(sum(e, {1}).shape(), (Shape{0}));
  EXPECT_EQ(vals(sum(zeros({0}, {Dtype::Bool}))), (std::vector<int64_t>{0}));
  EXPECT_EQ(add(e, ints({1, 2, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(eq(e, ints({1, 2, 3})).dtype(), Dtype::Bool);
  EXPECT_EQ(neg(e).shape(), (Shape{0, 3}));
  EXPECT_EQ(amax(e, {1}).shape(), (Shape{0}));  // no reduced element is empty: fine
  expect_error(
      ErrKind::Value, "amax", [&] { amax(e); }, "amax over an empty extent");
  expect_error(
      ErrKind::Value, "argmax", [&] { argmax(e, 0); }, "argmax over an empty axis");
}

TEST(IntOps, InPlaceAddCountsInInt64) {
  Tensor count = zeros({}, {Dtype::Int64});
  fill_(count, double(kTwo53));
  add_(count, 1.0);
  EXPECT_EQ(vals(count), (std::vector<int64_t>{kTwo53 + 1}));
  Tensor a = ints({1, 2, 3, 4, 5, 6}, {2, 3});
  add_(a, ints({10, 20, 30}));  // b broadcasts into a
  EXPECT_EQ(vals(a), (std::vector<int64_t>{11, 22, 33, 14, 25, 36}));
  mul_(a, 2.0);
  EXPECT_EQ(vals(a), (std::vector<int64_t>{22, 44, 66, 28, 50, 72}));
  Tensor col = a.select(1, 0);  // a strided view, written through
  sub_(col, ints({2}));
  EXPECT_EQ(vals(a), (std::vector<int64_t>{20, 44, 66, 26, 50, 72}));
  add_(a, a);  // exact aliasing is elementwise-safe
  EXPECT_EQ(vals(a), (std::vector<int64_t>{40, 88, 132, 52, 100, 144}));
}

TEST(IntOps, PyTorchIdioms) {
  Tensor labels = ints({0, 3, 5, 7, 3});
  Tensor logits = from_vector<float>({0.9f, 0.1f, 0.f, 0.f,  0.f, 0.f, 0.f, 0.f,   // -> 0
                                      0.f,  0.f,  0.f, 0.2f, 0.f, 0.f, 0.f, 0.f,   // -> 3
                                      0.f,  0.f,  0.f, 0.f,  0.f, 0.f, 0.f, 0.7f,  // -> 7
                                      0.f,  0.f,  0.f, 0.f,  0.f, 0.f, 0.f, 0.5f,  // -> 7
                                      0.f,  0.f,  0.f, 0.4f, 0.f, 0.f, 0.f, 0.f},  // -> 3
                                     {5, 8});
  Tensor correct = sum(eq(argmax(logits, 1), labels));
  EXPECT_EQ(correct.dtype(), Dtype::Int64);
  EXPECT_EQ(vals(correct), (std::vector<int64_t>{4}));
  EXPECT_EQ(vals(sum(binary(BinaryOp::Ne, labels, 3.0))), (std::vector<int64_t>{3}));
  EXPECT_EQ(vals(labels + 1.0), (std::vector<int64_t>{1, 4, 6, 8, 4}));
  EXPECT_EQ(vals(labels * 2.0), (std::vector<int64_t>{0, 6, 10, 14, 6}));
  EXPECT_EQ(vals(labels - 1.0), (std::vector<int64_t>{-1, 2, 4, 6, 2}));
  EXPECT_EQ(vals(where(binary(BinaryOp::Gt, labels, 4.0), labels, zeros_like(labels))),
            (std::vector<int64_t>{0, 0, 5, 7, 0}));
  EXPECT_THAT(binary(BinaryOp::Eq, bools({1, 0}), 1.0).to_vector<bool>(),
              ::testing::ElementsAre(true, false));
  EXPECT_EQ(vals(sum(bools({1, 0, 1}), {}, true)), (std::vector<int64_t>{2}));
}

// ---- the autograd boundary ------------------------------------------------------------------

TEST(IntOps, IntegerResultsRecordNoGraph) {
  Variable labels(ints({1, 2, 2}));
  Variable count = sum(labels);
  EXPECT_EQ(count.dtype(), Dtype::Int64);
  EXPECT_FALSE(count.requires_grad());
  Variable shifted = add(labels, 1.0);
  EXPECT_FALSE(shifted.requires_grad());
  EXPECT_EQ(vals(shifted.data()), (std::vector<int64_t>{2, 3, 3}));
  expect_error(
      ErrKind::Dtype, "requires_grad_", [&] { Variable(ints({1})).requires_grad_(); },
      "int64 leaf requiring a gradient");
  // A float that needs a gradient mixed with int64 is refused before any node is recorded.
  Variable w(from_vector<float>({1.f, 2.f, 3.f}, {3}), true);
  expect_error(
      ErrKind::Dtype, "int64", [&] { mul(w, labels); }, "float32 Variable * int64");
  expect_error(
      ErrKind::Value, "comparison", [&] { binary(BinaryOp::Eq, labels, labels); },
      "a Variable comparison");
}

TEST(IntOps, BatchNormCountsBatchesInInt64) {
  BatchNorm1d bn(2);
  fill_(bn.num_batches_tracked(), double(kTwo53));  // float64 could not count past here
  bn.train();
  bn(Variable(from_vector<float>({1.f, 2.f, 3.f, 5.f}, {2, 2})));
  EXPECT_EQ(bn.num_batches_tracked().dtype(), Dtype::Int64);
  EXPECT_EQ(vals(bn.num_batches_tracked()), (std::vector<int64_t>{kTwo53 + 1}));
  bn.eval();
  bn(Variable(from_vector<float>({1.f, 2.f, 3.f, 5.f}, {2, 2})));
  EXPECT_EQ(vals(bn.num_batches_tracked()), (std::vector<int64_t>{kTwo53 + 1}));
}

// ---- errors: no promotion, and ops the integer dtypes do not have ------------------------------

struct ErrorCase {
  std::string what;
  ErrKind kind;
  std::vector<std::string> mentions;
  std::function<void()> fn;
};

TEST(IntOps, ErrorsNameTheOpAndTheDtypes) {
  const Tensor i = ints({1, 2, 3});
  const Tensor b = bools({1, 0, 1});
  const Tensor f = from_vector<float>({1.f, 2.f, 3.f}, {3});
  const std::vector<ErrorCase> cases = {
      {"int64 + float32", ErrKind::Dtype, {"add", "int64", "float32"}, [&] { add(i, f); }},
      {"float32 * int64", ErrKind::Dtype, {"mul", "float32", "int64"}, [&] { mul(f, i); }},
      {"int64 == bool", ErrKind::Dtype, {"eq", "int64", "bool"}, [&] { eq(i, b); }},
      {"float32 < int64", ErrKind::Dtype, {"lt", "float32", "int64"}, [&] { lt(f, i); }},
      {"where int64 / float32",
       ErrKind::Dtype,
       {"where", "int64", "float32"},
       [&] { where(b, i, f); }},
      {"mean of int64", ErrKind::Dtype, {"mean", "int64", "convert"}, [&] { mean(i); }},
      {"mean of bool", ErrKind::Dtype, {"mean", "bool"}, [&] { mean(b); }},
      {"var of int64", ErrKind::Dtype, {"var", "int64"}, [&] { var(i); }},
      {"int64 / int64", ErrKind::Dtype, {"div", "int64", "convert"}, [&] { div(i, i); }},
      {"int64 / 2", ErrKind::Dtype, {"div", "int64"}, [&] { (void)(i / 2.0); }},
      {"int64 div_",
       ErrKind::Dtype,
       {"div_", "int64"},
       [&] {
         Tensor c = i.clone();
         div_(c, i);
       }},
      {"pow of int64", ErrKind::Dtype, {"pow", "int64"}, [&] { pow(i, i); }},
      {"pow(int64, 2)", ErrKind::Dtype, {"pow", "int64"}, [&] { pow(i, 2.0); }},
      {"exp of int64", ErrKind::Dtype, {"exp", "int64"}, [&] { exp(i); }},
      {"relu of int64", ErrKind::Dtype, {"relu", "int64"}, [&] { relu(i); }},
      {"softmax of int64", ErrKind::Dtype, {"softmax", "int64"}, [&] { softmax(i); }},
      {"neg of bool", ErrKind::Dtype, {"neg", "bool"}, [&] { neg(b); }},
      {"abs of bool", ErrKind::Dtype, {"abs", "bool"}, [&] { abs(b); }},
      {"sign of bool", ErrKind::Dtype, {"sign", "bool"}, [&] { sign(b); }},
      {"bool + bool", ErrKind::Dtype, {"add", "bool"}, [&] { add(b, b); }},
      {"maximum of bool", ErrKind::Dtype, {"maximum", "bool"}, [&] { maximum(b, b); }},
      {"bool + 1", ErrKind::Dtype, {"add", "bool"}, [&] { (void)(b + 1.0); }},
      {"int64 + 2.5", ErrKind::Dtype, {"add", "2.5", "int64"}, [&] { (void)(i + 2.5); }},
      {"int64 < 2.5", ErrKind::Dtype, {"lt", "2.5"}, [&] { binary(BinaryOp::Lt, i, 2.5); }},
      {"int64 + nan",
       ErrKind::Dtype,
       {"add", "int64"},
       [&] { (void)(i + std::numeric_limits<double>::quiet_NaN()); }},
      {"int64 + 1e19", ErrKind::Dtype, {"add", "int64"}, [&] { (void)(i + 1e19); }},
      {"int64 add_ 0.5",
       ErrKind::Dtype,
       {"add_", "0.5"},
       [&] {
         Tensor c = i.clone();
         add_(c, 0.5);
       }},
      {"bool == 2", ErrKind::Dtype, {"eq", "bool"}, [&] { binary(BinaryOp::Eq, b, 2.0); }},
      {"amax of bool", ErrKind::Dtype, {"amax", "bool"}, [&] { amax(b); }},
      {"argmax of bool", ErrKind::Dtype, {"argmax", "bool"}, [&] { argmax(b, 0); }},
      {"max of bool", ErrKind::Dtype, {"max", "bool"}, [&] { max(b, 0); }},
      {"int64 add_ float32",
       ErrKind::Dtype,
       {"add_", "int64", "float32"},
       [&] {
         Tensor c = i.clone();
         add_(c, f);
       }},
      {"comparison in place",
       ErrKind::Dtype,
       {"gt_", "bool"},
       [&] {
         Tensor c = i.clone();
         binary_(BinaryOp::Gt, c, i);
       }},
      {"add_ b wider than a",
       ErrKind::Shape,
       {"add_"},
       [&] {
         Tensor c = i.clone();
         add_(c, ints({1, 2, 3, 4, 5, 6}, {2, 3}));
       }},
      {"sum dim twice",
       ErrKind::Value,
       {"sum"},
       [&] {
         sum(i, {0, -1});
       }},
  };
  for (const ErrorCase& c : cases) {
    for (const std::string& m : c.mentions) expect_error(c.kind, m, c.fn, c.what);
  }
}

}  // namespace
}  // namespace nn::test
