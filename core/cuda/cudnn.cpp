// cuDNN handles per (thread, device), bound to the current stream. Built only with cuDNN.
#if defined(NN_WITH_CUDNN)
#include <cstring>

#include "core/cuda/handle_pool.h"
#include "core/cudnn_context.h"

namespace nn::cuda {
namespace {

cudnnHandle_t create_cudnn() {
  cudnnHandle_t h = nullptr;
  NN_CUDNN_CHECK(cudnnCreate(&h));
  return h;
}

}  // namespace

void throw_cudnn_error(cudnnStatus_t st, const char* expr, const char* file, int line) {
  const char* slash = std::strrchr(file, '/');
  NN_THROW(CudaError, "cuDNN call ", expr, " failed: ", cudnnGetErrorString(st), " (status ",
           static_cast<int>(st), ") at ", slash ? slash + 1 : file, ":", line);
}

cudnnHandle_t cudnn_handle(int device) {
  check_device(Device::cuda(device), "cudnn_handle");
  cudnnHandle_t h = HandlePool<cudnnHandle_t, &create_cudnn>::for_this_thread(device);
  NN_CUDNN_CHECK(cudnnSetStream(h, stream_of(device)));
  return h;
}

}  // namespace nn::cuda
#endif  // NN_WITH_CUDNN
