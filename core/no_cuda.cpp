// The CUDA-facing functions of core/ for a build configured with NN_CUDA=OFF: no device is ever
// present, host<->host copies work, and anything that needs a GPU throws DeviceError.
#if !defined(NN_WITH_CUDA)
#include <cstring>

#include "core/allocator.h"
#include "core/device.h"
#include "core/error.h"
#include "core/storage.h"
#include "core/stream.h"

namespace nn {
namespace {

[[noreturn]] void throw_no_cuda(const char* what) {
  NN_THROW(DeviceError, what,
           ": libnn_cuda was built without CUDA (NN_CUDA=OFF); reconfigure with -DNN_CUDA=ON "
           "on a machine with the CUDA toolkit to use a GPU");
}

}  // namespace

namespace cuda {

bool built_with_cuda() { return false; }
bool available() { return false; }
int device_count() { return 0; }
DeviceProperties properties(int) { throw_no_cuda("cuda::properties"); }
void synchronize(int) { throw_no_cuda("cuda::synchronize"); }
int64_t host_sync_count() { return 0; }

void check_device(const Device& device, const char* what) {
  if (device.is_cuda()) throw_no_cuda(what);
}

Stream current_stream(int device) {
  check_device(Device::cuda(device), "cuda::current_stream");
  return Stream();
}

void set_current_stream(const Stream& stream) {
  check_device(stream.device(), "cuda::set_current_stream");
}

StreamGuard::StreamGuard(const Stream& stream) { set_current_stream(stream); }
StreamGuard::~StreamGuard() = default;

void* allocate(size_t, int) { throw_no_cuda("cuda::allocate"); }
void deallocate(void* p) {
  NN_CHECK(p == nullptr, ValueError, "cuda::deallocate: ", p,
           " cannot be CUDA memory in a build without CUDA");
}
// Nothing is ever cached: emptying every device's cache is a no-op, naming one is an error.
void empty_cache(int device) {
  if (device >= 0) throw_no_cuda("cuda::empty_cache");
}
MemoryStats memory_stats(int) { throw_no_cuda("cuda::memory_stats"); }
void reset_peak_stats(int) { throw_no_cuda("cuda::reset_peak_stats"); }

}  // namespace cuda

Stream Stream::create(Device device) {
  cuda::check_device(device, "Stream::create");
  return Stream();
}

void Stream::synchronize() const { cuda::check_device(device_, "Stream::synchronize"); }

void* pinned_allocate(size_t) { throw_no_cuda("pinned_allocate (page-locked host memory)"); }
void pinned_free(void* p) {
  NN_CHECK(p == nullptr, ValueError, "pinned_free: ", p,
           " cannot be page-locked memory in a build without CUDA");
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes,
                bool) {
  cuda::check_device(dst_device, "copy_bytes (destination)");
  cuda::check_device(src_device, "copy_bytes (source)");
  if (nbytes == 0) return;
  NN_CHECK(dst != nullptr && src != nullptr, ValueError, "copy_bytes: null pointer in a copy of ",
           nbytes, " bytes (dst ", dst, ", src ", src, ")");
  std::memcpy(dst, src, nbytes);
}

}  // namespace nn
#endif  // !NN_WITH_CUDA
