// Placeholder: the bias + activation and activation backward rows are being written.
#include "kernels/backend.h"

namespace nn::cpu {

void bias_activation(Tensor&, Tensor&, const Tensor&, const Tensor&, int64_t, Activation) {
  NN_THROW(ValueError, "bias_activation: the CPU row is being written");
}

void activation_backward(Tensor&, const Tensor&, const Tensor&, Activation) {
  NN_THROW(ValueError, "activation_backward: the CPU row is being written");
}

}  // namespace nn::cpu
