// The CPU backend's worker threads. A small pool of threads that sleep on a condition variable
// between parallel loops, rather than OpenMP's: libgomp's workers spin after each region, and
// on a machine with few cores they then fight OpenBLAS's own threads for the CPU (a training step
// on 2 cores ran 30x slower that way).
//
// Threads: NN_NUM_THREADS, else OMP_NUM_THREADS, else the hardware's count, read once.
// A loop started from inside a parallel loop, or while another thread's loop holds the pool,
// runs on the calling thread.
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

}  // namespace nn::cpu
