// Parameter initialisers, with PyTorch's formulas (torch.nn.init). Each fills a floating tensor
// in place, on the CPU or on CUDA, through the op table's random fills (the same values on both
// devices for the same generator state); gen null means default_generator(). Use them on a
// parameter's data: init::kaiming_normal_(linear->weight().data()).
//
// Fans of a tensor of shape [out, in, k1, k2, ...]: fan_in = in * k1 * k2 * ...,
// fan_out = out * k1 * k2 * ...; at least 2 dims are needed (ValueError otherwise).
//   xavier_uniform_:  U(-a, a),  a = gain * sqrt(6 / (fan_in + fan_out))
//   xavier_normal_:   N(0, std), std = gain * sqrt(2 / (fan_in + fan_out))
//   kaiming_uniform_: U(-b, b),  b = sqrt(3) * gain / sqrt(fan), gain = calculate_gain(nl, a)
//   kaiming_normal_:  N(0, std), std = gain / sqrt(fan)
#pragma once

#include <cstdint>
#include <utility>

#include "core/rng.h"
#include "core/tensor.h"

namespace nn::init {

enum class FanMode : uint8_t { FanIn, FanOut };
enum class Nonlinearity : uint8_t {
  Linear,
  Conv1d,
  Conv2d,
  Conv3d,
  Sigmoid,
  Tanh,
  Relu,
  LeakyRelu,
  Selu
};

// The recommended gain: 1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu,
// sqrt(2 / (1 + slope^2)) for leaky_relu (param is the slope), 3/4 for selu.
double calculate_gain(Nonlinearity nl, double param = 0.01);
// {fan_in, fan_out}; ValueError for fewer than 2 dims.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

Tensor& uniform_(Tensor& t, double low = 0.0, double high = 1.0, Generator* gen = nullptr);
Tensor& normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
Tensor& constant_(Tensor& t, double value);
Tensor& zeros_(Tensor& t);
Tensor& ones_(Tensor& t);

Tensor& xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
Tensor& xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// a: the negative slope of the leaky_relu that follows (only used with LeakyRelu).
Tensor& kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                         Nonlinearity nl = Nonlinearity::LeakyRelu, Generator* gen = nullptr);
Tensor& kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nl = Nonlinearity::LeakyRelu, Generator* gen = nullptr);

}  // namespace nn::init
