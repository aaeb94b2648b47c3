// Linear: y = act(x W^T + b), PyTorch's nn.Linear with an optional fused activation.
// weight [out_features, in_features], bias [out_features] (optional). x [..., in_features] of
// the parameters' dtype and device; y [..., out_features]. The forward is one call of the fused
// linear op (graph/functions.h -> kernels/nn_ops.h), activation included.
//
// Initialisation as PyTorch's: weight and bias drawn from U(-1/sqrt(in), 1/sqrt(in)) with the
// given generator (default_generator() when null), so the same seed gives the same weights on
// the CPU and on CUDA. Errors: ValueError for non-positive sizes; the op's ShapeError
// ("linear: input has 784 features, weight expects 512") for a wrong input.
#pragma once

#include <cstdint>
#include <string>

#include "core/rng.h"
#include "kernels/nn_ops.h"
#include "layers/module.h"

namespace nn {

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true,
         Activation activation = Activation::None, TensorOptions options = {},
         Generator* gen = nullptr);

  Variable forward(const Variable& x) override { return forward_with(x, activation_); }
  // The same layer with `activation` in place of its own: Sequential uses it to fold a following
  // activation module into this layer's fused op.
  Variable forward_with(const Variable& x, Activation activation);

  Variable& weight() { return weight_; }
  Variable& bias() { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  Activation activation() const { return activation_; }

  std::string name() const override { return "Linear"; }
  std::string extra_repr() const override;

 private:
  int64_t in_features_;
  int64_t out_features_;
  Activation activation_;
  Variable weight_;
  Variable bias_;
};

}  // namespace nn
