// Stochastic gradient descent with momentum, dampening, Nesterov momentum, L2 weight decay and
// maximisation: torch.optim.SGD's update rule (foreach=False maths). For gradient g, parameter p
// and step t (kernels/nn_ops.h runs it, fused per group):
//   g <- -g if maximize;  g <- g + weight_decay * p
//   with momentum m != 0:  b <- g at t == 1, else b <- m b + (1 - dampening) g
//                          g <- g + m b (Nesterov) or g <- b
//   p <- p - lr g
// Throws ValueError (as PyTorch) for lr, momentum or weight_decay < 0, dampening outside [0, 1],
// and for Nesterov without momentum or with dampening.
#pragma once

#include <vector>

#include "optim/optimizer.h"

namespace nn {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Variable> params, double lr, double momentum = 0.0, double dampening = 0.0,
      double weight_decay = 0.0, bool nesterov = false, bool maximize = false);
  SGD(std::vector<Variable> params, const SGDOptions& options);
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options);
};

}  // namespace nn
