"""libnn_cuda from Python: device-resident tensors with autograd, layers, optimizers, data."""
import sys as _sys

from . import _C
from ._C import *  # noqa: F401,F403

# Submodules defined in C++ become importable as nn_cuda.nn, nn_cuda.optim, ...
for _name in ("functional", "nn", "optim", "data"):
    if hasattr(_C, _name):
        _sys.modules[__name__ + "." + _name] = getattr(_C, _name)
        globals()[_name] = getattr(_C, _name)
