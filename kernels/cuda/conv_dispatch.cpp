// The CUDA op-table rows conv2d, conv2d_backward_data and conv2d_backward_weight: which
// implementation computes each (conv_backend(): ours, cuDNN, or Auto), and Auto's per-shape cache.
//
// Auto, the first time a (device, shapes, options, dtype, TF32, pass, bias) is seen, runs both
// implementations on the current stream (one warm-up that also builds cuDNN's plan, then
// kConvTimedReps timed runs each, cudaEvent timing), waits once for the GPU (counted by
// host_sync_count()) and remembers the faster. Every later call is a map lookup: no timing, no
// wait. A configuration cuDNN rejects is recorded as ours. While the stream is being captured
// into a CUDA graph nothing is timed or recorded: ours runs. Without cuDNN in the build Auto is
// ours. Process-wide and thread-safe (two threads meeting a new key may both time it; the first
// result stored wins).
#include <cuda_runtime_api.h>

#include <functional>
#include <map>
#include <mutex>

#include "core/cuda_context.h"
#include "kernels/backend.h"
#include "kernels/cuda/conv.cuh"

namespace nn::cuda {
namespace {

constexpr int kConvTimedReps = 3;

std::mutex g_mutex;
std::map<std::vector<int64_t>, ConvImpl>& choices() {
  static auto* m = new std::map<std::vector<int64_t>, ConvImpl>();
  return *m;
}

class EventPair {
 public:
  EventPair() {
    NN_CUDA_CHECK(cudaEventCreate(&start_));
    const cudaError_t err = cudaEventCreate(&stop_);
    if (err != cudaSuccess) {
      (void)cudaEventDestroy(start_);
      NN_CUDA_CHECK(err);
    }
  }
  ~EventPair() {
    (void)cudaEventDestroy(start_);
    (void)cudaEventDestroy(stop_);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  void start(cudaStream_t s) { NN_CUDA_CHECK(cudaEventRecord(start_, s)); }
  void stop(cudaStream_t s) { NN_CUDA_CHECK(cudaEventRecord(stop_, s)); }
  float elapsed_ms() {
    count_host_sync();
    NN_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    NN_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  NN_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

// Times `run(impl)` (already warmed up) over kConvTimedReps runs.
float time_impl(ConvImpl impl, cudaStream_t stream, const std::function<void(ConvImpl)>& run) {
  EventPair ev;
  ev.start(stream);
  for (int i = 0; i < kConvTimedReps; ++i) run(impl);
  ev.stop(stream);
  return ev.elapsed_ms();
}

ConvImpl autotune(const ConvTuneKey& key, cudaStream_t stream,
                  const std::function<void(ConvImpl)>& run) {
  if (auto known = conv_autotune_choice(key)) return *known;
  if (!cudnn_conv_available() || capturing(stream)) return ConvImpl::Ours;
  ConvImpl best = ConvImpl::Ours;
  try {
    run(ConvImpl::Cudnn);  // warm-up; builds the plan
    const float cudnn_ms = time_impl(ConvImpl::Cudnn, stream, run);
    run(ConvImpl::Ours);
    const float ours_ms = time_impl(ConvImpl::Ours, stream, run);
    best = cudnn_ms < ours_ms ? ConvImpl::Cudnn : ConvImpl::Ours;
  } catch (const CudaError&) {
    // cuDNN has no algorithm for this configuration (or failed on it): ours computes it. A
    // failure of ours shows again when the caller runs it.
    (void)cudaGetLastError();
    best = ConvImpl::Ours;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  return choices().emplace(conv_key_words(key), best).first->second;
}

ConvImpl choose(const ConvTuneKey& key, cudaStream_t stream,
                const std::function<void(ConvImpl)>& run, const char* op) {
  switch (conv_backend()) {
    case ConvBackend::Ours:
      return ConvImpl::Ours;
    case ConvBackend::Cudnn:
      NN_CHECK(cudnn_conv_available(), DeviceError, op,
               ": the conv backend is \"cudnn\" but this build of nn_cuda has no cuDNN; use "
               "\"ours\" or \"auto\"");
      return ConvImpl::Cudnn;
    case ConvBackend::Auto:
      break;
  }
  return autotune(key, stream, run);
}

ConvTuneKey make_key(ConvPass pass, const Shape& x, const Shape& w, const Conv2dOptions& opt,
                     const Tensor& out, bool extra) {
  ConvTuneKey key;
  key.device = out.device().index;
  key.pass = pass;
  key.x = x;
  key.w = w;
  key.opt = opt;
  key.dtype = out.dtype();
  key.tf32 = out.dtype() == Dtype::Float32 && allow_tf32();
  key.extra = extra;
  return key;
}

void run_pass(const ConvTuneKey& key, const Tensor& out, const char* op,
              const std::function<void(ConvImpl)>& run) {
  if (out.numel() == 0) return;
  DeviceGuard guard(out.device().index);
  run(choose(key, stream_of(out.device().index), run, op));
}

}  // namespace

const char* conv_impl_name(ConvImpl i) { return i == ConvImpl::Cudnn ? "cudnn" : "ours"; }

bool ConvTuneKey::operator==(const ConvTuneKey& o) const {
  return conv_key_words(*this) == conv_key_words(o);
}

std::vector<int64_t> conv_key_words(const ConvTuneKey& k) {
  std::vector<int64_t> v = {k.device, int64_t(k.pass), int64_t(k.dtype),
                            k.tf32,   k.extra,         k.opt.groups};
  for (int i = 0; i < 2; ++i) {
    v.push_back(k.opt.stride[i]);
    v.push_back(k.opt.padding[i]);
    v.push_back(k.opt.dilation[i]);
  }
  v.push_back(int64_t(k.x.size()));
  v.insert(v.end(), k.x.begin(), k.x.end());
  v.push_back(int64_t(k.w.size()));
  v.insert(v.end(), k.w.begin(), k.w.end());
  return v;
}

std::optional<ConvImpl> conv_autotune_choice(const ConvTuneKey& key) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = choices().find(conv_key_words(key));
  if (it == choices().end()) return std::nullopt;
  return it->second;
}

int64_t conv_autotune_cache_size() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return int64_t(choices().size());
}

void clear_conv_autotune_cache() {
  std::lock_guard<std::mutex> lock(g_mutex);
  choices().clear();
}

// ---- the op-table rows -------------------------------------------------------------------------

void conv2d(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
            const Conv2dOptions& opt) {
  const ConvTuneKey key = make_key(ConvPass::Forward, x.shape(), w.shape(), opt, y, b.defined());
  run_pass(key, y, "conv2d", [&](ConvImpl impl) {
    if (impl == ConvImpl::Cudnn)
      conv2d_cudnn(y, x, w, b, opt);
    else
      conv2d_ours(y, x, w, b, opt);
  });
}

void conv2d_backward_data(Tensor& dx, const Tensor& grad_y, const Tensor& w,
                          const Conv2dOptions& opt) {
  const ConvTuneKey key = make_key(ConvPass::BackwardData, dx.shape(), w.shape(), opt, dx, false);
  run_pass(key, dx, "conv2d_backward_data", [&](ConvImpl impl) {
    if (impl == ConvImpl::Cudnn)
      conv2d_backward_data_cudnn(dx, grad_y, w, opt);
    else
      conv2d_backward_data_ours(dx, grad_y, w, opt);
  });
}

void conv2d_backward_weight(Tensor& dw, Tensor& db, const Tensor& grad_y, const Tensor& x,
                            const Conv2dOptions& opt) {
  const ConvTuneKey key =
      make_key(ConvPass::BackwardWeight, x.shape(), dw.shape(), opt, dw, db.defined());
  run_pass(key, dw, "conv2d_backward_weight", [&](ConvImpl impl) {
    if (impl == ConvImpl::Cudnn)
      conv2d_backward_weight_cudnn(dw, db, grad_y, x, opt);
    else
      conv2d_backward_weight_ours(dw, db, grad_y, x, opt);
  });
}

}  // namespace nn::cuda
