// The autograd engine (graph/variable.h): leaves and results, requires_grad propagation,
// accumulation, zero_grad, retain_graph, grad mode, detach, retain_grad, nn::grad, graphs with
// shared and reused nodes, very deep graphs (backward and teardown without recursion), and the
// engine's errors.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/functions.h"
#include "tests/op_harness.h"

namespace nn::test {
namespace {

Tensor f64(const std::vector<double>& v, const Shape& s) {
  return from_vector(v, s, {Dtype::Float64});
}
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

TEST(Autograd, LeavesAndResults) {
  Variable x(f64({1, 2}, {2}), true);
  EXPECT_TRUE(x.is_leaf());
  EXPECT_TRUE(x.requires_grad());
  EXPECT_STREQ(x.op_name(), "");
  EXPECT_FALSE(x.grad().defined());

  Variable y = x * 2.0;
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(y.requires_grad());
  EXPECT_STREQ(y.op_name(), "mul");
  EXPECT_NE(y.str().find("grad_fn=mul"), std::string::npos) << y.str();

  Variable c(f64({1, 2}, {2}));
  Variable z = c * 2.0;
  EXPECT_TRUE(z.is_leaf());
  EXPECT_FALSE(z.requires_grad());
  EXPECT_FALSE(Variable().defined());
}

TEST(Autograd, RequiresGradPropagatesFromAnyInput) {
  Variable a(f64({1, 2}, {2})), b(f64({3, 4}, {2}), true);
  EXPECT_TRUE((a + b).requires_grad());
  EXPECT_TRUE((b * a).requires_grad());
  EXPECT_FALSE((a * a).requires_grad());
  Variable s = sum(a * b);
  s.backward();
  EXPECT_FALSE(a.grad().defined());  // a constant gets nothing
  EXPECT_EQ(values(b.grad()), (std::vector<double>{1, 2}));
}

TEST(Autograd, BackwardOnALeaf) {
  Variable x(f64({1, 2, 3}, {3}), true);
  x.backward(f64({4, 5, 6}, {3}));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{4, 5, 6}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Variable x(f64({1, -2, 3}, {3}), true);
  sum(x * x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, -4, 6}));
  sum(x * x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{4, -8, 12}));
  sum(x * 3.0).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{7, -5, 15}));
}

TEST(Autograd, ZeroGradToNoneOrToZerosKeepingTheBuffer) {
  Variable x(f64({1, 2}, {2}), true);
  sum(x * x).backward();
  x.zero_grad();  // set_to_none
  EXPECT_FALSE(x.grad().defined());

  sum(x * x).backward();
  const void* buffer = x.grad().data_ptr();
  x.zero_grad(/*set_to_none=*/false);
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(values(x.grad()), (std::vector<double>{0, 0}));
  EXPECT_EQ(x.grad().data_ptr(), buffer);
  sum(x * 5.0).backward();
  EXPECT_EQ(x.grad().data_ptr(), buffer);  // accumulated in place
  EXPECT_EQ(values(x.grad()), (std::vector<double>{5, 5}));

  Variable fresh(f64({1}, {1}), true);
  fresh.zero_grad(false);  // nothing to fill yet
  EXPECT_FALSE(fresh.grad().defined());
}

TEST(Autograd, RetainGraph) {
  Variable x(f64({0.5, 1.0}, {2}), true);
  Variable y = sum(exp(x));
  y.backward();
  try {
    y.backward();
    ADD_FAILURE() << "a second backward through a freed graph did not throw";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("retain_graph"), std::string::npos) << msg;
    EXPECT_NE(msg.find("sum"), std::string::npos) << msg;
  }

  Variable w(f64({0.5, 1.0}, {2}), true);
  Variable z = sum(exp(w));
  z.backward({}, /*retain_graph=*/true);
  z.backward();
  const std::vector<double> g = values(w.grad());
  EXPECT_DOUBLE_EQ(g[0], 2 * std::exp(0.5));
  EXPECT_DOUBLE_EQ(g[1], 2 * std::exp(1.0));
}

TEST(Autograd, NoGradGuardRecordsNothingAndNests) {
  Variable x(f64({1, 2}, {2}), true);
  EXPECT_TRUE(grad_enabled());
  {
    NoGradGuard outer;
    EXPECT_FALSE(grad_enabled());
    Variable y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    {
      NoGradGuard inner;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());  // the inner guard restores the outer state, not "on"
    set_grad_enabled(true);
    EXPECT_TRUE((x * 2.0).requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(Autograd, DetachCutsTheGraphAndSharesData) {
  Variable x(f64({1, 2}, {2}), true);
  Variable y = x * 3.0;
  Variable d = y.detach();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.data().data_ptr(), y.data().data_ptr());
  Variable z = sum(x * d);  // d is a constant here
  z.backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{3, 6}));
}

TEST(Autograd, RetainGradKeepsAnIntermediateGradient) {
  Variable x(f64({1, 2}, {2}), true);
  Variable y = x * 3.0;
  Variable u = y + 1.0;
  y.retain_grad();
  sum(u * u).backward();
  EXPECT_EQ(values(y.grad()), (std::vector<double>{8, 14}));  // 2 (3x + 1)
  EXPECT_FALSE(u.grad().defined());                           // not retained
  EXPECT_EQ(values(x.grad()), (std::vector<double>{24, 42}));
  Variable c(f64({1}, {1}));
  expect_error(
      ErrKind::Value, "retain_grad", [&] { c.retain_grad(); }, "retain_grad");
}

TEST(Autograd, GradReturnsWithoutAccumulating) {
  Variable x(f64({1, 2}, {2}), true), unused(f64({5}, {1}), true);
  Variable y = sum(x * x * x);
  std::vector<Tensor> g = grad({y}, {x, unused});
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(values(g[0]), (std::vector<double>{3, 12}));
  EXPECT_FALSE(g[1].defined());
  EXPECT_FALSE(x.grad().defined());

  // A seed for a non-scalar output, and an intermediate as the input.
  Variable h = x * 2.0;
  Variable out = h * h;
  std::vector<Tensor> gh = grad({out}, {h}, {f64({1, 10}, {2})}, /*retain_graph=*/true);
  EXPECT_EQ(values(gh[0]), (std::vector<double>{4, 80}));
  std::vector<Tensor> gx = grad({out}, {x}, {f64({1, 10}, {2})});
  EXPECT_EQ(values(gx[0]), (std::vector<double>{8, 160}));
  expect_error(
      ErrKind::Value, "grad", [&] { grad({out}, {Variable(f64({1}, {1}))}); },
      "an input without a gradient");
}

TEST(Autograd, DiamondSumsEveryPath) {
  Variable x(f64({0.5, -1.5}, {2}), true);
  Variable a = x * x, b = exp(x);
  Variable y = sum(a + b + x);  // x reaches y along three paths
  y.backward();
  const std::vector<double> g = values(x.grad());
  EXPECT_DOUBLE_EQ(g[0], 2 * 0.5 + std::exp(0.5) + 1);
  EXPECT_DOUBLE_EQ(g[1], 2 * -1.5 + std::exp(-1.5) + 1);

  // One node consumed twice by the same op.
  Variable z(f64({3}, {1}), true);
  Variable m = z * 2.0;
  (m * m).backward();
  EXPECT_EQ(values(z.grad()), (std::vector<double>{24}));  // d (2z)^2 / dz = 8z
}

TEST(Autograd, DeepChainBackwardIsIterative) {
  constexpr int kDepth = 100000;
  Variable x(f64({1.0}, {1}), true);
  Variable y = x;
  for (int i = 0; i < kDepth; ++i) y = y + 1.0;
  EXPECT_EQ(y.item(), 1.0 + kDepth);
  y.backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1.0}));
}

TEST(Autograd, DeepGraphTeardownIsIterative) {
  // Dropping the only handle on a 300000-node chain must not recurse through the destructors
  // (each level would take a few stack frames: several megabytes past the default stack).
  constexpr int kDepth = 300000;
  Variable x(f64({1.0, 2.0}, {2}), true);
  {
    Variable y = x;
    for (int i = 0; i < kDepth; ++i) y = reshape(y, {2});
  }
  // And a retained graph with branches: every node has two inputs.
  {
    Variable y = x;
    for (int i = 0; i < kDepth / 3; ++i) y = y * x;
    EXPECT_TRUE(y.requires_grad());
  }
  EXPECT_TRUE(x.requires_grad());
}

TEST(Autograd, RecurrenceOverTimeStepsSumsTheWeightGradient) {
  // h_{t+1} = w * h_t + x_t (elementwise), loss = sum(h_T): dL/dw collects a term from every
  // step, dL/dx_t = w^(T-1-t), dL/dh_0 = w^T.
  constexpr int kSteps = 6;
  const std::vector<double> w0 = {0.9, -1.1}, h0 = {0.5, 2.0};
  std::vector<std::vector<double>> xs;
  for (int t = 0; t < kSteps; ++t) xs.push_back({0.1 * t - 0.2, 0.3 - 0.05 * t});

  Variable w(f64(w0, {2}), true), h(f64(h0, {2}), true);
  std::vector<Variable> inputs;
  Variable state = h;
  for (int t = 0; t < kSteps; ++t) {
    inputs.emplace_back(f64(xs[size_t(t)], {2}), true);
    state = w * state + inputs.back();
  }
  sum(state).backward();

  for (size_t j = 0; j < 2; ++j) {
    // Forward on the host, keeping every h_t, then d h_T / d w = sum_t w^(T-1-t) h_t.
    std::vector<double> hs = {h0[j]};
    for (int t = 0; t < kSteps; ++t) hs.push_back(w0[j] * hs.back() + xs[size_t(t)][j]);
    double dw = 0.0;
    for (int t = 0; t < kSteps; ++t) dw += std::pow(w0[j], kSteps - 1 - t) * hs[size_t(t)];
    EXPECT_NEAR(values(w.grad())[j], dw, 1e-12 * std::abs(dw));
    EXPECT_NEAR(values(h.grad())[j], std::pow(w0[j], kSteps), 1e-12);
    for (int t = 0; t < kSteps; ++t)
      EXPECT_NEAR(values(inputs[size_t(t)].grad())[j], std::pow(w0[j], kSteps - 1 - t), 1e-12);
  }
}

TEST(Autograd, NonScalarBackwardNeedsAnExplicitGradient) {
  Variable x(f64({1, 2, 3, 4, 5, 6}, {2, 3}), true);
  Variable y = x * 2.0;
  y.backward(f64({1, 0, -1, 2, 0.5, 3}, {2, 3}));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 0, -2, 4, 1, 6}));
  Variable z = x * 2.0;
  expect_error(
      ErrKind::Shape, "backward", [&] { z.backward(); }, "omitted gradient");
}

TEST(Autograd, EngineErrors) {
  Variable c(f64({1, 2}, {2}));
  expect_error(
      ErrKind::Value, "backward", [&] { sum(c).backward(); }, "no gradient");

  Variable x(f64({1, 2}, {2}), true);
  Variable y = x * 2.0;
  expect_error(
      ErrKind::Shape, "backward",
      [&] {
        y.backward(f64({1, 2, 3}, {3}));
      },
      "wrong shape");
  expect_error(
      ErrKind::Dtype, "backward", [&] { y.backward(ones({2})); }, "wrong dtype");
  expect_error(
      ErrKind::Dtype, "requires_grad_",
      [] { Variable(from_vector<int64_t>({1}, {1})).requires_grad_(); }, "int64");
  expect_error(
      ErrKind::Value, "requires_grad_", [&] { y.requires_grad_(false); }, "non-leaf");
  expect_error(
      ErrKind::Shape, "set_grad", [&] { x.set_grad(f64({1}, {1})); }, "set_grad");
  expect_error(
      ErrKind::Value, "data", [] { Variable().data(); }, "undefined");
  expect_error(
      ErrKind::Value, "backward", [] { Variable().backward(); }, "undefined");
  // A leaf's flag can be switched off and on.
  Variable leaf(f64({1}, {1}));
  leaf.requires_grad_();
  EXPECT_TRUE(leaf.requires_grad());
  leaf.requires_grad_(false);
  EXPECT_FALSE(leaf.requires_grad());
}

}  // namespace
}  // namespace nn::test
