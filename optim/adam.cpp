#include "optim/adam.h"

#include <utility>

namespace nn {
namespace {

template <class Options>
OptimizerHyper adam_hyper(OptimizerKind kind, const Options& o) {
  OptimizerHyper h;
  h.kind = kind;
  h.lr = o.lr;
  h.beta1 = o.betas.first;
  h.beta2 = o.betas.second;
  h.eps = o.eps;
  h.weight_decay = o.weight_decay;
  h.amsgrad = o.amsgrad;
  h.maximize = o.maximize;
  return h;
}

}  // namespace

Adam::Adam(std::vector<Variable> params, const AdamOptions& options)
    : Adam(single_group(std::move(params)), options) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
    : Optimizer("Adam", std::move(groups), adam_hyper(OptimizerKind::Adam, options)) {}

AdamW::AdamW(std::vector<Variable> params, const AdamWOptions& options)
    : AdamW(single_group(std::move(params)), options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Optimizer("AdamW", std::move(groups), adam_hyper(OptimizerKind::AdamW, options)) {}

}  // namespace nn
