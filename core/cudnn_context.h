// Internal: the per-device cuDNN handle and checked cuDNN calls. Compiled only when the build
// found cuDNN (NN_WITH_CUDNN); the convolution issue is its first user.
#pragma once

#include <cudnn.h>

namespace nn::cuda {
[[noreturn]] void throw_cudnn_error(cudnnStatus_t st, const char* expr, const char* file, int line);
// Bound to `device`'s current stream before it is returned.
cudnnHandle_t cudnn_handle(int device);
}  // namespace nn::cuda

#define NN_CUDNN_CHECK(expr)                                                       \
  do {                                                                             \
    cudnnStatus_t nn_st_ = (expr);                                                 \
    if (nn_st_ != CUDNN_STATUS_SUCCESS)                                            \
      ::nn::cuda::throw_cudnn_error(nn_st_, #expr, __FILE__, __LINE__);            \
  } while (0)
