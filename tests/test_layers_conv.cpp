// Convolutional layers: Conv2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d/2d and the
// ResNet basic block. Shapes, parameter and buffer names (PyTorch's), initialisation, printing,
// state-dict round trips, batch norm's training and evaluation modes and its running statistics,
// constructor errors, and float64 finite-difference checks that the gradient reaches every
// parameter with the right value. The ops themselves are tested by the op table; here the layers'
// wiring (options passed through, modes, buffers) is what is checked, against small loops.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/flatten.h"
#include "layers/init.h"
#include "layers/linear.h"
#include "layers/module.h"
#include "layers/pool.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "tests/grad_check.h"
#include "tests/op_harness.h"

namespace nn {
namespace {

using test::ErrKind;
using test::expect_error;
using test::grad_check;
using test::param_grad_check;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr TensorOptions kF64 = {Dtype::Float64};

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }
std::vector<double> values(const Variable& v) { return v.data().to_vector<double>(); }

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i], want[i], tol * (1.0 + std::abs(want[i]))) << what << " at " << i;
  }
}

template <class Pairs>
std::vector<std::string> names_of(const Pairs& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.first);
  return out;
}

// Direct float64 convolution (cross-correlation) on host vectors: the layer must pass its options
// through to the op unchanged.
std::vector<double> conv_reference(const Tensor& x, const Tensor& w, const Tensor& b,
                                   const Conv2dOptions& o) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t oc = w.size(0), cg = w.size(1), kh = w.size(2), kw = w.size(3);
  const int64_t ho = conv_out_size(h, kh, o.stride[0], o.padding[0], o.dilation[0]);
  const int64_t wo = conv_out_size(wd, kw, o.stride[1], o.padding[1], o.dilation[1]);
  const std::vector<double> xv = values(x), wv = values(w);
  const std::vector<double> bv = b.defined() ? values(b) : std::vector<double>(size_t(oc), 0.0);
  const int64_t ocg = oc / o.groups;
  std::vector<double> y(size_t(n * oc * ho * wo), 0.0);
  for (int64_t in = 0; in < n; ++in)
    for (int64_t co = 0; co < oc; ++co)
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j) {
          double acc = bv[size_t(co)];
          const int64_t g = co / ocg;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t p = 0; p < kh; ++p)
              for (int64_t q = 0; q < kw; ++q) {
                const int64_t r = i * o.stride[0] - o.padding[0] + p * o.dilation[0];
                const int64_t s = j * o.stride[1] - o.padding[1] + q * o.dilation[1];
                if (r < 0 || r >= h || s < 0 || s >= wd) continue;
                const int64_t xc = g * cg + ci;
                acc += xv[size_t(((in * c + xc) * h + r) * wd + s)] *
                       wv[size_t(((co * cg + ci) * kh + p) * kw + q)];
              }
          y[size_t(((in * oc + co) * ho + i) * wo + j)] = acc;
        }
  return y;
}

// Per-channel mean and biased variance of x [N, C, *] (float64 host values).
std::pair<std::vector<double>, std::vector<double>> channel_stats(const Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), inner = x.numel() / (n * c);
  const std::vector<double> v = values(x);
  std::vector<double> mean(size_t(c), 0.0), var(size_t(c), 0.0);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) mean[size_t(ch)] += v[size_t((i * c + ch) * inner + k)];
    mean[size_t(ch)] /= double(n * inner);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) {
        const double d = v[size_t((i * c + ch) * inner + k)] - mean[size_t(ch)];
        var[size_t(ch)] += d * d;
      }
    var[size_t(ch)] /= double(n * inner);
  }
  return {mean, var};
}

// ---- Conv2d -------------------------------------------------------------------------------------

TEST(Conv2dLayer, ParametersInitialisationAndPrinting) {
  Generator g1(3), g2(3);
  Conv2d a(4, 6, 3, {.padding = {1, 1}}, true, {}, &g1);
  Conv2d b(4, 6, 3, {.padding = {1, 1}}, true, {}, &g2);
  EXPECT_THAT(names_of(a.named_parameters()), ElementsAre("weight", "bias"));
  EXPECT_EQ(a.weight().shape(), (Shape{6, 4, 3, 3}));
  EXPECT_EQ(a.bias().shape(), (Shape{6}));
  EXPECT_EQ(values(a.weight()), values(b.weight()));  // same seed, same weights
  // kaiming_uniform_(a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 4 * 3 * 3.
  const double bound = 1.0 / std::sqrt(36.0);
  double widest = 0.0;
  for (double w : values(a.weight())) {
    EXPECT_LE(std::abs(w), bound);
    widest = std::max(widest, std::abs(w));
  }
  EXPECT_GT(widest, 0.8 * bound) << "216 draws should come near the bound";
  for (double w : values(a.bias())) EXPECT_LE(std::abs(w), bound);
  EXPECT_EQ(a.str(), "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))");

  Conv2d grouped(4, 8, std::array<int64_t, 2>{3, 1}, {.stride = {2, 1}, .groups = 2}, false);
  EXPECT_EQ(grouped.weight().shape(), (Shape{8, 2, 3, 1}));
  EXPECT_FALSE(grouped.bias().defined());
  EXPECT_EQ(grouped.parameters().size(), 1u);
  EXPECT_EQ(grouped.str(), "Conv2d(4, 8, kernel_size=(3, 1), stride=(2, 1), groups=2, bias=false)");
  Conv2d d(1, 2, 3, {}, true, kF64);
  EXPECT_EQ(d.weight().dtype(), Dtype::Float64);
}

TEST(Conv2dLayer, BadConstructorArgumentsThrowValueError) {
  expect_error(
      ErrKind::Value, "Conv2d", [] { Conv2d(0, 4, 3); }, "no input channels");
  expect_error(
      ErrKind::Value, "Conv2d", [] { Conv2d(3, -1, 3); }, "negative output channels");
  expect_error(
      ErrKind::Value, "kernel_size", [] { Conv2d(3, 4, 0); }, "zero kernel");
  expect_error(
      ErrKind::Value, "stride",
      [] {
        Conv2d(3, 4, 3, {.stride = {0, 1}});
      },
      "stride 0");
  expect_error(
      ErrKind::Value, "padding",
      [] {
        Conv2d(3, 4, 3, {.padding = {-1, 0}});
      },
      "padding -1");
  expect_error(
      ErrKind::Value, "dilation",
      [] {
        Conv2d(3, 4, 3, {.dilation = {1, 0}});
      },
      "dilation 0");
  expect_error(
      ErrKind::Value, "groups", [] { Conv2d(3, 4, 3, {.groups = 0}); }, "groups 0");
  expect_error(
      ErrKind::Value, "groups 2 must divide", [] { Conv2d(3, 4, 3, {.groups = 2}); }, "groups");
  expect_error(
      ErrKind::Dtype, "Conv2d", [] { Conv2d(3, 4, 3, {}, true, {Dtype::Int64}); }, "int64");
}

TEST(Conv2dLayer, ComputesTheConvolutionItsOptionsDescribe) {
  Generator gen(11);
  struct Case {
    int64_t c, o;
    std::array<int64_t, 2> k;
    Conv2dOptions opt;
    bool bias;
    Shape out;
  };
  const std::vector<Case> cases = {
      {1, 3, {3, 3}, {}, true, {2, 3, 5, 6}},
      {2, 4, {3, 3}, {.padding = {1, 1}}, false, {2, 4, 7, 8}},
      {2, 2, {3, 2}, {.stride = {2, 3}, .padding = {1, 0}}, true, {2, 2, 4, 3}},
      {4, 4, {3, 3}, {.padding = {2, 2}, .dilation = {2, 2}, .groups = 2}, true, {2, 4, 7, 8}},
      {3, 3, {1, 1}, {.groups = 3}, true, {2, 3, 7, 8}},
  };
  for (const Case& cs : cases) {
    Conv2d conv(cs.c, cs.o, cs.k, cs.opt, cs.bias, kF64, &gen);
    const Tensor x = randn({2, cs.c, 7, 8}, kF64, &gen);
    const Variable y = conv(Variable(x));
    const std::string what = conv.str();
    EXPECT_EQ(y.shape(), cs.out) << what;
    expect_near_all(
        values(y),
        conv_reference(x, conv.weight().data(), cs.bias ? conv.bias().data() : Tensor(), cs.opt),
        1e-12, what);
  }
  Conv2d conv(3, 4, 3);
  expect_error(
      ErrKind::Shape, "conv2d",
      [&] {
        conv(Variable(randn({2, 1, 8, 8})));
      },
      "channels");
}

TEST(Conv2dLayer, GradientsOfInputAndParameters) {
  Generator gen(5);
  Conv2d conv(2, 3, 3, {.stride = {2, 1}, .padding = {1, 1}}, true, kF64, &gen);
  const Tensor x = randn({2, 2, 5, 4}, kF64, &gen);
  EXPECT_TRUE(
      grad_check("Conv2d", [&](const std::vector<Variable>& v) { return conv(v[0]); }, {x}));
  EXPECT_TRUE(param_grad_check(conv, [&] { return conv(Variable(x)); }, 1e-6, 1e-5));
}

// ---- pooling ------------------------------------------------------------------------------------

TEST(PoolLayers, ShapesValuesAndPrinting) {
  // One 4x4 plane 0..15: every 2x2 window's maximum is its bottom-right value.
  std::vector<double> v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  const Variable x(from_vector<double>(v, {1, 1, 4, 4}));

  MaxPool2d max2(2);
  EXPECT_THAT(values(max2(x)), ElementsAre(5, 7, 13, 15));
  EXPECT_EQ(max2.str(),
            "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=false)");
  MaxPool2d max3(3, 1);
  EXPECT_EQ(max3(x).shape(), (Shape{1, 1, 2, 2}));
  EXPECT_THAT(values(max3(x)), ElementsAre(10, 11, 14, 15));
  MaxPool2d max_ceil(3, 2, 0, 1, /*ceil_mode=*/true);
  EXPECT_EQ(max_ceil(x).shape(), (Shape{1, 1, 2, 2}));

  AvgPool2d avg2(2);
  EXPECT_THAT(values(avg2(x)), ElementsAre(2.5, 4.5, 10.5, 12.5));
  EXPECT_EQ(avg2.str(),
            "AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=false, "
            "count_include_pad=true)");
  // A padded corner window: 0 + 1 + 4 + 5 over 9 cells, or over the 4 real ones.
  AvgPool2d with_pad(3, 2, 1, false, true), without_pad(3, 2, 1, false, false);
  EXPECT_DOUBLE_EQ(values(with_pad(x))[0], 10.0 / 9.0);
  EXPECT_DOUBLE_EQ(values(without_pad(x))[0], 10.0 / 4.0);

  AdaptiveAvgPool2d global(1);
  EXPECT_THAT(values(global(x)), ElementsAre(7.5));
  AdaptiveAvgPool2d halves(std::array<int64_t, 2>{2, 1});
  EXPECT_EQ(halves(x).shape(), (Shape{1, 1, 2, 1}));
  EXPECT_THAT(values(halves(x)), ElementsAre(3.5, 11.5));
  EXPECT_EQ(global.str(), "AdaptiveAvgPool2d(output_size=1)");
  EXPECT_EQ(halves.str(), "AdaptiveAvgPool2d(output_size=(2, 1))");

  // Batch and channels pass through.
  const Variable big(randn({3, 5, 9, 9}));
  EXPECT_EQ(max2(big).shape(), (Shape{3, 5, 4, 4}));
  EXPECT_EQ(avg2(big).shape(), (Shape{3, 5, 4, 4}));
  EXPECT_EQ(global(big).shape(), (Shape{3, 5, 1, 1}));
  for (Module* m : std::vector<Module*>{&max2, &avg2, &global}) {
    EXPECT_TRUE(m->parameters().empty()) << m->name();
    EXPECT_TRUE(m->buffers().empty()) << m->name();
  }
}

TEST(PoolLayers, BadConstructorArgumentsThrowValueError) {
  expect_error(
      ErrKind::Value, "MaxPool2d", [] { MaxPool2d(0); }, "kernel 0");
  expect_error(
      ErrKind::Value, "stride", [] { MaxPool2d(2, -1); }, "stride -1");
  expect_error(
      ErrKind::Value, "padding", [] { MaxPool2d(2, 2, 2); }, "padding above k/2");
  expect_error(
      ErrKind::Value, "dilation", [] { MaxPool2d(2, 2, 0, 0); }, "dilation 0");
  expect_error(
      ErrKind::Value, "AvgPool2d", [] { AvgPool2d(3, 1, -1); }, "padding -1");
  expect_error(
      ErrKind::Value, "no dilation",
      [] {
        AvgPool2d(Pool2dOptions{.dilation = {2, 2}});
      },
      "avg dilation");
  expect_error(
      ErrKind::Value, "AdaptiveAvgPool2d", [] { AdaptiveAvgPool2d(0); }, "size 0");
  MaxPool2d pool(2);
  expect_error(
      ErrKind::Shape, "max_pool2d",
      [&] {
        pool(Variable(randn({4, 4})));
      },
      "rank 2");
}

TEST(PoolLayers, GradCheck) {
  Generator gen(8);
  // Distinct values a good way apart, so that no finite-difference step changes which is largest.
  std::vector<double> v(2 * 3 * 5 * 6);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double((i * 37) % v.size()) * 0.1;
  const Tensor x = from_vector<double>(v, {2, 3, 5, 6});
  MaxPool2d max_pool(Pool2dOptions{.kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1}});
  AvgPool2d avg_pool(3, 2, 1, true, false);
  AdaptiveAvgPool2d adaptive(std::array<int64_t, 2>{3, 4});
  for (Module* m : std::vector<Module*>{&max_pool, &avg_pool, &adaptive}) {
    EXPECT_TRUE(
        grad_check(m->str(), [&](const std::vector<Variable>& in) { return (*m)(in[0]); }, {x}));
  }
}

// ---- batch norm ---------------------------------------------------------------------------------

TEST(BatchNormLayer, ParametersAndBuffersAreNamedAsPyTorchNamesThem) {
  BatchNorm2d bn(5);
  EXPECT_THAT(names_of(bn.named_parameters()), ElementsAre("weight", "bias"));
  EXPECT_THAT(names_of(bn.named_buffers()),
              ElementsAre("running_mean", "running_var", "num_batches_tracked"));
  EXPECT_THAT(names_of(bn.state_dict()),
              ElementsAre("weight", "bias", "running_mean", "running_var", "num_batches_tracked"));
  EXPECT_THAT(values(bn.weight()), ElementsAre(1, 1, 1, 1, 1));
  EXPECT_THAT(values(bn.bias()), ElementsAre(0, 0, 0, 0, 0));
  EXPECT_THAT(values(bn.running_mean()), ElementsAre(0, 0, 0, 0, 0));
  EXPECT_THAT(values(bn.running_var()), ElementsAre(1, 1, 1, 1, 1));
  EXPECT_EQ(bn.num_batches_tracked().dtype(), Dtype::Int64);
  EXPECT_EQ(bn.num_batches_tracked().dim(), 0);
  EXPECT_EQ(bn.str(),
            "BatchNorm2d(5, eps=1e-05, momentum=0.1, affine=true, track_running_stats=true)");

  BatchNorm1d plain(3, {.affine = false, .track_running_stats = false});
  EXPECT_TRUE(plain.parameters().empty());
  EXPECT_TRUE(plain.buffers().empty());
  EXPECT_FALSE(plain.weight().defined());
  EXPECT_FALSE(plain.running_mean().defined());
  BatchNorm2d fused(2, {.activation = Activation::Relu});
  EXPECT_THAT(fused.str(), HasSubstr("activation=relu"));

  // to(Float64) converts the statistics and keeps the batch count an integer.
  bn.to(Dtype::Float64);
  EXPECT_EQ(bn.running_var().dtype(), Dtype::Float64);
  EXPECT_EQ(bn.num_batches_tracked().dtype(), Dtype::Int64);
}

TEST(BatchNormLayer, BadArgumentsThrow) {
  expect_error(
      ErrKind::Value, "BatchNorm2d", [] { BatchNorm2d(0); }, "no features");
  expect_error(
      ErrKind::Value, "eps", [] { BatchNorm2d(3, {.eps = 0}); }, "eps 0");
  expect_error(
      ErrKind::Value, "momentum", [] { BatchNorm1d(3, {.momentum = 1.5}); }, "momentum");
  expect_error(
      ErrKind::Value, "activation", [] { BatchNorm2d(3, {.activation = Activation::Tanh}); },
      "tanh");
  expect_error(
      ErrKind::Dtype, "BatchNorm1d", [] { BatchNorm1d(3, {}, {Dtype::Int64}); }, "int64");
  BatchNorm2d bn2(3);
  expect_error(
      ErrKind::Shape, "BatchNorm2d: expected a 4-d",
      [&] {
        bn2(Variable(randn({4, 3})));
      },
      "rank 2");
  expect_error(
      ErrKind::Shape, "BatchNorm2d: input has 4 channels, expected 3",
      [&] {
        bn2(Variable(randn({2, 4, 3, 3})));
      },
      "channels");
  BatchNorm1d bn1(3);
  expect_error(
      ErrKind::Shape, "BatchNorm1d: expected a 2-d",
      [&] {
        bn1(Variable(randn({2, 3, 4, 4})));
      },
      "rank 4");
  // A failed call leaves the batch count alone.
  EXPECT_EQ(bn2.num_batches_tracked().item(), 0.0);
}

TEST(BatchNormLayer, TrainingNormalisesWithBatchStatisticsAndUpdatesRunningOnes) {
  Generator gen(21);
  const Tensor x = add(mul(randn({4, 3, 5, 2}, kF64, &gen), 3.0), 1.5);
  BatchNorm2d bn(3, {.momentum = 0.25}, kF64);
  fill_(bn.weight().data(), 2.0);
  fill_(bn.bias().data(), -0.5);
  const Variable y = bn(Variable(x));
  ASSERT_EQ(y.shape(), x.shape());

  const auto [mean, var] = channel_stats(x);
  const auto [ymean, yvar] = channel_stats(y.data());
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(ymean[c], -0.5, 1e-9) << "channel " << c;
    EXPECT_NEAR(yvar[c], 4.0 * var[c] / (var[c] + 1e-5), 1e-9) << "channel " << c;
  }
  // PyTorch's rule: running = (1 - momentum) running + momentum batch, the variance unbiased.
  const double count = 4 * 5 * 2;
  std::vector<double> want_mean, want_var;
  for (size_t c = 0; c < 3; ++c) {
    want_mean.push_back(0.25 * mean[c]);
    want_var.push_back(0.75 + 0.25 * var[c] * count / (count - 1));
  }
  expect_near_all(values(bn.running_mean()), want_mean, 1e-12, "running_mean");
  expect_near_all(values(bn.running_var()), want_var, 1e-12, "running_var");
  EXPECT_EQ(bn.num_batches_tracked().item(), 1.0);
  bn(Variable(x));
  EXPECT_EQ(bn.num_batches_tracked().item(), 2.0);

  bn.reset_running_stats();
  EXPECT_THAT(values(bn.running_mean()), ElementsAre(0, 0, 0));
  EXPECT_THAT(values(bn.running_var()), ElementsAre(1, 1, 1));
  EXPECT_EQ(bn.num_batches_tracked().item(), 0.0);
}

TEST(BatchNormLayer, EvaluationUsesRunningStatisticsAndLeavesThemAlone) {
  Generator gen(4);
  BatchNorm1d bn(2, {}, kF64);
  bn.running_mean().copy_(from_vector<double>({1.0, -2.0}, {2}));
  bn.running_var().copy_(from_vector<double>({4.0, 0.25}, {2}));
  bn.weight().data().copy_(from_vector<double>({3.0, 1.0}, {2}));
  bn.bias().data().copy_(from_vector<double>({0.5, 0.0}, {2}));
  bn.eval();
  const Tensor x = randn({6, 2, 3}, kF64, &gen);  // [N, C, L]
  const Variable y = bn(Variable(x));
  const std::vector<double> xv = values(x);
  std::vector<double> want(xv.size());
  const double m[2] = {1.0, -2.0}, v[2] = {4.0, 0.25}, g[2] = {3.0, 1.0}, b[2] = {0.5, 0.0};
  for (size_t i = 0; i < xv.size(); ++i) {
    const size_t c = (i / 3) % 2;
    want[i] = g[c] * (xv[i] - m[c]) / std::sqrt(v[c] + 1e-5) + b[c];
  }
  expect_near_all(values(y), want, 1e-12, "eval output");
  EXPECT_THAT(values(bn.running_mean()), ElementsAre(1.0, -2.0));
  EXPECT_THAT(values(bn.running_var()), ElementsAre(4.0, 0.25));
  EXPECT_EQ(bn.num_batches_tracked().item(), 0.0);

  // Back in training the batch statistics are used again: each channel's mean becomes the bias.
  bn.train();
  const auto [ymean, yvar] = channel_stats(bn(Variable(x)).data());
  EXPECT_NEAR(ymean[0], 0.5, 1e-9);
  EXPECT_NEAR(ymean[1], 0.0, 1e-9);

  // Without running statistics evaluation normalises with the batch's too.
  BatchNorm1d untracked(2, {.affine = false, .track_running_stats = false}, kF64);
  untracked.eval();
  const Tensor x2 = randn({8, 2}, kF64, &gen);
  const auto [umean, uvar] = channel_stats(untracked(Variable(x2)).data());
  EXPECT_NEAR(umean[0], 0.0, 1e-9);
  EXPECT_NEAR(uvar[1], 1.0, 1e-3);
}

TEST(BatchNormLayer, FusedReluIsReluOfTheNormalisedValues) {
  Generator gen(6);
  const Tensor x = randn({3, 4, 2, 2}, kF64, &gen);
  BatchNorm2d plain(4, {}, kF64), fused(4, {.activation = Activation::Relu}, kF64);
  expect_near_all(values(fused(Variable(x))), values(relu(plain(Variable(x)))), 1e-12, "relu");
}

TEST(BatchNormLayer, GradientsInTrainingAndEvaluation) {
  Generator gen(13);
  const Tensor x = randn({4, 3, 2, 3}, kF64, &gen);
  for (bool training : {true, false}) {
    for (Activation act : {Activation::None, Activation::Relu}) {
      BatchNorm2d bn(3, {.activation = act}, kF64);
      init::uniform_(bn.weight().data(), 0.5, 1.5, &gen);
      init::uniform_(bn.bias().data(), -0.5, 0.5, &gen);
      init::uniform_(bn.running_var(), 0.5, 2.0, &gen);
      bn.train(training);
      const std::string what =
          std::string(training ? "training" : "evaluation") + " " + activation_name(act);
      EXPECT_TRUE(grad_check(what, [&](const std::vector<Variable>& v) { return bn(v[0]); }, {x}));
      EXPECT_TRUE(param_grad_check(bn, [&] { return bn(Variable(x)); }, 1e-6, 1e-5)) << what;
    }
  }
}

// ---- the residual block -------------------------------------------------------------------------

TEST(ResidualBlockLayer, NamesMatchTorchvisionsBasicBlock) {
  ResidualBlock same(8, 8);
  EXPECT_EQ(same.downsample(), nullptr);
  EXPECT_THAT(names_of(same.named_parameters()),
              ElementsAre("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight",
                          "bn2.bias"));
  ResidualBlock down(8, 16, 2);
  ASSERT_NE(down.downsample(), nullptr);
  EXPECT_THAT(names_of(down.state_dict()),
              ElementsAre("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                          "bn1.running_var", "bn1.num_batches_tracked", "conv2.weight",
                          "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var",
                          "bn2.num_batches_tracked", "downsample.0.weight", "downsample.1.weight",
                          "downsample.1.bias", "downsample.1.running_mean",
                          "downsample.1.running_var", "downsample.1.num_batches_tracked"));
  EXPECT_EQ(down.conv1()->weight().shape(), (Shape{16, 8, 3, 3}));
  EXPECT_EQ(down.downsample()->at<Conv2d>(0)->weight().shape(), (Shape{16, 8, 1, 1}));
  int64_t count = 0;
  for (const Variable& p : down.parameters()) count += p.numel();
  EXPECT_EQ(count, 16 * 8 * 9 + 16 * 16 * 9 + 16 * 8 + 3 * 2 * 16);
  // A change of channels alone also needs the projection.
  EXPECT_NE(ResidualBlock(4, 8, 1).downsample(), nullptr);
  EXPECT_THAT(down.str(), HasSubstr("(downsample): Sequential("));
  expect_error(
      ErrKind::Value, "ResidualBlock", [] { ResidualBlock(4, 4, 0); }, "stride 0");
  expect_error(
      ErrKind::Value, "ResidualBlock", [] { ResidualBlock(0, 4); }, "no channels");
}

TEST(ResidualBlockLayer, ComputesReluOfBranchPlusShortcut) {
  Generator gen(17);
  const Tensor x = randn({2, 4, 7, 6}, kF64, &gen);
  ResidualBlock same(4, 4, 1, kF64, &gen);
  const Variable y = same(Variable(x));
  EXPECT_EQ(y.shape(), x.shape());
  const Variable branch =
      (*same.bn2())((*same.conv2())((*same.bn1())((*same.conv1())(Variable(x)))));
  expect_near_all(values(y), values(relu(add(branch, Variable(x)))), 1e-12, "identity block");

  ResidualBlock down(4, 6, 2, kF64, &gen);
  const Variable yd = down(Variable(x));
  EXPECT_EQ(yd.shape(), (Shape{2, 6, 4, 3}));  // ceil(7 / 2), ceil(6 / 2)
  for (double v : values(yd)) EXPECT_GE(v, 0.0);
}

TEST(ResidualBlockLayer, GradientReachesEveryParameterCorrectly) {
  Generator gen(19);
  const Tensor x = randn({3, 2, 5, 5}, kF64, &gen);
  ResidualBlock block(2, 3, 2, kF64, &gen);
  EXPECT_TRUE(param_grad_check(
      block, [&] { return block(Variable(x)); }, 1e-6, 1e-4));
  EXPECT_TRUE(grad_check("ResidualBlock",
                         [&](const std::vector<Variable>& v) { return block(v[0]); }, {x},
                         {.rtol = 1e-4, .atol = 1e-6, .differentiable = {}}));
}

// ---- whole networks -----------------------------------------------------------------------------

// A small LeNet/ResNet hybrid with every layer of this file.
std::shared_ptr<Sequential> small_cnn(uint64_t seed, TensorOptions options = {}) {
  Generator gen(seed);
  auto m = std::make_shared<Sequential>();
  m->push_back(
      std::make_shared<Conv2d>(1, 4, 3, Conv2dOptions{.padding = {1, 1}}, false, options, &gen));
  m->push_back(std::make_shared<BatchNorm2d>(4, BatchNormOptions{}, options));
  m->push_back(std::make_shared<ReLU>());
  m->push_back(std::make_shared<MaxPool2d>(2));
  m->push_back(std::make_shared<ResidualBlock>(4, 8, 2, options, &gen));
  m->push_back(std::make_shared<AvgPool2d>(2, 1));
  m->push_back(std::make_shared<AdaptiveAvgPool2d>(2));
  m->push_back(std::make_shared<Flatten>());
  m->push_back(std::make_shared<BatchNorm1d>(32, BatchNormOptions{}, options));
  m->push_back(std::make_shared<Linear>(32, 3, true, Activation::None, options, &gen));
  return m;
}

TEST(ConvNetworks, GradientFlowsToEveryParameter) {
  auto model = small_cnn(1);
  Generator gen(2);
  const Tensor x = randn({4, 1, 12, 12}, {}, &gen);
  const Variable out = (*model)(Variable(x));
  EXPECT_EQ(out.shape(), (Shape{4, 3}));
  sum(mul(out, Variable(randn({4, 3}, {}, &gen)))).backward();
  int64_t checked = 0;
  for (auto& [name, p] : model->named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    EXPECT_GT(sum(abs(p.grad())).item(), 0.0) << name << "'s gradient is all zeros";
    ++checked;
  }
  // conv 1, bn 2, the block 9 (conv1, bn1 2, conv2, bn2 2, downsample 3), bn 2, linear 2.
  EXPECT_EQ(checked, 16);
}

TEST(ConvNetworks, StateDictRoundTripMakesTwoModelsAgree) {
  auto a = small_cnn(1), b = small_cnn(2);
  Generator gen(3);
  // Training steps move a's running statistics away from their initial values.
  for (int i = 0; i < 3; ++i) (*a)(Variable(randn({5, 1, 12, 12}, {}, &gen)));
  const Tensor x = randn({3, 1, 12, 12}, {}, &gen);
  a->eval();
  b->eval();
  EXPECT_NE(values((*a)(Variable(x))), values((*b)(Variable(x))));

  const std::filesystem::path file =
      std::filesystem::temp_directory_path() / "nn_test_layers_conv.safetensors";
  a->save(file.string());
  const LoadReport report = b->load(file.string());
  std::filesystem::remove(file);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(values((*a)(Variable(x))), values((*b)(Variable(x))));
  for (const auto& [name, t] : b->named_buffers()) {
    if (name.ends_with("num_batches_tracked")) {
      EXPECT_EQ(t.item(), 3.0) << name;
    }
  }

  // In memory too, and a model of another width is refused with the names that differ.
  auto c = small_cnn(4);
  c->load_state_dict(a->state_dict());
  c->eval();
  EXPECT_EQ(values((*a)(Variable(x))), values((*c)(Variable(x))));
  BatchNorm2d wrong(5);
  expect_error(
      ErrKind::Value, "running_mean is [5] in the module, [4]",
      [&] {
        StateDict sd;
        for (auto& [name, t] : a->state_dict()) {
          if (name.starts_with("1.")) sd.emplace_back(name.substr(2), t);
        }
        wrong.load_state_dict(sd);
      },
      "width");
}

}  // namespace
}  // namespace nn
