#include "optim/sgd.h"

#include <utility>

namespace nn {
namespace {

OptimizerHyper sgd_hyper(const SGDOptions& o) {
  OptimizerHyper h;
  h.kind = OptimizerKind::Sgd;
  h.lr = o.lr;
  h.momentum = o.momentum;
  h.dampening = o.dampening;
  h.weight_decay = o.weight_decay;
  h.nesterov = o.nesterov;
  h.maximize = o.maximize;
  return h;
}

}  // namespace

SGD::SGD(std::vector<Variable> params, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov, bool maximize)
    : SGD(std::move(params),
          SGDOptions{lr, momentum, dampening, weight_decay, nesterov, maximize}) {}

SGD::SGD(std::vector<Variable> params, const SGDOptions& options)
    : SGD(single_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& options)
    : Optimizer("SGD", std::move(groups), sgd_hyper(options)) {}

}  // namespace nn
