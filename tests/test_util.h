// Small helpers every test file may use: skipping a GPU test cleanly, and catching the nn::Error
// subclass a call must throw.
#pragma once

#include <exception>
#include <string>

#include <gtest/gtest.h>

#include "core/device.h"

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

}  // namespace nn::test
