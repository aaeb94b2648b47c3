#include "layers/init.h"

#include <cmath>

#include "core/error.h"
#include "kernels/ops.h"

namespace nn::init {
namespace {

void check_floating(const Tensor& t, const char* fn) {
  NN_CHECK(t.defined(), ValueError, fn, ": the tensor is undefined");
  NN_CHECK(is_floating(t.dtype()), DtypeError, fn, ": the tensor is ", dtype_name(t.dtype()),
           ", expected a floating dtype");
}

int64_t fan_of(const Tensor& t, FanMode mode, const char* fn) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const int64_t fan = mode == FanMode::FanIn ? fan_in : fan_out;
  NN_CHECK(fan > 0, ValueError, fn, ": the tensor of shape ", shape_str(t.shape()),
           " has a zero fan");
  return fan;
}

}  // namespace

double calculate_gain(Nonlinearity nl, double param) {
  switch (nl) {
    case Nonlinearity::Linear:
    case Nonlinearity::Conv1d:
    case Nonlinearity::Conv2d:
    case Nonlinearity::Conv3d:
    case Nonlinearity::Sigmoid:
      return 1.0;
    case Nonlinearity::Tanh:
      return 5.0 / 3.0;
    case Nonlinearity::Relu:
      return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu:
      return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::Selu:
      return 0.75;
  }
  NN_THROW(ValueError, "calculate_gain: unknown nonlinearity code ", int(nl));
}

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  NN_CHECK(t.defined() && t.dim() >= 2, ValueError,
           "fan_in_and_fan_out: fans need a tensor with at least 2 dims, got shape ",
           t.defined() ? shape_str(t.shape()) : std::string("undefined"));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor& uniform_(Tensor& t, double low, double high, Generator* gen) {
  check_floating(t, "init::uniform_");
  NN_CHECK(low <= high, ValueError, "init::uniform_: low (", low, ") must not exceed high (", high,
           ")");
  return nn::uniform_(t, low, high, gen);
}

Tensor& normal_(Tensor& t, double mean, double std, Generator* gen) {
  check_floating(t, "init::normal_");
  NN_CHECK(std >= 0, ValueError, "init::normal_: std must be non-negative, got ", std);
  return nn::normal_(t, mean, std, gen);
}

Tensor& constant_(Tensor& t, double value) {
  check_floating(t, "init::constant_");
  return fill_(t, value);
}
Tensor& zeros_(Tensor& t) { return constant_(t, 0.0); }
Tensor& ones_(Tensor& t) { return constant_(t, 1.0); }

Tensor& xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  const double a = gain * std::sqrt(6.0 / double(fan_in + fan_out));
  return init::uniform_(t, -a, a, gen);
}

Tensor& xavier_normal_(Tensor& t, double gain, Generator* gen) {
  auto [fan_in, fan_out] = fan_in_and_fan_out(t);
  return init::normal_(t, 0.0, gain * std::sqrt(2.0 / double(fan_in + fan_out)), gen);
}

Tensor& kaiming_uniform_(Tensor& t, double a, FanMode mode, Nonlinearity nl, Generator* gen) {
  const double std = calculate_gain(nl, a) / std::sqrt(double(fan_of(t, mode, "kaiming_uniform_")));
  const double bound = std::sqrt(3.0) * std;
  return init::uniform_(t, -bound, bound, gen);
}

Tensor& kaiming_normal_(Tensor& t, double a, FanMode mode, Nonlinearity nl, Generator* gen) {
  const double std = calculate_gain(nl, a) / std::sqrt(double(fan_of(t, mode, "kaiming_normal_")));
  return init::normal_(t, 0.0, std, gen);
}

}  // namespace nn::init
