// Front end of the convolutional-network ops (kernels/conv_ops.h): conv2d and its backward,
// max/avg pooling, adaptive average pooling and batch norm. Validation happens here, once; the
// backends get contiguous operands, resolved options and outputs of the sizes computed here
// (kernels/backend.h). Nothing here reads a device value.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

namespace {

std::string pair_str(const std::array<int64_t, 2>& v) {
  return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")";
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? t.contiguous() : Tensor(); }

}  // namespace

// ---- conv2d ---------------------------------------------------------------------------------

int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                      int64_t dilation) {
  NN_CHECK(stride >= 1 && dilation >= 1 && padding >= 0 && kernel >= 1, ValueError,
           "conv_out_size: need kernel, stride, dilation >= 1 and padding >= 0, got kernel ",
           kernel, ", stride ", stride, ", padding ", padding, ", dilation ", dilation);
  const int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  // Floor division: a negative span (kernel larger than the padded input) gives <= 0.
  return span < 0 ? 0 : span / stride + 1;
}

const char* conv_backend_name(ConvBackend b) {
  switch (b) {
    case ConvBackend::Auto:
      return "auto";
    case ConvBackend::Cudnn:
      return "cudnn";
    case ConvBackend::Ours:
      return "ours";
  }
  return "?";
}

ConvBackend parse_conv_backend(const std::string& name) {
  for (ConvBackend b : {ConvBackend::Auto, ConvBackend::Cudnn, ConvBackend::Ours})
    if (name == conv_backend_name(b)) return b;
  NN_THROW(ValueError, "parse_conv_backend: unknown conv backend \"", name,
           "\", expected auto, cudnn or ours");
}

namespace {

std::atomic<ConvBackend>& conv_backend_state() {
  // A function-local static: initialised once, on first use, even with several threads.
  static std::atomic<ConvBackend> state{detail::backend_from_env(
      "NN_CONV_BACKEND", ConvBackend::Auto, &parse_conv_backend, "auto, cudnn or ours")};
  return state;
}

void check_conv_options(const char* op, const Conv2dOptions& opt) {
  for (int i = 0; i < 2; ++i) {
    NN_CHECK(opt.stride[size_t(i)] >= 1, ValueError, op, ": stride must be >= 1, got ",
             pair_str(opt.stride));
    NN_CHECK(opt.padding[size_t(i)] >= 0, ValueError, op, ": padding must be >= 0, got ",
             pair_str(opt.padding));
    NN_CHECK(opt.dilation[size_t(i)] >= 1, ValueError, op, ": dilation must be >= 1, got ",
             pair_str(opt.dilation));
  }
  NN_CHECK(opt.groups >= 1, ValueError, op, ": groups must be >= 1, got ", opt.groups);
}

// Shapes of conv2d and its backward; returns y's shape [N, O, Ho, Wo].
Shape conv_shapes(const char* op, const Tensor& x, const Tensor& w, const Conv2dOptions& opt) {
  check_conv_options(op, opt);
  NN_CHECK(x.dim() == 4, ShapeError, op, ": input must be 4-D [N, C, H, W], got shape ",
           shape_str(x.shape()));
  NN_CHECK(w.dim() == 4, ShapeError, op, ": weight must be 4-D [O, C / groups, kH, kW], got shape ",
           shape_str(w.shape()));
  const int64_t c = x.size(1), o = w.size(0), g = opt.groups;
  NN_CHECK(c == w.size(1) * g, ShapeError, op, ": input has ", c, " channels, weight expects ",
           w.size(1) * g, " (groups ", g, "; input ", shape_str(x.shape()), ", weight ",
           shape_str(w.shape()), ")");
  NN_CHECK(o % g == 0, ShapeError, op, ": groups ", g, " does not divide the ", o,
           " output channels of weight ", shape_str(w.shape()));
  NN_CHECK(w.size(2) >= 1 && w.size(3) >= 1, ShapeError, op, ": weight ", shape_str(w.shape()),
           " has an empty kernel");
  const int64_t ho =
      conv_out_size(x.size(2), w.size(2), opt.stride[0], opt.padding[0], opt.dilation[0]);
  const int64_t wo =
      conv_out_size(x.size(3), w.size(3), opt.stride[1], opt.padding[1], opt.dilation[1]);
  NN_CHECK(ho >= 1 && wo >= 1, ShapeError, op, ": kernel ", w.size(2), "x", w.size(3),
           " (dilation ", pair_str(opt.dilation), ") is larger than the input ", x.size(2), "x",
           x.size(3), " with padding ", pair_str(opt.padding), "; the output would be empty");
  return {x.size(0), o, ho, wo};
}

void check_conv_operands(const char* op, const Tensor& x, const Tensor& w, const Tensor& b) {
  if (b.defined())
    detail::check_inputs(op, {{"input", x}, {"weight", w}, {"bias", b}});
  else
    detail::check_inputs(op, {{"input", x}, {"weight", w}});
  detail::check_floating(op, {"input", x});
  detail::check_same_dtype(op, {"input", x}, {"weight", w});
  if (b.defined()) detail::check_same_dtype(op, {"input", x}, {"bias", b});
}

}  // namespace

void set_conv_backend(ConvBackend b) { conv_backend_state().store(b); }

ConvBackend conv_backend() { return conv_backend_state().load(); }

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  const char* op = "conv2d";
  check_conv_operands(op, x, w, b);
  const Shape y_shape = conv_shapes(op, x, w, opt);
  const int64_t o = w.size(0);
  NN_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == o), ShapeError, op, ": bias has shape ",
           shape_str(b.defined() ? b.shape() : Shape{}), ", expected [", o, "] for weight ",
           shape_str(w.shape()));
  Tensor y = empty(y_shape, {x.dtype(), x.device()});
  if (y.numel() > 0)
    backend::conv2d(y, x.contiguous(), w.contiguous(), contiguous_or_undefined(b), opt);
  return y;
}

Device Conv2dGrads::device() const {
  for (const Tensor* t : {&dx, &dw, &db})
    if (t->defined()) return t->device();
  return Device::cpu();
}

Conv2dGrads conv2d_backward(const Tensor& grad_y, const Tensor& x, const Tensor& w,
                            const Conv2dOptions& opt, bool need_dx, bool need_dw, bool need_db) {
  const char* op = "conv2d_backward";
  check_conv_operands(op, x, w, Tensor());
  detail::check_inputs(op, {{"input", x}, {"grad_y", grad_y}});
  detail::check_same_dtype(op, {"input", x}, {"grad_y", grad_y});
  const Shape y_shape = conv_shapes(op, x, w, opt);
  NN_CHECK(grad_y.shape() == y_shape, ShapeError, op, ": grad_y has shape ",
           shape_str(grad_y.shape()), ", expected ", shape_str(y_shape), " (input ",
           shape_str(x.shape()), ", weight ", shape_str(w.shape()), ")");
  const TensorOptions opts{x.dtype(), x.device()};
  Conv2dGrads r;
  const Tensor gy = grad_y.contiguous();
  if (need_dx) {
    r.dx = empty(x.shape(), opts);
    if (gy.numel() == 0)
      fill_(r.dx, 0.0);
    else if (r.dx.numel() > 0)
      backend::conv2d_backward_data(r.dx, gy, w.contiguous(), opt);
  }
  if (need_dw || need_db) {
    Tensor dw = empty(w.shape(), opts);
    Tensor db = need_db ? empty({w.size(0)}, opts) : Tensor();
    if (gy.numel() == 0 || x.numel() == 0) {
      fill_(dw, 0.0);
      if (db.defined()) {
        if (gy.numel() == 0)
          fill_(db, 0.0);
        else
          db = sum(gy, {0, 2, 3});
      }
    } else {
      backend::conv2d_backward_weight(dw, db, gy, x.contiguous(), opt);
    }
    if (need_dw) r.dw = std::move(dw);
    r.db = std::move(db);
  }
  return r;
}

// ---- pooling --------------------------------------------------------------------------------

int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation,
                      bool ceil_mode) {
  NN_CHECK(stride >= 1 && dilation >= 1 && padding >= 0 && kernel >= 1, ValueError,
           "pool_out_size: need kernel, stride, dilation >= 1 and padding >= 0, got kernel ",
           kernel, ", stride ", stride, ", padding ", padding, ", dilation ", dilation);
  const int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  if (span < 0) return 0;
  int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  // The last window must start inside the input or the left padding, else it sees only padding.
  if (ceil_mode && (out - 1) * stride >= in + padding) --out;
  return out;
}

namespace {

const char* pool_name(PoolKind kind) { return kind == PoolKind::Max ? "max_pool2d" : "avg_pool2d"; }

// Checks the options and returns them with the stride resolved (0 = the kernel size).
Pool2dOptions resolve_pool_options(const char* op, PoolKind kind, const Pool2dOptions& opt) {
  Pool2dOptions r = opt;
  for (size_t i = 0; i < 2; ++i) {
    NN_CHECK(opt.kernel[i] >= 1, ValueError, op, ": kernel size must be >= 1, got ",
             pair_str(opt.kernel));
    NN_CHECK(opt.stride[i] >= 0, ValueError, op,
             ": stride must be >= 1 (or 0 for the kernel size), got ", pair_str(opt.stride));
    NN_CHECK(opt.dilation[i] >= 1, ValueError, op, ": dilation must be >= 1, got ",
             pair_str(opt.dilation));
    NN_CHECK(opt.padding[i] >= 0 && opt.padding[i] <= opt.kernel[i] / 2, ValueError, op,
             ": padding must be >= 0 and at most half the kernel size, got padding ",
             pair_str(opt.padding), " for kernel ", pair_str(opt.kernel));
    if (r.stride[i] == 0) r.stride[i] = r.kernel[i];
  }
  NN_CHECK(kind == PoolKind::Max || (opt.dilation[0] == 1 && opt.dilation[1] == 1), ValueError, op,
           ": dilation applies to max pooling only, got ", pair_str(opt.dilation));
  return r;
}

Shape pool_out_shape(const char* op, const Shape& x_shape, const Pool2dOptions& r) {
  NN_CHECK(x_shape.size() == 4, ShapeError, op, ": input must be 4-D [N, C, H, W], got shape ",
           shape_str(x_shape));
  const int64_t ho =
      pool_out_size(x_shape[2], r.kernel[0], r.stride[0], r.padding[0], r.dilation[0], r.ceil_mode);
  const int64_t wo =
      pool_out_size(x_shape[3], r.kernel[1], r.stride[1], r.padding[1], r.dilation[1], r.ceil_mode);
  NN_CHECK(ho >= 1 && wo >= 1, ShapeError, op, ": kernel ", pair_str(r.kernel), " (dilation ",
           pair_str(r.dilation), ") is larger than the input ", x_shape[2], "x", x_shape[3],
           " with padding ", pair_str(r.padding), "; the output would be empty");
  return {x_shape[0], x_shape[1], ho, wo};
}

Tensor pool2d(PoolKind kind, const Tensor& x, const Pool2dOptions& opt, Tensor* indices) {
  const char* op = pool_name(kind);
  detail::check_inputs(op, {{"input", x}});
  detail::check_floating(op, {"input", x});
  const Pool2dOptions r = resolve_pool_options(op, kind, opt);
  const Shape y_shape = pool_out_shape(op, x.shape(), r);
  Tensor y = empty(y_shape, {x.dtype(), x.device()});
  Tensor idx = indices ? empty(y_shape, {Dtype::Int64, x.device()}) : Tensor();
  if (y.numel() > 0) backend::pool2d(y, idx, x.contiguous(), kind, r);
  if (indices) *indices = idx;
  return y;
}

void check_x_shape(const char* op, const Shape& x_shape, const Tensor& grad_y) {
  NN_CHECK(x_shape.size() == 4, ShapeError, op, ": x_shape must be 4-D [N, C, H, W], got ",
           shape_str(x_shape));
  detail::check_sizes(op, x_shape);
  NN_CHECK(grad_y.dim() == 4 && grad_y.size(0) == x_shape[0] && grad_y.size(1) == x_shape[1],
           ShapeError, op, ": grad_y has shape ", shape_str(grad_y.shape()),
           ", expected 4-D [N, C, Ho, Wo] with N and C of x_shape ", shape_str(x_shape));
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt, Tensor* indices) {
  return pool2d(PoolKind::Max, x, opt, indices);
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  return pool2d(PoolKind::Avg, x, opt, nullptr);
}

Tensor max_pool2d_backward(const Tensor& grad_y, const Tensor& indices, const Shape& x_shape) {
  const char* op = "max_pool2d_backward";
  detail::check_inputs(op, {{"grad_y", grad_y}, {"indices", indices}});
  detail::check_floating(op, {"grad_y", grad_y});
  NN_CHECK(indices.dtype() == Dtype::Int64, DtypeError, op, ": indices are ",
           dtype_name(indices.dtype()), ", expected int64 (what max_pool2d returns)");
  check_x_shape(op, x_shape, grad_y);
  detail::check_same_shape(op, {"grad_y", grad_y}, {"indices", indices});
  Tensor dx = empty(x_shape, {grad_y.dtype(), grad_y.device()});
  if (dx.numel() == 0) return dx;
  if (grad_y.numel() == 0) return fill_(dx, 0.0);
  Pool2dOptions unused;
  backend::pool2d_backward(dx, grad_y.contiguous(), indices.contiguous(), PoolKind::Max, unused);
  return dx;
}

Tensor avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape, const Pool2dOptions& opt) {
  const char* op = "avg_pool2d_backward";
  detail::check_inputs(op, {{"grad_y", grad_y}});
  detail::check_floating(op, {"grad_y", grad_y});
  check_x_shape(op, x_shape, grad_y);
  const Pool2dOptions r = resolve_pool_options(op, PoolKind::Avg, opt);
  const Shape y_shape = pool_out_shape(op, x_shape, r);
  NN_CHECK(grad_y.shape() == y_shape, ShapeError, op, ": grad_y has shape ",
           shape_str(grad_y.shape()), ", expected ", shape_str(y_shape), " for input ",
           shape_str(x_shape));
  Tensor dx = empty(x_shape, {grad_y.dtype(), grad_y.device()});
  if (dx.numel() == 0) return dx;
  if (grad_y.numel() == 0) return fill_(dx, 0.0);
  backend::pool2d_backward(dx, grad_y.contiguous(), Tensor(), PoolKind::Avg, r);
  return dx;
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> out_size) {
  const char* op = "adaptive_avg_pool2d";
  detail::check_inputs(op, {{"input", x}});
  detail::check_floating(op, {"input", x});
  NN_CHECK(x.dim() == 4, ShapeError, op, ": input must be 4-D [N, C, H, W], got shape ",
           shape_str(x.shape()));
  NN_CHECK(out_size[0] >= 1 && out_size[1] >= 1, ValueError, op,
           ": output size must be >= 1 on both axes, got ", pair_str(out_size));
  NN_CHECK(x.size(2) >= 1 && x.size(3) >= 1, ShapeError, op, ": input ", shape_str(x.shape()),
           " has an empty plane; every output cell needs at least one input value");
  Tensor y = empty({x.size(0), x.size(1), out_size[0], out_size[1]}, {x.dtype(), x.device()});
  if (y.numel() > 0) backend::adaptive_avg_pool2d(y, x.contiguous());
  return y;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_y, const Shape& x_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  detail::check_inputs(op, {{"grad_y", grad_y}});
  detail::check_floating(op, {"grad_y", grad_y});
  check_x_shape(op, x_shape, grad_y);
  NN_CHECK(grad_y.size(2) >= 1 && grad_y.size(3) >= 1, ShapeError, op, ": grad_y ",
           shape_str(grad_y.shape()), " has an empty output plane");
  NN_CHECK(x_shape[2] >= 1 && x_shape[3] >= 1, ShapeError, op, ": x_shape ", shape_str(x_shape),
           " has an empty plane");
  Tensor dx = empty(x_shape, {grad_y.dtype(), grad_y.device()});
  if (dx.numel() > 0) backend::adaptive_avg_pool2d_backward(dx, grad_y.contiguous());
  return dx;
}

// ---- batch norm -----------------------------------------------------------------------------

namespace {

Dtype stat_dtype(Dtype x) { return x == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32; }

// A per-channel operand: [C] and x's dtype.
void check_channel_tensor(const char* op, const char* name, const Tensor& t, const Tensor& x,
                          Dtype dtype) {
  if (!t.defined()) return;
  detail::check_inputs(op, {{"input", x}, {name, t}});
  NN_CHECK(t.dtype() == dtype, DtypeError, op, ": ", name, " is ", dtype_name(t.dtype()),
           ", expected ", dtype_name(dtype));
  NN_CHECK(t.dim() == 1 && t.size(0) == x.size(1), ShapeError, op, ": ", name, " has shape ",
           shape_str(t.shape()), ", expected [", x.size(1), "] (the channels of input ",
           shape_str(x.shape()), ")");
}

void check_batch_norm_input(const char* op, const Tensor& x, const Tensor& gamma,
                            const Tensor& beta, Activation act) {
  detail::check_inputs(op, {{"input", x}});
  detail::check_floating(op, {"input", x});
  NN_CHECK(x.dim() >= 2, ShapeError, op, ": input must be [N, C] or [N, C, *], got shape ",
           shape_str(x.shape()));
  NN_CHECK(act == Activation::None || act == Activation::Relu, ValueError, op,
           ": activation must be none or relu, got ", activation_name(act));
  check_channel_tensor(op, "gamma", gamma, x, x.dtype());
  check_channel_tensor(op, "beta", beta, x, x.dtype());
}

// x viewed as [N, C, inner], contiguous.
Tensor as_ncl(const Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1);
  const int64_t inner = c == 0 || n == 0 ? 1 : x.numel() / (n * c);
  return x.contiguous().view({n, c, inner});
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum, double eps, Activation act,
                  Tensor* save_mean, Tensor* save_invstd) {
  const char* op = "batch_norm";
  if (save_mean) *save_mean = Tensor();
  if (save_invstd) *save_invstd = Tensor();
  check_batch_norm_input(op, x, gamma, beta, act);
  check_channel_tensor(op, "running_mean", running_mean, x, x.dtype());
  check_channel_tensor(op, "running_var", running_var, x, x.dtype());
  NN_CHECK(eps > 0.0 && std::isfinite(eps), ValueError, op, ": eps must be finite and > 0, got ",
           eps);
  NN_CHECK(momentum >= 0.0 && momentum <= 1.0, ValueError, op, ": momentum must be in [0, 1], got ",
           momentum);
  const int64_t c = x.size(1), count = c == 0 ? 0 : x.numel() / c;
  if (training) {
    NN_CHECK(count > 1, ShapeError, op, ": training needs more than one value per channel, got ",
             count, " for input ", shape_str(x.shape()));
  } else {
    NN_CHECK(running_mean.defined() && running_var.defined(), ValueError, op,
             ": evaluation normalises with the running statistics; running_mean and running_var "
             "must be defined");
  }
  const Device dev = x.device();
  Tensor y = empty(x.shape(), {x.dtype(), dev});
  Tensor mean, invstd;
  if (training && (save_mean || save_invstd)) {
    mean = empty({c}, {stat_dtype(x.dtype()), dev});
    invstd = empty({c}, {stat_dtype(x.dtype()), dev});
  }
  if (x.numel() > 0) {
    // The row updates the running statistics in place; a non-contiguous one goes through a
    // contiguous copy that is written back.
    Tensor rm = contiguous_or_undefined(running_mean), rv = contiguous_or_undefined(running_var);
    Tensor y3 = as_ncl(y);
    backend::batch_norm(y3, mean, invstd, rm, rv, as_ncl(x), contiguous_or_undefined(gamma),
                        contiguous_or_undefined(beta), training, momentum, eps, act);
    if (training) {
      if (rm.defined() && !detail::same_view(rm, running_mean)) running_mean.copy_(rm);
      if (rv.defined() && !detail::same_view(rv, running_var)) running_var.copy_(rv);
    }
  }
  if (save_mean) *save_mean = mean;
  if (save_invstd) *save_invstd = invstd;
  return y;
}

Device BatchNormGrads::device() const {
  for (const Tensor* t : {&dx, &dgamma, &dbeta})
    if (t->defined()) return t->device();
  return Device::cpu();
}

BatchNormGrads batch_norm_backward(const Tensor& grad_y, const Tensor& x, const Tensor& gamma,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   const Tensor& y, bool training, Activation act, bool need_dx,
                                   bool need_dgamma, bool need_dbeta) {
  const char* op = "batch_norm_backward";
  check_batch_norm_input(op, x, gamma, Tensor(), act);
  detail::check_inputs(
      op,
      {{"input", x}, {"grad_y", grad_y}, {"save_mean", save_mean}, {"save_invstd", save_invstd}});
  detail::check_same_dtype(op, {"input", x}, {"grad_y", grad_y});
  detail::check_same_shape(op, {"input", x}, {"grad_y", grad_y});
  const Dtype sd = stat_dtype(x.dtype());
  check_channel_tensor(op, "save_mean", save_mean, x, sd);
  check_channel_tensor(op, "save_invstd", save_invstd, x, sd);
  if (act == Activation::Relu) {
    NN_CHECK(y.defined(), ValueError, op,
             ": the fused relu needs the forward's output y (its mask), got an undefined tensor");
    detail::check_inputs(op, {{"input", x}, {"y", y}});
    detail::check_same_dtype(op, {"input", x}, {"y", y});
    detail::check_same_shape(op, {"input", x}, {"y", y});
  }
  const int64_t c = x.size(1), count = c == 0 ? 0 : x.numel() / c;
  NN_CHECK(!training || count > 1, ShapeError, op,
           ": training needs more than one value per channel, got ", count, " for input ",
           shape_str(x.shape()));
  BatchNormGrads r;
  const TensorOptions opts{x.dtype(), x.device()};
  if (need_dx) r.dx = empty(x.shape(), opts);
  if (need_dgamma) r.dgamma = empty({c}, opts);
  if (need_dbeta) r.dbeta = empty({c}, opts);
  if (!need_dx && !need_dgamma && !need_dbeta) return r;
  if (x.numel() == 0) {
    if (r.dgamma.defined()) fill_(r.dgamma, 0.0);
    if (r.dbeta.defined()) fill_(r.dbeta, 0.0);
    return r;
  }
  const Shape s3 = as_ncl(x).shape();
  BatchNormGrads g3;
  if (r.dx.defined()) g3.dx = r.dx.view(s3);
  g3.dgamma = r.dgamma;
  g3.dbeta = r.dbeta;
  const Tensor y3 = act == Activation::Relu ? as_ncl(y) : Tensor();
  backend::batch_norm_backward(g3, as_ncl(grad_y), as_ncl(x), contiguous_or_undefined(gamma),
                               save_mean.contiguous(), save_invstd.contiguous(), y3, training, act);
  return r;
}

}  // namespace nn
