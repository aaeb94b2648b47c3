// Argument checks shared by the op table's front end; see kernels/op_checks.h.
#include "kernels/op_checks.h"

#include <algorithm>
#include <sstream>

namespace nn::detail {

void check_inputs(const char* op, std::initializer_list<Arg> args) {
  for (const Arg& a : args)
    NN_CHECK(a.t.defined(), ValueError, op, ": ", a.name, " is an undefined tensor");
  const Arg& first = *args.begin();
  for (const Arg& a : args)
    NN_CHECK(a.t.device() == first.t.device(), DeviceError, op, ": ", first.name, " is on ",
             first.t.device().str(), ", ", a.name, " on ", a.t.device().str(),
             "; all operands must be on one device");
}

void check_floating(const char* op, const Arg& a) {
  NN_CHECK(is_floating(a.t.dtype()), DtypeError, op, ": ", a.name, " is ", dtype_name(a.t.dtype()),
           ", expected a floating dtype (float32, float64, bfloat16 or float16); convert with "
           ".to(float32) first");
}

void check_floating_or_int64(const char* op, const Arg& a) {
  NN_CHECK(is_floating(a.t.dtype()) || a.t.dtype() == Dtype::Int64, DtypeError, op, ": ", a.name,
           " is ", dtype_name(a.t.dtype()),
           ", expected a floating dtype (float32, float64, bfloat16 or float16) or int64");
}

void check_same_dtype(const char* op, const Arg& a, const Arg& b) {
  // No implicit promotion (unlike PyTorch): the caller converts one operand explicitly.
  NN_CHECK(a.t.dtype() == b.t.dtype(), DtypeError, op, ": ", a.name, " is ",
           dtype_name(a.t.dtype()), ", ", b.name, " is ", dtype_name(b.t.dtype()),
           "; expected one dtype (convert one operand with .to())");
}

void check_same_shape(const char* op, const Arg& a, const Arg& b) {
  NN_CHECK(a.t.shape() == b.t.shape(), ShapeError, op, ": ", a.name, " has shape ",
           shape_str(a.t.shape()), ", ", b.name, " has shape ", shape_str(b.t.shape()),
           "; expected equal shapes");
}

void check_sizes(const char* op, const Shape& shape) {
  for (int64_t s : shape)
    NN_CHECK(s >= 0, ValueError, op, ": sizes must be >= 0, got shape ", shape_str(shape));
}

void check_writable(const char* op, const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    NN_CHECK(
        t.stride(d) != 0 || t.size(d) <= 1, ValueError, op, ": the target of shape ",
        shape_str(t.shape()), " has strides ", shape_str(t.strides()),
        ", so several elements share one memory location (an expanded tensor); clone it first");
}

Shape broadcast_shapes(const char* op, std::initializer_list<Shape> shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  bool ok = true;
  for (const Shape& s : shapes) {
    size_t lead = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[lead + i];
      if (s[i] == o || s[i] == 1) continue;
      if (o == 1)
        o = s[i];
      else
        ok = false;
    }
  }
  if (!ok) {
    std::ostringstream names;
    size_t i = 0;
    for (const Shape& s : shapes) {
      if (i > 0) names << (i + 1 == shapes.size() ? " and " : ", ");
      names << shape_str(s);
      ++i;
    }
    NN_THROW(ShapeError, op, ": shapes ", names.str(), " cannot broadcast");
  }
  return out;
}

bool same_view(const Tensor& a, const Tensor& b) {
  return a.storage() == b.storage() && a.offset() == b.offset() && a.dtype() == b.dtype() &&
         a.shape() == b.shape() && a.strides() == b.strides();
}

bool overlaps_partially(const Tensor& dst, const Tensor& src) {
  // Same storage is a conservative test for overlap: a disjoint slice is copied needlessly,
  // which costs time but is never wrong.
  return dst.storage() == src.storage() && !same_view(dst, src);
}

}  // namespace nn::detail
