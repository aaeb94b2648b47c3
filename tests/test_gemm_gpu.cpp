// Our GEMM with the fused epilogue (kernels/cuda/gemm.cu), CTest label gpu. With the linear
// backend forced to Ours, nn::linear on CUDA against the CPU path: every dtype (float32 with and
// without TF32, float64 through the SIMT kernel, bfloat16, float16), every activation, with and
// without bias and pre-activation, over shapes that miss the 128 x 128 x 32 tile in every way
// (1x1x1, primes, ragged edges, K = 4096, batched 3-D, non-contiguous and misaligned inputs).
// Then the batched/strided interface called directly (every transpose combination, a broadcast
// operand, residual, float32 output cast, padded output rows that must stay untouched) against a
// float64 reference. The backend switch itself (names, set/get, restore) runs without a GPU.
// Backward: linear_backward under each backend (Ours with act' in the GEMM prologue and db fused
// into the dW GEMM, cuBLASLt with its bias-gradient epilogue, Auto) against the CPU for every
// dtype and activation over the same awkward shapes, K = 4096 reductions, non-contiguous inputs,
// each subset of gradients; the prologue and row sums called directly; and the autotune cache
// (a first call records a choice, a second call with the key neither times nor waits).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/nn_math.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "tests/op_harness.h"
#include "tests/test_util.h"

#if defined(NN_WITH_CUDA)
#include "core/cuda_context.h"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/linear_autotune.h"
#endif

namespace nn {
namespace {

using ::nn::test::max_rel;

const Device kGpu = Device::cuda(0);
const std::vector<Activation> kActs = {Activation::None,     Activation::Relu, Activation::Gelu,
                                       Activation::GeluTanh, Activation::Silu, Activation::Tanh,
                                       Activation::Sigmoid};

// Restores the process-wide switches a test changes, so no setting leaks into other tests.
class SwitchGuard {
 public:
  SwitchGuard() : backend_(linear_backend()), tf32_(allow_tf32()) {}
  ~SwitchGuard() {
    set_linear_backend(backend_);
    set_allow_tf32(tf32_);
  }

 private:
  LinearBackend backend_;
  bool tf32_;
};

// One dtype configuration: the tensor dtype and whether TF32 is allowed (float32 only).
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

// A dot product of K unit normals is of size sqrt(K): errors are measured against that scale,
// so the summation-order (and TF32 rounding) error, which grows like sqrt(K), stays comparable.
double error_floor(int64_t k) { return std::max(1.0, std::sqrt(double(k))); }

// Runs linear on CPU and on CUDA with our kernel and compares y (and pre when asked).
void expect_linear_parity(const Tensor& x, const Tensor& w, const Tensor& b, Activation act,
                          bool want_pre, const std::string& ctx) {
  Tensor pre_c, pre_g;
  const Tensor y_c = linear(x, w, b, act, want_pre ? &pre_c : nullptr);
  const Tensor bg = b.defined() ? b.to(kGpu) : Tensor();
  const Tensor y_g = linear(x.to(kGpu), w.to(kGpu), bg, act, want_pre ? &pre_g : nullptr);
  ASSERT_TRUE(y_g.device().is_cuda()) << ctx;
  const double floor = error_floor(w.size(1));
  const double tol = 4 * test::gpu_tolerance(x.dtype());
  EXPECT_LE(max_rel(y_g, y_c, floor), tol) << ctx << " y";
  EXPECT_EQ(pre_g.defined(), pre_c.defined()) << ctx;
  if (pre_c.defined() && pre_g.defined()) {
    EXPECT_LE(max_rel(pre_g, pre_c, floor), tol) << ctx << " saved";
    if (activation_saved(act) == ActivationSaved::Output) {
      EXPECT_EQ(pre_g.data_ptr(), y_g.data_ptr()) << ctx << ": saved must be y itself";
    }
  }
}

struct LinearShape {
  Shape x;      // [..., in]
  int64_t out;  // features of y
};

TEST(GemmGpu, LinearOursMatchesCpu) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_linear_backend(LinearBackend::Ours);
  const std::vector<LinearShape> shapes = {
      {{1, 1}, 1},        // the smallest problem
      {{127, 33}, 61},    // primes: every edge ragged, K not a multiple of 8
      {{130, 70}, 200},   // one row and column past full tiles
      {{256, 64}, 128},   // whole tiles, every operand 16-byte aligned
      {{3, 37, 65}, 29},  // batched 3-D input
      {{5}, 7},           // a single 1-D sample
  };
  for (const DtypeCase& dc : kDtypeCases) {
    set_allow_tf32(dc.tf32);
    for (const LinearShape& s : shapes) {
      for (Activation act : kActs) {
        for (int variant = 0; variant < 3; ++variant) {  // bias + pre, bias only, neither
          Generator gen(uint64_t(s.out) * 31 + uint64_t(variant));
          const TensorOptions o{dc.dtype};
          const Tensor x = randn(s.x, o, &gen), w = randn({s.out, s.x.back()}, o, &gen);
          const Tensor b = variant < 2 ? randn({s.out}, o, &gen) : Tensor();
          const std::string ctx = dc.name() + " " + activation_name(act) + " x " + shape_str(s.x) +
                                  " out " + std::to_string(s.out) + " variant " +
                                  std::to_string(variant);
          expect_linear_parity(x, w, b, act, variant == 0, ctx);
        }
      }
    }
  }
}

TEST(GemmGpu, LinearOursLargeK) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_linear_backend(LinearBackend::Ours);
  for (const DtypeCase& dc : kDtypeCases) {
    set_allow_tf32(dc.tf32);
    for (Activation act : {Activation::None, Activation::Gelu, Activation::Sigmoid}) {
      Generator gen(4096);
      const TensorOptions o{dc.dtype};
      const Tensor x = randn({67, 4096}, o, &gen), w = randn({96, 4096}, o, &gen);
      const Tensor b = randn({96}, o, &gen);
      expect_linear_parity(x, w, b, act, true, dc.name() + " K 4096 " + activation_name(act));
    }
  }
}

TEST(GemmGpu, LinearOursNonContiguousAndMisaligned) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_linear_backend(LinearBackend::Ours);
  for (const DtypeCase& dc : kDtypeCases) {
    set_allow_tf32(dc.tf32);
    Generator gen(99);
    const TensorOptions o{dc.dtype};
    // Transposed views: the front end packs them, our kernel sees the packed copies.
    const Tensor xt = randn({65, 40}, o, &gen).t(), wt = randn({65, 31}, o, &gen).t();
    const Tensor b = randn({31}, o, &gen);
    expect_linear_parity(xt, wt, b, Activation::Silu, true, dc.name() + " transposed views");
    // Contiguous views 3 elements into their storage: the base is not 16-byte aligned though
    // the row length (64) is, so operands go through the element-by-element staging.
    const Tensor xs = randn({48 * 64 + 3}, o, &gen).narrow(0, 3, 48 * 64).view({48, 64});
    const Tensor ws = randn({40 * 64 + 3}, o, &gen).narrow(0, 3, 40 * 64).view({40, 64});
    const Tensor bs = randn({40}, o, &gen);
    expect_linear_parity(xs, ws, bs, Activation::Relu, true, dc.name() + " misaligned base");
  }
}

TEST(GemmGpu, BackendSwitchRestoresCublas) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_allow_tf32(false);
  Generator gen(5);
  const Tensor x = randn({33, 47}, {Dtype::Float32, kGpu}, &gen);
  const Tensor w = randn({21, 47}, {Dtype::Float32, kGpu}, &gen);
  set_linear_backend(LinearBackend::Cublas);
  const Tensor y_cublas = linear(x, w, {}, Activation::Tanh);
  set_linear_backend(LinearBackend::Ours);
  const Tensor y_ours = linear(x, w, {}, Activation::Tanh);
  set_linear_backend(LinearBackend::Cublas);
  const Tensor y_again = linear(x, w, {}, Activation::Tanh);
  EXPECT_LE(max_rel(y_ours, y_cublas, error_floor(47)), 4e-5);
  // Same path, same inputs: cuBLAS is deterministic for one problem on one device.
  EXPECT_EQ(y_again.to_vector<double>(), y_cublas.to_vector<double>());
}

// ---- backward --------------------------------------------------------------------------------

const LinearBackend kBackends[] = {LinearBackend::Ours, LinearBackend::Cublas, LinearBackend::Auto};

struct GradFlags {
  bool dx, dw, db;
};

// linear_backward on CPU and CUDA (under the current backend) from the same inputs, each gradient
// compared relative to the scale of a dot product over its reduction length. Both read the CPU
// forward's saved tensor: with TF32 the two forwards' z differ by ~1e-3, enough to flip relu's
// mask [y > 0] at a few elements near 0, which is a forward difference, not a backward one (the
// forward parity tests cover that; test_nn_ops_gpu.cpp feeds the GPU's own saved tensor).
void expect_backward_parity(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& gy,
                            Activation act, GradFlags f, const std::string& ctx) {
  Tensor saved_c;
  linear(x, w, b, act, &saved_c);
  const Tensor xg = x.to(kGpu), wg = w.to(kGpu), gyg = gy.to(kGpu);
  const Tensor saved_g = saved_c.defined() ? saved_c.to(kGpu) : Tensor();
  const bool db = f.db && b.defined();
  const LinearGrads c = linear_backward(gy, x, w, saved_c, act, f.dx, f.dw, db);
  const LinearGrads g = linear_backward(gyg, xg, wg, saved_g, act, f.dx, f.dw, db);
  const int64_t rows = x.numel() / std::max<int64_t>(x.size(-1), 1), out = w.size(0);
  const double tol = 4 * test::gpu_tolerance(x.dtype());
  ASSERT_EQ(g.dx.defined(), f.dx) << ctx;
  ASSERT_EQ(g.dw.defined(), f.dw) << ctx;
  ASSERT_EQ(g.db.defined(), db) << ctx;
  if (f.dx) {
    EXPECT_TRUE(g.dx.device().is_cuda()) << ctx;
    EXPECT_LE(max_rel(g.dx, c.dx, error_floor(out)), tol) << ctx << " dx";
  }
  if (f.dw) {
    EXPECT_LE(max_rel(g.dw, c.dw, error_floor(rows)), tol) << ctx << " dw";
  }
  if (db) {
    EXPECT_LE(max_rel(g.db, c.db, error_floor(rows)), tol) << ctx << " db";
  }
}

TEST(GemmGpu, LinearBackwardMatchesCpuUnderEachBackend) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  const std::vector<LinearShape> shapes = {
      {{1, 1}, 1}, {{127, 33}, 61}, {{130, 70}, 200}, {{3, 37, 65}, 29}, {{5}, 7}};
  for (LinearBackend backend : kBackends) {
    set_linear_backend(backend);
    for (const DtypeCase& dc : kDtypeCases) {
      set_allow_tf32(dc.tf32);
      for (const LinearShape& s : shapes) {
        for (Activation act : kActs) {
          for (bool bias : {true, false}) {
            Generator gen(uint64_t(s.out) * 7 + uint64_t(act) + (bias ? 1000 : 0));
            const TensorOptions o{dc.dtype};
            const Tensor x = randn(s.x, o, &gen), w = randn({s.out, s.x.back()}, o, &gen);
            const Tensor b = bias ? randn({s.out}, o, &gen) : Tensor();
            Shape ys = s.x;
            ys.back() = s.out;
            const Tensor gy = randn(ys, o, &gen);
            const std::string ctx = std::string(linear_backend_name(backend)) + " " + dc.name() +
                                    " " + activation_name(act) + " x " + shape_str(s.x) + " out " +
                                    std::to_string(s.out) + (bias ? " bias" : "");
            expect_backward_parity(x, w, b, gy, act, {true, true, true}, ctx);
          }
        }
      }
    }
  }
}

TEST(GemmGpu, LinearBackwardSubsetsOfGradients) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_allow_tf32(false);
  for (LinearBackend backend : kBackends) {
    set_linear_backend(backend);
    for (int flags = 1; flags < 8; ++flags) {
      const GradFlags f{(flags & 1) != 0, (flags & 2) != 0, (flags & 4) != 0};
      for (Activation act : {Activation::None, Activation::Relu, Activation::Silu}) {
        Generator gen(static_cast<uint64_t>(flags));
        const Tensor x = randn({45, 19}, {Dtype::Float32}, &gen);
        const Tensor w = randn({23, 19}, {Dtype::Float32}, &gen);
        const Tensor b = randn({23}, {Dtype::Float32}, &gen);
        const Tensor gy = randn({45, 23}, {Dtype::Float32}, &gen);
        expect_backward_parity(x, w, b, gy, act, f,
                               std::string(linear_backend_name(backend)) + " flags " +
                                   std::to_string(flags) + " " + activation_name(act));
      }
    }
  }
}

TEST(GemmGpu, LinearBackwardLongReductions) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  for (LinearBackend backend : kBackends) {
    set_linear_backend(backend);
    for (const DtypeCase& dc : kDtypeCases) {
      set_allow_tf32(dc.tf32);
      for (Activation act : {Activation::None, Activation::GeluTanh, Activation::Tanh}) {
        Generator gen(4096);
        const TensorOptions o{dc.dtype};
        // dx reduces over 4096 output features, dW and db over 4096 rows.
        const Tensor x = randn({4096, 24}, o, &gen), w = randn({4096, 24}, o, &gen);
        const Tensor b = randn({4096}, o, &gen), gy = randn({4096, 4096}, o, &gen);
        expect_backward_parity(x, w, b, gy, act, {true, true, true},
                               std::string(linear_backend_name(backend)) + " " + dc.name() +
                                   " K 4096 " + activation_name(act));
      }
    }
  }
}

TEST(GemmGpu, LinearBackwardNonContiguousInputs) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  for (LinearBackend backend : kBackends) {
    set_linear_backend(backend);
    for (const DtypeCase& dc : kDtypeCases) {
      set_allow_tf32(dc.tf32);
      Generator gen(71);
      const TensorOptions o{dc.dtype};
      // Transposed views and a view 3 elements into its storage: the front end packs them.
      const Tensor xt = randn({65, 40}, o, &gen).t(), wt = randn({65, 31}, o, &gen).t();
      const Tensor gyt = randn({31, 40}, o, &gen).t();
      const Tensor b = randn({31}, o, &gen);
      expect_backward_parity(
          xt, wt, b, gyt, Activation::Gelu, {true, true, true},
          std::string(linear_backend_name(backend)) + " " + dc.name() + " transposed views");
      const Tensor xs = randn({48 * 64 + 3}, o, &gen).narrow(0, 3, 48 * 64).view({48, 64});
      const Tensor gs = randn({48 * 40 + 3}, o, &gen).narrow(0, 3, 48 * 40).view({48, 40});
      const Tensor ws = randn({40, 64}, o, &gen), bs = randn({40}, o, &gen);
      expect_backward_parity(
          xs, ws, bs, gs, Activation::Sigmoid, {true, true, true},
          std::string(linear_backend_name(backend)) + " " + dc.name() + " misaligned base");
    }
  }
}

TEST(GemmGpu, ForwardUnderEachBackendMatchesCpu) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  for (LinearBackend backend : {LinearBackend::Cublas, LinearBackend::Auto}) {
    set_linear_backend(backend);
    for (const DtypeCase& dc : kDtypeCases) {
      set_allow_tf32(dc.tf32);
      for (Activation act : kActs) {
        for (int variant = 0; variant < 3; ++variant) {  // bias + saved, bias only, neither
          Generator gen(uint64_t(variant) + 3);
          const TensorOptions o{dc.dtype};
          // 64 output features: cuBLASLt's GELU aux output takes the leading dimension.
          for (int64_t out : {int64_t(64), int64_t(61)}) {
            const Tensor x = randn({37, 48}, o, &gen), w = randn({out, 48}, o, &gen);
            const Tensor b = variant < 2 ? randn({out}, o, &gen) : Tensor();
            expect_linear_parity(x, w, b, act, variant == 0,
                                 std::string(linear_backend_name(backend)) + " " + dc.name() + " " +
                                     activation_name(act) + " out " + std::to_string(out) +
                                     " variant " + std::to_string(variant));
          }
        }
      }
    }
  }
}

// The switch itself needs no GPU.
TEST(GemmSwitch, NamesAndSetGet) {
  SwitchGuard guard;
  for (LinearBackend b : {LinearBackend::Auto, LinearBackend::Cublas, LinearBackend::Ours}) {
    EXPECT_EQ(parse_linear_backend(linear_backend_name(b)), b);
    set_linear_backend(b);
    EXPECT_EQ(linear_backend(), b);
  }
  const std::string msg = test::message_of<ValueError>([] { parse_linear_backend("cudnn"); });
  EXPECT_NE(msg.find("cudnn"), std::string::npos) << msg;
  EXPECT_NE(msg.find("auto, cublas or ours"), std::string::npos) << msg;
}

#if defined(NN_WITH_CUDA)

// D[z] = act(op(A[z]) op(B[z]) + bias) + R[z] in float64 from the host copies, D and R with
// row stride ldd and batch stride M * ldd; B broadcast (batch stride 0).
std::vector<double> reference(const std::vector<double>& a, const std::vector<double>& b,
                              const std::vector<double>& bias, const std::vector<double>& r,
                              int64_t batch, int64_t m, int64_t n, int64_t k, int64_t ldd,
                              bool trans_a, bool trans_b, Activation act) {
  std::vector<double> d(size_t(batch * m * ldd), 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (int64_t p = 0; p < k; ++p) {
          const double av =
              trans_a ? a[size_t(z * k * m + p * m + i)] : a[size_t(z * m * k + i * k + p)];
          const double bv = trans_b ? b[size_t(j * k + p)] : b[size_t(p * n + j)];
          s += av * bv;
        }
        const size_t idx = size_t(z * m * ldd + i * ldd + j);
        s += bias[size_t(j)];
        const double y =
            visit_activation(act, [&]<Activation Act>() { return math::activation_fn<Act>(s); });
        d[idx] = y + r[idx];
      }
  return d;
}

TEST(GemmGpu, BatchedStridedInterface) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  const int64_t batch = 3, m = 70, n = 45, k = 37, ldd = n + 3;
  constexpr double kSentinel = 12345.0;
  for (const DtypeCase& dc : kDtypeCases) {
    set_allow_tf32(dc.tf32);
    for (int layout = 0; layout < 4; ++layout) {
      const bool ta = layout & 1, tb = layout & 2;
      Generator gen(uint64_t(layout) + 11);
      const TensorOptions in_o{dc.dtype};
      // Half inputs write float32 (the cast); the others their own dtype.
      const bool half = dc.dtype == Dtype::BFloat16 || dc.dtype == Dtype::Float16;
      const TensorOptions out_o{half ? Dtype::Float32 : dc.dtype};
      const Tensor a = ta ? randn({batch, k, m}, in_o, &gen) : randn({batch, m, k}, in_o, &gen);
      const Tensor b = tb ? randn({n, k}, in_o, &gen) : randn({k, n}, in_o, &gen);
      const Tensor bias = randn({n}, out_o, &gen), r = randn({batch, m, ldd}, out_o, &gen);
      const Tensor ag = a.to(kGpu), bg = b.to(kGpu), biasg = bias.to(kGpu), rg = r.to(kGpu);
      Tensor dg = full({batch, m, ldd}, kSentinel, {out_o.dtype, kGpu});
      cuda::GemmProblem p;
      p.m = m;
      p.n = n;
      p.k = k;
      p.batch = batch;
      p.dtype = dc.dtype;
      p.a = ag.data_ptr();
      p.lda = ta ? m : k;
      p.batch_stride_a = m * k;
      p.trans_a = ta;
      p.b = bg.data_ptr();
      p.ldb = tb ? k : n;
      p.batch_stride_b = 0;  // one B for every batch
      p.trans_b = tb;
      p.d = dg.data_ptr();
      p.ldd = ldd;
      p.batch_stride_d = m * ldd;
      cuda::GemmEpilogue e;
      e.bias = biasg.data_ptr();
      e.act = Activation::Gelu;
      e.residual = rg.data_ptr();
      e.out_dtype = out_o.dtype;
      {
        cuda::DeviceGuard device(0);
        if (cuda::gemm_tensor_core_supports(p, e))
          cuda::gemm_tensor_core(p, e, cuda::stream_of(0));
        else
          cuda::gemm_simt(p, e, cuda::stream_of(0));
      }
      const bool tc_expected = half || dc.tf32;
      EXPECT_EQ(cuda::gemm_tensor_core_supports(p, e), tc_expected) << dc.name();
      std::vector<double> want =
          reference(a.to_vector<double>(), b.to_vector<double>(), bias.to_vector<double>(),
                    r.to_vector<double>(), batch, m, n, k, ldd, ta, tb, Activation::Gelu);
      const std::vector<double> got = dg.to_vector<double>();
      const double floor = error_floor(k);
      const double tol = half ? 1e-4 : 4 * test::gpu_tolerance(dc.dtype);  // float32 out
      double worst = 0.0;
      int64_t clobbered = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        if (int64_t(i) % ldd >= n) {  // padding columns: never written
          if (got[i] != kSentinel) ++clobbered;
          continue;
        }
        worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(std::abs(want[i]), floor));
      }
      const std::string ctx =
          dc.name() + " trans_a " + std::to_string(ta) + " trans_b " + std::to_string(tb);
      EXPECT_LE(worst, tol) << ctx;
      EXPECT_EQ(clobbered, 0) << ctx;
    }
  }
}

// D = op(A') op(B) with A' = act'(A; S) (S laid out like A) and the row sums of op(A'), in
// float64 from the host copies; A stored [m, k] or, with trans_a, [k, m]; B stored [k, n].
void prologue_reference(const std::vector<double>& a, const std::vector<double>& s,
                        const std::vector<double>& b, int64_t m, int64_t n, int64_t k, bool trans_a,
                        Activation act, std::vector<double>& d, std::vector<double>& row_sums) {
  d.assign(size_t(m * n), 0.0);
  row_sums.assign(size_t(m), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const size_t at = size_t(trans_a ? p * m + i : i * k + p);
      const double g = visit_activation(
          act, [&]<Activation Act>() { return math::activation_grad<Act>(a[at], s[at]); });
      row_sums[size_t(i)] += g;
      for (int64_t j = 0; j < n; ++j) d[size_t(i * n + j)] += g * b[size_t(p * n + j)];
    }
}

TEST(GemmGpu, PrologueAndRowSums) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  const int64_t m = 131, n = 45, k = 203;
  for (const DtypeCase& dc : kDtypeCases) {
    set_allow_tf32(dc.tf32);
    for (bool ta : {false, true}) {
      for (Activation act : kActs) {
        Generator gen(uint64_t(act) + (ta ? 50 : 0));
        const TensorOptions o{dc.dtype};
        const Shape as = ta ? Shape{k, m} : Shape{m, k};
        const Tensor a = randn(as, o, &gen), s = randn(as, o, &gen), b = randn({k, n}, o, &gen);
        const Tensor ag = a.to(kGpu), sg = s.to(kGpu), bg = b.to(kGpu);
        Tensor dg = empty({m, n}, {dc.dtype, kGpu}), rg = empty({m}, {dc.dtype, kGpu});
        cuda::GemmProblem p;
        p.m = m;
        p.n = n;
        p.k = k;
        p.dtype = dc.dtype;
        p.a = ag.data_ptr();
        p.lda = ta ? m : k;
        p.trans_a = ta;
        p.b = bg.data_ptr();
        p.ldb = n;
        p.d = dg.data_ptr();
        p.ldd = n;
        p.a_prologue.act = act;
        p.a_prologue.saved = sg.data_ptr();
        p.a_prologue.a_row_sum = rg.data_ptr();
        cuda::GemmEpilogue e;
        e.out_dtype = dc.dtype;
        {
          cuda::DeviceGuard device(0);
          if (cuda::gemm_tensor_core_supports(p, e))
            cuda::gemm_tensor_core(p, e, cuda::stream_of(0));
          else
            cuda::gemm_simt(p, e, cuda::stream_of(0));
        }
        std::vector<double> want_d, want_r;
        prologue_reference(a.to_vector<double>(), s.to_vector<double>(), b.to_vector<double>(), m,
                           n, k, ta, act, want_d, want_r);
        const std::string ctx =
            dc.name() + " trans_a " + std::to_string(ta) + " " + activation_name(act);
        // Half types round A' once before the tensor cores: one more rounding than the output.
        const double tol = 4 * test::gpu_tolerance(dc.dtype);
        const Tensor want_dt = from_vector<double>(want_d, {m, n}, {Dtype::Float64});
        const Tensor want_rt = from_vector<double>(want_r, {m}, {Dtype::Float64});
        EXPECT_LE(max_rel(dg, want_dt, error_floor(k)), tol) << ctx << " D";
        EXPECT_LE(max_rel(rg, want_rt, error_floor(k)), tol) << ctx << " row sums";
      }
    }
  }
}

TEST(GemmGpu, AutotuneRecordsOnceThenNeverWaits) {
  NN_REQUIRE_GPU();
  SwitchGuard guard;
  set_linear_backend(LinearBackend::Auto);
  set_allow_tf32(false);
  cuda::clear_linear_autotune_cache();
  EXPECT_EQ(cuda::linear_autotune_cache_size(), 0);
  Generator gen(8);
  const TensorOptions o{Dtype::BFloat16, kGpu};
  const int64_t rows = 96, in = 80, out = 72;
  const Tensor x = randn({rows, in}, o, &gen), w = randn({out, in}, o, &gen);
  const Tensor b = randn({out}, o, &gen), gy = randn({rows, out}, o, &gen);
  cuda::LinearTuneKey key;
  key.device = 0;
  key.m = rows;
  key.n = out;
  key.k = in;
  key.dtype = Dtype::BFloat16;
  key.act = Activation::Gelu;
  key.has_bias = true;
  key.saved = true;
  key.gemm = cuda::LinearGemm::Forward;
  EXPECT_FALSE(cuda::linear_autotune_choice(key).has_value());

  // First call: both implementations are timed (one host wait) and the winner recorded.
  int64_t before = cuda::host_sync_count();
  Tensor saved1;
  const Tensor y1 = linear(x, w, b, Activation::Gelu, &saved1);
  EXPECT_GE(cuda::host_sync_count(), before + 1);
  ASSERT_TRUE(cuda::linear_autotune_choice(key).has_value());
  const cuda::LinearImpl choice = *cuda::linear_autotune_choice(key);

  // Second call with the same key: no timing, no wait, the same implementation and result.
  before = cuda::host_sync_count();
  Tensor saved2;
  const Tensor y2 = linear(x, w, b, Activation::Gelu, &saved2);
  EXPECT_EQ(cuda::host_sync_count(), before) << "a cached autotune choice made the host wait";
  EXPECT_EQ(*cuda::linear_autotune_choice(key), choice);
  EXPECT_EQ(y2.to_vector<double>(), y1.to_vector<double>());
  EXPECT_EQ(saved2.to_vector<double>(), saved1.to_vector<double>());

  // Backward: dx and dW each get their key the first time, and then run without waiting.
  const LinearGrads g1 = linear_backward(gy, x, w, saved1, Activation::Gelu, true, true, true);
  cuda::LinearTuneKey kdx = key, kdw = key;
  kdx.gemm = cuda::LinearGemm::BackwardDx;
  kdx.has_bias = false;
  kdx.saved = false;
  kdw.gemm = cuda::LinearGemm::BackwardDw;
  kdw.saved = false;
  EXPECT_TRUE(cuda::linear_autotune_choice(kdx).has_value());
  EXPECT_TRUE(cuda::linear_autotune_choice(kdw).has_value());
  EXPECT_EQ(cuda::linear_autotune_cache_size(), 3);
  before = cuda::host_sync_count();
  const LinearGrads g2 = linear_backward(gy, x, w, saved1, Activation::Gelu, true, true, true);
  EXPECT_EQ(cuda::host_sync_count(), before) << "a cached backward choice made the host wait";
  EXPECT_EQ(g2.dx.to_vector<double>(), g1.dx.to_vector<double>());
  EXPECT_EQ(g2.dw.to_vector<double>(), g1.dw.to_vector<double>());
  EXPECT_EQ(g2.db.to_vector<double>(), g1.db.to_vector<double>());
  // A forced backend never consults the cache: clearing it and forcing Ours records nothing.
  cuda::clear_linear_autotune_cache();
  set_linear_backend(LinearBackend::Ours);
  linear(x, w, b, Activation::Gelu);
  EXPECT_EQ(cuda::linear_autotune_cache_size(), 0);
}

#endif  // NN_WITH_CUDA

}  // namespace
}  // namespace nn
