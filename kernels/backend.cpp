// The op table's dispatch helpers (kernels/backend.h).
#include "kernels/backend.h"

namespace nn::backend {

void no_cuda_build(const char* op) {
  NN_THROW(DeviceError, op,
           ": tensor is on cuda but libnn_cuda was built without CUDA (NN_CUDA=OFF)");
}

}  // namespace nn::backend
