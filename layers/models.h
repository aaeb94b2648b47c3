// Ready-made image classifiers built from the layers: the networks of `nn-train --model cnn` and
// `--model resnet`, shared by the app, the CNN benchmarks and the Python bindings.
//
//   auto net = nn::lenet_cnn({.channels = {32, 64}, .hidden = {128}}, {1, 1, 28, 28}, 10, {}, gen);
//
// Errors: ValueError for an image shape that is not [N, C, H, W] with positive sizes, an empty
// or non-positive width list, or an image too small for the network's pooling.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/sequential.h"

namespace nn {

struct ImageNetOptions {
  std::vector<int64_t> channels;  // per stage (lenet_cnn) or per residual block (small_resnet)
  std::vector<int64_t> hidden;    // lenet_cnn only: the widths of the head's hidden layers
  bool batch_norm = false;        // lenet_cnn only (small_resnet always has batch norm)
  double dropout = 0.0;           // before the classifier
};

// LeNet-style: per stage a 3x3 convolution (padding 1, so only the pooling shrinks the image),
// ReLU (batch norm + ReLU fused in one op with batch_norm, the convolution then without bias) and
// 2x2 max pooling; then Linear + ReLU per hidden width (fused by Sequential), dropout and the
// classifier. Defaults: channels {32, 64}, hidden {128}. (5x5 kernels, LeNet's own, cost twice as
// much here for no better accuracy on 28x28 images.)
std::shared_ptr<Sequential> lenet_cnn(ImageNetOptions o, const Shape& image, int64_t classes,
                                      TensorOptions options, Generator& gen);

// A small ResNet: a 3x3 stem with batch norm + ReLU, one residual block per channels width (the
// first keeps the size, each later one halves it), global average pooling, dropout and the
// linear classifier. Default channels {16, 32, 64}. Submodules are named stem, bn, layer1..,
// pool, flatten, dropout, fc.
std::shared_ptr<Sequential> small_resnet(ImageNetOptions o, const Shape& image, int64_t classes,
                                         TensorOptions options, Generator& gen);

}  // namespace nn
