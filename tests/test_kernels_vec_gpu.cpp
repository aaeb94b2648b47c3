// The vectorized activation, softmax and cross-entropy kernels on CUDA (CTest label gpu), against
// the CPU path on the same inputs, for float32, float64, bfloat16 and float16:
//  - bias_activation (every activation, bias along the last axis and NCHW channels, with and
//    without bias, misaligned input and bias so the scalar paths run, what `saved` holds) and
//    its internal launcher with a float32 input for the half types and input aliasing out/pre;
//  - activation_backward (aligned and misaligned);
//  - softmax / log_softmax forward and backward and cross-entropy forward and backward over row
//    lengths of 1, primes, just below, at and just above every register-tier threshold of every
//    dtype (128 * 2^k), 50304, aligned and misaligned (odd offset: element loads), and softmax
//    along a middle axis.
// Without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

#if defined(NN_WITH_CUDA)
#include "core/cuda_context.h"
#include "kernels/cuda/bias_act.cuh"
#endif

namespace nn {
namespace {

using ::nn::test::max_rel;

const Device kGpu = Device::cuda(0);
const std::vector<Dtype> kDtypes = {Dtype::Float32, Dtype::Float64, Dtype::BFloat16,
                                    Dtype::Float16};
const std::vector<Activation> kActs = {Activation::None,     Activation::Relu, Activation::Gelu,
                                       Activation::GeluTanh, Activation::Silu, Activation::Tanh,
                                       Activation::Sigmoid};

// CUDA vs CPU tolerance: the two paths sum in different orders and the half types round once.
double tol(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return 2e-5;
    case Dtype::Float64:
      return 1e-12;
    case Dtype::BFloat16:
      return 1.6e-2;
    default:
      return 4e-3;
  }
}

// The same values on the GPU, contiguous but one element past an aligned address (so no
// 16-byte vector access is possible) when `misalign`.
Tensor on_gpu(const Tensor& t, bool misalign) {
  if (!misalign) return t.to(kGpu);
  const int64_t n = t.numel();
  Tensor buf = empty({n + 1}, {t.dtype(), kGpu});
  Tensor v = buf.slice(0, 1, n + 1).view(t.shape());
  v.copy_(t.to(kGpu));
  return v;
}

std::string ctx_of(Dtype dt, const std::string& what, bool misalign) {
  return std::string(dtype_name(dt)) + " " + what + (misalign ? " misaligned" : "");
}

// Row lengths: 1, primes, and both sides of every register-tier threshold of every dtype.
std::vector<int64_t> row_lengths() {
  std::vector<int64_t> n = {1, 2, 3, 7, 31, 97, 1021, 50304};
  for (int64_t t = 128; t <= 16384; t *= 2) {
    n.push_back(t - 1);
    n.push_back(t);
    n.push_back(t + 1);
  }
  return n;
}

// A few rows for long lengths, more for short ones (a warp per row, several rows per block).
int64_t rows_for(int64_t n) { return n >= 4096 ? 3 : n >= 512 ? 9 : 37; }

// ---- bias + activation ---------------------------------------------------------------------

struct BiasCase {
  Shape shape;
  int64_t dim;
};

TEST(KernelsVecGpu, BiasActivationMatchesCpu) {
  NN_REQUIRE_GPU();
  const std::vector<BiasCase> cases = {{{1}, -1},          {{37, 129}, -1},   {{3, 1031}, -1},
                                       {{8, 1024}, -1},    {{5, 13}, 0},      {{2, 5, 7, 9}, 1},
                                       {{4, 64, 8, 8}, 1}, {{2, 3, 1, 1}, 1}, {{6, 4, 2, 3}, -1}};
  for (Dtype dt : kDtypes) {
    for (Activation act : kActs) {
      for (const BiasCase& c : cases) {
        for (int layout = 0; layout < 3; ++layout) {  // aligned, misaligned x, misaligned b
          Generator gen(uint64_t(shape_numel(c.shape)) + uint64_t(layout));
          const int64_t d = c.dim < 0 ? c.dim + int64_t(c.shape.size()) : c.dim;
          const Tensor x = randn(c.shape, {dt}, &gen) * 2.0;
          const Tensor b = randn({c.shape[size_t(d)]}, {dt}, &gen);
          Tensor saved_c, saved_g;
          const Tensor y_c = bias_activation(x, b, act, c.dim, &saved_c);
          const Tensor xg = on_gpu(x, layout == 1), bg = on_gpu(b, layout == 2);
          const Tensor y_g = bias_activation(xg, bg, act, c.dim, &saved_g);
          const std::string ctx = std::string(dtype_name(dt)) + " " + activation_name(act) + " " +
                                  shape_str(c.shape) + " dim " + std::to_string(c.dim) +
                                  " layout " + std::to_string(layout);
          ASSERT_TRUE(y_g.device().is_cuda()) << ctx;
          EXPECT_LE(max_rel(y_g, y_c, 0.1), tol(dt)) << ctx;
          ASSERT_EQ(saved_g.defined(), saved_c.defined()) << ctx;
          if (activation_saved(act) == ActivationSaved::Output) {
            EXPECT_EQ(saved_g.data_ptr(), y_g.data_ptr()) << ctx;
          } else if (saved_c.defined()) {
            EXPECT_LE(max_rel(saved_g, saved_c, 0.1), tol(dt)) << ctx << " pre";
          }
          if (layout == 0) {
            const Tensor nb = bias_activation(xg, Tensor(), act, c.dim);
            EXPECT_LE(max_rel(nb, bias_activation(x, Tensor(), act, c.dim), 0.1), tol(dt))
                << ctx << " without bias";
          }
        }
      }
    }
  }
}

#if defined(NN_WITH_CUDA)
// linear's cuBLAS path: a float32 accumulator in, the half type out, and `in` aliasing out or pre.
TEST(KernelsVecGpu, BiasActivationLauncherFloat32InputAndAliasing) {
  NN_REQUIRE_GPU();
  for (Dtype dt : {Dtype::BFloat16, Dtype::Float16}) {
    for (Activation act : kActs) {
      for (int64_t n : {int64_t(1), int64_t(61), int64_t(256)}) {
        Generator gen{static_cast<uint64_t>(n)};
        const int64_t m = 7;
        const Tensor acc = randn({m, n}, {Dtype::Float32}, &gen) * 2.0;
        const Tensor b = randn({n}, {dt}, &gen);
        // The reference: the float32 pass of the CPU rounded once into dt.
        Tensor pre_c;
        const Tensor y_c = bias_activation(acc, b.to(Dtype::Float32), act, -1, &pre_c);
        const Tensor z_c = add(acc, b.to(Dtype::Float32));
        const Tensor accg = acc.to(kGpu), bg = b.to(kGpu);
        Tensor out = empty({m, n}, {dt, kGpu}), pre = empty({m, n}, {dt, kGpu});
        cuda::BiasActArgs a;
        a.dtype = dt;
        a.in_dtype = Dtype::Float32;
        a.in = accg.data_ptr();
        a.bias = bg.data_ptr();
        a.out = out.data_ptr();
        a.pre = pre.data_ptr();
        a.outer = m;
        a.channels = n;
        a.inner = 1;
        a.act = act;
        {
          cuda::DeviceGuard device(0);
          cuda::launch_bias_activation(a, cuda::stream_of(0));
        }
        const std::string ctx =
            std::string(dtype_name(dt)) + " " + activation_name(act) + " n " + std::to_string(n);
        EXPECT_LE(max_rel(out, y_c.to(dt), 0.1), tol(dt)) << ctx;
        EXPECT_LE(max_rel(pre, z_c.to(dt), 0.1), tol(dt)) << ctx << " pre";

        // float32 in place: in == out, then in == pre (with out elsewhere).
        Tensor inout = acc.to(kGpu);
        a.dtype = a.in_dtype = Dtype::Float32;
        a.in = a.out = inout.data_ptr();
        a.pre = nullptr;
        const Tensor b32 = b.to(Dtype::Float32).to(kGpu);
        a.bias = b32.data_ptr();
        {
          cuda::DeviceGuard device(0);
          cuda::launch_bias_activation(a, cuda::stream_of(0));
        }
        EXPECT_LE(max_rel(inout, y_c, 0.1), tol(Dtype::Float32)) << ctx << " in == out";
        Tensor inpre = acc.to(kGpu), out32 = empty({m, n}, {Dtype::Float32, kGpu});
        a.in = a.pre = inpre.data_ptr();
        a.out = out32.data_ptr();
        {
          cuda::DeviceGuard device(0);
          cuda::launch_bias_activation(a, cuda::stream_of(0));
        }
        EXPECT_LE(max_rel(out32, y_c, 0.1), tol(Dtype::Float32)) << ctx << " in == pre, out";
        EXPECT_LE(max_rel(inpre, z_c, 0.1), tol(Dtype::Float32)) << ctx << " in == pre, pre";
      }
    }
  }
}
#endif

TEST(KernelsVecGpu, ActivationBackwardMatchesCpu) {
  NN_REQUIRE_GPU();
  for (Dtype dt : kDtypes) {
    for (Activation act : kActs) {
      if (act == Activation::None) continue;
      for (const Shape& s : std::vector<Shape>{{1}, {7}, {33, 129}, {4, 8, 8, 8}}) {
        for (bool misalign : {false, true}) {
          Generator gen(uint64_t(shape_numel(s)));
          const Tensor x = randn(s, {dt}, &gen) * 2.0, b = randn({s.back()}, {dt}, &gen);
          const Tensor g = randn(s, {dt}, &gen);
          Tensor saved;
          bias_activation(x, b, act, -1, &saved);
          const Tensor dx_c = activation_backward(g, saved, act);
          const Tensor dx_g =
              activation_backward(on_gpu(g, misalign), on_gpu(saved, misalign), act);
          EXPECT_LE(max_rel(dx_g, dx_c, 0.1), tol(dt))
              << ctx_of(dt, std::string(activation_name(act)) + " " + shape_str(s), misalign);
        }
      }
    }
  }
}

// ---- softmax ---------------------------------------------------------------------------------

TEST(KernelsVecGpu, SoftmaxForwardBackwardMatchCpu) {
  NN_REQUIRE_GPU();
  for (Dtype dt : kDtypes) {
    for (int64_t n : row_lengths()) {
      for (bool misalign : {false, true}) {
        const int64_t rows = rows_for(n);
        Generator gen(uint64_t(n) * 3 + (misalign ? 1 : 0));
        const Tensor x = randn({rows, n}, {dt}, &gen) * 3.0, g = randn({rows, n}, {dt}, &gen);
        const Tensor xg = on_gpu(x, misalign), gg = on_gpu(g, misalign);
        const std::string ctx = ctx_of(dt, "n " + std::to_string(n), misalign);
        const double floor = 0.01 / double(n);  // probabilities are about 1/n
        const Tensor p_c = softmax(x), p_g = softmax(xg);
        EXPECT_LE(max_rel(p_g, p_c, floor), 2 * tol(dt)) << ctx << " softmax";
        const Tensor lp_c = log_softmax(x), lp_g = log_softmax(xg);
        EXPECT_LE(max_rel(lp_g, lp_c, 1.0), 2 * tol(dt)) << ctx << " log_softmax";
        // Backward from the CPU's outputs, so both sides see the same y.
        const Tensor dp_c = softmax_backward(g, p_c);
        const Tensor dp_g = softmax_backward(gg, on_gpu(p_c, misalign));
        EXPECT_LE(max_rel(dp_g, dp_c, 1.0 / double(n)), 4 * tol(dt)) << ctx << " softmax bwd";
        const Tensor dl_c = log_softmax_backward(g, lp_c);
        const Tensor dl_g = log_softmax_backward(gg, on_gpu(lp_c, misalign));
        EXPECT_LE(max_rel(dl_g, dl_c, 1.0), 4 * tol(dt)) << ctx << " log_softmax bwd";
      }
    }
  }
}

TEST(KernelsVecGpu, SoftmaxAlongMiddleAxisMatchesCpu) {
  NN_REQUIRE_GPU();
  for (Dtype dt : kDtypes) {
    for (const Shape& s : std::vector<Shape>{{3, 7, 5}, {2, 1025, 3}, {1, 1, 9}}) {
      Generator gen(uint64_t(shape_numel(s)));
      const Tensor x = randn(s, {dt}, &gen) * 2.0, g = randn(s, {dt}, &gen);
      const std::string ctx = ctx_of(dt, shape_str(s), false);
      const Tensor p_c = softmax(x, 1), lp_c = log_softmax(x, 1);
      EXPECT_LE(max_rel(softmax(x.to(kGpu), 1), p_c, 1e-3), 2 * tol(dt)) << ctx;
      EXPECT_LE(max_rel(log_softmax(x.to(kGpu), 1), lp_c, 1.0), 2 * tol(dt)) << ctx;
      EXPECT_LE(
          max_rel(softmax_backward(g.to(kGpu), p_c.to(kGpu), 1), softmax_backward(g, p_c, 1), 1e-3),
          4 * tol(dt))
          << ctx << " bwd";
      EXPECT_LE(max_rel(log_softmax_backward(g.to(kGpu), lp_c.to(kGpu), 1),
                        log_softmax_backward(g, lp_c, 1), 1.0),
                4 * tol(dt))
          << ctx << " log bwd";
    }
  }
}

// ---- cross-entropy -----------------------------------------------------------------------------

TEST(KernelsVecGpu, CrossEntropyMatchesCpu) {
  NN_REQUIRE_GPU();
  for (Dtype dt : kDtypes) {
    for (int64_t classes : row_lengths()) {
      for (int variant = 0; variant < 3; ++variant) {
        for (bool misalign : {false, true}) {
          const int64_t n = rows_for(classes);
          Generator gen(uint64_t(classes) * 5 + uint64_t(variant) * 2 + (misalign ? 1 : 0));
          const Tensor z = randn({n, classes}, {dt}, &gen) * 3.0;
          const Tensor gl = randn({n}, {dt}, &gen);
          std::vector<int64_t> t(static_cast<size_t>(n));
          for (int64_t i = 0; i < n; ++i) t[size_t(i)] = (i * 7919 + 3) % classes;
          CrossEntropyOptions opt;
          if (variant >= 1) opt.label_smoothing = 0.1;
          if (variant == 2) {
            opt.weight = rand({classes}, {dt}, &gen) + 0.5;
            if (n > 1) opt.ignore_index = t[1];  // a real class, ignored all the same
          }
          const Tensor tc = from_vector<int64_t>(t, {n}, {Dtype::Int64});
          Tensor lse_c, sw_c, lse_g, sw_g;
          const Tensor loss_c = cross_entropy(z, tc, opt, &lse_c, &sw_c);
          CrossEntropyOptions opt_g = opt;
          if (opt.weight.defined()) opt_g.weight = on_gpu(opt.weight, misalign);
          const Tensor zg = on_gpu(z, misalign), tg = tc.to(kGpu);
          const Tensor loss_g = cross_entropy(zg, tg, opt_g, &lse_g, &sw_g);
          const Tensor grad_c = cross_entropy_backward(gl, z, tc, lse_c, opt);
          const Tensor grad_g = cross_entropy_backward(on_gpu(gl, misalign), zg, tg, lse_g, opt_g);
          const std::string ctx = ctx_of(
              dt, "C " + std::to_string(classes) + " variant " + std::to_string(variant), misalign);
          EXPECT_LE(max_rel(loss_g, loss_c, 1.0), 2 * tol(dt)) << ctx << " loss";
          EXPECT_LE(max_rel(lse_g, lse_c, 1.0), dt == Dtype::Float64 ? 1e-12 : 2e-6) << ctx;
          EXPECT_EQ(sw_g.to_vector<double>(), sw_c.to_vector<double>()) << ctx;
          EXPECT_LE(max_rel(grad_g, grad_c, 0.1 / double(classes)), 4 * tol(dt)) << ctx << " grad";
        }
      }
    }
  }
}

// NaN and infinite logits propagate as on the CPU (a NaN in a row poisons its loss; an
// all -inf row but for the target is a finite loss).
TEST(KernelsVecGpu, CrossEntropyNonFiniteLogits) {
  NN_REQUIRE_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t classes : {int64_t(5), int64_t(64), int64_t(3000)}) {
    std::vector<double> v(size_t(3 * classes), 0.5);
    v[1] = nan;                                                           // row 0: a NaN
    for (int64_t c = 0; c < classes; ++c) v[size_t(classes + c)] = -inf;  // row 1: all -inf ...
    v[size_t(classes + classes - 1)] = 2.0;                               // ... but the target
    const Tensor z = from_vector<double>(v, {3, classes}, {Dtype::Float32});
    const Tensor t = from_vector<int64_t>({0, classes - 1, 2}, {3}, {Dtype::Int64});
    const Tensor loss_c = cross_entropy(z, t), loss_g = cross_entropy(z.to(kGpu), t.to(kGpu));
    const std::vector<double> c = loss_c.to_vector<double>(), g = loss_g.to_vector<double>();
    EXPECT_TRUE(std::isnan(c[0]) && std::isnan(g[0])) << classes;
    EXPECT_NEAR(g[1], c[1], 1e-6) << classes;
    EXPECT_NEAR(g[2], c[2], 1e-5) << classes;
    const Tensor p = softmax(z.to(kGpu));
    const std::vector<double> pv = p.to_vector<double>();
    EXPECT_TRUE(std::isnan(pv[0])) << classes << " softmax of a row with a NaN";
    EXPECT_NEAR(pv[size_t(2 * classes - 1)], 1.0, 1e-6) << classes;
  }
}

}  // namespace
}  // namespace nn
