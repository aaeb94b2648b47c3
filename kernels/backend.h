// The op table: one row per op, implemented once in nn::cpu (kernels/cpu/) and once in
// nn::cuda (kernels/cuda/). The front end (kernels/ops.cpp) validates arguments, allocates the
// output and calls the row here, which dispatches on the output's device. Because both
// namespaces declare every row from the same list, an op missing on either backend is a link
// error, not a runtime surprise.
//
// Contract of every row (the front end guarantees it; backends may assume it):
//  - all tensors are on one device; the first argument is the output;
//  - elementwise rows: inputs already expanded to the output's shape (stride 0 where
//    broadcast); any strides; output may alias an input exactly (in-place ops);
//  - reduce / reduce_index / softmax / random / the fused training rows: see each row;
//  - the first argument's device() picks the backend (a ParamGroupTensors has one too).
#pragma once

#include <cstdint>
#include <tuple>
#include <vector>

#include "core/tensor.h"
#include "kernels/conv_ops.h"
#include "kernels/nn_ops.h"
#include "kernels/ops.h"

namespace nn {

// X(name, parameter list, argument list)
#define NN_OP_TABLE(X)                                                                          \
  /* out[i] = value, converted to out's dtype. */                                               \
  X(fill, (Tensor & out, double value), (out, value))                                           \
  /* out (contiguous, 1-D) element i = start + i * step, computed in double, then converted. */\
  X(arange, (Tensor & out, double start, double step), (out, start, step))                      \
  /* out = src converted to out's dtype; same shape, same device, any strides. */               \
  X(copy, (Tensor & out, const Tensor& src), (out, src))                                        \
  /* out = op(x; alpha, beta); out and x share a floating dtype. */                             \
  X(unary, (Tensor & out, UnaryOp op, const Tensor& x, double alpha, double beta),              \
    (out, op, x, alpha, beta))                                                                  \
  /* out = grad * d op(x)/dx. */                                                                \
  X(unary_backward,                                                                             \
    (Tensor & out, UnaryOp op, const Tensor& grad, const Tensor& x, double alpha, double beta), \
    (out, op, grad, x, alpha, beta))                                                            \
  /* out = a op b; a and b share a floating dtype; out has it, or bool for comparisons. */      \
  X(binary, (Tensor & out, BinaryOp op, const Tensor& a, const Tensor& b), (out, op, a, b))     \
  /* out = cond ? a : b; cond is bool; out, a, b share a dtype. */                              \
  X(where, (Tensor & out, const Tensor& cond, const Tensor& a, const Tensor& b),                \
    (out, cond, a, b))                                                                          \
  /* out (contiguous, x's rank, size 1 on each reduced axis) = op over `dims` (sorted,          \
     unique, non-empty) of x (any strides). Mean divides by the reduced count; Var subtracts    \
     `correction` from it (a count <= correction gives NaN or inf, as in PyTorch). */           \
  X(reduce, (Tensor & out, ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,      \
             int64_t correction),                                                               \
    (out, op, x, dims, correction))                                                             \
  /* values and indices (int64), both contiguous with size 1 at `dim`: Max or Min of x along    \
     `dim` and the first index where it occurs. NaN counts as the extreme. */                  \
  X(reduce_index, (Tensor & values, Tensor& indices, ReduceOp op, const Tensor& x, int64_t dim),\
    (values, indices, op, x, dim))                                                              \
  /* out = softmax or log_softmax of x along dim; out and x contiguous, same shape. */          \
  X(softmax, (Tensor & out, const Tensor& x, int64_t dim, bool log), (out, x, dim, log))        \
  /* out = d/dx given grad of y and y = softmax(x) (or log_softmax); all contiguous. */         \
  X(softmax_backward,                                                                           \
    (Tensor & out, const Tensor& grad_y, const Tensor& y, int64_t dim, bool log),               \
    (out, grad_y, y, dim, log))                                                                 \
  /* out[B,m,n] (contiguous) = op(a) x op(b), op = transpose when trans_*. a is [B, r, c] with  \
     stride(2) == 1 (row-major rows, leading dimension stride(1)); batch stride stride(0) may   \
     be 0 (broadcast). Same for b. out, a and b share a dtype. */                               \
  X(matmul, (Tensor & out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b),       \
    (out, a, b, trans_a, trans_b))                                                              \
  /* out (contiguous, floating) element i = draw i of (seed, offset), see core/rng.h:           \
     Uniform in [a, b), Normal with mean a and std b, Bernoulli 1 with probability a. */        \
  X(random, (Tensor & out, RandomKind kind, double a, double b, uint64_t seed, uint64_t offset),\
    (out, kind, a, b, seed, offset))                                                            \
  /* Fused training rows (kernels/nn_ops.h). linear: x [M, K], w [N, K], b [N] or undefined,   \
     out [M, N], all contiguous and of one floating dtype; pre [M, N] contiguous, defined only   \
     when act != None and the caller wants it: out = act(x w^T + b), pre = x w^T + b. */        \
  X(linear,                                                                                     \
    (Tensor & out, Tensor& pre, const Tensor& x, const Tensor& w, const Tensor& b,              \
     Activation act),                                                                           \
    (out, pre, x, w, b, act))                                                                   \
  /* linear_backward: grad_y [M, N], x [M, K], w [N, K] and saved [M, N] (y or z as              \
     activation_saved(act) says; undefined for None) contiguous, one floating dtype; dx [M, K], \
     dw [N, K], db [N] contiguous, each undefined when not wanted (at least one defined).       \
     dY' = grad_y * act'(z); dx = dY' w; dw = dY'^T x; db = column sums of dY'. Dispatches on   \
     grads.device(). */                                                                         \
  X(linear_backward,                                                                            \
    (LinearGrads & grads, const Tensor& grad_y, const Tensor& x, const Tensor& w,               \
     const Tensor& saved, Activation act),                                                      \
    (grads, grad_y, x, w, saved, act))                                                          \
  /* out [outer, C, inner] = act(x + bias[c]), pre (defined only for activations whose backward \
     reads z, and only when wanted) = x + bias[c]; out, pre, x contiguous, one floating dtype;  \
     bias [C] contiguous or undefined (then plain act). */                                      \
  X(bias_activation,                                                                            \
    (Tensor & out, Tensor& pre, const Tensor& x, const Tensor& bias, int64_t inner,             \
     Activation act),                                                                           \
    (out, pre, x, bias, inner, act))                                                            \
  /* out = grad * act'(z) from saved (y or z per activation_saved(act)); out, grad, saved       \
     contiguous, same shape and floating dtype; act != None. */                                 \
  X(activation_backward,                                                                        \
    (Tensor & out, const Tensor& grad, const Tensor& saved, Activation act),                    \
    (out, grad, saved, act))                                                                    \
  /* loss [N] (logits' dtype), lse [N] (float32, float64 for float64 logits) and sample_weight  \
     [N] (logits' dtype), the last two possibly undefined, all contiguous; logits [N, C] with   \
     C >= 1 and stride(1) == 1; target int64 [N] contiguous; weight [C] contiguous or           \
     undefined. See cross_entropy in kernels/nn_ops.h for the maths and bad targets. */         \
  X(cross_entropy,                                                                              \
    (Tensor & loss, Tensor& lse, Tensor& sample_weight, const Tensor& logits,                   \
     const Tensor& target, const Tensor& weight, double label_smoothing, int64_t ignore_index), \
    (loss, lse, sample_weight, logits, target, weight, label_smoothing, ignore_index))          \
  /* grad [N, C] contiguous (logits' dtype) from grad_loss [N], logits [N, C] (stride(1) == 1), \
     target, lse (defined) and weight, laid out as for cross_entropy. */                        \
  X(cross_entropy_backward,                                                                     \
    (Tensor & grad, const Tensor& grad_loss, const Tensor& logits, const Tensor& target,        \
     const Tensor& lse, const Tensor& weight, double label_smoothing, int64_t ignore_index),     \
    (grad, grad_loss, logits, target, lse, weight, label_smoothing, ignore_index))              \
  /* Convolution rows (kernels/conv_ops.h), NCHW, all tensors contiguous, one floating dtype,  \
     options validated and the output sizes conv_out_size gives. y [N, O, Ho, Wo] = conv(x      \
     [N, C, H, W], w [O, C/g, kH, kW]) + b [O] (b undefined: no bias). */                       \
  X(conv2d, (Tensor & y, const Tensor& x, const Tensor& w, const Tensor& b,                     \
             const Conv2dOptions& opt),                                                         \
    (y, x, w, b, opt))                                                                          \
  /* dx [N, C, H, W] (overwritten) from grad_y [N, O, Ho, Wo] and w. */                        \
  X(conv2d_backward_data,                                                                       \
    (Tensor & dx, const Tensor& grad_y, const Tensor& w, const Conv2dOptions& opt),             \
    (dx, grad_y, w, opt))                                                                       \
  /* dw [O, C/g, kH, kW] (overwritten) from grad_y and x; db [O] (sums of grad_y over N, Ho,    \
     Wo) too when defined, fused where that is cheap. */                                        \
  X(conv2d_backward_weight,                                                                     \
    (Tensor & dw, Tensor& db, const Tensor& grad_y, const Tensor& x, const Conv2dOptions& opt), \
    (dw, db, grad_y, x, opt))                                                                   \
  /* y [N, C, Ho, Wo] = pooling of x [N, C, H, W]; indices int64 like y, Max only, possibly     \
     undefined (then not written); opt.stride already resolved (no zeros). */                  \
  X(pool2d,                                                                                     \
    (Tensor & y, Tensor& indices, const Tensor& x, PoolKind kind, const Pool2dOptions& opt),    \
    (y, indices, x, kind, opt))                                                                 \
  /* dx [N, C, H, W] (overwritten) from grad_y; Max scatters through indices (defined), Avg     \
     spreads over the windows of opt. */                                                        \
  X(pool2d_backward,                                                                            \
    (Tensor & dx, const Tensor& grad_y, const Tensor& indices, PoolKind kind,                   \
     const Pool2dOptions& opt),                                                                 \
    (dx, grad_y, indices, kind, opt))                                                           \
  /* y [N, C, oh, ow] = adaptive average pooling of x [N, C, H, W]; backward the reverse. */    \
  X(adaptive_avg_pool2d, (Tensor & y, const Tensor& x), (y, x))                                 \
  X(adaptive_avg_pool2d_backward, (Tensor & dx, const Tensor& grad_y), (dx, grad_y))            \
  /* Batch norm over x [N, C, inner] (see kernels/conv_ops.h): y like x; save_mean/save_invstd  \
     [C] float32 (float64 for float64 x), written in training when defined; running_mean/var    \
     [C] (x's dtype) updated in training when defined, read in evaluation; gamma/beta [C] or    \
     undefined; act None or Relu. */                                                           \
  X(batch_norm,                                                                                 \
    (Tensor & y, Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,                  \
     Tensor& running_var, const Tensor& x, const Tensor& gamma, const Tensor& beta,             \
     bool training, double momentum, double eps, Activation act),                               \
    (y, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, training, momentum,  \
     eps, act))                                                                                 \
  /* grads.dx / dgamma / dbeta (each possibly undefined) from grad_y, x [N, C, inner], gamma    \
     (or undefined), mean/invstd [C] (float32, float64 for float64 x), y (act == Relu only).    \
     Dispatches on grads.device(). */                                                           \
  X(batch_norm_backward,                                                                        \
    (BatchNormGrads & grads, const Tensor& grad_y, const Tensor& x, const Tensor& gamma,        \
     const Tensor& mean, const Tensor& invstd, const Tensor& y, bool training, Activation act), \
    (grads, grad_y, x, gamma, mean, invstd, y, training, act))                                  \
  /* In place over a validated, non-empty group: params and states contiguous, grads contiguous,\
     state lists as the kind needs, one floating dtype; grad_scale a float32 one-element tensor \
     or undefined. Dispatches on group.device(). */                                             \
  X(optimizer_step,                                                                             \
    (ParamGroupTensors & group, const OptimizerHyper& hyper, const Tensor& grad_scale),         \
    (group, hyper, grad_scale))

#define NN_DECLARE_OP(name, params, args) void name params;
namespace cpu {
NN_OP_TABLE(NN_DECLARE_OP)
}
namespace cuda {
NN_OP_TABLE(NN_DECLARE_OP)
}
#undef NN_DECLARE_OP

namespace backend {
[[noreturn]] void no_cuda_build(const char* op);  // throws DeviceError

#if defined(NN_WITH_CUDA)
#define NN_DISPATCH_OP(name, params, args)            \
  inline void name params {                           \
    if (std::get<0>(std::tie args).device().is_cuda()) \
      ::nn::cuda::name args;                          \
    else                                              \
      ::nn::cpu::name args;                           \
  }
#else
#define NN_DISPATCH_OP(name, params, args)            \
  inline void name params {                           \
    if (std::get<0>(std::tie args).device().is_cuda()) \
      no_cuda_build(#name);                           \
    ::nn::cpu::name args;                             \
  }
#endif
NN_OP_TABLE(NN_DISPATCH_OP)
#undef NN_DISPATCH_OP
}  // namespace backend

}  // namespace nn
