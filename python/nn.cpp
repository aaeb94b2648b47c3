// nn_cuda.nn: the Module base (subclassable from Python), Parameter, Sequential, nn.init and
// nn.utils. The layers and losses are in nn_layers.cpp.
//
// Python subclasses. Module is bound with a trampoline (PyModule) so that C++ callers (a
// Sequential, a parent's forward) reach a `forward` defined in Python. Assigning a Module or a
// Parameter to an attribute registers it with the C++ module (`__setattr__`), as in PyTorch; the
// child's Python object is also kept in the parent's __dict__, which keeps a Python subclass
// alive while its parent is. Limits (pybind11 2.10 has no smart holder): a Python subclass held
// only by C++ (its Python object gone) falls back to Module::forward, which throws; keep such
// modules referenced from Python (attributes, Sequential, register_module all do this). A
// registered name cannot be re-bound to another module or parameter (the C++ Module registers a
// name once): ValueError. Only Module itself has a trampoline: a Python subclass of a C++ layer
// (class L(nn.Linear)) may override forward for Python callers, but a Sequential still runs the
// C++ forward.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "python/bind.h"

namespace nn::python {

// Defined in nn_layers.cpp.
void bind_nn_layers(py::module_& nn);

namespace {

// A Parameter is a Tensor that a Module registers when it is assigned as an attribute.
struct ParameterVar : Variable {
  ParameterVar() = default;
  explicit ParameterVar(Variable v) : Variable(std::move(v)) {}
};

class PyModule : public Module {
 public:
  using Module::Module;

  Variable forward(const Variable& x) override { PYBIND11_OVERRIDE(Variable, Module, forward, x); }

  // The Python class's name, so that a subclass prints as itself.
  std::string name() const override {
    py::gil_scoped_acquire gil;
    py::handle self = py::detail::get_object_handle(static_cast<const Module*>(this),
                                                    py::detail::get_type_info(typeid(Module)));
    if (self) return py::type::handle_of(self).attr("__name__").cast<std::string>();
    return Module::name();
  }

  std::string extra_repr() const override {
    py::gil_scoped_acquire gil;
    py::function override = py::get_override(static_cast<const Module*>(this), "extra_repr");
    if (override) return override().cast<std::string>();
    return Module::extra_repr();
  }
};

py::object ordered_dict() { return py::module_::import("collections").attr("OrderedDict")(); }

// The result of load_state_dict / load: a named tuple (missing_keys, unexpected_keys).
py::object incompatible_keys(const LoadReport& r) {
  static py::object type =
      py::module_::import("collections")
          .attr("namedtuple")("IncompatibleKeys",
                              py::make_tuple("missing_keys", "unexpected_keys"));
  return type(py::cast(r.missing), py::cast(r.unexpected));
}

// A Tensor from a state-dict value: an nn_cuda.Tensor, else whatever nn_cuda.as_tensor takes
// (NumPy arrays, objects with __dlpack__ or __array__).
Tensor tensor_from_value(py::handle value) {
  if (py::isinstance<Variable>(value)) return value.cast<const Variable&>().data();
  py::object as_tensor = py::module_::import("nn_cuda").attr("as_tensor");
  return as_tensor(value).cast<const Variable&>().data();
}

std::string path_string(py::handle path) {
  return py::module_::import("os").attr("fspath")(path).cast<std::string>();
}

// The direct (undotted) entry `name` of a dotted list, or nullptr.
template <class T>
const T* find_direct(const std::vector<std::pair<std::string, T>>& list, const std::string& name) {
  for (const auto& [n, v] : list)
    if (n == name) return &v;
  return nullptr;
}

// The C++ Module of a Python Module object; AttributeError when its __init__ has not run yet
// (a subclass assigning attributes before calling super().__init__()).
Module* module_ptr(py::handle self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self.ptr());
  auto vh = inst->get_value_and_holder(py::detail::get_type_info(typeid(Module)), false);
  if (!vh || !vh.holder_constructed()) return nullptr;
  return vh.template value_ptr<Module>();
}

Module& module_of(py::handle self, const std::string& key) {
  Module* m = module_ptr(self);
  if (m == nullptr)
    throw py::attribute_error("cannot assign or read '" + key +
                              "' before Module.__init__() call (call super().__init__() first)");
  return *m;
}

// Module::str spells booleans as C++ does ("bias=true"); Python users read True / False.
std::string python_bools(std::string s) {
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"=true", "=True"},
                                 std::pair<std::string, std::string>{"=false", "=False"}}) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
      s.replace(at, from.size(), to);
    }
  }
  return s;
}

void generic_setattr(py::handle self, py::handle name, py::handle value) {
  if (PyObject_GenericSetAttr(self.ptr(), name.ptr(), value.ptr()) != 0)
    throw py::error_already_set();
}

// Registers a Parameter under `name` and re-points the Python Parameter object at the registered
// handle (the C++ Module makes a new leaf over the same data), so that the object the caller
// holds and the module's parameter are one Tensor.
void register_python_parameter(Module& m, const std::string& name, py::handle value) {
  Variable& p = value.cast<Variable&>();
  Variable registered = m.register_parameter(name, p.data(), p.requires_grad());
  if (p.grad().defined()) registered.set_grad(p.grad());
  p = registered;
}

void module_setattr(py::handle self, py::str name, py::handle value) {
  const std::string key = name.cast<std::string>();
  if (module_ptr(self) == nullptr && !py::isinstance<Module>(value) &&
      !py::isinstance<ParameterVar>(value)) {
    generic_setattr(self, name, value);  // a plain attribute set before super().__init__()
    return;
  }
  Module& m = module_of(self, key);
  const auto children = m.named_children();
  const auto params = m.named_parameters();
  const auto buffers = m.named_buffers();
  const std::shared_ptr<Module>* child = find_direct(children, key);
  const Variable* param = find_direct(params, key);
  const Tensor* buffer = find_direct(buffers, key);

  if (py::isinstance<Module>(value)) {
    auto module = value.cast<std::shared_ptr<Module>>();
    if (child != nullptr) {
      NN_CHECK(child->get() == module.get(), ValueError, "Module.__setattr__: '", key,
               "' is already a registered submodule; nn_cuda modules cannot replace a submodule, "
               "build the module with the new one instead");
    } else {
      NN_CHECK(param == nullptr && buffer == nullptr, ValueError, "Module.__setattr__: '", key,
               "' is already a parameter or buffer, cannot assign a module to it");
      m.register_module(key, module);
    }
    generic_setattr(self, name, value);  // keeps the child's Python object alive
    return;
  }
  if (py::isinstance<ParameterVar>(value)) {
    if (param != nullptr) {
      NN_CHECK(param->same(value.cast<const Variable&>()), ValueError, "Module.__setattr__: '", key,
               "' is already a registered parameter; nn_cuda modules cannot replace a "
               "parameter, copy new values into it with copy_() under no_grad()");
      return;
    }
    NN_CHECK(child == nullptr && buffer == nullptr, ValueError, "Module.__setattr__: '", key,
             "' is already a submodule or buffer, cannot assign a parameter to it");
    register_python_parameter(m, key, value);
    return;
  }
  if (param != nullptr) {
    if (value.is_none())
      NN_THROW(ValueError, "Module.__setattr__: cannot remove parameter '", key, "'");
    throw py::type_error("cannot assign '" +
                         py::str(py::type::handle_of(value)).cast<std::string>() +
                         "' as parameter '" + key + "' (nn_cuda.nn.Parameter expected)");
  }
  if (buffer != nullptr) {
    NN_CHECK(py::isinstance<Variable>(value), ValueError, "Module.__setattr__: '", key,
             "' is a buffer, only a Tensor of its shape can be assigned to it");
    // The C++ buffer keeps its identity: the new values are copied into it.
    const Tensor& src = value.cast<const Variable&>().data();
    NN_CHECK(src.shape() == buffer->shape(), ValueError, "Module.__setattr__: buffer '", key,
             "' has shape ", shape_str(buffer->shape()), ", cannot assign a tensor of shape ",
             shape_str(src.shape()));
    Tensor dst = *buffer;
    dst.copy_(src);
    return;
  }
  NN_CHECK(child == nullptr, ValueError, "Module.__setattr__: '", key,
           "' is a registered submodule, cannot assign a non-module to it");
  generic_setattr(self, name, value);
}

py::object module_getattr(py::handle self, const std::string& key) {
  Module& m = module_of(self, key);
  const auto params = m.named_parameters();
  if (const Variable* p = find_direct(params, key)) return py::cast(*p);
  const auto buffers = m.named_buffers();
  if (const Tensor* b = find_direct(buffers, key)) return py::cast(variable_of(*b));
  const auto children = m.named_children();
  if (const std::shared_ptr<Module>* c = find_direct(children, key)) return py::cast(*c);
  throw py::attribute_error("'" + py::type::handle_of(self).attr("__name__").cast<std::string>() +
                            "' object has no attribute '" + key + "'");
}

// Module.to(device), to(dtype), to(tensor), to(device=..., dtype=...).
py::object module_to(py::object self, py::args args, py::kwargs kwargs) {
  Module& m = self.cast<Module&>();
  std::optional<Device> device;
  std::optional<Dtype> dtype;
  auto take = [&](py::handle a) {
    if (a.is_none()) return;
    if (py::isinstance<Variable>(a)) {
      device = a.cast<const Variable&>().device();
      dtype = a.cast<const Variable&>().dtype();
    } else if (py::isinstance<py::str>(a)) {
      // "cpu", "cuda", "cuda:1" name devices; any other string a dtype ("float64").
      const auto text = a.cast<std::string>();
      if (text.rfind("cpu", 0) == 0 || text.rfind("cuda", 0) == 0)
        device = to_device(a);
      else
        dtype = to_dtype(a);
    } else if (is_dtype_like(a)) {
      dtype = to_dtype(a);
    } else {
      device = to_device(a);
    }
  };
  for (py::handle a : args) take(a);
  if (kwargs.contains("device") && !kwargs["device"].is_none())
    device = to_device(kwargs["device"]);
  if (kwargs.contains("dtype") && !kwargs["dtype"].is_none()) dtype = to_dtype(kwargs["dtype"]);
  for (auto item : kwargs) {
    const auto k = item.first.cast<std::string>();
    if (k != "device" && k != "dtype" && k != "non_blocking")
      throw py::type_error("Module.to() got an unexpected keyword argument '" + k + "'");
  }
  if (device) m.to(*device);
  if (dtype) m.to(*dtype);
  return self;
}

std::vector<Variable> variables_of(const std::vector<Tensor>& ts) {
  std::vector<Variable> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(variable_of(t));
  return out;
}

// A parameter list from a Tensor or an iterable of Tensors (clip_grad_norm_ and friends).
std::vector<Variable> parameter_list(py::handle params) {
  if (py::isinstance<Variable>(params)) return {params.cast<Variable>()};
  std::vector<Variable> out;
  for (py::handle p : py::iter(params)) out.push_back(p.cast<Variable>());
  return out;
}

StateDict state_dict_from(py::handle state) {
  StateDict out;
  for (auto item : py::dict(py::reinterpret_borrow<py::object>(state)))
    out.emplace_back(item.first.cast<std::string>(), tensor_from_value(item.second));
  return out;
}

init::Nonlinearity parse_nonlinearity(const std::string& s) {
  using N = init::Nonlinearity;
  if (s == "linear") return N::Linear;
  if (s == "conv1d") return N::Conv1d;
  if (s == "conv2d") return N::Conv2d;
  if (s == "conv3d") return N::Conv3d;
  if (s == "sigmoid") return N::Sigmoid;
  if (s == "tanh") return N::Tanh;
  if (s == "relu") return N::Relu;
  if (s == "leaky_relu") return N::LeakyRelu;
  if (s == "selu") return N::Selu;
  NN_THROW(ValueError, "nn.init: unsupported nonlinearity '", s,
           "', expected linear, conv1d, conv2d, conv3d, sigmoid, tanh, relu, leaky_relu or selu");
}

init::FanMode parse_fan_mode(const std::string& s) {
  if (s == "fan_in") return init::FanMode::FanIn;
  if (s == "fan_out") return init::FanMode::FanOut;
  NN_THROW(ValueError, "nn.init: mode '", s, "' is not supported, expected fan_in or fan_out");
}

void bind_module(py::module_& nn) {
  py::class_<Module, PyModule, std::shared_ptr<Module>> mod(nn, "Module", py::dynamic_attr(), R"(
Base class of every layer. Subclass it in Python: call super().__init__() first, assign
submodules and Parameters as attributes (they register themselves) and define forward().)");
  mod.def(py::init<>())
      .def(
          "forward", [](Module& m, const Variable& x) { return m.forward(x); }, py::arg("input"))
      .def("__call__", [](py::object self, py::args args,
                          py::kwargs kwargs) { return self.attr("forward")(*args, **kwargs); })
      .def("__setattr__", &module_setattr)
      .def("__getattr__", &module_getattr)
      .def(
          "parameters",
          [](const Module& m, bool recurse) {
            if (recurse) return m.parameters();
            std::vector<Variable> out;
            for (auto& [n, p] : m.named_parameters())
              if (n.find('.') == std::string::npos) out.push_back(p);
            return out;
          },
          py::arg("recurse") = true)
      .def("named_parameters", &Module::named_parameters)
      .def("buffers", [](const Module& m) { return variables_of(m.buffers()); })
      .def("named_buffers",
           [](const Module& m) {
             std::vector<std::pair<std::string, Variable>> out;
             for (auto& [n, b] : m.named_buffers()) out.emplace_back(n, variable_of(b));
             return out;
           })
      .def("children", &Module::children)
      .def("named_children", &Module::named_children)
      .def("modules", &Module::modules)
      .def("named_modules", &Module::named_modules)
      .def(
          "apply",
          [](py::object self, const py::function& fn) {
            self.cast<Module&>().apply(
                [&](Module& sub) { fn(py::cast(&sub, py::return_value_policy::reference)); });
            return self;
          },
          py::arg("fn"))
      .def(
          "train",
          [](py::object self, bool mode) {
            self.cast<Module&>().train(mode);
            return self;
          },
          py::arg("mode") = true)
      .def("eval",
           [](py::object self) {
             self.cast<Module&>().eval();
             return self;
           })
      .def_property("training", &Module::is_training, [](Module& m, bool mode) { m.train(mode); })
      .def(
          "requires_grad_",
          [](py::object self, bool on) {
            for (Variable& p : self.cast<Module&>().parameters()) p.requires_grad_(on);
            return self;
          },
          py::arg("requires_grad") = true)
      .def("to", &module_to)
      .def(
          "cuda",
          [](py::object self, py::object device) {
            self.cast<Module&>().to(device.is_none() ? Device::cuda() : to_device(device));
            return self;
          },
          py::arg("device") = py::none())
      .def("cpu",
           [](py::object self) {
             self.cast<Module&>().to(Device::cpu());
             return self;
           })
      .def("float",
           [](py::object self) {
             self.cast<Module&>().to(Dtype::Float32);
             return self;
           })
      .def("double",
           [](py::object self) {
             self.cast<Module&>().to(Dtype::Float64);
             return self;
           })
      .def("zero_grad", &Module::zero_grad, py::arg("set_to_none") = true)
      .def("state_dict",
           [](const Module& m) {
             py::object out = ordered_dict();
             for (auto& [n, t] : m.state_dict()) out[py::str(n)] = variable_of(t);
             return out;
           })
      .def(
          "load_state_dict",
          [](Module& m, py::handle state, bool strict) {
            return incompatible_keys(m.load_state_dict(state_dict_from(state), strict));
          },
          py::arg("state_dict"), py::arg("strict") = true)
      .def(
          "save", [](const Module& m, py::handle path) { m.save(path_string(path)); },
          py::arg("path"))
      .def(
          "load",
          [](Module& m, py::handle path, bool strict) {
            return incompatible_keys(m.load(path_string(path), strict));
          },
          py::arg("path"), py::arg("strict") = true)
      .def(
          "register_parameter",
          [](py::object self, const std::string& name, py::handle param) {
            NN_CHECK(!param.is_none(), ValueError, "register_parameter: '", name,
                     "': None parameters are not supported");
            Module& m = self.cast<Module&>();
            if (py::isinstance<ParameterVar>(param)) {
              register_python_parameter(m, name, param);
            } else {
              const Variable& v = param.cast<const Variable&>();
              m.register_parameter(name, v.data(), v.requires_grad());
            }
          },
          py::arg("name"), py::arg("param"))
      .def(
          "register_buffer",
          [](Module& m, const std::string& name, const Variable& tensor) {
            m.register_buffer(name, tensor.data());
          },
          py::arg("name"), py::arg("tensor"))
      .def(
          "register_module",
          [](py::object self, const std::string& name, py::handle module) {
            self.cast<Module&>().register_module(name, module.cast<std::shared_ptr<Module>>());
            generic_setattr(self, py::str(name), module);
          },
          py::arg("name"), py::arg("module"))
      .def(
          "add_module",
          [](py::object self, const std::string& name, py::handle module) {
            self.cast<Module&>().register_module(name, module.cast<std::shared_ptr<Module>>());
            generic_setattr(self, py::str(name), module);
          },
          py::arg("name"), py::arg("module"))
      .def("extra_repr", [](const Module& m) { return m.extra_repr(); })
      .def("__repr__", [](const Module& m) { return python_bools(m.str()); });
}

void bind_parameter(py::module_& nn) {
  py::class_<ParameterVar, Variable>(nn, "Parameter", R"(
Parameter(data, requires_grad=True): a leaf Tensor over data's values (shared, not copied)
that a Module registers when it is assigned as an attribute.)")
      .def(py::init([](const Variable& data, bool requires_grad) {
             return ParameterVar(Variable(data.data(), requires_grad));
           }),
           py::arg("data"), py::arg("requires_grad") = true)
      .def("__repr__", [](py::object self) {
        py::object base = py::type::of<Variable>().attr("__repr__")(self);
        return "Parameter containing:\n" + base.cast<std::string>();
      });
}

void bind_sequential(py::module_& nn) {
  py::class_<Sequential, Module, std::shared_ptr<Sequential>>(nn, "Sequential", R"(
Sequential(*modules) or Sequential(OrderedDict(name=module)): each module is fed the previous
one's output. A Linear followed by ReLU/GELU/SiLU/Tanh/Sigmoid runs as one fused op.)")
      .def(py::init([](const py::args& args) {
             auto seq = std::make_shared<Sequential>();
             if (args.size() == 1 && py::isinstance<py::dict>(args[0])) {
               for (auto item : args[0].cast<py::dict>())
                 seq->push_back(item.first.cast<std::string>(),
                                item.second.cast<std::shared_ptr<Module>>());
               return seq;
             }
             for (py::handle a : args) seq->push_back(a.cast<std::shared_ptr<Module>>());
             return seq;
           }),
           py::keep_alive<1, 2>())
      .def(
          "append",
          [](py::object self, py::handle module) {
            self.cast<Sequential&>().push_back(module.cast<std::shared_ptr<Module>>());
            py::detail::keep_alive_impl(self, module);
            return self;
          },
          py::arg("module"))
      .def("__len__", &Sequential::size)
      .def("__getitem__",
           [](py::object self, py::handle index) -> py::object {
             const auto& seq = self.cast<const Sequential&>();
             const auto n = static_cast<py::ssize_t>(seq.size());
             if (py::isinstance<py::slice>(index)) {
               py::ssize_t start = 0, stop = 0, step = 0, count = 0;
               if (!index.cast<py::slice>().compute(n, &start, &stop, &step, &count))
                 throw py::error_already_set();
               py::list picked;
               for (py::ssize_t i = 0; i < count; ++i)
                 picked.append(py::cast(seq[static_cast<size_t>(start + i * step)]));
               return py::type::of<Sequential>()(*picked);
             }
             auto i = index.cast<py::ssize_t>();
             if (i < 0) i += n;
             if (i < 0 || i >= n) throw py::index_error("Sequential index out of range");
             return py::cast(seq[static_cast<size_t>(i)]);
           })
      .def("__iter__", [](const Sequential& seq) {
        py::list items;
        for (size_t i = 0; i < seq.size(); ++i) items.append(py::cast(seq[i]));
        return py::iter(items);
      });
}

void bind_init(py::module_& nn) {
  py::module_ init = nn.def_submodule("init", "Parameter initialisers (torch.nn.init), in place");
  // Each fills the Tensor's data in place and returns the same Tensor.
  auto in_place = [](py::object t, auto&& fill) {
    fill(t.cast<Variable&>().data());
    return t;
  };
  init.def(
      "calculate_gain",
      [](const std::string& nonlinearity, std::optional<double> param) {
        return init::calculate_gain(parse_nonlinearity(nonlinearity), param.value_or(0.01));
      },
      py::arg("nonlinearity"), py::arg("param") = py::none());
  init.def(
      "uniform_",
      [in_place](py::object t, double a, double b) {
        return in_place(t, [&](Tensor& x) { init::uniform_(x, a, b); });
      },
      py::arg("tensor"), py::arg("a") = 0.0, py::arg("b") = 1.0);
  init.def(
      "normal_",
      [in_place](py::object t, double mean, double std) {
        return in_place(t, [&](Tensor& x) { init::normal_(x, mean, std); });
      },
      py::arg("tensor"), py::arg("mean") = 0.0, py::arg("std") = 1.0);
  init.def(
      "constant_",
      [in_place](py::object t, double val) {
        return in_place(t, [&](Tensor& x) { init::constant_(x, val); });
      },
      py::arg("tensor"), py::arg("val"));
  init.def(
      "zeros_",
      [in_place](py::object t) { return in_place(t, [](Tensor& x) { init::zeros_(x); }); },
      py::arg("tensor"));
  init.def(
      "ones_", [in_place](py::object t) { return in_place(t, [](Tensor& x) { init::ones_(x); }); },
      py::arg("tensor"));
  init.def(
      "xavier_uniform_",
      [in_place](py::object t, double gain) {
        return in_place(t, [&](Tensor& x) { init::xavier_uniform_(x, gain); });
      },
      py::arg("tensor"), py::arg("gain") = 1.0);
  init.def(
      "xavier_normal_",
      [in_place](py::object t, double gain) {
        return in_place(t, [&](Tensor& x) { init::xavier_normal_(x, gain); });
      },
      py::arg("tensor"), py::arg("gain") = 1.0);
  init.def(
      "kaiming_uniform_",
      [in_place](py::object t, double a, const std::string& mode, const std::string& nl) {
        return in_place(t, [&](Tensor& x) {
          init::kaiming_uniform_(x, a, parse_fan_mode(mode), parse_nonlinearity(nl));
        });
      },
      py::arg("tensor"), py::arg("a") = 0.0, py::arg("mode") = "fan_in",
      py::arg("nonlinearity") = "leaky_relu");
  init.def(
      "kaiming_normal_",
      [in_place](py::object t, double a, const std::string& mode, const std::string& nl) {
        return in_place(t, [&](Tensor& x) {
          init::kaiming_normal_(x, a, parse_fan_mode(mode), parse_nonlinearity(nl));
        });
      },
      py::arg("tensor"), py::arg("a") = 0.0, py::arg("mode") = "fan_in",
      py::arg("nonlinearity") = "leaky_relu");
}

void bind_utils(py::module_& nn) {
  py::module_ utils = nn.def_submodule("utils", "Gradient clipping (torch.nn.utils)");
  utils.def(
      "clip_grad_norm_",
      [](py::handle params, double max_norm, double norm_type) {
        return variable_of(clip_grad_norm_(parameter_list(params), max_norm, norm_type));
      },
      py::arg("parameters"), py::arg("max_norm"), py::arg("norm_type") = 2.0,
      "Scales the gradients so that their total norm is at most max_norm; returns the "
      "total norm before clipping (a 0-d Tensor, on the gradients' device).");
  utils.def(
      "clip_grad_value_",
      [](py::handle params, double clip_value) {
        clip_grad_value_(parameter_list(params), clip_value);
      },
      py::arg("parameters"), py::arg("clip_value"));
  utils.def(
      "parameters_to_vector",
      [](py::handle params) {
        std::vector<Variable> ps = parameter_list(params);
        std::vector<Tensor> flat;
        for (const Variable& p : ps) flat.push_back(p.data().reshape({p.numel()}));
        return variable_of(cat(flat, 0));
      },
      py::arg("parameters"));
}

// Lets `import nn_cuda.nn.init` find the C++ submodule (the package registers nn_cuda.nn).
void register_import_name(py::module_& sub, const std::string& dotted) {
  py::module_ sys = py::module_::import("sys");
  sys.attr("modules")[py::str("nn_cuda." + dotted)] = sub;
}

}  // namespace

void bind_nn(py::module_& m) {
  py::module_ nn = m.def_submodule("nn", "Modules, layers, losses and initialisers");
  bind_module(nn);
  bind_parameter(nn);
  bind_sequential(nn);
  bind_nn_layers(nn);
  bind_init(nn);
  bind_utils(nn);
  py::module_ init = nn.attr("init");
  py::module_ utils = nn.attr("utils");
  register_import_name(init, "nn.init");
  register_import_name(utils, "nn.utils");
}

}  // namespace nn::python
