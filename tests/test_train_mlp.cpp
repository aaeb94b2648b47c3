// Learning on real data: an MLP with two hidden layers trained on the CPU on Fashion-MNIST
// (Debian's dataset-fashion-mnist) with a fixed seed must reach 85% test accuracy. This is the
// whole stack at once: IDX reader, loader with prefetch, fused linear + ReLU, dropout,
// cross-entropy, backward, Adam, early stopping on the validation accuracy.
#include <cstdio>

#include <gtest/gtest.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/mnist.h"
#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/early_stopping.h"
#include "tests/train_common.h"

namespace nn::test {
namespace {

TEST(TrainMlp, FashionMnistReaches85PercentOnCpu) {
  FashionMnist data = load_fashion_mnist_normalized();
  manual_seed(7);
  Generator gen(7);
  auto model = mlp_784_256_256_10({}, gen, /*dropout=*/0.1);
  Adam opt(model->parameters(), {.lr = 1e-3});
  CrossEntropyLoss criterion;
  EarlyStopping stopper(/*patience=*/2, /*min_delta=*/1e-4, MetricMode::Max);

  data::DataLoader train(data.train, {.batch_size = 128, .shuffle = true, .seed = 7,
                                      .drop_last = true, .prefetch = true});
  data::DataLoader val(data.val, {.batch_size = 1000});
  data::DataLoader test(data.test, {.batch_size = 1000});

  constexpr int kEpochs = 3;
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    model->train();
    for (const data::Batch& b : train) {
      Variable loss = criterion((*model)(Variable(b.inputs)), b.targets);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    double val_accuracy = accuracy(*model, val);
    if (stopper.step(val_accuracy, *model)) break;
  }
  stopper.restore_best(*model);
  double test_accuracy = accuracy(*model, test);
  RecordProperty("test_accuracy", std::to_string(test_accuracy));
  std::printf("Fashion-MNIST test accuracy on the CPU: %.4f (best validation %.4f)\n", test_accuracy,
              stopper.best());
  EXPECT_GE(test_accuracy, 0.85) << "best validation accuracy " << stopper.best();
}

}  // namespace
}  // namespace nn::test
