// The pieces of bind_tensor (python/tensor*.cpp), registered in this order by tensor.cpp:
// the Tensor class and its attributes (tensor.cpp), NumPy and the buffer protocol
// (tensor_numpy.cpp), operators, math methods and indexing (tensor_ops.cpp), factories
// (tensor_factories.cpp) and DLPack (tensor_dlpack.cpp).
#pragma once

#include <pybind11/numpy.h>

#include "python/bind.h"

namespace nn::python {

using TensorClass = py::class_<Variable>;

void bind_tensor_numpy(py::module_& m, TensorClass& cls);
void bind_tensor_ops(py::module_& m, TensorClass& cls);
void bind_tensor_factories(py::module_& m);
void bind_tensor_dlpack(py::module_& m, TensorClass& cls);

// A CPU tensor over a NumPy array's memory (no copy; the tensor keeps the array alive).
// DtypeError for a dtype nn_cuda lacks, ValueError for negative or unaligned strides.
Tensor tensor_from_numpy(const py::array& array);
// A NumPy view of a CPU tensor keeping its storage alive (bfloat16: a float32 copy).
// DeviceError for a CUDA tensor.
py::array tensor_to_numpy(const Tensor& t);
// A new tensor copying `data` (nested sequences, scalars, NumPy arrays, Tensors), PyTorch's
// dtype inference: Python floats give float32, ints int64, bools bool; arrays keep their dtype.
Tensor tensor_from_data(py::handle data, std::optional<Dtype> dtype, std::optional<Device> device);

// Runs `release` (a Python decref) with the GIL held, unless the interpreter is finalizing.
void run_with_gil(const std::function<void()>& release);

}  // namespace nn::python
