#include "layers/linear.h"

#include <cmath>

#include "core/error.h"
#include "graph/functions.h"
#include "layers/init.h"

namespace nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Activation activation,
               TensorOptions options, Generator* gen)
    : in_features_(in_features), out_features_(out_features), activation_(activation) {
  NN_CHECK(in_features > 0 && out_features > 0, ValueError,
           "Linear: in_features and out_features must be positive, got ", in_features, " and ",
           out_features);
  NN_CHECK(is_floating(options.dtype), DtypeError, "Linear: parameters must be floating, got ",
           dtype_name(options.dtype));
  // PyTorch's kaiming_uniform_(a=sqrt(5)) on the weight reduces to this bound, as does its bias.
  const double bound = 1.0 / std::sqrt(double(in_features));
  Tensor w = empty({out_features, in_features}, options);
  init::uniform_(w, -bound, bound, gen);
  weight_ = register_parameter("weight", w);
  if (bias) {
    Tensor b = empty({out_features}, options);
    init::uniform_(b, -bound, bound, gen);
    bias_ = register_parameter("bias", b);
  }
}

Variable Linear::forward_with(const Variable& x, Activation activation) {
  return linear(x, weight_, bias_, activation);
}

std::string Linear::extra_repr() const {
  std::string out = "in_features=" + std::to_string(in_features_) +
                    ", out_features=" + std::to_string(out_features_) +
                    ", bias=" + (bias_.defined() ? "true" : "false");
  if (activation_ != Activation::None)
    out += std::string(", activation=") + activation_name(activation_);
  return out;
}

}  // namespace nn
