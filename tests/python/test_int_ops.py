"""int64 and bool tensors against PyTorch: comparisons, integer arithmetic, sums and arg-reductions
(the accuracy idiom `(logits.argmax(1) == labels).sum()`), exact beyond 2**53, and the errors where
nn_cuda refuses what PyTorch would silently promote."""
import numpy as np
import pytest
import torch

import nn_cuda
from conftest import from_torch, to_torch

COMPARISONS = ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"]


def _ints(rng, shape, lo=-4, hi=5):
    return torch.from_numpy(rng.integers(lo, hi, size=shape).astype(np.int64))


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1))])
def test_comparisons_match_torch(device, rng, op, shapes):
    a, b = _ints(rng, shapes[0]), _ints(rng, shapes[1])
    got = getattr(from_torch(a, device), op)(from_torch(b, device))
    want = getattr(a, op)(b)
    assert got.dtype is nn_cuda.bool_
    np.testing.assert_array_equal(to_torch(got).numpy(), want.numpy())
    got_scalar = getattr(from_torch(a, device), op)(2)
    np.testing.assert_array_equal(to_torch(got_scalar).numpy(), getattr(a, op)(2).numpy())


@pytest.mark.parametrize("op", ["__add__", "__sub__", "__mul__", "__neg__", "__abs__"])
def test_int64_arithmetic_matches_torch(device, rng, op):
    a, b = _ints(rng, (5, 3), -1000, 1000), _ints(rng, (3,), -1000, 1000)
    x = from_torch(a, device)
    unary = op in ("__neg__", "__abs__")
    got = getattr(x, op)() if unary else getattr(x, op)(from_torch(b, device))
    want = getattr(a, op)() if unary else getattr(a, op)(b)
    assert got.dtype is nn_cuda.int64
    np.testing.assert_array_equal(to_torch(got).numpy(), want.numpy())


def test_sums_and_arg_reductions_match_torch(device, rng):
    a = _ints(rng, (6, 7))
    x = from_torch(a, device)
    for dim in (None, 0, 1):
        got = x.sum() if dim is None else x.sum(dim)
        want = a.sum() if dim is None else a.sum(dim)
        assert got.dtype is nn_cuda.int64
        np.testing.assert_array_equal(to_torch(got).numpy(), want.numpy())
    np.testing.assert_array_equal(to_torch(x.argmax(1)).numpy(), a.argmax(1).numpy())
    mask = from_torch(a > 0, device)
    assert mask.sum().item() == int((a > 0).sum())
    assert mask.sum().dtype is nn_cuda.int64


def test_accuracy_idiom(device, rng):
    logits = torch.from_numpy(rng.standard_normal((64, 10)).astype(np.float32))
    labels = _ints(rng, (64,), 0, 10)
    got = (from_torch(logits, device).argmax(1) == from_torch(labels, device)).sum().item()
    assert got == int((logits.argmax(1) == labels).sum())


def test_exact_beyond_two_pow_53(device):
    big = 2**53
    x = nn_cuda.tensor([big, 1], device=device)
    assert x.dtype is nn_cuda.int64
    assert x.sum().item() == big + 1
    assert (x + 1).tolist() == [big + 1, 2]


def test_refusals_name_the_dtypes(device):
    i = nn_cuda.tensor([1, 2, 3], device=device)
    f = nn_cuda.tensor([1.0, 2.0, 3.0], device=device)
    with pytest.raises(nn_cuda.DtypeError, match="int64"):
        i + f
    with pytest.raises(nn_cuda.DtypeError, match="int64"):
        i.float().mean() + i.mean()
    with pytest.raises(nn_cuda.DtypeError):
        i / i
