// The gradient table: one row per differentiable function of graph/functions.h (or per group of
// overloads), each drawing fresh float64 inputs and shapes for a trial, checked by grad_check
// (tests/test_grad_ops.cpp). Inputs are drawn away from kinks (relu and abs at 0, clamp bounds,
// ties of max/min); the kinks themselves have exact-value tests of their own.
//
// Coverage: every row lists the signatures it exercises, and test_grad_ops.cpp parses
// graph/functions.h for the signatures of every function returning a Variable, so a new op
// without a row (or a row naming a signature that no longer exists) fails the suite.
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tests/grad_check.h"

namespace nn::test {

// One grad_check call: the inputs, the function of them, and the checker's options. The function
// depends on its inputs only: constants (targets, masks, class weights) are inputs marked
// non-differentiable, so tests/test_autograd_gpu.cpp can move a whole instance to the GPU.
struct GradInstance {
  std::vector<Tensor> inputs;
  VariableFn fn;
  GradCheckOptions options;
  std::string desc;  // shapes and parameters, for failure messages
};

struct GradRow {
  std::string name;  // unique, a C identifier (the test name)
  // Signatures exercised, as signature_key() spells them: "add(Variable, double)".
  std::vector<std::string> covers;
  // Builds trial `trial` (0-based; rows enumerate their variants with it) from the rng.
  std::function<GradInstance(std::mt19937& rng, int trial)> make;
  int trials = 4;
};

const std::vector<GradRow>& grad_table();

// The signatures of every function returning a Variable (or a pair / vector of them) declared
// in a header's text: "name(T1, T2)" with parameter names, defaults, const, & and std:: removed.
std::vector<std::string> declared_signatures(const std::string& header_text);

}  // namespace nn::test
