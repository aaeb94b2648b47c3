// ResidualBlock: a ResNet basic block (He et al. 2016), laid out as torchvision's BasicBlock so
// that state dicts line up:
//   y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1: 3x3, stride `stride`, padding 1; conv2: 3x3, padding 1; both without bias. The shortcut
// is x itself when the shape is kept (stride 1, in_channels == out_channels), otherwise
// `downsample`, a Sequential of a 1x1 convolution with that stride (no bias) and a BatchNorm2d.
// bn1 carries the first ReLU as its fused activation. x [N, in_channels, H, W] ->
// y [N, out_channels, ceil(H / stride), ceil(W / stride)].
// Errors: ValueError for non-positive channels or stride (from the constructor); the layers'
// ShapeError for a wrong input.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/rng.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/module.h"
#include "layers/sequential.h"

namespace nn {

class ResidualBlock : public Module {
 public:
  ResidualBlock(int64_t in_channels, int64_t out_channels, int64_t stride = 1,
                TensorOptions options = {}, Generator* gen = nullptr);

  Variable forward(const Variable& x) override;

  const std::shared_ptr<Conv2d>& conv1() const { return conv1_; }
  const std::shared_ptr<BatchNorm2d>& bn1() const { return bn1_; }
  const std::shared_ptr<Conv2d>& conv2() const { return conv2_; }
  const std::shared_ptr<BatchNorm2d>& bn2() const { return bn2_; }
  // Null when the shortcut is the identity.
  const std::shared_ptr<Sequential>& downsample() const { return downsample_; }

  std::string name() const override { return "ResidualBlock"; }

 private:
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Conv2d> conv2_;
  std::shared_ptr<BatchNorm2d> bn2_;
  std::shared_ptr<Sequential> downsample_;
};

}  // namespace nn
