#include "layers/batchnorm.h"

#include <sstream>

#include "core/error.h"
#include "graph/functions.h"
#include "kernels/ops.h"

namespace nn {

BatchNorm::BatchNorm(const char* layer, int64_t num_features, const BatchNormOptions& bn,
                     TensorOptions options)
    : num_features_(num_features), opt_(bn) {
  NN_CHECK(num_features >= 1, ValueError, layer, ": num_features must be positive, got ",
           num_features);
  NN_CHECK(bn.eps > 0, ValueError, layer, ": eps must be positive, got ", bn.eps);
  NN_CHECK(bn.momentum >= 0 && bn.momentum <= 1, ValueError, layer,
           ": momentum must be in [0, 1], got ", bn.momentum);
  NN_CHECK(bn.activation == Activation::None || bn.activation == Activation::Relu, ValueError,
           layer, ": the fused activation must be none or relu, got ",
           activation_name(bn.activation));
  NN_CHECK(is_floating(options.dtype), DtypeError, layer, ": parameters must be floating, got ",
           dtype_name(options.dtype));
  if (bn.affine) {
    weight_ = register_parameter("weight", ones({num_features}, options));
    bias_ = register_parameter("bias", zeros({num_features}, options));
  }
  if (bn.track_running_stats) {
    running_mean_ = &register_buffer("running_mean", zeros({num_features}, options));
    running_var_ = &register_buffer("running_var", ones({num_features}, options));
    num_batches_tracked_ = &register_buffer(
        "num_batches_tracked", zeros({}, {.dtype = Dtype::Int64, .device = options.device}));
  }
}

void BatchNorm::reset_running_stats() {
  if (!opt_.track_running_stats) return;
  fill_(*running_mean_, 0.0);
  fill_(*running_var_, 1.0);
  fill_(*num_batches_tracked_, 0.0);
}

Variable BatchNorm::forward(const Variable& x) {
  check_rank(x);
  NN_CHECK(x.size(1) == num_features_, ShapeError, name(), ": input has ", x.size(1),
           " channels, expected ", num_features_, " (input ", shape_str(x.shape()), ")");
  if (!opt_.track_running_stats) {
    // No running statistics: the batch's normalise in training and evaluation alike.
    Tensor no_mean, no_var;
    return batch_norm(x, weight_, bias_, no_mean, no_var, /*training=*/true, opt_.momentum,
                      opt_.eps, opt_.activation);
  }
  if (is_training()) add_(*num_batches_tracked_, 1.0);  // int64 in place, on the device
  return batch_norm(x, weight_, bias_, *running_mean_, *running_var_, is_training(), opt_.momentum,
                    opt_.eps, opt_.activation);
}

std::string BatchNorm::extra_repr() const {
  std::ostringstream os;
  os << num_features_ << ", eps=" << opt_.eps << ", momentum=" << opt_.momentum
     << ", affine=" << (opt_.affine ? "true" : "false")
     << ", track_running_stats=" << (opt_.track_running_stats ? "true" : "false");
  if (opt_.activation != Activation::None) {
    os << ", activation=" << activation_name(opt_.activation);
  }
  return os.str();
}

void BatchNorm1d::check_rank(const Variable& x) const {
  NN_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError,
           "BatchNorm1d: expected a 2-d [N, C] or 3-d [N, C, L] input, got ", shape_str(x.shape()));
}

void BatchNorm2d::check_rank(const Variable& x) const {
  NN_CHECK(x.dim() == 4, ShapeError, "BatchNorm2d: expected a 4-d [N, C, H, W] input, got ",
           shape_str(x.shape()));
}

}  // namespace nn
