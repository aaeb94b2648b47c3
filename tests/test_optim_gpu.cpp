// optim/ on CUDA: each optimizer's fused step equals the CPU step (float32, many parameters, more
// than one launch's worth, some without a gradient), clipping and the optimizer step leave the
// host-sync counter unchanged, and optimizer state moves between devices. Every test skips
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "kernels/ops.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<Variable>)>;

struct GpuCase {
  std::string name;
  MakeOptimizer make;
};

// Parameter shapes: awkward sizes, one past the vectorised paths, and enough small tensors that
// a group needs more than one launch (kMaxTensorsPerLaunch).
std::vector<Shape> param_shapes() {
  std::vector<Shape> shapes = {{1}, {7}, {33, 5}, {1000}, {70001}, {3, 1, 4}};
  for (int i = 0; i < int(kMaxTensorsPerLaunch) + 6; ++i) shapes.push_back({int64_t(i % 5 + 1)});
  return shapes;
}

// The same parameters on the CPU and on cuda:0.
struct Twins {
  std::vector<Variable> cpu, gpu;
  explicit Twins(uint64_t seed) {
    Generator gen(seed);
    for (const Shape& s : param_shapes()) {
      Tensor init = randn(s, {Dtype::Float32}, &gen);
      cpu.emplace_back(init.clone(), true);
      gpu.emplace_back(init.to(Device::cuda()), true);
    }
  }
  // Fresh gradients for both; parameter i gets none when skip(i).
  void set_grads(Generator& gen, const std::function<bool(size_t)>& skip = {}) {
    for (size_t i = 0; i < cpu.size(); ++i) {
      if (skip && skip(i)) {
        cpu[i].set_grad(Tensor());
        gpu[i].set_grad(Tensor());
        continue;
      }
      Tensor g = randn(cpu[i].shape(), {Dtype::Float32}, &gen);
      cpu[i].set_grad(g);
      gpu[i].set_grad(g.to(Device::cuda()));
    }
  }
  // Max over elements of |gpu - cpu| / max(1, |cpu|).
  double max_error() const {
    double worst = 0.0;
    for (size_t i = 0; i < cpu.size(); ++i) {
      const std::vector<float> a = cpu[i].data().to_vector<float>();
      const std::vector<float> b = gpu[i].data().to_vector<float>();
      for (size_t k = 0; k < a.size(); ++k)
        worst =
            std::max(worst, std::abs(double(b[k]) - a[k]) / std::max(1.0, std::abs(double(a[k]))));
    }
    return worst;
  }
};

class OptimGpu : public ::testing::TestWithParam<GpuCase> {};

TEST_P(OptimGpu, StepMatchesTheCpu) {
  NN_REQUIRE_GPU();
  Twins p(1);
  auto cpu = GetParam().make(p.cpu);
  auto gpu = GetParam().make(p.gpu);
  Generator gen(2);
  for (int step = 0; step < 3; ++step) {
    // On step 1 every third parameter has no gradient: skipped, and later a step behind.
    p.set_grads(gen, [step](size_t i) { return step == 1 && i % 3 == 0; });
    cpu->step();
    gpu->step();
    EXPECT_LE(p.max_error(), 2e-5) << GetParam().name << " step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Optim, OptimGpu,
    ::testing::Values(
        GpuCase{"sgd_nesterov_wd",
                [](auto v) {
                  return std::make_unique<SGD>(
                      v, SGDOptions{
                             .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
                }},
        GpuCase{"sgd_dampening_maximize",
                [](auto v) {
                  return std::make_unique<SGD>(
                      v,
                      SGDOptions{.lr = 0.1, .momentum = 0.5, .dampening = 0.3, .maximize = true});
                }},
        GpuCase{"adam_amsgrad_wd",
                [](auto v) {
                  return std::make_unique<Adam>(
                      v, AdamOptions{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true});
                }},
        GpuCase{"adamw",
                [](auto v) { return std::make_unique<AdamW>(v, AdamWOptions{.lr = 0.01}); }},
        GpuCase{"rmsprop_centered_momentum",
                [](auto v) {
                  return std::make_unique<RMSprop>(
                      v, RMSpropOptions{.lr = 0.01, .momentum = 0.9, .centered = true});
                }},
        GpuCase{"rmsprop", [](auto v) { return std::make_unique<RMSprop>(v, RMSpropOptions{}); }}),
    [](const auto& tp) { return tp.param.name; });

TEST(OptimGpuSync, ClippingAndStepsDoNotWaitForTheDevice) {
  NN_REQUIRE_GPU();
  Twins p(3);
  Adam gpu(p.gpu, {.lr = 0.01});
  Generator gen(4);
  p.set_grads(gen);
  gpu.step();  // the first step allocates the state
  cuda::synchronize();

  const int64_t before = cuda::host_sync_count();
  const Tensor norm = clip_grad_norm_(p.gpu, 0.5);
  const Tensor inf_norm = total_grad_norm(p.gpu, INFINITY);
  gpu.step();
  gpu.step(clip_coefficient(total_grad_norm(p.gpu), 0.25));
  clip_grad_value_(p.gpu, 0.1);
  gpu.zero_grad();
  EXPECT_EQ(cuda::host_sync_count(), before);
  EXPECT_TRUE(norm.device().is_cuda());
  EXPECT_EQ(norm.dim(), 0);

  // The values agree with the CPU's (reading them back is the one sync, after the check).
  Adam cpu(p.cpu, {.lr = 0.01});
  Generator gen2(4);
  p.set_grads(gen2);
  cpu.step();
  const double cpu_norm = clip_grad_norm_(p.cpu, 0.5).item();
  EXPECT_NEAR(norm.item(), cpu_norm, 1e-5 * cpu_norm);
  EXPECT_NEAR(inf_norm.item(), total_grad_norm(p.cpu, INFINITY).item(), 1e-6);
}

TEST(OptimGpuState, MovesBetweenDevices) {
  NN_REQUIRE_GPU();
  Twins p(5);
  Adam gpu(p.gpu, {.lr = 0.01, .amsgrad = true});
  Adam cpu(p.cpu, {.lr = 0.01, .amsgrad = true});
  Generator gen(6);
  p.set_grads(gen);
  gpu.step();
  for (size_t i = 0; i < p.cpu.size(); ++i) p.cpu[i].data().copy_(p.gpu[i].data());
  cpu.load_state_dict(gpu.state_dict());  // CUDA buffers copied into CPU ones
  for (const auto& [name, t] : cpu.state_dict().tensors) EXPECT_TRUE(t.device().is_cpu()) << name;
  p.set_grads(gen);
  gpu.step();
  cpu.step();
  EXPECT_LE(p.max_error(), 2e-5);
}

}  // namespace
}  // namespace nn
