// Placeholder: the convolution, pooling and batch-norm rows are being written.
#include "kernels/backend.h"

namespace nn::cpu {

void conv2d(Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&) {
  NN_THROW(ValueError, "conv2d: being written");
}
void conv2d_backward_data(Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&) {
  NN_THROW(ValueError, "conv2d_backward_data: being written");
}
void conv2d_backward_weight(Tensor&, Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&) {
  NN_THROW(ValueError, "conv2d_backward_weight: being written");
}
void pool2d(Tensor&, Tensor&, const Tensor&, PoolKind, const Pool2dOptions&) {
  NN_THROW(ValueError, "pool2d: being written");
}
void pool2d_backward(Tensor&, const Tensor&, const Tensor&, PoolKind, const Pool2dOptions&) {
  NN_THROW(ValueError, "pool2d_backward: being written");
}
void adaptive_avg_pool2d(Tensor&, const Tensor&) {
  NN_THROW(ValueError, "adaptive_avg_pool2d: being written");
}
void adaptive_avg_pool2d_backward(Tensor&, const Tensor&) {
  NN_THROW(ValueError, "adaptive_avg_pool2d_backward: being written");
}
void batch_norm(Tensor&, Tensor&, Tensor&, Tensor&, Tensor&, const Tensor&, const Tensor&,
                const Tensor&, bool, double, double, Activation) {
  NN_THROW(ValueError, "batch_norm: being written");
}
void batch_norm_backward(BatchNormGrads&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, const Tensor&, bool, Activation) {
  NN_THROW(ValueError, "batch_norm_backward: being written");
}

}  // namespace nn::cpu
