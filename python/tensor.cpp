// nn_cuda.dtype, nn_cuda.device, the Tensor class (an nn::Variable) with its attributes,
// conversions and autograd entry points, grad mode, seeding and CUDA queries. NumPy, operators,
// factories and DLPack live in the other python/tensor_*.cpp files (python/tensor_parts.h).
#include "python/tensor_parts.h"

namespace nn::python {

namespace {

py::tuple shape_tuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

py::object grad_or_none(const Variable& v) {
  const Tensor& g = v.grad();
  if (!g.defined()) return py::none();
  return py::cast(Variable(g));
}

// to(device), to(dtype), to(device, dtype), to(other_tensor), with keywords device= / dtype=.
Variable convert(const Variable& v, std::optional<Device> device, std::optional<Dtype> dtype) {
  Variable out = v;
  if (dtype && *dtype != out.dtype()) out = nn::to(out, *dtype);
  if (device && *device != out.device()) {
    py::gil_scoped_release release;
    out = nn::to(out, *device);
  }
  return out;
}

Variable to_method(const Variable& v, const py::args& args, const py::kwargs& kwargs) {
  std::optional<Device> device;
  std::optional<Dtype> dtype;
  for (py::handle a : args) {
    if (py::isinstance<Variable>(a)) {
      const Variable& other = a.cast<const Variable&>();
      device = other.device();
      dtype = other.dtype();
    } else if (py::isinstance<Device>(a) || PyLong_Check(a.ptr())) {
      device = to_device(a);
    } else if (py::isinstance<py::str>(a)) {
      std::string s = a.cast<std::string>();
      if (s.rfind("cpu", 0) == 0 || s.rfind("cuda", 0) == 0)
        device = to_device(a);
      else
        dtype = to_dtype(a);
    } else if (is_dtype_like(a)) {
      dtype = to_dtype(a);
    } else if (!a.is_none()) {
      throw py::type_error("Tensor.to: expected a device, a dtype or a Tensor, got " +
                           std::string(py::repr(a)));
    }
  }
  for (auto item : kwargs) {
    std::string key = item.first.cast<std::string>();
    if (key == "device") {
      if (!item.second.is_none()) device = to_device(item.second);
    } else if (key == "dtype") {
      if (!item.second.is_none()) dtype = to_dtype(item.second);
    } else if (key != "non_blocking" && key != "copy") {
      throw py::type_error("Tensor.to: unexpected keyword argument '" + key + "'");
    }
  }
  return convert(v, device, dtype);
}

std::vector<Variable> variables_from(py::handle obj, const char* what) {
  std::vector<Variable> out;
  if (py::isinstance<Variable>(obj)) {
    out.push_back(obj.cast<Variable>());
    return out;
  }
  if (!py::isinstance<py::iterable>(obj))
    throw py::type_error(std::string(what) + ": expected a Tensor or a sequence of Tensors");
  for (py::handle item : py::reinterpret_borrow<py::iterable>(obj)) {
    if (!py::isinstance<Variable>(item))
      throw py::type_error(std::string(what) + ": expected Tensors, got " +
                           std::string(py::repr(item)));
    out.push_back(item.cast<Variable>());
  }
  return out;
}

py::tuple autograd_grad(py::handle outputs, py::handle inputs, py::handle grad_outputs,
                        bool retain_graph) {
  std::vector<Variable> outs = variables_from(outputs, "autograd.grad: outputs");
  std::vector<Variable> ins = variables_from(inputs, "autograd.grad: inputs");
  std::vector<Tensor> seeds;
  if (!grad_outputs.is_none()) {
    if (py::isinstance<Variable>(grad_outputs)) {
      seeds.push_back(grad_outputs.cast<const Variable&>().data());
    } else {
      for (py::handle g : py::reinterpret_borrow<py::iterable>(grad_outputs))
        seeds.push_back(g.is_none() ? Tensor() : g.cast<const Variable&>().data());
    }
  }
  std::vector<Tensor> grads;
  {
    py::gil_scoped_release release;
    grads = nn::grad(outs, ins, seeds, retain_graph);
  }
  py::tuple result(grads.size());
  for (size_t i = 0; i < grads.size(); ++i)
    result[i] = grads[i].defined() ? py::cast(Variable(grads[i])) : py::none();
  return result;
}

Variable clone(const Variable& x) {
  return make_variable(
      x.data().clone(), {x},
      [](const Tensor& g, const std::vector<bool>&) { return std::vector<Tensor>{g}; }, "clone");
}

void bind_dtype_device(py::module_& m) {
  py::class_<Dtype>(m, "dtype",
                    "An element type: nn_cuda.float32, float64, bfloat16, float16, "
                    "int64, bool_.")
      .def("__repr__",
           [](Dtype d) {
             return std::string("nn_cuda.") + (d == Dtype::Bool ? "bool_" : dtype_name(d));
           })
      .def("__eq__",
           [](Dtype d, py::handle other) {
             try {  // anything that is not a known dtype compares unequal
               return is_dtype_like(other) && to_dtype(other) == d;
             } catch (const std::exception&) {
               return false;
             }
           })
      .def("__hash__", [](Dtype d) { return int(d); })
      .def_property_readonly("name", [](Dtype d) { return std::string(dtype_name(d)); })
      .def_property_readonly("itemsize", [](Dtype d) { return dtype_size(d); })
      .def_property_readonly("is_floating_point", [](Dtype d) { return is_floating(d); });
  for (Dtype d :
       {Dtype::Float32, Dtype::Float64, Dtype::BFloat16, Dtype::Float16, Dtype::Int64, Dtype::Bool})
    m.attr(d == Dtype::Bool ? "bool_" : dtype_name(d)) = dtype_object(d);
  m.attr("float") = dtype_object(Dtype::Float32);
  m.attr("double") = dtype_object(Dtype::Float64);
  m.attr("half") = dtype_object(Dtype::Float16);
  m.attr("long") = dtype_object(Dtype::Int64);

  py::class_<Device>(m, "device", "Where a tensor lives: device('cpu'), device('cuda:0').")
      .def(py::init([](py::handle spec) { return to_device(spec); }), py::arg("device"))
      .def(py::init([](const std::string& type, int index) {
             Device d = Device::parse(type);
             NN_CHECK(d.is_cuda() || index == 0, ValueError,
                      "device: the CPU has only index 0, got ", index);
             d.index = index;
             return d;
           }),
           py::arg("type"), py::arg("index"))
      .def_property_readonly("type", [](const Device& d) { return d.is_cuda() ? "cuda" : "cpu"; })
      .def_property_readonly("index", [](const Device& d) { return d.index; })
      .def("__str__", &Device::str)
      .def("__repr__",
           [](const Device& d) {
             return d.is_cuda() ? "device(type='cuda', index=" + std::to_string(d.index) + ")"
                                : std::string("device(type='cpu')");
           })
      .def("__eq__",
           [](const Device& d, py::handle other) {
             if (!py::isinstance<Device>(other) && !py::isinstance<py::str>(other)) return false;
             try {
               return to_device(other) == d;
             } catch (const std::exception&) {
               return false;
             }
           })
      .def("__hash__", [](const Device& d) { return int(d.type) * 1024 + d.index; });
  py::implicitly_convertible<py::str, Device>();
}

void bind_tensor_class(TensorClass& cls) {
  cls.def_property_readonly("shape", [](const Variable& v) { return shape_tuple(v.shape()); })
      .def_property_readonly("dtype", [](const Variable& v) { return dtype_object(v.dtype()); })
      .def_property_readonly("device", [](const Variable& v) { return v.device(); })
      .def_property_readonly("ndim", [](const Variable& v) { return v.dim(); })
      .def_property_readonly("is_cuda", [](const Variable& v) { return v.device().is_cuda(); })
      .def_property(
          "requires_grad", [](const Variable& v) { return v.requires_grad(); },
          [](Variable& v, bool on) { v.requires_grad_(on); })
      .def_property("grad", &grad_or_none,
                    [](Variable& v, py::handle g) {
                      v.set_grad(g.is_none() ? Tensor() : g.cast<const Variable&>().data());
                    })
      .def_property(
          "data", [](const Variable& v) { return v.detach(); },
          [](Variable& v, const Variable& other) { v.data() = other.data(); },
          "The values as a Tensor cut from the graph; assigning replaces them (not recorded).")
      .def_property_readonly("is_leaf", &Variable::is_leaf)
      .def_property_readonly("grad_fn",
                             [](const Variable& v) -> py::object {
                               if (v.is_leaf()) return py::none();
                               return py::str(v.op_name());
                             })
      .def_property_readonly("T",
                             [](const Variable& v) {
                               std::vector<int64_t> dims;
                               for (int64_t i = v.dim() - 1; i >= 0; --i) dims.push_back(i);
                               return nn::permute(v, dims);
                             })
      .def(
          "size",
          [](const Variable& v, py::handle dim) -> py::object {
            if (dim.is_none()) return shape_tuple(v.shape());
            return py::int_(v.size(dim.cast<int64_t>()));
          },
          py::arg("dim") = py::none())
      .def(
          "stride",
          [](const Variable& v, py::handle dim) -> py::object {
            if (dim.is_none()) return shape_tuple(v.data().strides());
            return py::int_(v.data().stride(dim.cast<int64_t>()));
          },
          py::arg("dim") = py::none())
      .def("dim", &Variable::dim)
      .def("numel", &Variable::numel)
      .def("element_size", [](const Variable& v) { return v.data().itemsize(); })
      .def("is_contiguous", [](const Variable& v) { return v.data().is_contiguous(); })
      .def("is_floating_point", [](const Variable& v) { return is_floating(v.dtype()); })
      .def("data_ptr",
           [](const Variable& v) { return reinterpret_cast<uintptr_t>(v.data().data_ptr()); })
      .def("item",
           [](const Variable& v) -> py::object {
             NN_CHECK(v.numel() == 1, ValueError, "item: the tensor has ", v.numel(),
                      " elements, expected exactly one");
             double x;
             {
               py::gil_scoped_release release;
               x = v.item();
             }
             if (v.dtype() == Dtype::Bool) return py::bool_(x != 0.0);
             if (v.dtype() == Dtype::Int64) {
               // Exact for the whole int64 range (item() goes through double).
               return py::int_(v.data().contiguous().to(Device::cpu()).to_vector<int64_t>()[0]);
             }
             return py::float_(x);
           })
      .def("cpu", [](const Variable& v) { return convert(v, Device::cpu(), std::nullopt); })
      .def(
          "cuda",
          [](const Variable& v, py::handle index, bool /*non_blocking*/) {
            return convert(v, index.is_none() ? Device::cuda(0) : to_device(index), std::nullopt);
          },
          py::arg("device") = py::none(), py::arg("non_blocking") = false)
      .def("to", &to_method)
      .def("type_as", [](const Variable& v, const Variable& o) { return nn::to(v, o.dtype()); })
      .def("float", [](const Variable& v) { return nn::to(v, Dtype::Float32); })
      .def("double", [](const Variable& v) { return nn::to(v, Dtype::Float64); })
      .def("half", [](const Variable& v) { return nn::to(v, Dtype::Float16); })
      .def("bfloat16", [](const Variable& v) { return nn::to(v, Dtype::BFloat16); })
      .def("long", [](const Variable& v) { return nn::to(v, Dtype::Int64); })
      .def("bool", [](const Variable& v) { return nn::to(v, Dtype::Bool); })
      .def("contiguous", [](const Variable& v) { return nn::contiguous(v); })
      .def("clone", &clone)
      .def("detach", &Variable::detach)
      .def(
          "requires_grad_",
          [](py::object self, bool on) {
            self.cast<Variable&>().requires_grad_(on);
            return self;
          },
          py::arg("requires_grad") = true)
      .def(
          "backward",
          [](const Variable& v, py::handle gradient, bool retain_graph) {
            Tensor seed = gradient.is_none() ? Tensor() : gradient.cast<const Variable&>().data();
            py::gil_scoped_release release;
            v.backward(seed, retain_graph);
          },
          py::arg("gradient") = py::none(), py::arg("retain_graph") = false)
      .def("retain_grad", &Variable::retain_grad)
      .def(
          "zero_grad_", [](Variable& v, bool set_to_none) { v.zero_grad(set_to_none); },
          py::arg("set_to_none") = true)
      .def("__len__",
           [](const Variable& v) {
             if (v.dim() == 0) throw py::type_error("len() of a 0-d tensor");
             return v.size(0);
           })
      .def("__bool__",
           [](const Variable& v) {
             NN_CHECK(v.numel() == 1, ValueError, "bool: the truth value of a tensor with ",
                      v.numel(), " elements is ambiguous, expected exactly one");
             return v.item() != 0.0;
           })
      .def("__float__",
           [](const Variable& v) {
             NN_CHECK(v.numel() == 1, ValueError,
                      "float: only one-element tensors convert, this one has ", v.numel(),
                      " elements");
             return v.item();
           })
      .def("__int__",
           [](const Variable& v) {
             NN_CHECK(v.numel() == 1, ValueError,
                      "int: only one-element tensors convert, this one has ", v.numel(),
                      " elements");
             return int64_t(v.item());
           })
      .def("__hash__", [](const Variable& v) { return reinterpret_cast<uintptr_t>(v.id()); })
      .def("is_same", &Variable::same, "Whether two Tensor objects are handles on one tensor.");
}

void bind_autograd(py::module_& m) {
  m.def("is_grad_enabled", &nn::grad_enabled, "Whether operations record the autograd graph.");
  m.def("_set_grad_enabled", &nn::set_grad_enabled);
  py::module_ ag = m.def_submodule("autograd", "Reverse-mode automatic differentiation.");
  ag.def("grad", &autograd_grad, py::arg("outputs"), py::arg("inputs"),
         py::arg("grad_outputs") = py::none(), py::arg("retain_graph") = false,
         "Gradients of outputs with respect to inputs, returned (not accumulated); None for an "
         "input the outputs do not depend on.");
}

void bind_runtime(py::module_& m) {
#ifdef NN_PYTHON_VERSION
  m.attr("__version__") = NN_PYTHON_VERSION;  // the CMake project's version
#endif
  m.def(
      "manual_seed", [](uint64_t seed) { nn::manual_seed(seed); }, py::arg("seed"));
  m.def("cuda_is_available", &nn::cuda::available);
  m.def("cuda_device_count", &nn::cuda::device_count);
  m.def("built_with_cuda", &nn::cuda::built_with_cuda);
  m.def(
      "cuda_synchronize",
      [](int index) {
        py::gil_scoped_release release;
        nn::cuda::synchronize(index);
      },
      py::arg("device") = -1);
}

}  // namespace

void bind_tensor(py::module_& m) {
  bind_dtype_device(m);
  TensorClass cls(m, "Tensor", py::buffer_protocol(),
                  "A tensor with autograd state (nn::Variable): values on the CPU or a GPU.");
  bind_tensor_class(cls);
  bind_tensor_numpy(m, cls);
  bind_tensor_ops(m, cls);
  bind_tensor_factories(m);
  bind_tensor_dlpack(m, cls);
  bind_autograd(m);
  bind_runtime(m);
}

}  // namespace nn::python
