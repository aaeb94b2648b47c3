// Input builders shared by the gradient table's files (grad_table*.cpp): float64 CPU tensors
// drawn from domains that keep finite differences away from kinks, random and broadcasting
// shapes, and strided layouts of the same values.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "graph/functions.h"
#include "tests/grad_table.h"
#include "tests/op_harness.h"

namespace nn::test {

using Rng = std::mt19937;
using Vars = std::vector<Variable>;

inline double uni(Rng& r, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(r);
}
inline int64_t irand(Rng& r, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(r);
}
inline bool coin(Rng& r, double p = 0.5) { return uni(r, 0.0, 1.0) < p; }

template <class Gen>
Tensor generate(const Shape& s, Gen gen) {
  std::vector<double> v(size_t(shape_numel(s)));
  for (double& x : v) x = gen();
  return from_vector(v, s, {Dtype::Float64});
}

inline Tensor uniform(Rng& r, const Shape& s, double lo, double hi) {
  return generate(s, [&] { return uni(r, lo, hi); });
}

// |x| in [lo, hi] with a random sign.
inline Tensor away(Rng& r, const Shape& s, double lo, double hi) {
  return generate(s, [&] { return (coin(r) ? 1.0 : -1.0) * uni(r, lo, hi); });
}

// Values in [lo, hi] at least `gap` from every kink.
inline Tensor avoiding(Rng& r, const Shape& s, double lo, double hi,
                       const std::vector<double>& kinks, double gap) {
  return generate(s, [&] {
    for (;;) {
      double x = uni(r, lo, hi);
      bool ok = true;
      for (double k : kinks) ok = ok && std::abs(x - k) >= gap;
      if (ok) return x;
    }
  });
}

// Pairwise distinct values at least 0.08 apart in a random order: extremes are unique.
inline Tensor distinct(Rng& r, const Shape& s) {
  const int64_t n = shape_numel(s);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 0.1 * double(i - n / 2) + uni(r, 0.0, 0.02);
  std::shuffle(v.begin(), v.end(), r);
  return from_vector(v, s, {Dtype::Float64});
}

// Values on the grid 0.2 k + phase (plus jitter below 0.04): two grids with phases 0 and 0.1
// never come closer than 0.06, so maximum/minimum of them never tie.
inline Tensor grid(Rng& r, const Shape& s, double phase) {
  return generate(s, [&] { return 0.2 * double(irand(r, -8, 8)) + phase + uni(r, 0.0, 0.04); });
}

// Rank in [min_rank, max_rank], sizes in [1, max_size] (size 1 on purpose, a broadcasting
// corner, about one time in four).
inline Shape rand_shape(Rng& r, int min_rank, int max_rank, int64_t max_size = 4) {
  Shape s(size_t(irand(r, min_rank, max_rank)));
  for (int64_t& d : s) d = coin(r, 0.25) ? 1 : irand(r, 1, max_size);
  return s;
}

// A shape that broadcasts to `full`: some leading axes dropped, some axes set to 1.
inline Shape broadcast_of(Rng& r, const Shape& full) {
  Shape s(full.begin() + irand(r, 0, int64_t(full.size())), full.end());
  for (int64_t& d : s)
    if (coin(r, 0.3)) d = 1;
  return s;
}

// Two operand shapes of a broadcasting op; each side is sometimes the full shape, sometimes
// reduced (0-d included).
inline std::pair<Shape, Shape> broadcast_pair(Rng& r) {
  const Shape full = rand_shape(r, 0, 4);
  Shape a = coin(r) ? full : broadcast_of(r, full);
  Shape b = coin(r) ? full : broadcast_of(r, full);
  return {a, b};
}

// The same logical values with the first and last axes' strides swapped half the time (a
// non-contiguous input), for rank >= 2.
inline Tensor maybe_strided(Rng& r, const Tensor& t) {
  if (t.dim() < 2 || !coin(r)) return t;
  return t.transpose(0, -1).contiguous().transpose(0, -1);
}

inline std::string shapes_of(const std::vector<Tensor>& xs) {
  std::string s;
  for (const Tensor& x : xs) s += (s.empty() ? "" : " ") + shape_str(x.shape());
  return s;
}

inline GradInstance instance(std::vector<Tensor> inputs, VariableFn fn,
                             const std::string& desc = "") {
  GradInstance g;
  g.desc = "inputs " + shapes_of(inputs) + (desc.empty() ? "" : ", " + desc);
  g.inputs = std::move(inputs);
  g.fn = std::move(fn);
  return g;
}

inline const std::vector<Activation>& all_activations() {
  static const std::vector<Activation> kAll = {
      Activation::None, Activation::Relu, Activation::Gelu,   Activation::GeluTanh,
      Activation::Silu, Activation::Tanh, Activation::Sigmoid};
  return kAll;
}

// The rows of grad_table_nn.cpp.
void add_nn_rows(std::vector<GradRow>& table);
void add_shape_rows(std::vector<GradRow>& table);
// The rows of grad_table_activation.cpp.
void add_activation_rows(std::vector<GradRow>& table);
// The rows of grad_table_conv.cpp.
void add_conv_rows(std::vector<GradRow>& table);

}  // namespace nn::test
