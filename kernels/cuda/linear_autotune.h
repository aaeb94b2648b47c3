// The autotune cache behind LinearBackend::Auto (kernels/nn_ops.h): which GEMM, ours
// (kernels/cuda/gemm.cuh) or cuBLASLt's (kernels/cuda/cublaslt.cuh), computes each GEMM of linear
// for one problem. Internal to kernels/cuda/ (and the GPU tests and benchmarks); plain C++.
//
// The first time a key is seen, linear_autotune times both implementations on the current stream
// (one warm-up and kTimedReps timed runs each, cudaEvent timing) and remembers the faster; that
// first call waits for the GPU once (counted by nn::cuda::host_sync_count(), like cuDNN's
// benchmark mode). Every later call with the key is a map lookup: no timing, no wait. While the
// stream is being captured into a CUDA graph nothing is timed: cuBLASLt is used and nothing is
// recorded. Process-wide and thread-safe (two threads meeting a new key at once may both time
// it; the first result stored wins).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "core/dtype.h"
#include "kernels/nn_ops.h"

namespace nn::cuda {

// Which GEMM of linear: the forward y = act(x w^T + b), or backward's dx = dY' w or dW = dY'^T x.
enum class LinearGemm : uint8_t { Forward, BackwardDx, BackwardDw };
const char* linear_gemm_name(LinearGemm g);  // "forward", "backward_dx", "backward_dw"

enum class LinearImpl : uint8_t { Cublas, Ours };
const char* linear_impl_name(LinearImpl i);  // "cublas", "ours"

// m, n, k are linear's rows, output features and input features for all three GEMMs (not the
// GEMM's own dimensions). has_bias: the forward adds a bias / dW also gives db. saved: the
// forward writes the pre-activation (Gelu, GeluTanh, Silu in training); unused for backward.
struct LinearTuneKey {
  int device = 0;
  int64_t m = 0, n = 0, k = 0;
  Dtype dtype = Dtype::Float32;
  bool tf32 = false;  // float32 with nn::allow_tf32()
  Activation act = Activation::None;
  bool has_bias = false;
  bool saved = false;
  LinearGemm gemm = LinearGemm::Forward;

  bool operator==(const LinearTuneKey& o) const;
};

constexpr int kAutotuneTimedReps = 3;

// The recorded choice for `key`, or nothing when it has not been timed.
std::optional<LinearImpl> linear_autotune_choice(const LinearTuneKey& key);
void clear_linear_autotune_cache();
int64_t linear_autotune_cache_size();

// The implementation for `key`: the recorded one, else both are timed as described above by
// calling run(impl), which must enqueue one complete computation of the outputs on `stream` (it is
// called several times; each call overwrites the outputs). Does not run the winner afterwards:
// the caller does. Throws what run throws, and CudaError for a failing event call.
LinearImpl linear_autotune(const LinearTuneKey& key, cudaStream_t stream,
                           const std::function<void(LinearImpl)>& run);

}  // namespace nn::cuda
