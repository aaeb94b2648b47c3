// Front end of the standalone activation ops (kernels/nn_ops.h): bias_activation and
// activation_backward. Validation happens here, once; the backends get contiguous operands and
// the [outer, C, inner] view the rows promise (kernels/backend.h).
#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

Tensor bias_activation(const Tensor& x, const Tensor& b, Activation act, int64_t dim,
                       Tensor* saved) {
  const char* op = "bias_activation";
  if (saved) *saved = Tensor();
  if (b.defined())
    detail::check_inputs(op, {{"input", x}, {"bias", b}});
  else
    detail::check_inputs(op, {{"input", x}});
  detail::check_floating(op, {"input", x});
  if (b.defined()) detail::check_same_dtype(op, {"input", x}, {"bias", b});
  const int64_t rank = x.dim();
  NN_CHECK(rank >= 1 && dim >= -rank && dim < rank, ShapeError, op, ": dim ", dim,
           " is out of range for an input of shape ", shape_str(x.shape()), " (expected [", -rank,
           ", ", rank - 1, "])");
  const int64_t d = dim < 0 ? dim + rank : dim;
  const int64_t channels = x.size(d);
  NN_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == channels), ShapeError, op,
           ": bias has shape ", shape_str(b.defined() ? b.shape() : Shape{}), ", expected [",
           channels, "] (size of dim ", dim, " of input ", shape_str(x.shape()), ")");
  int64_t inner = 1;
  for (int64_t k = d + 1; k < rank; ++k) inner *= x.size(k);

  const TensorOptions opts{x.dtype(), x.device()};
  const ActivationSaved keeps = activation_saved(act);
  Tensor y = empty(x.shape(), opts);
  Tensor pre =
      (saved && keeps == ActivationSaved::PreActivation) ? empty(x.shape(), opts) : Tensor();
  if (y.numel() > 0)
    backend::bias_activation(y, pre, x.contiguous(), b.defined() ? b.contiguous() : Tensor(), inner,
                             act);
  if (saved) *saved = keeps == ActivationSaved::Output ? y : pre;
  return y;
}

Tensor activation_backward(const Tensor& grad, const Tensor& saved, Activation act) {
  const char* op = "activation_backward";
  if (act == Activation::None) {
    detail::check_inputs(op, {{"grad", grad}});
    detail::check_floating(op, {"grad", grad});
    return grad.contiguous();
  }
  NN_CHECK(saved.defined(), ValueError, op, ": activation ", activation_name(act), " needs ",
           activation_saved(act) == ActivationSaved::Output ? "its output y" : "its input z",
           " (what bias_activation or linear saved), got an undefined tensor");
  detail::check_inputs(op, {{"grad", grad}, {"saved", saved}});
  detail::check_floating(op, {"grad", grad});
  detail::check_same_dtype(op, {"grad", grad}, {"saved", saved});
  detail::check_same_shape(op, {"grad", grad}, {"saved", saved});
  Tensor out = empty(grad.shape(), {grad.dtype(), grad.device()});
  if (out.numel() > 0)
    backend::activation_backward(out, grad.contiguous(), saved.contiguous(), act);
  return out;
}

}  // namespace nn
