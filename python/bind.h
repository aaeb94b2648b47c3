// Shared by the pybind11 binding files of the nn_cuda Python module (python/*.cpp).
//
// The Python `nn_cuda.Tensor` is an nn::Variable: a tensor with autograd state. Bindings take
// and return nn::Variable; plain nn::Tensor arguments of the C++ API are reached through
// tensor_of() and results are wrapped with variable_of(). Each bind_* function registers one
// part of the module; module.cpp calls them in the order below (types first, so later parts
// can use them in signatures and defaults).
#pragma once

#include <pybind11/pybind11.h>

#include "nn.h"

namespace nn::python {

namespace py = pybind11;

void bind_errors(py::module_& m);      // nn::Error -> Python exceptions (errors.cpp)
void bind_tensor(py::module_& m);      // dtype, device, Tensor, factories, NumPy, DLPack, no_grad (tensor.cpp)
void bind_functional(py::module_& m);  // nn_cuda.functional (functional.cpp)
void bind_nn(py::module_& m);          // nn_cuda.nn: Module, layers, losses, init (nn.cpp)
void bind_optim(py::module_& m);       // nn_cuda.optim: optimizers, schedulers, clipping, early stopping (optim.cpp)
void bind_data(py::module_& m);        // nn_cuda.data: datasets, loaders, MNIST/IDX, CSV, augmentation (data.cpp)
void bind_io(py::module_& m);          // save/load of safetensors files and training checkpoints (io.cpp)

inline const Tensor& tensor_of(const Variable& v) { return v.data(); }
inline Variable variable_of(Tensor t, bool requires_grad = false) {
  return Variable(std::move(t), requires_grad);
}

}  // namespace nn::python
