// cat and stack (kernels/shape_ops.h): one allocation, then one copy per input into its slice
// of the output. The copies are the ordinary copy row, so the work stays on the inputs' device.
#include "kernels/shape_ops.h"

#include "kernels/op_checks.h"
#include "kernels/ops.h"

namespace nn {

namespace {

// The operands of a join: defined, one device, one dtype, one rank.
void check_join_operands(const char* op, const std::vector<Tensor>& xs) {
  NN_CHECK(!xs.empty(), ValueError, op, ": expects a non-empty list of tensors");
  const Tensor& first = xs.front();
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    NN_CHECK(t.defined(), ValueError, op, ": tensor ", i, " is undefined");
    NN_CHECK(t.device() == first.device(), DeviceError, op, ": tensor 0 is on ",
             first.device().str(), ", tensor ", i, " on ", t.device().str(),
             "; all tensors must be on one device");
    NN_CHECK(t.dtype() == first.dtype(), DtypeError, op, ": tensor 0 is ",
             dtype_name(first.dtype()), ", tensor ", i, " is ", dtype_name(t.dtype()),
             "; expected one dtype");
    NN_CHECK(t.dim() == first.dim(), ShapeError, op, ": tensor 0 has shape ",
             shape_str(first.shape()), ", tensor ", i, " has shape ", shape_str(t.shape()),
             "; expected tensors of one rank");
  }
}

}  // namespace

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  check_join_operands("cat", xs);
  const Tensor& first = xs.front();
  NN_CHECK(first.dim() > 0, ShapeError, "cat: cannot concatenate 0-d tensors; use stack");
  const int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[size_t(d)] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    for (int64_t k = 0; k < first.dim(); ++k) {
      if (k == d) continue;
      NN_CHECK(xs[i].size(k) == first.size(k), ShapeError, "cat: tensor 0 has shape ",
               shape_str(first.shape()), ", tensor ", i, " has shape ", shape_str(xs[i].shape()),
               "; sizes must match except along dimension ", d);
    }
    shape[size_t(d)] += xs[i].size(d);
  }
  Tensor out = empty(shape, {first.dtype(), first.device()});
  int64_t offset = 0;
  for (const Tensor& x : xs) {
    const int64_t n = x.size(d);
    if (n > 0) out.narrow(d, offset, n).copy_(x);
    offset += n;
  }
  return out;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  check_join_operands("stack", xs);
  const Tensor& first = xs.front();
  const int64_t d = wrap_dim(dim, first.dim() + 1, "stack");
  for (size_t i = 0; i < xs.size(); ++i)
    NN_CHECK(xs[i].shape() == first.shape(), ShapeError, "stack: tensor 0 has shape ",
             shape_str(first.shape()), ", tensor ", i, " has shape ", shape_str(xs[i].shape()),
             "; expected equal shapes");
  Shape shape = first.shape();
  shape.insert(shape.begin() + d, int64_t(xs.size()));
  Tensor out = empty(shape, {first.dtype(), first.device()});
  for (size_t i = 0; i < xs.size(); ++i) {
    Tensor slot = out.select(d, int64_t(i));
    if (slot.numel() > 0) slot.copy_(xs[i]);
  }
  return out;
}

}  // namespace nn
