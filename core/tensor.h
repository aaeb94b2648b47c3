// Tensor: a shape, strides (in elements), an offset, a dtype and a device over shared Storage.
// Views (reshape of contiguous data, transpose, permute, slice, squeeze, unsqueeze, expand)
// share storage and never copy; contiguous() copies only when needed.
//
// Methods that must run a kernel (contiguous, clone, to, copy_) are declared here for the
// familiar PyTorch spelling but defined in kernels/, which owns every kernel launch.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/storage.h"

namespace nn {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct TensorOptions {
  Dtype dtype = Dtype::Float32;
  Device device = Device::cpu();
  bool pinned = false;  // CPU only: page-locked memory for asynchronous copies
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, Dtype dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(shape_); }
  Dtype dtype() const { return dtype_; }
  Device device() const;
  size_t itemsize() const { return dtype_size(dtype_); }
  size_t nbytes() const { return size_t(numel()) * itemsize(); }
  bool is_contiguous() const;
  bool is_pinned() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  void* data_ptr() const;  // storage base + offset
  template <class T>
  T* data() const {
    NN_CHECK(dtype_of<T> == dtype_, DtypeError, "Tensor::data: tensor is ", dtype_name(dtype_),
             ", asked for ", dtype_name(dtype_of<T>));
    return static_cast<T*>(data_ptr());
  }

  // Views: share storage, never copy. Each throws IndexError or ShapeError on bad arguments.
  Tensor view(const Shape& shape) const;  // contiguous-compatible only; one size may be -1
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a contiguous copy
  Tensor flatten() const { return reshape({-1}); }
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // python-style bounds
  Tensor select(int64_t dim, int64_t index) const;  // removes `dim`
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;  // size-1 dims broadcast with stride 0; -1 keeps a size
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;

  // Copies (defined in kernels/).
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device device, bool non_blocking = false) const;
  Tensor to(Dtype dtype) const;
  Tensor to(Device device, Dtype dtype, bool non_blocking = false) const;
  // Copies src into this tensor, broadcasting src and converting its dtype, across devices.
  // non_blocking makes a host<->device copy asynchronous on the current stream when the host
  // side is pinned.
  Tensor& copy_(const Tensor& src, bool non_blocking = false);

  // Host access (defined in kernels/): values converted to T on the host.
  template <class T>
  std::vector<T> to_vector() const;
  double item() const;  // a one-element tensor's value

  std::string str() const;  // PyTorch-like: values (cut short), shape, dtype, device

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
  Dtype dtype_ = Dtype::Float32;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Normalises a possibly negative dimension against rank `dim`; throws IndexError naming `op`.
int64_t wrap_dim(int64_t d, int64_t dim, const char* op);

// An uninitialised tensor (core: only allocation).
Tensor empty(const Shape& shape, TensorOptions options = {});

// A tensor holding a copy of host values of type T, converted to options.dtype.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options = {dtype_of<T>});

// A tensor over host memory the caller owns (not copied, not freed).
Tensor from_blob(void* data, const Shape& shape, Dtype dtype);

}  // namespace nn
