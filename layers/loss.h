// Loss functions, functional and as modules, with PyTorch's definitions. Reductions (Reduction,
// graph/functions.h): None keeps the per-element loss, Sum adds it up, Mean averages it (for
// cross-entropy: divides by the summed weight of the non-ignored targets).
//
// Input and target must have equal shapes (ShapeError naming the loss; no broadcasting), one
// floating dtype and one device. Targets given as Variables may require a gradient (MSE, L1,
// BCE), as in PyTorch. Everything is built from differentiable ops, so it runs on either device.
#pragma once

#include <cstdint>
#include <string>

#include "graph/functions.h"
#include "layers/module.h"

namespace nn {

// (input - target)^2
Variable mse_loss(const Variable& input, const Variable& target,
                  Reduction reduction = Reduction::Mean);
// |input - target|
Variable l1_loss(const Variable& input, const Variable& target,
                 Reduction reduction = Reduction::Mean);
// cross_entropy(logits, target, options, reduction) is in graph/functions.h (fused
// log-softmax + NLL); CrossEntropyLoss below wraps it.

// -[p y log s(x) + (1 - y) log(1 - s(x))] with s the sigmoid and p the pos_weight (1 when
// undefined; it broadcasts against the last dims of the input, e.g. one weight per class [C]).
// Computed stably for any |x| (no exp of a positive number), with the exact gradient
// (s(x)(p y + 1 - y) - p y) also at x == 0.
Variable binary_cross_entropy_with_logits(const Variable& input, const Variable& target,
                                          Reduction reduction = Reduction::Mean,
                                          const Tensor& pos_weight = {});

class MSELoss : public Module {
 public:
  using Module::forward;  // the one-argument form throws: a loss needs a target
  explicit MSELoss(Reduction reduction = Reduction::Mean) : reduction_(reduction) {}
  Variable forward(const Variable& input, const Variable& target) {
    return mse_loss(input, target, reduction_);
  }
  Variable operator()(const Variable& input, const Variable& target) {
    return forward(input, target);
  }
  std::string name() const override { return "MSELoss"; }
  std::string extra_repr() const override;

 private:
  Reduction reduction_;
};

class L1Loss : public Module {
 public:
  using Module::forward;
  explicit L1Loss(Reduction reduction = Reduction::Mean) : reduction_(reduction) {}
  Variable forward(const Variable& input, const Variable& target) {
    return l1_loss(input, target, reduction_);
  }
  Variable operator()(const Variable& input, const Variable& target) {
    return forward(input, target);
  }
  std::string name() const override { return "L1Loss"; }
  std::string extra_repr() const override;

 private:
  Reduction reduction_;
};

// Class weights (when given, [C], the logits' dtype) are a buffer: to() moves them along.
class CrossEntropyLoss : public Module {
 public:
  using Module::forward;
  explicit CrossEntropyLoss(Tensor weight = {}, double label_smoothing = 0.0,
                            int64_t ignore_index = -100, Reduction reduction = Reduction::Mean);
  // input [N, C] logits, target int64 [N].
  Variable forward(const Variable& input, const Tensor& target);
  Variable operator()(const Variable& input, const Tensor& target) {
    return forward(input, target);
  }
  std::string name() const override { return "CrossEntropyLoss"; }
  std::string extra_repr() const override;

 private:
  Tensor* weight_ = nullptr;  // the registered buffer, or null
  double label_smoothing_;
  int64_t ignore_index_;
  Reduction reduction_;
};

// pos_weight (when given) is a buffer: to() moves it along.
class BCEWithLogitsLoss : public Module {
 public:
  using Module::forward;
  explicit BCEWithLogitsLoss(Tensor pos_weight = {}, Reduction reduction = Reduction::Mean);
  Variable forward(const Variable& input, const Variable& target);
  Variable operator()(const Variable& input, const Variable& target) {
    return forward(input, target);
  }
  std::string name() const override { return "BCEWithLogitsLoss"; }
  std::string extra_repr() const override;

 private:
  Tensor* pos_weight_ = nullptr;
  Reduction reduction_;
};

}  // namespace nn
