// The Tensor methods that run kernels (core/tensor.h declares them, kernels/ owns every launch):
// contiguous, clone, to, copy_, and host access (to_vector, item).
//
// copy_ across devices converts the dtype on the source's device (where the data is), moves
// contiguous bytes with nn::copy_bytes, and broadcasts or restrides on the destination's device.
#include "core/storage.h"
#include "kernels/backend.h"
#include "kernels/op_checks.h"

namespace nn {

Tensor Tensor::contiguous() const {
  detail::check_inputs("contiguous", {{"tensor", *this}});
  return is_contiguous() ? *this : clone();
}

Tensor Tensor::clone() const {
  detail::check_inputs("clone", {{"tensor", *this}});
  Tensor out = empty(shape_, {dtype_, device()});
  if (out.numel() > 0) backend::copy(out, *this);
  return out;
}

Tensor Tensor::to(Device device, bool non_blocking) const {
  detail::check_inputs("to", {{"tensor", *this}});
  return to(device, dtype_, non_blocking);
}

Tensor Tensor::to(Dtype dtype) const {
  detail::check_inputs("to", {{"tensor", *this}});
  return to(device(), dtype);
}

Tensor Tensor::to(Device device, Dtype dtype, bool non_blocking) const {
  detail::check_inputs("to", {{"tensor", *this}});
  if (device == this->device() && dtype == dtype_) return *this;
  Tensor out = empty(shape_, {dtype, device});
  return out.copy_(*this, non_blocking);
}

Tensor& Tensor::copy_(const Tensor& src, bool non_blocking) {
  NN_CHECK(defined(), ValueError, "copy_: the destination is an undefined tensor");
  NN_CHECK(src.defined(), ValueError, "copy_: src is an undefined tensor");
  Shape shape = detail::broadcast_shapes("copy_", {shape_, src.shape()});
  NN_CHECK(shape == shape_, ShapeError, "copy_: src of shape ", shape_str(src.shape()),
           " cannot broadcast to the destination's shape ", shape_str(shape_));
  detail::check_writable("copy_", *this);
  if (numel() == 0) return *this;

  if (src.device() == device()) {
    if (detail::same_view(*this, src)) return *this;
    Tensor s = detail::overlaps_partially(*this, src) ? src.clone() : src;
    backend::copy(*this, s.expand(shape_));
    return *this;
  }

  // Across devices: only dense bytes of the destination dtype travel.
  Tensor s = src.to(dtype_).contiguous();
  if (is_contiguous() && s.numel() == numel()) {
    copy_bytes(data_ptr(), device(), s.data_ptr(), s.device(), nbytes(), non_blocking);
    return *this;
  }
  // A strided or broadcast destination: land the bytes in a temporary, then restride there.
  Tensor tmp = empty(s.shape(), {dtype_, device()});
  copy_bytes(tmp.data_ptr(), tmp.device(), s.data_ptr(), s.device(), tmp.nbytes(), non_blocking);
  backend::copy(*this, tmp.expand(shape_));
  return *this;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  detail::check_inputs("to_vector", {{"tensor", *this}});
  Tensor host = to(Device::cpu(), dtype_of<T>).contiguous();
  const T* p = static_cast<const T*>(host.data_ptr());
  return std::vector<T>(p, p + host.numel());
}

double Tensor::item() const {
  detail::check_inputs("item", {{"tensor", *this}});
  NN_CHECK(numel() == 1, ValueError, "item: the tensor of shape ", shape_str(shape_), " has ",
           numel(), " elements, expected exactly one");
  return to_vector<double>()[0];
}

#define NN_INSTANTIATE_TO_VECTOR(T) template std::vector<T> Tensor::to_vector<T>() const;
NN_INSTANTIATE_TO_VECTOR(float)
NN_INSTANTIATE_TO_VECTOR(double)
NN_INSTANTIATE_TO_VECTOR(int64_t)
NN_INSTANTIATE_TO_VECTOR(bool)
NN_INSTANTIATE_TO_VECTOR(bfloat16)
NN_INSTANTIATE_TO_VECTOR(float16)
#undef NN_INSTANTIATE_TO_VECTOR

}  // namespace nn
