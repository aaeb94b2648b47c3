// The CUDA instance of the caching allocator (one per device, over cudaMalloc/cudaFree, keyed
// by the current stream) and pinned host memory (cudaHostAlloc).
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "core/allocator.h"
#include "core/caching_allocator.h"
#include "core/cuda_context.h"

namespace nn {

void* pinned_allocate(size_t nbytes) {
  cuda::check_device(Device::cuda(0), "pinned_allocate (page-locked host memory)");
  void* p = nullptr;
  // Portable: usable for asynchronous copies to any device, not only the current one.
  const cudaError_t err = cudaHostAlloc(&p, std::max<size_t>(nbytes, 1), cudaHostAllocPortable);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    NN_THROW(OutOfMemoryError, "pinned_allocate: cannot page-lock ", format_bytes(int64_t(nbytes)),
             " of host memory (", cudaGetErrorString(err), ")");
  }
  if (err != cudaSuccess) cuda::throw_cuda_error(err, "cudaHostAlloc", __FILE__, __LINE__);
  return p;
}

void pinned_free(void* p) {
  if (p == nullptr) return;
  const cudaError_t err = cudaFreeHost(p);
  // At process exit the runtime may be gone before the last storage: nothing left to free.
  if (err != cudaSuccess && err != cudaErrorCudartUnloading)
    cuda::throw_cuda_error(err, "cudaFreeHost", __FILE__, __LINE__);
}

namespace cuda {
namespace {

struct CudaBackend {
  int device = 0;

  void* raw_alloc(size_t nbytes) {
    DeviceGuard guard(device);
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, nbytes);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky, but it would linger in cudaGetLastError
      return nullptr;
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
    return p;
  }

  void raw_free(void* p) {
    DeviceGuard guard(device);
    NN_CUDA_CHECK(cudaFree(p));
  }

  // Memory held outside this allocator (other processes, cuBLAS, the context) explains many
  // out-of-memory errors, so the message carries the driver's view as well.
  std::string memory_note() {
    DeviceGuard guard(device);
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      (void)cudaGetLastError();
      return "";
    }
    return detail::concat("the driver reports ", format_bytes(int64_t(free_bytes)), " free of ",
                          format_bytes(int64_t(total_bytes)));
  }
};

using DeviceAllocator = CachingAllocator<CudaBackend>;
constexpr int kMaxDevices = 64;

// Created on first use and never destroyed: storages released during static destruction
// must still find their allocator.
struct Registry {
  std::mutex mutex;
  std::array<std::atomic<DeviceAllocator*>, kMaxDevices> per_device{};
};

Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

DeviceAllocator* existing_allocator(int device) {
  return registry().per_device[static_cast<size_t>(device)].load(std::memory_order_acquire);
}

DeviceAllocator& allocator_for(int device, const char* what) {
  check_device(Device::cuda(device), what);
  NN_CHECK(device < kMaxDevices, DeviceError, what, ": cuda:", device, " is beyond the ",
           kMaxDevices, " devices the allocator supports");
  if (DeviceAllocator* a = existing_allocator(device)) return *a;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto& slot = r.per_device[static_cast<size_t>(device)];
  if (DeviceAllocator* a = slot.load(std::memory_order_acquire)) return *a;
  const int64_t capacity = properties(device).total_memory;
  auto* created =
      new DeviceAllocator(CudaBackend{device}, detail::concat("cuda:", device), capacity);
  slot.store(created, std::memory_order_release);
  return *created;
}

}  // namespace

void* allocate(size_t nbytes, int device) {
  DeviceAllocator& a = allocator_for(device, "cuda::allocate");
  return a.allocate(nbytes, current_stream(device).handle());
}

void deallocate(void* p) {
  if (p == nullptr) return;
  for (int d = 0; d < kMaxDevices; ++d) {
    DeviceAllocator* a = existing_allocator(d);
    if (a != nullptr && a->deallocate(p)) return;
  }
  NN_THROW(ValueError, "cuda::deallocate: ", p,
           " was not allocated by the CUDA caching allocator (or was freed twice)");
}

void empty_cache(int device) {
  if (device < 0) {  // every device that has an allocator
    for (int d = 0; d < kMaxDevices; ++d)
      if (DeviceAllocator* a = existing_allocator(d)) a->empty_cache();
    return;
  }
  allocator_for(device, "cuda::empty_cache").empty_cache();
}

MemoryStats memory_stats(int device) { return allocator_for(device, "cuda::memory_stats").stats(); }

void reset_peak_stats(int device) {
  allocator_for(device, "cuda::reset_peak_stats").reset_peak_stats();
}

}  // namespace cuda
}  // namespace nn
