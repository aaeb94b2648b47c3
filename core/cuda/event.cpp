// Events over the CUDA runtime. Each call makes the event's device current for its duration so
// that events and streams of a second GPU work from any thread.
#include "core/event.h"

#include "core/cuda_context.h"

namespace nn::cuda {
namespace {

cudaEvent_t raw(const Event& e, const char* what) {
  NN_CHECK(e.defined(), ValueError, what,
           ": the event is undefined; make one with nn::cuda::Event::create(device)");
  return static_cast<cudaEvent_t>(e.handle());
}

cudaStream_t stream_on(const Event& e, const Stream& stream, const char* what) {
  NN_CHECK(stream.device().is_cuda(), DeviceError, what,
           ": expected a CUDA stream, got a stream of ", stream.device().str());
  NN_CHECK(stream.device() == e.device(), DeviceError, what, ": the event is on ", e.device().str(),
           " but the stream is on ", stream.device().str());
  return static_cast<cudaStream_t>(stream.handle());
}

}  // namespace

Event Event::create(Device device, bool enable_timing) {
  NN_CHECK(device.is_cuda(), DeviceError, "Event::create: events live on CUDA devices, got ",
           device.str());
  check_device(device, "Event::create");
  DeviceGuard guard(device.index);
  cudaEvent_t ev = nullptr;
  NN_CUDA_CHECK(
      cudaEventCreateWithFlags(&ev, enable_timing ? cudaEventDefault : cudaEventDisableTiming));
  Event event;
  event.device_ = device;
  event.handle_ = ev;
  // Destroying a pending event is allowed; errors at process exit (runtime unloading) are moot.
  event.owner_ = std::shared_ptr<void>(
      ev, [](void* p) { (void)cudaEventDestroy(static_cast<cudaEvent_t>(p)); });
  return event;
}

void Event::record(const Stream& stream) {
  cudaEvent_t ev = raw(*this, "Event::record");
  cudaStream_t s = stream_on(*this, stream, "Event::record");
  DeviceGuard guard(device_.index);
  NN_CUDA_CHECK(cudaEventRecord(ev, s));
}

void Event::record() {
  raw(*this, "Event::record");
  record(current_stream(device_.index));
}

void Event::wait(const Stream& stream) const {
  cudaEvent_t ev = raw(*this, "Event::wait");
  cudaStream_t s = stream_on(*this, stream, "Event::wait");
  DeviceGuard guard(device_.index);
  NN_CUDA_CHECK(cudaStreamWaitEvent(s, ev, 0));
}

void Event::wait() const {
  raw(*this, "Event::wait");
  wait(current_stream(device_.index));
}

void Event::synchronize() const {
  cudaEvent_t ev = raw(*this, "Event::synchronize");
  DeviceGuard guard(device_.index);
  count_host_sync();
  NN_CUDA_CHECK(cudaEventSynchronize(ev));
}

bool Event::query() const {
  cudaEvent_t ev = raw(*this, "Event::query");
  DeviceGuard guard(device_.index);
  const cudaError_t err = cudaEventQuery(ev);
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();  // not an error: do not let it leak into the next check
    return false;
  }
  NN_CUDA_CHECK(err);
  return true;
}

float Event::elapsed_ms(const Event& start, const Event& end) {
  cudaEvent_t a = raw(start, "Event::elapsed_ms (start)");
  cudaEvent_t b = raw(end, "Event::elapsed_ms (end)");
  NN_CHECK(start.device() == end.device(), DeviceError, "Event::elapsed_ms: start is on ",
           start.device().str(), " but end is on ", end.device().str());
  DeviceGuard guard(start.device().index);
  float ms = 0.0f;
  NN_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

}  // namespace nn::cuda
