// Losses: every loss and reduction against values computed here with naive loops (never by the
// code under test), cross-entropy with class weights, label smoothing and ignore_index by
// PyTorch's formula, BCE with pos_weight and huge logits, shape errors, the loss modules, and
// float64 gradient checks with respect to the input and, where differentiable, the target.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "layers/loss.h"
#include "tests/grad_check.h"
#include "tests/op_harness.h"

namespace nn {
namespace {

using test::ErrKind;
using test::expect_error;
using test::grad_check;
using ::testing::ElementsAre;

constexpr TensorOptions kF64 = {Dtype::Float64};
const std::vector<Reduction> kReductions = {Reduction::None, Reduction::Sum, Reduction::Mean};

std::vector<double> draw(size_t n, double lo, double hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

// Applies a reduction to per-element losses, as the reference.
std::vector<double> reduce_ref(const std::vector<double>& loss, Reduction r) {
  if (r == Reduction::None) return loss;
  double s = 0;
  for (double l : loss) s += l;
  return {r == Reduction::Sum ? s : s / double(loss.size())};
}

void expect_close(const Variable& got, const std::vector<double>& want, double rtol,
                  const std::string& what) {
  const std::vector<double> g = got.data().to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_TRUE(std::isfinite(g[i])) << what << " at " << i;
    EXPECT_NEAR(g[i], want[i], rtol * std::max(1.0, std::abs(want[i]))) << what << " at " << i;
  }
}

const char* rname(Reduction r) {
  return r == Reduction::None ? "none" : (r == Reduction::Sum ? "sum" : "mean");
}

// ---- MSE and L1 ------------------------------------------------------------------------------

TEST(Losses, MseAndL1MatchNaiveLoops) {
  const std::vector<double> a = draw(12, -3, 3, 1), b = draw(12, -3, 3, 2);
  for (Dtype dt : {Dtype::Float64, Dtype::Float32}) {
    const double tol = dt == Dtype::Float64 ? 1e-14 : 1e-6;
    const Variable x(from_vector<double>(a, {3, 4}, {dt})), y(from_vector<double>(b, {3, 4}, {dt}));
    std::vector<double> sq, ab;
    for (size_t i = 0; i < a.size(); ++i) {
      sq.push_back((a[i] - b[i]) * (a[i] - b[i]));
      ab.push_back(std::abs(a[i] - b[i]));
    }
    for (Reduction r : kReductions) {
      const std::string what = std::string(rname(r)) + " " + dtype_name(dt);
      expect_close(mse_loss(x, y, r), reduce_ref(sq, r), tol, "mse " + what);
      expect_close(l1_loss(x, y, r), reduce_ref(ab, r), tol, "l1 " + what);
      expect_close(MSELoss(r)(x, y), reduce_ref(sq, r), tol, "MSELoss " + what);
      expect_close(L1Loss(r)(x, y), reduce_ref(ab, r), tol, "L1Loss " + what);
    }
    EXPECT_EQ(mse_loss(x, y, Reduction::None).shape(), (Shape{3, 4}));
    EXPECT_EQ(mse_loss(x, y).dim(), 0);
  }
}

TEST(Losses, TargetsMayRequireGrad) {
  Variable x(from_vector<double>({1, 2}, {2}), true), y(from_vector<double>({4, 0}, {2}), true);
  mse_loss(x, y).backward();
  // d/dy mean((x - y)^2) = -(x - y)
  EXPECT_THAT(y.grad().to_vector<double>(), ElementsAre(3.0, -2.0));
  EXPECT_THAT(x.grad().to_vector<double>(), ElementsAre(-3.0, 2.0));
}

TEST(Losses, GradCheckMseAndL1WrtInputAndTarget) {
  const Tensor a = from_vector<double>(draw(10, -2, 2, 3), {2, 5});
  // Target = input + an offset of at least 0.2 in size: away from l1's kink.
  std::vector<double> off = draw(10, 0.2, 1.5, 4), av = a.to_vector<double>();
  for (size_t i = 0; i < off.size(); ++i) off[i] = av[i] + (i % 2 ? off[i] : -off[i]);
  const Tensor b = from_vector<double>(off, {2, 5});
  for (Reduction r : kReductions) {
    EXPECT_TRUE(grad_check(std::string("mse_loss ") + rname(r),
                           [r](const std::vector<Variable>& v) { return mse_loss(v[0], v[1], r); },
                           {a, b}));
    EXPECT_TRUE(grad_check(std::string("l1_loss ") + rname(r),
                           [r](const std::vector<Variable>& v) { return l1_loss(v[0], v[1], r); },
                           {a, b}));
  }
}

TEST(Losses, ShapeMismatchNamesTheLoss) {
  const Variable x(zeros({2, 3})), y(zeros({3, 2})), z(zeros({2, 3, 1}));
  expect_error(
      ErrKind::Shape, "mse_loss", [&] { mse_loss(x, y); }, "mse");
  expect_error(
      ErrKind::Shape, "l1_loss", [&] { l1_loss(x, z); }, "l1");
  expect_error(
      ErrKind::Shape, "binary_cross_entropy_with_logits",
      [&] { binary_cross_entropy_with_logits(x, y); }, "bce");
  expect_error(
      ErrKind::Shape, "binary_cross_entropy_with_logits",
      [&] { binary_cross_entropy_with_logits(x, x, Reduction::Mean, zeros({2})); },
      "bce pos_weight [2] against [2, 3]");
  expect_error(
      ErrKind::Dtype, "binary_cross_entropy_with_logits",
      [&] { binary_cross_entropy_with_logits(x, x, Reduction::Mean, zeros({3}, kF64)); },
      "bce pos_weight dtype");
  expect_error(
      ErrKind::Shape, "cross_entropy", [&] { CrossEntropyLoss()(x, zeros({3}, {Dtype::Int64})); },
      "ce target size");
  expect_error(
      ErrKind::Value, "forward", [&] { MSELoss().forward(x); }, "one-argument forward");
}

// ---- cross-entropy ---------------------------------------------------------------------------

struct CeRef {
  std::vector<double> loss;  // per sample
  double weight_sum = 0;
};

// PyTorch's definition, with log-probabilities from a naive log-sum-exp.
CeRef ce_reference(const std::vector<double>& logits, int64_t n, int64_t c,
                   const std::vector<int64_t>& target, const std::vector<double>& weight,
                   double eps, int64_t ignore) {
  CeRef r;
  for (int64_t i = 0; i < n; ++i) {
    if (target[size_t(i)] == ignore) {
      r.loss.push_back(0.0);
      continue;
    }
    double mx = -INFINITY;
    for (int64_t j = 0; j < c; ++j) mx = std::max(mx, logits[size_t(i * c + j)]);
    double se = 0;
    for (int64_t j = 0; j < c; ++j) se += std::exp(logits[size_t(i * c + j)] - mx);
    const double lse = mx + std::log(se);
    auto w = [&](int64_t j) { return weight.empty() ? 1.0 : weight[size_t(j)]; };
    const int64_t t = target[size_t(i)];
    double smooth = 0;
    for (int64_t j = 0; j < c; ++j) smooth += w(j) * (lse - logits[size_t(i * c + j)]);
    r.loss.push_back((1 - eps) * w(t) * (lse - logits[size_t(i * c + t)]) +
                     eps / double(c) * smooth);
    r.weight_sum += w(t);
  }
  return r;
}

TEST(Losses, CrossEntropyWithWeightsSmoothingAndIgnoreIndex) {
  const int64_t n = 6, c = 4;
  const std::vector<double> logits = draw(size_t(n * c), -4, 4, 5);
  const std::vector<int64_t> target = {0, 3, -1, 2, 1, 3};
  const std::vector<double> weight = {0.5, 2.0, 1.0, 0.25};
  struct Case {
    std::vector<double> weight;
    double eps;
    int64_t ignore;
  };
  const std::vector<Case> cases = {
      {{}, 0.0, -100}, {weight, 0.0, -100}, {{}, 0.2, -1}, {weight, 0.1, -1}, {weight, 0.3, 3}};
  std::vector<int64_t> valid_target = target;
  valid_target[2] = 1;  // -1 is only valid as the ignore_index
  for (const Case& k : cases) {
    const std::vector<int64_t>& tv = k.ignore == -100 || k.ignore == 3 ? valid_target : target;
    const Tensor tt = from_vector<int64_t>(tv, {n});
    const CeRef ref = ce_reference(logits, n, c, tv, k.weight, k.eps, k.ignore);
    Tensor w = k.weight.empty() ? Tensor() : from_vector<double>(k.weight, {c});
    for (Reduction r : kReductions) {
      const std::string what = "ce w=" + std::to_string(k.weight.size()) +
                               " eps=" + std::to_string(k.eps) +
                               " ignore=" + std::to_string(k.ignore) + " " + rname(r);
      std::vector<double> want = reduce_ref(ref.loss, r);
      if (r == Reduction::Mean) {
        double s = 0;
        for (double l : ref.loss) s += l;
        want = {s / ref.weight_sum};
      }
      CrossEntropyLoss module(w, k.eps, k.ignore, r);
      expect_close(module(Variable(from_vector<double>(logits, {n, c})), tt), want, 1e-12, what);
      EXPECT_TRUE(grad_check(what, [&](const std::vector<Variable>& v) { return module(v[0], tt); },
                             {from_vector<double>(logits, {n, c})}));
    }
  }
  EXPECT_THROW(CrossEntropyLoss(Tensor(), 1.0), ValueError);
}

TEST(Losses, CrossEntropyModuleKeepsItsWeightAsABuffer) {
  CrossEntropyLoss loss(from_vector<float>({1, 2, 3}, {3}), 0.1);
  ASSERT_EQ(loss.state_dict().size(), 1u);
  EXPECT_EQ(loss.state_dict()[0].first, "weight");
  loss.to(Dtype::Float64);
  EXPECT_EQ(loss.named_buffers()[0].second.dtype(), Dtype::Float64);
  const Variable logits(from_vector<double>({1, 2, 3, 0, 0, 1}, {2, 3}));
  EXPECT_TRUE(std::isfinite(loss(logits, from_vector<int64_t>({2, 0}, {2})).item()));
  EXPECT_EQ(loss.str(),
            "CrossEntropyLoss(weight=[3], label_smoothing=0.1, ignore_index=-100, reduction=mean)");
  EXPECT_EQ(MSELoss(Reduction::Sum).str(), "MSELoss(reduction=sum)");
}

// ---- BCE with logits -------------------------------------------------------------------------

double log_sigmoid(double x) {
  return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
}

// -[p y log s(x) + (1 - y) log(1 - s(x))], with log(1 - s(x)) = log s(-x).
std::vector<double> bce_reference(const std::vector<double>& x, const std::vector<double>& y,
                                  const std::vector<double>& pw, size_t classes) {
  std::vector<double> out;
  for (size_t i = 0; i < x.size(); ++i) {
    const double p = pw.empty() ? 1.0 : pw[i % classes];
    out.push_back(-(p * y[i] * log_sigmoid(x[i]) + (1 - y[i]) * log_sigmoid(-x[i])));
  }
  return out;
}

TEST(Losses, BceWithLogitsMatchesNaiveLoopsWithAndWithoutPosWeight) {
  const std::vector<double> x = draw(12, -5, 5, 7), y = draw(12, 0, 1, 8);
  const std::vector<double> pw = {0.5, 3.0, 1.0};
  for (Dtype dt : {Dtype::Float64, Dtype::Float32}) {
    const double tol = dt == Dtype::Float64 ? 1e-13 : 2e-6;
    const Variable xv(from_vector<double>(x, {4, 3}, {dt})),
        yv(from_vector<double>(y, {4, 3}, {dt}));
    for (Reduction r : kReductions) {
      const std::string what = std::string(rname(r)) + " " + dtype_name(dt);
      expect_close(binary_cross_entropy_with_logits(xv, yv, r),
                   reduce_ref(bce_reference(x, y, {}, 3), r), tol, "bce " + what);
      BCEWithLogitsLoss weighted(from_vector<double>(pw, {3}, {dt}), r);
      expect_close(weighted(xv, yv), reduce_ref(bce_reference(x, y, pw, 3), r), tol,
                   "bce pos_weight " + what);
    }
  }
}

TEST(Losses, BceWithLogitsIsFiniteAndExactForHugeLogits) {
  const std::vector<double> x = {-1e4, -100, -30, -1e-3, 0, 1e-3, 30, 100, 1e4};
  for (Dtype dt : {Dtype::Float64, Dtype::Float32}) {
    for (double target : {0.0, 0.3, 1.0}) {
      const std::vector<double> y(x.size(), target);
      const std::vector<double> pw(x.size(), 2.5);
      Variable xv(from_vector<double>(x, {9}, {dt}), true);
      const Variable yv(from_vector<double>(y, {9}, {dt}));
      const Tensor p = from_vector<double>(pw, {9}, {dt});
      const Variable loss = binary_cross_entropy_with_logits(xv, yv, Reduction::None, p);
      const std::vector<double> ref = bce_reference(x, y, pw, 9);
      const std::vector<double> got = loss.data().to_vector<double>();
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_TRUE(std::isfinite(got[i])) << dtype_name(dt) << " x=" << x[i];
        const double tol = dt == Dtype::Float64 ? 1e-14 : 1e-6;
        EXPECT_NEAR(got[i], ref[i], tol * std::max(1.0, std::abs(ref[i])))
            << dtype_name(dt) << " x=" << x[i] << " y=" << target;
      }
      sum(loss).backward();
      // d/dx = s(x) (p y + 1 - y) - p y, also at x == 0 (a zero-initialised output layer).
      const std::vector<double> g = xv.grad().to_vector<double>();
      for (size_t i = 0; i < x.size(); ++i) {
        const double s = 1.0 / (1.0 + std::exp(-x[i]));
        const double want = s * (2.5 * target + 1 - target) - 2.5 * target;
        ASSERT_TRUE(std::isfinite(g[i])) << dtype_name(dt) << " x=" << x[i];
        EXPECT_NEAR(g[i], want, dt == Dtype::Float64 ? 1e-14 : 1e-6)
            << dtype_name(dt) << " x=" << x[i] << " y=" << target;
      }
    }
  }
}

TEST(Losses, GradCheckBceWrtInputAndTarget) {
  const Tensor x = from_vector<double>(draw(12, -4, 4, 9), {4, 3});
  const Tensor y = from_vector<double>(draw(12, 0.05, 0.95, 10), {4, 3});
  const Tensor pw = from_vector<double>({0.5, 3.0, 1.5}, {3});
  for (Reduction r : kReductions) {
    EXPECT_TRUE(grad_check(std::string("bce ") + rname(r),
                           [r](const std::vector<Variable>& v) {
                             return binary_cross_entropy_with_logits(v[0], v[1], r);
                           },
                           {x, y}));
    EXPECT_TRUE(grad_check(std::string("bce pos_weight ") + rname(r),
                           [&](const std::vector<Variable>& v) {
                             return binary_cross_entropy_with_logits(v[0], v[1], r, pw);
                           },
                           {x, y}));
  }
}

TEST(Losses, BceModuleKeepsPosWeightAsABuffer) {
  BCEWithLogitsLoss loss(from_vector<float>({2, 3}, {2}), Reduction::Sum);
  ASSERT_EQ(loss.named_buffers().size(), 1u);
  EXPECT_EQ(loss.named_buffers()[0].first, "pos_weight");
  EXPECT_EQ(loss.str(), "BCEWithLogitsLoss(pos_weight=[2], reduction=sum)");
  EXPECT_TRUE(BCEWithLogitsLoss().named_buffers().empty());
}

}  // namespace
}  // namespace nn
