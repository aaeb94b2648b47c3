// Training on CUDA. A steady-state step (forward, cross-entropy, backward, clipping, the fused
// optimizer step, and the loader's prefetch) is device work only: no host synchronisation and no
// driver allocation, and the caching allocator's reserved bytes stay flat. And the MLP learns
// Fashion-MNIST on the GPU as it does on the CPU.
#include <cmath>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/device.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "layers/loss.h"
#include "tests/test_util.h"
#include "tests/train_common.h"

namespace nn::test {
namespace {

struct Snapshot {
  int64_t syncs, driver_allocs, reserved;
  static Snapshot take() {
    MemoryStats s = cuda::memory_stats(0);
    return {cuda::host_sync_count(), s.num_device_allocs, s.reserved_bytes};
  }
};

void expect_device_only(const Snapshot& before, const Snapshot& after, const char* what) {
  EXPECT_EQ(after.syncs, before.syncs) << what << ": the host waited on the GPU inside a step";
  EXPECT_EQ(after.driver_allocs, before.driver_allocs) << what << ": cudaMalloc inside a step";
  EXPECT_EQ(after.reserved, before.reserved) << what << ": reserved bytes grew";
}

TEST(TrainGpu, SteadyStateStepHasNoHostSyncAndNoDriverAllocation) {
  NN_REQUIRE_GPU();
  Generator gen(3);
  TensorOptions on_gpu{.device = Device::cuda()};
  auto model = mlp_784_256_256_10(on_gpu, gen, /*dropout=*/0.1);
  Adam opt(model->parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
  CrossEntropyLoss criterion(Tensor(), /*label_smoothing=*/0.1);
  Tensor x = randn({256, 1, 28, 28}, on_gpu, &gen);
  Tensor y = argmax(randn({256, 10}, on_gpu, &gen), 1);
  Tensor loss_sum = zeros({}, on_gpu);
  auto params = model->parameters();
  auto step = [&] {
    Variable loss = criterion((*model)(Variable(x)), y);
    opt.zero_grad();
    loss.backward();
    clip_grad_norm_(params, 1.0);
    opt.step();
    add_(loss_sum, loss.data());  // the loss stays on the device
  };
  for (int i = 0; i < 3; ++i) step();  // optimizer state and the allocator's cache warm up
  cuda::synchronize();
  Snapshot before = Snapshot::take();
  for (int i = 0; i < 10; ++i) step();
  Snapshot after = Snapshot::take();
  expect_device_only(before, after, "MLP step");
  double total = loss_sum.item();  // the one read the test asks for
  EXPECT_TRUE(std::isfinite(total));
  EXPECT_EQ(cuda::host_sync_count(), after.syncs + 1);
}

TEST(TrainGpu, PrefetchingLoaderStepHasNoHostSync) {
  NN_REQUIRE_GPU();
  Generator gen(5);
  Tensor images = rand({2048, 1, 28, 28}, {}, &gen);
  Tensor labels = argmax(rand({2048, 10}, {}, &gen), 1);
  auto dataset = std::make_shared<data::TensorDataset>(images, labels);
  data::DataLoader loader(dataset, {.batch_size = 128, .shuffle = true, .seed = 1,
                                    .drop_last = true, .device = Device::cuda(), .prefetch = true});
  auto model = mlp_784_256_256_10({.device = Device::cuda()}, gen, 0.0);
  SGD opt(model->parameters(), {.lr = 0.05, .momentum = 0.9, .nesterov = true});
  CrossEntropyLoss criterion;
  auto run_epoch = [&] {
    for (const data::Batch& b : loader) {
      Variable loss = criterion((*model)(Variable(b.inputs)), b.targets);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  };
  run_epoch();
  cuda::synchronize();
  Snapshot before = Snapshot::take();
  run_epoch();
  Snapshot after = Snapshot::take();
  EXPECT_EQ(after.syncs, before.syncs) << "the host waited on the GPU during an epoch";
  EXPECT_EQ(after.driver_allocs, before.driver_allocs) << "cudaMalloc during an epoch";
}

TEST(TrainGpu, FashionMnistReaches85PercentOnGpu) {
  NN_REQUIRE_GPU();
  FashionMnist data = load_fashion_mnist_normalized();
  Generator gen(7);
  auto model = mlp_784_256_256_10({.device = Device::cuda()}, gen, 0.1);
  Adam opt(model->parameters(), {.lr = 1e-3});
  CrossEntropyLoss criterion;
  data::DataLoader train(data.train, {.batch_size = 128, .shuffle = true, .seed = 7,
                                      .drop_last = true, .device = Device::cuda(),
                                      .prefetch = true});
  data::DataLoader test(data.test, {.batch_size = 1000, .device = Device::cuda()});
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (const data::Batch& b : train) {
      Variable loss = criterion((*model)(Variable(b.inputs)), b.targets);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  EXPECT_GE(accuracy(*model, test), 0.85);
}

}  // namespace
}  // namespace nn::test
