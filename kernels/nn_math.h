// Scalar maths of the fused training ops (kernels/nn_ops.h), written once and compiled into both
// backends, so the CPU oracle and the CUDA kernels cannot drift apart: the activation fused into
// linear, the cross-entropy gradient of one logit, and one element of an optimizer step.
// Internal to kernels/ (not installed). A = the arithmetic type (float, or double for float64).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/macros.h"
#include "kernels/math.h"
#include "kernels/nn_ops.h"

namespace nn {

// Calls f.template operator()<Act>() with the compile-time form of a runtime activation.
template <class F>
decltype(auto) visit_activation(Activation a, F&& f) {
  switch (a) {
    case Activation::None:
      return f.template operator()<Activation::None>();
    case Activation::Relu:
      return f.template operator()<Activation::Relu>();
    case Activation::Gelu:
      return f.template operator()<Activation::Gelu>();
    case Activation::GeluTanh:
      return f.template operator()<Activation::GeluTanh>();
    case Activation::Silu:
      return f.template operator()<Activation::Silu>();
    case Activation::Tanh:
      return f.template operator()<Activation::Tanh>();
    case Activation::Sigmoid:
      return f.template operator()<Activation::Sigmoid>();
  }
  NN_THROW(ValueError, "unknown activation code ", int(a));
}

template <class F>
decltype(auto) visit_optimizer(OptimizerKind k, F&& f) {
  switch (k) {
    case OptimizerKind::Sgd:
      return f.template operator()<OptimizerKind::Sgd>();
    case OptimizerKind::Adam:
      return f.template operator()<OptimizerKind::Adam>();
    case OptimizerKind::AdamW:
      return f.template operator()<OptimizerKind::AdamW>();
    case OptimizerKind::RMSprop:
      return f.template operator()<OptimizerKind::RMSprop>();
  }
  NN_THROW(ValueError, "unknown optimizer kind code ", int(k));
}

namespace math {

template <Activation Act, class A>
NN_HOST_DEVICE NN_INLINE A activation_fn(A z) {
  if constexpr (Act == Activation::None)
    return z;
  else
    return unary_fn<activation_unary_op(Act), A>(z, A(0), A(0));
}

// g * act'(z) from what activation_saved(Act) keeps (kernels/nn_ops.h): s is the output y for
// Relu, Sigmoid and Tanh, the pre-activation z for Gelu, GeluTanh and Silu, ignored for None.
template <Activation Act, class A>
NN_HOST_DEVICE NN_INLINE A activation_grad(A g, A s) {
  if constexpr (Act == Activation::None)
    return g;
  else if constexpr (Act == Activation::Relu)
    return s > A(0) ? g : A(0);
  else if constexpr (Act == Activation::Sigmoid)
    return g * s * (A(1) - s);
  else if constexpr (Act == Activation::Tanh)
    return g * (A(1) - s * s);
  else
    return unary_grad_fn<activation_unary_op(Act), A>(g, s, A(0), A(0));
}

// d loss_i / d logit_j of cross-entropy (kernels/nn_ops.h), given p_j = exp(z_j - lse):
//   (1 - eps) w_y (p_j - [j == y]) + eps / C (W p_j - w_j),   W = sum_c w_c,
// folded as p_j * coef - [j == y] * target_coef - smooth * w_j with the row constants
//   coef = (1 - eps) w_y + eps W / C,  target_coef = (1 - eps) w_y,  smooth = eps / C.
template <class A>
NN_HOST_DEVICE NN_INLINE A cross_entropy_grad(A p, bool is_target, A w_j, A coef, A target_coef,
                                              A smooth) {
  return p * coef - (is_target ? target_coef : A(0)) - smooth * w_j;
}

// Hyper-parameters of one step in the arithmetic type, with the per-step constants folded in
// on the host (bias corrections need the step count, which is a host value).
template <class A>
struct OptimScalars {
  A lr, weight_decay, momentum, dampening, beta1, beta2, eps, alpha;
  A step_size;     // Adam: lr / (1 - beta1^step)
  A bc2_sqrt;      // Adam: sqrt(1 - beta2^step)
  A decay_factor;  // AdamW: 1 - lr * weight_decay
  bool nesterov, amsgrad, centered, maximize;
  bool first_step;  // SGD: the momentum buffer starts as the gradient
  bool has_momentum;
};

template <class A>
OptimScalars<A> optim_scalars(const OptimizerHyper& h) {
  OptimScalars<A> s{};
  s.lr = A(h.lr);
  s.weight_decay = A(h.weight_decay);
  s.momentum = A(h.momentum);
  s.dampening = A(h.dampening);
  s.beta1 = A(h.beta1);
  s.beta2 = A(h.beta2);
  s.eps = A(h.eps);
  s.alpha = A(h.alpha);
  const double step = double(h.step);
  s.step_size = A(h.lr / (1.0 - std::pow(h.beta1, step)));
  s.bc2_sqrt = A(std::sqrt(1.0 - std::pow(h.beta2, step)));
  s.decay_factor = A(1.0 - h.lr * h.weight_decay);
  s.nesterov = h.nesterov;
  s.amsgrad = h.amsgrad;
  s.centered = h.centered;
  s.maximize = h.maximize;
  s.first_step = h.step == 1;
  s.has_momentum = h.momentum != 0.0;
  return s;
}

// One element of one step, torch.optim's single-tensor maths. g is the (already scaled)
// gradient; s0..s2 are the states the kind and options use (see ParamGroupTensors), the others
// are ignored. Updates p and the used states in place.
template <OptimizerKind K, class A>
NN_HOST_DEVICE NN_INLINE void optimizer_update(const OptimScalars<A>& h, A& p, A g, A& s0, A& s1,
                                               A& s2) {
  if (h.maximize) g = -g;
  if constexpr (K == OptimizerKind::Sgd) {
    if (h.weight_decay != A(0)) g = fma_(h.weight_decay, p, g);
    if (h.has_momentum) {
      s0 = h.first_step ? g : fma_(h.momentum, s0, (A(1) - h.dampening) * g);
      g = h.nesterov ? fma_(h.momentum, s0, g) : s0;
    }
    p = fma_(-h.lr, g, p);
  } else if constexpr (K == OptimizerKind::Adam || K == OptimizerKind::AdamW) {
    if constexpr (K == OptimizerKind::AdamW) {
      p = p * h.decay_factor;
    } else {
      if (h.weight_decay != A(0)) g = fma_(h.weight_decay, p, g);
    }
    s0 = fma_(A(1) - h.beta1, g - s0, s0);  // lerp towards g, as torch's exp_avg.lerp_
    s1 = fma_(h.beta2, s1, (A(1) - h.beta2) * g * g);
    A v = s1;
    if (h.amsgrad) {
      s2 = s2 > s1 ? s2 : s1;
      v = s2;
    }
    const A denom = sqrt_(v) / h.bc2_sqrt + h.eps;
    p = p - h.step_size * (s0 / denom);
  } else {
    static_assert(K == OptimizerKind::RMSprop, "optimizer_update: kind missing");
    if (h.weight_decay != A(0)) g = fma_(h.weight_decay, p, g);
    s0 = fma_(h.alpha, s0, (A(1) - h.alpha) * g * g);
    A avg;
    if (h.centered) {
      s2 = fma_(A(1) - h.alpha, g - s2, s2);
      avg = sqrt_(s0 - s2 * s2) + h.eps;
    } else {
      avg = sqrt_(s0) + h.eps;
    }
    if (h.has_momentum) {
      s1 = fma_(h.momentum, s1, g / avg);
      p = fma_(-h.lr, s1, p);
    } else {
      p = fma_(-h.lr, g / avg, p);
    }
  }
}

}  // namespace math
}  // namespace nn
