// Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_), entirely on the device:
// the norm and the clipping factor stay 0-d device tensors and nothing is read back to the host,
// so a training step that clips still has no host synchronisation.
//
// Parameters whose gradient is undefined are skipped. The gradients of one call must all be on
// one device (DeviceError otherwise). Norms of float32 and half gradients are computed in
// float32, of float64 ones in float64 (the result is float64 when any gradient is). A non-finite
// total norm is not detected (that would need a host read): clipping then leaves NaN gradients.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "graph/variable.h"

namespace nn {

// The p-norm of all gradients together, as if concatenated into one vector: norm_type > 0, or
// infinity for the largest absolute value (ValueError otherwise). A 0-d tensor on the gradients'
// device; a float32 CPU zero when no parameter has a gradient.
Tensor total_grad_norm(const std::vector<Variable>& params, double norm_type = 2.0);

// min(1, max_norm / (total_norm + 1e-6)) as a 0-d tensor of total_norm's dtype and device.
// max_norm >= 0 (infinity allowed: never clips), ValueError otherwise. Optimizer::step(scale)
// takes it to fuse the clipping into the update instead of rescaling the gradients in place
// (the fused op reads the scale as float32, so float64 runs agree with clip_grad_norm_ to
// float32 rounding of the factor).
Tensor clip_coefficient(const Tensor& total_norm, double max_norm);

// Scales every gradient in place by clip_coefficient(total_grad_norm(params, norm_type),
// max_norm) and returns the total norm (before clipping). Gradients whose norm is within
// max_norm are multiplied by exactly 1.
Tensor clip_grad_norm_(const std::vector<Variable>& params, double max_norm,
                       double norm_type = 2.0);

// Clamps every gradient in place to [-clip_value, clip_value]; clip_value >= 0 (ValueError).
void clip_grad_value_(const std::vector<Variable>& params, double clip_value);

}  // namespace nn
