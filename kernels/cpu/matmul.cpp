// CPU batched matmul on CBLAS (OpenBLAS): sgemm for float32, dgemm for float64; bfloat16 and
// float16 are converted to float32 buffers, multiplied with sgemm and rounded back. An operand
// BLAS cannot read in place (half dtype, a column stride other than 1, overlapping rows) is
// packed into a dense buffer first, once when its batch stride is 0.
// Threads: our pool's, not BLAS's (kernels/cpu/parallel.h). The batch's GEMMs are spread over
// the pool, or, when there are fewer of them than threads, each is cut into blocks of rows (or
// of columns when it is wider than tall); every piece is one single-threaded BLAS call.
// Without CBLAS (NN_BLAS=OFF, or none found) a cache-blocked GEMM of our own stands in.
#if defined(NN_WITH_BLAS)
// cblas.h comes from a SYSTEM include directory: its C99 _Complex types trip -Wpedantic.
#include <cblas.h>
#endif

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/loops.h"

namespace nn::cpu {

namespace {

// A [batch, rows, cols] operand as BLAS sees it: row-major matrices `ld` apart per row and
// `batch_stride` apart per batch (0 when broadcast).
template <class C>
struct Operand {
  const C* base = nullptr;
  int64_t batch_stride = 0;
  int64_t ld = 1;
  std::vector<C> packed;

  const C* matrix(int64_t b) const { return base + b * batch_stride; }
};

template <class C, class T>
Operand<C> prepare(const Tensor& t) {
  const int64_t batch = t.size(0), rows = t.size(1), cols = t.size(2);
  const int64_t s0 = batch <= 1 ? 0 : t.stride(0), s1 = t.stride(1), s2 = t.stride(2);
  const int64_t dense_ld = std::max<int64_t>(cols, 1);
  Operand<C> op;
  const bool unit_cols = s2 == 1 || cols <= 1;
  const bool rows_ok = rows <= 1 || s1 >= dense_ld;
  if (std::is_same_v<T, C> && unit_cols && rows_ok) {
    op.base = reinterpret_cast<const C*>(t.data<T>());
    op.batch_stride = s0;
    op.ld = rows <= 1 ? dense_ld : s1;
    return op;
  }
  const int64_t stored = s0 == 0 ? 1 : batch;
  op.packed.resize(size_t(stored * rows * cols));
  const T* src = t.data<T>();
  C* dst = op.packed.data();
  parallel_for(stored * rows, stored * rows * cols, [&](int64_t begin, int64_t end) {
    for (int64_t br = begin; br < end; ++br) {
      const T* row = src + (br / rows) * s0 + (br % rows) * s1;
      for (int64_t c = 0; c < cols; ++c) dst[br * cols + c] = convert<C>(row[c * s2]);
    }
  });
  op.base = op.packed.data();
  op.batch_stride = s0 == 0 ? 0 : rows * cols;
  op.ld = dense_ld;
  return op;
}

#if defined(NN_WITH_BLAS)
void blas_gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b,
               int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}
void blas_gemm(bool ta, bool tb, int m, int n, int k, const double* a, int lda, const double* b,
               int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, 1.0, a, lda, b, ldb, beta, c, ldc);
}
#else
// C = op(A) op(B) + beta C, row-major, on the calling thread. Within a row of C, k is walked in
// blocks of kGemmKBlock so a block of op(B) rows stays in cache while C's row accumulates.
constexpr int kGemmKBlock = 128;

template <class C>
void blas_gemm(bool ta, bool tb, int m, int n, int k, const C* a, int lda, const C* b, int ldb,
               C beta, C* c, int ldc) {
  for (int64_t i = 0; i < m; ++i) {
    C* crow = c + i * ldc;
    for (int j = 0; j < n; ++j) crow[j] = beta == C(0) ? C(0) : beta * crow[j];
    for (int p0 = 0; p0 < k; p0 += kGemmKBlock) {
      const int p1 = std::min(k, p0 + kGemmKBlock);
      for (int p = p0; p < p1; ++p) {
        const C aip = ta ? a[int64_t(p) * lda + i] : a[i * lda + p];
        if (tb) {
          for (int j = 0; j < n; ++j) crow[j] += aip * b[int64_t(j) * ldb + p];
        } else {
          const C* brow = b + int64_t(p) * ldb;
          for (int j = 0; j < n; ++j) crow[j] += aip * brow[j];
        }
      }
    }
  }
}
#endif

int blas_int(int64_t v, const char* what) {
  NN_CHECK(v <= std::numeric_limits<int>::max(), ValueError, "matmul: ", what, " ", v,
           " exceeds the BLAS integer range");
  return static_cast<int>(v);
}

// Below this many multiply-adds a GEMM stays on one thread: waking the pool costs more.
constexpr int64_t kGemmParallelWork = int64_t(1) << 18;
// A GEMM split over threads is cut into row or column blocks that are multiples of this (the
// width of BLAS's register tiles), so no piece ends in a ragged tile that the others lack.
constexpr int64_t kGemmSplitAlign = 16;

// Runs `calls` GEMMs (op(A_i) [m, k] op(B_i) [k, n] into C + i c_stride, dense rows) on the pool:
// whole GEMMs per task when there are enough of them, else each cut into row blocks (or column
// blocks when it is wider than tall), every piece one BLAS call on its task's thread.
template <class C>
void split_gemms(int64_t calls, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                 const Operand<C>& pa, const Operand<C>& pb, C* c, int64_t c_stride) {
  const int64_t threads = max_threads();
  const int64_t work = calls * m * n * k;
  const int64_t lda = pa.ld, ldb = pb.ld;
  if (threads <= 1 || work < kGemmParallelWork) {
    for (int64_t i = 0; i < calls; ++i)
      gemm_on_thread(ta, tb, m, n, k, pa.matrix(i), lda, pb.matrix(i), ldb, C(0), c + i * c_stride,
                     n);
    return;
  }
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n;
  const int64_t want = calls >= threads ? 1 : (threads + calls - 1) / calls;
  const int64_t per_piece = (extent + want - 1) / want;
  const int64_t block = (per_piece + kGemmSplitAlign - 1) / kGemmSplitAlign * kGemmSplitAlign;
  const int64_t pieces = (extent + block - 1) / block;
  run_parallel(calls * pieces, [&](int64_t t) {
    const int64_t i = t / pieces, lo = (t % pieces) * block, hi = std::min(extent, lo + block);
    if (lo >= hi) return;
    const C* a = pa.matrix(i);
    const C* b = pb.matrix(i);
    C* out = c + i * c_stride;
    if (by_rows)
      gemm_on_thread(ta, tb, hi - lo, n, k, ta ? a + lo : a + lo * lda, lda, b, ldb, C(0),
                     out + lo * n, n);
    else
      gemm_on_thread(ta, tb, m, hi - lo, k, a, lda, tb ? b + lo * ldb : b + lo, ldb, C(0), out + lo,
                     n);
  });
}

template <class T>
void matmul_typed(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const int64_t batch = out.size(0), m = out.size(1), n = out.size(2);
  const int64_t k = trans_a ? a.size(1) : a.size(2);
  if (batch == 0 || m == 0 || n == 0) return;
  T* o = out.data<T>();
  if (k == 0) {  // an empty inner product is 0; BLAS may reject the zero leading dimensions
    std::fill(o, o + batch * m * n, T(0.0f));
    return;
  }
  Operand<C> pa = prepare<C, T>(a), pb = prepare<C, T>(b);
  std::vector<C> out_buffer;
  C* c = nullptr;
  if constexpr (std::is_same_v<T, C>) {
    c = o;
  } else {
    out_buffer.resize(size_t(batch * m * n));
    c = out_buffer.data();
  }

  // A shared right operand and a left operand whose batches follow one another row by row
  // (a Linear layer on [B, m, k]) is one tall GEMM rather than `batch` small ones.
  const bool fold = batch > 1 && !trans_a && pb.batch_stride == 0 && pa.batch_stride == m * pa.ld;
  const int64_t calls = fold ? 1 : batch, rows = fold ? batch * m : m;
  // Checked here, before any task starts.
  blas_int(rows, "rows");
  blas_int(n, "columns");
  blas_int(k, "inner size");
  blas_int(pa.ld, "leading dimension");
  blas_int(pb.ld, "leading dimension");
  SerialBlas serial;
  split_gemms(calls, trans_a, trans_b, rows, n, k, pa, pb, c, m * n);

  if constexpr (!std::is_same_v<T, C>) {
    const int64_t total = batch * m * n;
    parallel_for(total, total, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) o[i] = T(c[i]);
    });
  }
}

template <class C>
void gemm_checked(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const C* a, int64_t lda,
                  const C* b, int64_t ldb, C beta, C* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // BLAS may reject the zero leading dimensions of an empty inner product
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == C(0) ? C(0) : beta * c[i * ldc + j];
    return;
  }
  blas_gemm(ta, tb, blas_int(m, "rows"), blas_int(n, "columns"), blas_int(k, "inner size"), a,
            blas_int(lda, "leading dimension"), b, blas_int(ldb, "leading dimension"), beta, c,
            blas_int(ldc, "leading dimension"));
}

}  // namespace

void gemm_on_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  gemm_checked(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void gemm_on_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const double* a,
                    int64_t lda, const double* b, int64_t ldb, double beta, double* c,
                    int64_t ldc) {
  gemm_checked(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void matmul(Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  NN_CHECK(out.dim() == 3 && a.dim() == 3 && b.dim() == 3, ShapeError,
           "matmul (cpu): expected 3-D [batch, rows, cols] tensors, got ", shape_str(out.shape()),
           ", ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  visit_floating(out.dtype(), "matmul",
                 [&]<class T>() { matmul_typed<T>(out, a, b, trans_a, trans_b); });
}

}  // namespace nn::cpu
