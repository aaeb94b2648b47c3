// cuBLAS and cuBLASLt handles per (thread, device), and the cuBLASLt workspace per stream.
#include <map>
#include <mutex>
#include <utility>

#include "core/allocator.h"
#include "core/cuda/handle_pool.h"
#include "core/cuda_context.h"

namespace nn::cuda {
namespace {

cublasHandle_t create_cublas() {
  cublasHandle_t h = nullptr;
  NN_CUBLAS_CHECK(cublasCreate(&h));
  return h;
}

cublasLtHandle_t create_cublaslt() {
  cublasLtHandle_t h = nullptr;
  NN_CUBLAS_CHECK(cublasLtCreate(&h));
  return h;
}

}  // namespace

cublasHandle_t cublas_handle(int device) {
  check_device(Device::cuda(device), "cublas_handle");
  cublasHandle_t h = HandlePool<cublasHandle_t, &create_cublas>::for_this_thread(device);
  NN_CUBLAS_CHECK(cublasSetStream(h, stream_of(device)));
  return h;
}

// cuBLASLt takes the stream with each call, so its handle needs no binding.
cublasLtHandle_t cublaslt_handle(int device) {
  check_device(Device::cuda(device), "cublaslt_handle");
  return HandlePool<cublasLtHandle_t, &create_cublaslt>::for_this_thread(device);
}

// One workspace per (device, stream): two streams sharing one would race on it, while work on
// one stream is ordered. It comes from the caching allocator (so it shows in the statistics
// and benefits from its out-of-memory retry) and is kept for the process's life.
void* cublaslt_workspace(int device) {
  check_device(Device::cuda(device), "cublaslt_workspace");
  static auto* mutex = new std::mutex;
  static auto* workspaces = new std::map<std::pair<int, void*>, void*>;
  const std::pair<int, void*> key(device, current_stream(device).handle());
  std::lock_guard<std::mutex> lock(*mutex);
  auto it = workspaces->find(key);
  if (it != workspaces->end()) return it->second;
  void* p = allocate(kCublasLtWorkspaceBytes, device);
  workspaces->emplace(key, p);
  return p;
}

}  // namespace nn::cuda
