// One MLP training step (forward, cross-entropy, backward, Adam) in libnn_cuda and, when the
// build found LibTorch, in LibTorch in the same process on the same device and thread count,
// printed as a table of milliseconds per step and the ratio LibTorch / libnn_cuda (above 1:
// libnn_cuda is faster). Models: 784-256-256-10 and 784-1024-1024-10, batches 128 and 1024.
//
//   bench_mlp_step [--device cpu|cuda] [--steps N] [--warmup N] [--json]
//
// --json prints one JSON object per case instead of the table (bench/mlp_step_compare.sh joins
// them with PyTorch's numbers from bench/mlp_step_pytorch.py on a GPU machine).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "optim/adam.h"

#if defined(NN_BENCH_WITH_LIBTORCH)
#include <torch/torch.h>
#endif

namespace {

struct Case {
  std::vector<int64_t> sizes;
  int64_t batch;
  std::string name() const {
    std::string s;
    for (size_t i = 0; i < sizes.size(); ++i) s += (i ? "-" : "") + std::to_string(sizes[i]);
    return s + "/b" + std::to_string(batch);
  }
};

struct Options {
  nn::Device device = nn::Device::cpu();
  int steps = 30;
  int warmup = 5;
  bool json = false;
};

// Median over five rounds of the mean step time of a round, in milliseconds; `sync` waits for
// the device at the end of each round (a step itself never waits).
double time_steps(const std::function<void()>& step, const std::function<void()>& sync,
                  const Options& o) {
  for (int i = 0; i < o.warmup; ++i) step();
  sync();
  constexpr int kRounds = 5;
  const int per_round = std::max(1, o.steps / kRounds);
  std::vector<double> ms;
  for (int r = 0; r < kRounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < per_round; ++i) step();
    sync();
    std::chrono::duration<double, std::milli> dt = std::chrono::steady_clock::now() - t0;
    ms.push_back(dt.count() / per_round);
  }
  std::sort(ms.begin(), ms.end());
  return ms[kRounds / 2];
}

double time_nn(const Case& c, const Options& o) {
  nn::Generator gen(1);
  nn::TensorOptions to{.device = o.device};
  auto model = std::make_shared<nn::Sequential>();
  for (size_t i = 0; i + 1 < c.sizes.size(); ++i) {
    model->push_back(std::make_shared<nn::Linear>(c.sizes[i], c.sizes[i + 1], true,
                                                  nn::Activation::None, to, &gen));
    if (i + 2 < c.sizes.size()) model->push_back(std::make_shared<nn::ReLU>());
  }
  nn::Adam opt(model->parameters(), {.lr = 1e-3});
  nn::CrossEntropyLoss criterion;
  nn::Tensor x = nn::randn({c.batch, c.sizes.front()}, to, &gen);
  nn::Tensor y = nn::argmax(nn::randn({c.batch, c.sizes.back()}, to, &gen), 1);
  auto step = [&] {
    nn::Variable loss = criterion((*model)(nn::Variable(x)), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  auto sync = [&] {
    if (o.device.is_cuda()) nn::cuda::synchronize();
  };
  return time_steps(step, sync, o);
}

#if defined(NN_BENCH_WITH_LIBTORCH)
double time_libtorch(const Case& c, const Options& o) {
  torch::manual_seed(1);
  torch::Device device = o.device.is_cuda() ? torch::Device(torch::kCUDA, o.device.index)
                                            : torch::Device(torch::kCPU);
  torch::nn::Sequential model;
  for (size_t i = 0; i + 1 < c.sizes.size(); ++i) {
    model->push_back(torch::nn::Linear(c.sizes[i], c.sizes[i + 1]));
    if (i + 2 < c.sizes.size()) model->push_back(torch::nn::ReLU());
  }
  model->to(device);
  torch::optim::Adam opt(model->parameters(), torch::optim::AdamOptions(1e-3));
  auto x = torch::randn({c.batch, c.sizes.front()}, torch::TensorOptions().device(device));
  auto y = torch::randint(0, c.sizes.back(), {c.batch},
                          torch::TensorOptions().dtype(torch::kLong).device(device));
  auto step = [&] {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
  };
  auto sync = [&] {
    if (o.device.is_cuda()) torch::cuda::synchronize();
  };
  return time_steps(step, sync, o);
}
#endif

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      NN_CHECK(i + 1 < argc, ValueError, "bench_mlp_step: ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--device") {
      o.device = nn::Device::parse(value());
    } else if (a == "--steps") {
      o.steps = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--warmup") {
      o.warmup = std::max(0, std::atoi(value().c_str()));
    } else if (a == "--json") {
      o.json = true;
    } else {
      NN_THROW(ValueError, "bench_mlp_step: unknown flag '", a,
               "' (--device cpu|cuda, --steps N, --warmup N, --json)");
    }
  }
  nn::cuda::check_device(o.device, "bench_mlp_step --device");

  const std::vector<Case> cases = {{{784, 256, 256, 10}, 128}, {{784, 256, 256, 10}, 1024},
                                   {{784, 1024, 1024, 10}, 128}, {{784, 1024, 1024, 10}, 1024}};
  if (!o.json) {
    std::printf("MLP training step (forward, cross-entropy, backward, Adam) on %s, ms per step "
                "(median of 5 rounds)\n\n",
                o.device.str().c_str());
#if defined(NN_BENCH_WITH_LIBTORCH)
    std::printf("| case | libnn_cuda | LibTorch | LibTorch / libnn_cuda |\n|---|---|---|---|\n");
#else
    std::printf("| case | libnn_cuda |\n|---|---|\n(built without LibTorch: no peer in this run)\n");
#endif
  }
  for (const Case& c : cases) {
    double ours = time_nn(c, o);
    if (o.json) {
      std::printf("{\"case\": \"%s\", \"ms\": %.6f, \"device\": \"%s\", \"peer\": \"nn_cuda\"}\n",
                  c.name().c_str(), ours, o.device.str().c_str());
    }
#if defined(NN_BENCH_WITH_LIBTORCH)
    double peer = time_libtorch(c, o);
    if (o.json) {
      std::printf("{\"case\": \"%s\", \"ms\": %.6f, \"device\": \"%s\", \"peer\": \"libtorch\"}\n",
                  c.name().c_str(), peer, o.device.str().c_str());
    } else {
      std::printf("| %s | %.3f | %.3f | %.2fx |\n", c.name().c_str(), ours, peer, peer / ours);
    }
#else
    if (!o.json) std::printf("| %s | %.3f |\n", c.name().c_str(), ours);
#endif
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
