// Tensor operators (with Tensors and Python scalars on either side), math and view methods,
// in-place updates and indexing. Everything differentiable goes through graph/functions.h;
// comparisons and in-place updates act on the values only (no autograd), as in PyTorch.
#include "python/tensor_parts.h"

namespace nn::python {

namespace {

// A 0-d constant of x's dtype and device: the other operand of `2 / t`, `2 ** t`.
Variable scalar_like(double value, const Variable& x) {
  return Variable(full({}, value, {x.dtype(), x.device()}));
}

Tensor comparison(BinaryOp op, const Variable& a, py::handle b) {
  if (py::isinstance<Variable>(b)) return binary(op, a.data(), b.cast<const Variable&>().data());
  return binary(op, a.data(), b.cast<double>());
}

// ---- indexing ---------------------------------------------------------------------------------

// Applies an index (int, slice, None, Ellipsis or a tuple of them) through `ops`, which is either
// the differentiable Variable forms or the plain Tensor forms (for __setitem__).
template <class T, class Ops>
T apply_index(const T& x, py::handle index, const Ops& ops) {
  std::vector<py::handle> items;
  if (py::isinstance<py::tuple>(index)) {
    for (py::handle h : py::reinterpret_borrow<py::tuple>(index)) items.push_back(h);
  } else {
    items.push_back(index);
  }
  int64_t consumed = 0;  // dimensions of x the index names
  bool has_ellipsis = false;
  for (py::handle h : items) {
    if (h.ptr() == Py_Ellipsis) {
      if (has_ellipsis) throw py::index_error("index: an index can only have one ellipsis (...)");
      has_ellipsis = true;
    } else if (!h.is_none()) {
      ++consumed;
    }
  }
  int64_t rank = ops.dim(x);
  if (consumed > rank)
    throw py::index_error("index: too many indices for a tensor of dimension " +
                          std::to_string(rank) + " (got " + std::to_string(consumed) + ")");
  T out = x;
  int64_t d = 0;  // the current dimension of `out`
  for (py::handle h : items) {
    if (h.ptr() == Py_Ellipsis) {
      d += rank - consumed;
    } else if (h.is_none()) {
      out = ops.unsqueeze(out, d);
      ++d;
    } else if (PySlice_Check(h.ptr())) {
      int64_t n = ops.size(out, d);
      py::ssize_t start, stop, step, length;
      if (!py::reinterpret_borrow<py::slice>(h).compute(n, &start, &stop, &step, &length))
        throw py::error_already_set();
      if (step <= 0)
        throw py::value_error("index: slice steps must be positive, got " + std::to_string(step));
      int64_t end = length > 0 ? start + (length - 1) * step + 1 : start;
      if (start != 0 || end != n || step != 1) out = ops.slice(out, d, start, end, step);
      ++d;
    } else if (PyIndex_Check(h.ptr()) && !PyBool_Check(h.ptr())) {
      int64_t i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr())).cast<int64_t>();
      int64_t n = ops.size(out, d);
      if (i < -n || i >= n)
        throw py::index_error("index " + std::to_string(i) + " is out of bounds for dimension " +
                              std::to_string(d) + " with size " + std::to_string(n));
      out = ops.select(out, d, i < 0 ? i + n : i);
    } else {
      throw py::type_error("index: expected ints, slices, None, ... or a tuple of them, got " +
                           std::string(py::repr(h)));
    }
  }
  return out;
}

struct VariableIndexOps {
  int64_t dim(const Variable& x) const { return x.dim(); }
  int64_t size(const Variable& x, int64_t d) const { return x.size(d); }
  Variable unsqueeze(const Variable& x, int64_t d) const { return nn::unsqueeze(x, d); }
  Variable slice(const Variable& x, int64_t d, int64_t s, int64_t e, int64_t st) const {
    return nn::slice(x, d, s, e, st);
  }
  Variable select(const Variable& x, int64_t d, int64_t i) const { return nn::select(x, d, i); }
};

struct TensorIndexOps {
  int64_t dim(const Tensor& x) const { return x.dim(); }
  int64_t size(const Tensor& x, int64_t d) const { return x.size(d); }
  Tensor unsqueeze(const Tensor& x, int64_t d) const { return x.unsqueeze(d); }
  Tensor slice(const Tensor& x, int64_t d, int64_t s, int64_t e, int64_t st) const {
    return x.slice(d, s, e, st);
  }
  Tensor select(const Tensor& x, int64_t d, int64_t i) const { return x.select(d, i); }
};

void set_item(Variable& v, py::handle index, py::handle value) {
  Tensor target = apply_index(v.data(), index, TensorIndexOps{});
  if (py::isinstance<Variable>(value)) {
    target.copy_(value.cast<const Variable&>().data());
  } else if (py::isinstance<py::float_>(value) || PyIndex_Check(value.ptr())) {
    fill_(target, value.cast<double>());
  } else {
    target.copy_(tensor_from_data(value, v.dtype(), v.device()));
  }
}

// ---- shapes -----------------------------------------------------------------------------------

Variable squeeze_all(const Variable& x) {
  Variable out = x;
  for (int64_t d = x.dim() - 1; d >= 0; --d)
    if (x.size(d) == 1) out = nn::squeeze(out, d);
  return out;
}

py::object max_min(const Variable& x, py::handle dim, bool keepdim, bool is_max) {
  if (dim.is_none()) return py::cast(is_max ? nn::amax(x) : nn::amin(x));
  auto [values, indices] =
      is_max ? nn::max(x, dim.cast<int64_t>(), keepdim) : nn::min(x, dim.cast<int64_t>(), keepdim);
  return py::make_tuple(values, Variable(indices));
}

// Methods returning self after an in-place update of the values (not recorded by autograd).
template <class F>
auto inplace(F f) {
  return [f](py::object self, py::args args) {
    Variable& v = self.cast<Variable&>();
    f(v.data(), args);
    return self;
  };
}

}  // namespace

void bind_tensor_ops(py::module_& /*m*/, TensorClass& cls) {
  using V = const Variable&;
  // Arithmetic: Tensor (op) Tensor and Tensor (op) scalar, reflected forms for scalar (op) Tensor.
  cls.def(
         "__add__", [](V a, V b) { return a + b; }, py::is_operator())
      .def(
          "__add__", [](V a, double b) { return a + b; }, py::is_operator())
      .def(
          "__radd__", [](V a, double b) { return b + a; }, py::is_operator())
      .def(
          "__sub__", [](V a, V b) { return a - b; }, py::is_operator())
      .def(
          "__sub__", [](V a, double b) { return a - b; }, py::is_operator())
      .def(
          "__rsub__", [](V a, double b) { return rsub(b, a); }, py::is_operator())
      .def(
          "__mul__", [](V a, V b) { return a * b; }, py::is_operator())
      .def(
          "__mul__", [](V a, double b) { return a * b; }, py::is_operator())
      .def(
          "__rmul__", [](V a, double b) { return b * a; }, py::is_operator())
      .def(
          "__truediv__", [](V a, V b) { return a / b; }, py::is_operator())
      .def(
          "__truediv__", [](V a, double b) { return a / b; }, py::is_operator())
      .def(
          "__rtruediv__", [](V a, double b) { return div(scalar_like(b, a), a); },
          py::is_operator())
      .def(
          "__pow__", [](V a, V b) { return nn::pow(a, b); }, py::is_operator())
      .def(
          "__pow__", [](V a, double b) { return nn::pow(a, b); }, py::is_operator())
      .def(
          "__rpow__", [](V a, double b) { return nn::pow(scalar_like(b, a), a); },
          py::is_operator())
      .def(
          "__matmul__", [](V a, V b) { return nn::matmul(a, b); }, py::is_operator())
      .def("__neg__", [](V a) { return -a; })
      .def("__pos__", [](V a) { return a; })
      .def("__abs__", [](V a) { return nn::abs(a); });
  // Augmented assignment: in place on the values when no graph is being recorded for this
  // tensor (the common `acc += x` on plain tensors and views), else a new recorded result, so
  // gradients stay correct.
  const std::pair<const char*, BinaryOp> augmented[] = {{"__iadd__", BinaryOp::Add},
                                                        {"__isub__", BinaryOp::Sub},
                                                        {"__imul__", BinaryOp::Mul},
                                                        {"__itruediv__", BinaryOp::Div}};
  for (auto [name, op] : augmented) {
    cls.def(
        name,
        [op](py::object self, py::handle other) -> py::object {
          Variable& v = self.cast<Variable&>();
          bool is_tensor = py::isinstance<Variable>(other);
          if (!is_tensor && !py::isinstance<py::float_>(other) && !PyIndex_Check(other.ptr()))
            return py::reinterpret_borrow<py::object>(Py_NotImplemented);
          bool record =
              grad_enabled() &&
              (v.requires_grad() || (is_tensor && other.cast<const Variable&>().requires_grad()));
          if (record) {
            Variable b = is_tensor ? other.cast<Variable>() : scalar_like(other.cast<double>(), v);
            return py::cast(nn::binary(op, v, b));
          }
          Tensor& a = v.data();
          if (is_tensor)
            binary_(op, a, other.cast<const Variable&>().data());
          else
            binary_(op, a, full({}, other.cast<double>(), {a.dtype(), a.device()}));
          return self;
        },
        py::is_operator());
  }
  // Comparisons give bool tensors; comparing with anything else is NotImplemented.
  const std::pair<const char*, BinaryOp> cmps[] = {
      {"__eq__", BinaryOp::Eq}, {"__ne__", BinaryOp::Ne}, {"__lt__", BinaryOp::Lt},
      {"__le__", BinaryOp::Le}, {"__gt__", BinaryOp::Gt}, {"__ge__", BinaryOp::Ge}};
  for (auto [name, op] : cmps) {
    cls.def(
        name, [op](V a, V b) { return Variable(comparison(op, a, py::cast(b))); },
        py::is_operator());
    cls.def(
        name, [op](V a, double b) { return Variable(binary(op, a.data(), b)); }, py::is_operator());
  }
  // pybind11 drops __hash__ when __eq__ is defined: hash by identity of the shared state.
  cls.attr("__hash__") =
      py::cpp_function([](V v) { return reinterpret_cast<uintptr_t>(v.id()); }, py::is_method(cls));

  // Named forms of the operators.
  cls.def("add", [](V a, V b) { return a + b; })
      .def("add", [](V a, double b) { return a + b; })
      .def("sub", [](V a, V b) { return a - b; })
      .def("sub", [](V a, double b) { return a - b; })
      .def("mul", [](V a, V b) { return a * b; })
      .def("mul", [](V a, double b) { return a * b; })
      .def("div", [](V a, V b) { return a / b; })
      .def("div", [](V a, double b) { return a / b; })
      .def("pow", [](V a, V b) { return nn::pow(a, b); })
      .def(
          "pow", [](V a, double e) { return nn::pow(a, e); }, py::arg("exponent"))
      .def("matmul", [](V a, V b) { return nn::matmul(a, b); })
      .def("maximum", [](V a, V b) { return nn::maximum(a, b); })
      .def("minimum", [](V a, V b) { return nn::minimum(a, b); })
      .def("eq", [](V a, py::handle b) { return Variable(comparison(BinaryOp::Eq, a, b)); })
      .def("ne", [](V a, py::handle b) { return Variable(comparison(BinaryOp::Ne, a, b)); })
      .def("lt", [](V a, py::handle b) { return Variable(comparison(BinaryOp::Lt, a, b)); })
      .def("le", [](V a, py::handle b) { return Variable(comparison(BinaryOp::Le, a, b)); })
      .def("gt", [](V a, py::handle b) { return Variable(comparison(BinaryOp::Gt, a, b)); })
      .def("ge", [](V a, py::handle b) { return Variable(comparison(BinaryOp::Ge, a, b)); });

  // Elementwise math and activations.
  cls.def("neg", [](V x) { return nn::neg(x); })
      .def("exp", [](V x) { return nn::exp(x); })
      .def("log", [](V x) { return nn::log(x); })
      .def("sqrt", [](V x) { return nn::sqrt(x); })
      .def("rsqrt", [](V x) { return nn::rsqrt(x); })
      .def("abs", [](V x) { return nn::abs(x); })
      .def("sign", [](V x) { return Variable(nn::sign(x.data())); })
      .def("relu", [](V x) { return nn::relu(x); })
      .def("sigmoid", [](V x) { return nn::sigmoid(x); })
      .def("tanh", [](V x) { return nn::tanh(x); })
      .def(
          "clamp",
          [](V x, std::optional<double> lo, std::optional<double> hi) {
            return nn::clamp(x, lo.value_or(-std::numeric_limits<double>::infinity()),
                             hi.value_or(std::numeric_limits<double>::infinity()));
          },
          py::arg("min") = py::none(), py::arg("max") = py::none())
      .def(
          "softmax", [](V x, int64_t dim) { return nn::softmax(x, dim); }, py::arg("dim"))
      .def(
          "log_softmax", [](V x, int64_t dim) { return nn::log_softmax(x, dim); }, py::arg("dim"));

  // Reductions.
  cls.def(
         "sum",
         [](V x, py::handle dim, bool keepdim) { return nn::sum(x, dims_from(dim), keepdim); },
         py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "mean",
          [](V x, py::handle dim, bool keepdim) { return nn::mean(x, dims_from(dim), keepdim); },
          py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "amax",
          [](V x, py::handle dim, bool keepdim) { return nn::amax(x, dims_from(dim), keepdim); },
          py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "amin",
          [](V x, py::handle dim, bool keepdim) { return nn::amin(x, dims_from(dim), keepdim); },
          py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "var",
          [](V x, py::handle dim, int64_t correction, bool keepdim, py::handle unbiased) {
            if (!unbiased.is_none()) correction = unbiased.cast<bool>() ? 1 : 0;
            return nn::var(x, dims_from(dim), correction, keepdim);
          },
          py::arg("dim") = py::none(), py::kw_only(), py::arg("correction") = 1,
          py::arg("keepdim") = false, py::arg("unbiased") = py::none())
      .def(
          "std",
          [](V x, py::handle dim, int64_t correction, bool keepdim) {
            return nn::sqrt(nn::var(x, dims_from(dim), correction, keepdim));
          },
          py::arg("dim") = py::none(), py::kw_only(), py::arg("correction") = 1,
          py::arg("keepdim") = false)
      .def(
          "max", [](V x, py::handle dim, bool keepdim) { return max_min(x, dim, keepdim, true); },
          py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "min", [](V x, py::handle dim, bool keepdim) { return max_min(x, dim, keepdim, false); },
          py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "argmax",
          [](V x, py::handle dim, bool keepdim) {
            if (dim.is_none()) return Variable(nn::argmax(x.data()));
            return Variable(nn::argmax(x.data(), dim.cast<int64_t>(), keepdim));
          },
          py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def(
          "argmin",
          [](V x, py::handle dim, bool keepdim) {
            if (dim.is_none()) {
              Tensor flat = x.data().reshape({-1});
              return Variable(nn::argmin(flat, 0, false));
            }
            return Variable(nn::argmin(x.data(), dim.cast<int64_t>(), keepdim));
          },
          py::arg("dim") = py::none(), py::arg("keepdim") = false);

  // Views and shapes (differentiable).
  cls.def("reshape", [](V x, py::args shape) { return nn::reshape(x, shape_from_args(shape)); })
      .def("view", [](V x, py::args shape) { return nn::view(x, shape_from_args(shape)); })
      .def("expand", [](V x, py::args shape) { return nn::expand(x, shape_from_args(shape)); })
      .def("expand_as", [](V x, V o) { return nn::expand(x, o.shape()); })
      .def("view_as", [](V x, V o) { return nn::view(x, o.shape()); })
      .def("reshape_as", [](V x, V o) { return nn::reshape(x, o.shape()); })
      .def("permute", [](V x, py::args dims) { return nn::permute(x, shape_from_args(dims)); })
      .def(
          "flatten", [](V x, int64_t s, int64_t e) { return nn::flatten(x, s, e); },
          py::arg("start_dim") = 0, py::arg("end_dim") = -1)
      .def("transpose", [](V x, int64_t a, int64_t b) { return nn::transpose(x, a, b); })
      .def("t",
           [](V x) {
             NN_CHECK(x.dim() <= 2, ShapeError, "t: expects a tensor of at most 2 dimensions, got ",
                      shape_str(x.shape()));
             return x.dim() < 2 ? x : nn::transpose(x, 0, 1);
           })
      .def(
          "squeeze",
          [](V x, py::handle dim) {
            return dim.is_none() ? squeeze_all(x) : nn::squeeze(x, dim.cast<int64_t>());
          },
          py::arg("dim") = py::none())
      .def(
          "unsqueeze", [](V x, int64_t d) { return nn::unsqueeze(x, d); }, py::arg("dim"))
      .def(
          "narrow", [](V x, int64_t d, int64_t s, int64_t n) { return nn::narrow(x, d, s, n); },
          py::arg("dim"), py::arg("start"), py::arg("length"))
      .def("select", [](V x, int64_t d, int64_t i) { return nn::select(x, d, i); })
      .def(
          "chunk", [](V x, int64_t n, int64_t d) { return nn::chunk(x, n, d); }, py::arg("chunks"),
          py::arg("dim") = 0)
      .def(
          "split",
          &split_sizes,
          py::arg("split_size_or_sections"), py::arg("dim") = 0);

  // In-place updates of the values (not recorded by autograd).
  cls.def("add_", inplace([](Tensor& t, const py::args& a) {
            double alpha = a.size() > 1 ? a[1].cast<double>() : 1.0;
            Tensor o =
                py::isinstance<Variable>(a[0]) ? a[0].cast<const Variable&>().data() : Tensor();
            if (o.defined())
              add_(t, alpha == 1.0 ? o : nn::mul(o, alpha));
            else
              add_(t, a[0].cast<double>() * alpha);
          }))
      .def("sub_", inplace([](Tensor& t, const py::args& a) {
             if (py::isinstance<Variable>(a[0]))
               sub_(t, a[0].cast<const Variable&>().data());
             else
               add_(t, -a[0].cast<double>());
           }))
      .def("mul_", inplace([](Tensor& t, const py::args& a) {
             if (py::isinstance<Variable>(a[0]))
               mul_(t, a[0].cast<const Variable&>().data());
             else
               mul_(t, a[0].cast<double>());
           }))
      .def("div_", inplace([](Tensor& t, const py::args& a) {
             if (py::isinstance<Variable>(a[0]))
               div_(t, a[0].cast<const Variable&>().data());
             else
               mul_(t, 1.0 / a[0].cast<double>());
           }))
      .def("zero_", inplace([](Tensor& t, const py::args&) { fill_(t, 0.0); }))
      .def("fill_", inplace([](Tensor& t, const py::args& a) { fill_(t, a[0].cast<double>()); }))
      .def("copy_", inplace([](Tensor& t, const py::args& a) {
             t.copy_(a[0].cast<const Variable&>().data());
           }))
      .def("clamp_", inplace([](Tensor& t, const py::args& a) {
             double inf = std::numeric_limits<double>::infinity();
             double lo = a.size() > 0 && !a[0].is_none() ? a[0].cast<double>() : -inf;
             double hi = a.size() > 1 && !a[1].is_none() ? a[1].cast<double>() : inf;
             clamp_(t, lo, hi);
           }))
      .def("uniform_", inplace([](Tensor& t, const py::args& a) {
             uniform_(t, a.size() > 0 ? a[0].cast<double>() : 0.0,
                      a.size() > 1 ? a[1].cast<double>() : 1.0);
           }))
      .def("normal_", inplace([](Tensor& t, const py::args& a) {
             normal_(t, a.size() > 0 ? a[0].cast<double>() : 0.0,
                     a.size() > 1 ? a[1].cast<double>() : 1.0);
           }));

  // Indexing (views, differentiable) and assignment into views (values only).
  cls.def("__getitem__",
          [](V x, py::handle index) { return apply_index(x, index, VariableIndexOps{}); })
      .def("__setitem__",
           [](Variable& v, py::handle index, py::handle value) { set_item(v, index, value); })
      .def("__iter__", [](py::object self) {
        const Variable& v = self.cast<const Variable&>();
        if (v.dim() == 0) throw py::type_error("iteration over a 0-d tensor");
        py::list parts;
        for (int64_t i = 0; i < v.size(0); ++i) parts.append(nn::select(v, 0, i));
        return py::iter(parts);
      });
}

}  // namespace nn::python
