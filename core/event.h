// CUDA events: markers in a stream's work. A stream can wait for an event recorded on another
// stream without blocking the host (cudaStreamWaitEvent), which is how a copy issued on a side
// stream hands its result to the stream that computes on it. An Event is a small shared handle
// (copies refer to the same event, destroyed with the last copy); a default-constructed one is
// undefined.
//
// Errors: create() throws DeviceError when `device` is not a present CUDA device (always, in a
// build without CUDA); using an undefined event throws ValueError; a stream on another device
// than the event's throws DeviceError; a failing CUDA call throws CudaError.
#pragma once

#include <memory>

#include "core/device.h"
#include "core/stream.h"

namespace nn::cuda {

class Event {
 public:
  Event() = default;

  // A new event on `device`. Timing is off unless asked for: untimed events are cheaper to
  // record and wait on.
  static Event create(Device device = Device::cuda(0), bool enable_timing = false);

  bool defined() const { return handle_ != nullptr; }
  Device device() const { return device_; }
  void* handle() const { return handle_; }  // a cudaEvent_t

  // Marks the point reached by the work enqueued on `stream` so far. `stream` must be a CUDA
  // stream of the event's device (a null handle there is the default stream).
  void record(const Stream& stream);
  void record();  // on the calling thread's current stream of the event's device
  // Work enqueued on `stream` after this call starts only once the recorded work is done. The
  // host does not wait. Waiting on an event never recorded is a no-op (as in CUDA).
  void wait(const Stream& stream) const;
  void wait() const;  // the calling thread's current stream of the event's device
  // Blocks the host until the recorded work is done.
  void synchronize() const;
  // True when the recorded work is done (or nothing was recorded); never blocks.
  bool query() const;
  // Milliseconds between two recorded, completed timing events on one device.
  static float elapsed_ms(const Event& start, const Event& end);

 private:
  Device device_ = Device::cpu();
  void* handle_ = nullptr;
  std::shared_ptr<void> owner_;  // destroys the event with the last copy
};

}  // namespace nn::cuda
