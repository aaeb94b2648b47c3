// The float64 finite-difference gradient checker (tests/grad_check.h).
//
// Analytic: nn::grad of the output seeded with a fixed random w, i.e. d sum(f(x) * w) / dx.
// Numeric: the same scalar evaluated at x +- eps by writing the perturbed value straight into
// the input's memory (the inputs keep their layout, so strided views are checked as given).
#include "tests/grad_check.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>

#include "core/error.h"
#include "graph/functions.h"
#include "kernels/ops.h"

namespace nn::test {

namespace {

// sum(out * w) on the host, in float64.
double weighted_sum(const Tensor& out, const std::vector<double>& w) {
  std::vector<double> v = out.to_vector<double>();
  double s = 0.0;
  for (size_t i = 0; i < v.size(); ++i) s += v[i] * w[i];
  return s;
}

// Memory of logical element `flat` (row-major) of t.
double* element(const Tensor& t, int64_t flat) {
  int64_t offset = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    offset += (flat % t.size(d)) * t.stride(d);
    flat /= t.size(d);
  }
  return t.data<double>() + offset;
}

// True when two logical elements of t share memory (an expanded view): perturbing one would
// move several, so the check works on a private copy instead.
bool overlapping(const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.stride(d) == 0 && t.size(d) > 1) return true;
  return false;
}

std::string index_str(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    idx[size_t(d)] = flat % shape[size_t(d)];
    flat /= shape[size_t(d)];
  }
  return shape_str(idx);
}

// The elements of an input to check: all of them, or a fixed random sample.
std::vector<int64_t> checked_elements(int64_t numel, int64_t limit, std::mt19937_64& rng) {
  std::vector<int64_t> all(static_cast<size_t>(numel));
  std::iota(all.begin(), all.end(), int64_t(0));
  if (numel <= limit) return all;
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(size_t(limit));
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace

::testing::AssertionResult grad_check(const std::string& what, const VariableFn& f,
                                      const std::vector<Tensor>& inputs,
                                      const GradCheckOptions& options) {
  const auto fail = [&](const std::string& msg) {
    return ::testing::AssertionFailure() << what << ": " << msg;
  };
  if (!options.differentiable.empty() && options.differentiable.size() != inputs.size())
    return fail("options.differentiable has " + std::to_string(options.differentiable.size()) +
                " entries for " + std::to_string(inputs.size()) + " inputs");

  std::vector<Tensor> data;
  std::vector<Variable> vars;
  std::vector<Variable> wrt;
  std::vector<size_t> wrt_index;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const bool diff = options.differentiable.empty() || options.differentiable[i];
    Tensor t = inputs[i];
    if (diff) {
      if (t.dtype() != Dtype::Float64 || !t.device().is_cpu())
        return fail("input " + std::to_string(i) + " must be a float64 CPU tensor, got " +
                    dtype_name(t.dtype()) + " on " + t.device().str());
      if (overlapping(t)) t = t.clone();
    }
    data.push_back(t);
    vars.emplace_back(t, diff);
    if (diff) {
      wrt.push_back(vars.back());
      wrt_index.push_back(i);
    }
  }
  if (wrt.empty()) return fail("no input is differentiable");

  Variable out = f(vars);
  if (!out.defined()) return fail("the function returned an undefined Variable");
  if (!out.requires_grad()) return fail("the output does not require a gradient");

  std::mt19937_64 rng(options.seed);
  std::uniform_real_distribution<double> unit(0.5, 1.5);
  std::vector<double> w(size_t(out.numel()));
  // Weights of both signs and magnitudes away from 0, so no input's gradient cancels by chance.
  for (double& v : w) v = (rng() & 1 ? 1.0 : -1.0) * unit(rng);
  Tensor seed = from_vector(w, out.shape(), {Dtype::Float64}).to(out.dtype());
  w = seed.to_vector<double>();  // what the output dtype holds

  std::vector<Tensor> analytic;
  try {
    analytic = nn::grad({out}, wrt, {seed});
  } catch (const std::exception& e) {
    return fail(std::string("backward threw: ") + e.what());
  }

  const auto value_at = [&]() {
    NoGradGuard no_grad;
    return weighted_sum(f(vars).data(), w);
  };

  for (size_t k = 0; k < wrt.size(); ++k) {
    const size_t i = wrt_index[k];
    const Tensor& x = data[i];
    if (!analytic[k].defined()) {
      if (x.numel() == 0) continue;
      return fail("no gradient reached input " + std::to_string(i));
    }
    if (analytic[k].shape() != x.shape())
      return fail("the gradient of input " + std::to_string(i) + " has shape " +
                  shape_str(analytic[k].shape()) + ", expected " + shape_str(x.shape()));
    const std::vector<double> a = analytic[k].to_vector<double>();
    for (int64_t e : checked_elements(x.numel(), options.max_checked_per_input, rng)) {
      double* p = element(x, e);
      const double saved = *p;
      *p = saved + options.eps;
      const double plus = value_at();
      *p = saved - options.eps;
      const double minus = value_at();
      *p = saved;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      const double analytic_e = a[size_t(e)];
      const double err = std::abs(analytic_e - numeric);
      if (!(err <= options.atol + options.rtol * std::abs(numeric))) {
        std::ostringstream os;
        os.precision(12);
        os << "input " << i << " " << shape_str(x.shape()) << " element " << index_str(e, x.shape())
           << " (value " << saved << "): analytic " << analytic_e << ", numeric " << numeric
           << ", |diff| " << err;
        return fail(os.str());
      }
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<double> numeric_grad(Tensor& t, const std::function<double()>& f, double eps) {
  NN_CHECK(t.dtype() == Dtype::Float64 && t.device().is_cpu() && t.is_contiguous(), ValueError,
           "numeric_grad: expects a contiguous float64 CPU tensor");
  double* p = t.data<double>();
  std::vector<double> g(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double saved = p[i];
    p[i] = saved + eps;
    const double up = f();
    p[i] = saved - eps;
    const double down = f();
    p[i] = saved;
    g[size_t(i)] = (up - down) / (2.0 * eps);
  }
  return g;
}

::testing::AssertionResult param_grad_check(Module& m, const std::function<Variable()>& f,
                                            double eps, double tol) {
  Variable out = f();
  Generator gen(99);
  const Tensor w = randn(out.shape(), {Dtype::Float64}, &gen);
  m.zero_grad();
  sum(out * Variable(w)).backward();
  auto objective = [&] {
    NoGradGuard no_grad;
    return sum(f().data() * w).item();
  };
  for (auto& [name, p] : m.named_parameters()) {
    if (!p.grad().defined()) return ::testing::AssertionFailure() << name << " got no gradient";
    const std::vector<double> analytic = p.grad().to_vector<double>();
    const std::vector<double> numeric = numeric_grad(p.data(), objective, eps);
    for (size_t i = 0; i < numeric.size(); ++i) {
      if (std::abs(numeric[i] - analytic[i]) > tol * (1.0 + std::abs(numeric[i]))) {
        return ::testing::AssertionFailure() << name << "[" << i << "]: analytic " << analytic[i]
                                             << ", numeric " << numeric[i];
      }
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace nn::test
