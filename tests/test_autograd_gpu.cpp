// Autograd on CUDA (CTest label gpu): every row of the gradient table (tests/grad_table.h) run
// on the GPU in float64 against the same row on the CPU, output and gradients; and the promise of
// graph/variable.h that a step is pure device work: forward and backward of a row make the host
// wait on the GPU zero times (nn::cuda::host_sync_count), except the rows listed in
// kRowsThatSync. Without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <set>

#include "graph/functions.h"
#include "tests/grad_table.h"
#include "tests/op_harness.h"
#include "tests/test_util.h"

namespace nn::test {
namespace {

// Rows whose ops wait on the host by design: to_device's op is a copy to the host.
const std::set<std::string> kRowsThatSync = {"to_device"};

constexpr double kTolerance = 1e-9;  // float64 on both sides; only summation order differs

struct DeviceRun {
  Tensor out;
  std::vector<Tensor> grads;
  int64_t forward_syncs = 0, backward_syncs = 0;
};

// The row's function and its gradients (seeded with `seed`, moved to the output's device) with
// every input on `device`.
DeviceRun run_on(const GradInstance& g, Device device, const Tensor& seed) {
  std::vector<Variable> vars, wrt;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const bool diff = g.options.differentiable.empty() || g.options.differentiable[i];
    vars.emplace_back(g.inputs[i].to(device), diff);
    if (diff) wrt.push_back(vars.back());
  }
  DeviceRun r;
  int64_t before = cuda::host_sync_count();
  Variable out = g.fn(vars);
  r.forward_syncs = cuda::host_sync_count() - before;
  const Tensor s = seed.to(out.device(), out.dtype());
  before = cuda::host_sync_count();
  r.grads = grad({out}, wrt, {s});
  r.backward_syncs = cuda::host_sync_count() - before;
  r.out = out.data();
  return r;
}

std::vector<std::string> row_names() {
  std::vector<std::string> names;
  for (const GradRow& row : grad_table()) names.push_back(row.name);
  return names;
}

class GradTableGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(GradTableGpu, MatchesTheCpuWithoutWaitingOnTheGpu) {
  NN_REQUIRE_GPU();
  const GradRow* row = nullptr;
  for (const GradRow& r : grad_table())
    if (r.name == GetParam()) row = &r;
  ASSERT_NE(row, nullptr);
  const uint32_t seed = case_seed("grad_gpu_" + row->name, Dtype::Float64);
  std::mt19937 rng(seed);
  for (int trial = 0; trial < row->trials && !HasFailure(); ++trial) {
    const GradInstance g = row->make(rng, trial);
    const std::string what = row->name + " (seed " + std::to_string(seed) + ", trial " +
                             std::to_string(trial) + ": " + g.desc + ")";
    // The CPU run fixes the output's shape, hence the seed both runs share.
    Tensor probe;
    {
      NoGradGuard no_grad;
      std::vector<Variable> vars;
      for (const Tensor& t : g.inputs) vars.emplace_back(t);
      probe = g.fn(vars).data();
    }
    Tensor seed_grad = randn(probe.shape(), {Dtype::Float64});
    const DeviceRun cpu = run_on(g, Device::cpu(), seed_grad);
    const DeviceRun gpu = run_on(g, Device::cuda(0), seed_grad);

    EXPECT_LE(max_rel_error(to_host(gpu.out), to_host(cpu.out), 1e-3), kTolerance)
        << what << ": output";
    ASSERT_EQ(gpu.grads.size(), cpu.grads.size()) << what;
    for (size_t i = 0; i < cpu.grads.size(); ++i) {
      ASSERT_EQ(gpu.grads[i].defined(), cpu.grads[i].defined()) << what << ": gradient " << i;
      if (!cpu.grads[i].defined()) continue;
      EXPECT_TRUE(gpu.grads[i].device().is_cuda()) << what << ": gradient " << i;
      EXPECT_LE(max_rel_error(to_host(gpu.grads[i]), to_host(cpu.grads[i]), 1e-3), kTolerance)
          << what << ": gradient " << i;
    }
    if (!kRowsThatSync.count(row->name)) {
      EXPECT_EQ(gpu.forward_syncs, 0) << what << ": forward waited on the GPU";
      EXPECT_EQ(gpu.backward_syncs, 0) << what << ": backward waited on the GPU";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, GradTableGpu, ::testing::ValuesIn(row_names()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// A small training step built from the fused ops: forward, loss, backward and a manual SGD
// update, with no host wait anywhere until the loss is read.
TEST(AutogradGpu, TrainingStepNeverWaitsOnTheGpu) {
  NN_REQUIRE_GPU();
  const TensorOptions opt{Dtype::Float32, Device::cuda(0)};
  Generator gen(3);
  Variable x(randn({64, 32}, opt, &gen)), w1(randn({48, 32}, opt, &gen), true),
      b1(zeros({48}, opt), true), w2(randn({10, 48}, opt, &gen), true);
  const Tensor labels = abs(randn({64}, opt, &gen)).to(Dtype::Int64);  // classes 0..3 or so
  const int64_t before = cuda::host_sync_count();
  for (int step = 0; step < 3; ++step) {
    Variable h = dropout(linear(x, w1, b1, Activation::Gelu), 0.1, true, &gen);
    Variable loss = cross_entropy(linear(h, w2), labels);
    loss.backward();
    NoGradGuard no_grad;
    for (Variable* p : {&w1, &b1, &w2}) {
      Tensor& d = p->data();
      sub_(d, mul(p->grad(), 0.01));
      p->zero_grad(false);
    }
  }
  EXPECT_EQ(cuda::host_sync_count(), before);
}

}  // namespace
}  // namespace nn::test
