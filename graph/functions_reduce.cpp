// Differentiable reductions and softmax (graph/functions.h).
//
// A reduction's gradient is the output gradient viewed with the reduced axes kept as size 1 and
// broadcast back over the input (an expanded view: no copy until something writes it). The
// extreme-value reductions route it through a mask built on the device from comparisons, so no
// backward here reads a value on the host.
#include <utility>
#include <vector>

#include "graph/functions.h"

namespace nn {

namespace {

using Grads = std::vector<Tensor>;

// `shape` with every reduced axis set to 1 (all of them when dims is empty). The forward op has
// already validated `dims` against the rank.
Shape keep_shape(const Shape& shape, const std::vector<int64_t>& dims, const char* op) {
  Shape keep = shape;
  if (shape.empty()) return keep;  // a 0-d input reduces to 0-d whatever the axis
  if (dims.empty()) {
    for (int64_t& s : keep) s = 1;
    return keep;
  }
  const int64_t rank = int64_t(shape.size());
  for (int64_t d : dims) keep[size_t(wrap_dim(d, rank, op))] = 1;
  return keep;
}

// How many input elements each output element of the reduction summarises.
int64_t reduced_count(const Shape& shape, const Shape& keep) {
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i)
    if (keep[i] != shape[i]) n *= shape[i];
  return shape.empty() ? 1 : n;
}

// Every axis reduced by the op, as explicit indices (for a keepdim sum over the same axes).
std::vector<int64_t> all_reduced(const Shape& shape, const Shape& keep) {
  std::vector<int64_t> dims;
  for (size_t i = 0; i < shape.size(); ++i)
    if (keep[i] == 1) dims.push_back(int64_t(i));
  return dims;
}

// The output gradient reshaped to the keepdim shape (a no-op view when keepdim was given).
Tensor to_keep(const Tensor& g, const Shape& keep) { return g.reshape(keep); }

// amax / amin: the gradient is shared evenly by every element equal to the extreme.
Variable extreme(const char* op, const Variable& x, const std::vector<int64_t>& dims, bool keepdim,
                 bool is_max) {
  const Tensor& xd = x.data();
  Tensor out = is_max ? amax(xd, dims, keepdim) : amin(xd, dims, keepdim);
  Shape keep = keep_shape(xd.shape(), dims, op);
  return make_variable(
      out, {x},
      [xd, out, keep](const Tensor& g, const std::vector<bool>&) {
        Tensor hit = eq(xd, out.reshape(keep)).to(xd.dtype());
        Tensor share = div(to_keep(g, keep), sum(hit, all_reduced(xd.shape(), keep), true));
        return Grads{mul(hit, share)};
      },
      op);
}

// max / min along one axis: the gradient goes to the returned index only (a one-hot built by
// comparing the index with a position ramp along the axis).
std::pair<Variable, Tensor> extreme_index(const char* op, const Variable& x, int64_t dim,
                                          bool keepdim, bool is_max) {
  const Tensor& xd = x.data();
  auto [values, indices] = is_max ? max(xd, dim, keepdim) : min(xd, dim, keepdim);
  if (xd.dim() == 0) {  // the one element is its own extreme
    Variable v = make_variable(
        values, {x}, [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; }, op);
    return {v, indices};
  }
  const int64_t d = wrap_dim(dim, xd.dim(), op);
  Variable v = make_variable(
      values, {x},
      [xd, indices, d, keepdim](const Tensor& g, const std::vector<bool>&) {
        // Positions compare exactly in float32 up to 2^24, in float64 beyond any real size.
        const Dtype pos_dtype = xd.dtype() == Dtype::Float64 ? Dtype::Float64 : Dtype::Float32;
        const int64_t n = xd.size(d);
        Shape ramp_shape(size_t(xd.dim()), 1);
        ramp_shape[size_t(d)] = n;
        Tensor ramp = arange(0.0, double(n), 1.0, {pos_dtype, xd.device()}).reshape(ramp_shape);
        Tensor idx = (keepdim ? indices : indices.unsqueeze(d)).to(pos_dtype);
        Tensor gk = keepdim ? g : g.unsqueeze(d);
        return Grads{where(eq(ramp, idx), gk, full({}, 0.0, {g.dtype(), g.device()}))};
      },
      op);
  return {v, indices};
}

}  // namespace

Variable sum(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  const Tensor& xd = x.data();
  Tensor out = sum(xd, dims, keepdim);
  return make_variable(
      std::move(out), {x},
      [shape = xd.shape(), keep = keep_shape(xd.shape(), dims, "sum")](const Tensor& g,
                                                                       const std::vector<bool>&) {
        return Grads{to_keep(g, keep).expand(shape)};
      },
      "sum");
}

Variable mean(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  const Tensor& xd = x.data();
  Tensor out = mean(xd, dims, keepdim);
  Shape keep = keep_shape(xd.shape(), dims, "mean");
  const double count = double(reduced_count(xd.shape(), keep));
  return make_variable(
      std::move(out), {x},
      [shape = xd.shape(), keep, count](const Tensor& g, const std::vector<bool>&) {
        return Grads{to_keep(g / count, keep).expand(shape)};
      },
      "mean");
}

Variable amax(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme("amax", x, dims, keepdim, true);
}
Variable amin(const Variable& x, const std::vector<int64_t>& dims, bool keepdim) {
  return extreme("amin", x, dims, keepdim, false);
}

Variable var(const Variable& x, const std::vector<int64_t>& dims, int64_t correction,
             bool keepdim) {
  const Tensor& xd = x.data();
  Tensor out = var(xd, dims, correction, keepdim);
  Shape keep = keep_shape(xd.shape(), dims, "var");
  // d var / dx_i = 2 (x_i - mean) / (N - correction)
  const double scale = 2.0 / double(reduced_count(xd.shape(), keep) - correction);
  return make_variable(
      std::move(out), {x},
      [xd, keep, scale](const Tensor& g, const std::vector<bool>&) {
        std::vector<int64_t> axes = all_reduced(xd.shape(), keep);
        Tensor centred = sub(xd, mean(xd, axes, true));
        return Grads{mul(centred, mul(to_keep(g, keep), scale))};
      },
      "var");
}

std::pair<Variable, Tensor> max(const Variable& x, int64_t dim, bool keepdim) {
  return extreme_index("max", x, dim, keepdim, true);
}
std::pair<Variable, Tensor> min(const Variable& x, int64_t dim, bool keepdim) {
  return extreme_index("min", x, dim, keepdim, false);
}

// ---- softmax ----------------------------------------------------------------------------------

Variable softmax(const Variable& x, int64_t dim) {
  Tensor y = softmax(x.data(), dim);
  return make_variable(
      y, {x},
      [y, dim](const Tensor& g, const std::vector<bool>&) {
        return Grads{softmax_backward(g, y, dim)};
      },
      "softmax");
}

Variable log_softmax(const Variable& x, int64_t dim) {
  Tensor y = log_softmax(x.data(), dim);
  return make_variable(
      y, {x},
      [y, dim](const Tensor& g, const std::vector<bool>&) {
        return Grads{log_softmax_backward(g, y, dim)};
      },
      "log_softmax");
}

}  // namespace nn
