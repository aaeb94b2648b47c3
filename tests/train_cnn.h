// What the CNN training tests (CPU and GPU) share: the LeNet-style network and the small ResNet
// that nn-train builds for --model cnn / resnet (the ResNet without dropout), at a width the
// test picks, and a bounded training loop (Adam with a cosine schedule over a fixed number of
// steps).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "data/loader.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/pool.h"
#include "layers/residual.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/scheduler.h"

namespace nn::test {

// Per stage a 3x3 convolution (padding 1), batch norm + ReLU fused (or a biased convolution and
// ReLU), 2x2 max pooling; then a head of Linear + ReLU per `hidden` width, dropout and the
// classifier. For 28x28 images.
inline std::shared_ptr<Sequential> lenet(const std::vector<int64_t>& channels,
                                         const std::vector<int64_t>& hidden, bool batch_norm,
                                         double dropout, TensorOptions options, Generator& gen) {
  auto m = std::make_shared<Sequential>();
  int64_t in = 1, size = 28;
  for (int64_t width : channels) {
    m->push_back(std::make_shared<Conv2d>(in, width, 3, Conv2dOptions{.padding = {1, 1}},
                                          !batch_norm, options, &gen));
    if (batch_norm) {
      m->push_back(std::make_shared<BatchNorm2d>(
          width, BatchNormOptions{.activation = Activation::Relu}, options));
    } else {
      m->push_back(std::make_shared<ReLU>());
    }
    m->push_back(std::make_shared<MaxPool2d>(2));
    in = width;
    size /= 2;
  }
  m->push_back(std::make_shared<Flatten>());
  int64_t features = in * size * size;
  for (int64_t h : hidden) {
    m->push_back(std::make_shared<Linear>(features, h, true, Activation::None, options, &gen));
    m->push_back(std::make_shared<ReLU>());
    features = h;
  }
  if (dropout > 0) m->push_back(std::make_shared<Dropout>(dropout, gen.seed() + 1));
  m->push_back(std::make_shared<Linear>(features, 10, true, Activation::None, options, &gen));
  return m;
}

// A 3x3 stem with batch norm + ReLU, one residual block per width (each after the first halves
// the image), global average pooling and the classifier.
inline std::shared_ptr<Sequential> small_resnet(const std::vector<int64_t>& channels,
                                                TensorOptions options, Generator& gen) {
  auto m = std::make_shared<Sequential>();
  int64_t in = channels.front();
  m->push_back("stem", std::make_shared<Conv2d>(1, in, 3, Conv2dOptions{.padding = {1, 1}}, false,
                                                options, &gen));
  m->push_back("bn", std::make_shared<BatchNorm2d>(
                         in, BatchNormOptions{.activation = Activation::Relu}, options));
  for (size_t i = 0; i < channels.size(); ++i) {
    m->push_back("layer" + std::to_string(i + 1),
                 std::make_shared<ResidualBlock>(in, channels[i], i == 0 ? 1 : 2, options, &gen));
    in = channels[i];
  }
  m->push_back("pool", std::make_shared<AdaptiveAvgPool2d>(1));
  m->push_back("flatten", std::make_shared<Flatten>());
  m->push_back("fc", std::make_shared<Linear>(in, 10, true, Activation::None, options, &gen));
  return m;
}

// Trains `model` for exactly `steps` batches of `loader` (epochs repeat as needed) with Adam at
// peak rate `lr`, a short warm-up and a cosine decay to zero. Returns the number of epochs begun.
inline int64_t train_steps(Module& model, data::DataLoader& loader, int64_t steps, double lr,
                           double weight_decay = 0.0) {
  Adam opt(model.parameters(), {.lr = lr, .weight_decay = weight_decay});
  CosineWarmupLR schedule(opt, /*warmup_steps=*/steps / 20, steps, 0.0, /*start_factor=*/0.1);
  CrossEntropyLoss criterion;
  model.train();
  int64_t done = 0, epoch = 0;
  while (done < steps) {
    loader.set_epoch(epoch++);
    for (const data::Batch& b : loader) {
      Variable loss = criterion(model(Variable(b.inputs)), b.targets);
      opt.zero_grad();
      loss.backward();
      opt.step();
      schedule.step();
      if (++done == steps) break;
    }
  }
  return epoch;
}

}  // namespace nn::test
