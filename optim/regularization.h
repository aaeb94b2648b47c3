// L1 and L2 penalties on parameters, as differentiable scalars to add to a loss:
//   l1_penalty = lambda * sum_i sum |w_i|        gradient lambda * sign(w) (0 at w == 0)
//   l2_penalty = lambda / 2 * sum_i sum w_i^2    gradient lambda * w
// The 1/2 makes l2_penalty(params, lambda) move the parameters exactly as an optimizer's
// weight_decay = lambda does (for SGD; Adam's L2 weight decay too, not AdamW's decoupled one).
// Built from graph/functions.h ops, so the penalty and its gradient run on the parameters'
// device. Returns a 0-d Variable of the parameters' dtype. Throws ValueError for an empty list
// or lambda < 0; the op table's DtypeError / DeviceError for parameters of mixed dtypes or devices.
#pragma once

#include <vector>

#include "graph/variable.h"

namespace nn {

Variable l1_penalty(const std::vector<Variable>& params, double lambda);
Variable l2_penalty(const std::vector<Variable>& params, double lambda);

}  // namespace nn
