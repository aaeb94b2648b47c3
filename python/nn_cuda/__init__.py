"""libnn_cuda from Python: device-resident tensors with autograd, layers, optimizers, data."""
import builtins as _builtins
import functools as _functools
import sys as _sys

from . import _C
from ._C import *  # noqa: F401,F403
from ._C import Tensor, autograd, is_grad_enabled  # noqa: F401

__version__ = getattr(_C, "__version__", "unknown")

# Submodules defined in C++ become importable as nn_cuda.nn, nn_cuda.optim, ...
for _name in ("functional", "nn", "optim", "data", "autograd"):
    if hasattr(_C, _name):
        _sys.modules[__name__ + "." + _name] = getattr(_C, _name)
        globals()[_name] = getattr(_C, _name)


class _GradMode:
    """Base of no_grad / enable_grad / set_grad_enabled: a context manager and a decorator."""

    _mode = True

    def __enter__(self):
        self._previous = _C.is_grad_enabled()
        _C._set_grad_enabled(self._mode)
        return self

    def __exit__(self, *exc):
        _C._set_grad_enabled(self._previous)
        return False

    def __call__(self, func):
        mode = self._mode

        @_functools.wraps(func)
        def wrapper(*args, **kwargs):
            previous = _C.is_grad_enabled()
            _C._set_grad_enabled(mode)
            try:
                return func(*args, **kwargs)
            finally:
                _C._set_grad_enabled(previous)

        return wrapper


class no_grad(_GradMode):
    """Operations inside record no autograd graph: `with nn_cuda.no_grad(): ...` or `@no_grad()`."""

    _mode = False


class enable_grad(_GradMode):
    """Turns recording back on inside a no_grad region."""

    _mode = True


class set_grad_enabled(_GradMode):
    """set_grad_enabled(mode): sets grad mode at once; as a context manager, restores it after."""

    def __init__(self, mode):
        self._mode = _builtins.bool(mode)
        self._previous = _C.is_grad_enabled()
        _C._set_grad_enabled(self._mode)

    def __enter__(self):
        return self


autograd.no_grad = no_grad
autograd.enable_grad = enable_grad
autograd.set_grad_enabled = set_grad_enabled


def _format_values(t):
    import numpy as np

    host = t.detach()
    if host.device.type != "cpu":
        host = host.cpu()
    values = host.numpy()
    opts = dict(precision=4, separator=", ", threshold=1000, edgeitems=3,
                prefix="tensor(", max_line_width=80)
    if values.dtype.kind == "f":
        finite = values[np.isfinite(values)]
        if finite.size and not np.all(finite == np.round(finite)):
            opts["floatmode"] = "fixed"  # PyTorch's 4 decimals, unless all values are integral
    return np.array2string(values, **opts)


def _tensor_repr(self):
    parts = [_format_values(self)]
    if self.numel() == 0 and self.ndim != 1:
        parts.append("size=" + str(tuple(self.shape)))
    if self.dtype not in (float32, int64, bool_):  # noqa: F405 (from _C)
        parts.append("dtype=" + repr(self.dtype))
    if self.device.type != "cpu":
        parts.append("device='" + str(self.device) + "'")
    if self.grad_fn is not None:
        parts.append("grad_fn=<" + self.grad_fn + ">")
    elif self.requires_grad:
        parts.append("requires_grad=True")
    return "tensor(" + ", ".join(parts) + ")"


Tensor.__repr__ = _tensor_repr
for _cls in (Tensor, _C.dtype, _C.device):
    _cls.__module__ = __name__

# `from nn_cuda import *` must not shadow builtins: the dtype aliases (float, double, half,
# long) and the error classes named like builtins stay reachable as nn_cuda.X only.
_SHADOWING = {"float", "double", "half", "long", "IndexError", "ValueError"}
__all__ = sorted(n for n in dir(_C) if not n.startswith("_") and n not in _SHADOWING) + [
    "no_grad", "enable_grad", "set_grad_enabled", "functional", "autograd"]
__all__ = sorted(set(__all__))
