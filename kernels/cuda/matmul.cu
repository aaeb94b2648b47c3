// CUDA batched matmul on cuBLAS: out[B, m, n] = op(a) x op(b), one cublasGemmStridedBatchedEx
// on the device's current stream. float32 accumulates in float32 (TF32 tensor cores only when
// nn::allow_tf32()), float64 in float64, bfloat16 and float16 read and write 16-bit values
// and accumulate in float32.
//
// cuBLAS is column-major; our operands are row-major. A row-major r x c matrix with leading
// dimension ld is, unchanged in memory, the column-major c x r matrix (its transpose). So the
// row-major product C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T:
// cuBLAS's first operand is b, its second a, and its (m, n) are our (n, m).
#include <limits>

#include "core/tensor.h"
#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"

namespace nn::cuda {
namespace {

// A [batch, rows, cols] operand as cuBLAS reads it: matrices `batch_stride` apart (0 when
// broadcast), rows `ld` apart, elements of a row adjacent.
struct Operand {
  const void* data = nullptr;
  int64_t batch_stride = 0;
  int64_t ld = 1;
  Tensor packed;  // keeps a packed copy alive until the GEMM is enqueued
};

// Reads t in place when cuBLAS can (unit column stride, rows that do not overlap); otherwise
// packs it into a dense tensor first (one matrix when the batch is broadcast). The copy is
// stream-ordered before the GEMM, and the caching allocator keeps its memory from being reused
// by another stream until then.
Operand prepare(const Tensor& t) {
  const int64_t batch = t.size(0), rows = t.size(1), cols = t.size(2);
  const int64_t s0 = batch <= 1 ? 0 : t.stride(0), s1 = t.stride(1), s2 = t.stride(2);
  const int64_t dense_ld = cols > 1 ? cols : 1;
  Operand op;
  if ((s2 == 1 || cols <= 1) && (rows <= 1 || s1 >= dense_ld)) {
    op.data = t.data_ptr();
    op.batch_stride = s0;
    op.ld = rows <= 1 ? dense_ld : s1;
    return op;
  }
  const Tensor src = s0 == 0 ? t.narrow(0, 0, 1) : t;
  op.packed = empty(src.shape(), TensorOptions{t.dtype(), t.device()});
  cuda::copy(op.packed, src);
  op.data = op.packed.data_ptr();
  op.batch_stride = s0 == 0 ? 0 : rows * cols;
  op.ld = dense_ld;
  return op;
}

int blas_int(int64_t v, const char* what) {
  NN_CHECK(v <= std::numeric_limits<int>::max(), ValueError, "matmul: ", what, " ", v,
           " exceeds the cuBLAS integer range");
  return static_cast<int>(v);
}

// cuBLAS data type, compute type and scale type (alpha, beta) of one dtype.
struct GemmTypes {
  cudaDataType_t data;
  cublasComputeType_t compute;
  bool double_scale;
};

GemmTypes gemm_types(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return {CUDA_R_32F, allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, false};
    case Dtype::Float64:
      return {CUDA_R_64F, CUBLAS_COMPUTE_64F, true};
    case Dtype::BFloat16:
      return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, false};
    case Dtype::Float16:
      return {CUDA_R_16F, CUBLAS_COMPUTE_32F, false};
    default:
      break;
  }
  NN_THROW(DtypeError, "matmul: dtype ", dtype_name(d),
           " is not supported, expected float32, float64, bfloat16 or float16");
}

}  // namespace

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  NN_CHECK(out.dim() == 3 && a.dim() == 3 && b.dim() == 3, ShapeError,
           "matmul (cuda): expected 3-D [batch, rows, cols] tensors, got ", shape_str(out.shape()),
           ", ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  NN_CHECK(out.is_contiguous(), ValueError,
           "matmul (cuda): output must be contiguous, got strides ", shape_str(out.strides()));
  const GemmTypes types = gemm_types(out.dtype());
  const int64_t batch = out.size(0), m = out.size(1), n = out.size(2);
  const int64_t k = trans_a ? a.size(1) : a.size(2);
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // an empty inner product is 0; cuBLAS may reject the zero leading dimensions
    cuda::fill(out, 0.0);
    return;
  }
  const Operand pa = prepare(a), pb = prepare(b);

  // A shared right operand and a left operand whose batches follow one another row by row
  // (a Linear layer on [B, m, k]) is one tall GEMM rather than `batch` small ones.
  const bool fold = batch > 1 && !trans_a && pb.batch_stride == 0 && pa.batch_stride == m * pa.ld;
  const int64_t calls = fold ? 1 : batch, rows = fold ? batch * m : m;

  const int cm = blas_int(n, "columns"), cn = blas_int(rows, "rows"),
            ck = blas_int(k, "inner size");
  const int lda = blas_int(pb.ld, "leading dimension"), ldb = blas_int(pa.ld, "leading dimension");
  const int count = blas_int(calls, "batch");
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;

  const float alpha_f = 1.0f, beta_f = 0.0f;
  const double alpha_d = 1.0, beta_d = 0.0;
  const void* alpha = types.double_scale ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = types.double_scale ? static_cast<const void*>(&beta_d) : &beta_f;

  DeviceScope scope(out);
  cublasHandle_t handle = cublas_handle(out.device().index);
  NN_CUBLAS_CHECK(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));  // alpha, beta above
  NN_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      handle, op_first, op_second, cm, cn, ck, alpha,                       //
      pb.data, types.data, lda, static_cast<long long>(pb.batch_stride),    // first: b
      pa.data, types.data, ldb, static_cast<long long>(pa.batch_stride),    // second: a
      beta, out.data_ptr(), types.data, cm, static_cast<long long>(m * n),  // C^T, ld = n
      count, types.compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace nn::cuda
