// Storage: one allocation that tensors view. It owns its memory through a deleter supplied by
// the allocator that made it, so CPU, pinned and CUDA-cached memory are all just Storage.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "core/device.h"

namespace nn {

class Storage {
 public:
  using Deleter = std::function<void(void*)>;
  Storage(void* data, size_t nbytes, Device device, Deleter deleter, bool pinned = false)
      : data_(data), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)), pinned_(pinned) {}
  ~Storage() {
    if (deleter_ && data_) deleter_(data_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }  // page-locked host memory: copies may be async

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  Deleter deleter_;
  bool pinned_;
};

// Allocates `nbytes` on `device`: 64-byte aligned host memory for the CPU (page-locked when
// `pinned`), the caching allocator for CUDA. Throws OutOfMemoryError or DeviceError.
std::shared_ptr<Storage> allocate_storage(size_t nbytes, Device device, bool pinned = false);

// Wraps memory the caller owns; the storage never frees it.
std::shared_ptr<Storage> wrap_storage(void* data, size_t nbytes, Device device);

}  // namespace nn

namespace nn {
// Copies nbytes between any two devices (host<->device, device<->device, host<->host).
// non_blocking: enqueued on the current stream of the CUDA side and returns at once; only
// asynchronous for real when the host side is pinned. Throws DeviceError/CudaError.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                bool non_blocking = false);
}  // namespace nn
