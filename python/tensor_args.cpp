// Conversions of Python arguments shared by every binding file (declared in python/bind.h).
#include <pybind11/numpy.h>

#include <algorithm>

#include "python/bind.h"

namespace nn::python {

namespace {

constexpr int kDtypeCount = 6;

std::array<PyObject*, kDtypeCount>& dtype_objects() {
  static std::array<PyObject*, kDtypeCount> objs{};  // owned references, kept for the process
  return objs;
}

[[noreturn]] void bad_type(const char* what, py::handle obj, const char* expected) {
  throw py::type_error(std::string(what) + ": expected " + expected + ", got " +
                       std::string(py::str(py::type::handle_of(obj).attr("__name__"))) + " " +
                       std::string(py::repr(obj)));
}

}  // namespace

py::object dtype_object(Dtype d) {
  auto& objs = dtype_objects();
  PyObject*& slot = objs[size_t(d)];
  if (!slot) slot = py::cast(d).release().ptr();
  return py::reinterpret_borrow<py::object>(slot);
}

bool is_dtype_like(py::handle obj) {
  if (py::isinstance<Dtype>(obj) || py::isinstance<py::dtype>(obj)) return true;
  if (py::isinstance<py::str>(obj)) {
    // A device string such as "cpu" or "cuda:1" is not a dtype; any other string is taken for
    // one, so a misspelt name gets to_dtype's "unknown dtype" error.
    try {
      to_device(obj);
      return false;
    } catch (const Error&) {
      return true;
    }
  }
  // NumPy scalar types (np.float32) and Python's float/int/bool as dtypes, as torch accepts.
  if (PyType_Check(obj.ptr())) {
    py::object generic = py::module_::import("numpy").attr("generic");
    return PyObject_IsSubclass(obj.ptr(), generic.ptr()) == 1 ||
           obj.ptr() == reinterpret_cast<PyObject*>(&PyFloat_Type) ||
           obj.ptr() == reinterpret_cast<PyObject*>(&PyLong_Type) ||
           obj.ptr() == reinterpret_cast<PyObject*>(&PyBool_Type);
  }
  return false;
}

Dtype to_dtype(py::handle obj) {
  if (py::isinstance<Dtype>(obj)) return obj.cast<Dtype>();
  if (py::isinstance<py::str>(obj)) {
    std::string name = obj.cast<std::string>();
    if (name == "bool_") name = "bool";
    return parse_dtype(name);
  }
  if (obj.ptr() == reinterpret_cast<PyObject*>(&PyFloat_Type)) return Dtype::Float32;
  if (obj.ptr() == reinterpret_cast<PyObject*>(&PyLong_Type)) return Dtype::Int64;
  if (obj.ptr() == reinterpret_cast<PyObject*>(&PyBool_Type)) return Dtype::Bool;
  if (is_dtype_like(obj)) {
    py::dtype dt = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
    std::string name = py::str(dt.attr("name"));
    if (name == "float32" || name == "float64" || name == "float16" || name == "int64" ||
        name == "bool")
      return parse_dtype(name);
    NN_THROW(DtypeError, "dtype: NumPy dtype ", name,
             " has no nn_cuda equivalent, expected float32, float64, float16, int64 or bool");
  }
  bad_type("dtype", obj, "an nn_cuda.dtype, a NumPy dtype or a dtype name such as 'float32'");
}

Device to_device(py::handle obj) {
  if (py::isinstance<Device>(obj)) return obj.cast<Device>();
  if (py::isinstance<py::str>(obj)) return Device::parse(obj.cast<std::string>());
  if (PyLong_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
    int64_t index = obj.cast<int64_t>();
    NN_CHECK(index >= 0, ValueError, "device: a CUDA device index must be >= 0, got ", index);
    return Device::cuda(int(index));
  }
  bad_type("device", obj, "an nn_cuda.device, a string such as 'cpu' or 'cuda:0', or an int");
}

namespace {
int64_t int_from(py::handle obj, const char* what) {
  // Accepts Python ints and objects with __index__ (NumPy integers), not floats or bools.
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr())) bad_type(what, obj, "an int");
  return py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr())).cast<int64_t>();
}
}  // namespace

Shape shape_from(py::handle obj) {
  if (PyIndex_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) return {int_from(obj, "shape")};
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    bad_type("shape", obj, "an int or a sequence of ints");
  Shape s;
  for (py::handle item : py::reinterpret_borrow<py::sequence>(obj)) {
    if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr()))
      bad_type("shape", item, "a sequence of ints");
    s.push_back(int_from(item, "shape"));
  }
  return s;
}

Shape shape_from_args(const py::args& args) {
  if (args.size() == 1 && !PyIndex_Check(args[0].ptr())) return shape_from(args[0]);
  Shape s;
  for (py::handle item : args) s.push_back(int_from(item, "shape"));
  return s;
}

std::vector<int64_t> dims_from(py::handle obj) {
  if (obj.is_none()) return {};
  return shape_from(obj);
}

std::array<int64_t, 2> pair_from(py::handle obj, const char* what) {
  if (PyIndex_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
    int64_t v = int_from(obj, what);
    return {v, v};
  }
  Shape s = shape_from(obj);
  if (s.size() != 2)
    throw py::value_error(std::string(what) + ": expected an int or a pair of ints, got " +
                          std::to_string(s.size()) + " values");
  return {s[0], s[1]};
}

std::string path_string(py::handle path) {
  return py::module_::import("os").attr("fspath")(path).cast<std::string>();
}

Tensor tensor_from(py::handle value) {
  if (py::isinstance<Variable>(value)) return value.cast<const Variable&>().data();
  py::object as_tensor = py::module_::import("nn_cuda").attr("as_tensor");
  return as_tensor(value).cast<const Variable&>().data();
}

std::vector<Variable> split_sizes(const Variable& x, py::handle sizes, int64_t dim) {
  if (PyIndex_Check(sizes.ptr())) {
    int64_t each = sizes.cast<int64_t>();
    NN_CHECK(each > 0, ValueError, "split: split_size must be positive, got ", each);
    std::vector<int64_t> parts;
    for (int64_t left = x.size(dim); left > 0; left -= each) parts.push_back(std::min(each, left));
    return nn::split(x, parts, dim);
  }
  return nn::split(x, shape_from(sizes), dim);
}

}  // namespace nn::python
