// Shared building blocks of the CUDA op table (kernels/cuda/*.cu): launch geometry, the device
// and stream an op runs on, dtype casts, 16-byte vector types and warp/block reductions of any
// small trivially copyable state. Internal to kernels/cuda/.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/cuda_context.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace nn::cuda {

constexpr int kWarpSize = 32;
constexpr int kBlockSize = 256;           // threads of a 1-D elementwise or row block
constexpr int kVectorBytes = 16;          // one LDG.128 / STG.128
constexpr int64_t kMaxGridBlocks = 8192;  // grid-stride loops cover the rest
constexpr unsigned kFullMask = 0xffffffffu;

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for `work` items of `per_block` each, at least 1, at most kMaxGridBlocks.
inline unsigned grid_for(int64_t work, int64_t per_block) {
  int64_t blocks = ceil_div(work, per_block);
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < kMaxGridBlocks ? blocks : kMaxGridBlocks);
}

// The device an op runs on made current for the scope, and its current stream.
class DeviceScope {
 public:
  explicit DeviceScope(const Tensor& t)
      : guard_(t.device().index), stream_(stream_of(t.device().index)) {}
  cudaStream_t stream() const { return stream_; }

 private:
  DeviceGuard guard_;
  cudaStream_t stream_;
};

NN_HOST_DEVICE NN_INLINE bool is_aligned(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Grid-stride loop bounds of the calling thread, in 64-bit so huge tensors do not overflow.
__device__ NN_INLINE int64_t global_thread() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ NN_INLINE int64_t grid_threads() { return int64_t(gridDim.x) * blockDim.x; }

// Value conversion between any two of the six dtypes, as on the CPU (kernels/cpu/loops.h):
// the half types go through float; floating to int64 truncates toward zero, saturates at the
// int64 range and maps NaN to 0; anything to bool is "not equal to zero" (NaN is true).
template <class To, class From>
NN_HOST_DEVICE NN_INLINE To cast(From v) {
  constexpr bool kToHalf = std::is_same_v<To, bfloat16> || std::is_same_v<To, float16>;
  constexpr bool kFromHalf = std::is_same_v<From, bfloat16> || std::is_same_v<From, float16>;
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (kFromHalf) {
    return cast<To>(static_cast<float>(v));
  } else if constexpr (kToHalf) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, int64_t> && std::is_floating_point_v<From>) {
    constexpr double kLimit = 9223372036854775807.0;  // 2^63
    if (v != v) return 0;
    if (double(v) >= kLimit) return INT64_MAX;
    if (double(v) <= -kLimit) return INT64_MIN;
    return static_cast<int64_t>(v);
  } else {
    return static_cast<To>(v);  // to bool: v != 0
  }
}

// V consecutive elements moved as one aligned load or store (V * sizeof(T) <= 16 bytes).
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// Widest vector width for which every type in Ts moves at most 16 bytes per access.
template <class... Ts>
constexpr int vector_width() {
  size_t widest = 1;
  ((widest = sizeof(Ts) > widest ? sizeof(Ts) : widest), ...);
  return static_cast<int>(kVectorBytes / widest);
}

// Lane exchange of any small trivially copyable state, as 32-bit words.
template <class S>
__device__ NN_INLINE S shfl_xor(const S& s, int lane_mask) {
  static_assert(std::is_trivially_copyable_v<S> && sizeof(S) % 4 == 0,
                "shfl_xor: state must be trivially copyable and a multiple of 4 bytes");
  constexpr int kWords = sizeof(S) / 4;
  uint32_t w[kWords];
  memcpy(w, &s, sizeof(S));
#pragma unroll
  for (int k = 0; k < kWords; ++k) w[k] = __shfl_xor_sync(kFullMask, w[k], lane_mask);
  S r;
  memcpy(&r, w, sizeof(S));
  return r;
}

// Reduces `s` over the kThreads consecutive threads that own one row (a warp or the whole
// block) with `merge`, and returns the result to every one of them. Butterfly shuffles inside
// a warp; across warps, one partial per warp goes through shared memory and every thread
// merges them in the same order, so all threads agree bit for bit. Every thread of the group
// must call it (no divergence around it); kThreads is kWarpSize or blockDim.x.
template <int kThreads, class S, class Merge>
__device__ NN_INLINE S group_allreduce(S s, const Merge& merge) {
  static_assert(kThreads % kWarpSize == 0, "group_allreduce: whole warps only");
#pragma unroll
  for (int mask = kWarpSize / 2; mask > 0; mask /= 2) s = merge(s, shfl_xor(s, mask));
  if constexpr (kThreads == kWarpSize) {
    return s;
  } else {
    constexpr int kWarps = kThreads / kWarpSize;
    // Raw bytes: __shared__ variables cannot have constructors, S may have one.
    __shared__ alignas(S) unsigned char raw[kWarps * sizeof(S)];
    S* partial = reinterpret_cast<S*>(raw);
    const int warp = threadIdx.x / kWarpSize;
    if (threadIdx.x % kWarpSize == 0) partial[warp] = s;
    __syncthreads();
    S r = partial[0];
#pragma unroll
    for (int k = 1; k < kWarps; ++k) r = merge(r, partial[k]);
    __syncthreads();  // the next call may overwrite `partial`
    return r;
  }
}

}  // namespace nn::cuda
