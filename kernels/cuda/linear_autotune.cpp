// The autotune cache of linear's GEMMs (contract in kernels/cuda/linear_autotune.h).
#include "kernels/cuda/linear_autotune.h"

#include <mutex>
#include <unordered_map>

#include "core/cuda_context.h"

namespace nn::cuda {
namespace {

struct KeyHash {
  size_t operator()(const LinearTuneKey& k) const {
    size_t h = 1469598103934665603ull;
    auto mix = [&](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(uint64_t(k.m));
    mix(uint64_t(k.n));
    mix(uint64_t(k.k));
    mix(uint64_t(k.device) | uint64_t(k.dtype) << 16 | uint64_t(k.tf32) << 24 |
        uint64_t(k.act) << 32 | uint64_t(k.has_bias) << 40 | uint64_t(k.saved) << 41 |
        uint64_t(k.gemm) << 48);
    return h;
  }
};

struct Cache {
  std::mutex mutex;
  std::unordered_map<LinearTuneKey, LinearImpl, KeyHash> choices;
};

Cache& cache() {
  static auto* c = new Cache;  // never destroyed: linear may run during static destruction
  return *c;
}

// An event pair that times the work enqueued between start() and stop() on one stream.
class Timer {
 public:
  Timer() {
    NN_CUDA_CHECK(cudaEventCreate(&start_));
    const cudaError_t err = cudaEventCreate(&stop_);
    if (err != cudaSuccess) {
      (void)cudaEventDestroy(start_);
      NN_CUDA_CHECK(err);
    }
  }
  ~Timer() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start(cudaStream_t s) { NN_CUDA_CHECK(cudaEventRecord(start_, s)); }
  void stop(cudaStream_t s) { NN_CUDA_CHECK(cudaEventRecord(stop_, s)); }
  // Makes the host wait for the stop event: the one host wait of a tuning.
  void wait() {
    count_host_sync();
    NN_CUDA_CHECK(cudaEventSynchronize(stop_));
  }
  // Milliseconds between the events; both must have completed.
  float elapsed_ms() const {
    float ms = 0.0f;
    NN_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace

bool LinearTuneKey::operator==(const LinearTuneKey& o) const {
  return device == o.device && m == o.m && n == o.n && k == o.k && dtype == o.dtype &&
         tf32 == o.tf32 && act == o.act && has_bias == o.has_bias && saved == o.saved &&
         gemm == o.gemm;
}

const char* linear_gemm_name(LinearGemm g) {
  switch (g) {
    case LinearGemm::Forward:
      return "forward";
    case LinearGemm::BackwardDx:
      return "backward_dx";
    case LinearGemm::BackwardDw:
      return "backward_dw";
  }
  return "?";
}

const char* linear_impl_name(LinearImpl i) { return i == LinearImpl::Ours ? "ours" : "cublas"; }

std::optional<LinearImpl> linear_autotune_choice(const LinearTuneKey& key) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.choices.find(key);
  if (it == c.choices.end()) return std::nullopt;
  return it->second;
}

void clear_linear_autotune_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.choices.clear();
}

int64_t linear_autotune_cache_size() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return int64_t(c.choices.size());
}

LinearImpl linear_autotune(const LinearTuneKey& key, cudaStream_t stream,
                           const std::function<void(LinearImpl)>& run) {
  if (std::optional<LinearImpl> known = linear_autotune_choice(key)) return *known;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  NN_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone) return LinearImpl::Cublas;  // no timing in a graph

  // Both warm up first (plans, descriptors, first-launch costs), then each is timed alone; one
  // host wait at the end covers both timings.
  run(LinearImpl::Ours);
  run(LinearImpl::Cublas);
  Timer ours, cublas;
  ours.start(stream);
  for (int i = 0; i < kAutotuneTimedReps; ++i) run(LinearImpl::Ours);
  ours.stop(stream);
  cublas.start(stream);
  for (int i = 0; i < kAutotuneTimedReps; ++i) run(LinearImpl::Cublas);
  cublas.stop(stream);
  cublas.wait();  // the later of the two on one stream: ours has completed as well
  const LinearImpl winner =
      ours.elapsed_ms() < cublas.elapsed_ms() ? LinearImpl::Ours : LinearImpl::Cublas;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.choices.emplace(key, winner).first->second;
}

}  // namespace nn::cuda
