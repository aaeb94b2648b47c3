// Internal to the library's CUDA code (core/cuda/, kernels/cuda/): checked calls and the
// library handles, one per (thread, device), created lazily on first use and reused for the
// process's life (a thread's handles go back to a pool when it ends). Use a handle with its
// device current (DeviceGuard). Every function taking a device throws DeviceError when that
// device is absent. Never included by a header that users see; only built with NN_WITH_CUDA.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "core/stream.h"

namespace nn::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* expr, const char* file, int line);

// Counts one host wait on the GPU for host_sync_count() (core/device.h); every place that makes
// the host wait calls it.
void count_host_sync();

// The current stream of `device` as a cudaStream_t.
inline cudaStream_t stream_of(int device) {
  return static_cast<cudaStream_t>(current_stream(device).handle());
}

// Handles bound to `device` and set to its current stream before they are returned.
cublasHandle_t cublas_handle(int device);
cublasLtHandle_t cublaslt_handle(int device);
// A device workspace for cuBLASLt of kCublasLtWorkspaceBytes on `device`, one per stream (the
// current one), from the caching allocator and kept for the process's life.
constexpr size_t kCublasLtWorkspaceBytes = size_t(32) << 20;
void* cublaslt_workspace(int device);

// Makes `device` current for the scope (cudaSetDevice), restoring the previous one after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace nn::cuda

#define NN_CUDA_CHECK(expr)                                                        \
  do {                                                                             \
    cudaError_t nn_err_ = (expr);                                                  \
    if (nn_err_ != cudaSuccess) ::nn::cuda::throw_cuda_error(nn_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#define NN_CUBLAS_CHECK(expr)                                                      \
  do {                                                                             \
    cublasStatus_t nn_st_ = (expr);                                                \
    if (nn_st_ != CUBLAS_STATUS_SUCCESS)                                           \
      ::nn::cuda::throw_cublas_error(nn_st_, #expr, __FILE__, __LINE__);           \
  } while (0)

// After every kernel launch.
#define NN_CUDA_CHECK_LAUNCH() NN_CUDA_CHECK(cudaGetLastError())
