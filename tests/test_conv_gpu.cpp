// Convolution, pooling and batch norm on CUDA (kernels/cuda/conv*.{cu,cpp}, pool.cu,
// batchnorm.cu), CTest label gpu. Every case runs the public ops on the CPU (the oracle) and on
// the GPU with the conv backend forced to ours and to cuDNN (when the build has it), for conv2d's
// forward (with bias), backward data, backward weight and bias: float32 with and without TF32,
// float64, bfloat16, float16; stride 1/2, padding 0/1/2, dilation 1/2, groups 1/2/depthwise, 1x1,
// odd and per-axis options, batch 1, channel counts that are not multiples of 8, LeNet's and
// ResNet-18's layers. Ours is also compared with cuDNN directly. Auto: the first call of a shape
// times both once, the second neither times nor waits for the GPU. Pooling (max with indices,
// avg with and without padding in the divisor, ceil mode, dilation, adaptive) and batch norm
// (training with running statistics, evaluation, fused ReLU, backward) against the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/device.h"
#include "kernels/conv_ops.h"
#include "kernels/ops.h"
#include "tests/op_harness.h"
#include "tests/test_util.h"

#if defined(NN_WITH_CUDA)
#include "kernels/cuda/conv.cuh"
#endif

namespace nn {
namespace {

using ::nn::test::max_rel;

const Device kGpu = Device::cuda(0);

class SwitchGuard {  // restores the process-wide switches a test changes
 public:
  SwitchGuard() : backend_(conv_backend()), tf32_(allow_tf32()) {}
  ~SwitchGuard() {
    set_conv_backend(backend_);
    set_allow_tf32(tf32_);
  }

 private:
  ConvBackend backend_;
  bool tf32_;
};

struct DtypeCase {
  Dtype dtype;
  bool tf32;
  std::string name() const { return std::string(dtype_name(dtype)) + (tf32 ? "/tf32" : ""); }
};
const std::vector<DtypeCase> kDtypeCases = {{Dtype::Float32, false},
                                            {Dtype::Float32, true},
                                            {Dtype::Float64, false},
                                            {Dtype::BFloat16, false},
                                            {Dtype::Float16, false}};

bool have_cudnn() {
#if defined(NN_WITH_CUDA)
  return cuda::cudnn_conv_available();
#else
  return false;
#endif
}

// Random values of `dtype` made on the CPU, so both devices see the same rounded inputs.
Tensor input(const Shape& s, Dtype dtype) { return randn(s).to(dtype); }

struct ConvCase {
  std::string name;
  Shape x;  // N, C, H, W
  int64_t o, kh, kw;
  Conv2dOptions opt;
};

Conv2dOptions opts(std::array<int64_t, 2> s, std::array<int64_t, 2> p, std::array<int64_t, 2> d,
                   int64_t g) {
  Conv2dOptions o;
  o.stride = s;
  o.padding = p;
  o.dilation = d;
  o.groups = g;
  return o;
}

const std::vector<ConvCase> kConvCases = {
    {"3x3 s1 p1", {2, 8, 10, 10}, 16, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 1)},
    {"3x3 s2 p1", {2, 6, 11, 9}, 10, 3, 3, opts({2, 2}, {1, 1}, {1, 1}, 1)},
    {"3x3 p2 d2", {1, 5, 12, 12}, 7, 3, 3, opts({1, 1}, {2, 2}, {2, 2}, 1)},
    {"3x3 p0", {2, 4, 9, 8}, 6, 3, 3, opts({1, 1}, {0, 0}, {1, 1}, 1)},
    {"groups 2", {2, 8, 9, 9}, 12, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 2)},
    {"depthwise", {2, 16, 12, 12}, 16, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 16)},
    {"depthwise x2 s2", {1, 12, 13, 13}, 24, 3, 3, opts({2, 2}, {1, 1}, {1, 1}, 12)},
    {"1x1", {4, 24, 7, 7}, 40, 1, 1, opts({1, 1}, {0, 0}, {1, 1}, 1)},
    {"1x1 s2", {2, 20, 8, 8}, 36, 1, 1, opts({2, 2}, {0, 0}, {1, 1}, 1)},
    {"odd per-axis", {3, 3, 17, 13}, 5, 5, 3, opts({2, 1}, {2, 0}, {1, 2}, 1)},
    {"stride 3 k2", {2, 5, 14, 11}, 9, 2, 2, opts({3, 3}, {1, 0}, {1, 1}, 1)},
    {"stride 5 (no phase table)", {1, 4, 21, 21}, 6, 3, 3, opts({5, 5}, {1, 1}, {1, 1}, 1)},
    {"batch 1, 7 -> 9 channels", {1, 7, 15, 15}, 9, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 1)},
    {"LeNet conv1", {4, 1, 28, 28}, 6, 5, 5, opts({1, 1}, {2, 2}, {1, 1}, 1)},
    {"LeNet conv2", {4, 6, 14, 14}, 16, 5, 5, opts({1, 1}, {0, 0}, {1, 1}, 1)},
    {"ResNet-18 stem", {1, 3, 224, 224}, 64, 7, 7, opts({2, 2}, {3, 3}, {1, 1}, 1)},
    {"ResNet-18 layer1", {2, 64, 56, 56}, 64, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 1)},
    {"ResNet-18 layer2 down", {1, 64, 56, 56}, 128, 3, 3, opts({2, 2}, {1, 1}, {1, 1}, 1)},
    {"ResNet-18 shortcut", {1, 64, 56, 56}, 128, 1, 1, opts({2, 2}, {0, 0}, {1, 1}, 1)},
    {"ResNet-18 layer3", {1, 256, 14, 14}, 256, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 1)},
    {"ResNet-18 layer4", {2, 512, 7, 7}, 512, 3, 3, opts({1, 1}, {1, 1}, {1, 1}, 1)},
};

// A dot product of K unit normals is of size sqrt(K): errors are measured against that scale.
double floor_for(int64_t k) { return std::max(1.0, std::sqrt(double(k))); }

struct ConvResults {
  Tensor y, dx, dw, db;
};

ConvResults run_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& gy,
                     const Conv2dOptions& opt) {
  ConvResults r;
  r.y = conv2d(x, w, b, opt);
  Conv2dGrads g = conv2d_backward(gy, x, w, opt, true, true, true);
  r.dx = g.dx;
  r.dw = g.dw;
  r.db = g.db;
  return r;
}

void expect_conv_close(const ConvResults& got, const ConvResults& want, const ConvCase& c,
                       Dtype dtype, const std::string& ctx) {
  const Shape ws = {c.o, c.x[1] / c.opt.groups, c.kh, c.kw};
  const int64_t k_fwd = ws[1] * c.kh * c.kw, k_dx = (c.o / c.opt.groups) * c.kh * c.kw;
  const int64_t k_dw = want.y.numel() / c.o;  // N Ho Wo
  const double tol = 4 * test::gpu_tolerance(dtype);
  EXPECT_LE(max_rel(got.y, want.y, floor_for(k_fwd)), tol) << ctx << " y";
  EXPECT_LE(max_rel(got.dx, want.dx, floor_for(k_dx)), tol) << ctx << " dx";
  EXPECT_LE(max_rel(got.dw, want.dw, floor_for(k_dw)), tol) << ctx << " dw";
  EXPECT_LE(max_rel(got.db, want.db, floor_for(k_dw)), tol) << ctx << " db";
}

std::vector<ConvBackend> gpu_backends() {
  std::vector<ConvBackend> b = {ConvBackend::Ours};
  if (have_cudnn()) b.push_back(ConvBackend::Cudnn);
  return b;
}

TEST(ConvGpu, EveryBackendMatchesCpu) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  for (const ConvCase& c : kConvCases) {
    for (const DtypeCase& dc : kDtypeCases) {
      // The largest layers once per dtype family are enough; float64 there is slow on the CPU.
      if (c.x[1] >= 256 && dc.dtype == Dtype::Float64) continue;
      set_allow_tf32(dc.tf32);
      const Shape ws = {c.o, c.x[1] / c.opt.groups, c.kh, c.kw};
      const Tensor x = input(c.x, dc.dtype), w = input(ws, dc.dtype), b = input({c.o}, dc.dtype);
      const Shape ys = {
          c.x[0], c.o,
          conv_out_size(c.x[2], c.kh, c.opt.stride[0], c.opt.padding[0], c.opt.dilation[0]),
          conv_out_size(c.x[3], c.kw, c.opt.stride[1], c.opt.padding[1], c.opt.dilation[1])};
      const Tensor gy = input(ys, dc.dtype);
      const ConvResults cpu = run_conv(x, w, b, gy, c.opt);
      ConvResults prev;
      for (ConvBackend be : gpu_backends()) {
        set_conv_backend(be);
        const std::string ctx = c.name + " " + dc.name() + " " + conv_backend_name(be);
        const ConvResults gpu = run_conv(x.to(kGpu), w.to(kGpu), b.to(kGpu), gy.to(kGpu), c.opt);
        ASSERT_TRUE(gpu.y.device().is_cuda()) << ctx;
        expect_conv_close(gpu, cpu, c, dc.dtype, ctx);
        if (prev.y.defined()) expect_conv_close(gpu, prev, c, dc.dtype, ctx + " vs ours");
        prev = gpu;
      }
    }
  }
}

TEST(ConvGpu, NoBiasAndPartialGradients) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  const ConvCase& c = kConvCases[1];
  const Shape ws = {c.o, c.x[1], c.kh, c.kw};
  const Tensor x = input(c.x, Dtype::Float32), w = input(ws, Dtype::Float32);
  const Tensor y_c = conv2d(x, w, Tensor(), c.opt);
  const Tensor gy = input(y_c.shape(), Dtype::Float32);
  const Conv2dGrads g_c = conv2d_backward(gy, x, w, c.opt, false, true, false);
  for (ConvBackend be : gpu_backends()) {
    set_conv_backend(be);
    const Tensor y_g = conv2d(x.to(kGpu), w.to(kGpu), Tensor(), c.opt);
    EXPECT_LE(max_rel(y_g, y_c, 1.0), 1e-4) << conv_backend_name(be);
    const Conv2dGrads g =
        conv2d_backward(gy.to(kGpu), x.to(kGpu), w.to(kGpu), c.opt, false, true, false);
    EXPECT_FALSE(g.dx.defined());
    EXPECT_FALSE(g.db.defined());
    EXPECT_LE(max_rel(g.dw, g_c.dw, 4.0), 1e-4) << conv_backend_name(be);
  }
}

#if defined(NN_WITH_CUDA)
TEST(ConvGpu, AutoTimesOncePerShapeThenNeitherTimesNorWaits) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_conv_backend(ConvBackend::Auto);
  set_allow_tf32(false);
  cuda::clear_conv_autotune_cache();
  const ConvCase& c = kConvCases[0];
  const Shape ws = {c.o, c.x[1], c.kh, c.kw};
  const Tensor x = input(c.x, Dtype::Float32).to(kGpu), w = input(ws, Dtype::Float32).to(kGpu);
  const Tensor b = input({c.o}, Dtype::Float32).to(kGpu);
  cuda::ConvTuneKey key;
  key.device = 0;
  key.pass = cuda::ConvPass::Forward;
  key.x = c.x;
  key.w = ws;
  key.opt = c.opt;
  key.dtype = Dtype::Float32;
  key.extra = true;
  EXPECT_FALSE(cuda::conv_autotune_choice(key).has_value());

  const int64_t s0 = cuda::host_sync_count();
  const Tensor y1 = conv2d(x, w, b, c.opt);
  const int64_t s1 = cuda::host_sync_count();
  const Tensor y2 = conv2d(x, w, b, c.opt);
  const int64_t s2 = cuda::host_sync_count();
  if (have_cudnn()) {
    EXPECT_GE(s1 - s0, 1) << "the first call of a shape times both implementations";
    ASSERT_TRUE(cuda::conv_autotune_choice(key).has_value());
    EXPECT_EQ(cuda::conv_autotune_cache_size(), 1);
  }
  EXPECT_EQ(s2, s1) << "a cached shape must not wait for the GPU";
  EXPECT_LE(max_rel(y2, y1, 1.0), 1e-5);
  EXPECT_LE(
      max_rel(y1, conv2d(x.to(Device::cpu()), w.to(Device::cpu()), b.to(Device::cpu()), c.opt),
              floor_for(c.x[1] * 9)),
      1e-4);

  // Backward passes are keyed separately, and cached just the same.
  const Tensor gy = input(y1.shape(), Dtype::Float32).to(kGpu);
  (void)conv2d_backward(gy, x, w, c.opt, true, true, true);
  const int64_t s3 = cuda::host_sync_count();
  (void)conv2d_backward(gy, x, w, c.opt, true, true, true);
  EXPECT_EQ(cuda::host_sync_count(), s3);
  if (have_cudnn()) {
    EXPECT_EQ(cuda::conv_autotune_cache_size(), 3);
  }
}

TEST(ConvGpu, CudnnPlansAreCachedPerShape) {
  NN_REQUIRE_GPU();
  if (!have_cudnn()) GTEST_SKIP() << "built without cuDNN";
  SwitchGuard guard;
  set_conv_backend(ConvBackend::Cudnn);
  cuda::clear_cudnn_conv_plans();
  const ConvCase& c = kConvCases[4];
  const Shape ws = {c.o, c.x[1] / c.opt.groups, c.kh, c.kw};
  const Tensor x = input(c.x, Dtype::Float32).to(kGpu), w = input(ws, Dtype::Float32).to(kGpu);
  (void)conv2d(x, w, Tensor(), c.opt);
  EXPECT_EQ(cuda::cudnn_conv_plan_count(), 1);
  const int64_t s = cuda::host_sync_count();
  (void)conv2d(x, w, Tensor(), c.opt);
  EXPECT_EQ(cuda::cudnn_conv_plan_count(), 1);
  EXPECT_EQ(cuda::host_sync_count(), s) << "the cuDNN path must not wait for the GPU";
}
#endif

// ---- pooling ----------------------------------------------------------------------------------

struct PoolCase {
  std::string name;
  PoolKind kind;
  Shape x;
  Pool2dOptions opt;
};

Pool2dOptions pool_opts(std::array<int64_t, 2> k, std::array<int64_t, 2> s,
                        std::array<int64_t, 2> p, std::array<int64_t, 2> d, bool ceil,
                        bool include_pad) {
  Pool2dOptions o;
  o.kernel = k;
  o.stride = s;
  o.padding = p;
  o.dilation = d;
  o.ceil_mode = ceil;
  o.count_include_pad = include_pad;
  return o;
}

const std::vector<PoolCase> kPoolCases = {
    {"max 2x2",
     PoolKind::Max,
     {2, 3, 8, 8},
     pool_opts({2, 2}, {0, 0}, {0, 0}, {1, 1}, false, true)},
    {"max 3x3 s2 p1 (ResNet)",
     PoolKind::Max,
     {2, 4, 15, 14},
     pool_opts({3, 3}, {2, 2}, {1, 1}, {1, 1}, false, true)},
    {"max 3x3 s1 p1 d2",
     PoolKind::Max,
     {1, 2, 11, 9},
     pool_opts({3, 3}, {1, 1}, {1, 1}, {2, 2}, false, true)},
    {"max 3x3 s2 ceil",
     PoolKind::Max,
     {2, 3, 10, 7},
     pool_opts({3, 3}, {2, 2}, {0, 0}, {1, 1}, true, true)},
    {"max window over padding only",
     PoolKind::Max,
     {1, 2, 2, 2},
     pool_opts({2, 2}, {1, 1}, {1, 1}, {3, 3}, false, true)},
    {"avg 2x2",
     PoolKind::Avg,
     {2, 3, 8, 6},
     pool_opts({2, 2}, {0, 0}, {0, 0}, {1, 1}, false, true)},
    {"avg 3x3 s2 p1 incl pad",
     PoolKind::Avg,
     {2, 3, 9, 10},
     pool_opts({3, 3}, {2, 2}, {1, 1}, {1, 1}, false, true)},
    {"avg 3x3 s2 p1 excl pad",
     PoolKind::Avg,
     {2, 3, 9, 10},
     pool_opts({3, 3}, {2, 2}, {1, 1}, {1, 1}, false, false)},
    {"avg 3x2 s2 ceil p1",
     PoolKind::Avg,
     {1, 2, 10, 7},
     pool_opts({3, 2}, {2, 2}, {1, 1}, {1, 1}, true, false)},
};

TEST(PoolGpu, MatchesCpu) {
  NN_REQUIRE_GPU();
  for (const PoolCase& c : kPoolCases) {
    for (Dtype d : {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16}) {
      const std::string ctx = c.name + " " + dtype_name(d);
      const Tensor x = input(c.x, d);
      const double tol = 4 * test::gpu_tolerance(d);
      if (c.kind == PoolKind::Max) {
        Tensor idx_c, idx_g;
        const Tensor y_c = max_pool2d(x, c.opt, &idx_c);
        const Tensor y_g = max_pool2d(x.to(kGpu), c.opt, &idx_g);
        EXPECT_EQ(max_rel(y_g, y_c, 1.0), 0.0) << ctx;  // a maximum is an input value
        EXPECT_EQ(idx_g.to_vector<int64_t>(), idx_c.to_vector<int64_t>()) << ctx;
        const Tensor gy = input(y_c.shape(), d);
        const Tensor dx_c = max_pool2d_backward(gy, idx_c, c.x);
        const Tensor dx_g = max_pool2d_backward(gy.to(kGpu), idx_g, c.x);
        EXPECT_LE(max_rel(dx_g, dx_c, 1.0), tol) << ctx << " dx";
      } else {
        const Tensor y_c = avg_pool2d(x, c.opt);
        const Tensor y_g = avg_pool2d(x.to(kGpu), c.opt);
        EXPECT_LE(max_rel(y_g, y_c, 1.0), tol) << ctx;
        const Tensor gy = input(y_c.shape(), d);
        const Tensor dx_c = avg_pool2d_backward(gy, c.x, c.opt);
        const Tensor dx_g = avg_pool2d_backward(gy.to(kGpu), c.x, c.opt);
        EXPECT_LE(max_rel(dx_g, dx_c, 1.0), tol) << ctx << " dx";
      }
    }
  }
}

TEST(PoolGpu, MaxPropagatesNaNAndKeepsTheFirstTie) {
  NN_REQUIRE_GPU();
  // One 2x2 window per output: [1, NaN, 5, 2] -> NaN at 1; [3, 3, 0, 0] -> 3 at the first 3.
  const Tensor x = from_vector<float>({1, NAN, 3, 3, 5, 2, 0, 0}, {1, 1, 2, 4});
  Tensor idx;
  const Tensor y = max_pool2d(x.to(kGpu), Pool2dOptions{}, &idx);
  const std::vector<float> yv = y.to_vector<float>();
  ASSERT_EQ(yv.size(), 2u);
  EXPECT_TRUE(std::isnan(yv[0]));
  EXPECT_EQ(yv[1], 3.0f);
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

TEST(PoolGpu, AdaptiveAverageMatchesCpu) {
  NN_REQUIRE_GPU();
  struct Case {
    Shape x;
    std::array<int64_t, 2> out;
  };
  for (const Case& c : std::vector<Case>{{{2, 3, 7, 9}, {1, 1}},
                                         {{2, 3, 7, 9}, {3, 5}},
                                         {{1, 4, 7, 7}, {7, 7}},
                                         {{2, 2, 10, 10}, {4, 4}},
                                         {{1, 2, 3, 5}, {6, 7}}}) {
    for (Dtype d : {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16}) {
      const std::string ctx = shape_str(c.x) + " -> " + std::to_string(c.out[0]) + "x" +
                              std::to_string(c.out[1]) + " " + dtype_name(d);
      const double tol = 4 * test::gpu_tolerance(d);
      const Tensor x = input(c.x, d);
      const Tensor y_c = adaptive_avg_pool2d(x, c.out);
      EXPECT_LE(max_rel(adaptive_avg_pool2d(x.to(kGpu), c.out), y_c, 1.0), tol) << ctx;
      const Tensor gy = input(y_c.shape(), d);
      EXPECT_LE(max_rel(adaptive_avg_pool2d_backward(gy.to(kGpu), c.x),
                        adaptive_avg_pool2d_backward(gy, c.x), 1.0),
                tol)
          << ctx << " dx";
    }
  }
}

// ---- batch norm -------------------------------------------------------------------------------

Dtype stat_dtype(Dtype d) { return d == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32; }

TEST(BatchNormGpu, TrainingAndEvaluationMatchCpu) {
  NN_REQUIRE_GPU();
  // The last shape has 65536 values per channel: the statistics are split over many blocks.
  for (const Shape& s :
       std::vector<Shape>{{8, 16, 5, 5}, {32, 10}, {3, 7, 1, 33}, {64, 4, 32, 32}}) {
    for (Dtype d : {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16}) {
      for (Activation act : {Activation::None, Activation::Relu}) {
        for (bool training : {true, false}) {
          const std::string ctx = shape_str(s) + " " + dtype_name(d) + " " + activation_name(act) +
                                  (training ? " train" : " eval");
          const double tol = 4 * test::gpu_tolerance(d);
          const int64_t c = s[1];
          const Tensor x = (input(s, d).to(Dtype::Float64) * 2.0 + 0.5).to(d);
          const Tensor gamma = input({c}, d), beta = input({c}, d);
          Tensor rm_c = input({c}, d), rv_c = (rand({c}) + 0.5).to(d);
          Tensor rm_g = rm_c.to(kGpu), rv_g = rv_c.to(kGpu);
          Tensor mean_c, inv_c, mean_g, inv_g;
          const Tensor y_c =
              batch_norm(x, gamma, beta, rm_c, rv_c, training, 0.1, 1e-5, act, &mean_c, &inv_c);
          const Tensor y_g = batch_norm(x.to(kGpu), gamma.to(kGpu), beta.to(kGpu), rm_g, rv_g,
                                        training, 0.1, 1e-5, act, &mean_g, &inv_g);
          EXPECT_LE(max_rel(y_g, y_c, 1.0), tol) << ctx << " y";
          EXPECT_LE(max_rel(rm_g, rm_c, 1.0), tol) << ctx << " running_mean";
          EXPECT_LE(max_rel(rv_g, rv_c, 1.0), tol) << ctx << " running_var";
          if (training) {
            EXPECT_LE(max_rel(mean_g, mean_c, 1.0), tol) << ctx << " save_mean";
            EXPECT_LE(max_rel(inv_g, inv_c, 1.0), tol) << ctx << " save_invstd";
          } else {
            // Evaluation's constants, as graph/'s batch_norm passes them.
            mean_c = rm_c.to(stat_dtype(d));
            inv_c = rsqrt(rv_c.to(Dtype::Float64) + 1e-5).to(stat_dtype(d));
            mean_g = mean_c.to(kGpu);
            inv_g = inv_c.to(kGpu);
          }
          const Tensor gy = input(s, d);
          const BatchNormGrads g_c = batch_norm_backward(gy, x, gamma, mean_c, inv_c, y_c, training,
                                                         act, true, true, true);
          const BatchNormGrads g_g =
              batch_norm_backward(gy.to(kGpu), x.to(kGpu), gamma.to(kGpu), mean_g, inv_g,
                                  y_c.to(kGpu), training, act, true, true, true);
          const double fl = std::sqrt(double(x.numel() / c));
          EXPECT_LE(max_rel(g_g.dx, g_c.dx, 1.0), tol) << ctx << " dx";
          EXPECT_LE(max_rel(g_g.dgamma, g_c.dgamma, fl), tol) << ctx << " dgamma";
          EXPECT_LE(max_rel(g_g.dbeta, g_c.dbeta, fl), tol) << ctx << " dbeta";
        }
      }
    }
  }
}

}  // namespace
}  // namespace nn
