// Activation modules, elementwise and parameter-free: ReLU, LeakyReLU, Sigmoid, Tanh, GELU,
// SiLU, Softplus, Identity. Any shape, any floating dtype, either device; the output has the
// input's shape, dtype and device.
//
// Those with a fused form (ReLU, GELU exact / tanh, SiLU, Tanh, Sigmoid) say so through
// fused_activation(): Sequential then folds them into a preceding Linear's fused op. A subclass
// that changes what forward computes must return nullopt there.
#pragma once

#include <optional>
#include <string>

#include "kernels/nn_ops.h"
#include "layers/module.h"

namespace nn {

class ActivationModule : public Module {
 public:
  // The fused-linear activation this module computes, if it has one.
  virtual std::optional<Activation> fused_activation() const { return std::nullopt; }
};

class ReLU : public ActivationModule {
 public:
  Variable forward(const Variable& x) override;
  std::optional<Activation> fused_activation() const override { return Activation::Relu; }
  std::string name() const override { return "ReLU"; }
};

// x for x > 0, negative_slope * x otherwise.
class LeakyReLU : public ActivationModule {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope_(negative_slope) {}
  Variable forward(const Variable& x) override;
  double negative_slope() const { return negative_slope_; }
  std::string name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override;

 private:
  double negative_slope_;
};

class Sigmoid : public ActivationModule {
 public:
  Variable forward(const Variable& x) override;
  std::optional<Activation> fused_activation() const override { return Activation::Sigmoid; }
  std::string name() const override { return "Sigmoid"; }
};

class Tanh : public ActivationModule {
 public:
  Variable forward(const Variable& x) override;
  std::optional<Activation> fused_activation() const override { return Activation::Tanh; }
  std::string name() const override { return "Tanh"; }
};

// approximate: "none" (exact, x * Phi(x)) or "tanh"; ValueError otherwise.
class GELU : public ActivationModule {
 public:
  explicit GELU(const std::string& approximate = "none");
  Variable forward(const Variable& x) override;
  std::optional<Activation> fused_activation() const override {
    return tanh_ ? Activation::GeluTanh : Activation::Gelu;
  }
  std::string name() const override { return "GELU"; }
  std::string extra_repr() const override;

 private:
  bool tanh_;
};

class SiLU : public ActivationModule {
 public:
  Variable forward(const Variable& x) override;
  std::optional<Activation> fused_activation() const override { return Activation::Silu; }
  std::string name() const override { return "SiLU"; }
};

// log(1 + exp(beta x)) / beta, and x itself where beta x > threshold. beta > 0 (ValueError).
class Softplus : public ActivationModule {
 public:
  explicit Softplus(double beta = 1.0, double threshold = 20.0);
  Variable forward(const Variable& x) override;
  std::string name() const override { return "Softplus"; }
  std::string extra_repr() const override;

 private:
  double beta_;
  double threshold_;
};

class Identity : public ActivationModule {
 public:
  Variable forward(const Variable& x) override { return x; }
  std::string name() const override { return "Identity"; }
};

}  // namespace nn
