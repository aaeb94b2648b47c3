// cuBLASLt GEMMs with their fused epilogues: linear's anchor backend (LinearBackend::Cublas),
// against which our own GEMM (kernels/cuda/gemm.cuh) is timed and tested. Internal to
// kernels/cuda/ (and the GPU tests); plain C++ so host-only translation units may include it.
//
// The problem is described in the row-major terms of GemmProblem (batch 1, no prologue):
//   D [M, N] = op(A) op(B), then the epilogue:
//   - Bias:            D += bias[j]                         (bias [N], D's dtype)
//   - Relu/ReluBias:   D = relu(acc (+ bias))
//   - GeluTanh*:       D = gelu_tanh(acc (+ bias)); the Aux forms also write the pre-activation
//                      acc (+ bias) to `aux` ([M, N] row-major, leading dimension ld_aux, which
//                      cuBLASLt wants divisible by 8, and D's dtype): cuBLASLt's GELU is the tanh
//                      approximation, so it serves Activation::GeluTanh only;
//   - RowSumsOfA:      row_sums[i] = sum_k op(A)(i, k) (D's dtype): in cuBLASLt's column-major
//                      view (D^T = op(B)^T op(A)^T) that is the BGRADB epilogue, which gives
//                      linear's bias gradient from the dW GEMM.
// out_dtype is D's dtype: the input dtype, or float32 for bfloat16/float16 inputs (then only
// Default is asked for: the caller finishes with one rounding pass). float32 inputs use TF32
// tensor cores while nn::allow_tf32().
//
// Matmul descriptors, layouts and the chosen algorithm are cached per problem (shape, leading
// dimensions, transposes, dtypes, epilogue and operand alignment), per thread and device, so a
// steady-state call only sets the epilogue pointers and launches; the workspace is the
// per-stream cuBLASLt workspace from the caching allocator (core/cuda_context.h), never a
// cudaMalloc inside a step. Nothing synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/gemm.cuh"

namespace nn::cuda {

enum class LtEpilogue : uint8_t {
  Default,
  Bias,
  Relu,
  ReluBias,
  GeluTanh,
  GeluTanhBias,
  GeluTanhAux,
  GeluTanhAuxBias,
  RowSumsOfA,
};

struct LtEpilogueArgs {
  LtEpilogue kind = LtEpilogue::Default;
  const void* bias = nullptr;  // [N]: Bias, ReluBias, GeluTanh*Bias
  void* aux = nullptr;         // [M, N], leading dimension ld_aux: GeluTanhAux*
  int64_t ld_aux = 0;
  void* row_sums = nullptr;  // [M]: RowSumsOfA
  Dtype out_dtype = Dtype::Float32;
};

// The epilogue that fuses `act` (+ bias when has_bias) for linear's forward, whether the
// pre-activation is wanted too (with_aux), or Default when cuBLASLt has none for it.
LtEpilogue lt_forward_epilogue(Activation act, bool has_bias, bool with_aux);

// Enqueues the GEMM with its epilogue on `stream` (the device must be current). Returns false,
// having enqueued nothing, when cuBLASLt offers no algorithm for this problem and epilogue (an
// unsupported epilogue/dtype pairing, an aux leading dimension it rejects, ...): the caller then
// runs a plainer form. Throws ValueError for a batched or prologue problem, CudaError when a
// cuBLASLt call fails otherwise.
bool cublaslt_gemm(const GemmProblem& p, const LtEpilogueArgs& e, cudaStream_t stream);

// Plans cached for the calling thread (for tests).
int64_t cublaslt_plan_count();

}  // namespace nn::cuda
