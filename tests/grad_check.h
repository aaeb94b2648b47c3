// Float64 gradient checks by central finite differences, shared by the op, layer, loss and
// optimizer tests. The function under test maps leaf Variables to one output; the check
// compares the autograd gradient of sum(output * w), for a random fixed w, with
// (f(x + eps) - f(x - eps)) / 2 eps for every input element (or a random sample of them for
// large inputs), on the CPU in float64.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "graph/variable.h"
#include "layers/module.h"

namespace nn::test {

using VariableFn = std::function<Variable(const std::vector<Variable>&)>;

struct GradCheckOptions {
  double eps = 1e-6;
  double rtol = 1e-5;  // |analytic - numeric| <= atol + rtol * |numeric|
  double atol = 1e-7;
  int64_t max_checked_per_input = 256;  // elements sampled per input beyond this size
  uint64_t seed = 1234;
  // Inputs that get no gradient (e.g. integer targets passed as constants) are listed here;
  // all others must require and receive one.
  std::vector<bool> differentiable;  // empty: all inputs
};

// inputs: float64 CPU tensors (the check makes them leaves). Returns a failure that names the
// input, the element, both values and the op description on mismatch.
::testing::AssertionResult grad_check(const std::string& what, const VariableFn& f,
                                      const std::vector<Tensor>& inputs,
                                      const GradCheckOptions& options = {});

// Central differences (f(t + eps) - f(t - eps)) / 2 eps of the scalar f() with respect to every
// element of t (a contiguous float64 CPU tensor), perturbed in place and restored.
std::vector<double> numeric_grad(Tensor& t, const std::function<double()>& f, double eps = 1e-6);

// Finite-difference check of d sum(f() * w) / d p for every parameter p of `m` (float64, CPU),
// w a fixed random weight, perturbing the parameters in place (grad_check reaches only its own
// leaves; a module's parameters are the module's). Every parameter must receive a gradient
// within tol * (1 + |numeric|).
::testing::AssertionResult param_grad_check(Module& m, const std::function<Variable()>& f,
                                            double eps = 1e-6, double tol = 1e-6);

}  // namespace nn::test
