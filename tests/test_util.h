// Small helpers every test file may use: skipping a GPU test cleanly, and catching the nn::Error
// subclass a call must throw.
#pragma once

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/device.h"
#include "core/tensor.h"

// First line of every test that needs a GPU: skips with the reason when none can run it.
#define NN_REQUIRE_GPU()                                                                         \
  do {                                                                                           \
    if (!::nn::cuda::available())                                                                \
      GTEST_SKIP() << "no CUDA device: "                                                         \
                   << (::nn::cuda::built_with_cuda() ? "no usable GPU or driver on this machine" \
                                                     : "library built with NN_CUDA=OFF");        \
  } while (0)

namespace nn::test {

// The message of the E that fn throws (a gtest failure when it throws nothing or something else).
template <class E, class F>
std::string message_of(F&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw the wrong type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "threw nothing";
  return {};
}

// max |got - want| / max(|want|, floor) over all elements (any devices and dtypes); NaN must
// meet NaN, and a shape mismatch is a gtest failure.
inline double max_rel(const Tensor& got, const Tensor& want, double floor = 1e-3) {
  EXPECT_EQ(got.shape(), want.shape());
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0.0;
  for (size_t i = 0; i < g.size() && i < w.size(); ++i) {
    if (std::isnan(g[i]) || std::isnan(w[i])) {
      if (std::isnan(g[i]) != std::isnan(w[i])) return std::numeric_limits<double>::infinity();
      continue;
    }
    worst = std::max(worst, std::abs(g[i] - w[i]) / std::max(std::abs(w[i]), floor));
  }
  return worst;
}

}  // namespace nn::test
