// The fused training ops on CUDA (CTest label gpu), against the CPU path on the same inputs:
// linear_backward, cross_entropy_backward (including rows of more than 1024 classes, where a
// block owns a row) and optimizer_step for every kind and option, float32/float64 and the half
// types, with a group of more tensors than one launch takes; a bad target gives NaN; and the
// host-sync counter: item() counts, an asynchronous pinned copy does not, and a whole training
// step (forward, backward, clipping, optimizer) runs without the host waiting once.
// Without a GPU every test skips with the reason. (The forward rows run in test_ops_gpu.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/stream.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

namespace nn {
namespace {

using ::nn::test::max_rel;

const Device kGpu = Device::cuda(0);
const std::vector<Dtype> kDtypes = {Dtype::Float32, Dtype::Float64, Dtype::BFloat16,
                                    Dtype::Float16};


// CUDA vs CPU tolerance: the two paths sum in different orders and the half types round once.
double tol(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return 2e-5;
    case Dtype::Float64:
      return 1e-12;
    case Dtype::BFloat16:
      return 1.6e-2;
    default:
      return 4e-3;
  }
}

TEST(NnOpsGpu, LinearBackwardMatchesCpu) {
  NN_REQUIRE_GPU();
  const LinearBackend restore = linear_backend();
  for (LinearBackend backend : {LinearBackend::Ours, LinearBackend::Cublas, LinearBackend::Auto}) {
    set_linear_backend(backend);
    for (Dtype dt : kDtypes) {
      for (Activation act :
           {Activation::None, Activation::Relu, Activation::Gelu, Activation::GeluTanh,
            Activation::Silu, Activation::Tanh, Activation::Sigmoid}) {
        Generator gen(17);
        const Tensor x = randn({3, 37, 65}, {dt}, &gen), w = randn({29, 65}, {dt}, &gen);
        const Tensor b = randn({29}, {dt}, &gen), gy = randn({3, 37, 29}, {dt}, &gen);
        Tensor saved_c, saved_g;
        const Tensor y_c = linear(x, w, b, act, &saved_c);
        const Tensor y_g = linear(x.to(kGpu), w.to(kGpu), b.to(kGpu), act, &saved_g);
        const LinearGrads c = linear_backward(gy, x, w, saved_c, act, true, true, true);
        const LinearGrads g =
            linear_backward(gy.to(kGpu), x.to(kGpu), w.to(kGpu), saved_g, act, true, true, true);
        const std::string ctx = std::string(linear_backend_name(backend)) + " " + dtype_name(dt) +
                                " " + activation_name(act);
        EXPECT_LE(max_rel(y_g, y_c, 1.0), tol(dt)) << ctx << " y";
        EXPECT_LE(max_rel(g.dx, c.dx, 1.0), 4 * tol(dt)) << ctx << " dx";
        EXPECT_LE(max_rel(g.dw, c.dw, 1.0), 4 * tol(dt)) << ctx << " dw";
        EXPECT_LE(max_rel(g.db, c.db, 1.0), 4 * tol(dt)) << ctx << " db";
        EXPECT_TRUE(g.dx.device().is_cuda());
      }
    }
  }
  set_linear_backend(restore);
}

// Cross-entropy forward and backward against the CPU: KernelsVecGpu.CrossEntropyMatchesCpu.

TEST(NnOpsGpu, CrossEntropyBadTargetGivesNan) {
  NN_REQUIRE_GPU();
  const Tensor z = zeros({3, 4}, {Dtype::Float32, kGpu});
  const Tensor t = from_vector<int64_t>({0, 9, 2}, {3}, {Dtype::Int64, kGpu});
  Tensor sw;
  const std::vector<double> loss = cross_entropy(z, t, {}, nullptr, &sw).to_vector<double>();
  EXPECT_NEAR(loss[0], std::log(4.0), 1e-6);
  EXPECT_TRUE(std::isnan(loss[1]));
  EXPECT_TRUE(std::isnan(sw.to_vector<double>()[1]));
  const std::vector<double> g =
      cross_entropy_backward(ones({3}, {Dtype::Float32, kGpu}), z, t, Tensor()).to_vector<double>();
  for (int c = 0; c < 4; ++c) EXPECT_TRUE(std::isnan(g[size_t(4 + c)]));
  EXPECT_NEAR(g[0], 0.25 - 1.0, 1e-6);
}

// ---- optimizer step -------------------------------------------------------------------------

std::vector<OptimizerHyper> optimizer_variants() {
  auto h = [](OptimizerKind k, double lr, const std::function<void(OptimizerHyper&)>& f) {
    OptimizerHyper o;
    o.kind = k;
    o.lr = lr;
    f(o);
    return o;
  };
  using K = OptimizerKind;
  return {
      h(K::Sgd, 0.1, [](OptimizerHyper&) {}),
      h(K::Sgd, 0.1,
        [](OptimizerHyper& o) { o.momentum = 0.9, o.dampening = 0.1, o.weight_decay = 0.01; }),
      h(K::Sgd, 0.1,
        [](OptimizerHyper& o) { o.momentum = 0.9, o.nesterov = true, o.maximize = true; }),
      h(K::Adam, 0.01, [](OptimizerHyper& o) { o.weight_decay = 0.1; }),
      h(K::Adam, 0.01, [](OptimizerHyper& o) { o.amsgrad = true, o.maximize = true; }),
      h(K::AdamW, 0.01, [](OptimizerHyper& o) { o.weight_decay = 0.1, o.amsgrad = true; }),
      h(K::RMSprop, 0.01, [](OptimizerHyper& o) { o.momentum = 0.9; }),
      h(K::RMSprop, 0.01,
        [](OptimizerHyper& o) { o.centered = true, o.weight_decay = 0.1, o.momentum = 0.5; }),
  };
}

// `count` parameters with sizes around the chunk and vector boundaries, some of them views at odd
// offsets into one flat buffer (the unaligned scalar path), all with zero states as `h` needs.
ParamGroupTensors make_group(const OptimizerHyper& h, Dtype dt, Device dev, int count,
                             Generator& gen) {
  static const int64_t kSizes[] = {1, 3, 8, 17, 64, 1000, 16384, 16389, 40000};
  ParamGroupTensors g;
  int64_t flat = 0;
  for (int i = 0; i < count; ++i) flat += kSizes[i % 9] + 1;
  const Tensor buffer = randn({flat}, {dt}, &gen).to(dev);
  int64_t at = 1;
  for (int i = 0; i < count; ++i) {
    const int64_t n = kSizes[i % 9];
    if (i % 3 == 0) {
      g.params.push_back(buffer.narrow(0, at, n));  // contiguous, odd offset
    } else {
      g.params.push_back(randn({n}, {dt}, &gen).to(dev));
    }
    at += n + 1;
    g.grads.push_back(randn({n}, {dt}, &gen).to(dev));
  }
  const bool use[3] = {optimizer_state_used(h, 0), optimizer_state_used(h, 1),
                       optimizer_state_used(h, 2)};
  std::vector<Tensor>* lists[3] = {&g.state0, &g.state1, &g.state2};
  for (int s = 0; s < 3; ++s)
    if (use[s])
      for (const Tensor& p : g.params) lists[s]->push_back(zeros(p.shape(), {dt, dev}));
  return g;
}

// A deep copy of the group on another device.
ParamGroupTensors copy_to(const ParamGroupTensors& g, Device dev) {
  auto copy = [&](const std::vector<Tensor>& l) {
    std::vector<Tensor> r;
    for (const Tensor& t : l) r.push_back(t.to(dev).clone());
    return r;
  };
  return {copy(g.params), copy(g.grads), copy(g.state0), copy(g.state1), copy(g.state2)};
}

TEST(NnOpsGpu, OptimizerStepMatchesCpuOverManyTensors) {
  NN_REQUIRE_GPU();
  // More tensors than one launch takes: the group is split into several launches.
  const int count = int(2 * kMaxTensorsPerLaunch + 7);
  for (Dtype dt : kDtypes) {
    for (const OptimizerHyper& base : optimizer_variants()) {
      Generator gen(99);
      ParamGroupTensors gpu = make_group(base, dt, kGpu, count, gen);
      ParamGroupTensors cpu = copy_to(gpu, Device::cpu());
      // Scaled gradients (global-norm clipping): a device scalar, no host read.
      const Tensor scale_g = full({}, 0.75, {Dtype::Float32, kGpu});
      const Tensor scale_c = full({}, 0.75, {Dtype::Float32});
      OptimizerHyper h = base;
      for (int step = 1; step <= 3; ++step) {
        h.step = step;
        optimizer_step(gpu, h, scale_g);
        optimizer_step(cpu, h, scale_c);
      }
      const std::string ctx = std::string(dtype_name(dt)) + " " + optimizer_kind_name(h.kind) +
                              " momentum " + std::to_string(h.momentum) + " amsgrad " +
                              std::to_string(h.amsgrad);
      // Same maths on both sides; float32 differs by fma contraction at most.
      const double t = dt == Dtype::Float64 ? 1e-12 : dt == Dtype::Float32 ? 1e-5 : tol(dt);
      for (int i = 0; i < count; ++i) {
        ASSERT_LE(max_rel(gpu.params[size_t(i)], cpu.params[size_t(i)], 1.0), t)
            << ctx << " param " << i;
        if (!cpu.state0.empty()) {
          ASSERT_LE(max_rel(gpu.state0[size_t(i)], cpu.state0[size_t(i)], 1.0), t)
              << ctx << " state0 " << i;
        }
      }
    }
  }
}

// ---- host-sync counter ----------------------------------------------------------------------

TEST(NnOpsGpu, HostSyncCounter) {
  NN_REQUIRE_GPU();
  const Tensor dev = full({256}, 2.0, {Dtype::Float32, kGpu});
  int64_t before = cuda::host_sync_count();
  EXPECT_EQ(sum(dev).item(), 512.0);  // item() waits for the device
  EXPECT_GE(cuda::host_sync_count(), before + 1);

  Tensor pinned = empty({256}, TensorOptions{Dtype::Float32, Device::cpu(), true});
  ASSERT_TRUE(pinned.is_pinned());
  before = cuda::host_sync_count();
  pinned.copy_(dev, /*non_blocking=*/true);  // device -> pinned host, asynchronous
  Tensor back = empty({256}, {Dtype::Float32, kGpu});
  back.copy_(pinned, /*non_blocking=*/true);  // pinned host -> device, asynchronous
  EXPECT_EQ(cuda::host_sync_count(), before);
  cuda::current_stream(0).synchronize();
  EXPECT_EQ(cuda::host_sync_count(), before + 1);
  EXPECT_EQ(pinned.to_vector<float>()[255], 2.0f);
  cuda::synchronize();
  EXPECT_EQ(cuda::host_sync_count(), before + 2);
}

TEST(NnOpsGpu, SteadyStateTrainingStepNeverWaits) {
  NN_REQUIRE_GPU();
  Generator gen(5);
  const TensorOptions o{Dtype::Float32, kGpu};
  Tensor w1 = randn({64, 32}, o, &gen), b1 = zeros({64}, o), w2 = randn({10, 64}, o, &gen),
         b2 = zeros({10}, o);
  const Tensor x = randn({128, 32}, o, &gen);
  const Tensor target =
      from_vector<int64_t>(std::vector<int64_t>(128, 3), {128}, {Dtype::Int64, kGpu});
  OptimizerHyper h;
  h.kind = OptimizerKind::AdamW;
  h.weight_decay = 0.01;
  ParamGroupTensors group;
  group.params = {w1, b1, w2, b2};
  for (const Tensor& p : group.params) {
    group.state0.push_back(zeros_like(p));
    group.state1.push_back(zeros_like(p));
  }
  auto step = [&](int64_t t) {
    Tensor saved1, lse, sw;  // relu keeps h1 itself
    const Tensor h1 = linear(x, w1, b1, Activation::Relu, &saved1);
    const Tensor logits = linear(h1, w2, b2);
    const Tensor loss = cross_entropy(logits, target, {}, &lse, &sw);
    const Tensor mean_loss = sum(loss) / sum(sw);
    // d mean / d loss_i = 1 / sum(sw): a device value broadcast to [N], no host read.
    const Tensor gl = ones_like(loss) / sum(sw);
    const Tensor glogits = cross_entropy_backward(gl, logits, target, lse);
    const LinearGrads g2 = linear_backward(glogits, h1, w2, {}, Activation::None, true, true, true);
    const LinearGrads g1 =
        linear_backward(g2.dx, x, w1, saved1, Activation::Relu, false, true, true);
    group.grads = {g1.dw, g1.db, g2.dw, g2.db};
    // Clip by global norm on the device: scale = min(1, max_norm / norm).
    Tensor sq = zeros({}, o);
    for (const Tensor& g : group.grads) sq = sq + sum(g * g);
    const Tensor scale = minimum(full({}, 1.0, o), full({}, 0.5, o) / (sqrt(sq) + 1e-6));
    h.step = t;
    optimizer_step(group, h, scale);
    return mean_loss;
  };
  const double first = step(1).item();  // warm-up: allocator, handles, the first read
  const int64_t before = cuda::host_sync_count();
  Tensor last;
  for (int64_t t = 2; t <= 20; ++t) last = step(t);
  EXPECT_EQ(cuda::host_sync_count(), before) << "a training step made the host wait";
  EXPECT_LT(last.item(), first);  // and it learned (the single target class is easy)
}

}  // namespace
}  // namespace nn
