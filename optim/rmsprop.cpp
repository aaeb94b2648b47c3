#include "optim/rmsprop.h"

#include <utility>

namespace nn {
namespace {

OptimizerHyper rmsprop_hyper(const RMSpropOptions& o) {
  OptimizerHyper h;
  h.kind = OptimizerKind::RMSprop;
  h.lr = o.lr;
  h.alpha = o.alpha;
  h.eps = o.eps;
  h.weight_decay = o.weight_decay;
  h.momentum = o.momentum;
  h.centered = o.centered;
  h.maximize = o.maximize;
  return h;
}

}  // namespace

RMSprop::RMSprop(std::vector<Variable> params, const RMSpropOptions& options)
    : RMSprop(single_group(std::move(params)), options) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& options)
    : Optimizer("RMSprop", std::move(groups), rmsprop_hyper(options)) {}

}  // namespace nn
