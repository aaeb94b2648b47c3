// CUDA streams. Ops launch on the current stream of their device, so a later issue can run
// a whole step on a side stream or capture it into a CUDA graph. A Stream is a small handle;
// the null handle is the device's default stream. Without CUDA these are inert on the CPU.
#pragma once

#include <memory>

#include "core/device.h"

namespace nn {

class Stream {
 public:
  Stream() = default;
  Stream(Device device, void* handle) : device_(device), handle_(handle) {}

  // A new non-blocking stream on `device`, destroyed when the last copy of it goes.
  static Stream create(Device device);

  Device device() const { return device_; }
  void* handle() const { return handle_; }  // a cudaStream_t
  void synchronize() const;
  bool operator==(const Stream& o) const { return device_ == o.device_ && handle_ == o.handle_; }

 private:
  Device device_ = Device::cpu();
  void* handle_ = nullptr;
  std::shared_ptr<void> owner_;  // keeps a created stream alive
};

namespace cuda {
// The stream ops on `device` launch on, for the calling thread.
Stream current_stream(int device = 0);
void set_current_stream(const Stream& stream);

// Makes `stream` current for the scope, then restores the previous one.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream previous_;
};
}  // namespace cuda
}  // namespace nn
