// nn::Error -> Python exceptions. nn_cuda.Error derives from Exception; each subclass derives
// from (nn_cuda.Error, the matching builtin), so `except nn_cuda.Error`, `except ValueError` and
// `except nn_cuda.ShapeError` all catch a ShapeError. The message is the C++ what() unchanged.
#include <exception>

#include "python/bind.h"

namespace nn::python {

namespace {

struct ErrorClasses {
  PyObject* error = nullptr;
  PyObject* shape = nullptr;
  PyObject* dtype = nullptr;
  PyObject* device = nullptr;
  PyObject* index = nullptr;
  PyObject* value = nullptr;
  PyObject* oom = nullptr;
  PyObject* io = nullptr;
  PyObject* cuda = nullptr;
};

ErrorClasses& classes() {
  static ErrorClasses c;  // the module holds the references; these stay valid while it lives
  return c;
}

PyObject* new_class(py::module_& m, const char* name, PyObject* base, PyObject* builtin,
                    const char* doc) {
  std::string qualified = std::string("nn_cuda.") + name;
  py::object bases = builtin ? py::object(py::make_tuple(py::handle(base), py::handle(builtin)))
                             : py::object(py::reinterpret_borrow<py::object>(base));
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::handle(cls));  // steals nothing: add_object increments
  return cls;
}

}  // namespace

void bind_errors(py::module_& m) {
  ErrorClasses& c = classes();
  c.error =
      new_class(m, "Error", PyExc_Exception, nullptr, "Base of every error raised by libnn_cuda.");
  c.shape = new_class(m, "ShapeError", c.error, PyExc_ValueError, "Shapes do not agree.");
  c.dtype =
      new_class(m, "DtypeError", c.error, PyExc_TypeError, "An unsupported or mismatched dtype.");
  c.device = new_class(m, "DeviceError", c.error, PyExc_RuntimeError,
                       "Wrong or mixed devices, no GPU, or a build without CUDA.");
  c.index = new_class(m, "IndexError", c.error, PyExc_IndexError,
                      "An index, dimension or view range out of bounds.");
  c.value = new_class(m, "ValueError", c.error, PyExc_ValueError, "A bad argument value.");
  c.oom = new_class(m, "OutOfMemoryError", c.error, PyExc_MemoryError,
                    "An allocation failed even after freeing caches.");
  c.io = new_class(m, "IoError", c.error, PyExc_OSError, "A missing, truncated or corrupt file.");
  c.cuda = new_class(m, "CudaError", c.error, PyExc_RuntimeError,
                     "A CUDA runtime, cuBLAS or cuDNN call failed.");

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    const ErrorClasses& k = classes();
    try {
      std::rethrow_exception(p);
    } catch (const nn::ShapeError& e) {
      PyErr_SetString(k.shape, e.what());
    } catch (const nn::DtypeError& e) {
      PyErr_SetString(k.dtype, e.what());
    } catch (const nn::DeviceError& e) {
      PyErr_SetString(k.device, e.what());
    } catch (const nn::IndexError& e) {
      PyErr_SetString(k.index, e.what());
    } catch (const nn::ValueError& e) {
      PyErr_SetString(k.value, e.what());
    } catch (const nn::OutOfMemoryError& e) {
      PyErr_SetString(k.oom, e.what());
    } catch (const nn::IoError& e) {
      PyErr_SetString(k.io, e.what());
    } catch (const nn::CudaError& e) {
      PyErr_SetString(k.cuda, e.what());
    } catch (const nn::Error& e) {
      PyErr_SetString(k.error, e.what());
    }
  });
}

}  // namespace nn::python
