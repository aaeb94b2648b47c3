#include "optim/clip.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/ops.h"

namespace nn {
namespace {

// The defined gradients of `params`, checked to share one device.
std::vector<Tensor> gradients(const std::vector<Variable>& params, const char* fn) {
  std::vector<Tensor> grads;
  for (const Variable& v : params) {
    if (!v.defined() || !v.grad().defined()) continue;
    grads.push_back(v.grad());
    NN_CHECK(grads.back().device() == grads.front().device(), DeviceError, fn, ": gradients on ",
             grads.front().device().str(), " and ", grads.back().device().str(),
             ", expected all on one device");
  }
  return grads;
}

}  // namespace

Tensor total_grad_norm(const std::vector<Variable>& params, double norm_type) {
  const bool inf = std::isinf(norm_type) && norm_type > 0;
  NN_CHECK(inf || (std::isfinite(norm_type) && norm_type > 0.0), ValueError,
           "total_grad_norm: norm_type is ", norm_type, ", expected a value > 0 or infinity");
  const std::vector<Tensor> grads = gradients(params, "total_grad_norm");
  if (grads.empty()) return zeros({});

  Dtype acc = Dtype::Float32;
  for (const Tensor& g : grads)
    if (g.dtype() == Dtype::Float64) acc = Dtype::Float64;

  // Each gradient contributes one 0-d partial (its max |g|, or its sum of |g|^p); the partials
  // are combined on the device.
  Tensor total;
  for (const Tensor& grad : grads) {
    const Tensor g = grad.to(acc);
    Tensor part;
    if (inf) {
      part = amax(abs(g));
    } else if (norm_type == 2.0) {
      part = sum(mul(g, g));
    } else if (norm_type == 1.0) {
      part = sum(abs(g));
    } else {
      part = sum(pow(abs(g), norm_type));
    }
    if (!total.defined()) {
      total = part;
    } else if (inf) {
      total = maximum(total, part);
    } else {
      add_(total, part);
    }
  }
  if (inf || norm_type == 1.0) return total;
  if (norm_type == 2.0) return sqrt(total);
  return pow(total, 1.0 / norm_type);
}

Tensor clip_coefficient(const Tensor& total_norm, double max_norm) {
  NN_CHECK(max_norm >= 0.0, ValueError, "clip_coefficient: max_norm is ", max_norm,
           ", expected a value >= 0");
  NN_CHECK(total_norm.defined() && total_norm.numel() == 1, ShapeError,
           "clip_coefficient: total_norm must be a one-element tensor, got ",
           total_norm.defined() ? shape_str(total_norm.shape()) : std::string("undefined"));
  // The clipping factor is computed where the norm is: no host read.
  Tensor coef = div(full({}, max_norm, {total_norm.dtype(), total_norm.device()}),
                    add(total_norm.reshape({}), 1e-6));
  return clamp_(coef, 0.0, 1.0);
}

Tensor clip_grad_norm_(const std::vector<Variable>& params, double max_norm, double norm_type) {
  NN_CHECK(max_norm >= 0.0, ValueError, "clip_grad_norm_: max_norm is ", max_norm,
           ", expected a value >= 0");
  const Tensor norm = total_grad_norm(params, norm_type);
  const std::vector<Tensor> grads = gradients(params, "clip_grad_norm_");
  if (grads.empty()) return norm;
  const Tensor coef = clip_coefficient(norm, max_norm);
  for (Tensor g : grads) mul_(g, coef.to(g.dtype()));
  return norm;
}

void clip_grad_value_(const std::vector<Variable>& params, double clip_value) {
  NN_CHECK(clip_value >= 0.0, ValueError, "clip_grad_value_: clip_value is ", clip_value,
           ", expected a value >= 0");
  for (Tensor g : gradients(params, "clip_grad_value_")) clamp_(g, -clip_value, clip_value);
}

}  // namespace nn
