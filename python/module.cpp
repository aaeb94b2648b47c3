// The nn_cuda Python extension (imported as nn_cuda._C by python/nn_cuda/__init__.py).
#include "python/bind.h"

PYBIND11_MODULE(_C, m) {
  using namespace nn::python;
  m.doc() = "libnn_cuda: tensors, autograd, layers, optimizers and data loading (C++/CUDA)";
  bind_errors(m);
  bind_tensor(m);
  bind_functional(m);
  bind_nn(m);
  bind_optim(m);
  bind_data(m);
  bind_io(m);
}
