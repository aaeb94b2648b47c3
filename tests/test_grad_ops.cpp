// Gradients of every differentiable op: each row of the gradient table (tests/grad_table.h)
// checked against float64 central differences over fresh random shapes; a coverage test that
// ties the table to graph/functions.h; and exact values at the kinks the table avoids (ties of
// max/min, relu and abs at 0, clamp bounds) and for dropout's mask.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "graph/functions.h"
#include "tests/grad_table.h"
#include "tests/op_harness.h"

namespace nn::test {
namespace {

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return from_vector(v, s, {Dtype::Float64});
}

// ---- the table ---------------------------------------------------------------------------------

std::vector<std::string> row_names() {
  std::vector<std::string> names;
  for (const GradRow& row : grad_table()) names.push_back(row.name);
  return names;
}

const GradRow& row_named(const std::string& name) {
  for (const GradRow& row : grad_table())
    if (row.name == name) return row;
  throw std::runtime_error("no grad row " + name);
}

class GradTable : public ::testing::TestWithParam<std::string> {};

TEST_P(GradTable, MatchesFiniteDifferences) {
  const GradRow& row = row_named(GetParam());
  const uint32_t seed = case_seed("grad_" + row.name, Dtype::Float64);
  std::mt19937 rng(seed);
  for (int trial = 0; trial < row.trials; ++trial) {
    GradInstance g = row.make(rng, trial);
    const std::string what = row.name + " (seed " + std::to_string(seed) + ", trial " +
                             std::to_string(trial) + ": " + g.desc + ")";
    EXPECT_TRUE(grad_check(what, g.fn, g.inputs, g.options));
    if (HasFailure()) break;
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, GradTable, ::testing::ValuesIn(row_names()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(GradTable, RowNamesAreUnique) {
  std::set<std::string> seen;
  for (const GradRow& row : grad_table())
    EXPECT_TRUE(seen.insert(row.name).second) << "duplicate row " << row.name;
}

// Every function graph/functions.h declares has a row, and every row names a real function: a
// new differentiable op cannot land without its gradient check.
TEST(GradTable, CoversEveryFunctionOfTheHeader) {
  std::ifstream in(std::string(NN_TEST_SOURCE_DIR) + "/graph/functions.h");
  ASSERT_TRUE(in.good()) << "cannot read graph/functions.h under " << NN_TEST_SOURCE_DIR;
  std::stringstream text;
  text << in.rdbuf();
  const std::vector<std::string> declared = declared_signatures(text.str());
  // A floor, so a parser that silently stops matching cannot pass this test.
  ASSERT_GE(declared.size(), 70u);

  std::set<std::string> covered;
  for (const GradRow& row : grad_table()) covered.insert(row.covers.begin(), row.covers.end());
  const std::set<std::string> declared_set(declared.begin(), declared.end());
  for (const std::string& sig : declared)
    EXPECT_TRUE(covered.count(sig)) << sig << " is declared in graph/functions.h but no row of "
                                    << "tests/grad_table*.cpp covers it";
  for (const std::string& sig : covered)
    EXPECT_TRUE(declared_set.count(sig))
        << "a grad row covers " << sig << ", which graph/functions.h does not declare";
}

TEST(GradTable, SignatureParser) {
  const std::string header = R"(
    namespace nn {
    // Variable commented(const Variable& x);
    Variable f(const Variable& x, double a = 1.0);
    std::pair<Variable, Tensor> g(const Variable& x, int64_t dim,
                                  bool keepdim = false);
    std::vector<Variable> h(const std::vector<Variable>& xs, Generator* gen = nullptr);
    Variable operator*(double a, const Variable& b);
    Reduction not_an_op(const std::string& name);
    })";
  const std::vector<std::string> expected = {"f(Variable, double)", "g(Variable, int64_t, bool)",
                                             "h(vector<Variable>, Generator*)",
                                             "operator*(double, Variable)"};
  EXPECT_EQ(declared_signatures(header), expected);
}

// ---- exact values at the kinks -----------------------------------------------------------------

// d sum(f(x) * w) / dx for a leaf x.
std::vector<double> grad_of(const std::function<Variable(const Variable&)>& f, const Tensor& x) {
  Variable v(x, true);
  Variable y = f(v);
  y.backward(ones_like(y.data()));
  return values(v.grad());
}

TEST(GradKinks, AmaxAndAminShareTiesEvenly) {
  const Tensor x = f64({1, 3, 3, 2, 5, 0, 5, 5}, {2, 4});
  EXPECT_EQ(grad_of([](const Variable& v) { return amax(v, {1}); }, x),
            (std::vector<double>{0, 0.5, 0.5, 0, 1.0 / 3, 0, 1.0 / 3, 1.0 / 3}));
  EXPECT_EQ(grad_of([](const Variable& v) { return amax(v); }, x),
            (std::vector<double>{0, 0, 0, 0, 1.0 / 3, 0, 1.0 / 3, 1.0 / 3}));
  const Tensor y = f64({2, -1, -1, 4}, {4});
  EXPECT_EQ(grad_of([](const Variable& v) { return amin(v, {0}, true); }, y),
            (std::vector<double>{0, 0.5, 0.5, 0}));
}

TEST(GradKinks, MaxAndMinWithIndicesGiveTheGradientToTheReturnedIndex) {
  const Tensor x = f64({1, 3, 3, 2, 5, 5, 0, 5}, {2, 4});
  Variable v(x, true);
  auto [values_max, idx] = max(v, 1);
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  values_max.backward(f64({2, 7}, {2}));
  EXPECT_EQ(values(v.grad()), (std::vector<double>{0, 2, 0, 0, 7, 0, 0, 0}));

  Variable w(f64({4, 1, 1, 1, 9, 1}, {3, 2}), true);
  auto [values_min, idx_min] = min(w, 0, true);
  EXPECT_EQ(idx_min.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  values_min.backward(ones_like(values_min.data()));
  EXPECT_EQ(values(w.grad()), (std::vector<double>{0, 1, 1, 0, 0, 0}));
}

TEST(GradKinks, MaximumAndMinimumSplitTies) {
  Variable a(f64({1, 2, 3}, {3}), true), b(f64({1, 5, 0}, {3}), true);
  sum(maximum(a, b)).backward();
  EXPECT_EQ(values(a.grad()), (std::vector<double>{0.5, 0, 1}));
  EXPECT_EQ(values(b.grad()), (std::vector<double>{0.5, 1, 0}));
  a.zero_grad();
  b.zero_grad();
  sum(minimum(a, b)).backward();
  EXPECT_EQ(values(a.grad()), (std::vector<double>{0.5, 1, 0}));
  EXPECT_EQ(values(b.grad()), (std::vector<double>{0.5, 0, 1}));
  // A broadcast tie: b's one element collects from every position.
  Variable c(f64({2, 2, 1}, {3}), true), d(f64({2}, {1}), true);
  sum(maximum(c, d)).backward();
  EXPECT_EQ(values(c.grad()), (std::vector<double>{0.5, 0.5, 0}));
  EXPECT_EQ(values(d.grad()), (std::vector<double>{2.0}));
}

TEST(GradKinks, ReluAbsAndClampAtTheirKinks) {
  const Tensor x = f64({-1, 0, 2}, {3});
  EXPECT_EQ(grad_of([](const Variable& v) { return relu(v); }, x), (std::vector<double>{0, 0, 1}));
  EXPECT_EQ(grad_of([](const Variable& v) { return abs(v); }, x), (std::vector<double>{-1, 0, 1}));
  EXPECT_EQ(grad_of([](const Variable& v) { return leaky_relu(v, 0.25); }, x),
            (std::vector<double>{0.25, 0.25, 1}));
  // Clamp passes the gradient on its bounds (lo <= x <= hi), as PyTorch does.
  const Tensor y = f64({-2, -1, 0.5, 1, 3}, {5});
  EXPECT_EQ(grad_of([](const Variable& v) { return clamp(v, -1.0, 1.0); }, y),
            (std::vector<double>{0, 1, 1, 1, 0}));
}

// ---- dropout ------------------------------------------------------------------------------------

TEST(GradDropout, GradientIsTheScaledMaskOfTheSameDraw) {
  const double p = 0.4;
  Tensor x = empty({7, 33}, {Dtype::Float64});
  uniform_(x, 1.0, 2.0);
  Generator gen(99);
  Variable v(x, true);
  Variable y = dropout(v, p, true, &gen);
  y.backward(ones_like(y.data()));

  Generator same(99);
  Tensor mask = empty({7, 33}, {Dtype::Float64});
  bernoulli_(mask, 1.0 - p, &same);
  const std::vector<double> m = values(mask), g = values(v.grad()), out = values(y.data()),
                            in = values(x);
  int64_t dropped = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(g[i], m[i] / (1.0 - p)) << "element " << i;
    EXPECT_EQ(out[i], in[i] * (m[i] / (1.0 - p))) << "element " << i;
    dropped += m[i] == 0.0;
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, int64_t(m.size()));
  EXPECT_EQ(gen.offset(), same.offset());  // one draw per call
}

TEST(GradDropout, DropsAboutAFractionP) {
  Generator gen(5);
  Variable y = dropout(Variable(ones({100000}), true), 0.3, true, &gen);
  const std::vector<float> out = y.data().to_vector<float>();
  int64_t zeros = 0;
  for (float v : out) zeros += v == 0.0f;
  EXPECT_NEAR(double(zeros) / double(out.size()), 0.3, 0.01);
}

TEST(GradDropout, IdentityInEvaluationOrWithPZeroAndZerosWithPOne) {
  Variable x(f64({1, 2, 3}, {3}), true);
  EXPECT_TRUE(dropout(x, 0.5, false).same(x));
  EXPECT_TRUE(dropout(x, 0.0, true).same(x));
  Variable z = dropout(x, 1.0, true);
  EXPECT_EQ(values(z.data()), (std::vector<double>{0, 0, 0}));
  sum(z).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{0, 0, 0}));
  expect_error(
      ErrKind::Value, "dropout", [&] { dropout(x, 1.5, true); }, "p = 1.5");
  expect_error(
      ErrKind::Value, "dropout", [&] { dropout(x, -0.1, true); }, "p = -0.1");
}

// ---- recording and errors -----------------------------------------------------------------------

TEST(GradOps, NothingIsRecordedWithoutAGradient) {
  Variable x(f64({1, 2, 3, 4}, {2, 2})), w(f64({1, 0, 0, 1}, {2, 2}));
  EXPECT_FALSE(linear(x, w, {}, Activation::Relu).requires_grad());
  EXPECT_FALSE(cross_entropy(x, from_vector<int64_t>({0, 1}, {2})).requires_grad());
  EXPECT_FALSE(max(x, 1).first.requires_grad());
  Variable xg(f64({1, 2, 3, 4}, {2, 2}), true);
  NoGradGuard guard;
  EXPECT_FALSE(linear(xg, w, {}, Activation::Gelu).requires_grad());
  EXPECT_FALSE(exp(xg).requires_grad());
  EXPECT_TRUE(exp(xg).is_leaf());
}

TEST(GradOps, CrossEntropyMeanIsSumOverSampleWeights) {
  Variable logits(f64({0.5, -1, 2, 0.1, 0.2, 0.3, 3, 1, -2}, {3, 3}), true);
  const Tensor target = from_vector<int64_t>({2, -100, 0}, {3});
  CrossEntropyOptions opt;
  opt.weight = f64({0.5, 1.0, 2.0}, {3});
  const double total = cross_entropy(logits, target, opt, Reduction::Sum).item();
  const double mean = cross_entropy(logits, target, opt, Reduction::Mean).item();
  EXPECT_NEAR(mean, total / (2.0 + 0.5), 1e-12);
  const std::vector<double> none =
      values(cross_entropy(logits, target, opt, Reduction::None).data());
  EXPECT_EQ(none[1], 0.0);
  EXPECT_NEAR(none[0] + none[2], total, 1e-12);
  EXPECT_EQ(parse_reduction("mean"), Reduction::Mean);
  EXPECT_EQ(parse_reduction("none"), Reduction::None);
  expect_error(
      ErrKind::Value, "parse_reduction", [] { parse_reduction("avg"); }, "avg");
}

TEST(GradOps, ComparisonsAndIntegerCastsHaveNoGradient) {
  Variable a(f64({1, 2}, {2}), true), b(f64({2, 1}, {2}), true);
  expect_error(
      ErrKind::Value, "eq", [&] { binary(BinaryOp::Eq, a, b); }, "binary eq");
  Variable i = to(a, Dtype::Int64);
  EXPECT_FALSE(i.requires_grad());
  EXPECT_EQ(i.dtype(), Dtype::Int64);
}

TEST(GradOps, ForwardErrorsAreTheTensorOps) {
  Variable a(f64({1, 2, 3}, {3}), true), b(f64({1, 2}, {2}), true);
  expect_error(
      ErrKind::Shape, "add", [&] { add(a, b); }, "add");
  expect_error(
      ErrKind::Shape, "matmul", [&] { matmul(a, b); }, "matmul");
  expect_error(
      ErrKind::Index, "select", [&] { select(a, 0, 3); }, "select");
  expect_error(
      ErrKind::Value, "chunk", [&] { chunk(a, 0); }, "chunk 0");
  expect_error(
      ErrKind::Shape, "split",
      [&] {
        split(a, {1, 1});
      },
      "split");
  expect_error(
      ErrKind::Shape, "cat",
      [&] {
        cat({a, reshape(b, {1, 2})});
      },
      "cat ranks");
  expect_error(
      ErrKind::Value, "flatten",
      [&] {
        flatten(reshape(a, {1, 3}), 1, 0);
      },
      "flatten");
}

TEST(GradOps, ChunkAndSplitSizes) {
  Variable x(f64({0, 1, 2, 3, 4, 5, 6}, {7}), true);
  std::vector<int64_t> sizes;
  for (const Variable& part : chunk(x, 3)) sizes.push_back(part.numel());
  EXPECT_EQ(sizes, (std::vector<int64_t>{3, 3, 1}));
  sizes.clear();
  for (const Variable& part : chunk(x, 7)) sizes.push_back(part.numel());
  EXPECT_EQ(sizes.size(), 7u);
  std::vector<Variable> parts = split(x, {2, 0, 5});
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(values(parts[2].data()), (std::vector<double>{2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace nn::test
