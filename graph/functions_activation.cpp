// Differentiable standalone bias + activation (graph/functions.h): forward is the op table's
// fused pass, backward dx = activation_backward(g, saved, act) and db = dx summed over every
// dimension but the bias's. What is saved is what activation_saved(act) names: the output itself
// for relu/sigmoid/tanh (no extra memory), the pre-activation for gelu/silu, nothing for none.
#include <utility>
#include <vector>

#include "graph/functions.h"

namespace nn {

Variable bias_activation(const Variable& x, const Variable& b, Activation act, int64_t dim) {
  std::vector<Variable> inputs = {x};
  if (b.defined()) inputs.push_back(b);
  const bool need_grad = any_requires_grad(inputs);
  Tensor saved;
  Tensor y = bias_activation(x.data(), b.defined() ? b.data() : Tensor(), act, dim,
                             need_grad ? &saved : nullptr);
  if (!need_grad) return Variable(std::move(y), false);
  const bool has_bias = b.defined();
  const int64_t rank = x.data().dim();
  const int64_t d = dim < 0 ? dim + rank : dim;  // validated by the forward
  return make_variable(
      std::move(y), std::move(inputs),
      [saved, act, has_bias, rank, d](const Tensor& g, const std::vector<bool>& needs) {
        const Tensor dx = activation_backward(g, saved, act);
        std::vector<Tensor> grads{needs[0] ? dx : Tensor()};
        if (has_bias) {
          Tensor db;
          if (needs[1]) {
            std::vector<int64_t> others;
            for (int64_t k = 0; k < rank; ++k)
              if (k != d) others.push_back(k);
            // sum over no dimension would mean "over all": a 1-D input's db is dx itself.
            db = others.empty() ? dx : sum(dx, others);
          }
          grads.push_back(std::move(db));
        }
        return grads;
      },
      "bias_activation");
}

}  // namespace nn
