// RMSprop (torch.optim.RMSprop, foreach=False maths), fused per group on the device. For
// gradient g and parameter p (kernels/nn_ops.h runs it):
//   g <- -g if maximize;  g <- g + weight_decay * p
//   s <- alpha s + (1 - alpha) g^2
//   centered: a <- alpha a + (1 - alpha) g;  d <- sqrt(s - a^2) + eps;  else d <- sqrt(s) + eps
//   with momentum m > 0: b <- m b + g / d;  p <- p - lr b;   else p <- p - lr g / d
// Throws ValueError (as PyTorch) for lr, momentum or weight_decay < 0, eps <= 0 and alpha
// outside [0, 1].
#pragma once

#include <vector>

#include "optim/optimizer.h"

namespace nn {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
  bool maximize = false;
};

class RMSprop : public Optimizer {
 public:
  explicit RMSprop(std::vector<Variable> params, const RMSpropOptions& options = {});
  RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& options);
};

}  // namespace nn
