// Layers on CUDA against the CPU path: a small MLP's outputs and gradients, parameters drawn on
// either device from the same seed, Dropout's mask, state dicts crossing devices, and the losses.
// Every test skips with a reason when no GPU is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/functions.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::max_rel;


std::shared_ptr<Sequential> make_mlp(Dtype dtype, uint64_t seed = 5) {
  Generator gen(seed);
  const TensorOptions opt{dtype};
  return std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Linear>(12, 32, true, Activation::None, opt, &gen),
      std::make_shared<ReLU>(),  // fused into the Linear above
      std::make_shared<Linear>(32, 16, true, Activation::None, opt, &gen),
      std::make_shared<GELU>("tanh"),
      std::make_shared<Linear>(16, 16, false, Activation::Silu, opt, &gen),
      std::make_shared<LeakyReLU>(0.1),
      std::make_shared<Linear>(16, 5, true, Activation::None, opt, &gen)});
}

TEST(LayersGpu, MlpOutputsAndGradientsMatchTheCpu) {
  NN_REQUIRE_GPU();
  set_allow_tf32(false);
  for (Dtype dt : {Dtype::Float32, Dtype::Float64}) {
    const double tol = dt == Dtype::Float32 ? 1e-4 : 1e-10;
    auto cpu = make_mlp(dt), gpu = make_mlp(dt);
    gpu->to(Device::cuda());
    Generator gen(8);
    const Tensor x = randn({24, 12}, {dt}, &gen);
    const Tensor target = from_vector<int64_t>(std::vector<int64_t>(24, 3), {24});
    const Variable yc = (*cpu)(Variable(x));
    const Variable yg = (*gpu)(Variable(x.to(Device::cuda())));
    EXPECT_EQ(yg.device(), Device::cuda());
    EXPECT_LT(max_rel(yg.data().to(Device::cpu()), yc.data()), tol) << dtype_name(dt);

    cross_entropy(yc, target).backward();
    cross_entropy(yg, target.to(Device::cuda())).backward();
    const auto pc = cpu->named_parameters(), pg = gpu->named_parameters();
    ASSERT_EQ(pc.size(), pg.size());
    for (size_t i = 0; i < pc.size(); ++i) {
      ASSERT_TRUE(pg[i].second.grad().defined()) << pg[i].first;
      EXPECT_EQ(pg[i].second.grad().device(), Device::cuda()) << pg[i].first;
      EXPECT_LT(max_rel(pg[i].second.grad().to(Device::cpu()), pc[i].second.grad()), tol)
          << dtype_name(dt) << " " << pc[i].first;
    }
  }
}

TEST(LayersGpu, ParametersDrawnOnCudaMatchTheCpuForTheSameSeed) {
  NN_REQUIRE_GPU();
  Generator g1(17), g2(17);
  Linear cpu(40, 30, true, Activation::None, {Dtype::Float32, Device::cpu()}, &g1);
  Linear gpu(40, 30, true, Activation::None, {Dtype::Float32, Device::cuda()}, &g2);
  EXPECT_EQ(gpu.weight().device(), Device::cuda());
  EXPECT_LT(max_rel(gpu.weight().data().to(Device::cpu()), cpu.weight().data()), 1e-6);
  EXPECT_LT(max_rel(gpu.bias().data().to(Device::cpu()), cpu.bias().data()), 1e-6);
}

TEST(LayersGpu, DropoutDrawsTheSameMaskOnBothDevices) {
  NN_REQUIRE_GPU();
  const Tensor x = ones({64, 257});
  Dropout on_cpu(0.3, 42), on_gpu(0.3, 42);
  for (int call = 0; call < 2; ++call) {  // the generators advance alike
    const std::vector<float> c = on_cpu(Variable(x)).data().to_vector<float>();
    const std::vector<float> g =
        on_gpu(Variable(x.to(Device::cuda()))).data().to(Device::cpu()).to_vector<float>();
    ASSERT_EQ(c.size(), g.size());
    for (size_t i = 0; i < c.size(); ++i)
      ASSERT_EQ(c[i] == 0.0f, g[i] == 0.0f) << "call " << call << " at " << i;
  }
  on_gpu.eval();
  const Tensor xg = x.to(Device::cuda());
  EXPECT_EQ(max_rel(on_gpu(Variable(xg)).data().to(Device::cpu()), x), 0.0);
}

TEST(LayersGpu, StateDictsCrossDevices) {
  NN_REQUIRE_GPU();
  auto cpu = make_mlp(Dtype::Float32);
  auto gpu = make_mlp(Dtype::Float32, 99);  // other weights
  gpu->to(Device::cuda());
  EXPECT_TRUE(gpu->load_state_dict(cpu->state_dict()).ok());  // CPU tensors into a CUDA model
  for (auto& [name, t] : gpu->state_dict()) EXPECT_EQ(t.device(), Device::cuda()) << name;
  const Tensor x = randn({3, 12});
  EXPECT_LT(max_rel((*gpu)(Variable(x.to(Device::cuda()))).data().to(Device::cpu()),
                    (*cpu)(Variable(x)).data()),
            1e-4);
}

TEST(LayersGpu, LossesMatchTheCpu) {
  NN_REQUIRE_GPU();
  Generator gen(3);
  const Tensor x = mul(randn({6, 4}, {Dtype::Float64}, &gen), 30.0);  // large logits too
  const Tensor y = rand({6, 4}, {Dtype::Float64}, &gen);
  const Tensor pw = from_vector<double>({0.5, 1.0, 2.0, 4.0}, {4});
  const Device cu = Device::cuda();
  for (Reduction r : {Reduction::None, Reduction::Sum, Reduction::Mean}) {
    Variable xc(x, true), xg(x.to(cu), true);
    const Variable lc = binary_cross_entropy_with_logits(xc, Variable(y), r, pw);
    const Variable lg = binary_cross_entropy_with_logits(xg, Variable(y.to(cu)), r, pw.to(cu));
    EXPECT_LT(max_rel(lg.data().to(Device::cpu()), lc.data()), 1e-12);
    sum(lc).backward();
    sum(lg).backward();
    EXPECT_LT(max_rel(xg.grad().to(Device::cpu()), xc.grad()), 1e-12);
    const Variable mc = mse_loss(Variable(x), Variable(y), r);
    const Variable mg = mse_loss(Variable(x.to(cu)), Variable(y.to(cu)), r);
    EXPECT_LT(max_rel(mg.data().to(Device::cpu()), mc.data()), 1e-12);
  }
}

}  // namespace
}  // namespace nn
