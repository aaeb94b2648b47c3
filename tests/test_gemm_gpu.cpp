// Our GEMM with the fused epilogue (kernels/cuda/gemm.cu), CTest label gpu. With the linear
// backend forced to Ours, nn::linear on CUDA against the CPU path: every dtype (float32 with and
// without TF32, float64 through the SIMT kernel, bfloat16, float16), every activation, with and
// without bias and pre-activation, over shapes that miss the 128 x 128 x 32 tile in every way
// (1x1x1, primes, ragged edges, K = 4096, batched 3-D, non-contiguous and misaligned inputs).
// Then the batched/strided interface called directly (every transpose combination, a broadcast
// operand, residual, float32 output cast, padded output rows that must stay untouched) against a
// float64 reference. The backend switch itself (names, set/get, restore) runs without a GPU.
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
    EXPECT_LE(max_rel(pre_g, pre_c, floor), tol) << ctx << " pre";
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

#endif  // NN_WITH_CUDA

}  // namespace
}  // namespace nn
