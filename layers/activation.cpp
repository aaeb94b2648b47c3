#include "layers/activation.h"

#include <sstream>

#include "core/error.h"
#include "graph/functions.h"

namespace nn {
namespace {

// Doubles as PyTorch prints them in a repr ("0.01", "20.0" -> "20").
std::string num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

Variable ReLU::forward(const Variable& x) { return relu(x); }

Variable LeakyReLU::forward(const Variable& x) { return leaky_relu(x, negative_slope_); }
std::string LeakyReLU::extra_repr() const { return "negative_slope=" + num(negative_slope_); }

Variable Sigmoid::forward(const Variable& x) { return sigmoid(x); }

Variable Tanh::forward(const Variable& x) { return tanh(x); }

GELU::GELU(const std::string& approximate) : tanh_(approximate == "tanh") {
  NN_CHECK(approximate == "none" || approximate == "tanh", ValueError,
           "GELU: approximate must be \"none\" or \"tanh\", got \"", approximate, "\"");
}
Variable GELU::forward(const Variable& x) { return gelu(x, tanh_); }
std::string GELU::extra_repr() const { return tanh_ ? "approximate=tanh" : "approximate=none"; }

Variable SiLU::forward(const Variable& x) { return silu(x); }

Softplus::Softplus(double beta, double threshold) : beta_(beta), threshold_(threshold) {
  NN_CHECK(beta > 0, ValueError, "Softplus: beta must be positive, got ", beta);
}
Variable Softplus::forward(const Variable& x) { return softplus(x, beta_, threshold_); }
std::string Softplus::extra_repr() const {
  return "beta=" + num(beta_) + ", threshold=" + num(threshold_);
}

}  // namespace nn
