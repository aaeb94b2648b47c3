// NumPy interoperability without copies: from_numpy shares the array's memory (the tensor keeps
// the array alive), numpy()/__array__ of a CPU tensor is a view keeping the tensor's storage
// alive, and the buffer protocol exposes CPU tensors to memoryview and numpy.asarray.
#include <cstring>
#include <memory>

#include "python/tensor_parts.h"

namespace nn::python {

void run_with_gil(const std::function<void()>& release) {
#if PY_VERSION_HEX >= 0x030D0000
  bool finalizing = Py_IsFinalizing();
#else
  bool finalizing = _Py_IsFinalizing();
#endif
  if (!Py_IsInitialized() || finalizing) return;  // the interpreter is going: leak, never crash
  py::gil_scoped_acquire gil;
  release();
}

namespace {

// NumPy dtype of a tensor dtype (bfloat16 has none: numpy() converts it to float32).
py::dtype numpy_dtype(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return py::dtype::of<float>();
    case Dtype::Float64:
      return py::dtype::of<double>();
    case Dtype::Float16:
      return py::dtype("float16");
    case Dtype::Int64:
      return py::dtype::of<int64_t>();
    case Dtype::Bool:
      return py::dtype::of<bool>();
    case Dtype::BFloat16:
      break;
  }
  return py::dtype::of<float>();
}

// The buffer-protocol format character of a dtype, or null when it has none (bfloat16).
const char* buffer_format(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return "f";
    case Dtype::Float64:
      return "d";
    case Dtype::Float16:
      return "e";
    case Dtype::Int64:
      return "q";
    case Dtype::Bool:
      return "?";
    case Dtype::BFloat16:
      break;
  }
  return nullptr;
}

Dtype dtype_of_numpy(const py::dtype& dt) {
  char kind = dt.kind();
  auto size = dt.itemsize();
  if (!py::bool_(dt.attr("isnative")))
    NN_THROW(DtypeError, "from_numpy: byte-swapped arrays are not supported, got dtype ",
             std::string(py::str(py::handle(dt))));
  if (kind == 'f' && size == 4) return Dtype::Float32;
  if (kind == 'f' && size == 8) return Dtype::Float64;
  if (kind == 'f' && size == 2) return Dtype::Float16;
  if (kind == 'i' && size == 8) return Dtype::Int64;
  if (kind == 'b' && size == 1) return Dtype::Bool;
  NN_THROW(DtypeError, "from_numpy: NumPy dtype ", std::string(py::str(py::handle(dt))),
           " is not supported, expected float32, float64, float16, int64 or bool");
}

// Holds the producer of external memory (a NumPy array) for as long as a Storage views it.
std::shared_ptr<Storage> storage_owning(void* data, size_t nbytes, py::object owner) {
  PyObject* raw = owner.release().ptr();
  return std::make_shared<Storage>(data, nbytes, Device::cpu(),
                                   [raw](void*) { run_with_gil([raw] { Py_DECREF(raw); }); });
}

// State of one exported buffer: shape, strides and format live as long as the view.
struct BufferState {
  std::shared_ptr<Storage> storage;
  std::vector<Py_ssize_t> shape, strides;
  std::string format;
};

extern "C" int tensor_getbuffer(PyObject* obj, Py_buffer* view, int flags) {
  view->obj = nullptr;
  try {
    const Variable& v = py::handle(obj).cast<const Variable&>();
    const Tensor& t = v.data();
    if (!t.device().is_cpu()) {
      PyErr_SetString(PyExc_BufferError, ("buffer: the tensor is on " + t.device().str() +
                                          ", only CPU tensors export a buffer; call .cpu() first")
                                             .c_str());
      return -1;
    }
    const char* fmt = buffer_format(t.dtype());
    if (!fmt) {
      PyErr_SetString(PyExc_BufferError,
                      "buffer: bfloat16 has no buffer format; use .numpy() (a float32 copy)");
      return -1;
    }
    bool c_contig = t.is_contiguous();
    if ((flags & PyBUF_STRIDES) != PyBUF_STRIDES && !c_contig) {
      PyErr_SetString(PyExc_BufferError,
                      "buffer: the tensor is not contiguous and the consumer "
                      "asked for no strides; call .contiguous() first");
      return -1;
    }
    if ((flags & PyBUF_C_CONTIGUOUS) == PyBUF_C_CONTIGUOUS && !c_contig) {
      PyErr_SetString(PyExc_BufferError, "buffer: the tensor is not C-contiguous");
      return -1;
    }
    if (((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS ||
         (flags & PyBUF_ANY_CONTIGUOUS) == PyBUF_ANY_CONTIGUOUS) &&
        !c_contig) {
      PyErr_SetString(PyExc_BufferError, "buffer: the tensor is not contiguous");
      return -1;
    }
    auto state = std::make_unique<BufferState>();
    state->storage = t.storage();
    state->format = fmt;
    for (int64_t d = 0; d < t.dim(); ++d) {
      state->shape.push_back(Py_ssize_t(t.shape()[size_t(d)]));
      state->strides.push_back(Py_ssize_t(t.strides()[size_t(d)] * int64_t(t.itemsize())));
    }
    view->buf = t.numel() > 0 ? t.data_ptr() : nullptr;
    view->itemsize = Py_ssize_t(t.itemsize());
    view->len = Py_ssize_t(t.nbytes());
    view->readonly = 0;
    view->ndim = int(t.dim());
    view->format = (flags & PyBUF_FORMAT) ? state->format.data() : nullptr;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND ? state->shape.data() : nullptr;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? state->strides.data() : nullptr;
    view->suboffsets = nullptr;
    view->internal = state.release();
    view->obj = obj;
    Py_INCREF(obj);
    return 0;
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_BufferError, e.what());
    return -1;
  }
}

extern "C" void tensor_releasebuffer(PyObject*, Py_buffer* view) {
  delete static_cast<BufferState*>(view->internal);
  view->internal = nullptr;
}

}  // namespace

Tensor tensor_from_numpy(const py::array& array) {
  Dtype dtype = dtype_of_numpy(array.dtype());
  auto itemsize = int64_t(array.itemsize());
  Shape shape, strides;
  int64_t extent = 0;  // bytes from the first element to the end of the last
  bool empty = false;
  for (py::ssize_t d = 0; d < array.ndim(); ++d) {
    int64_t n = int64_t(array.shape(d)), st = int64_t(array.strides(d));
    NN_CHECK(st >= 0, ValueError, "from_numpy: negative strides are not supported (dimension ", d,
             " has stride ", st, " bytes); pass a copy (numpy.ascontiguousarray)");
    NN_CHECK(st % itemsize == 0, ValueError, "from_numpy: stride ", st, " bytes of dimension ", d,
             " is not a multiple of the item size ", itemsize);
    shape.push_back(n);
    strides.push_back(st / itemsize);
    if (n == 0) empty = true;
    extent += (n - 1) * st;
  }
  size_t nbytes = empty ? 0 : size_t(extent + itemsize);
  void* data = const_cast<void*>(array.data());
  auto storage = storage_owning(data, nbytes, py::reinterpret_borrow<py::object>(array));
  return Tensor(std::move(storage), shape, strides, 0, dtype);
}

py::array tensor_to_numpy(const Tensor& tensor) {
  NN_CHECK(tensor.device().is_cpu(), DeviceError, "numpy: the tensor is on ", tensor.device().str(),
           "; call .cpu() first to copy it to the host");
  Tensor t = tensor.dtype() == Dtype::BFloat16 ? tensor.to(Dtype::Float32) : tensor;
  std::vector<py::ssize_t> shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d) {
    shape.push_back(t.shape()[size_t(d)]);
    strides.push_back(t.strides()[size_t(d)] * int64_t(t.itemsize()));
  }
  if (t.numel() == 0) return py::array(numpy_dtype(t.dtype()), shape);
  auto* holder = new std::shared_ptr<Storage>(t.storage());
  py::capsule base(holder, [](void* p) { delete static_cast<std::shared_ptr<Storage>*>(p); });
  return py::array(numpy_dtype(t.dtype()), shape, strides, t.data_ptr(), base);
}

Tensor tensor_from_data(py::handle data, std::optional<Dtype> dtype, std::optional<Device> device) {
  if (py::isinstance<Variable>(data)) {
    Tensor src = data.cast<const Variable&>().data();
    Tensor out = src.clone();
    if (dtype) out = out.to(*dtype);
    if (device) out = out.to(*device);
    return out;
  }
  py::module_ np = py::module_::import("numpy");
  // NumPy arrays and scalars keep their dtype; Python floats become float32.
  bool was_array = py::isinstance<py::array>(data) || py::isinstance(data, np.attr("generic"));
  py::array arr = np.attr("array")(data);  // always a copy
  std::string kind(1, arr.dtype().kind());
  if (kind == "O" || kind == "U" || kind == "S")
    throw py::type_error("tensor: cannot make a tensor of " + std::string(py::repr(data)) +
                         "; expected numbers, nested sequences of numbers or an array");
  Dtype target;
  if (dtype) {
    target = *dtype;
  } else if (kind == "f") {
    target = (arr.dtype().itemsize() == 8 && !was_array) ? Dtype::Float32
             : arr.dtype().itemsize() == 2               ? Dtype::Float16
             : arr.dtype().itemsize() == 4               ? Dtype::Float32
                                                         : Dtype::Float64;
  } else if (kind == "i" || kind == "u") {
    target = Dtype::Int64;
  } else if (kind == "b") {
    target = Dtype::Bool;
  } else {
    throw py::type_error("tensor: NumPy dtype " + std::string(py::str(py::handle(arr.dtype()))) +
                         " is not supported");
  }
  // Convert in NumPy to a dtype it has, then (bfloat16 only) in C++.
  Dtype host_dtype = target == Dtype::BFloat16 ? Dtype::Float32 : target;
  py::array host = arr.attr("astype")(numpy_dtype(host_dtype), py::arg("order") = "C");
  Tensor out = empty(shape_from(host.attr("shape")), {host_dtype});
  if (out.nbytes() > 0) std::memcpy(out.data_ptr(), host.data(), out.nbytes());
  if (host_dtype != target) out = out.to(target);
  if (device && !device->is_cpu()) out = out.to(*device);
  return out;
}

void bind_tensor_numpy(py::module_& m, TensorClass& cls) {
  // Our own buffer functions: they honour the consumer's contiguity flags and never throw
  // across the C boundary.
  auto* heap = reinterpret_cast<PyHeapTypeObject*>(cls.ptr());
  heap->as_buffer.bf_getbuffer = tensor_getbuffer;
  heap->as_buffer.bf_releasebuffer = tensor_releasebuffer;
  reinterpret_cast<PyTypeObject*>(cls.ptr())->tp_as_buffer = &heap->as_buffer;

  cls.def(
      "numpy", [](const Variable& v) { return tensor_to_numpy(v.data()); },
      "A NumPy view of a CPU tensor (no copy; bfloat16 converts to a float32 copy).");
  cls.def(
      "__array__",
      [](const Variable& v, py::handle dtype) -> py::object {
        py::array a = tensor_to_numpy(v.data());
        if (dtype.is_none()) return a;
        return a.attr("astype")(dtype);
      },
      py::arg("dtype") = py::none());
  cls.def("tolist", [](const Variable& v) {
    Tensor host = v.data().to(Device::cpu());
    return tensor_to_numpy(host).attr("tolist")();
  });

  m.def(
      "from_numpy",
      [](py::handle obj) {
        if (!py::isinstance<py::array>(obj))
          throw py::type_error("from_numpy: expected a numpy.ndarray, got " +
                               std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
        return Variable(tensor_from_numpy(py::reinterpret_borrow<py::array>(obj)));
      },
      py::arg("array"),
      "A CPU tensor sharing the array's memory (writes through either are seen by the other).");
}

}  // namespace nn::python
