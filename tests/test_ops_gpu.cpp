// The op table on CUDA (CTest label gpu): every row x every floating dtype, CUDA against the CPU
// path on the same inputs (same layouts, built on each device), by relative error with per-dtype
// tolerances; device-mismatch errors; random fills identical on both devices for one seed.
// Without a GPU every test skips with the reason, so the suite passes on CPU-only CI.
#include <gtest/gtest.h>

#include <sstream>

#include "tests/op_harness.h"
#include "tests/test_util.h"

namespace nn::test {
namespace {

constexpr int kTrials = 8;

std::vector<std::string> row_names() {
  std::vector<std::string> names;
  for (const OpCase& row : op_table()) names.push_back(row.name);
  return names;
}

using RowDtype = std::tuple<std::string, Dtype>;

class OpGpuVsCpu : public ::testing::TestWithParam<RowDtype> {};

TEST_P(OpGpuVsCpu, MatchesCpu) {
  NN_REQUIRE_GPU();
  expect_gpu_matches_cpu(op_case(std::get<0>(GetParam())), std::get<1>(GetParam()), kTrials);
}

INSTANTIATE_TEST_SUITE_P(Table, OpGpuVsCpu,
                         ::testing::Combine(::testing::ValuesIn(row_names()),
                                            ::testing::ValuesIn(float_dtypes())),
                         [](const ::testing::TestParamInfo<RowDtype>& p) {
                           return case_name(std::get<0>(p.param), std::get<1>(p.param));
                         });

// TF32 tensor cores for float32 matmul: the tolerance widens to ~1e-3 (gpu_tolerance reads the
// flag).
TEST(OpGpu, MatmulWithTf32) {
  NN_REQUIRE_GPU();
  set_allow_tf32(true);
  for (const char* name : {"matmul", "matmul_trans", "bmm"})
    expect_gpu_matches_cpu(op_case(name), Dtype::Float32, kTrials);
  set_allow_tf32(false);
  EXPECT_FALSE(allow_tf32());
}

// A larger matmul than the table draws, where the cuBLAS path (not a small-size fallback) runs.
TEST(OpGpu, LargeMatmulMatchesCpu) {
  NN_REQUIRE_GPU();
  for (Dtype dt : float_dtypes()) {
    Generator gen(42);
    Tensor a = randn({3, 96, 200}, {dt}, &gen), b = randn({200, 130}, {dt}, &gen);
    const HostTensor want = to_host(matmul(a, b));
    const HostTensor got = to_host(matmul(a.to(Device::cuda(0)), b.to(Device::cuda(0))));
    double tol = dt == Dtype::Float32 ? 1e-4 : gpu_tolerance(dt);
    if (is_half(dt)) tol *= 2;  // 200-term sums rounded once each way
    EXPECT_LE(max_rel_error(got, want, 1.0), tol) << dtype_name(dt);
  }
}

// All inputs of an op on one device: each row with two or more inputs, one moved to the CPU.
class OpGpuDeviceMismatch : public ::testing::TestWithParam<std::string> {};

TEST_P(OpGpuDeviceMismatch, ThrowsDeviceError) {
  NN_REQUIRE_GPU();
  const OpCase& row = op_case(GetParam());
  std::mt19937 rng(case_seed(row.name, Dtype::Float32));
  const Draw draw = row.draw(rng);
  const std::vector<InputSpec> specs = make_inputs(row, draw, Dtype::Float32, rng, false);
  for (int cpu_pos = 0; cpu_pos < row.arity; ++cpu_pos) {
    std::vector<Tensor> ins;
    for (int i = 0; i < row.arity; ++i)
      ins.push_back(
          realize(specs[i], Dtype::Float32, i == cpu_pos ? Device::cpu() : Device::cuda(0)));
    expect_error(
        ErrKind::Device, row.err_name, [&] { row.run(ins, draw); },
        row.name + " input " + std::to_string(cpu_pos) + " on the CPU");
  }
}

std::vector<std::string> multi_input_rows() {
  std::vector<std::string> names;
  for (const OpCase& row : op_table())
    if (row.arity >= 2) names.push_back(row.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Table, OpGpuDeviceMismatch, ::testing::ValuesIn(multi_input_rows()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// Random fills are a pure function of (seed, offset, index): the same numbers on both devices.
TEST(RandomGpu, SameNumbersAsCpuForSameSeed) {
  NN_REQUIRE_GPU();
  const Shape shape{1000, 33};
  for (Dtype dt : float_dtypes()) {
    for (int kind = 0; kind < 5; ++kind) {
      Generator g_cpu(1234), g_gpu(1234);
      auto fill = [&](Device dev, Generator* g) {
        const TensorOptions o{dt, dev};
        switch (kind) {
          case 0:
            return rand(shape, o, g);
          case 1:
            return randn(shape, o, g);
          default: {
            Tensor t = empty(shape, o);
            if (kind == 2) uniform_(t, -3.0, 5.0, g);
            if (kind == 3) normal_(t, 1.5, 0.5, g);
            if (kind == 4) bernoulli_(t, 0.3, g);
            return t;
          }
        }
      };
      const HostTensor a = to_host(fill(Device::cpu(), &g_cpu));
      const HostTensor b = to_host(fill(Device::cuda(0), &g_gpu));
      // Uniform and Bernoulli draws are bit-identical; normals pass through log/cos, whose
      // device versions may differ from the host's in the last bit.
      const double tol = (kind == 1 || kind == 3) ? std::max(1e-5, gpu_tolerance(dt)) : 0.0;
      EXPECT_LE(max_rel_error(b, a, 1.0), tol) << "fill kind " << kind << " " << dtype_name(dt);
      EXPECT_EQ(g_cpu.offset(), g_gpu.offset());
    }
  }
}

TEST(RandomGpu, MomentsOfNormalsAndBernoulliRate) {
  NN_REQUIRE_GPU();
  Generator gen(7);
  const HostTensor n = to_host(randn({100000}, {Dtype::Float32, Device::cuda(0)}, &gen));
  double m = 0, v = 0;
  for (double x : n.v) m += x;
  m /= double(n.v.size());
  for (double x : n.v) v += (x - m) * (x - m);
  v /= double(n.v.size() - 1);
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(v, 1.0, 0.03);
  Tensor b = empty({100000}, {Dtype::Float32, Device::cuda(0)});
  bernoulli_(b, 0.25, &gen);
  EXPECT_NEAR(mean(b).item(), 0.25, 0.01);
}

TEST(TensorGpu, RoundTripThroughDevicePreservesValuesAndViews) {
  NN_REQUIRE_GPU();
  Tensor host = arange(0, 24, 1, {Dtype::Float32}).view({2, 3, 4});
  Tensor dev = host.to(Device::cuda(0));
  EXPECT_TRUE(dev.device().is_cuda());
  EXPECT_EQ(dev.to(Device::cpu()).to_vector<float>(), host.to_vector<float>());
  // A strided view on the device reads back in logical order.
  Tensor tv = dev.transpose(0, 2).slice(1, 0, 3, 2);
  EXPECT_EQ(tv.to_vector<float>(), host.transpose(0, 2).slice(1, 0, 3, 2).to_vector<float>());
  // copy_ across devices, with a dtype change on the way.
  Tensor back = zeros({2, 3, 4}, {Dtype::Float64});
  back.copy_(dev);
  EXPECT_EQ(back.to_vector<double>(), host.to_vector<double>());
}

TEST(ErrorsGpu, DeviceIndexOutOfRange) {
  NN_REQUIRE_GPU();
  const int n = cuda::device_count();
  EXPECT_THROW(cuda::properties(n), DeviceError);
  EXPECT_THROW(zeros({2}, {Dtype::Float32, Device::cuda(n)}), DeviceError);
  const cuda::DeviceProperties p = cuda::properties(0);
  EXPECT_FALSE(p.name.empty());
  EXPECT_GT(p.multiprocessors, 0);
  EXPECT_GT(p.total_memory, 0);
  EXPECT_EQ(best_device(), Device::cuda(0));
}

}  // namespace
}  // namespace nn::test
