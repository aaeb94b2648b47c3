// Device discovery, properties, synchronisation, checked-call errors and DeviceGuard.
// No GPU is a normal state: discovery never throws, it remembers why there is no device so
// that a later request for CUDA memory or a stream can say so.
#include <atomic>
#include <cstring>
#include <string>

#include "core/cuda_context.h"
#include "core/device.h"
#include "core/error.h"

namespace nn::cuda {
namespace {

struct Discovery {
  int count = 0;
  std::string reason;  // why count is 0
};

// Devices do not come and go within a process, so discovery runs once.
const Discovery& discovery() {
  static const Discovery found = [] {
    Discovery d;
    int count = 0;  // left untouched by cudaGetDeviceCount when it fails
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      // cudaErrorInsufficientDriver (toolkit but no driver), cudaErrorNoDevice, or a broken
      // driver: all mean "no usable GPU". Clear the error so it does not leak into later calls.
      (void)cudaGetLastError();
      d.reason = detail::concat("cudaGetDeviceCount failed with ", cudaGetErrorName(err), ": ",
                                cudaGetErrorString(err));
      return d;
    }
    d.count = count;
    if (count == 0) d.reason = "cudaGetDeviceCount found no device";
    return d;
  }();
  return found;
}

std::atomic<int64_t> g_host_syncs{0};

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

// Called right before every wait of the host on a device (core/cuda/stream.cpp and copy.cpp
// declare it too); host_sync_count() reads the total.
void count_host_sync() { g_host_syncs.fetch_add(1, std::memory_order_relaxed); }
int64_t host_sync_count() { return g_host_syncs.load(std::memory_order_relaxed); }

bool built_with_cuda() { return true; }
bool available() { return discovery().count > 0; }
int device_count() { return discovery().count; }

void check_device(const Device& device, const char* what) {
  if (!device.is_cuda()) return;
  const Discovery& d = discovery();
  NN_CHECK(d.count > 0, DeviceError, what, ": cuda:", device.index,
           " requested but no CUDA device is available (", d.reason, ")");
  NN_CHECK(device.index >= 0 && device.index < d.count, DeviceError, what, ": cuda:", device.index,
           " requested but ", d.count, " CUDA device", d.count == 1 ? " is" : "s are",
           " present (cuda:0 to cuda:", d.count - 1, ")");
}

DeviceProperties properties(int index) {
  check_device(Device::cuda(index), "cuda::properties");
  cudaDeviceProp prop{};
  NN_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceProperties out;
  out.name = prop.name;
  out.multiprocessors = prop.multiProcessorCount;
  out.total_memory = static_cast<int64_t>(prop.totalGlobalMem);
  out.major = prop.major;
  out.minor = prop.minor;
  out.memory_bus_width = prop.memoryBusWidth;
  // CUDA 13 dropped the clock fields from cudaDeviceProp; the attributes remain (in kHz).
  int khz = 0;
  NN_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, index));
  out.clock_mhz = khz / 1000;
  NN_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, index));
  out.memory_clock_mhz = khz / 1000;
  return out;
}

void synchronize(int index) {
  if (index < 0) {
    NN_CHECK(available(), DeviceError, "cuda::synchronize: no CUDA device is available (",
             discovery().reason, ")");
    count_host_sync();
    NN_CUDA_CHECK(cudaDeviceSynchronize());
    return;
  }
  check_device(Device::cuda(index), "cuda::synchronize");
  DeviceGuard guard(index);
  count_host_sync();
  NN_CUDA_CHECK(cudaDeviceSynchronize());
}

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  // Clear the error (a no-op for sticky ones) so the next unrelated check does not report it.
  (void)cudaGetLastError();
  NN_THROW(CudaError, "CUDA call ", expr, " failed: ", cudaGetErrorName(err), " (",
           cudaGetErrorString(err), ") at ", base_name(file), ":", line);
}

void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line) {
  NN_THROW(CudaError, "cuBLAS call ", expr, " failed: ", cublasGetStatusName(st), " (",
           cublasGetStatusString(st), ") at ", base_name(file), ":", line);
}

DeviceGuard::DeviceGuard(int device) {
  NN_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) NN_CUDA_CHECK(cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  int now = -1;
  // A destructor must not throw; a failure here leaves the device the guard set.
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
}

}  // namespace nn::cuda
