// The convolutional-network ops on the CPU (kernels/conv_ops.h): conv2d and its backward against a
// direct float64 loop over many configurations (groups, depthwise, dilation, stride, padding, odd
// sizes, 1x1, a kernel as large as the input, batches split into several im2col chunks), pooling
// and adaptive pooling against naive loops (ceil_mode, padding, count_include_pad, dilation, ties
// and NaN), batch norm in training and evaluation against its formulas and PyTorch's running-
// statistics rule, and every documented bad input. Gradients in float64 are checked by the
// gradient table (tests/grad_table_conv.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "kernels/conv_ops.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using test::max_rel;
using test::message_of;
using ::testing::HasSubstr;
using Vec = std::vector<double>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor random(std::mt19937& rng, const Shape& s, Dtype dtype, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  Vec v(size_t(shape_numel(s)));
  for (double& x : v) x = u(rng);
  return from_vector(v, s, {Dtype::Float64}).to(dtype);
}

Tensor f64(const Vec& v, const Shape& s) { return from_vector(v, s, {Dtype::Float64}); }

// Tolerance of a result against a float64 reference, relative to max(|ref|, 1).
double tolerance(Dtype d) {
  switch (d) {
    case Dtype::Float64:
      return 1e-11;
    case Dtype::Float32:
      return 2e-5;
    default:
      return 2e-2;
  }
}

// ---- conv2d -----------------------------------------------------------------------------------

struct ConvCase {
  int64_t n, c, h, w, o, kh, kw;
  Conv2dOptions opt;
  const char* what;
};

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> kCases = {
      {2, 3, 7, 6, 4, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, "3x3 padding 1"},
      {3, 2, 9, 7, 5, 3, 2, {{2, 3}, {1, 0}, {1, 1}, 1}, "odd sizes, stride 2x3, 3x2 kernel"},
      {2, 3, 8, 9, 2, 3, 3, {{1, 2}, {2, 1}, {2, 3}, 1}, "dilation 2x3"},
      {2, 4, 6, 5, 6, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 2}, "groups 2"},
      {2, 5, 7, 7, 5, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 5}, "depthwise"},
      {2, 3, 5, 6, 6, 3, 3, {{2, 2}, {0, 1}, {1, 1}, 3}, "depthwise x2, stride 2"},
      {3, 3, 4, 5, 4, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, "1x1"},
      {2, 3, 5, 4, 2, 5, 4, {{1, 1}, {0, 0}, {1, 1}, 1}, "kernel = input"},
      {1, 2, 3, 3, 2, 5, 5, {{1, 1}, {2, 2}, {1, 1}, 1}, "kernel larger than the unpadded input"},
      {2, 2, 6, 6, 3, 2, 2, {{3, 3}, {1, 1}, {2, 2}, 1}, "stride larger than the kernel"},
  };
  return kCases;
}

// Batches that the CPU row splits into several im2col chunks (about 4M elements each).
const std::vector<ConvCase>& chunked_cases() {
  static const std::vector<ConvCase> kCases = {
      {9, 16, 64, 64, 4, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, "9 samples in chunks of 7"},
      {4, 32, 64, 64, 4, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 2}, "groups 2 in chunks of 3"},
  };
  return kCases;
}

struct ConvRef {
  Vec y, dx, dw, db;
};

// The direct loop: y[n, o, i, j] = b[o] + sum over the group's channels and the kernel of
// w[o, c, ki, kj] x[n, g C/G + c, i s - p + ki d, j s - p + kj d]; backward accumulates the
// same products' adjoints from gy.
ConvRef conv_reference(const ConvCase& k, const Vec& x, const Vec& w, const Vec& b, const Vec& gy,
                       int64_t ho, int64_t wo) {
  const Conv2dOptions& o = k.opt;
  const int64_t cg = k.c / o.groups, og = k.o / o.groups;
  ConvRef r{Vec(size_t(k.n * k.o * ho * wo)), Vec(x.size()), Vec(w.size()), Vec(size_t(k.o))};
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t oc = 0; oc < k.o; ++oc)
      for (int64_t i = 0; i < ho; ++i)
        for (int64_t j = 0; j < wo; ++j) {
          const size_t yi = size_t(((n * k.o + oc) * ho + i) * wo + j);
          double acc = b.empty() ? 0.0 : b[size_t(oc)];
          r.db[size_t(oc)] += gy[yi];
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t ki = 0; ki < k.kh; ++ki)
              for (int64_t kj = 0; kj < k.kw; ++kj) {
                const int64_t ih = i * o.stride[0] - o.padding[0] + ki * o.dilation[0];
                const int64_t iw = j * o.stride[1] - o.padding[1] + kj * o.dilation[1];
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                const int64_t ci = oc / og * cg + c;
                const size_t xi = size_t(((n * k.c + ci) * k.h + ih) * k.w + iw);
                const size_t wi = size_t(((oc * cg + c) * k.kh + ki) * k.kw + kj);
                acc += w[wi] * x[xi];
                r.dx[xi] += w[wi] * gy[yi];
                r.dw[wi] += x[xi] * gy[yi];
              }
          r.y[yi] = acc;
        }
  return r;
}

void check_conv(const ConvCase& k, Dtype dtype, uint32_t seed) {
  SCOPED_TRACE(std::string(k.what) + ", " + dtype_name(dtype));
  std::mt19937 rng(seed);
  const Tensor x = random(rng, {k.n, k.c, k.h, k.w}, dtype);
  const Tensor w = random(rng, {k.o, k.c / k.opt.groups, k.kh, k.kw}, dtype);
  const Tensor b = random(rng, {k.o}, dtype);
  const Tensor y = conv2d(x, w, b, k.opt);
  const int64_t ho = conv_out_size(k.h, k.kh, k.opt.stride[0], k.opt.padding[0], k.opt.dilation[0]);
  const int64_t wo = conv_out_size(k.w, k.kw, k.opt.stride[1], k.opt.padding[1], k.opt.dilation[1]);
  ASSERT_EQ(y.shape(), (Shape{k.n, k.o, ho, wo}));
  ASSERT_EQ(y.dtype(), dtype);
  const Tensor gy = random(rng, y.shape(), dtype);
  // The reference reads the values as stored (rounded, for the half types).
  const ConvRef ref = conv_reference(k, x.to_vector<double>(), w.to_vector<double>(),
                                     b.to_vector<double>(), gy.to_vector<double>(), ho, wo);
  const double tol = tolerance(dtype);
  EXPECT_LE(max_rel(y, f64(ref.y, y.shape()), 1.0), tol);
  const Tensor y_nobias = conv2d(x, w, Tensor(), k.opt);
  const Tensor b_expand = b.to(Dtype::Float64).view({1, k.o, 1, 1});
  EXPECT_LE(max_rel(y_nobias, sub(f64(ref.y, y.shape()), b_expand), 1.0), tol);

  const Conv2dGrads g = conv2d_backward(gy, x, w, k.opt, true, true, true);
  ASSERT_TRUE(g.dx.defined() && g.dw.defined() && g.db.defined());
  EXPECT_LE(max_rel(g.dx, f64(ref.dx, x.shape()), 1.0), tol) << "dx";
  // dw and db sum N * Ho * Wo products: rounding of the partial sums drifts like the square
  // root of that length (the sanitizer build's built-in GEMM adds them one after another).
  const double reduce_tol = tol * std::max(4.0, std::sqrt(double(k.n * ho * wo)) / 4.0);
  EXPECT_LE(max_rel(g.dw, f64(ref.dw, w.shape()), 1.0), reduce_tol) << "dw";
  EXPECT_LE(max_rel(g.db, f64(ref.db, {k.o}), 1.0), reduce_tol) << "db";
}

TEST(Conv2d, MatchesDirectLoop) {
  uint32_t seed = 11;
  for (const ConvCase& k : conv_cases())
    for (Dtype d : {Dtype::Float64, Dtype::Float32, Dtype::BFloat16, Dtype::Float16})
      check_conv(k, d, seed++);
}

TEST(Conv2d, MatchesDirectLoopAcrossIm2colChunks) {
  uint32_t seed = 101;
  for (const ConvCase& k : chunked_cases())
    for (Dtype d : {Dtype::Float64, Dtype::Float32}) check_conv(k, d, seed++);
}

// Batches larger than the CPU row's task count (uneven sample ranges per task, several partial
// weight sums added at the end) and one sample (fewer samples than threads: each sample's
// GEMMs split over the threads instead), with the 1x1 path that reads x in place of an im2col
// buffer.
TEST(Conv2d, MatchesDirectLoopOverManySampleTasks) {
  const std::vector<ConvCase> cases = {
      {1, 6, 9, 8, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 2}, "1 sample, groups 2"},
      {1, 4, 5, 5, 6, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, "1 sample, 1x1"},
      {1, 3, 11, 10, 40, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, "1 sample, stride 2, 40 outputs"},
      {13, 4, 5, 6, 6, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 2}, "13 samples, groups 2"},
      {11, 6, 4, 4, 4, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 2}, "11 samples, 1x1 groups 2"},
      {9, 2, 9, 9, 3, 3, 3, {{2, 2}, {1, 1}, {1, 1}, 1}, "9 samples, stride 2"},
      {17, 1, 6, 6, 5, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, "17 samples, one input channel"},
  };
  uint32_t seed = 131;
  for (const ConvCase& k : cases)
    for (Dtype d : {Dtype::Float64, Dtype::Float32, Dtype::BFloat16}) check_conv(k, d, seed++);
}

TEST(Conv2d, OutputSizeFollowsPyTorch) {
  EXPECT_EQ(conv_out_size(28, 3, 1, 1, 1), 28);
  EXPECT_EQ(conv_out_size(28, 5, 2, 2, 1), 14);
  EXPECT_EQ(conv_out_size(7, 3, 2, 0, 2), 2);
  EXPECT_EQ(conv_out_size(3, 5, 1, 0, 1), 0);  // the kernel does not fit
  EXPECT_THROW(conv_out_size(8, 3, 0, 0, 1), ValueError);
}

TEST(Conv2d, BackwardComputesOnlyWhatIsAsked) {
  std::mt19937 rng(5);
  const Tensor x = random(rng, {2, 3, 5, 5}, Dtype::Float64);
  const Tensor w = random(rng, {4, 3, 3, 3}, Dtype::Float64);
  const Tensor gy = random(rng, {2, 4, 3, 3}, Dtype::Float64);
  const Conv2dGrads only_db = conv2d_backward(gy, x, w, {}, false, false, true);
  EXPECT_FALSE(only_db.dx.defined());
  EXPECT_FALSE(only_db.dw.defined());
  ASSERT_TRUE(only_db.db.defined());
  EXPECT_LE(max_rel(only_db.db, sum(gy, {0, 2, 3})), 1e-12);
  const Conv2dGrads none = conv2d_backward(gy, x, w, {}, false, false, false);
  EXPECT_FALSE(none.dx.defined() || none.dw.defined() || none.db.defined());
  EXPECT_TRUE(none.device().is_cpu());
}

TEST(Conv2d, StridedInputsAndEmptyBatch) {
  std::mt19937 rng(6);
  const Tensor x = random(rng, {3, 2, 6, 5}, Dtype::Float32);
  const Tensor w = random(rng, {4, 2, 3, 3}, Dtype::Float32);
  const Tensor xt = x.transpose(2, 3).contiguous().transpose(2, 3);  // same values, strided
  EXPECT_LE(max_rel(conv2d(xt, w), conv2d(x, w)), 0.0);
  const Tensor empty_batch = conv2d(zeros({0, 2, 6, 5}), w);
  EXPECT_EQ(empty_batch.shape(), (Shape{0, 4, 4, 3}));
  const Conv2dGrads g =
      conv2d_backward(zeros({0, 4, 4, 3}), zeros({0, 2, 6, 5}), w, {}, true, true, true);
  EXPECT_EQ(g.dx.shape(), (Shape{0, 2, 6, 5}));
  EXPECT_EQ(amax(abs(g.dw)).item(), 0.0);
  EXPECT_EQ(amax(abs(g.db)).item(), 0.0);
}

TEST(Conv2d, BackendSwitch) {
  for (ConvBackend b : {ConvBackend::Auto, ConvBackend::Cudnn, ConvBackend::Ours})
    EXPECT_EQ(parse_conv_backend(conv_backend_name(b)), b);
  EXPECT_THAT(message_of<ValueError>([] { parse_conv_backend("winograd"); }),
              HasSubstr("winograd"));
  const ConvBackend before = conv_backend();
  set_conv_backend(ConvBackend::Ours);
  EXPECT_EQ(conv_backend(), ConvBackend::Ours);
  set_conv_backend(before);
}

TEST(Conv2d, BadInputs) {
  const Tensor x = zeros({2, 3, 8, 8}), w = zeros({4, 3, 3, 3});
  auto msg_shape = [](auto fn) { return message_of<ShapeError>(fn); };
  auto msg_value = [](auto fn) { return message_of<ValueError>(fn); };
  EXPECT_THAT(msg_shape([&] {
                conv2d(zeros({3, 8, 8}), w);
              }),
              HasSubstr("conv2d: input must be 4-D"));
  EXPECT_THAT(msg_shape([&] {
                conv2d(x, zeros({4, 3, 3}));
              }),
              HasSubstr("conv2d: weight must be 4-D"));
  EXPECT_THAT(msg_shape([&] {
                conv2d(x, zeros({4, 1, 3, 3}));
              }),
              HasSubstr("conv2d: input has 3 channels, weight expects 1 (groups 1"));
  Conv2dOptions g2;
  g2.groups = 2;
  EXPECT_THAT(msg_shape([&] {
                conv2d(zeros({2, 4, 8, 8}), zeros({3, 2, 3, 3}), {}, g2);
              }),
              HasSubstr("conv2d: groups 2 does not divide the 3 output channels"));
  EXPECT_THAT(msg_shape([&] { conv2d(zeros({2, 3, 2, 8}), w); }), HasSubstr("conv2d: kernel 3x3"));
  EXPECT_THAT(msg_shape([&] { conv2d(x, w, zeros({3})); }),
              HasSubstr("conv2d: bias has shape [3]"));
  for (auto bad : {+[](Conv2dOptions& o) {
                     o.stride = {0, 1};
                   },
                   +[](Conv2dOptions& o) {
                     o.padding = {0, -1};
                   },
                   +[](Conv2dOptions& o) {
                     o.dilation = {1, 0};
                   },
                   +[](Conv2dOptions& o) { o.groups = 0; }}) {
    Conv2dOptions o;
    bad(o);
    EXPECT_THAT(msg_value([&] { conv2d(x, w, {}, o); }), HasSubstr("conv2d: "));
  }
  EXPECT_THAT(message_of<DtypeError>([&] { conv2d(x, w.to(Dtype::Float64)); }),
              HasSubstr("conv2d"));
  EXPECT_THAT(message_of<DtypeError>([&] { conv2d(x.to(Dtype::Int64), w.to(Dtype::Int64)); }),
              HasSubstr("conv2d"));
  EXPECT_THAT(message_of<ValueError>([&] { conv2d(Tensor(), w); }), HasSubstr("conv2d"));
  EXPECT_THAT(msg_shape([&] {
                conv2d_backward(zeros({2, 4, 5, 5}), x, w, {}, true, true, true);
              }),
              HasSubstr("conv2d_backward: grad_y has shape [2, 4, 5, 5], expected [2, 4, 6, 6]"));
  EXPECT_THAT(msg_shape([&] {
                conv2d_backward(zeros({2, 4, 6, 6}), x, zeros({4, 2, 3, 3}), {}, true, true, true);
              }),
              HasSubstr("conv2d_backward: input has 3 channels"));
}

// ---- pooling ----------------------------------------------------------------------------------

struct PoolRef {
  Vec y, dx;
  std::vector<int64_t> idx;
};

// Pooling by definition over the padded plane: max treats padding as absent (-inf), avg divides
// by the window's cells inside the padded input (count_include_pad) or inside the input.
PoolRef pool_reference(PoolKind kind, const Vec& x, const Shape& xs, const Pool2dOptions& o,
                       const Vec& gy, int64_t ho, int64_t wo) {
  const int64_t planes = xs[0] * xs[1], h = xs[2], w = xs[3];
  const int64_t sh = o.stride[0] ? o.stride[0] : o.kernel[0];
  const int64_t sw = o.stride[1] ? o.stride[1] : o.kernel[1];
  PoolRef r{Vec(size_t(planes * ho * wo)), Vec(x.size()),
            std::vector<int64_t>(size_t(planes * ho * wo))};
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t i = 0; i < ho; ++i)
      for (int64_t j = 0; j < wo; ++j) {
        const size_t yi = size_t((p * ho + i) * wo + j);
        double best = kNaN, sum = 0.0;
        int64_t at = -1, inside = 0, padded = 0;
        std::vector<int64_t> cells;
        for (int64_t ki = 0; ki < o.kernel[0]; ++ki)
          for (int64_t kj = 0; kj < o.kernel[1]; ++kj) {
            const int64_t ih = i * sh - o.padding[0] + ki * o.dilation[0];
            const int64_t iw = j * sw - o.padding[1] + kj * o.dilation[1];
            if (ih < h + o.padding[0] && iw < w + o.padding[1]) ++padded;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            const int64_t flat = ih * w + iw;
            const double v = x[size_t(p * h * w + flat)];
            ++inside;
            sum += v;
            cells.push_back(flat);
            const bool better = at < 0 || v > best || (std::isnan(v) && !std::isnan(best));
            if (better) {
              best = v;
              at = flat;
            }
          }
        if (kind == PoolKind::Max) {
          r.y[yi] = best;
          r.idx[yi] = at;
          if (at >= 0) r.dx[size_t(p * h * w + at)] += gy[yi];
        } else {
          const double div = double(o.count_include_pad ? padded : inside);
          r.y[yi] = sum / div;
          for (int64_t c : cells) r.dx[size_t(p * h * w + c)] += gy[yi] / div;
        }
      }
  return r;
}

Pool2dOptions pool_options(std::array<int64_t, 2> k, std::array<int64_t, 2> s,
                           std::array<int64_t, 2> p, std::array<int64_t, 2> d = {1, 1},
                           bool ceil = false, bool include_pad = true) {
  Pool2dOptions o;
  o.kernel = k;
  o.stride = s;
  o.padding = p;
  o.dilation = d;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

void check_pool(PoolKind kind, const Shape& xs, const Pool2dOptions& o, Dtype dtype,
                uint32_t seed) {
  SCOPED_TRACE("kernel " + std::to_string(o.kernel[0]) + "x" + std::to_string(o.kernel[1]) +
               " stride " + std::to_string(o.stride[0]) + " padding " +
               std::to_string(o.padding[0]) + "x" + std::to_string(o.padding[1]) + " dilation " +
               std::to_string(o.dilation[0]) + (o.ceil_mode ? " ceil" : "") +
               (o.count_include_pad ? "" : " exclude-pad") + ", input " + shape_str(xs) + ", " +
               dtype_name(dtype));
  std::mt19937 rng(seed);
  const Tensor x = random(rng, xs, dtype);
  Tensor idx;
  const Tensor y = kind == PoolKind::Max ? max_pool2d(x, o, &idx) : avg_pool2d(x, o);
  const int64_t sh = o.stride[0] ? o.stride[0] : o.kernel[0];
  const int64_t sw = o.stride[1] ? o.stride[1] : o.kernel[1];
  const int64_t ho =
      pool_out_size(xs[2], o.kernel[0], sh, o.padding[0], o.dilation[0], o.ceil_mode);
  const int64_t wo =
      pool_out_size(xs[3], o.kernel[1], sw, o.padding[1], o.dilation[1], o.ceil_mode);
  ASSERT_EQ(y.shape(), (Shape{xs[0], xs[1], ho, wo}));
  const Tensor gy = random(rng, y.shape(), dtype);
  const PoolRef ref =
      pool_reference(kind, x.to_vector<double>(), xs, o, gy.to_vector<double>(), ho, wo);
  EXPECT_LE(max_rel(y, f64(ref.y, y.shape()), 1.0), tolerance(dtype));
  Tensor dx;
  if (kind == PoolKind::Max) {
    EXPECT_EQ(idx.to_vector<int64_t>(), ref.idx);
    dx = max_pool2d_backward(gy, idx, xs);
  } else {
    dx = avg_pool2d_backward(gy, xs, o);
  }
  EXPECT_LE(max_rel(dx, f64(ref.dx, xs), 1.0), tolerance(dtype)) << "backward";
}

std::vector<Pool2dOptions> pool_configs(PoolKind kind) {
  std::vector<Pool2dOptions> v = {
      pool_options({2, 2}, {0, 0}, {0, 0}),
      pool_options({3, 3}, {2, 2}, {1, 1}),
      pool_options({3, 2}, {1, 2}, {1, 1}),
      pool_options({2, 2}, {2, 2}, {0, 0}, {1, 1}, true),
      pool_options({3, 3}, {2, 2}, {1, 1}, {1, 1}, true),
      pool_options({2, 2}, {2, 2}, {1, 1}, {1, 1}, true),
      pool_options({4, 3}, {3, 2}, {2, 1}, {1, 1}, true),
      pool_options({1, 1}, {2, 2}, {0, 0}),
  };
  if (kind == PoolKind::Max) {
    v.push_back(pool_options({2, 2}, {1, 1}, {0, 1}, {2, 2}));
    v.push_back(pool_options({3, 2}, {2, 1}, {1, 0}, {2, 3}, true));
  } else {
    v.push_back(pool_options({3, 3}, {2, 2}, {1, 1}, {1, 1}, false, false));
    v.push_back(pool_options({4, 3}, {3, 2}, {2, 1}, {1, 1}, true, false));
  }
  return v;
}

TEST(Pool2d, MatchesNaiveLoops) {
  uint32_t seed = 300;
  for (PoolKind kind : {PoolKind::Max, PoolKind::Avg})
    for (const Pool2dOptions& o : pool_configs(kind))
      for (const Shape& xs : {Shape{2, 3, 7, 9}, Shape{1, 2, 8, 5}})
        for (Dtype d : {Dtype::Float64, Dtype::Float32, Dtype::BFloat16})
          check_pool(kind, xs, o, d, seed++);
}

TEST(Pool2d, OutputSizeFollowsPyTorch) {
  EXPECT_EQ(pool_out_size(5, 2, 2, 0, 1, false), 2);
  EXPECT_EQ(pool_out_size(5, 2, 2, 0, 1, true), 3);
  // The ceil_mode window that would start in the right padding is dropped.
  EXPECT_EQ(pool_out_size(5, 2, 2, 1, 1, true), 3);
  EXPECT_EQ(pool_out_size(6, 3, 2, 1, 1, true), 4);
  EXPECT_EQ(pool_out_size(7, 2, 1, 0, 3, false), 4);
}

TEST(Pool2d, MaxTiesNaNAndInfinities) {
  // Ties: the first maximum in the window (row-major) wins.
  Tensor idx;
  const Tensor x = f64({1, 3, 3, 2, 5, 5, 5, 5}, {1, 2, 2, 2});
  Tensor y = max_pool2d(x, pool_options({2, 2}, {0, 0}, {0, 0}), &idx);
  EXPECT_EQ(y.to_vector<double>(), (Vec{3, 5}));
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  // NaN wins over everything, the first NaN when there are several.
  y = max_pool2d(f64({1, kNaN, kNaN, kInf}, {1, 1, 2, 2}), pool_options({2, 2}, {0, 0}, {0, 0}),
                 &idx);
  EXPECT_TRUE(std::isnan(y.item()));
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{1}));
  // All -inf (padding counts as absent): the value is -inf at the first cell inside the input.
  y = max_pool2d(f64({-kInf, -kInf, -kInf, -kInf}, {1, 1, 2, 2}),
                 pool_options({2, 2}, {2, 2}, {1, 1}), &idx);
  EXPECT_EQ(y.to_vector<double>(), (Vec{-kInf, -kInf, -kInf, -kInf}));
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  // Dilation can make a window cover only padding: -inf, index -1, and no gradient.
  y = max_pool2d(f64({4, 7}, {1, 1, 2, 1}), pool_options({2, 2}, {1, 1}, {0, 1}, {1, 2}), &idx);
  EXPECT_EQ(y.to_vector<double>(), (Vec{-kInf}));
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{-1}));
  EXPECT_EQ(
      max_pool2d_backward(ones(y.shape(), {Dtype::Float64}), idx, {1, 1, 2, 1}).to_vector<double>(),
      (Vec{0, 0}));
  // Overlapping windows that share a maximum send it both gradients.
  const Tensor ramp = f64({0, 1, 2, 9, 4, 5}, {1, 1, 1, 6});
  y = max_pool2d(ramp, pool_options({1, 3}, {1, 1}, {0, 0}), &idx);
  const Tensor dx = max_pool2d_backward(ones(y.shape(), {Dtype::Float64}), idx, ramp.shape());
  EXPECT_EQ(dx.to_vector<double>(), (Vec{0, 0, 1, 3, 0, 0}));
}

// The CPU row's 2x2 stride-2 path against the naive loops on values that tie and hold NaN and
// infinities in every tap position, in even and odd (floor mode drops the last row and column)
// planes: values, indices and gradients.
TEST(Pool2d, Max2x2TiesAndNaNAgainstNaiveLoops) {
  const Vec pool_values = {-1.0, 0.0, 2.0, 2.0, kNaN, -kInf, kInf, 0.5};
  std::mt19937 rng(17);
  std::uniform_int_distribution<size_t> pick(0, pool_values.size() - 1);
  for (const Shape& xs : {Shape{2, 3, 6, 8}, Shape{1, 2, 7, 9}}) {
    for (Dtype d : {Dtype::Float64, Dtype::Float32, Dtype::BFloat16}) {
      SCOPED_TRACE(shape_str(xs) + ", " + dtype_name(d));
      Vec v(size_t(shape_numel(xs)));
      for (double& e : v) e = pool_values[pick(rng)];
      const Tensor x = f64(v, xs).to(d);
      const Pool2dOptions o = pool_options({2, 2}, {2, 2}, {0, 0});
      Tensor idx;
      const Tensor y = max_pool2d(x, o, &idx);
      const int64_t ho = xs[2] / 2, wo = xs[3] / 2;
      ASSERT_EQ(y.shape(), (Shape{xs[0], xs[1], ho, wo}));
      const Tensor gy = random(rng, y.shape(), d);
      const PoolRef ref = pool_reference(PoolKind::Max, x.to_vector<double>(), xs, o,
                                         gy.to_vector<double>(), ho, wo);
      EXPECT_EQ(idx.to_vector<int64_t>(), ref.idx);
      const Vec got = y.to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i) {
        if (std::isnan(ref.y[i]))
          EXPECT_TRUE(std::isnan(got[i])) << "output " << i;
        else
          EXPECT_EQ(got[i], ref.y[i]) << "output " << i;
      }
      EXPECT_LE(max_rel(max_pool2d_backward(gy, idx, xs), f64(ref.dx, xs), 1.0), tolerance(d));
    }
  }
}

TEST(Pool2d, AvgPaddingCounts) {
  // 4x4 ramp, 3x3 windows, stride 2, padding 1: the top-left window holds 0, 1, 4, 5.
  Vec v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  const Tensor x = f64(v, {1, 1, 4, 4});
  const Tensor with_pad = avg_pool2d(x, pool_options({3, 3}, {2, 2}, {1, 1}));
  const Tensor without = avg_pool2d(x, pool_options({3, 3}, {2, 2}, {1, 1}, {1, 1}, false, false));
  EXPECT_DOUBLE_EQ(with_pad.to_vector<double>()[0], 10.0 / 9.0);
  EXPECT_DOUBLE_EQ(without.to_vector<double>()[0], 10.0 / 4.0);
}

TEST(Pool2d, BadInputs) {
  const Tensor x = zeros({1, 2, 4, 4});
  auto value = [&](Pool2dOptions o, PoolKind kind) {
    return message_of<ValueError>([&] {
      if (kind == PoolKind::Max)
        max_pool2d(x, o);
      else
        avg_pool2d(x, o);
    });
  };
  EXPECT_THAT(value(pool_options({0, 2}, {0, 0}, {0, 0}), PoolKind::Max),
              HasSubstr("max_pool2d: kernel"));
  EXPECT_THAT(value(pool_options({2, 2}, {-1, 0}, {0, 0}), PoolKind::Avg),
              HasSubstr("avg_pool2d: stride"));
  EXPECT_THAT(value(pool_options({2, 2}, {0, 0}, {2, 0}), PoolKind::Max),
              HasSubstr("max_pool2d: padding must be >= 0 and at most half the kernel size"));
  EXPECT_THAT(value(pool_options({2, 2}, {0, 0}, {0, 0}, {0, 1}), PoolKind::Max),
              HasSubstr("dilation"));
  EXPECT_THAT(value(pool_options({2, 2}, {0, 0}, {0, 0}, {2, 1}), PoolKind::Avg),
              HasSubstr("avg_pool2d: dilation applies to max pooling only"));
  EXPECT_THAT(message_of<ShapeError>([&] {
                max_pool2d(zeros({2, 4, 4}), {});
              }),
              HasSubstr("max_pool2d: input must be 4-D"));
  EXPECT_THAT(message_of<ShapeError>([&] {
                avg_pool2d(zeros({1, 1, 1, 4}), {});
              }),
              HasSubstr("avg_pool2d: kernel (2, 2)"));
  EXPECT_THAT(message_of<DtypeError>([&] { max_pool2d(x.to(Dtype::Int64), {}); }),
              HasSubstr("max_pool2d"));
  Tensor idx;
  const Tensor y = max_pool2d(x, {}, &idx);
  EXPECT_THAT(message_of<DtypeError>([&] { max_pool2d_backward(y, y, x.shape()); }),
              HasSubstr("max_pool2d_backward: indices are float32"));
  EXPECT_THAT(message_of<ShapeError>([&] {
                max_pool2d_backward(y, idx, {1, 3, 4, 4});
              }),
              HasSubstr("max_pool2d_backward: grad_y has shape"));
  EXPECT_THAT(message_of<IndexError>([&] {
                max_pool2d_backward(y, full(idx.shape(), 16, {Dtype::Int64}), x.shape());
              }),
              HasSubstr("max_pool2d_backward: index 16"));
  EXPECT_THAT(
      message_of<ShapeError>([&] {
        avg_pool2d_backward(y, {1, 2, 6, 6}, {});
      }),
      HasSubstr("avg_pool2d_backward: grad_y has shape [1, 2, 2, 2], expected [1, 2, 3, 3]"));
}

// ---- adaptive average pooling -----------------------------------------------------------------

TEST(AdaptiveAvgPool2d, MatchesNaiveLoopsForSizesThatDoNotDivide) {
  uint32_t seed = 500;
  for (const auto& [xs, out] :
       std::vector<std::pair<Shape, std::array<int64_t, 2>>>{{{2, 3, 7, 5}, {3, 2}},
                                                             {{1, 2, 3, 4}, {5, 7}},
                                                             {{2, 1, 8, 8}, {4, 4}},
                                                             {{1, 2, 6, 9}, {1, 1}},
                                                             {{1, 1, 5, 5}, {5, 5}}})
    for (Dtype d : {Dtype::Float64, Dtype::Float32, Dtype::BFloat16}) {
      SCOPED_TRACE(shape_str(xs) + " to " + std::to_string(out[0]) + "x" + std::to_string(out[1]) +
                   ", " + dtype_name(d));
      std::mt19937 rng(seed++);
      const Tensor x = random(rng, xs, d);
      const Tensor y = adaptive_avg_pool2d(x, out);
      ASSERT_EQ(y.shape(), (Shape{xs[0], xs[1], out[0], out[1]}));
      const Tensor gy = random(rng, y.shape(), d);
      const Vec xv = x.to_vector<double>(), gv = gy.to_vector<double>();
      Vec want(size_t(y.numel())), dx(xv.size());
      const int64_t h = xs[2], w = xs[3];
      for (int64_t p = 0; p < xs[0] * xs[1]; ++p)
        for (int64_t i = 0; i < out[0]; ++i)
          for (int64_t j = 0; j < out[1]; ++j) {
            const auto r0 = int64_t(std::floor(double(i * h) / double(out[0])));
            const auto r1 = int64_t(std::ceil(double((i + 1) * h) / double(out[0])));
            const auto c0 = int64_t(std::floor(double(j * w) / double(out[1])));
            const auto c1 = int64_t(std::ceil(double((j + 1) * w) / double(out[1])));
            const size_t yi = size_t((p * out[0] + i) * out[1] + j);
            const double cells = double((r1 - r0) * (c1 - c0));
            for (int64_t a = r0; a < r1; ++a)
              for (int64_t b = c0; b < c1; ++b) {
                want[yi] += xv[size_t(p * h * w + a * w + b)] / cells;
                dx[size_t(p * h * w + a * w + b)] += gv[yi] / cells;
              }
          }
      EXPECT_LE(max_rel(y, f64(want, y.shape()), 1.0), tolerance(d));
      EXPECT_LE(max_rel(adaptive_avg_pool2d_backward(gy, xs), f64(dx, xs), 1.0), tolerance(d));
    }
}

TEST(AdaptiveAvgPool2d, BadInputs) {
  EXPECT_THAT(message_of<ValueError>([] {
                adaptive_avg_pool2d(zeros({1, 1, 4, 4}), {0, 2});
              }),
              HasSubstr("adaptive_avg_pool2d: output size must be >= 1"));
  EXPECT_THAT(message_of<ShapeError>([] {
                adaptive_avg_pool2d(zeros({1, 4, 4}), {2, 2});
              }),
              HasSubstr("adaptive_avg_pool2d: input must be 4-D"));
  EXPECT_THAT(message_of<ShapeError>([] {
                adaptive_avg_pool2d(zeros({1, 1, 0, 4}), {2, 2});
              }),
              HasSubstr("adaptive_avg_pool2d: input [1, 1, 0, 4] has an empty plane"));
  EXPECT_THAT(message_of<ShapeError>([] {
                adaptive_avg_pool2d_backward(zeros({1, 2, 2, 2}), {1, 3, 4, 4});
              }),
              HasSubstr("adaptive_avg_pool2d_backward: grad_y has shape"));
}

// ---- batch norm -------------------------------------------------------------------------------

// Per-channel mean and biased variance of x viewed as [N, C, inner].
void channel_stats(const Vec& x, const Shape& s, Vec& mean, Vec& var) {
  const int64_t n = s[0], c = s[1], inner = shape_numel(s) / (n * c);
  mean.assign(size_t(c), 0.0);
  var.assign(size_t(c), 0.0);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) mean[size_t(ch)] += x[size_t((i * c + ch) * inner + k)];
    mean[size_t(ch)] /= double(n * inner);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) {
        const double d = x[size_t((i * c + ch) * inner + k)] - mean[size_t(ch)];
        var[size_t(ch)] += d * d;
      }
    var[size_t(ch)] /= double(n * inner);
  }
}

// y = act(gamma (x - mean) / sqrt(var + eps) + beta) by the formula.
Vec normalise(const Vec& x, const Shape& s, const Vec& mean, const Vec& var, const Vec& gamma,
              const Vec& beta, double eps, bool relu) {
  const int64_t c = s[1], inner = shape_numel(s) / (s[0] * c);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t ch = size_t(int64_t(i) / inner % c);
    const double v = gamma[ch] * (x[i] - mean[ch]) / std::sqrt(var[ch] + eps) + beta[ch];
    y[i] = relu ? std::max(v, 0.0) : v;
  }
  return y;
}

TEST(BatchNorm, TrainingMatchesFormulaAndPyTorchRunningStats) {
  uint32_t seed = 700;
  for (const Shape& s : {Shape{4, 3, 5, 2}, Shape{6, 4}, Shape{3, 2, 7}})
    for (Dtype d : {Dtype::Float64, Dtype::Float32, Dtype::BFloat16})
      for (bool relu : {false, true}) {
        SCOPED_TRACE(shape_str(s) + ", " + dtype_name(d) + (relu ? ", relu" : ""));
        std::mt19937 rng(seed++);
        const int64_t c = s[1];
        const Tensor x = add(random(rng, s, d, -2.0, 2.0), 3.0).to(d);  // a mean far from 0
        const Tensor gamma = random(rng, {c}, d, 0.5, 1.5), beta = random(rng, {c}, d);
        Tensor rm = random(rng, {c}, d), rv = random(rng, {c}, d, 0.5, 2.0);
        const Vec rm0 = rm.to_vector<double>(), rv0 = rv.to_vector<double>();
        Tensor save_mean, save_invstd;
        const double momentum = 0.3, eps = 1e-3;
        const Tensor y =
            batch_norm(x, gamma, beta, rm, rv, true, momentum, eps,
                       relu ? Activation::Relu : Activation::None, &save_mean, &save_invstd);
        Vec mean, var;
        channel_stats(x.to_vector<double>(), s, mean, var);
        const Vec want = normalise(x.to_vector<double>(), s, mean, var, gamma.to_vector<double>(),
                                   beta.to_vector<double>(), eps, relu);
        EXPECT_LE(max_rel(y, f64(want, s), 1.0), tolerance(d) * 2);
        const double count = double(shape_numel(s) / c);
        Vec want_rm(static_cast<size_t>(c)), want_rv(want_rm), want_invstd(want_rm);
        for (size_t i = 0; i < size_t(c); ++i) {
          want_rm[i] = (1 - momentum) * rm0[i] + momentum * mean[i];
          want_rv[i] = (1 - momentum) * rv0[i] + momentum * var[i] * count / (count - 1);
          want_invstd[i] = 1.0 / std::sqrt(var[i] + eps);
        }
        EXPECT_LE(max_rel(rm, f64(want_rm, {c}), 1.0), tolerance(d)) << "running_mean";
        EXPECT_LE(max_rel(rv, f64(want_rv, {c}), 1.0), tolerance(d)) << "running_var";
        ASSERT_TRUE(save_mean.defined() && save_invstd.defined());
        EXPECT_EQ(save_mean.dtype(), d == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32);
        EXPECT_LE(max_rel(save_mean, f64(mean, {c}), 1.0), 1e-5);
        EXPECT_LE(max_rel(save_invstd, f64(want_invstd, {c}), 1.0), 1e-5);
      }
}

TEST(BatchNorm, EvaluationUsesRunningStats) {
  std::mt19937 rng(800);
  for (Dtype d : {Dtype::Float64, Dtype::Float32})
    for (bool affine : {false, true}) {
      const Shape s = {3, 4, 2, 3};
      const Tensor x = random(rng, s, d);
      Tensor rm = random(rng, {4}, d), rv = random(rng, {4}, d, 0.5, 2.0);
      const Tensor gamma = affine ? random(rng, {4}, d) : Tensor();
      const Tensor beta = affine ? random(rng, {4}, d) : Tensor();
      const Vec rm0 = rm.to_vector<double>(), rv0 = rv.to_vector<double>();
      Tensor save_mean;
      const Tensor y =
          batch_norm(x, gamma, beta, rm, rv, false, 0.1, 1e-5, Activation::Relu, &save_mean);
      const Vec g = affine ? gamma.to_vector<double>() : Vec(4, 1.0);
      const Vec b = affine ? beta.to_vector<double>() : Vec(4, 0.0);
      EXPECT_LE(
          max_rel(y, f64(normalise(x.to_vector<double>(), s, rm0, rv0, g, b, 1e-5, true), s), 1.0),
          tolerance(d));
      EXPECT_EQ(rm.to_vector<double>(), rm0);  // untouched in evaluation
      EXPECT_EQ(rv.to_vector<double>(), rv0);
      EXPECT_FALSE(save_mean.defined());
    }
}

TEST(BatchNorm, UpdatesStridedRunningStatsInPlace) {
  std::mt19937 rng(801);
  const Tensor x = random(rng, {5, 2, 3}, Dtype::Float32);
  Tensor buffer = zeros({2, 2});
  Tensor rm = buffer.select(1, 0), rv = buffer.select(1, 1);  // stride 2
  fill_(rv, 1.0);
  Tensor no_gamma;
  batch_norm(x, no_gamma, no_gamma, rm, rv, true, 1.0);
  Vec mean, var;
  channel_stats(x.to_vector<double>(), x.shape(), mean, var);
  EXPECT_LE(max_rel(buffer.select(1, 0), f64(mean, {2}).to(Dtype::Float32)), 1e-5);
  EXPECT_LE(max_rel(buffer.select(1, 1), mul(f64(var, {2}), 15.0 / 14.0).to(Dtype::Float32)), 1e-5);
}

TEST(BatchNorm, Float32BackwardMatchesFloat64) {
  std::mt19937 rng(802);
  for (bool training : {true, false})
    for (Activation act : {Activation::None, Activation::Relu}) {
      const Shape s = {4, 3, 3, 2};
      const Tensor x = random(rng, s, Dtype::Float64), gy = random(rng, s, Dtype::Float64);
      const Tensor gamma = random(rng, {3}, Dtype::Float64, 0.5, 1.5);
      Tensor rm = random(rng, {3}, Dtype::Float64), rv = random(rng, {3}, Dtype::Float64, 0.5, 2.0);
      Tensor mean, invstd;
      const Tensor y =
          batch_norm(x, gamma, Tensor(), rm, rv, training, 0.1, 1e-5, act, &mean, &invstd);
      if (!training) {
        mean = rm;
        invstd = rsqrt(add(rv, 1e-5));
      }
      const BatchNormGrads want =
          batch_norm_backward(gy, x, gamma, mean, invstd, y, training, act, true, true, true);
      auto f = [](const Tensor& t) { return t.to(Dtype::Float32); };
      const BatchNormGrads got = batch_norm_backward(f(gy), f(x), f(gamma), f(mean), f(invstd),
                                                     f(y), training, act, true, true, true);
      EXPECT_LE(max_rel(got.dx, want.dx, 1.0), 1e-5);
      EXPECT_LE(max_rel(got.dgamma, want.dgamma, 1.0), 1e-5);
      EXPECT_LE(max_rel(got.dbeta, want.dbeta, 1.0), 1e-5);
      if (!training) {  // the statistics are constants: dx = gamma invstd g where y passes
        const Tensor pass =
            act == Activation::Relu ? gt(y, zeros_like(y)).to(Dtype::Float64) : ones_like(y);
        const Tensor dx = mul(mul(gy, pass), mul(gamma, invstd).view({1, 3, 1, 1}));
        EXPECT_LE(max_rel(want.dx, dx), 1e-12);
      }
    }
}

TEST(BatchNorm, VariableFormsUpdateOrSnapshotTheRunningStats) {
  std::mt19937 rng(803);
  const Tensor xd = random(rng, {4, 2, 3}, Dtype::Float64);
  Tensor rm = zeros({2}, {Dtype::Float64}), rv = ones({2}, {Dtype::Float64});
  Variable x(xd, true);
  // Training moves the running statistics (momentum 1: to the batch's, variance unbiased).
  batch_norm(x, Variable(), Variable(), rm, rv, true, 1.0);
  Vec mean, var;
  channel_stats(xd.to_vector<double>(), xd.shape(), mean, var);
  EXPECT_LE(max_rel(rm, f64(mean, {2})), 1e-12);
  EXPECT_LE(max_rel(rv, mul(f64(var, {2}), 12.0 / 11.0)), 1e-12);
  // Evaluation: dx = invstd of the statistics the forward read, even when they change later.
  const Tensor invstd = rsqrt(add(rv, 1e-5));
  Variable y = batch_norm(x, Variable(), Variable(), rm, rv, false);
  fill_(rv, 100.0);
  sum(y).backward();
  EXPECT_LE(max_rel(x.grad(), invstd.view({1, 2, 1}).expand(xd.shape())), 1e-12);
}

TEST(BatchNorm, BadInputs) {
  const Tensor x = zeros({4, 3, 2, 2}), c3 = ones({3});
  Tensor rm = zeros({3}), rv = ones({3}), none;
  // A call of batch_norm with these arguments (tensor handles copied: they share storage).
  auto bn = [](Tensor in, Tensor g, bool training, double momentum, double eps, Activation act,
               Tensor m, Tensor v) {
    return [=]() mutable { batch_norm(in, g, Tensor(), m, v, training, momentum, eps, act); };
  };
  EXPECT_THAT(message_of<ShapeError>(bn(zeros({4}), c3, true, 0.1, 1e-5, Activation::None, rm, rv)),
              HasSubstr("batch_norm: input must be [N, C] or [N, C, *]"));
  EXPECT_THAT(message_of<ShapeError>(bn(x, ones({4}), true, 0.1, 1e-5, Activation::None, rm, rv)),
              HasSubstr("batch_norm: gamma has shape [4], expected [3]"));
  EXPECT_THAT(
      message_of<ShapeError>(bn(zeros({1, 3}), c3, true, 0.1, 1e-5, Activation::None, rm, rv)),
      HasSubstr("batch_norm: training needs more than one value per channel"));
  EXPECT_THAT(message_of<ValueError>(bn(x, c3, true, 0.1, 0.0, Activation::None, rm, rv)),
              HasSubstr("batch_norm: eps"));
  EXPECT_THAT(message_of<ValueError>(bn(x, c3, true, 1.5, 1e-5, Activation::None, rm, rv)),
              HasSubstr("batch_norm: momentum"));
  EXPECT_THAT(message_of<ValueError>(bn(x, c3, true, 0.1, 1e-5, Activation::Gelu, rm, rv)),
              HasSubstr("batch_norm: activation must be none or relu, got gelu"));
  EXPECT_THAT(message_of<ValueError>(bn(x, c3, false, 0.1, 1e-5, Activation::None, none, none)),
              HasSubstr("batch_norm: evaluation"));
  EXPECT_THAT(message_of<DtypeError>(
                  bn(x, ones({3}, {Dtype::Float64}), true, 0.1, 1e-5, Activation::None, rm, rv)),
              HasSubstr("batch_norm: gamma is float64"));
  Tensor short_rm = zeros({2});
  EXPECT_THAT(message_of<ShapeError>(bn(x, c3, true, 0.1, 1e-5, Activation::None, short_rm, rv)),
              HasSubstr("batch_norm: running_mean has shape [2]"));
  EXPECT_THAT(message_of<DtypeError>([&] {
                batch_norm_backward(x, x, c3, zeros({3}, {Dtype::Float64}), ones({3}), Tensor(),
                                    true, Activation::None, true, true, true);
              }),
              HasSubstr("batch_norm_backward: save_mean is float64, expected float32"));
  EXPECT_THAT(message_of<ValueError>([&] {
                batch_norm_backward(x, x, c3, zeros({3}), ones({3}), Tensor(), true,
                                    Activation::Relu, true, true, true);
              }),
              HasSubstr("batch_norm_backward: the fused relu needs the forward's output"));
}

}  // namespace
}  // namespace nn
