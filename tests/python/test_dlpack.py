"""DLPack both ways between nn_cuda and PyTorch (and NumPy): zero-copy, lifetimes (the producer
deleted first), the capsule protocol (renamed 'used_dltensor', the deleter called exactly once)
and, on CUDA, stream ordering."""
import gc
import sys

import numpy as np
import pytest
import torch
import torch.utils.dlpack as tdl

import nn_cuda

DTYPES = [
    (torch.float32, nn_cuda.float32), (torch.float64, nn_cuda.float64),
    (torch.float16, nn_cuda.float16), (torch.bfloat16, nn_cuda.bfloat16),
    (torch.int64, nn_cuda.int64),
]


def _torch_device(device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA: the CUDA exchange cannot be tested")
    return device


@pytest.mark.parametrize("tdtype,ndtype", DTYPES, ids=[str(d[0]) for d in DTYPES])
def test_torch_to_nn_shares_memory(tdtype, ndtype, device):
    dev = _torch_device(device)
    src = torch.arange(12, device=dev).reshape(3, 4).to(tdtype)
    t = nn_cuda.from_dlpack(src)
    assert t.dtype is ndtype and t.shape == (3, 4) and t.device == nn_cuda.device(dev if dev == "cpu" else "cuda:0")
    assert t.data_ptr() == src.data_ptr()
    src[1, 2] = 100
    assert t[1, 2].item() == 100
    t[0, 0] = 7
    assert src[0, 0].item() == 7


@pytest.mark.parametrize("tdtype,ndtype", DTYPES, ids=[str(d[0]) for d in DTYPES])
def test_nn_to_torch_shares_memory(tdtype, ndtype, device):
    _torch_device(device)
    t = nn_cuda.arange(10, device=device).to(ndtype).reshape(2, 5)
    out = tdl.from_dlpack(t)
    assert out.dtype == tdtype and tuple(out.shape) == (2, 5) and out.data_ptr() == t.data_ptr()
    out[1, 1] = 42
    assert t[1, 1].item() == 42
    t[0, 4] = -3
    assert out[0, 4].item() == -3


def test_strided_views_keep_strides(device):
    dev = _torch_device(device)
    src = torch.arange(24.0, device=dev).reshape(4, 6)[1:, ::2]
    t = nn_cuda.from_dlpack(src)
    assert t.shape == (3, 3) and t.stride() == tuple(src.stride())
    np.testing.assert_array_equal(t.cpu().numpy(), src.cpu().numpy())
    back = tdl.from_dlpack(nn_cuda.arange(12.0, device=device).reshape(3, 4).t())
    assert tuple(back.stride()) == (1, 4)
    np.testing.assert_array_equal(back.cpu().numpy(), np.arange(12.0).reshape(3, 4).T)


def test_producer_deleted_first(device):
    dev = _torch_device(device)
    src = torch.arange(6.0, device=dev) * 2
    t = nn_cuda.from_dlpack(src)
    del src
    gc.collect()
    np.testing.assert_array_equal(t.cpu().numpy(), np.arange(6.0) * 2)
    mine = nn_cuda.arange(5.0, device=device) + 1
    theirs = tdl.from_dlpack(mine)
    del mine
    gc.collect()
    np.testing.assert_array_equal(theirs.cpu().numpy(), np.arange(5.0) + 1)
    t2 = nn_cuda.from_dlpack(theirs)  # a round trip through both libraries
    del theirs
    gc.collect()
    assert t2.sum().item() == 15


def test_legacy_capsules():
    src = torch.ones(3)
    cap = tdl.to_dlpack(src)
    t = nn_cuda.from_dlpack(cap)
    assert t.sum().item() == 3
    with pytest.raises(nn_cuda.ValueError, match="already consumed"):
        nn_cuda.from_dlpack(cap)
    ours = nn_cuda.to_dlpack(nn_cuda.full((2,), 4.0))
    back = tdl.from_dlpack(ours)
    assert back.tolist() == [4.0, 4.0]
    with pytest.raises(RuntimeError):
        tdl.from_dlpack(ours)  # torch refuses a consumed capsule too


def test_deleter_called_exactly_once():
    # NumPy's capsule holds a reference to its array: the count returns to where it was exactly
    # when the producer's deleter has run once.
    a = np.arange(8.0)
    base = sys.getrefcount(a)
    t = nn_cuda.from_dlpack(a)
    assert sys.getrefcount(a) > base
    a[3] = -1
    assert t[3].item() == -1
    del t
    gc.collect()
    assert sys.getrefcount(a) == base
    # Our capsule, never consumed: destroying it releases the tensor (and thus the array).
    b = np.arange(4.0)
    base_b = sys.getrefcount(b)
    tb = nn_cuda.from_numpy(b)
    cap = tb.__dlpack__()
    del tb
    gc.collect()
    assert sys.getrefcount(b) == base_b + 1  # held by the capsule
    del cap
    gc.collect()
    assert sys.getrefcount(b) == base_b
    # Consumed by us: the storage owns it and releases it once.
    c = np.arange(4.0)
    base_c = sys.getrefcount(c)
    u = nn_cuda.from_dlpack(nn_cuda.from_numpy(c))
    assert sys.getrefcount(c) == base_c + 1
    del u
    gc.collect()
    assert sys.getrefcount(c) == base_c


def test_numpy_and_bool():
    t = nn_cuda.arange(5.0)
    a = np.from_dlpack(t)  # NumPy marks DLPack imports read-only
    t[0] = 9
    assert a[0] == 9
    mask = nn_cuda.tensor([True, False, True])
    same = nn_cuda.from_dlpack(mask)  # kDLBool (DLPack >= 0.8) both ways
    assert same.dtype is nn_cuda.bool_ and same.tolist() == [True, False, True]
    assert mask.__dlpack_device__() == (1, 0)


def test_errors():
    with pytest.raises(nn_cuda.ValueError, match="no __dlpack__"):
        nn_cuda.from_dlpack(3)
    with pytest.raises(nn_cuda.DtypeError, match="not supported"):
        nn_cuda.from_dlpack(torch.arange(3, dtype=torch.int32))
    with pytest.raises(nn_cuda.ValueError, match="negative strides"):
        nn_cuda.from_dlpack(np.arange(4.0)[::-1])


@pytest.mark.cuda_only
def test_cuda_stream_ordering(device):
    """Work queued on our stream before the export is visible to the consumer's stream."""
    _torch_device(device)
    big = nn_cuda.randn(2048, 2048, device=device)
    prod = big @ big  # long-running: still in flight when exported
    expected = prod.sum().item()
    y = big @ big
    theirs = tdl.from_dlpack(y)  # torch passes its current stream: ordered after our matmul
    assert abs(theirs.double().sum().item() - expected) <= 1e-3 * abs(expected) + 1e-2
    src = torch.randn(1024, 1024, device="cuda")
    z = src @ src
    ours = nn_cuda.from_dlpack(z)  # we pass our stream; torch orders its matmul before it
    assert abs(ours.double().sum().item() - z.double().sum().item()) < 1e-2 * z.abs().sum().item()
