// Shared pieces of the kernel benchmarks: the devices to run on, and a timing loop that counts
// GPU work correctly (launch a batch, synchronize, stop the clock) and reports FLOP/s and bytes/s
// as Google Benchmark rate counters. Built against Google Benchmark when it is found, else
// against the built-in stand-in bench/mini_benchmark.h (NN_BENCH_BUILTIN_HARNESS, set by CMake).
#pragma once

#ifdef NN_BENCH_BUILTIN_HARNESS
#include "bench/mini_benchmark.h"
#else
#include <benchmark/benchmark.h>
#endif

#include <chrono>
#include <string>

#include "nn.h"

namespace nn::bench {

// Whether `device` can run here; otherwise marks the benchmark skipped with the reason.
inline bool usable(benchmark::State& state, const Device& device) {
  if (device.is_cpu()) return true;
  if (!cuda::built_with_cuda()) {
    state.SkipWithError("skipped: library built without CUDA (NN_CUDA=OFF)");
    return false;
  }
  if (!cuda::available()) {
    state.SkipWithError("skipped: no CUDA GPU present");
    return false;
  }
  return true;
}

inline std::string device_label(const Device& device) {
  return device.is_cuda() ? cuda::properties(device.index).name : std::string("cpu");
}

// Runs `op` for every benchmark iteration with manual timing. On CUDA one iteration is a batch
// of launches followed by a synchronize, so launch latency overlaps as in a real model and the
// clock stops only when the GPU is done. `flop` and `bytes` are per call of `op` (0: no counter).
template <class Op>
void timed_loop(benchmark::State& state, const Device& device, double flop, double bytes, Op&& op) {
  const int batch = device.is_cuda() ? 10 : 1;
  op();  // warm-up: caches, allocator pool, cuBLAS handles
  if (device.is_cuda()) cuda::synchronize(device.index);
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < batch; ++i) op();
    if (device.is_cuda()) cuda::synchronize(device.index);
    std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    state.SetIterationTime(elapsed.count());
  }
  const double calls = double(state.iterations()) * batch;
  using benchmark::Counter;
  if (flop > 0) state.counters["FLOP"] = Counter(flop * calls, Counter::kIsRate, Counter::kIs1000);
  if (bytes > 0) {
    state.counters["bytes"] = Counter(bytes * calls, Counter::kIsRate, Counter::kIs1000);
  }
  state.counters["calls"] = calls;
  state.SetLabel(device_label(device));
}

// Runs the body, turning a library error into a skipped benchmark with its message.
template <class Body>
void guarded(benchmark::State& state, Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}

// The main() tail every benchmark program shares, after it has registered its cases.
inline int run_registered(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace nn::bench
