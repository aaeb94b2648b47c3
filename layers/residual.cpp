#include "layers/residual.h"

#include "core/error.h"
#include "graph/functions.h"

namespace nn {

ResidualBlock::ResidualBlock(int64_t in_channels, int64_t out_channels, int64_t stride,
                             TensorOptions options, Generator* gen) {
  NN_CHECK(in_channels > 0 && out_channels > 0, ValueError,
           "ResidualBlock: in_channels and out_channels must be positive, got ", in_channels,
           " and ", out_channels);
  NN_CHECK(stride >= 1, ValueError, "ResidualBlock: stride must be at least 1, got ", stride);
  const Conv2dOptions first{.stride = {stride, stride}, .padding = {1, 1}};
  const Conv2dOptions second{.padding = {1, 1}};
  conv1_ = register_module(
      "conv1", std::make_shared<Conv2d>(in_channels, out_channels, 3, first, false, options, gen));
  bn1_ = register_module(
      "bn1", std::make_shared<BatchNorm2d>(
                 out_channels, BatchNormOptions{.activation = Activation::Relu}, options));
  conv2_ = register_module("conv2", std::make_shared<Conv2d>(out_channels, out_channels, 3, second,
                                                             false, options, gen));
  bn2_ = register_module("bn2",
                         std::make_shared<BatchNorm2d>(out_channels, BatchNormOptions{}, options));
  if (stride != 1 || in_channels != out_channels) {
    auto shortcut = std::make_shared<Sequential>();
    shortcut->push_back(std::make_shared<Conv2d>(in_channels, out_channels, 1,
                                                 Conv2dOptions{.stride = {stride, stride}}, false,
                                                 options, gen));
    shortcut->push_back(std::make_shared<BatchNorm2d>(out_channels, BatchNormOptions{}, options));
    downsample_ = register_module("downsample", shortcut);
  }
}

Variable ResidualBlock::forward(const Variable& x) {
  Variable y = (*bn2_)((*conv2_)((*bn1_)((*conv1_)(x))));
  Variable identity = downsample_ ? (*downsample_)(x) : x;
  return relu(add(y, identity));
}

}  // namespace nn
