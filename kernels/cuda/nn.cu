// CUDA rows of the fused training ops: linear and cross-entropy forward and backward.
//
// linear: one cuBLAS GEMM (cublasGemmEx) computes x w^T, then one fused kernel adds the bias,
// applies the activation and writes y (and the pre-activation when asked). The GEMM writes its
// result straight into pre (or y) for float32 and float64; the half types accumulate and write
// float32 into a scratch buffer, so y is rounded once, as on the CPU. Row-major y [M, N] is the
// column-major y^T = w x^T, which cuBLAS reads with w transposed and x as stored.
// Epilogue decomposition: a 1-D grid-stride loop, one output element per thread per step.
// With set_linear_backend(LinearBackend::Ours) our GEMM (kernels/cuda/gemm.cu) runs instead,
// with the epilogue fused into its store; Auto and Cublas take the cuBLAS path.
//
// cross_entropy: a group of threads owns one row of logits, one warp when C <= kWarpRowMax, the
// whole block otherwise. Its threads stride over the row (neighbouring threads read neighbouring
// logits, so loads coalesce) and keep a running (max, sum of exp) merged online as in softmax,
// plus, for label smoothing, sum_c w_c (z_c - z_0) and sum_c w_c, shifted by the row's first
// logit so a large common offset cannot cancel; the group merges its states with shuffles (and
// shared memory across warps) and its first thread writes loss, lse and the sample weight.
// backward: the same groups, one pass over the row writing p * coef - ... (kernels/nn_math.h);
// the probabilities never go to memory. With weights and smoothing each group first sums the
// class weights once.
// A target outside [0, C) (not ignored) cannot be reported without a host sync: that sample's
// loss and sample weight become NaN, and its gradient row NaN.
#include <limits>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/nn_math.h"

namespace nn::cuda {
namespace {

// ---- linear ---------------------------------------------------------------------------------

int gemm_int(int64_t v, const char* what) {
  NN_CHECK(v <= std::numeric_limits<int>::max(), ValueError, "linear: ", what, " ", v,
           " exceeds the cuBLAS integer range");
  return static_cast<int>(v);
}

// acc [m, n] (G: float32 for the half types, else T) = x [m, k] w [n, k]^T.
void gemm_xwt(Tensor& acc, const Tensor& x, const Tensor& w, cudaStream_t stream) {
  const int64_t m = x.size(0), k = x.size(1), n = w.size(0);
  if (k == 0) {  // an empty inner product; cuBLAS may reject the zero leading dimensions
    NN_CUDA_CHECK(cudaMemsetAsync(acc.data_ptr(), 0, acc.nbytes(), stream));
    return;
  }
  cudaDataType_t in_type = CUDA_R_32F, out_type = CUDA_R_32F;
  cublasComputeType_t compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  switch (x.dtype()) {
    case Dtype::Float64:
      in_type = out_type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      break;
    case Dtype::BFloat16:
      in_type = CUDA_R_16BF;
      compute = CUBLAS_COMPUTE_32F;
      break;
    case Dtype::Float16:
      in_type = CUDA_R_16F;
      compute = CUBLAS_COMPUTE_32F;
      break;
    default:
      break;
  }
  const float alpha_f = 1.0f, beta_f = 0.0f;
  const double alpha_d = 1.0, beta_d = 0.0;
  const bool dbl = compute == CUBLAS_COMPUTE_64F;
  const void* alpha = dbl ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = dbl ? static_cast<const void*>(&beta_d) : &beta_f;
  const int cm = gemm_int(n, "output features"), cn = gemm_int(m, "rows"),
            ck = gemm_int(k, "input features");
  cublasHandle_t handle = cublas_handle(acc.device().index);
  NN_CUBLAS_CHECK(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
  NN_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, cm, cn, ck, alpha,  //
                               w.data_ptr(), in_type, ck,                            // w^T
                               x.data_ptr(), in_type, ck,                            // x^T
                               beta, acc.data_ptr(), out_type, cm, compute, CUBLAS_GEMM_DEFAULT));
}

// Our GEMM with the epilogue fused (kernels/cuda/gemm.cuh), when the switch (kernels/nn_ops.h)
// asks for it: the tensor-core kernel where it takes the problem, else the SIMT kernel (float64,
// float32 without TF32). False when neither runs this call, and the cuBLAS path does.
bool linear_ours(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& w, const Tensor& b,
                 Activation act, cudaStream_t stream) {
  if (linear_backend() != LinearBackend::Ours) return false;
  GemmProblem p;
  p.m = x.size(0);
  p.k = x.size(1);
  p.n = w.size(0);
  p.dtype = x.dtype();
  p.a = x.data_ptr();
  p.lda = p.k;
  p.b = w.data_ptr();  // [N, K]: op(B) = w^T
  p.ldb = p.k;
  p.trans_b = true;
  p.d = out.data_ptr();
  p.ldd = p.n;
  GemmEpilogue e;
  e.bias = b.defined() ? b.data_ptr() : nullptr;
  e.act = act;
  e.pre = pre.defined() ? pre.data_ptr() : nullptr;
  e.out_dtype = out.dtype();
  if (gemm_tensor_core_supports(p, e))
    gemm_tensor_core(p, e, stream);
  else if (gemm_simt_supports(p, e))
    gemm_simt(p, e, stream);
  else
    return false;
  return true;
}

template <class T, class G, Activation Act>
__global__ void bias_activation_kernel(int64_t total, int64_t n, const G* acc, const T* bias,
                                       T* out, T* pre) {
  using A = acc_t<T>;
  // acc may be out or pre itself: each element is read before it is written, by one thread.
  for (int64_t i = global_thread(); i < total; i += grid_threads()) {
    A z = static_cast<A>(acc[i]);
    if (bias) z += static_cast<A>(bias[i % n]);
    if (pre) pre[i] = T(z);
    out[i] = T(math::activation_fn<Act, A>(z));
  }
}

// ---- cross-entropy --------------------------------------------------------------------------

constexpr int64_t kWarpRowMax = 1024;  // rows up to this many classes get a warp, longer a block

template <class A>
struct CeState {
  A max;   // running maximum
  A sum;   // sum of exp(z - max)
  A wz;    // sum of w_c (z_c - z_0)   (label smoothing only)
  A wsum;  // sum of w_c               (label smoothing only)
};

template <class A>
__device__ NN_INLINE CeState<A> ce_merge(const CeState<A>& a, const CeState<A>& b) {
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const A m = b.max > a.max ? b.max : a.max;
  CeState<A> r{m, A(0), a.wz + b.wz, a.wsum + b.wsum};
  // Both empty or all -inf so far: nothing to rescale (and -inf - -inf would be NaN).
  if (m != kNegInf) r.sum = a.sum * math::exp_(a.max - m) + b.sum * math::exp_(b.max - m);
  return r;
}

template <class T>
struct CeArgs {
  using A = acc_t<T>;
  const T* logits;
  int64_t ld;  // row stride of logits
  const int64_t* target;
  const T* weight;  // null: every class weighs 1
  int64_t classes;
  int64_t ignore_index;
  A eps;
  bool smooth;  // eps > 0
};

template <class T>
__device__ NN_INLINE acc_t<T> class_weight(const CeArgs<T>& a, int64_t c) {
  using A = acc_t<T>;
  return a.weight ? static_cast<A>(a.weight[c]) : A(1);
}

template <class T, int kThreads>
__global__ void __launch_bounds__(kBlockSize)
    cross_entropy_kernel(CeArgs<T> args, int64_t rows, T* loss, acc_t<T>* lse, T* sample_weight) {
  using A = acc_t<T>;
  using State = CeState<A>;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  constexpr A kNegInf = -std::numeric_limits<A>::infinity();
  const int lane = threadIdx.x % kThreads;
  const int64_t classes = args.classes;
  // The row loop bound is uniform across a group, so the group reduction never diverges.
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const T* z = args.logits + row * args.ld;
    const A z0 = static_cast<A>(z[0]);
    State s{kNegInf, A(0), A(0), A(0)};
    for (int64_t c = lane; c < classes; c += kThreads) {
      const A v = static_cast<A>(z[c]);
      if (v > s.max) {
        // exp(v - v) is 1, or NaN for v = inf, where the CPU's exp(z - max) is NaN too.
        s.sum = s.sum * math::exp_(s.max - v) + math::exp_(v - v);
        s.max = v;
      } else if (v != kNegInf) {  // NaN lands here and propagates
        s.sum += math::exp_(v - s.max);
      }
      if (args.smooth) {
        const A wc = class_weight(args, c);
        s.wz += wc * (v - z0);
        s.wsum += wc;
      }
    }
    s = group_allreduce<kThreads>(s, [](const State& a, const State& b) { return ce_merge(a, b); });
    if (lane == 0) {
      const A row_lse = s.max + math::log_(s.sum);
      if (lse) lse[row] = row_lse;
      const int64_t y = args.target[row];
      A l = A(0), wy = A(0);
      if (y != args.ignore_index) {
        if (y < 0 || y >= classes) {
          l = wy = std::numeric_limits<A>::quiet_NaN();
        } else {
          wy = class_weight(args, y);
          l = (A(1) - args.eps) * wy * (row_lse - static_cast<A>(z[y]));
          // sum_c w_c (lse - z_c) = W (lse - z_0) - sum_c w_c (z_c - z_0)
          if (args.smooth) l += args.eps / A(classes) * (s.wsum * (row_lse - z0) - s.wz);
        }
      }
      loss[row] = T(l);
      if (sample_weight) sample_weight[row] = T(wy);
    }
  }
}

template <class T, int kThreads>
__global__ void __launch_bounds__(kBlockSize)
    cross_entropy_backward_kernel(CeArgs<T> args, int64_t rows, const T* grad_loss,
                                  const acc_t<T>* lse, T* grad) {
  using A = acc_t<T>;
  constexpr int kRowsPerBlock = kBlockSize / kThreads;
  const int lane = threadIdx.x % kThreads;
  const int64_t classes = args.classes;
  const A smooth = args.eps / A(classes);
  // W = sum of the class weights, the same for every row: summed once per group.
  A wsum = A(classes);
  if (args.smooth && args.weight) {
    A part = A(0);
    for (int64_t c = lane; c < classes; c += kThreads) part += static_cast<A>(args.weight[c]);
    wsum = group_allreduce<kThreads>(part, [](A a, A b) { return a + b; });
  }
  for (int64_t row = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / kThreads; row < rows;
       row += int64_t(gridDim.x) * kRowsPerBlock) {
    const T* z = args.logits + row * args.ld;
    T* out = grad + row * classes;
    const int64_t y = args.target[row];
    if (y == args.ignore_index) {
      for (int64_t c = lane; c < classes; c += kThreads) out[c] = T(A(0));
      continue;
    }
    if (y < 0 || y >= classes) {
      for (int64_t c = lane; c < classes; c += kThreads)
        out[c] = T(std::numeric_limits<A>::quiet_NaN());
      continue;
    }
    const A g = static_cast<A>(grad_loss[row]), row_lse = lse[row];
    const A target_coef = (A(1) - args.eps) * class_weight(args, y);
    const A coef = target_coef + smooth * wsum;
    for (int64_t c = lane; c < classes; c += kThreads) {
      const A p = math::exp_(static_cast<A>(z[c]) - row_lse);
      out[c] = T(g * math::cross_entropy_grad<A>(p, c == y, class_weight(args, c), coef,
                                                 target_coef, smooth));
    }
  }
}

template <class T>
CeArgs<T> ce_args(const Tensor& logits, const Tensor& target, const Tensor& weight,
                  double label_smoothing, int64_t ignore_index) {
  CeArgs<T> a;
  a.logits = logits.data<T>();
  a.ld = logits.stride(0);
  a.target = target.data<int64_t>();
  a.weight = weight.defined() ? weight.data<T>() : nullptr;
  a.classes = logits.size(1);
  a.ignore_index = ignore_index;
  a.eps = static_cast<acc_t<T>>(label_smoothing);
  a.smooth = label_smoothing > 0.0;
  return a;
}

// Calls launch.template operator()<kThreads>(grid) with the group size the row length wants.
template <class F>
void launch_rows(int64_t rows, int64_t classes, F&& launch) {
  if (classes <= kWarpRowMax)
    launch.template operator()<kWarpSize>(grid_for(rows, kBlockSize / kWarpSize));
  else
    launch.template operator()<kBlockSize>(grid_for(rows, 1));
}

}  // namespace

void linear(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& w, const Tensor& b,
            Activation act) {
  const int64_t m = x.size(0), n = w.size(0);
  DeviceScope scope(out);
  if (linear_ours(out, pre, x, w, b, act, scope.stream())) return;
  visit_floating(out.dtype(), "linear", [&]<class T>() {
    using A = acc_t<T>;
    constexpr bool kExact = std::is_same_v<T, A>;
    using G = std::conditional_t<kExact, T, float>;  // what the GEMM writes
    Tensor acc = kExact ? (pre.defined() ? pre : out)
                        : empty({m, n}, TensorOptions{Dtype::Float32, out.device()});
    gemm_xwt(acc, x, w, scope.stream());
    const G* a = acc.data<G>();
    const T* bias = b.defined() ? b.data<T>() : nullptr;
    T* p = pre.defined() ? pre.data<T>() : nullptr;
    const int64_t total = m * n;
    visit_activation(act, [&]<Activation Act>() {
      bias_activation_kernel<T, G, Act>
          <<<grid_for(total, kBlockSize), kBlockSize, 0, scope.stream()>>>(total, n, a, bias,
                                                                           out.data<T>(), p);
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

void cross_entropy(Tensor& loss, Tensor& lse, Tensor& sample_weight, const Tensor& logits,
                   const Tensor& target, const Tensor& weight, double label_smoothing,
                   int64_t ignore_index) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  DeviceScope scope(loss);
  visit_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    using A = acc_t<T>;
    const CeArgs<T> args = ce_args<T>(logits, target, weight, label_smoothing, ignore_index);
    T* l = loss.data<T>();
    A* ls = lse.defined() ? lse.data<A>() : nullptr;
    T* sw = sample_weight.defined() ? sample_weight.data<T>() : nullptr;
    launch_rows(rows, classes, [&]<int kThreads>(unsigned grid) {
      cross_entropy_kernel<T, kThreads>
          <<<grid, kBlockSize, 0, scope.stream()>>>(args, rows, l, ls, sw);
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

void cross_entropy_backward(Tensor& grad, const Tensor& grad_loss, const Tensor& logits,
                            const Tensor& target, const Tensor& lse, const Tensor& weight,
                            double label_smoothing, int64_t ignore_index) {
  const int64_t rows = logits.size(0), classes = logits.size(1);
  DeviceScope scope(grad);
  visit_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    using A = acc_t<T>;
    const CeArgs<T> args = ce_args<T>(logits, target, weight, label_smoothing, ignore_index);
    const T* gl = grad_loss.data<T>();
    const A* ls = lse.data<A>();
    T* g = grad.data<T>();
    launch_rows(rows, classes, [&]<int kThreads>(unsigned grid) {
      cross_entropy_backward_kernel<T, kThreads>
          <<<grid, kBlockSize, 0, scope.stream()>>>(args, rows, gl, ls, g);
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace nn::cuda
