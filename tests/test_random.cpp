// Random fills on the CPU: the Philox known-answer vector, fills equal to the documented
// (seed, offset, index) formula, reproducibility per seed, and the moments of large samples.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"

namespace nn {
namespace {

// Random123's known-answer test for philox4x32_10 with counter 0 and key 0.
TEST(Philox, KnownAnswerVector) {
  const Philox4x32 r = philox4x32_10(0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

// Random123's second KAT: counter and key all ones.
TEST(Philox, KnownAnswerAllOnes) {
  const Philox4x32 r = philox4x32_10(~uint64_t(0), ~uint64_t(0), ~uint64_t(0));
  EXPECT_EQ(r.v[0], 0x408f276du);
  EXPECT_EQ(r.v[1], 0x41c83b0eu);
  EXPECT_EQ(r.v[2], 0xa20bc7c6u);
  EXPECT_EQ(r.v[3], 0x6d5451fdu);
}

// Random123's third KAT (pi digits): counter words map to (lo, hi) of index then offset, key
// words to (lo, hi) of the seed.
TEST(Philox, KnownAnswerPiDigits) {
  const Philox4x32 r =
      philox4x32_10(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull);
  EXPECT_EQ(r.v[0], 0xd16cfe09u);
  EXPECT_EQ(r.v[1], 0x94fdccebu);
  EXPECT_EQ(r.v[2], 0x5001e420u);
  EXPECT_EQ(r.v[3], 0x24126ea1u);
}

// Both backends fill with 1 - u for u = philox_uniform in (0, 1]: values in [0, 1) as in
// PyTorch (kernels/cpu/random.cpp, kernels/cuda/elementwise.cu).
template <class T>
T expected_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return T(1) - philox_uniform<T>(seed, offset, i);
}

TEST(Random, RandFollowsTheCounterFormula) {
  Generator gen(99);
  const std::vector<float> a = rand({257}, {Dtype::Float32}, &gen).to_vector<float>();
  const std::vector<double> b = rand({3, 5}, {Dtype::Float64}, &gen).to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], expected_uniform<float>(99, 0, i)) << i;
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(b[i], expected_uniform<double>(99, 1, i)) << i;
  EXPECT_EQ(gen.offset(), 2u);
}

TEST(Random, RandnFollowsTheCounterFormula) {
  Generator gen(5);
  const std::vector<float> a = randn({100}, {Dtype::Float32}, &gen).to_vector<float>();
  const std::vector<double> b = randn({100}, {Dtype::Float64}, &gen).to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], philox_normal<float>(5, 0, i), 1e-6) << i;
  for (size_t i = 0; i < b.size(); ++i)
    EXPECT_NEAR(b[i], philox_normal<double>(5, 1, i), 1e-14) << i;
}

TEST(Random, SameSeedSameNumbersOtherSeedOthers) {
  Generator g1(1), g2(1), g3(2);
  const auto a = rand({64}, {}, &g1).to_vector<float>();
  const auto b = rand({64}, {}, &g2).to_vector<float>();
  const auto c = rand({64}, {}, &g3).to_vector<float>();
  const auto a2 = rand({64}, {}, &g1).to_vector<float>();  // the next fill moves on
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, a2);
  manual_seed(77);
  const auto d = randn({16}).to_vector<float>();
  manual_seed(77);
  EXPECT_EQ(randn({16}).to_vector<float>(), d);
}

TEST(Random, UniformRangeIsHalfOpen) {
  Generator gen(3);
  for (Dtype dt : {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16}) {
    for (double v : rand({4096}, {dt}, &gen).to_vector<double>()) {
      ASSERT_GE(v, 0.0) << dtype_name(dt);
      if (is_half(dt)) {
        ASSERT_LE(v, 1.0) << dtype_name(dt);  // rounding to 8 or 11 bits may reach 1
      } else {
        ASSERT_LT(v, 1.0) << dtype_name(dt);
      }
    }
  }
}

struct Moments {
  double mean = 0, var = 0;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= double(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= double(v.size() - 1);
  return m;
}

// Bounds are ~6 standard errors for n = 1e5.
TEST(Random, NormalMomentsNearZeroAndOne) {
  Generator gen(11);
  for (Dtype dt : {Dtype::Float32, Dtype::Float64}) {
    const Moments m = moments(randn({100000}, {dt}, &gen).to_vector<double>());
    EXPECT_NEAR(m.mean, 0.0, 0.02) << dtype_name(dt);
    EXPECT_NEAR(m.var, 1.0, 0.03) << dtype_name(dt);
  }
  Tensor t = empty({100000}, {Dtype::Float64});
  normal_(t, 3.0, 2.0, &gen);
  const Moments m = moments(t.to_vector<double>());
  EXPECT_NEAR(m.mean, 3.0, 0.04);
  EXPECT_NEAR(std::sqrt(m.var), 2.0, 0.03);
}

TEST(Random, UniformFillRangeAndMean) {
  Generator gen(12);
  Tensor t = empty({100000}, {Dtype::Float32});
  uniform_(t, -2.0, 3.0, &gen);
  const std::vector<double> v = t.to_vector<double>();
  for (double x : v) {
    ASSERT_GE(x, -2.0);
    ASSERT_LE(x, 3.0);
  }
  const Moments m = moments(v);
  EXPECT_NEAR(m.mean, 0.5, 0.03);
  EXPECT_NEAR(m.var, 25.0 / 12.0, 0.06);
}

TEST(Random, BernoulliRateNearP) {
  Generator gen(13);
  for (double p : {0.3, 0.9}) {
    Tensor t = empty({100000}, {Dtype::Float32});
    bernoulli_(t, p, &gen);
    const std::vector<double> v = t.to_vector<double>();
    double ones = 0;
    for (double x : v) {
      ASSERT_TRUE(x == 0.0 || x == 1.0) << x;
      ones += x;
    }
    EXPECT_NEAR(ones / double(v.size()), p, 0.01) << "p " << p;
  }
  Tensor t = empty({4});
  EXPECT_THROW(bernoulli_(t, 1.5, &gen), ValueError);
  try {
    bernoulli_(t, -0.1, &gen);
    ADD_FAILURE() << "bernoulli_ accepted p = -0.1";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("bernoulli"));
  }
}

// A fill writes through a strided view and leaves the gaps alone.
TEST(Random, FillThroughStridedView) {
  Generator gen(21);
  Tensor t = zeros({4, 6});
  Tensor v = t.slice(1, 1, 6, 2);  // columns 1, 3, 5
  uniform_(v, 1.0, 2.0, &gen);
  const std::vector<float> all = t.to_vector<float>();
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 6; ++c) {
      const float x = all[r * 6 + c];
      if (c % 2 == 0)
        EXPECT_EQ(x, 0.0f) << r << "," << c;
      else
        EXPECT_TRUE(x >= 1.0f && x <= 2.0f) << r << "," << c << " = " << x;
    }
}

}  // namespace
}  // namespace nn
