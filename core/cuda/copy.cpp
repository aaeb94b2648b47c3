// copy_bytes with CUDA: every copy touching a device is enqueued on the current stream of that
// device, so it is ordered after the kernels already launched there. A blocking copy then waits
// for that stream; a non-blocking one returns at once only when its host side is page-locked,
// because pageable memory may be reused or freed by the caller as soon as we return.
#include <cstring>

#include "core/cuda_context.h"
#include "core/storage.h"

namespace nn {

namespace {

bool is_pinned_host(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeHost;
}

// An event that lives for one copy; destroying it while pending is allowed by CUDA.
class ScopedEvent {
 public:
  explicit ScopedEvent(int device) {
    cuda::DeviceGuard guard(device);
    NN_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  }
  ~ScopedEvent() { (void)cudaEventDestroy(event_); }
  ScopedEvent(const ScopedEvent&) = delete;
  ScopedEvent& operator=(const ScopedEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// Between two devices: runs on the source's stream once the destination's stream has reached
// this point, and (when non-blocking) makes the destination's stream wait for the copy.
void copy_peer(void* dst, int dst_device, const void* src, int src_device, size_t nbytes,
               bool non_blocking) {
  cudaStream_t dst_stream = cuda::stream_of(dst_device);
  cudaStream_t src_stream = cuda::stream_of(src_device);
  ScopedEvent dst_ready(dst_device);
  {
    cuda::DeviceGuard guard(dst_device);
    NN_CUDA_CHECK(cudaEventRecord(dst_ready.get(), dst_stream));
  }
  cuda::DeviceGuard guard(src_device);
  NN_CUDA_CHECK(cudaStreamWaitEvent(src_stream, dst_ready.get(), 0));
  NN_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, src_stream));
  if (!non_blocking) {
    cuda::count_host_sync();
    NN_CUDA_CHECK(cudaStreamSynchronize(src_stream));
    return;
  }
  ScopedEvent copied(src_device);
  NN_CUDA_CHECK(cudaEventRecord(copied.get(), src_stream));
  cuda::DeviceGuard dst_guard(dst_device);
  NN_CUDA_CHECK(cudaStreamWaitEvent(dst_stream, copied.get(), 0));
}

cudaMemcpyKind copy_kind(Device dst, Device src) {
  if (src.is_cpu()) return cudaMemcpyHostToDevice;
  return dst.is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
}

}  // namespace

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                bool non_blocking) {
  if (nbytes == 0) return;
  NN_CHECK(dst != nullptr && src != nullptr, ValueError, "copy_bytes: null pointer in a copy of ",
           nbytes, " bytes (dst ", dst, ", src ", src, ")");
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  cuda::check_device(dst_device, "copy_bytes (destination)");
  cuda::check_device(src_device, "copy_bytes (source)");
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    copy_peer(dst, dst_device.index, src, src_device.index, nbytes, non_blocking);
    return;
  }
  const int gpu = dst_device.is_cuda() ? dst_device.index : src_device.index;
  cuda::DeviceGuard guard(gpu);
  cudaStream_t stream = cuda::stream_of(gpu);
  NN_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, copy_kind(dst_device, src_device), stream));
  const void* host = src_device.is_cpu() ? src : dst_device.is_cpu() ? dst : nullptr;
  const bool may_return_early = non_blocking && (host == nullptr || is_pinned_host(host));
  if (!may_return_early) {
    cuda::count_host_sync();
    NN_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
}

}  // namespace nn
