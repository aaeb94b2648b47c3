// The fused training ops on the CPU (kernels/nn_ops.h): linear_backward and
// cross_entropy_backward against central finite differences in float64, cross-entropy against
// values worked out by hand, optimizer_step against torch.optim's update rules worked out for
// three steps on two-element tensors, grad_scale, and the validation errors. The op-table rows
// (tests/op_table_nn.cpp) cover the forward passes over random shapes and every dtype.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "tests/grad_check.h"

namespace nn {
namespace {

using test::numeric_grad;
using ::testing::HasSubstr;

// Runs fn, expects an E whose message contains `part`.
template <class E>
void expect_throw(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
  } catch (const E& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr(part));
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return;
  }
  ADD_FAILURE() << "nothing thrown, expected a message with: " << part;
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// max |a - b| / max(|b|, floor) over two equally long vectors.
double max_rel(const std::vector<double>& a, const std::vector<double>& b, double floor = 1.0) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), floor));
  return worst;
}

const TensorOptions kF64{Dtype::Float64};
constexpr Activation kActivations[] = {Activation::None,     Activation::Relu, Activation::Gelu,
                                       Activation::GeluTanh, Activation::Silu, Activation::Tanh,
                                       Activation::Sigmoid};

// ---- activations ----------------------------------------------------------------------------

TEST(Activation, NamesRoundTrip) {
  for (Activation a : kActivations) EXPECT_EQ(parse_activation(activation_name(a)), a);
  EXPECT_EQ(parse_activation("identity"), Activation::None);
  expect_throw<ValueError>([] { parse_activation("swish"); }, "swish");
}

// ---- linear ---------------------------------------------------------------------------------

TEST(Linear, BackwardMatchesFiniteDifferences) {
  Generator gen(11);
  for (const Shape& xs : {Shape{3, 4}, Shape{2, 3, 4}, Shape{4}}) {
    for (Activation act : kActivations) {
      Tensor x = randn(xs, kF64, &gen), w = randn({5, 4}, kF64, &gen), b = randn({5}, kF64, &gen);
      Shape ys = xs;
      ys.back() = 5;
      const Tensor r = randn(ys, kF64, &gen);
      Tensor saved;
      linear(x, w, b, act, &saved);
      EXPECT_EQ(saved.defined(), act != Activation::None);
      const LinearGrads g = linear_backward(r, x, w, saved, act, true, true, true);
      auto loss = [&] { return sum(linear(x, w, b, act) * r).item(); };
      const std::string ctx = std::string(activation_name(act)) + " x " + shape_str(xs);
      ASSERT_EQ(g.dx.shape(), xs) << ctx;
      ASSERT_EQ(g.dw.shape(), (Shape{5, 4})) << ctx;
      ASSERT_EQ(g.db.shape(), (Shape{5})) << ctx;
      EXPECT_LE(max_rel(values(g.dx), numeric_grad(x, loss)), 1e-6) << ctx << " dx";
      EXPECT_LE(max_rel(values(g.dw), numeric_grad(w, loss)), 1e-6) << ctx << " dw";
      EXPECT_LE(max_rel(values(g.db), numeric_grad(b, loss)), 1e-6) << ctx << " db";
    }
  }
}

TEST(Linear, BackwardComputesOnlyWhatIsAsked) {
  Generator gen(3);
  const Tensor x = randn({2, 3}, kF64, &gen), w = randn({4, 3}, kF64, &gen);
  const Tensor gy = randn({2, 4}, kF64, &gen);
  Tensor saved;
  linear(x, w, {}, Activation::Silu, &saved);
  LinearGrads g = linear_backward(gy, x, w, saved, Activation::Silu, false, true, false);
  EXPECT_FALSE(g.dx.defined());
  EXPECT_TRUE(g.dw.defined());
  EXPECT_FALSE(g.db.defined());
  g = linear_backward(gy, x, w, saved, Activation::Silu, false, false, false);
  EXPECT_FALSE(g.dx.defined() || g.dw.defined() || g.db.defined());
}

TEST(Linear, SavedIsWhatBackwardReads) {
  Generator gen(5);
  const Tensor x = randn({3, 7}, kF64, &gen), w = randn({2, 7}, kF64, &gen);
  const Tensor b = randn({2}, kF64, &gen);
  const std::vector<double> affine = values(linear(x, w, b));
  for (Activation act : kActivations) {
    Tensor saved = ones({1});
    const Tensor y = linear(x, w, b, act, &saved);
    const std::string ctx = activation_name(act);
    switch (activation_saved(act)) {
      case ActivationSaved::Nothing:  // nothing extra is written
        EXPECT_FALSE(saved.defined()) << ctx;
        break;
      case ActivationSaved::Output:  // y itself: the same storage, no extra memory
        ASSERT_TRUE(saved.defined()) << ctx;
        EXPECT_EQ(saved.data_ptr(), y.data_ptr()) << ctx;
        EXPECT_EQ(saved.shape(), y.shape()) << ctx;
        break;
      case ActivationSaved::PreActivation:  // z, written by the same pass
        ASSERT_TRUE(saved.defined()) << ctx;
        EXPECT_NE(saved.data_ptr(), y.data_ptr()) << ctx;
        EXPECT_EQ(values(saved), affine) << ctx;
        break;
    }
  }
  // Without a request nothing is kept, whatever the activation.
  const Tensor y = linear(x, w, b, Activation::Gelu);
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
}

// dY' = grad_y * act'(z), dx = dY' w, dW = dY'^T x, db = column sums, composed from the plain ops
// in float64 on the (rounded) inputs.
LinearGrads composed_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& b,
                              Activation act) {
  const Tensor g64 = gy.to(Dtype::Float64), x64 = x.to(Dtype::Float64);
  const Tensor w64 = w.to(Dtype::Float64);
  const Tensor z = linear(x64, w64, b.defined() ? b.to(Dtype::Float64) : Tensor());
  const Tensor d = act == Activation::None ? g64 : unary_backward(activation_unary_op(act), g64, z);
  const int64_t out = w.size(0), in = w.size(1);
  const Tensor d2 = d.reshape({-1, out});
  LinearGrads r;
  r.dx = matmul(d2, w64).reshape(x.shape());
  r.dw = matmul(d2, x64.reshape({-1, in}), true);
  r.db = sum(d2, {0});
  return r;
}

TEST(Linear, BackwardRowMatchesComposedReference) {
  struct Case {
    Dtype dtype;
    double tol;  // relative to max(|ref|, 1)
  };
  // float32 and the half types: the inputs are rounded the same way on both sides; the half types
  // round each gradient once, float32 differs by summation order.
  const Case cases[] = {{Dtype::Float64, 1e-12},
                        {Dtype::Float32, 2e-5},
                        {Dtype::BFloat16, 1.6e-2},
                        {Dtype::Float16, 2e-3}};
  for (const Case& c : cases) {
    for (Activation act : kActivations) {
      for (bool bias : {true, false}) {
        for (int flags = 1; flags < 8; ++flags) {
          const bool need_dx = flags & 1, need_dw = flags & 2, need_db = bias && (flags & 4);
          Generator gen(uint64_t(flags) * 13 + uint64_t(act) + (bias ? 100 : 0));
          const TensorOptions o{c.dtype};
          const Tensor x = randn({2, 5, 9}, o, &gen), w = randn({6, 9}, o, &gen);
          const Tensor b = bias ? randn({6}, o, &gen) : Tensor();
          const Tensor gy = randn({2, 5, 6}, o, &gen);
          Tensor saved;
          linear(x, w, b, act, &saved);
          const LinearGrads got = linear_backward(gy, x, w, saved, act, need_dx, need_dw, need_db);
          const LinearGrads want = composed_backward(gy, x, w, b, act);
          const std::string ctx = std::string(dtype_name(c.dtype)) + " " + activation_name(act) +
                                  (bias ? " bias" : "") + " flags " + std::to_string(flags);
          EXPECT_EQ(got.dx.defined(), need_dx) << ctx;
          EXPECT_EQ(got.dw.defined(), need_dw) << ctx;
          EXPECT_EQ(got.db.defined(), need_db) << ctx;
          // saved is y rounded to the dtype for relu/sigmoid/tanh: the half types see that
          // rounding in act', so their tolerance is that of one more rounding.
          const double tol =
              c.tol * (c.dtype == Dtype::BFloat16 || c.dtype == Dtype::Float16 ? 2 : 1);
          if (need_dx) {
            EXPECT_EQ(got.dx.dtype(), c.dtype) << ctx;
            EXPECT_EQ(got.dx.shape(), x.shape()) << ctx;
            EXPECT_LE(max_rel(values(got.dx), values(want.dx)), tol) << ctx << " dx";
          }
          if (need_dw) {
            EXPECT_EQ(got.dw.shape(), w.shape()) << ctx;
            EXPECT_LE(max_rel(values(got.dw), values(want.dw)), tol) << ctx << " dw";
          }
          if (need_db) {
            EXPECT_EQ(got.db.shape(), (Shape{6})) << ctx;
            EXPECT_LE(max_rel(values(got.db), values(want.db)), tol) << ctx << " db";
          }
        }
      }
    }
  }
}

TEST(Linear, BackwardOfEmptyProblems) {
  const TensorOptions o{Dtype::Float32};
  // No rows: zero dW and db, an empty dx.
  Tensor saved;
  const Tensor x0 = zeros({0, 3}, o), w = ones({4, 3}, o), b = ones({4}, o);
  linear(x0, w, b, Activation::Silu, &saved);
  LinearGrads g =
      linear_backward(zeros({0, 4}, o), x0, w, saved, Activation::Silu, true, true, true);
  EXPECT_EQ(g.dx.shape(), (Shape{0, 3}));
  EXPECT_EQ(values(g.dw), std::vector<double>(12, 0.0));
  EXPECT_EQ(values(g.db), std::vector<double>(4, 0.0));
  // No input features: empty dx and dW, db still the column sums.
  const Tensor x1 = zeros({2, 0}, o), w1 = zeros({3, 0}, o);
  const Tensor gy = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}, o);
  g = linear_backward(gy, x1, w1, Tensor(), Activation::None, true, true, true);
  EXPECT_EQ(g.dx.shape(), (Shape{2, 0}));
  EXPECT_EQ(g.dw.shape(), (Shape{3, 0}));
  EXPECT_EQ(values(g.db), (std::vector<double>{5, 7, 9}));
}

TEST(Linear, VariableKeepsOnlyWhatItsGradientsRead) {
  // One side without a gradient: its partner operand is not kept, the other gradient is exact.
  Generator gen(21);
  const Tensor x = randn({4, 3}, kF64, &gen), w = randn({5, 3}, kF64, &gen);
  const Tensor b = randn({5}, kF64, &gen), r = randn({4, 5}, kF64, &gen);
  Tensor saved;
  linear(x, w, b, Activation::Tanh, &saved);
  const LinearGrads want = linear_backward(r, x, w, saved, Activation::Tanh, true, true, true);
  for (bool x_grad : {true, false}) {
    Variable xv(x, x_grad), wv(w, !x_grad), bv(b, true);
    sum(linear(xv, wv, bv, Activation::Tanh) * Variable(r)).backward();
    const std::string ctx = x_grad ? "dx only" : "dw only";
    if (x_grad) {
      EXPECT_EQ(values(xv.grad()), values(want.dx)) << ctx;
    } else {
      EXPECT_EQ(values(wv.grad()), values(want.dw)) << ctx;
    }
    EXPECT_EQ(values(bv.grad()), values(want.db)) << ctx;
  }
}

TEST(Linear, BackwardReadsTheOutputForRelu) {
  // relu' comes from y > 0: a y that was zeroed where z > 0 would zero the gradient there.
  const TensorOptions o{Dtype::Float64};
  const Tensor x = from_vector<double>({1, -1}, {2, 1}, o), w = ones({1, 1}, o);
  Tensor saved;
  const Tensor y = linear(x, w, {}, Activation::Relu, &saved);
  EXPECT_EQ(values(y), (std::vector<double>{1, 0}));
  const LinearGrads g =
      linear_backward(ones({2, 1}, o), x, w, saved, Activation::Relu, true, true, false);
  EXPECT_EQ(values(g.dx), (std::vector<double>{1, 0}));
  EXPECT_EQ(values(g.dw), (std::vector<double>{1}));
}

TEST(Linear, HalfTypesRoundOnce) {
  Generator gen(9);
  for (Dtype dt : {Dtype::BFloat16, Dtype::Float16}) {
    const Tensor x = randn({4, 33}, {dt}, &gen), w = randn({6, 33}, {dt}, &gen);
    const Tensor b = randn({6}, {dt}, &gen);
    // The same maths in float64 on the rounded inputs, rounded once to dt.
    const Tensor want =
        linear(x.to(Dtype::Float64), w.to(Dtype::Float64), b.to(Dtype::Float64), Activation::Gelu)
            .to(dt);
    const Tensor got = linear(x, w, b, Activation::Gelu);
    EXPECT_EQ(got.dtype(), dt);
    // One rounding apart at most: half an ulp of dt either way, relative to max(|y|, 1).
    EXPECT_LE(max_rel(values(got), values(want)), dt == Dtype::BFloat16 ? 8e-3 : 1e-3)
        << dtype_name(dt);
  }
}

TEST(Linear, ErrorsNameTheShapes) {
  const Tensor x = zeros({7, 784}), w = zeros({10, 512});
  expect_throw<ShapeError>([&] { linear(x, w); },
                           "linear: input has 784 features, weight expects 512");
  expect_throw<ShapeError>(
      [&] {
        linear(zeros({2, 4}), zeros({3, 4}), zeros({4}));
      },
      "linear: bias has shape [4], expected [3]");
  expect_throw<DtypeError>(
      [&] {
        linear(zeros({2, 4}), zeros({3, 4}, {Dtype::Float64}));
      },
      "linear");
  Tensor missing;
  const Tensor x2 = zeros({2, 4}), w2 = zeros({3, 4});
  expect_throw<ValueError>(
      [&] {
        linear_backward(zeros({2, 3}), x2, w2, missing, Activation::Relu, true, true, true);
      },
      "linear_backward: activation relu needs the output y");
  expect_throw<ValueError>(
      [&] {
        linear_backward(zeros({2, 3}), x2, w2, missing, Activation::Gelu, true, true, true);
      },
      "linear_backward: activation gelu needs the pre-activation z");
  expect_throw<ShapeError>(
      [&] {
        linear_backward(zeros({2, 5}), x2, w2, missing, Activation::None, true, true, true);
      },
      "linear_backward: grad_y has shape [2, 5], expected [2, 3]");
  expect_throw<ShapeError>(
      [&] {
        linear_backward(zeros({2, 3}), x2, w2, zeros({3, 2}), Activation::Silu, true, true, true);
      },
      "linear_backward");
  expect_throw<DtypeError>(
      [&] {
        linear_backward(zeros({2, 3}, kF64), x2, w2, Tensor(), Activation::None, true, true, true);
      },
      "linear_backward");
}

// ---- cross-entropy --------------------------------------------------------------------------

Tensor targets(std::vector<int64_t> t) {
  const int64_t n = int64_t(t.size());
  return from_vector<int64_t>(t, {n}, {Dtype::Int64});
}

TEST(CrossEntropy, HandWorkedValues) {
  const double ln2 = std::log(2.0);
  {  // two equal logits: log 2
    Tensor row_lse, sw;
    const Tensor loss = cross_entropy(zeros({1, 2}, kF64), targets({0}), {}, &row_lse, &sw);
    EXPECT_NEAR(loss.item(), ln2, 1e-15);
    EXPECT_NEAR(row_lse.item(), ln2, 1e-15);
    EXPECT_EQ(sw.item(), 1.0);
  }
  {  // class weights multiply the sample's loss and are its sample weight
    CrossEntropyOptions opt;
    opt.weight = from_vector<double>({2.0, 1.0}, {2});
    Tensor sw;
    const Tensor loss = cross_entropy(zeros({1, 2}, kF64), targets({0}), opt, nullptr, &sw);
    EXPECT_NEAR(loss.item(), 2 * ln2, 1e-15);
    EXPECT_EQ(sw.item(), 2.0);
  }
  const Tensor z = from_vector<double>({1.0, 2.0, 3.0}, {1, 3});
  const double lse = 3.0 + std::log(1.0 + std::exp(-1.0) + std::exp(-2.0));
  EXPECT_NEAR(cross_entropy(z, targets({2})).item(), lse - 3.0, 1e-15);
  {  // label smoothing 0.2 over 3 classes: 0.8 * nll + 0.2 / 3 * sum_c (lse - z_c)
    CrossEntropyOptions opt;
    opt.label_smoothing = 0.2;
    const double want = 0.8 * (lse - 3.0) + 0.2 / 3.0 * ((lse - 1) + (lse - 2) + (lse - 3));
    EXPECT_NEAR(cross_entropy(z, targets({2}), opt).item(), want, 1e-15);
    // with weights w: 0.8 * w_y * nll + 0.2 / 3 * sum_c w_c (lse - z_c), as PyTorch
    opt.weight = from_vector<double>({0.5, 1.0, 3.0}, {3});
    const double want_w =
        0.8 * 3.0 * (lse - 3.0) + 0.2 / 3.0 * (0.5 * (lse - 1) + 1.0 * (lse - 2) + 3.0 * (lse - 3));
    EXPECT_NEAR(cross_entropy(z, targets({2}), opt).item(), want_w, 1e-14);
  }
  {  // an ignored target: no loss, no weight, no gradient, even with smoothing and weights
    CrossEntropyOptions opt;
    opt.label_smoothing = 0.3;
    opt.weight = from_vector<double>({0.5, 1.0, 3.0}, {3});
    opt.ignore_index = 7;
    Tensor row_lse, sw;
    const Tensor loss = cross_entropy(z, targets({7}), opt, &row_lse, &sw);
    EXPECT_EQ(loss.item(), 0.0);
    EXPECT_EQ(sw.item(), 0.0);
    EXPECT_NEAR(row_lse.item(), lse, 1e-15);  // still written: backward may want it
    const Tensor g = cross_entropy_backward(ones({1}, kF64), z, targets({7}), row_lse, opt);
    EXPECT_EQ(values(g), (std::vector<double>{0.0, 0.0, 0.0}));
  }
}

TEST(CrossEntropy, MeanIsSumOverSampleWeights) {
  // PyTorch's weighted mean: sum_i w_{y_i} nll_i / sum_i w_{y_i} over the samples not ignored.
  CrossEntropyOptions opt;
  opt.weight = from_vector<double>({1.0, 4.0}, {2});
  const Tensor z = from_vector<double>({0.0, 0.0, 1.0, -1.0, 2.0, 2.0}, {3, 2});
  Tensor sw;
  const Tensor loss = cross_entropy(z, targets({1, 0, -100}), opt, nullptr, &sw);
  const double nll0 = std::log(2.0), nll1 = std::log(1.0 + std::exp(-2.0));
  const double want = (4.0 * nll0 + 1.0 * nll1) / (4.0 + 1.0);
  EXPECT_NEAR(sum(loss).item() / sum(sw).item(), want, 1e-15);
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  Generator gen(21);
  for (double eps : {0.0, 0.1}) {
    for (bool weighted : {false, true}) {
      Tensor z = randn({5, 7}, kF64, &gen) * 2.0;
      const Tensor g = randn({5}, kF64, &gen);
      const Tensor t = targets({3, 0, 6, -100, 2});
      CrossEntropyOptions opt;
      opt.label_smoothing = eps;
      if (weighted) opt.weight = rand({7}, kF64, &gen) + 0.5;
      Tensor lse;
      cross_entropy(z, t, opt, &lse);
      const Tensor grad = cross_entropy_backward(g, z, t, lse, opt);
      auto loss = [&] { return sum(cross_entropy(z, t, opt) * g).item(); };
      const std::string ctx =
          "eps " + std::to_string(eps) + " weighted " + std::to_string(weighted);
      EXPECT_LE(max_rel(values(grad), numeric_grad(z, loss)), 1e-7) << ctx;
      // Without the saved lse it is recomputed, with the same result.
      EXPECT_EQ(values(cross_entropy_backward(g, z, t, Tensor(), opt)), values(grad)) << ctx;
    }
  }
}

TEST(CrossEntropy, DtypesOfTheOutputs) {
  for (Dtype dt : {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16}) {
    Tensor lse, sw;
    const Tensor loss = cross_entropy(zeros({2, 3}, {dt}), targets({0, 2}), {}, &lse, &sw);
    EXPECT_EQ(loss.dtype(), dt);
    EXPECT_EQ(sw.dtype(), dt);
    EXPECT_EQ(lse.dtype(), dt == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32);
    EXPECT_NEAR(lse.to_vector<double>()[1], std::log(3.0), 1e-6) << dtype_name(dt);
  }
}

TEST(CrossEntropy, Errors) {
  const Tensor z = zeros({4, 10});
  expect_throw<IndexError>(
      [&] {
        cross_entropy(z, targets({0, 1, 2, 12}));
      },
      "cross_entropy: target 12 at sample 3 is out of range for 10 classes");
  expect_throw<IndexError>(
      [&] {
        cross_entropy_backward(zeros({4}), z, targets({-2, 1, 2, 3}), Tensor());
      },
      "target -2 at sample 0 is out of range for 10 classes");
  CrossEntropyOptions opt;
  opt.label_smoothing = 1.0;
  expect_throw<ValueError>(
      [&] {
        cross_entropy(z, targets({0, 1, 2, 3}), opt);
      },
      "label_smoothing");
  expect_throw<DtypeError>([&] { cross_entropy(z, zeros({4})); }, "expected int64");
  expect_throw<ShapeError>(
      [&] {
        cross_entropy(z, targets({0, 1}));
      },
      "target has shape [2], expected [4]");
  opt = {};
  opt.weight = ones({9});
  expect_throw<ShapeError>(
      [&] {
        cross_entropy(z, targets({0, 1, 2, 3}), opt);
      },
      "weight has shape [9], expected [10]");
  Tensor lse;
  cross_entropy(z, targets({0, 1, 2, 3}), {}, &lse);
  expect_throw<DtypeError>(
      [&] {
        cross_entropy_backward(zeros({4}), z, targets({0, 1, 2, 3}), lse.to(Dtype::Float64));
      },
      "cross_entropy_backward: lse is float64, expected float32");
  expect_throw<ShapeError>(
      [&] {
        cross_entropy_backward(zeros({3}), z, targets({0, 1, 2, 3}), lse);
      },
      "grad_loss has shape [3], expected [4]");
}

// ---- optimizer step -------------------------------------------------------------------------

// Three steps on p = [1, -2] with gradients g1 = [0.5, -1], g2 = [0.25, 0.5], g3 = [-0.5, 0.125]
// (binary fractions: exact in every dtype). Expected values: torch.optim's single-tensor rules
// applied by hand in float64, e.g. plain SGD, lr 0.1: p0 = 1 - 0.1 (0.5 + 0.25 - 0.5) = 0.975.
const std::vector<std::vector<double>> kGrads = {{0.5, -1.0}, {0.25, 0.5}, {-0.5, 0.125}};

struct OptimCase {
  const char* name;
  OptimizerHyper hyper;
  std::vector<double> want;  // p after three steps
};

OptimizerHyper hyper_of(OptimizerKind kind, double lr,
                        const std::function<void(OptimizerHyper&)>& f = {}) {
  OptimizerHyper h;
  h.kind = kind;
  h.lr = lr;
  if (f) f(h);
  return h;
}

std::vector<OptimCase> optim_cases() {
  using K = OptimizerKind;
  return {
      {"sgd", hyper_of(K::Sgd, 0.1), {0.975, -1.9625}},
      // buf1 = g1, buf = 0.9 buf + 0.9 g; g includes 0.01 p
      {"sgd_momentum_dampening_wd",
       hyper_of(K::Sgd, 0.1,
                [](auto& h) { h.momentum = 0.9, h.dampening = 0.1, h.weight_decay = 0.01; }),
       {0.86162543869, -1.81541987738}},
      {"sgd_nesterov",
       hyper_of(K::Sgd, 0.1, [](auto& h) { h.momentum = 0.9, h.nesterov = true; }),
       {0.8553, -1.81535}},
      {"sgd_maximize", hyper_of(K::Sgd, 0.1, [](auto& h) { h.maximize = true; }), {1.025, -2.0375}},
      {"adam", hyper_of(K::Adam, 0.01), {0.97957037336010933, -1.9860010319297372}},
      {"adam_l2",
       hyper_of(K::Adam, 0.01, [](auto& h) { h.weight_decay = 0.1; }),
       {0.97729281528610479, -1.9813156411785879}},
      {"adam_amsgrad",
       hyper_of(K::Adam, 0.01, [](auto& h) { h.amsgrad = true, h.beta1 = 0.8, h.beta2 = 0.9; }),
       {0.98052759977216941, -1.9871342095130504}},
      {"adam_maximize",
       hyper_of(K::Adam, 0.01, [](auto& h) { h.maximize = true; }),
       {1.0204296266398907, -2.013998968070263}},
      {"adamw",
       hyper_of(K::AdamW, 0.01, [](auto& h) { h.weight_decay = 0.1; }),
       {0.97660268415586182, -1.9800296832999003}},
      {"adamw_amsgrad",
       hyper_of(K::AdamW, 0.01,
                [](auto& h) { h.weight_decay = 0.1, h.amsgrad = true, h.beta2 = 0.9; }),
       {0.97645416924881234, -1.9799914814535746}},
      {"rmsprop", hyper_of(K::RMSprop, 0.01), {0.92209971066270457, -1.9561120928008242}},
      {"rmsprop_momentum",
       hyper_of(K::RMSprop, 0.01, [](auto& h) { h.momentum = 0.9; }),
       {0.71068855916473683, -1.8255232992278148}},
      {"rmsprop_centered",
       hyper_of(K::RMSprop, 0.01, [](auto& h) { h.centered = true, h.alpha = 0.9; }),
       {0.9726830369944488, -1.9853811257698963}},
      {"rmsprop_centered_momentum_wd",
       hyper_of(K::RMSprop, 0.01,
                [](auto& h) {
                  h.centered = true, h.momentum = 0.5, h.weight_decay = 0.1, h.alpha = 0.9,
                  h.eps = 1e-3;
                }),
       {0.93220460248076809, -1.9522373839761835}},
  };
}

// Zero states for the lists the hyper-parameters use.
ParamGroupTensors group_for(const OptimizerHyper& h, const std::vector<Tensor>& params) {
  ParamGroupTensors g;
  g.params = params;
  const bool use[3] = {optimizer_state_used(h, 0), optimizer_state_used(h, 1),
                       optimizer_state_used(h, 2)};
  std::vector<Tensor>* lists[3] = {&g.state0, &g.state1, &g.state2};
  for (int s = 0; s < 3; ++s)
    if (use[s])
      for (const Tensor& p : params) lists[s]->push_back(zeros_like(p));
  return g;
}

// Runs the three steps on p = [1, -2] in dtype dt, gradients multiplied by 1 / scale and
// grad_scale = scale (so the effective gradients are kGrads), and returns the group.
ParamGroupTensors run_three_steps(OptimizerHyper h, Dtype dt, double scale = 1.0) {
  ParamGroupTensors g = group_for(h, {from_vector<double>({1.0, -2.0}, {2}, {dt})});
  const Tensor gs = scale == 1.0 ? Tensor() : full({}, scale, {Dtype::Float32});
  for (int t = 0; t < 3; ++t) {
    std::vector<double> grad = kGrads[size_t(t)];
    for (double& v : grad) v /= scale;
    g.grads = {from_vector<double>(grad, {2}, {dt})};
    h.step = t + 1;
    optimizer_step(g, h, gs);
  }
  return g;
}

TEST(OptimizerStep, MatchesHandWorkedUpdates) {
  for (const OptimCase& c : optim_cases()) {
    const ParamGroupTensors g64 = run_three_steps(c.hyper, Dtype::Float64);
    EXPECT_LE(max_rel(values(g64.params[0]), c.want, 1e-30), 1e-10) << c.name << " float64";
    const ParamGroupTensors g32 = run_three_steps(c.hyper, Dtype::Float32);
    EXPECT_LE(max_rel(values(g32.params[0]), c.want, 1e-30), 2e-6) << c.name << " float32";
  }
}

TEST(OptimizerStep, StatesHoldTorchsBuffers) {
  using K = OptimizerKind;
  {
    OptimizerHyper h = optim_cases()[1].hyper;  // SGD, momentum 0.9, dampening 0.1, wd 0.01
    const ParamGroupTensors g = run_three_steps(h, Dtype::Float64);
    EXPECT_LE(max_rel(values(g.state0[0]), {0.18120461310, -0.3407192262}, 1e-30), 1e-10);
  }
  {
    OptimizerHyper h =
        hyper_of(K::Adam, 0.01, [](auto& o) { o.amsgrad = true, o.beta1 = 0.8, o.beta2 = 0.9; });
    const ParamGroupTensors g = run_three_steps(h, Dtype::Float64);
    // exp_avg of p0: 0.1, 0.13, 0.004; exp_avg_sq: 0.025, 0.02875, 0.050875 (its own maximum)
    EXPECT_LE(max_rel(values(g.state0[0]), {0.004, -0.023}, 1e-30), 1e-10);
    EXPECT_LE(max_rel(values(g.state1[0]), {0.050875, 0.1050625}, 1e-30), 1e-12);
    EXPECT_LE(max_rel(values(g.state2[0]), {0.050875, 0.115}, 1e-30), 1e-12);
  }
  {
    OptimizerHyper h = optim_cases().back().hyper;  // centered RMSprop, momentum, wd
    const ParamGroupTensors g = run_three_steps(h, Dtype::Float64);
    EXPECT_LE(max_rel(values(g.state0[0]), {0.056523833656760031, 0.12542238344124634}, 1e-30),
              1e-10);
    EXPECT_LE(max_rel(values(g.state1[0]), {0.0033794995648828152, -0.62028666432054613}, 1e-30),
              1e-9);
    EXPECT_LE(max_rel(values(g.state2[0]), {0.039124041433327698, -0.076985233531124617}, 1e-30),
              1e-10);
  }
}

TEST(OptimizerStep, GradScaleMultipliesEveryGradient) {
  // Gradients stored at 4x with grad_scale 0.25 are the same effective gradients.
  for (const OptimCase& c : optim_cases()) {
    const ParamGroupTensors g = run_three_steps(c.hyper, Dtype::Float64, 0.25);
    EXPECT_LE(max_rel(values(g.params[0]), c.want, 1e-30), 1e-10) << c.name;
  }
  // Hand-worked: SGD momentum 0.9, lr 0.1, gradients halved: p0 = 1 - 0.1 (0.25 + 0.35 + 0.065).
  OptimizerHyper h = hyper_of(OptimizerKind::Sgd, 0.1, [](auto& o) { o.momentum = 0.9; });
  ParamGroupTensors g = group_for(h, {from_vector<double>({1.0, -2.0}, {2})});
  const Tensor half = full({1}, 0.5, {Dtype::Float64});  // any floating dtype, 1 element
  for (int t = 0; t < 3; ++t) {
    g.grads = {from_vector<double>(kGrads[size_t(t)], {2})};
    h.step = t + 1;
    optimizer_step(g, h, half);
  }
  EXPECT_LE(max_rel(values(g.params[0]), {0.9335, -1.91825}, 1e-30), 1e-12);
}

TEST(OptimizerStep, GroupOfManyTensorsAndStridedGradients) {
  Generator gen(4);
  OptimizerHyper h = hyper_of(OptimizerKind::Adam, 0.05, [](auto& o) { o.weight_decay = 0.01; });
  const std::vector<Shape> shapes = {{3, 4}, {0}, {5}, {2, 3, 2}, {1}};
  std::vector<Tensor> params, singles;
  for (const Shape& s : shapes) {
    params.push_back(randn(s, kF64, &gen));
    singles.push_back(params.back().clone());
  }
  ParamGroupTensors g = group_for(h, params);
  for (const Tensor& p : params) {
    // A transposed gradient for the matrices: read through its strides.
    g.grads.push_back(p.dim() == 2 ? randn({p.size(1), p.size(0)}, kF64, &gen).t()
                                   : randn(p.shape(), kF64, &gen));
  }
  optimizer_step(g, h);
  for (size_t i = 0; i < shapes.size(); ++i) {  // the same update, one tensor at a time
    ParamGroupTensors one = group_for(h, {singles[i]});
    one.grads = {g.grads[i].contiguous()};
    optimizer_step(one, h);
    EXPECT_EQ(values(params[i]), values(singles[i])) << "tensor " << i;
    EXPECT_EQ(values(g.state1[i]), values(one.state1[0])) << "tensor " << i;
  }
}

TEST(OptimizerStep, HalfPrecisionParameters) {
  OptimizerHyper h = hyper_of(OptimizerKind::Sgd, 0.1);
  ParamGroupTensors g = group_for(h, {full({3}, 1.0, {Dtype::BFloat16})});
  g.grads = {full({3}, 0.5, {Dtype::BFloat16})};
  optimizer_step(g, h);
  EXPECT_EQ(values(g.params[0])[0], double(float(bfloat16(0.95f))));
}

TEST(OptimizerStep, ValidationErrors) {
  using K = OptimizerKind;
  auto group = [](const OptimizerHyper& h) {
    ParamGroupTensors g = group_for(h, {zeros({2}), zeros({3})});
    g.grads = {zeros({2}), zeros({3})};
    return g;
  };
  auto fails = [&](OptimizerHyper h, const std::string& part) {
    ParamGroupTensors g = group(h);
    expect_throw<ValueError>([&] { optimizer_step(g, h); }, part);
  };
  fails(hyper_of(K::Sgd, -0.1), "optimizer_step: lr must be finite and >= 0, got -0.1");
  fails(hyper_of(K::Sgd, std::nan("")), "lr must be");
  fails(hyper_of(K::Adam, 0.1, [](auto& h) { h.beta1 = 1.0; }), "beta1 must be in [0, 1)");
  fails(hyper_of(K::AdamW, 0.1, [](auto& h) { h.beta2 = -0.1; }), "beta2");
  fails(hyper_of(K::Adam, 0.1, [](auto& h) { h.eps = 0.0; }), "eps must be finite and > 0");
  fails(hyper_of(K::RMSprop, 0.1, [](auto& h) { h.alpha = 1.5; }), "alpha");
  fails(hyper_of(K::Sgd, 0.1,
                 [](auto& h) { h.momentum = 0.9, h.dampening = 0.1, h.nesterov = true; }),
        "nesterov");
  fails(hyper_of(K::Sgd, 0.1, [](auto& h) { h.step = 0; }), "step must be >= 1");
  fails(hyper_of(K::Sgd, 0.1, [](auto& h) { h.weight_decay = -1; }), "weight_decay");

  OptimizerHyper adam = hyper_of(K::Adam, 0.1);
  {
    ParamGroupTensors g = group(adam);
    g.state1.pop_back();
    expect_throw<ValueError>([&] { optimizer_step(g, adam); },
                             "adam with these options needs state1 (exp_avg_sq) for each of the "
                             "2 parameters, got 1");
  }
  {
    ParamGroupTensors g = group(adam);
    g.state2 = g.state1;
    expect_throw<ValueError>([&] { optimizer_step(g, adam); }, "uses no state2");
  }
  {
    ParamGroupTensors g = group(adam);
    g.grads.pop_back();
    expect_throw<ValueError>([&] { optimizer_step(g, adam); }, "2 params but 1 grads");
  }
  {
    ParamGroupTensors g = group(adam);
    g.grads[1] = zeros({4});
    expect_throw<ShapeError>([&] { optimizer_step(g, adam); },
                             "grads[1] has shape [4], its parameter [3]");
  }
  {
    ParamGroupTensors g = group(adam);
    g.state0[0] = zeros({2}, {Dtype::Float64});
    expect_throw<DtypeError>([&] { optimizer_step(g, adam); }, "state0[0] is float64");
  }
  {
    ParamGroupTensors g = group(adam);
    g.params[0] = zeros({4}).slice(0, 0, 4, 2);
    expect_throw<ValueError>([&] { optimizer_step(g, adam); }, "must be contiguous");
  }
  {
    ParamGroupTensors g = group(adam);
    g.params[1] = zeros({3}, {Dtype::Int64});
    expect_throw<DtypeError>([&] { optimizer_step(g, adam); }, "optimizer_step");
  }
  {
    ParamGroupTensors g = group(adam);
    expect_throw<ShapeError>([&] { optimizer_step(g, adam, zeros({2})); }, "grad_scale");
  }
  ParamGroupTensors empty_group;
  EXPECT_NO_THROW(optimizer_step(empty_group, adam));  // nothing to update
  expect_throw<ValueError>([&] { (void)empty_group.device(); }, "empty");
}

// ---- host-sync counter ----------------------------------------------------------------------

TEST(HostSyncCounter, ZeroWithoutAGpu) {
  if (cuda::available()) GTEST_SKIP() << "a GPU is present: test_nn_ops_gpu.cpp counts its syncs";
  EXPECT_EQ(cuda::host_sync_count(), 0);
  (void)sum(ones({3})).item();  // host tensors: nothing to wait for
  EXPECT_EQ(cuda::host_sync_count(), 0);
}

}  // namespace
}  // namespace nn
