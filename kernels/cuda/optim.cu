// CUDA row of the fused optimizer step: one multi-tensor kernel launch updates a whole parameter
// group. The tensors' pointers and sizes travel in the kernel's parameter struct (no metadata
// copy to the device, nothing for the host to wait on), up to kMaxTensorsPerLaunch tensors per
// launch; a larger group takes one more launch per that many tensors.
//
// Decomposition: every tensor is cut into chunks of kChunk elements and a block owns one chunk
// of one tensor (block b finds its tensor by a binary search over the launch's prefix sums of
// chunk counts). Its threads stride over the chunk, kVec elements at a time with 16-byte loads
// and stores when every pointer of that tensor is aligned, one at a time otherwise. The update
// of one element is math::optimizer_update (kernels/nn_math.h), the code the CPU runs.
// grad_scale is read from device memory by every block, so gradient clipping needs no sync.
#include <algorithm>
#include <type_traits>

#include "kernels/backend.h"
#include "kernels/cuda/common.cuh"
#include "kernels/nn_math.h"

namespace nn::cuda {
namespace {

constexpr int kOptimThreads = 256;
constexpr int64_t kChunk = 16384;  // elements per block: 64 per thread
constexpr int kLists = 5;          // params, grads, state0, state1, state2
constexpr int64_t kMaxBlocksPerLaunch = int64_t(1) << 30;
// Since CUDA 12.1 a kernel's parameters may take up to 32764 bytes on Volta and newer (the
// classic limit, and the one older toolkits keep, is 4 KiB). A tensor costs kLists pointers, its
// size and its first block; kParamOverhead covers the scalars, the count and grad_scale.
#if CUDART_VERSION >= 12010
constexpr size_t kMaxKernelParamBytes = 32764;
#else
constexpr size_t kMaxKernelParamBytes = 4096;
#endif
constexpr size_t kParamOverhead = 512;
constexpr size_t kBytesPerTensor = kLists * sizeof(void*) + sizeof(int64_t) + sizeof(int);
constexpr int kMaxTensors = static_cast<int>(
    std::min<size_t>(size_t(kMaxTensorsPerLaunch), (kMaxKernelParamBytes - kParamOverhead) / kBytesPerTensor));

// One launch's tensors. Unused state lists hold null pointers.
struct TensorBatch {
  void* ptr[kLists][kMaxTensors];
  int64_t numel[kMaxTensors];
  int block_start[kMaxTensors + 1];  // tensor t owns blocks [block_start[t], block_start[t + 1])
  int count;
};

static_assert(sizeof(TensorBatch) + sizeof(math::OptimScalars<double>) + sizeof(void*) <=
                  kMaxKernelParamBytes,
              "optimizer_step: the launch parameters exceed CUDA's limit; lower kMaxTensors");

template <class T, int V>
__device__ NN_INLINE void load(const T* p, acc_t<T> (&v)[V]) {
  const Vec<T, V> x = *reinterpret_cast<const Vec<T, V>*>(p);
#pragma unroll
  for (int k = 0; k < V; ++k) v[k] = static_cast<acc_t<T>>(x.v[k]);
}

template <class T, int V>
__device__ NN_INLINE void store(T* p, const acc_t<T> (&v)[V]) {
  Vec<T, V> x;
#pragma unroll
  for (int k = 0; k < V; ++k) x.v[k] = T(v[k]);
  *reinterpret_cast<Vec<T, V>*>(p) = x;
}

// Updates V consecutive elements at offset i of one tensor (V == 1: the scalar path).
template <OptimizerKind K, class T, int V>
__device__ NN_INLINE void update(const math::OptimScalars<acc_t<T>>& h, acc_t<T> scale, T* p,
                                 const T* g, T* s0, T* s1, T* s2, int64_t i) {
  using A = acc_t<T>;
  A pv[V], gv[V], a0[V] = {}, a1[V] = {}, a2[V] = {};
  load<T, V>(p + i, pv);
  load<T, V>(g + i, gv);
  if (s0) load<T, V>(s0 + i, a0);
  if (s1) load<T, V>(s1 + i, a1);
  if (s2) load<T, V>(s2 + i, a2);
#pragma unroll
  for (int k = 0; k < V; ++k)
    math::optimizer_update<K, A>(h, pv[k], gv[k] * scale, a0[k], a1[k], a2[k]);
  store<T, V>(p + i, pv);
  if (s0) store<T, V>(s0 + i, a0);
  if (s1) store<T, V>(s1 + i, a1);
  if (s2) store<T, V>(s2 + i, a2);
}

template <class T, OptimizerKind K>
__global__ void __launch_bounds__(kOptimThreads)
    optimizer_kernel(TensorBatch batch, math::OptimScalars<acc_t<T>> h, const float* grad_scale) {
  using A = acc_t<T>;
  constexpr int kVec = vector_width<T>();
  const int b = blockIdx.x;
  int lo = 0, hi = batch.count - 1;  // the last tensor whose first block is <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (batch.block_start[mid] <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int t = lo;
  const int64_t begin = int64_t(b - batch.block_start[t]) * kChunk;
  const int64_t left = batch.numel[t] - begin, len = left < kChunk ? left : kChunk;
  T* p = static_cast<T*>(batch.ptr[0][t]) + begin;
  const T* g = static_cast<const T*>(batch.ptr[1][t]) + begin;
  T* s0 = batch.ptr[2][t] ? static_cast<T*>(batch.ptr[2][t]) + begin : nullptr;
  T* s1 = batch.ptr[3][t] ? static_cast<T*>(batch.ptr[3][t]) + begin : nullptr;
  T* s2 = batch.ptr[4][t] ? static_cast<T*>(batch.ptr[4][t]) + begin : nullptr;
  const A scale = grad_scale ? static_cast<A>(*grad_scale) : A(1);

  constexpr size_t kBytes = sizeof(T) * kVec;
  const bool aligned = is_aligned(p, kBytes) && is_aligned(g, kBytes) &&
                       (!s0 || is_aligned(s0, kBytes)) && (!s1 || is_aligned(s1, kBytes)) &&
                       (!s2 || is_aligned(s2, kBytes));
  int64_t done = 0;
  if (aligned) {
    const int64_t nvec = len / kVec;
    for (int64_t v = threadIdx.x; v < nvec; v += blockDim.x)
      update<K, T, kVec>(h, scale, p, g, s0, s1, s2, v * kVec);
    done = nvec * kVec;
  }
  for (int64_t i = done + threadIdx.x; i < len; i += blockDim.x)
    update<K, T, 1>(h, scale, p, g, s0, s1, s2, i);
}

void* data_or_null(const std::vector<Tensor>& list, size_t i) {
  return list.empty() ? nullptr : list[i].data_ptr();
}

}  // namespace

void optimizer_step(ParamGroupTensors& group, const OptimizerHyper& hyper,
                    const Tensor& grad_scale) {
  DeviceScope scope(group.params[0]);
  const float* scale = grad_scale.defined() ? grad_scale.data<float>() : nullptr;
  visit_floating(group.params[0].dtype(), "optimizer_step", [&]<class T>() {
    using A = acc_t<T>;
    const math::OptimScalars<A> h = math::optim_scalars<A>(hyper);
    visit_optimizer(hyper.kind, [&]<OptimizerKind K>() {
      TensorBatch batch{};
      auto flush = [&] {
        if (batch.count == 0) return;
        optimizer_kernel<T, K><<<static_cast<unsigned>(batch.block_start[batch.count]),
                                 kOptimThreads, 0, scope.stream()>>>(batch, h, scale);
        NN_CUDA_CHECK_LAUNCH();
        batch = TensorBatch{};
      };
      for (size_t i = 0; i < group.params.size(); ++i) {
        const int64_t n = group.params[i].numel();
        if (n == 0) continue;
        const int64_t blocks = ceil_div(n, kChunk);
        NN_CHECK(blocks <= kMaxBlocksPerLaunch, ValueError, "optimizer_step: params[", i, "] has ",
                 n, " elements, more than one launch covers (", kMaxBlocksPerLaunch * kChunk, ")");
        if (batch.count == kMaxTensors ||
            batch.block_start[batch.count] + blocks > kMaxBlocksPerLaunch)
          flush();
        const int t = batch.count;
        batch.ptr[0][t] = group.params[i].data_ptr();
        batch.ptr[1][t] = group.grads[i].data_ptr();
        batch.ptr[2][t] = data_or_null(group.state0, i);
        batch.ptr[3][t] = data_or_null(group.state1, i);
        batch.ptr[4][t] = data_or_null(group.state2, i);
        batch.numel[t] = n;
        batch.block_start[t + 1] = batch.block_start[t] + static_cast<int>(blocks);
        batch.count = t + 1;
      }
      flush();
    });
  });
}

}  // namespace nn::cuda
