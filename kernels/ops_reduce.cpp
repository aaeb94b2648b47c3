// Front end of the reduction and softmax rows. Axes are normalised here (negative axes wrapped,
// duplicates rejected, empty = all); the backend always writes a contiguous keepdim-shaped
// output, which is then viewed without the reduced axes unless keepdim. A 0-d input is reduced
// as a one-element vector. Backends never see an empty reduced extent: the front end fills the
// identity (0 for sum, NaN for mean and var) or rejects it (max, min, arg-reductions).
// Dtypes as in PyTorch: sum takes every dtype, and sums int64 and bool into int64; the extreme
// and index reductions take floating dtypes and int64; mean and var floating dtypes only.
#include <limits>

#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

namespace {

// The input as the backend sees it (0-d becomes [1]) and the axes to reduce, sorted and unique.
struct ReducePlan {
  Tensor x;
  std::vector<int64_t> dims;
  Shape keep_shape;   // x's shape with reduced axes set to 1
  Shape final_shape;  // what the caller gets back
  int64_t count = 1;  // elements per reduced group
};

ReducePlan plan_reduce(const char* op, const Tensor& x, const std::vector<int64_t>& dims,
                       bool keepdim) {
  ReducePlan p;
  p.x = x.dim() == 0 ? x.reshape({1}) : x;
  int64_t rank = p.x.dim();
  std::vector<bool> reduced(size_t(rank), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    NN_CHECK(!reduced[size_t(w)], ValueError, op, ": dimension ", w, " appears more than once in ",
             shape_str(dims));
    reduced[size_t(w)] = true;
  }
  for (int64_t d = 0; d < rank; ++d) {
    int64_t size = p.x.size(d);
    if (reduced[size_t(d)]) {
      p.dims.push_back(d);
      p.count *= size;
      p.keep_shape.push_back(1);
      if (keepdim) p.final_shape.push_back(1);
    } else {
      p.keep_shape.push_back(size);
      p.final_shape.push_back(size);
    }
  }
  if (x.dim() == 0) p.final_shape = {};
  return p;
}

void check_nonempty_extent(const char* op, const Tensor& x, const ReducePlan& p) {
  NN_CHECK(p.count > 0, ValueError, op,
           ": cannot reduce over an empty extent of the tensor of shape ", shape_str(x.shape()),
           " (reduced dimensions ", shape_str(p.dims), "); the result would have no identity");
}

// The dtypes `rop` is defined on (DtypeError otherwise) and the dtype of its result.
Dtype reduce_out_dtype(const char* op, ReduceOp rop, const Tensor& x) {
  switch (rop) {
    case ReduceOp::Sum:
      return is_floating(x.dtype()) ? x.dtype() : Dtype::Int64;
    case ReduceOp::Max:
    case ReduceOp::Min:
      detail::check_floating_or_int64(op, {"x", x});
      return x.dtype();
    case ReduceOp::Mean:
    case ReduceOp::Var:
      break;
  }
  detail::check_floating(op, {"x", x});
  return x.dtype();
}

Tensor reduce_impl(const char* op, ReduceOp rop, const Tensor& x, const std::vector<int64_t>& dims,
                   bool keepdim, int64_t correction = 0) {
  detail::check_inputs(op, {{"x", x}});
  const Dtype out_dtype = reduce_out_dtype(op, rop, x);
  ReducePlan p = plan_reduce(op, x, dims, keepdim);
  if (rop == ReduceOp::Max || rop == ReduceOp::Min) check_nonempty_extent(op, x, p);
  Tensor out = empty(p.keep_shape, {out_dtype, x.device()});
  if (out.numel() > 0) {
    if (p.count > 0)
      backend::reduce(out, rop, p.x, p.dims, correction);
    else
      backend::fill(out, rop == ReduceOp::Sum ? 0.0 : std::numeric_limits<double>::quiet_NaN());
  }
  return out.view(p.final_shape);
}

std::pair<Tensor, Tensor> reduce_index_impl(const char* op, ReduceOp rop, const Tensor& x,
                                            int64_t dim, bool keepdim) {
  detail::check_inputs(op, {{"x", x}});
  detail::check_floating_or_int64(op, {"x", x});
  ReducePlan p = plan_reduce(op, x, {dim}, keepdim);
  check_nonempty_extent(op, x, p);
  Tensor values = empty(p.keep_shape, {x.dtype(), x.device()});
  Tensor indices = empty(p.keep_shape, {Dtype::Int64, x.device()});
  if (values.numel() > 0) backend::reduce_index(values, indices, rop, p.x, p.dims[0]);
  return {values.view(p.final_shape), indices.view(p.final_shape)};
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_impl("sum", ReduceOp::Sum, x, dims, keepdim);
}
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_impl("mean", ReduceOp::Mean, x, dims, keepdim);
}
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_impl("amax", ReduceOp::Max, x, dims, keepdim);
}
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_impl("amin", ReduceOp::Min, x, dims, keepdim);
}
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, int64_t correction, bool keepdim) {
  NN_CHECK(correction >= 0, ValueError, "var: correction must be >= 0, got ", correction);
  return reduce_impl("var", ReduceOp::Var, x, dims, keepdim, correction);
}

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce_index_impl("max", ReduceOp::Max, x, dim, keepdim);
}
std::pair<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce_index_impl("min", ReduceOp::Min, x, dim, keepdim);
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce_index_impl("argmax", ReduceOp::Max, x, dim, keepdim).second;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  return reduce_index_impl("argmin", ReduceOp::Min, x, dim, keepdim).second;
}
Tensor argmax(const Tensor& x) {
  detail::check_inputs("argmax", {{"x", x}});
  return reduce_index_impl("argmax", ReduceOp::Max, x.reshape({-1}), 0, false).second;
}
Tensor max(const Tensor& x) { return reduce_impl("max", ReduceOp::Max, x, {}, false); }
Tensor min(const Tensor& x) { return reduce_impl("min", ReduceOp::Min, x, {}, false); }

// ---- softmax --------------------------------------------------------------------------------

namespace {

// The contiguous form the softmax rows need; a 0-d tensor becomes [1].
Tensor softmax_operand(const Tensor& x) { return (x.dim() == 0 ? x.reshape({1}) : x).contiguous(); }

Tensor softmax_impl(const char* op, const Tensor& x, int64_t dim, bool log) {
  detail::check_inputs(op, {{"x", x}});
  detail::check_floating(op, {"x", x});
  int64_t d = wrap_dim(dim, x.dim(), op);
  Tensor src = softmax_operand(x);
  Tensor out = empty(src.shape(), {x.dtype(), x.device()});
  if (out.numel() > 0) backend::softmax(out, src, d, log);
  return out.view(x.shape());
}

Tensor softmax_backward_impl(const char* op, const Tensor& grad_y, const Tensor& y, int64_t dim,
                             bool log) {
  detail::check_inputs(op, {{"grad_y", grad_y}, {"y", y}});
  detail::check_floating(op, {"y", y});
  detail::check_same_dtype(op, {"grad_y", grad_y}, {"y", y});
  detail::check_same_shape(op, {"grad_y", grad_y}, {"y", y});
  int64_t d = wrap_dim(dim, y.dim(), op);
  Tensor g = softmax_operand(grad_y), yc = softmax_operand(y);
  Tensor out = empty(yc.shape(), {y.dtype(), y.device()});
  if (out.numel() > 0) backend::softmax_backward(out, g, yc, d, log);
  return out.view(y.shape());
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl("log_softmax", x, dim, true);
}
Tensor softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim) {
  return softmax_backward_impl("softmax_backward", grad_y, y, dim, false);
}
Tensor log_softmax_backward(const Tensor& grad_y, const Tensor& y, int64_t dim) {
  return softmax_backward_impl("log_softmax_backward", grad_y, y, dim, true);
}

}  // namespace nn
