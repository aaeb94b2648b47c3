// CUDA rows of the fused linear layer: linear and linear_backward (cross-entropy is in
// kernels/cuda/cross_entropy.cu). Each GEMM runs on one of two implementations, picked per call
// by the switch of kernels/nn_ops.h: Ours forces our GEMM (kernels/cuda/gemm.cuh) wherever it
// takes the problem, Cublas forces cuBLASLt (kernels/cuda/cublaslt.cuh), and Auto asks the
// autotune cache (kernels/cuda/linear_autotune.h), which times both the first time a problem is
// seen.
//
// Forward, ours: one GEMM with bias, activation and the pre-activation fused into its store.
// Forward, cuBLASLt: one GEMM with its own epilogue where it has the activation (bias; relu,
// whose backward reads y; the tanh GELU, with the pre-activation from its aux output), else a
// GEMM into an accumulator (the output itself for float32/float64, a float32 scratch for the
// half types, so y is rounded once) and one launch_bias_activation pass
// (kernels/cuda/bias_act.cuh). Backward, ours: dx = dY' w and dW = dY'^T x as GEMMs whose A operand
// is grad_y with the activation's derivative applied as it is staged (the GEMM prologue): dY' never
// goes to memory. db is fused into the dW GEMM (row sums of its A operand, taken by the blocks of
// its first N tile); without dW it is one column-sum pass that applies act' itself. Backward,
// cuBLASLt: one activation_backward pass writes dY' (shared by both GEMMs), then plain cuBLASLt
// GEMMs; db comes from the dW GEMM's BGRADB epilogue where cuBLASLt offers it, else from the
// column-sum pass over dY'.
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cuda/bias_act.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cublaslt.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/linear_autotune.h"
#include "kernels/nn_math.h"

namespace nn::cuda {
namespace {

// ---- choosing an implementation -------------------------------------------------------------

// Whether our GEMM (tensor-core or SIMT kernel) takes the problem.
bool ours_supports(const GemmProblem& p, const GemmEpilogue& e) {
  return gemm_tensor_core_supports(p, e) || gemm_simt_supports(p, e);
}

void run_ours(const GemmProblem& p, const GemmEpilogue& e, cudaStream_t stream) {
  if (gemm_tensor_core_supports(p, e))
    gemm_tensor_core(p, e, stream);
  else
    gemm_simt(p, e, stream);
}

// The implementation of one GEMM of linear: the forced one (Ours only where our GEMM takes the
// problem), or the autotuned one, which times `run` the first time the key is seen.
LinearImpl choose(const LinearTuneKey& key, bool ours_ok, cudaStream_t stream,
                  const std::function<void(LinearImpl)>& run) {
  if (!ours_ok) return LinearImpl::Cublas;
  switch (linear_backend()) {
    case LinearBackend::Ours:
      return LinearImpl::Ours;
    case LinearBackend::Cublas:
      return LinearImpl::Cublas;
    case LinearBackend::Auto:
      break;
  }
  return linear_autotune(key, stream, run);
}

LinearTuneKey tune_key(const Tensor& t, int64_t m, int64_t n, int64_t k, Activation act,
                       bool has_bias, bool saved, LinearGemm gemm) {
  LinearTuneKey key;
  key.device = t.device().index;
  key.m = m;
  key.n = n;
  key.k = k;
  key.dtype = t.dtype();
  key.tf32 = t.dtype() == Dtype::Float32 && allow_tf32();
  key.act = act;
  key.has_bias = has_bias;
  key.saved = saved;
  key.gemm = gemm;
  return key;
}

// ---- forward --------------------------------------------------------------------------------

// y = x w^T as a row-major GemmProblem writing d with element type out_dtype.
GemmProblem forward_problem(const Tensor& x, const Tensor& w, void* d) {
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
  p.d = d;
  p.ldd = p.n;
  return p;
}

// The cuBLASLt forward; false when cuBLASLt cannot run even the plain GEMM.
bool forward_cublas(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& w, const Tensor& b,
                    Activation act, cudaStream_t stream) {
  const bool has_bias = b.defined();
  const bool exact = out.dtype() == Dtype::Float32 || out.dtype() == Dtype::Float64;
  const LtEpilogue fused = lt_forward_epilogue(act, has_bias, pre.defined());
  // Everything fused into the GEMM: an epilogue for the activation, or nothing to apply at all.
  if (fused != LtEpilogue::Default || (act == Activation::None && !has_bias)) {
    LtEpilogueArgs e;
    e.kind = fused;
    e.bias = has_bias ? b.data_ptr() : nullptr;
    e.aux = pre.defined() ? pre.data_ptr() : nullptr;
    e.ld_aux = out.size(1);
    e.out_dtype = out.dtype();
    if (cublaslt_gemm(forward_problem(x, w, out.data_ptr()), e, stream)) return true;
  }
  // A plain GEMM into the accumulator, then one bias + activation pass.
  Tensor acc = exact ? (pre.defined() ? pre : out)
                     : empty(out.shape(), TensorOptions{Dtype::Float32, out.device()});
  LtEpilogueArgs plain;
  plain.out_dtype = acc.dtype();
  if (!cublaslt_gemm(forward_problem(x, w, acc.data_ptr()), plain, stream)) return false;
  BiasActArgs a;
  a.dtype = out.dtype();
  a.in_dtype = acc.dtype();
  a.in = acc.data_ptr();
  a.bias = has_bias ? b.data_ptr() : nullptr;
  a.out = out.data_ptr();
  a.pre = pre.defined() ? pre.data_ptr() : nullptr;
  a.outer = out.size(0);
  a.channels = out.size(1);
  a.inner = 1;
  a.act = act;
  launch_bias_activation(a, stream);
  return true;
}

// ---- backward -------------------------------------------------------------------------------

// db[j] = sum_i act'(g[i, j]; s[i, j]) over the rows of g [m, n] (s ignored for None).
// Decomposition: a block owns kColsPerBlock neighbouring columns (one warp's width, so a warp
// reads 32 neighbouring elements of a row); its kRowLanes warps take every kRowLanes-th row,
// accumulate in registers and are summed through shared memory in a fixed order.
constexpr int kColsPerBlock = kWarpSize, kRowLanes = kBlockSize / kWarpSize;

template <class T, Activation Act>
__global__ void __launch_bounds__(kBlockSize)
    column_sums_kernel(int64_t m, int64_t n, const T* g, const T* s, T* db) {
  using A = acc_t<T>;
  __shared__ A partial[kRowLanes][kColsPerBlock];
  const int lane = threadIdx.x % kColsPerBlock, row_lane = threadIdx.x / kColsPerBlock;
  const int64_t col = int64_t(blockIdx.x) * kColsPerBlock + lane;
  A sum = A(0);
  if (col < n) {
    for (int64_t r = row_lane; r < m; r += kRowLanes) {
      const int64_t i = r * n + col;
      sum += math::activation_grad<Act, A>(static_cast<A>(g[i]),
                                           Act == Activation::None ? A(0) : static_cast<A>(s[i]));
    }
  }
  partial[row_lane][lane] = sum;
  __syncthreads();
  if (row_lane == 0 && col < n) {
    A total = partial[0][lane];
#pragma unroll
    for (int k = 1; k < kRowLanes; ++k) total += partial[k][lane];
    db[col] = T(total);
  }
}

void column_sums(Tensor& db, const Tensor& g, const Tensor& s, Activation act,
                 cudaStream_t stream) {
  const int64_t m = g.size(0), n = g.size(1);
  visit_floating(db.dtype(), "linear_backward", [&]<class T>() {
    visit_activation(act, [&]<Activation Act>() {
      const T* sp = Act == Activation::None ? nullptr : s.data<T>();
      column_sums_kernel<T, Act>
          <<<static_cast<unsigned>(ceil_div(n, kColsPerBlock)), kBlockSize, 0, stream>>>(
              m, n, g.data<T>(), sp, db.data<T>());
      NN_CUDA_CHECK_LAUNCH();
    });
  });
}

// dx [m, k] = op(A) w with A = grad_y (or dY') [m, n] and w [n, k].
GemmProblem dx_problem(const Tensor& gy, const Tensor& w, Tensor& dx) {
  GemmProblem p;
  p.m = gy.size(0);
  p.n = w.size(1);
  p.k = w.size(0);
  p.dtype = gy.dtype();
  p.a = gy.data_ptr();
  p.lda = gy.size(1);
  p.b = w.data_ptr();
  p.ldb = w.size(1);
  p.d = dx.data_ptr();
  p.ldd = dx.size(1);
  return p;
}

// dW [n, k] = op(A)^T x with A = grad_y (or dY') [m, n] stored as is (trans_a) and x [m, k].
GemmProblem dw_problem(const Tensor& gy, const Tensor& x, Tensor& dw) {
  GemmProblem p;
  p.m = gy.size(1);
  p.n = x.size(1);
  p.k = gy.size(0);
  p.dtype = gy.dtype();
  p.a = gy.data_ptr();
  p.lda = gy.size(1);
  p.trans_a = true;
  p.b = x.data_ptr();
  p.ldb = x.size(1);
  p.d = dw.data_ptr();
  p.ldd = dw.size(1);
  return p;
}

// Everything one backward call shares: its operands, and dY' once a cuBLASLt GEMM needs it.
struct Backward {
  const Tensor& gy;
  const Tensor& x;
  const Tensor& w;
  const Tensor& saved;
  Activation act;
  cudaStream_t stream;
  Tensor dyp;  // dY' in memory (grad_y itself for None), made on first use

  const Tensor& materialized(bool fresh) {
    if (act == Activation::None) return gy;
    if (!dyp.defined()) dyp = empty(gy.shape(), TensorOptions{gy.dtype(), gy.device()});
    if (fresh || !computed_) {
      cuda::activation_backward(dyp, gy, saved, act);
      computed_ = true;
    }
    return dyp;
  }

  // The prologue form: grad_y staged with act' applied from saved.
  GemmPrologue prologue(void* row_sums) const {
    GemmPrologue pro;
    pro.act = act;
    pro.saved = act == Activation::None ? nullptr : saved.data_ptr();
    pro.a_row_sum = row_sums;
    return pro;
  }

  bool computed_ = false;  // dyp holds dY' of this call
};

GemmEpilogue plain_epilogue(Dtype d) {
  GemmEpilogue e;
  e.out_dtype = d;
  return e;
}

// cuBLASLt's plain GEMM, or ours when cuBLASLt has no algorithm for it.
void cublas_or_ours(const GemmProblem& p, cudaStream_t stream) {
  LtEpilogueArgs e;
  e.out_dtype = p.dtype;
  if (!cublaslt_gemm(p, e, stream)) run_ours(p, plain_epilogue(p.dtype), stream);
}

// dx on the chosen implementation; `fresh` recomputes dY' (every timed run pays for it).
void backward_dx(Backward& bw, Tensor& dx, LinearImpl impl, bool fresh) {
  if (impl == LinearImpl::Ours) {
    GemmProblem p = dx_problem(bw.gy, bw.w, dx);
    p.a_prologue = bw.prologue(nullptr);
    run_ours(p, plain_epilogue(dx.dtype()), bw.stream);
    return;
  }
  cublas_or_ours(dx_problem(bw.materialized(fresh), bw.w, dx), bw.stream);
}

// dW (and db when defined) on the chosen implementation.
void backward_dw(Backward& bw, Tensor& dw, Tensor& db, LinearImpl impl, bool fresh) {
  if (impl == LinearImpl::Ours) {
    GemmProblem p = dw_problem(bw.gy, bw.x, dw);
    p.a_prologue = bw.prologue(db.defined() ? db.data_ptr() : nullptr);
    run_ours(p, plain_epilogue(dw.dtype()), bw.stream);
    return;
  }
  const Tensor& dyp = bw.materialized(fresh);
  const GemmProblem p = dw_problem(dyp, bw.x, dw);
  if (db.defined()) {
    LtEpilogueArgs e;
    e.kind = LtEpilogue::RowSumsOfA;
    e.row_sums = db.data_ptr();
    e.out_dtype = dw.dtype();
    if (cublaslt_gemm(p, e, bw.stream)) return;
  }
  cublas_or_ours(p, bw.stream);
  if (db.defined()) column_sums(db, dyp, Tensor(), Activation::None, bw.stream);
}

}  // namespace

void linear(Tensor& out, Tensor& pre, const Tensor& x, const Tensor& w, const Tensor& b,
            Activation act) {
  DeviceScope scope(out);
  const cudaStream_t stream = scope.stream();
  GemmProblem p = forward_problem(x, w, out.data_ptr());
  GemmEpilogue e;
  e.bias = b.defined() ? b.data_ptr() : nullptr;
  e.act = act;
  e.pre = pre.defined() ? pre.data_ptr() : nullptr;
  e.out_dtype = out.dtype();
  auto run = [&](LinearImpl impl) {
    if (impl == LinearImpl::Ours || !forward_cublas(out, pre, x, w, b, act, stream))
      run_ours(p, e, stream);
  };
  const LinearTuneKey key =
      tune_key(x, p.m, p.n, p.k, act, b.defined(), pre.defined(), LinearGemm::Forward);
  run(choose(key, ours_supports(p, e), stream, run));
}

void linear_backward(LinearGrads& grads, const Tensor& grad_y, const Tensor& x, const Tensor& w,
                     const Tensor& saved, Activation act) {
  DeviceScope scope(grad_y);
  Backward bw{grad_y, x, w, saved, act, scope.stream(), Tensor(), false};
  const int64_t m = grad_y.size(0), n = grad_y.size(1), k = x.size(1);
  if (grads.dx.defined()) {
    const GemmProblem p = dx_problem(grad_y, w, grads.dx);
    auto run = [&](LinearImpl impl) { backward_dx(bw, grads.dx, impl, true); };
    const LinearTuneKey key = tune_key(x, m, n, k, act, false, false, LinearGemm::BackwardDx);
    backward_dx(bw, grads.dx,
                choose(key, ours_supports(p, plain_epilogue(x.dtype())), bw.stream, run), false);
  }
  if (grads.dw.defined()) {
    const GemmProblem p = dw_problem(grad_y, x, grads.dw);
    auto run = [&](LinearImpl impl) { backward_dw(bw, grads.dw, grads.db, impl, true); };
    const LinearTuneKey key =
        tune_key(x, m, n, k, act, grads.db.defined(), false, LinearGemm::BackwardDw);
    backward_dw(bw, grads.dw, grads.db,
                choose(key, ours_supports(p, plain_epilogue(x.dtype())), bw.stream, run), false);
  } else if (grads.db.defined()) {
    column_sums(grads.db, grad_y, saved, act, bw.stream);
  }
}

}  // namespace nn::cuda
