// Differentiable shape ops and views (graph/functions.h). Forward is the Tensor view (no copy);
// backward maps the gradient back onto the input's shape: reshape back, the inverse permutation,
// sum_to for expand, and for a slice-like view zeros of the input's shape with the gradient
// copied into the same view. Joins hand each input a view of the gradient.
#include <algorithm>
#include <numeric>
#include <utility>
#include <vector>

#include "graph/functions.h"

namespace nn {

namespace {

using Grads = std::vector<Tensor>;

// The gradient of a Variable that is `x` reshaped in any way: the same values, x's shape.
Variable reshaped(Tensor out, const Variable& x, const char* op) {
  return make_variable(
      std::move(out), {x},
      [shape = x.data().shape()](const Tensor& g, const std::vector<bool>&) {
        return Grads{g.reshape(shape)};
      },
      op);
}

// The gradient of a view that picks a subset of x's elements: zeros with the gradient written
// into the same view of them. `pick` builds that view from a tensor of x's shape.
template <class Pick>
Variable picked(const Variable& x, Pick pick, const char* op) {
  const Tensor& xd = x.data();
  return make_variable(
      pick(xd), {x},
      [shape = xd.shape(), dtype = xd.dtype(), device = xd.device(), pick](
          const Tensor& g, const std::vector<bool>&) {
        Tensor gx = zeros(shape, {dtype, device});
        Tensor view = pick(gx);
        if (view.numel() > 0) view.copy_(g);
        return Grads{gx};
      },
      op);
}

std::vector<Tensor> datas(const std::vector<Variable>& xs) {
  std::vector<Tensor> out;
  out.reserve(xs.size());
  for (const Variable& x : xs) out.push_back(x.data());
  return out;
}

}  // namespace

Variable reshape(const Variable& x, const Shape& shape) {
  return reshaped(x.data().reshape(shape), x, "reshape");
}

Variable view(const Variable& x, const Shape& shape) {
  return reshaped(x.data().view(shape), x, "view");
}

Variable flatten(const Variable& x, int64_t start_dim, int64_t end_dim) {
  const Tensor& xd = x.data();
  if (xd.dim() == 0) return reshaped(xd.reshape({1}), x, "flatten");
  const int64_t s = wrap_dim(start_dim, xd.dim(), "flatten");
  const int64_t e = wrap_dim(end_dim, xd.dim(), "flatten");
  NN_CHECK(s <= e, ValueError, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim,
           " for a tensor of shape ", shape_str(xd.shape()));
  Shape shape(xd.shape().begin(), xd.shape().begin() + s);
  int64_t joined = 1;
  for (int64_t d = s; d <= e; ++d) joined *= xd.size(d);
  shape.push_back(joined);
  shape.insert(shape.end(), xd.shape().begin() + e + 1, xd.shape().end());
  return reshaped(xd.reshape(shape), x, "flatten");
}

Variable transpose(const Variable& x, int64_t d0, int64_t d1) {
  return make_variable(
      x.data().transpose(d0, d1), {x},
      [d0, d1](const Tensor& g, const std::vector<bool>&) { return Grads{g.transpose(d0, d1)}; },
      "transpose");
}

Variable permute(const Variable& x, const std::vector<int64_t>& dims) {
  const Tensor& xd = x.data();
  Tensor out = xd.permute(dims);  // validates dims
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    inverse[size_t(wrap_dim(dims[i], xd.dim(), "permute"))] = int64_t(i);
  return make_variable(
      std::move(out), {x},
      [inverse](const Tensor& g, const std::vector<bool>&) { return Grads{g.permute(inverse)}; },
      "permute");
}

Variable slice(const Variable& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  return picked(
      x, [=](const Tensor& t) { return t.slice(dim, start, end, step); }, "slice");
}

Variable narrow(const Variable& x, int64_t dim, int64_t start, int64_t length) {
  return picked(
      x, [=](const Tensor& t) { return t.narrow(dim, start, length); }, "narrow");
}

Variable select(const Variable& x, int64_t dim, int64_t index) {
  return picked(
      x, [=](const Tensor& t) { return t.select(dim, index); }, "select");
}

Variable squeeze(const Variable& x, int64_t dim) {
  return reshaped(x.data().squeeze(dim), x, "squeeze");
}

Variable unsqueeze(const Variable& x, int64_t dim) {
  return reshaped(x.data().unsqueeze(dim), x, "unsqueeze");
}

Variable expand(const Variable& x, const Shape& shape) {
  const Tensor& xd = x.data();
  return make_variable(
      xd.expand(shape), {x},
      [in = xd.shape()](const Tensor& g, const std::vector<bool>&) { return Grads{sum_to(g, in)}; },
      "expand");
}

Variable contiguous(const Variable& x) {
  const Tensor& xd = x.data();
  if (xd.is_contiguous()) return x;
  return make_variable(
      xd.contiguous(), {x}, [](const Tensor& g, const std::vector<bool>&) { return Grads{g}; },
      "contiguous");
}

Variable to(const Variable& x, Dtype dtype) {
  const Tensor& xd = x.data();
  if (dtype == xd.dtype()) return x;
  Tensor out = xd.to(dtype);
  // An integer or bool result has no gradient (as in PyTorch).
  if (!is_floating(dtype)) return Variable(std::move(out), false);
  return make_variable(
      std::move(out), {x},
      [in = xd.dtype()](const Tensor& g, const std::vector<bool>&) { return Grads{g.to(in)}; },
      "to");
}

Variable to(const Variable& x, Device device) {
  const Tensor& xd = x.data();
  if (device == xd.device()) return x;
  return make_variable(
      xd.to(device), {x},
      [in = xd.device()](const Tensor& g, const std::vector<bool>&) { return Grads{g.to(in)}; },
      "to");
}

// ---- joins and splits -------------------------------------------------------------------------

Variable cat(const std::vector<Variable>& xs, int64_t dim) {
  Tensor out = cat(datas(xs), dim);  // validates
  const int64_t d = wrap_dim(dim, out.dim(), "cat");
  std::vector<int64_t> sizes;
  for (const Variable& x : xs) sizes.push_back(x.data().size(d));
  return make_variable(
      std::move(out), xs,
      [d, sizes](const Tensor& g, const std::vector<bool>& needs) {
        Grads grads(sizes.size());
        int64_t offset = 0;
        for (size_t i = 0; i < sizes.size(); ++i) {
          if (needs[i]) grads[i] = g.narrow(d, offset, sizes[i]);
          offset += sizes[i];
        }
        return grads;
      },
      "cat");
}

Variable stack(const std::vector<Variable>& xs, int64_t dim) {
  Tensor out = stack(datas(xs), dim);  // validates
  const int64_t d = wrap_dim(dim, out.dim(), "stack");
  return make_variable(
      std::move(out), xs,
      [d](const Tensor& g, const std::vector<bool>& needs) {
        Grads grads(needs.size());
        for (size_t i = 0; i < needs.size(); ++i)
          if (needs[i]) grads[i] = g.select(d, int64_t(i));
        return grads;
      },
      "stack");
}

std::vector<Variable> chunk(const Variable& x, int64_t chunks, int64_t dim) {
  const Tensor& xd = x.data();
  NN_CHECK(chunks > 0, ValueError, "chunk: chunks must be positive, got ", chunks);
  NN_CHECK(xd.dim() > 0, IndexError, "chunk: cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, xd.dim(), "chunk");
  const int64_t n = xd.size(d);
  const int64_t each = (n + chunks - 1) / chunks;
  if (each == 0) return {narrow(x, d, 0, 0)};
  std::vector<Variable> parts;
  for (int64_t start = 0; start < n; start += each)
    parts.push_back(narrow(x, d, start, std::min(each, n - start)));
  return parts;
}

std::vector<Variable> split(const Variable& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const Tensor& xd = x.data();
  NN_CHECK(xd.dim() > 0, IndexError, "split: cannot split a 0-d tensor");
  const int64_t d = wrap_dim(dim, xd.dim(), "split");
  for (int64_t s : sizes)
    NN_CHECK(s >= 0, ValueError, "split: sizes must be >= 0, got ", shape_str(sizes));
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t(0));
  NN_CHECK(total == xd.size(d), ShapeError, "split: sizes ", shape_str(sizes), " sum to ", total,
           ", but dimension ", d, " of the tensor of shape ", shape_str(xd.shape()), " has size ",
           xd.size(d));
  std::vector<Variable> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(narrow(x, d, start, s));
    start += s;
  }
  return parts;
}

}  // namespace nn
