// Internal: library handles (cuBLAS, cuBLASLt, cuDNN) one per (thread, device). A handle is not
// safe to share between threads that bind it to different streams, so each thread gets its
// own, created lazily; when a thread ends its handles go back to a process-wide pool for the
// next thread instead of being destroyed (destroying them at exit races the runtime's unload).
#pragma once

#include <cstddef>
#include <mutex>
#include <vector>

#include "core/cuda_context.h"

namespace nn::cuda {

// `Create` makes a handle on the current device and throws on failure.
template <class Handle, Handle (*Create)()>
class HandlePool {
 public:
  Handle acquire(int device) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& free = slot(device);
      if (!free.empty()) {
        Handle h = free.back();
        free.pop_back();
        return h;
      }
    }
    DeviceGuard guard(device);
    return Create();
  }

  void release(int device, Handle h) {
    std::lock_guard<std::mutex> lock(mutex_);
    slot(device).push_back(h);
  }

  // The calling thread's handle for `device`.
  static Handle for_this_thread(int device) {
    static auto* pool = new HandlePool;  // never destroyed: threads may end after main
    thread_local ThreadHandles mine{pool, {}};
    return mine.get(device);
  }

 private:
  struct ThreadHandles {
    HandlePool* pool;
    std::vector<Handle> per_device;
    Handle get(int device) {
      const auto i = static_cast<size_t>(device);
      if (per_device.size() <= i) per_device.resize(i + 1, Handle{});
      if (per_device[i] == Handle{}) per_device[i] = pool->acquire(device);
      return per_device[i];
    }
    ~ThreadHandles() {
      for (size_t i = 0; i < per_device.size(); ++i)
        if (per_device[i] != Handle{}) pool->release(static_cast<int>(i), per_device[i]);
    }
  };

  std::vector<Handle>& slot(int device) {
    const auto i = static_cast<size_t>(device);
    if (free_.size() <= i) free_.resize(i + 1);
    return free_[i];
  }

  std::mutex mutex_;
  std::vector<std::vector<Handle>> free_;  // index: device
};

}  // namespace nn::cuda
