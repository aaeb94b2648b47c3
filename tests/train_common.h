// What the training tests share: Fashion-MNIST normalised and split, the MLP of the issue
// (784-256-256-10) and classification accuracy computed on the device with one host read.
#pragma once

#include <memory>

#include <gtest/gtest.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/sequential.h"

namespace nn::test {

struct FashionMnist {
  std::shared_ptr<data::Dataset> train, val, test;
};

// Pixels scaled to zero mean and unit deviation (the training set's statistics); 5000 training
// images held out for validation. A missing data set fails the test with the package's name.
inline FashionMnist load_fashion_mnist_normalized(uint64_t split_seed = 1) {
  constexpr double kMean = 0.2860, kStd = 0.3530;
  auto load = [&](data::Split split) {
    data::LabelledImages d = data::load_fashion_mnist("", split);
    Tensor x = mul(add(d.images, -kMean), 1.0 / kStd);
    return std::make_shared<data::TensorDataset>(x, d.labels);
  };
  FashionMnist f;
  std::shared_ptr<data::TensorDataset> full;
  try {
    full = load(data::Split::Train);
    f.test = load(data::Split::Test);
  } catch (const Error& e) {
    ADD_FAILURE() << e.what();
    throw;
  }
  auto parts = data::random_split(full, {full->size() - 5000, 5000}, split_seed);
  f.train = parts[0];
  f.val = parts[1];
  return f;
}

// Flatten, Linear + ReLU (fused by Sequential) and optional dropout per hidden layer, then the
// classifier.
inline std::shared_ptr<Sequential> mlp_784_256_256_10(TensorOptions options, Generator& gen,
                                                      double dropout) {
  auto m = std::make_shared<Sequential>();
  m->push_back(std::make_shared<Flatten>());
  int64_t width = 784;
  for (int64_t h : {256, 256}) {
    m->push_back(std::make_shared<Linear>(width, h, true, Activation::None, options, &gen));
    m->push_back(std::make_shared<ReLU>());
    if (dropout > 0) m->push_back(std::make_shared<Dropout>(dropout, gen.seed() + uint64_t(width)));
    width = h;
  }
  m->push_back(std::make_shared<Linear>(width, 10, true, Activation::None, options, &gen));
  return m;
}

// Fraction of correctly classified examples; the count stays on the device until the end.
inline double accuracy(Module& model, data::DataLoader& loader) {
  NoGradGuard no_grad;
  model.eval();
  Tensor correct;
  int64_t count = 0;
  for (const data::Batch& b : loader) {
    Tensor logits = model(Variable(b.inputs)).data();
    Tensor hits = sum(eq(argmax(logits, 1).to(Dtype::Float32), b.targets.to(Dtype::Float32))
                          .to(Dtype::Float64));
    if (correct.defined()) {
      add_(correct, hits);
    } else {
      correct = hits;
    }
    count += b.size();
  }
  model.train();
  return count > 0 ? correct.item() / double(count) : 0.0;
}

}  // namespace nn::test
