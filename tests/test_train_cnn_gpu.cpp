// Convolutional training on CUDA. The full runs: the LeNet-style CNN with batch norm and the
// small ResNet each reach at least 91% test accuracy on Fashion-MNIST. And a steady-state CNN
// step (convolutions, batch norm with its in-place running statistics, pooling, backward, Adam)
// is device work only: no host synchronisation, no driver allocation, flat reserved bytes.
#include <chrono>
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/device.h"
#include "tests/test_util.h"
#include "tests/train_cnn.h"
#include "tests/train_common.h"

namespace nn::test {
namespace {

// Trains for `epochs` full epochs on the GPU and returns the test accuracy.
double full_run(Module& model, const FashionMnist& data, int64_t epochs, int64_t batch, double lr,
                const char* what) {
  data::DataLoader train(data.train, {.batch_size = batch,
                                      .shuffle = true,
                                      .seed = 5,
                                      .drop_last = true,
                                      .device = Device::cuda(),
                                      .prefetch = true});
  data::DataLoader test(data.test, {.batch_size = 1000, .device = Device::cuda()});
  const auto start = std::chrono::steady_clock::now();
  train_steps(model, train, epochs * train.size(), lr, /*weight_decay=*/1e-4);
  const double acc = accuracy(model, test);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s on Fashion-MNIST, GPU: %lld epochs in %.1f s, test accuracy %.4f\n", what,
              (long long)epochs, seconds, acc);
  return acc;
}

TEST(TrainCnnGpu, LeNetWithBatchNormReaches91Percent) {
  NN_REQUIRE_GPU();
  FashionMnist data = load_fashion_mnist_normalized();
  manual_seed(5);
  Generator gen(5);
  auto model = lenet({32, 64}, {128}, /*batch_norm=*/true, /*dropout=*/0.25,
                     {.device = Device::cuda()}, gen);
  EXPECT_GE(full_run(*model, data, /*epochs=*/10, /*batch=*/128, /*lr=*/2e-3, "LeNet-BN"), 0.91);
}

TEST(TrainCnnGpu, SmallResNetReaches91Percent) {
  NN_REQUIRE_GPU();
  FashionMnist data = load_fashion_mnist_normalized();
  manual_seed(6);
  Generator gen(6);
  auto model = small_resnet({16, 32, 64}, {.device = Device::cuda()}, gen);
  EXPECT_GE(full_run(*model, data, /*epochs=*/6, /*batch=*/128, /*lr=*/2e-3, "ResNet"), 0.91);
}

TEST(TrainCnnGpu, SteadyStateStepHasNoHostSyncAndNoDriverAllocation) {
  NN_REQUIRE_GPU();
  Generator gen(7);
  const TensorOptions on_gpu{.device = Device::cuda()};
  auto model = small_resnet({8, 16}, on_gpu, gen);
  Adam opt(model->parameters(), {.lr = 1e-3});
  CrossEntropyLoss criterion;
  const Tensor x = randn({64, 1, 28, 28}, on_gpu, &gen);
  const Tensor y = argmax(randn({64, 10}, on_gpu, &gen), 1);
  Tensor loss_sum = zeros({}, on_gpu);
  auto step = [&] {
    Variable loss = criterion((*model)(Variable(x)), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
    add_(loss_sum, loss.data());
  };
  // Optimizer state, the allocator's cache and any per-shape convolution choice warm up.
  for (int i = 0; i < 3; ++i) step();
  cuda::synchronize();
  const int64_t syncs = cuda::host_sync_count();
  const MemoryStats before = cuda::memory_stats(0);
  for (int i = 0; i < 10; ++i) step();
  const MemoryStats after = cuda::memory_stats(0);
  EXPECT_EQ(cuda::host_sync_count(), syncs) << "the host waited on the GPU inside a step";
  EXPECT_EQ(after.num_device_allocs, before.num_device_allocs) << "cudaMalloc inside a step";
  EXPECT_EQ(after.reserved_bytes, before.reserved_bytes) << "reserved bytes grew";
  EXPECT_TRUE(std::isfinite(loss_sum.item()));
  // Every batch norm counted the 13 training batches on the device.
  for (const auto& [name, t] : model->named_buffers()) {
    if (name.ends_with("num_batches_tracked")) {
      EXPECT_EQ(t.item(), 13.0) << name;
    }
  }
}

}  // namespace
}  // namespace nn::test
