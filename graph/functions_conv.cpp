// Differentiable convolutional-network ops (graph/functions.h): conv2d, max/avg pooling,
// adaptive average pooling and batch norm. Forward calls kernels/conv_ops.h's front end; backward
// calls its *_backward functions, so both run on whichever device the tensors are on. What a
// backward needs is saved at forward time in device tensors (pooling indices, batch statistics,
// the fused ReLU's output): nothing is read back to the host.
#include <utility>
#include <vector>

#include "graph/functions.h"

namespace nn {

namespace {

using Grads = std::vector<Tensor>;

}  // namespace

Variable conv2d(const Variable& x, const Variable& w, const Variable& b, const Conv2dOptions& opt) {
  std::vector<Variable> inputs = {x, w};
  if (b.defined()) inputs.push_back(b);
  Tensor y = conv2d(x.data(), w.data(), b.defined() ? b.data() : Tensor(), opt);
  if (!any_requires_grad(inputs)) return Variable(std::move(y), false);
  const bool has_bias = b.defined();
  return make_variable(
      std::move(y), std::move(inputs),
      [xd = x.data(), wd = w.data(), opt, has_bias](const Tensor& g,
                                                    const std::vector<bool>& needs) {
        Conv2dGrads r = conv2d_backward(g, xd, wd, opt, needs[0], needs[1], has_bias && needs[2]);
        Grads grads{std::move(r.dx), std::move(r.dw)};
        if (has_bias) grads.push_back(std::move(r.db));
        return grads;
      },
      "conv2d");
}

Variable max_pool2d(const Variable& x, const Pool2dOptions& opt) {
  const bool need_grad = any_requires_grad({x});
  Tensor indices;
  Tensor y = max_pool2d(x.data(), opt, need_grad ? &indices : nullptr);
  if (!need_grad) return Variable(std::move(y), false);
  return make_variable(
      std::move(y), {x},
      [indices, x_shape = x.shape()](const Tensor& g, const std::vector<bool>&) {
        return Grads{max_pool2d_backward(g, indices, x_shape)};
      },
      "max_pool2d");
}

Variable avg_pool2d(const Variable& x, const Pool2dOptions& opt) {
  Tensor y = avg_pool2d(x.data(), opt);
  return make_variable(
      std::move(y), {x},
      [opt, x_shape = x.shape()](const Tensor& g, const std::vector<bool>&) {
        return Grads{avg_pool2d_backward(g, x_shape, opt)};
      },
      "avg_pool2d");
}

Variable adaptive_avg_pool2d(const Variable& x, std::array<int64_t, 2> out_size) {
  Tensor y = adaptive_avg_pool2d(x.data(), out_size);
  return make_variable(
      std::move(y), {x},
      [x_shape = x.shape()](const Tensor& g, const std::vector<bool>&) {
        return Grads{adaptive_avg_pool2d_backward(g, x_shape)};
      },
      "adaptive_avg_pool2d");
}

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, bool training, double momentum,
                    double eps, Activation act) {
  std::vector<Variable> inputs = {x};
  const bool has_gamma = gamma.defined(), has_beta = beta.defined();
  if (has_gamma) inputs.push_back(gamma);
  if (has_beta) inputs.push_back(beta);
  const bool need_grad = any_requires_grad(inputs);
  const Tensor gd = has_gamma ? gamma.data() : Tensor();
  Tensor mean, invstd;
  Tensor y = batch_norm(x.data(), gd, has_beta ? beta.data() : Tensor(), running_mean, running_var,
                        training, momentum, eps, act, need_grad && training ? &mean : nullptr,
                        need_grad && training ? &invstd : nullptr);
  if (!need_grad) return Variable(std::move(y), false);
  if (!training) {
    // The running statistics are constants of this gradient: snapshot them as they are now, in
    // the statistics' dtype, since a later training step updates them in place.
    const Dtype sd = x.dtype() == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32;
    mean = running_mean.to(sd).clone();
    invstd = rsqrt(add(running_var.to(sd), eps));
  }
  const Tensor saved_y = act == Activation::Relu ? y : Tensor();
  return make_variable(
      std::move(y), std::move(inputs),
      [xd = x.data(), gd, mean, invstd, saved_y, training, act, has_gamma, has_beta](
          const Tensor& g, const std::vector<bool>& needs) {
        size_t k = 1;
        const bool need_gamma = has_gamma && needs[k++];
        const bool need_beta = has_beta && needs[k];
        BatchNormGrads r = batch_norm_backward(g, xd, gd, mean, invstd, saved_y, training, act,
                                               needs[0], need_gamma, need_beta);
        Grads grads{std::move(r.dx)};
        if (has_gamma) grads.push_back(std::move(r.dgamma));
        if (has_beta) grads.push_back(std::move(r.dbeta));
        return grads;
      },
      "batch_norm");
}

}  // namespace nn
