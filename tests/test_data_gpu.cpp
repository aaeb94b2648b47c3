// data/ on a GPU: a DataLoader that puts batches on CUDA (with and without the prefetch worker,
// on the default stream and on a side stream) gives the same batches as one on the CPU, and
// cuda::Event orders work between streams. Each test skips without a GPU.
#include <gtest/gtest.h>

#include <vector>

#include "core/event.h"
#include "core/stream.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace nn {
namespace {

// n examples: input [1, 8, 8] = 64 * i + pixel, target i.
std::shared_ptr<data::TensorDataset> indexed_dataset(int64_t n) {
  std::vector<float> x(static_cast<size_t>(n) * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = i;
  return std::make_shared<data::TensorDataset>(from_vector(x, {n, 1, 8, 8}), from_vector(y, {n}));
}

struct Seen {
  std::vector<std::vector<float>> inputs;  // inputs * 2, computed where the batch lives
  std::vector<std::vector<int64_t>> targets;
};

Seen run_epochs(data::DataLoader& loader, int epochs, Device expect) {
  Seen s;
  for (int e = 0; e < epochs; ++e) {
    for (const data::Batch& b : loader) {
      EXPECT_EQ(b.inputs.device(), expect);
      EXPECT_EQ(b.targets.device(), expect);
      // A kernel on the consumer's stream reads the batch: it must see the finished copy.
      s.inputs.push_back(mul(b.inputs, 2.0).to_vector<float>());
      s.targets.push_back(b.targets.to_vector<int64_t>());
    }
  }
  return s;
}

data::LoaderOptions options(Device device, bool prefetch) {
  return {.batch_size = 16,
          .shuffle = true,
          .seed = 21,
          .transform = data::compose(
              {data::random_crop(2), data::random_horizontal_flip(), data::gaussian_noise(0.05)}),
          .device = device,
          .prefetch = prefetch};
}

TEST(DataGpu, CudaLoaderMatchesTheCpuLoader) {
  NN_REQUIRE_GPU();
  auto ds = indexed_dataset(203);
  data::DataLoader cpu_loader(ds, options(Device::cpu(), false));
  const Seen want = run_epochs(cpu_loader, 2, Device::cpu());
  for (bool prefetch : {false, true}) {
    for (bool side_stream : {false, true}) {
      SCOPED_TRACE(std::string(prefetch ? "prefetch" : "no prefetch") +
                   (side_stream ? ", side stream" : ", default stream"));
      Stream stream = side_stream ? Stream::create(Device::cuda()) : cuda::current_stream(0);
      cuda::StreamGuard guard(stream);
      data::DataLoader loader(ds, options(Device::cuda(), prefetch));
      const Seen got = run_epochs(loader, 2, Device::cuda());
      EXPECT_EQ(got.targets, want.targets);
      EXPECT_EQ(got.inputs, want.inputs);
    }
  }
}

// The caller keeps every batch and reads them only at the end: no buffer may have been reused.
TEST(DataGpu, HeldBatchesAreNotOverwritten) {
  NN_REQUIRE_GPU();
  auto ds = indexed_dataset(150);
  data::DataLoader cpu_loader(ds, options(Device::cpu(), false));
  const Seen want = run_epochs(cpu_loader, 1, Device::cpu());
  data::DataLoader loader(ds, options(Device::cuda(), true));
  std::vector<data::Batch> kept;
  for (const data::Batch& b : loader) kept.push_back(b);
  ASSERT_EQ(kept.size(), want.inputs.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(mul(kept[i].inputs, 2.0).to_vector<float>(), want.inputs[i]) << "batch " << i;
    EXPECT_EQ(kept[i].targets.to_vector<int64_t>(), want.targets[i]) << "batch " << i;
  }
}

TEST(DataGpu, StoppingMidEpochOnCuda) {
  NN_REQUIRE_GPU();
  auto ds = indexed_dataset(300);
  for (int trial = 0; trial < 5; ++trial) {
    data::DataLoader loader(ds, options(Device::cuda(), true));
    int seen = 0;
    for (const data::Batch& b : loader) {
      EXPECT_EQ(b.size(), 16);
      if (++seen == trial + 1) break;
    }
    auto it = loader.begin();  // a new epoch while the old one's batches are still queued
    EXPECT_EQ(it->inputs.device(), Device::cuda());
  }
  cuda::synchronize();
}

TEST(DataGpu, EventOrdersWorkBetweenStreams) {
  NN_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  Stream producer = Stream::create(gpu), consumer = Stream::create(gpu);
  cuda::Event done = cuda::Event::create(gpu);
  EXPECT_TRUE(done.defined());
  EXPECT_TRUE(done.query());  // never recorded: nothing to wait for
  Tensor x;
  {
    cuda::StreamGuard guard(producer);
    x = full({1 << 22}, 3.0, {Dtype::Float32, gpu});
    for (int k = 0; k < 20; ++k) x = add(x, 1.0);  // a queue of kernels on the producer
    done.record();
  }
  Tensor y;
  {
    cuda::StreamGuard guard(consumer);
    done.wait();  // the consumer's kernels start after the producer's
    y = mul(x, 2.0);
    cuda::Event finished = cuda::Event::create(gpu);
    finished.record(consumer);
    finished.synchronize();
    EXPECT_TRUE(finished.query());
  }
  const std::vector<float> v = y.to_vector<float>();
  for (size_t i = 0; i < v.size(); i += 4099) ASSERT_EQ(v[i], 46.0f) << "element " << i;
  EXPECT_TRUE(done.query());

  cuda::Event start = cuda::Event::create(gpu, true), stop = cuda::Event::create(gpu, true);
  start.record(producer);
  {
    cuda::StreamGuard guard(producer);
    x = add(x, 1.0);
  }
  stop.record(producer);
  stop.synchronize();
  EXPECT_GE(cuda::Event::elapsed_ms(start, stop), 0.0f);
  EXPECT_THROW(done.record(Stream()), DeviceError);  // a CPU stream
}

}  // namespace
}  // namespace nn
