// Streams: created non-blocking so they never serialise with the legacy default stream, and a
// current stream per (thread, device) so one thread can run a step on a side stream while
// another keeps the default one.
#include <cstddef>
#include <vector>

#include "core/cuda_context.h"
#include "core/stream.h"

namespace nn {

Stream Stream::create(Device device) {
  if (device.is_cpu()) return Stream();  // the CPU has no streams: inert handle
  cuda::check_device(device, "Stream::create");
  cuda::DeviceGuard guard(device.index);
  cudaStream_t raw = nullptr;
  NN_CUDA_CHECK(cudaStreamCreateWithFlags(&raw, cudaStreamNonBlocking));
  Stream stream(device, raw);
  // Errors on destroy are ignored: at process exit the runtime may already be unloading.
  stream.owner_ = std::shared_ptr<void>(
      raw, [](void* s) { (void)cudaStreamDestroy(static_cast<cudaStream_t>(s)); });
  return stream;
}

void Stream::synchronize() const {
  if (device_.is_cpu()) return;
  cuda::check_device(device_, "Stream::synchronize");
  cuda::DeviceGuard guard(device_.index);
  cuda::count_host_sync();
  NN_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(handle_)));
}

namespace cuda {
namespace {
// Index: device. A slot never set holds the default (null) stream of its device.
thread_local std::vector<Stream> current_streams;
}  // namespace

Stream current_stream(int device) {
  check_device(Device::cuda(device), "cuda::current_stream");
  const auto slot = static_cast<size_t>(device);
  if (slot < current_streams.size() && current_streams[slot].device().is_cuda())
    return current_streams[slot];
  return Stream(Device::cuda(device), nullptr);
}

void set_current_stream(const Stream& stream) {
  if (stream.device().is_cpu()) return;  // nothing to make current on the CPU
  check_device(stream.device(), "cuda::set_current_stream");
  const auto slot = static_cast<size_t>(stream.device().index);
  if (current_streams.size() <= slot) current_streams.resize(slot + 1);
  current_streams[slot] = stream;
}

StreamGuard::StreamGuard(const Stream& stream)
    : previous_(stream.device().is_cuda() ? current_stream(stream.device().index) : Stream()) {
  set_current_stream(stream);
}

StreamGuard::~StreamGuard() {
  // previous_ was current a moment ago, so making it current again cannot fail a check.
  if (!previous_.device().is_cuda()) return;
  current_streams[static_cast<size_t>(previous_.device().index)] = previous_;
}

}  // namespace cuda
}  // namespace nn
