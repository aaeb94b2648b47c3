// Shared by the pybind11 binding files of the nn_cuda Python module (python/*.cpp).
//
// The Python `nn_cuda.Tensor` is an nn::Variable: a tensor with autograd state. Bindings take
// and return nn::Variable; plain nn::Tensor arguments of the C++ API are reached through
// tensor_of() and results are wrapped with variable_of(). Each bind_* function registers one
// part of the module; module.cpp calls them in the order below (types first, so later parts
// can use them in signatures and defaults).
//
// Argument helpers for every binding file (defined in python/tensor_args.cpp):
//  - DtypeArg / DeviceArg: take them (or std::optional<...> with py::arg("dtype") = py::none())
//    in a bound signature to accept everything the Python API accepts for a dtype (an
//    nn_cuda.dtype, a NumPy dtype or type, a name such as "float32") or a device (an
//    nn_cuda.device, "cpu", "cuda", "cuda:1", an int meaning that CUDA device). Returned to
//    Python they become the nn_cuda.dtype / nn_cuda.device objects.
//  - to_dtype(obj) / to_device(obj): the same conversions by hand (TypeError when obj is none
//    of those forms).
//  - dtype_object(d): the unique Python object for a dtype (so `t.dtype is nn_cuda.float32`).
//  - shape_from(obj): a Shape from an int or a sequence of ints (TypeError otherwise);
//    shape_from_args(args): the `zeros(2, 3)` / `zeros((2, 3))` forms.
//  - dims_from(obj): an optional int or sequence of ints (None: empty, meaning all dims).
//  - pair_from(obj, what): an int or a pair of ints, for kernel sizes, strides and padding.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>

#include "nn.h"

namespace nn::python {

namespace py = pybind11;

void bind_errors(py::module_& m);  // nn::Error -> Python exceptions (errors.cpp)
void bind_tensor(
    py::module_& m);  // dtype, device, Tensor, factories, NumPy, DLPack, no_grad (tensor.cpp)
void bind_functional(py::module_& m);  // nn_cuda.functional (functional.cpp)
void bind_nn(py::module_& m);          // nn_cuda.nn: Module, layers, losses, init (nn.cpp)
void bind_optim(
    py::module_& m);  // nn_cuda.optim: optimizers, schedulers, clipping, early stopping (optim.cpp)
void bind_data(
    py::module_& m);  // nn_cuda.data: datasets, loaders, MNIST/IDX, CSV, augmentation (data.cpp)
void bind_io(py::module_& m);  // save/load of safetensors files and training checkpoints (io.cpp)

inline const Tensor& tensor_of(const Variable& v) { return v.data(); }
inline Variable variable_of(Tensor t, bool requires_grad = false) {
  return Variable(std::move(t), requires_grad);
}

struct DtypeArg {
  Dtype value = Dtype::Float32;
};
struct DeviceArg {
  Device value = Device::cpu();
};

Dtype to_dtype(py::handle obj);
Device to_device(py::handle obj);
bool is_dtype_like(py::handle obj);  // an nn_cuda.dtype, NumPy dtype/type or a dtype name
py::object dtype_object(Dtype d);
Shape shape_from(py::handle obj);
Shape shape_from_args(const py::args& args);
std::vector<int64_t> dims_from(py::handle obj);
std::array<int64_t, 2> pair_from(py::handle obj, const char* what);
std::string path_string(py::handle path);  // str, bytes or os.PathLike, through os.fspath
Tensor tensor_from(py::handle value);      // a Tensor, else nn_cuda.as_tensor(value)
// torch.split: `sizes` is one chunk size (the last chunk may be shorter) or a list of sizes.
std::vector<Variable> split_sizes(const Variable& x, py::handle sizes, int64_t dim);

}  // namespace nn::python

namespace pybind11::detail {

template <>
struct type_caster<nn::python::DtypeArg> {
  PYBIND11_TYPE_CASTER(nn::python::DtypeArg, const_name("dtype"));
  bool load(handle src, bool /*convert*/) {
    if (!nn::python::is_dtype_like(src)) return false;
    value.value = nn::python::to_dtype(src);
    return true;
  }
  static handle cast(const nn::python::DtypeArg& d, return_value_policy, handle) {
    return nn::python::dtype_object(d.value).release();
  }
};

template <>
struct type_caster<nn::python::DeviceArg> {
  PYBIND11_TYPE_CASTER(nn::python::DeviceArg, const_name("device"));
  bool load(handle src, bool /*convert*/) {
    if (!isinstance<nn::Device>(src) && !isinstance<str>(src) && !PyLong_Check(src.ptr()))
      return false;
    value.value = nn::python::to_device(src);
    return true;
  }
  static handle cast(const nn::python::DeviceArg& d, return_value_policy policy, handle parent) {
    return type_caster_base<nn::Device>::cast(d.value, policy, parent);
  }
};

}  // namespace pybind11::detail
