// Shared pieces of the kernel benchmarks: the devices to run on, and a timing loop that counts
// GPU work correctly (a batch of launches between two CUDA events on the stream) and reports
// FLOP/s and bytes/s as Google Benchmark rate counters, plus the median time per call. Built
// against Google Benchmark when it is found, else against the built-in stand-in
// bench/mini_benchmark.h (NN_BENCH_BUILTIN_HARNESS, set by CMake).
#pragma once

#ifdef NN_BENCH_BUILTIN_HARNESS
#include "bench/mini_benchmark.h"
#else
#include <benchmark/benchmark.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

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
// of launches timed by CUDA events on the current stream (the launches overlap as in a real
// model and the clock is the GPU's, not the host's); on the CPU it is one call timed by the host
// clock. `flop` and `bytes` are per call of `op` (0: no counter). Besides the rate counters it
// sets "calls" (calls timed in all) and "median_us", the median over the iterations of the time
// per call: bench/report.py prefers it to the mean, which one slow batch can skew.
template <class Op>
void timed_loop(benchmark::State& state, const Device& device, double flop, double bytes, Op&& op) {
  const bool gpu = device.is_cuda();
  const int batch = gpu ? 10 : 1;
  // Warm-up: caches, the allocator's pool, cuBLAS(Lt) handles and any per-shape autotuning.
  for (int i = 0; i < (gpu ? 2 : 1); ++i) op();
  if (gpu) cuda::synchronize(device.index);
  cuda::Event start, stop;
  if (gpu) {
    start = cuda::Event::create(device, /*enable_timing=*/true);
    stop = cuda::Event::create(device, /*enable_timing=*/true);
  }
  std::vector<double> per_call_us;
  for (auto _ : state) {
    double seconds = 0.0;
    if (gpu) {
      start.record();
      for (int i = 0; i < batch; ++i) op();
      stop.record();
      stop.synchronize();
      seconds = double(cuda::Event::elapsed_ms(start, stop)) * 1e-3;
    } else {
      const auto begin = std::chrono::steady_clock::now();
      op();
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    }
    state.SetIterationTime(seconds);
    per_call_us.push_back(seconds * 1e6 / batch);
  }
  const double calls = double(state.iterations()) * batch;
  using benchmark::Counter;
  if (flop > 0) state.counters["FLOP"] = Counter(flop * calls, Counter::kIsRate, Counter::kIs1000);
  if (bytes > 0) {
    state.counters["bytes"] = Counter(bytes * calls, Counter::kIsRate, Counter::kIs1000);
  }
  state.counters["calls"] = calls;
  if (!per_call_us.empty()) {
    auto mid = per_call_us.begin() + std::ptrdiff_t(per_call_us.size() / 2);
    std::nth_element(per_call_us.begin(), mid, per_call_us.end());
    state.counters["median_us"] = *mid;
  }
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

// Sets a process-wide backend switch (set_linear_backend, set_conv_backend) and TF32 for one
// case, restoring both however the case ends.
template <class Backend, Backend (*kGet)(), void (*kSet)(Backend)>
class ScopedBackend {
 public:
  ScopedBackend(Backend backend, bool tf32) : backend_(kGet()), tf32_(nn::allow_tf32()) {
    kSet(backend);
    nn::set_allow_tf32(tf32);
  }
  ~ScopedBackend() {
    kSet(backend_);
    nn::set_allow_tf32(tf32_);
  }
  ScopedBackend(const ScopedBackend&) = delete;
  ScopedBackend& operator=(const ScopedBackend&) = delete;

 private:
  Backend backend_;
  bool tf32_;
};

// The main() tail every benchmark program shares, after it has registered its cases.
inline int run_registered(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// main() of a program whose cases come in a full and a `--quick` set: takes --quick out of the
// arguments, registers the cases and hands the rest to the benchmark library.
inline int run_with_quick_flag(int argc, char** argv, void (*register_cases)(bool quick)) {
  bool quick = false;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--quick") {
      quick = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  register_cases(quick);
  return run_registered(kept, argv);
}

}  // namespace nn::bench
