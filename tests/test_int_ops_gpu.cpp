// Integer and bool tensors on CUDA (CTest label gpu): every row of the integer table
// (tests/op_table_int.cpp) on CUDA against the CPU on the same inputs and layouts, exactly; then
// cases built to reach each CUDA decomposition with values where a float path would round
// (beyond 2^53 for int64, past 2^24 for a bool count): vectorised and strided elementwise
// launches, reductions by warp rows, block rows, split rows and columns, wrapping overflow,
// in-place counting, BatchNorm's batch count, and the dtype errors on the device.
// Without a GPU every test skips with the reason.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "graph/functions.h"
#include "layers/batchnorm.h"
#include "tests/op_harness.h"
#include "tests/test_util.h"

namespace nn::test {

namespace {

constexpr int kTrials = 12;
constexpr int64_t kTwo53 = int64_t(1) << 53;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

std::vector<size_t> case_indices() {
  std::vector<size_t> idx(int_op_cases().size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  return idx;
}

class IntOpGpuVsCpu : public ::testing::TestWithParam<size_t> {};

TEST_P(IntOpGpuVsCpu, MatchesCpuExactly) {
  NN_REQUIRE_GPU();
  const auto& [row, dtype] = int_op_cases()[GetParam()];
  expect_gpu_matches_cpu(row, dtype, kTrials);
}

INSTANTIATE_TEST_SUITE_P(Int, IntOpGpuVsCpu, ::testing::ValuesIn(case_indices()),
                         [](const ::testing::TestParamInfo<size_t>& p) {
                           return int_op_cases()[p.param].first.name;
                         });

// ---- cases aimed at each CUDA path, compared bit for bit with the CPU -------------------------

Tensor ints(const std::vector<int64_t>& v, const Shape& shape, Device d) {
  return from_vector<int64_t>(v, shape, {Dtype::Int64, d});
}

// n values around 2^53 (distinct as int64, many equal as double), deterministic.
std::vector<int64_t> big_values(int64_t n, uint64_t salt) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  uint64_t s = 0x2545f4914f6cdd1dull ^ salt;
  for (int64_t i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    v[size_t(i)] = kTwo53 + int64_t(s % 4096) - 2048;
  }
  return v;
}

struct DeviceCase {
  std::string name;
  std::function<Tensor(Device)> run;
};

std::vector<DeviceCase> device_cases() {
  std::vector<DeviceCase> c;
  // Elementwise: the vectorised path (contiguous, aligned), the strided path (a transposed
  // view, a broadcast operand), an odd length (the vector loop's tail) and a misaligned start.
  const int64_t n = 4099;
  c.push_back({"add_contiguous", [=](Device d) {
                 return add(ints(big_values(n, 1), {n}, d), ints(big_values(n, 2), {n}, d));
               }});
  c.push_back({"sub_misaligned", [=](Device d) {
                 Tensor a = ints(big_values(n + 1, 3), {n + 1}, d).slice(0, 1, n + 1);
                 return sub(a, ints(big_values(n, 4), {n}, d));
               }});
  c.push_back({"mul_broadcast_transposed", [](Device d) {
                 Tensor a = ints(big_values(64 * 48, 5), {64, 48}, d).t();
                 return mul(a, ints({3, -1, 7,  0, -5, 2, 1, 9, 4, -2, 6, -8, 11, 13,  -3, 5,
                                     2, 2,  -7, 1, 0,  3, 4, 5, 6, 7,  8, 9,  10, -11, 12, 1,
                                     1, 1,  1,  1, 2,  2, 2, 2, 3, 3,  3, 3,  4,  4,   4,  4,
                                     5, 5,  5,  5, 6,  6, 6, 6, 7, 7,  7, 7,  8,  8,   8,  8},
                                    {1, 64}, d));
               }});
  c.push_back({"maximum_minimum", [=](Device d) {
                 Tensor a = ints(big_values(n, 6), {n}, d), b = ints(big_values(n, 7), {n}, d);
                 return sub(maximum(a, b), minimum(a, b));
               }});
  c.push_back({"neg_abs_sign", [=](Device d) {
                 Tensor a = sub(ints(big_values(n, 8), {n}, d),
                                full({}, double(kTwo53), {Dtype::Int64, d}));
                 return add(mul(neg(a), 3.0), add(abs(a), sign(a)));
               }});
  c.push_back({"overflow_wraps", [](Device d) {
                 Tensor a = ints({kMax, kMin, kMin, kMax}, {4}, d);
                 return add(add(a, ints({1, -1, 0, 0}, {4}, d)),
                            mul(neg(ints({0, 0, kMin, 0}, {4}, d)), 1.0));
               }});
  // Comparisons of neighbours of 2^53: float would call many of them equal.
  for (BinaryOp op :
       {BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge}) {
    c.push_back({std::string("compare_") + binary_op_name(op), [=](Device d) {
                   Tensor a = ints(big_values(n, 9), {n}, d);
                   Tensor b = ints(big_values(n, 10), {n}, d);
                   return binary(op, a, b).to(Dtype::Int64);
                 }});
  }
  c.push_back({"compare_bool", [](Device d) {
                 Tensor a = from_vector<int64_t>({0, 0, 1, 1}, {4, 1}, {Dtype::Bool, d});
                 Tensor b = from_vector<int64_t>({0, 1, 1, 0}, {1, 4}, {Dtype::Bool, d});
                 return add(lt(a, b).to(Dtype::Int64), mul(ge(a, b).to(Dtype::Int64), 2.0));
               }});
  // Reductions: sums exact beyond 2^53, along each decomposition.
  c.push_back({"sum_all_split_rows", [](Device d) {  // few long rows: split into chunks
                 return sum(ints(big_values(100000, 11), {100000}, d));
               }});
  c.push_back({"sum_warp_rows", [](Device d) {  // short dense rows
                 return sum(ints(big_values(300 * 37, 12), {300, 37}, d), {1});
               }});
  c.push_back(
      {"sum_block_rows_dense", [](Device d) {  // long dense rows, some misaligned
         return sum(ints(big_values(200 * 3001, 13), {200, 3001}, d).slice(1, 1, 3001), {1});
       }});
  c.push_back(
      {"sum_block_rows_strided", [](Device d) {  // long rows, reduced axis not dense
         return sum(ints(big_values(200 * 3000 * 2, 14), {200, 3000, 2}, d).select(2, 1), {1});
       }});
  c.push_back({"sum_split_rows_strided", [](Device d) {
                 return sum(ints(big_values(200000, 15), {200000}, d).slice(0, 0, 200000, 2));
               }});
  c.push_back({"sum_columns", [](Device d) {  // kept axis dense: the column kernel
                 return sum(ints(big_values(50 * 300, 14), {50, 300}, d), {0}, true);
               }});
  c.push_back({"sum_bool_past_2pow24", [](Device d) {  // float would stop counting by ones
                 return sum(ones({(int64_t(1) << 24) + 3}, {Dtype::Bool, d}));
               }});
  c.push_back(
      {"sum_bool_columns", [](Device d) {
         Tensor x = from_vector<int64_t>(big_values(400 * 200, 15), {400, 200}, {Dtype::Int64, d});
         return sum(gt(x, full({}, double(kTwo53), {Dtype::Int64, d})), {0});
       }});
  c.push_back({"sum_wraps", [](Device d) { return sum(ints({kMax, 1, 5}, {3}, d)); }});
  c.push_back({"sum_empty", [](Device d) { return sum(zeros({0, 5}, {Dtype::Int64, d}), {0}); }});
  for (bool is_max : {true, false}) {
    const std::string tag = is_max ? "max" : "min";
    c.push_back({"a" + tag + "_split_rows", [=](Device d) {
                   Tensor x = ints(big_values(100000, 16), {100000}, d);
                   return is_max ? amax(x) : amin(x);
                 }});
    c.push_back({"a" + tag + "_columns", [=](Device d) {
                   Tensor x = ints(big_values(60 * 200, 17), {60, 200}, d);
                   return is_max ? amax(x, {0}) : amin(x, {0});
                 }});
    // Ties everywhere (4096 distinct values): the first index must win on every path.
    c.push_back({"arg" + tag + "_split_rows", [=](Device d) {
                   Tensor x = ints(big_values(100000, 18), {100000}, d);
                   return is_max ? argmax(x, 0) : argmin(x, 0);
                 }});
    c.push_back({"arg" + tag + "_warp_rows", [=](Device d) {
                   Tensor x = ints(big_values(500 * 40, 19), {500, 40}, d);
                   auto [v, i] = is_max ? max(x, 1) : min(x, 1);
                   return add(mul(i, 4096.0), sub(v, full({}, double(kTwo53), {Dtype::Int64, d})));
                 }});
    c.push_back({"arg" + tag + "_columns", [=](Device d) {
                   Tensor x = ints(big_values(300 * 200, 20), {300, 200}, d);
                   return is_max ? argmax(x, 0) : argmin(x, 0);
                 }});
  }
  c.push_back({"accuracy_count", [](Device d) {
                 Generator gen(42);  // the same draws on both devices
                 Tensor logits = randn({512, 10}, {Dtype::Float32, d}, &gen);
                 Tensor labels = argmax(randn({512, 10}, {Dtype::Float32, d}, &gen), 1);
                 return sum(eq(argmax(logits, 1), labels));
               }});
  c.push_back({"add_inplace_count", [](Device d) {
                 Tensor count = full({}, double(kTwo53), {Dtype::Int64, d});
                 for (int k = 0; k < 3; ++k) add_(count, 1.0);
                 Tensor a = ints(big_values(n, 21), {n}, d);
                 add_(a, count);
                 return add(a, sum(a));
               }});
  return c;
}

TEST(IntOpsGpu, EachCudaPathMatchesCpuBitForBit) {
  NN_REQUIRE_GPU();
  for (const DeviceCase& c : device_cases()) {
    Tensor want = c.run(Device::cpu());
    Tensor got;
    try {
      got = c.run(Device::cuda(0));
    } catch (const std::exception& e) {
      ADD_FAILURE() << c.name << ": threw " << e.what();
      continue;
    }
    EXPECT_EQ(dtype_name(got.dtype()), std::string(dtype_name(want.dtype()))) << c.name;
    EXPECT_TRUE(got.device().is_cuda()) << c.name;
    EXPECT_EQ(got.shape(), want.shape()) << c.name;
    EXPECT_EQ(got.to_vector<int64_t>(), want.to_vector<int64_t>()) << c.name;
  }
}

TEST(IntOpsGpu, HandComputedValues) {
  NN_REQUIRE_GPU();
  const Device g = Device::cuda(0);
  EXPECT_EQ(sum(ints({kTwo53, 1}, {2}, g)).to_vector<int64_t>(),
            (std::vector<int64_t>{kTwo53 + 1}));
  const int64_t n = (int64_t(1) << 24) + 3;
  EXPECT_EQ(sum(ones({n}, {Dtype::Bool, g})).to_vector<int64_t>(), (std::vector<int64_t>{n}));
  EXPECT_EQ(add(ints({kMax}, {1}, g), ints({1}, {1}, g)).to_vector<int64_t>(),
            (std::vector<int64_t>{kMin}));
  EXPECT_EQ(eq(ints({kTwo53}, {1}, g), ints({kTwo53 + 1}, {1}, g)).to_vector<int64_t>(),
            (std::vector<int64_t>{0}));
  EXPECT_EQ(argmax(ints({kTwo53, kTwo53 + 1, kTwo53 + 1}, {3}, g)).to_vector<int64_t>(),
            (std::vector<int64_t>{1}));
}

TEST(IntOpsGpu, BatchNormCountsBatchesInInt64) {
  NN_REQUIRE_GPU();
  BatchNorm1d bn(2, {}, {.device = Device::cuda(0)});
  fill_(bn.num_batches_tracked(), double(kTwo53));
  bn.train();
  bn(Variable(from_vector<float>({1.f, 2.f, 3.f, 5.f}, {2, 2}, {Dtype::Float32, Device::cuda(0)})));
  EXPECT_EQ(bn.num_batches_tracked().dtype(), Dtype::Int64);
  EXPECT_TRUE(bn.num_batches_tracked().device().is_cuda());
  EXPECT_EQ(bn.num_batches_tracked().to_vector<int64_t>(), (std::vector<int64_t>{kTwo53 + 1}));
}

TEST(IntOpsGpu, DtypeErrorsOnTheDevice) {
  NN_REQUIRE_GPU();
  const Device g = Device::cuda(0);
  const Tensor i = ints({1, 2, 3}, {3}, g);
  const Tensor f = ones({3}, {Dtype::Float32, g});
  expect_error(
      ErrKind::Dtype, "int64", [&] { add(i, f); }, "int64 + float32 on cuda");
  expect_error(
      ErrKind::Dtype, "mean", [&] { mean(i); }, "mean of int64 on cuda");
  expect_error(
      ErrKind::Dtype, "div", [&] { div(i, i); }, "int64 / int64 on cuda");
  expect_error(
      ErrKind::Device, "add",
      [&] {
        add(i, ints({1, 2, 3}, {3}, Device::cpu()));
      },
      "int64 on two devices");
}

}  // namespace
}  // namespace nn::test
