"""Shared fixtures for the nn_cuda Python tests (pytest, run with Debian's /usr/bin/python3).

Run from the repository root after building the module:
    PYTHONPATH=<build>/python /usr/bin/python3 -m pytest -q tests/python

Fixtures and helpers every test file may use:
  - `device`: parametrised over "cpu" and "cuda"; the CUDA case skips with a reason when
    nn_cuda.cuda_is_available() is false. Mark a test with `pytest.mark.cpu_only` or
    `pytest.mark.cuda_only` to keep one device.
  - `rng`: a seeded numpy.random.Generator (seed 1234), fresh per test; also seeds nn_cuda.
  - `tol(dtype)`: (rtol, atol) per dtype name for comparisons with PyTorch.
  - `to_torch(t)`, `from_torch(t, device=..., requires_grad=...)`: nn_cuda <-> torch through
    NumPy (copies; bfloat16 through float32).
  - `assert_close(actual, expected, dtype=...)`: compares nn_cuda tensors, torch tensors or arrays.
  - FLOAT_DTYPES / CPU_HALF_DTYPES: the dtype names to parametrise numeric tests over.
"""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="these tests compare with PyTorch (Debian: python3-torch)")
try:
    import nn_cuda
except ImportError:  # test files importing it fail at collection; test_pip_install needs none
    nn_cuda = None

FLOAT_DTYPES = ["float32", "float64"]
CPU_HALF_DTYPES = ["bfloat16", "float16"]

_TOLERANCES = {  # (rtol, atol) against PyTorch's float64-accurate reference
    "float64": (1e-10, 1e-12),
    "float32": (2e-5, 1e-5),
    "float16": (5e-3, 5e-3),
    "bfloat16": (3e-2, 3e-2),
    "int64": (0, 0),
    "bool": (0, 0),
}

_TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "bool": torch.bool,
}


def dtype_name(dtype):
    """The name ('float32', ...) of an nn_cuda dtype, a torch dtype, a NumPy dtype or a name."""
    if isinstance(dtype, str):
        return "bool" if dtype == "bool_" else dtype
    if nn_cuda is not None and isinstance(dtype, nn_cuda.dtype):
        return dtype.name
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    return np.dtype(dtype).name


def tol(dtype):
    """(rtol, atol) for comparing results of `dtype` with PyTorch."""
    return _TOLERANCES[dtype_name(dtype)]


def torch_dtype(dtype):
    return _TORCH_DTYPES[dtype_name(dtype)]


def to_torch(t, requires_grad=False):
    """A torch CPU tensor with a copy of an nn_cuda tensor's values (same dtype)."""
    name = t.dtype.name
    host = t.detach().cpu()
    if name == "bfloat16":
        out = torch.from_numpy(np.array(host.float().numpy())).to(torch.bfloat16)
    else:
        out = torch.from_numpy(np.array(host.numpy()))
    return out.requires_grad_(requires_grad) if requires_grad else out


def from_torch(t, device="cpu", requires_grad=False):
    """An nn_cuda tensor with a copy of a torch tensor's values (same dtype) on `device`."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        out = nn_cuda.tensor(t.float().numpy(), dtype=nn_cuda.bfloat16, device=device)
    else:
        out = nn_cuda.tensor(t.numpy(), device=device)
    if requires_grad:
        out.requires_grad_(True)
    return out


def _as_numpy(x):
    if isinstance(x, nn_cuda.Tensor):
        x = x.detach().cpu()
        return x.float().numpy() if x.dtype.name in ("bfloat16",) else x.numpy()
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
    return np.asarray(x)


def assert_close(actual, expected, dtype=None, rtol=None, atol=None, msg=""):
    """Element-wise |a - e| <= atol + rtol |e| with the tolerances of `dtype` (default: actual's)."""
    a = _as_numpy(actual)
    e = _as_numpy(expected)
    if dtype is None:
        dtype = actual.dtype if isinstance(actual, (nn_cuda.Tensor, torch.Tensor)) else a.dtype
    r, t = tol(dtype)
    r = r if rtol is None else rtol
    t = t if atol is None else atol
    assert a.shape == e.shape, f"{msg} shape {a.shape} != expected {e.shape}"
    np.testing.assert_allclose(a.astype(np.float64) if a.dtype != np.bool_ else a,
                               e.astype(np.float64) if e.dtype != np.bool_ else e,
                               rtol=r, atol=t, err_msg=msg)


def cuda_available():
    return nn_cuda.cuda_is_available()


def pytest_configure(config):
    config.addinivalue_line("markers", "cpu_only: run the test on the CPU device only")
    config.addinivalue_line("markers", "cuda_only: run the test on the CUDA device only (skips without one)")
    config.addinivalue_line("markers", "slow: a test that takes more than a few seconds")


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devices = ["cpu", "cuda"]
        if metafunc.definition.get_closest_marker("cpu_only"):
            devices = ["cpu"]
        elif metafunc.definition.get_closest_marker("cuda_only"):
            devices = ["cuda"]
        metafunc.parametrize("device", devices, indirect=True)


@pytest.fixture
def device(request):
    """'cpu' or 'cuda' (skipped with a reason when no GPU is usable)."""
    if request.param == "cuda" and not nn_cuda.cuda_is_available():
        reason = ("nn_cuda was built without CUDA" if not nn_cuda.built_with_cuda()
                  else "no usable CUDA device")
        pytest.skip(f"CUDA case skipped: {reason}")
    return request.param


@pytest.fixture
def rng():
    """A seeded NumPy generator; also seeds nn_cuda's default generator."""
    nn_cuda.manual_seed(1234)
    torch.manual_seed(1234)
    return np.random.default_rng(1234)


# Make the helpers importable from test files as `from conftest import ...`.
sys.path.insert(0, os.path.dirname(__file__))
