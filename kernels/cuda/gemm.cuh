// Our own GEMM with a fused epilogue, the internal interface every variant implements (today a
// tensor-core mma.sync kernel and a SIMT fallback; a Hopper wgmma/TMA kernel for sm_90a is meant
// to be one more implementation of these same two structs). Internal to kernels/cuda/ (and the GPU
// tests); plain C++ so a host-only translation unit may include it.
//
// For every batch index z < batch, with op(A) [M, K] and op(B) [K, N]:
//   acc     = op(A_z) op(B_z)                     (float32 accumulation; float64 for float64)
//   pre_z   = acc + bias                          (only when `pre` is set)
//   D_z     = act(acc + bias) + residual_z        (bias and residual optional)
// rounded once into D's dtype. Layouts (element strides, no byte strides):
//   A: trans_a == false: row-major [M, K], element (i, k) at a[z * batch_stride_a + i * lda + k];
//      trans_a == true:  stored [K, M],    element (i, k) at a[z * batch_stride_a + k * lda + i].
//   B: trans_b == false: row-major [K, N], element (k, j) at b[z * batch_stride_b + k * ldb + j];
//      trans_b == true:  stored [N, K],    element (k, j) at b[z * batch_stride_b + j * ldb + k]
//      (so linear's x w^T is A = x, B = w, trans_b = true).
//   D, residual and pre: row-major [M, N] at d[z * batch_stride_d + i * ldd + j], one layout.
//   bias: [N], shared by all batches. A batch stride of 0 broadcasts that operand.
// A and B have `dtype`; D, bias, residual and pre have the epilogue's out_dtype, which is `dtype`
// or float32 (the optional cast of the output). K == 0 gives acc = 0 (the epilogue still runs).
//
// Operand prologue (linear's backward, GemmPrologue): when a_prologue.act != None, every element
// of A is replaced, as it is staged on chip, by
//   A'(i, k) = math::activation_grad<act>(A(i, k), S(i, k))
// where S (`saved`, `dtype`) is laid out exactly like A (same lda, batch stride and trans_a): with
// A = grad_y and S what activation_saved(act) keeps, op(A') is dY' = grad_y * act'(z), and dY'
// never goes to memory. The half types compute A' in float32 and round it once to `dtype` (the
// tensor cores' input). When a_row_sum is set (batch 1 only), it receives the row sums of op(A')
// in out_dtype, a [M] vector: sum_k op(A')(i, k), accumulated in float32 (float64 for float64) in
// fixed order, written once per row (no atomics, deterministic). With dW = dY'^T x (A = grad_y
// stored [rows, out], trans_a) those row sums are linear's bias gradient.
//
// All calls enqueue on `stream` and never synchronise; the device must be current.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/nn_ops.h"

namespace nn::cuda {

struct GemmPrologue {
  Activation act = Activation::None;  // None: A is used as stored
  const void* saved = nullptr;        // S, laid out like A; needed unless act is None
  void* a_row_sum = nullptr;          // [M] in out_dtype, or null (batch must be 1)
};

struct GemmProblem {
  int64_t m = 0, n = 0, k = 0, batch = 1;
  Dtype dtype = Dtype::Float32;  // of A and B
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  int64_t lda = 0, ldb = 0, ldd = 0;
  int64_t batch_stride_a = 0, batch_stride_b = 0, batch_stride_d = 0;
  bool trans_a = false, trans_b = false;
  GemmPrologue a_prologue;  // applied to A as it is staged (see above)
};

struct GemmEpilogue {
  const void* bias = nullptr;  // [N] or null
  Activation act = Activation::None;
  const void* residual = nullptr;  // laid out like D, or null; added after the activation
  void* pre = nullptr;             // laid out like D, or null: receives acc + bias (for backward)
  Dtype out_dtype = Dtype::Float32;
};

// Whether gemm_tensor_core takes the problem: A/B bfloat16 or float16, or float32 while
// nn::allow_tf32() (TF32 inputs, float32 accumulation); out_dtype the input dtype or float32;
// batch and the number of N tiles within the grid's y/z limits; a_row_sum only with batch 1. Any M,
// N, K and any leading dimension: operands whose base, leading dimension and batch stride are
// 16-byte multiples are staged with 16-byte cp.async, others element by element (correct, slower).
bool gemm_tensor_core_supports(const GemmProblem& p, const GemmEpilogue& e);

// Tensor-core kernel (mma.sync m16n8k16 for the half types, m16n8k8 TF32 for float32).
// Throws ValueError when gemm_tensor_core_supports is false, CudaError on a launch failure.
void gemm_tensor_core(const GemmProblem& p, const GemmEpilogue& e, cudaStream_t stream);

// SIMT fallback for float32 (no TF32) and float64 inputs, same contract and epilogue; out_dtype
// the input dtype or float32. Throws ValueError for other dtypes.
bool gemm_simt_supports(const GemmProblem& p, const GemmEpilogue& e);
void gemm_simt(const GemmProblem& p, const GemmEpilogue& e, cudaStream_t stream);

}  // namespace nn::cuda
