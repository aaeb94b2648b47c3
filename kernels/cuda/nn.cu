// CUDA rows of the fused linear layer: linear and linear_backward (cross-entropy is in
// kernels/cuda/cross_entropy.cu).
//
// linear: one cuBLAS GEMM (cublasGemmEx) computes x w^T, then one fused kernel adds the bias,
// applies the activation and writes y (and the pre-activation when asked). The GEMM writes its
// result straight into pre (or y) for float32 and float64; the half types accumulate and write
// float32 into a scratch buffer, so y is rounded once, as on the CPU. Row-major y [M, N] is the
// column-major y^T = w x^T, which cuBLAS reads with w transposed and x as stored.
// Epilogue decomposition: a 1-D grid-stride loop, one output element per thread per step.
// With set_linear_backend(LinearBackend::Ours) our GEMM (kernels/cuda/gemm.cu) runs instead,
// with the epilogue fused into its store; Auto and Cublas take the cuBLAS path.
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

void linear_backward(LinearGrads&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                     Activation) {
  NN_THROW(ValueError, "linear_backward: the CUDA row is being written");  // placeholder
}

}  // namespace nn::cuda
