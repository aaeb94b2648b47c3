// Tensor factories: tensor, as_tensor, zeros, ones, full, empty, arange, linspace, eye, rand,
// randn, randint, *_like, and the joining ops cat, stack, where. Each takes dtype=, device=
// and requires_grad= keywords (dtype: an nn_cuda.dtype, a NumPy dtype or a name; device: an
// nn_cuda.device or a string).
#include <cmath>

#include "python/tensor_parts.h"

namespace nn::python {

namespace {

TensorOptions options(std::optional<DtypeArg> dtype, std::optional<DeviceArg> device,
                      Dtype fallback = Dtype::Float32) {
  TensorOptions o;
  o.dtype = dtype ? dtype->value : fallback;
  o.device = device ? device->value : Device::cpu();
  return o;
}

Variable leaf(Tensor t, bool requires_grad) { return Variable(std::move(t), requires_grad); }

std::vector<Variable> variable_list(py::handle seq, const char* what) {
  std::vector<Variable> xs;
  if (!py::isinstance<py::iterable>(seq) || py::isinstance<Variable>(seq))
    throw py::type_error(std::string(what) + ": expected a sequence of Tensors");
  for (py::handle h : py::reinterpret_borrow<py::iterable>(seq)) {
    if (!py::isinstance<Variable>(h))
      throw py::type_error(std::string(what) + ": expected Tensors, got " +
                           std::string(py::repr(h)));
    xs.push_back(h.cast<Variable>());
  }
  return xs;
}

Variable where_op(const Variable& cond, py::handle a, py::handle b) {
  // Scalars take the dtype and device of the tensor operand (float32 on cond's device if none).
  Dtype dt = Dtype::Float32;
  if (py::isinstance<Variable>(a))
    dt = a.cast<const Variable&>().dtype();
  else if (py::isinstance<Variable>(b))
    dt = b.cast<const Variable&>().dtype();
  auto as_var = [&](py::handle h) {
    if (py::isinstance<Variable>(h)) return h.cast<Variable>();
    return Variable(full({}, h.cast<double>(), {dt, cond.device()}));
  };
  return nn::where(cond.data(), as_var(a), as_var(b));
}

bool all_ints(std::initializer_list<py::handle> values) {
  for (py::handle h : values)
    if (!h.is_none() && !(PyIndex_Check(h.ptr()) && !PyBool_Check(h.ptr()))) return false;
  return true;
}

}  // namespace

void bind_tensor_factories(py::module_& m) {
  using ODt = std::optional<DtypeArg>;
  using ODev = std::optional<DeviceArg>;
  auto dtype_kw = py::arg("dtype") = py::none();
  auto device_kw = py::arg("device") = py::none();
  auto grad_kw = py::arg("requires_grad") = false;

  m.def(
      "tensor",
      [](py::handle data, ODt dtype, ODev device, bool requires_grad) {
        std::optional<Dtype> dt;
        std::optional<Device> dev;
        if (dtype) dt = dtype->value;
        if (device) dev = device->value;
        return leaf(tensor_from_data(data, dt, dev), requires_grad);
      },
      py::arg("data"), py::kw_only(), dtype_kw, device_kw, grad_kw,
      "A new tensor copying data (nested lists, scalars, NumPy arrays).");
  m.def(
      "as_tensor",
      [](py::handle data, ODt dtype, ODev device) -> Variable {
        if (py::isinstance<Variable>(data)) {
          Variable v = data.cast<Variable>();
          if (dtype) v = nn::to(v, dtype->value);
          if (device) v = nn::to(v, device->value);
          return v;
        }
        if (py::isinstance<py::array>(data) && (!device || device->value.is_cpu())) {
          auto arr = py::reinterpret_borrow<py::array>(data);
          char k = arr.dtype().kind();
          auto sz = arr.dtype().itemsize();
          bool supported = (k == 'f' && (sz == 2 || sz == 4 || sz == 8)) || (k == 'i' && sz == 8) ||
                           (k == 'b' && sz == 1);
          bool aligned = true;
          for (py::ssize_t d = 0; d < arr.ndim(); ++d)
            aligned = aligned && arr.strides(d) >= 0 && arr.strides(d) % sz == 0;
          if (supported && aligned) {
            Tensor t = tensor_from_numpy(arr);
            if (dtype && dtype->value != t.dtype()) t = t.to(dtype->value);
            return Variable(t);
          }
        }
        std::optional<Dtype> dt;
        std::optional<Device> dev;
        if (dtype) dt = dtype->value;
        if (device) dev = device->value;
        return Variable(tensor_from_data(data, dt, dev));
      },
      py::arg("data"), py::kw_only(), dtype_kw, device_kw,
      "A tensor over data without a copy where possible (Tensors, CPU NumPy arrays).");

  auto shaped = [&](const char* name, auto make, const char* doc) {
    m.def(
        name,
        [make](py::args shape, ODt dtype, ODev device, bool requires_grad) {
          return leaf(make(shape_from_args(shape), options(dtype, device)), requires_grad);
        },
        py::kw_only(), dtype_kw, device_kw, grad_kw, doc);
  };
  shaped(
      "zeros", [](const Shape& s, TensorOptions o) { return nn::zeros(s, o); }, "zeros(*shape)");
  shaped(
      "ones", [](const Shape& s, TensorOptions o) { return nn::ones(s, o); }, "ones(*shape)");
  shaped(
      "empty", [](const Shape& s, TensorOptions o) { return nn::empty(s, o); }, "empty(*shape)");
  shaped(
      "rand", [](const Shape& s, TensorOptions o) { return nn::rand(s, o); },
      "rand(*shape): uniform in [0, 1)");
  shaped(
      "randn", [](const Shape& s, TensorOptions o) { return nn::randn(s, o); },
      "randn(*shape): standard normal");
  m.def(
      "full",
      [](py::handle shape, double value, ODt dtype, ODev device, bool requires_grad) {
        return leaf(nn::full(shape_from(shape), value, options(dtype, device)), requires_grad);
      },
      py::arg("size"), py::arg("fill_value"), py::kw_only(), dtype_kw, device_kw, grad_kw);
  m.def(
      "arange",
      [](py::handle start, py::handle end, py::handle step, ODt dtype, ODev device,
         bool requires_grad) {
        double s = start.cast<double>(), e = 0, st = step.cast<double>();
        if (end.is_none()) {
          e = s;
          s = 0;
        } else {
          e = end.cast<double>();
        }
        Dtype fallback = all_ints({start, end, step}) ? Dtype::Int64 : Dtype::Float32;
        return leaf(nn::arange(s, e, st, options(dtype, device, fallback)), requires_grad);
      },
      py::arg("start"), py::arg("end") = py::none(), py::arg("step") = 1, py::kw_only(), dtype_kw,
      device_kw, grad_kw);
  m.def(
      "linspace",
      [](double start, double end, int64_t steps, ODt dtype, ODev device, bool requires_grad) {
        NN_CHECK(steps >= 0, ValueError, "linspace: steps must be >= 0, got ", steps);
        std::vector<double> v(static_cast<size_t>(steps));
        for (int64_t i = 0; i < steps; ++i)
          v[size_t(i)] = steps == 1 ? start : start + (end - start) * double(i) / double(steps - 1);
        TensorOptions o = options(dtype, device);
        Tensor t = from_vector<double>(v, {steps}, {o.dtype}).to(o.device);
        return leaf(t, requires_grad);
      },
      py::arg("start"), py::arg("end"), py::arg("steps"), py::kw_only(), dtype_kw, device_kw,
      grad_kw);
  m.def(
      "eye",
      [](int64_t n, std::optional<int64_t> cols, ODt dtype, ODev device, bool requires_grad) {
        int64_t c = cols.value_or(n);
        NN_CHECK(n >= 0 && c >= 0, ValueError, "eye: sizes must be >= 0, got ", n, " x ", c);
        std::vector<double> v(size_t(n * c), 0.0);
        for (int64_t i = 0; i < std::min(n, c); ++i) v[size_t(i * c + i)] = 1.0;
        TensorOptions o = options(dtype, device);
        return leaf(from_vector<double>(v, {n, c}, {o.dtype}).to(o.device), requires_grad);
      },
      py::arg("n"), py::arg("m") = py::none(), py::kw_only(), dtype_kw, device_kw, grad_kw);
  m.def(
      "randint",
      [](int64_t low, py::handle high, py::handle size, ODt dtype, ODev device,
         bool requires_grad) {
        int64_t lo = low, hi = 0;
        if (size.is_none()) {  // randint(high, size)
          size = high;
          hi = lo;
          lo = 0;
        } else {
          hi = high.cast<int64_t>();
        }
        NN_CHECK(hi > lo, ValueError, "randint: expects low < high, got low ", lo, ", high ", hi);
        Shape shape = shape_from(size);
        // Uniform doubles from the seeded generator, mapped to [low, high) on the host.
        std::vector<double> u = nn::rand(shape, {Dtype::Float64}).to_vector<double>();
        std::vector<int64_t> v(u.size());
        for (size_t i = 0; i < u.size(); ++i)
          v[i] = std::min(hi - 1, lo + int64_t(std::floor(u[i] * double(hi - lo))));
        TensorOptions o = options(dtype, device, Dtype::Int64);
        return leaf(from_vector<int64_t>(v, shape, {o.dtype}).to(o.device), requires_grad);
      },
      py::arg("low"), py::arg("high"), py::arg("size") = py::none(), py::kw_only(), dtype_kw,
      device_kw, grad_kw, "randint(low, high, size) or randint(high, size): int64 in [low, high)");

  auto like = [&](const char* name, auto make) {
    m.def(
        name,
        [make](const Variable& x, ODt dtype, ODev device, bool requires_grad) {
          TensorOptions o{dtype ? dtype->value : x.dtype(), device ? device->value : x.device()};
          return leaf(make(x.shape(), o), requires_grad);
        },
        py::arg("input"), py::kw_only(), dtype_kw, device_kw, grad_kw);
  };
  like("zeros_like", [](const Shape& s, TensorOptions o) { return nn::zeros(s, o); });
  like("ones_like", [](const Shape& s, TensorOptions o) { return nn::ones(s, o); });
  like("empty_like", [](const Shape& s, TensorOptions o) { return nn::empty(s, o); });
  like("rand_like", [](const Shape& s, TensorOptions o) { return nn::rand(s, o); });
  like("randn_like", [](const Shape& s, TensorOptions o) { return nn::randn(s, o); });
  m.def(
      "full_like",
      [](const Variable& x, double value, ODt dtype, ODev device, bool requires_grad) {
        TensorOptions o{dtype ? dtype->value : x.dtype(), device ? device->value : x.device()};
        return leaf(nn::full(x.shape(), value, o), requires_grad);
      },
      py::arg("input"), py::arg("fill_value"), py::kw_only(), dtype_kw, device_kw, grad_kw);

  m.def(
      "cat", [](py::handle xs, int64_t dim) { return nn::cat(variable_list(xs, "cat"), dim); },
      py::arg("tensors"), py::arg("dim") = 0);
  m.def(
      "stack",
      [](py::handle xs, int64_t dim) { return nn::stack(variable_list(xs, "stack"), dim); },
      py::arg("tensors"), py::arg("dim") = 0);
  m.def("where", &where_op, py::arg("condition"), py::arg("input"), py::arg("other"));
}

}  // namespace nn::python
