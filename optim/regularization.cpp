#include "optim/regularization.h"

#include <cmath>

#include "core/error.h"
#include "graph/functions.h"

namespace nn {
namespace {

template <class Term>
Variable penalty(const char* fn, const std::vector<Variable>& params, double scale, Term term) {
  NN_CHECK(!params.empty(), ValueError, fn, ": the parameter list is empty");
  Variable total;
  for (size_t i = 0; i < params.size(); ++i) {
    NN_CHECK(params[i].defined(), ValueError, fn, ": parameter ", i, " is undefined");
    Variable t = sum(term(params[i]));
    total = total.defined() ? add(total, t) : t;
  }
  return mul(total, scale);
}

void check_lambda(const char* fn, double lambda) {
  NN_CHECK(std::isfinite(lambda) && lambda >= 0.0, ValueError, fn, ": lambda is ", lambda,
           ", expected a finite value >= 0");
}

}  // namespace

Variable l1_penalty(const std::vector<Variable>& params, double lambda) {
  check_lambda("l1_penalty", lambda);
  return penalty("l1_penalty", params, lambda, [](const Variable& w) { return abs(w); });
}

Variable l2_penalty(const std::vector<Variable>& params, double lambda) {
  check_lambda("l2_penalty", lambda);
  return penalty("l2_penalty", params, 0.5 * lambda, [](const Variable& w) { return mul(w, w); });
}

}  // namespace nn
