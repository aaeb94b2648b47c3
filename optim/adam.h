// Adam and AdamW (torch.optim.Adam / AdamW, foreach=False maths), fused per group on the device.
// For gradient g, parameter p, step t (kernels/nn_ops.h runs it):
//   g <- -g if maximize
//   Adam:  g <- g + weight_decay * p        (L2 penalty through the gradient)
//   AdamW: p <- p (1 - lr * weight_decay)   (decoupled decay)
//   m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
//   v_hat <- max(v_max, v) kept in v_max with amsgrad, else v
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)
// Throws ValueError (as PyTorch) for lr or weight_decay < 0, eps <= 0, betas outside [0, 1).
#pragma once

#include <utility>
#include <vector>

#include "optim/optimizer.h"

namespace nn {

struct AdamOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool maximize = false;
};

// AdamW's options differ from Adam's only in the default weight decay.
struct AdamWOptions {
  double lr = 1e-3;
  std::pair<double, double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
};

class Adam : public Optimizer {
 public:
  explicit Adam(std::vector<Variable> params, const AdamOptions& options = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options);
};

class AdamW : public Optimizer {
 public:
  explicit AdamW(std::vector<Variable> params, const AdamWOptions& options = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
};

}  // namespace nn
