// Placeholder: filled in by the Python-bindings work (issue 6).
#include "python/bind.h"

namespace nn::python {

void bind_tensor(py::module_& /*m*/) {}

}  // namespace nn::python
