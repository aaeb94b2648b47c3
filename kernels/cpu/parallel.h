// The CPU backend's worker threads. A small pool of threads that sleep on a condition variable
// between parallel loops, rather than OpenMP's: libgomp's workers spin after each region, and
// on a machine with few cores they then fight OpenBLAS's own threads for the CPU (a training step
// on 2 cores ran 30x slower that way).
//
// Threads: NN_NUM_THREADS, else OMP_NUM_THREADS, else the hardware's count, read once.
// A loop started from inside a parallel loop, or while another thread's loop holds the pool,
// runs on the calling thread.
//
// BLAS: our pool owns the cores. The GEMM-heavy kernels (conv2d, matmul) split their GEMMs over
// the pool themselves and run each piece with gemm_on_thread under a SerialBlas scope, which
// keeps OpenBLAS on the calling thread: OpenBLAS's own workers otherwise spin in sched_yield
// after each call and take the cores from our pool's tasks (a quarter of a CNN training step on
// 2 cores).
#pragma once

#include <cstdint>
#include <functional>

namespace nn::cpu {

// How many threads a parallel loop started here would use (1 inside a parallel loop).
int max_threads();

// Calls task(c) for every c in [0, chunks), spread over the pool and the calling thread, and
// returns when all are done. An exception from a task is rethrown here (the first one; the
// remaining chunks still run).
void run_parallel(int64_t chunks, const std::function<void(int64_t)>& task);

// While one exists (on any thread), OpenBLAS runs every call on its calling thread; the last one
// to go restores the thread count OpenBLAS had. Process-wide; without OpenBLAS it does nothing.
class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;
};

// c [m, n] = op(a) op(b) + beta c, row-major with leading dimensions lda, ldb, ldc (BLAS's
// convention: op(a) is [m, k], stored [k, m] when trans_a), on the calling thread: CBLAS when the
// library was built with it (call it under a SerialBlas), else a cache-blocked loop of our own.
// Sizes must fit BLAS's int. kernels/cpu/matmul.cpp.
void gemm_on_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm_on_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const double* a,
                    int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace nn::cpu
