"""nn_cuda.Tensor: NumPy without copies, factories, indexing views and their gradients, errors,
repr, len/iter, grad mode and autograd.grad, compared with NumPy and PyTorch."""
import gc
import sys

import numpy as np
import pytest
import torch

import nn_cuda
from conftest import assert_close, from_torch, to_torch


# ---- dtypes and devices ------------------------------------------------------------------------

def test_dtype_objects():
    assert repr(nn_cuda.float32) == "nn_cuda.float32"
    assert repr(nn_cuda.bool_) == "nn_cuda.bool_"
    t = nn_cuda.zeros(2)
    assert t.dtype is nn_cuda.float32
    assert nn_cuda.float64 == "float64" and nn_cuda.float64 == np.float64
    assert nn_cuda.float32 != nn_cuda.float64
    assert nn_cuda.float32 != "no-such-dtype" and nn_cuda.float32 != 3
    assert {nn_cuda.float32: 1}[nn_cuda.float32] == 1
    for name in ["float32", "float64", "bfloat16", "float16", "int64", "bool"]:
        assert nn_cuda.zeros(2, dtype=name).dtype.name == name
    assert nn_cuda.zeros(2, dtype=np.float64).dtype is nn_cuda.float64
    assert nn_cuda.zeros(2, dtype=np.dtype("int64")).dtype is nn_cuda.int64
    with pytest.raises(TypeError, match="int32 has no nn_cuda equivalent"):
        nn_cuda.zeros(2, dtype=np.int32)
    with pytest.raises(nn_cuda.DtypeError, match="unknown dtype 'float8'"):
        nn_cuda.zeros(2, dtype="float8")


def test_device_objects():
    d = nn_cuda.device("cuda:1")
    assert str(d) == "cuda:1" and d.type == "cuda" and d.index == 1
    assert repr(nn_cuda.device("cpu")) == "device(type='cpu')"
    assert nn_cuda.device("cpu") == "cpu" and nn_cuda.device("cpu") != "gpu"
    assert nn_cuda.zeros(1).device == nn_cuda.device("cpu")
    with pytest.raises(nn_cuda.ValueError):
        nn_cuda.device("gpu")
    with pytest.raises(TypeError, match="device"):
        nn_cuda.zeros(2, device=1.5)
    assert isinstance(nn_cuda.cuda_device_count(), int)
    if not nn_cuda.cuda_is_available():
        with pytest.raises(nn_cuda.DeviceError):
            nn_cuda.zeros(2, device="cuda")


# ---- NumPy: no copies ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "bool"])
def test_from_numpy_shares_memory(dtype):
    a = (np.arange(12) % 3).astype(dtype).reshape(3, 4)
    t = nn_cuda.from_numpy(a)
    assert t.dtype.name == dtype and t.shape == (3, 4)
    a[1, 2] = 1
    assert t[1, 2].item() == 1
    t[0, 0] = 1  # writes through the tensor are seen by the array
    assert a[0, 0] == 1
    np.testing.assert_array_equal(t.numpy(), a)


def test_from_numpy_keeps_array_alive():
    a = np.arange(6.0).reshape(2, 3)
    before = sys.getrefcount(a)
    t = nn_cuda.from_numpy(a)
    assert sys.getrefcount(a) == before + 1
    del t
    gc.collect()
    assert sys.getrefcount(a) == before  # released exactly once
    t = nn_cuda.from_numpy(np.arange(6.0))
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), np.arange(6.0))


def test_from_numpy_non_contiguous_keeps_strides():
    a = np.arange(24.0).reshape(4, 6)
    view = a[1:, ::2]
    t = nn_cuda.from_numpy(view)
    assert t.shape == (3, 3) and t.stride() == (6, 2) and not t.is_contiguous()
    np.testing.assert_array_equal(t.numpy(), view)
    a[2, 2] = -1
    assert t[1, 1].item() == -1
    tt = nn_cuda.from_numpy(a.T)
    assert tt.stride() == (1, 6)
    np.testing.assert_array_equal((tt * 1).numpy(), a.T)


def test_from_numpy_errors():
    with pytest.raises(nn_cuda.ValueError, match="negative strides"):
        nn_cuda.from_numpy(np.arange(4.0)[::-1])
    with pytest.raises(nn_cuda.DtypeError, match="int32 is not supported"):
        nn_cuda.from_numpy(np.arange(4, dtype=np.int32))
    with pytest.raises(TypeError, match="expected a numpy.ndarray"):
        nn_cuda.from_numpy([1.0, 2.0])


def test_numpy_is_a_view_keeping_storage_alive():
    t = nn_cuda.arange(6.0).reshape(2, 3)
    a = t.numpy()
    a[0, 1] = 42
    assert t[0, 1].item() == 42
    t[1, 2] = 7
    assert a[1, 2] == 7
    v = t.transpose(0, 1).numpy()
    assert v.shape == (3, 2) and v[1, 0] == 42
    del t
    gc.collect()
    assert a[0, 1] == 42 and v[2, 1] == 7  # the arrays keep the storage alive


def test_numpy_bfloat16_converts_and_cuda_refuses(device):
    t = nn_cuda.tensor([1.5, -2.0], dtype=nn_cuda.bfloat16)
    a = t.numpy()
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, [1.5, -2.0])
    if device == "cuda":
        with pytest.raises(nn_cuda.DeviceError, match=r"call \.cpu\(\) first"):
            nn_cuda.zeros(2, device=device).numpy()


def test_buffer_protocol_and_asarray_share_memory():
    t = nn_cuda.zeros(2, 3)
    m = memoryview(t)
    assert m.shape == (2, 3) and m.format == "f" and not m.readonly
    a = np.asarray(t)
    a[1, 1] = 5
    assert t[1, 1].item() == 5
    # non-contiguous: strided buffer
    s = np.asarray(t.t())
    assert s.shape == (3, 2) and s[1, 1] == 5
    assert np.shares_memory(s, a)
    np.testing.assert_array_equal(np.array(nn_cuda.tensor([[1, 2]]), dtype=np.float64), [[1.0, 2.0]])
    with pytest.raises(BufferError, match="bfloat16"):
        memoryview(nn_cuda.zeros(2, dtype=nn_cuda.bfloat16))
    assert np.frombuffer(t, dtype=np.float32).shape == (6,)  # a simple (flat) export
    with pytest.raises(BufferError, match="contiguous"):
        np.frombuffer(t.t(), dtype=np.float32)


def test_tensor_copies_and_infers_dtypes():
    a = np.arange(3.0)
    t = nn_cuda.tensor(a)
    a[0] = 9
    assert t[0].item() == 0 and t.dtype is nn_cuda.float64
    assert nn_cuda.tensor([1.0, 2.0]).dtype is nn_cuda.float32
    assert nn_cuda.tensor([1, 2]).dtype is nn_cuda.int64
    assert nn_cuda.tensor([True]).dtype is nn_cuda.bool_
    assert nn_cuda.tensor(3.5).shape == () and nn_cuda.tensor(3.5).item() == 3.5
    assert nn_cuda.tensor([[1, 2]], dtype="float64").dtype is nn_cuda.float64
    assert nn_cuda.tensor([0.1], dtype=nn_cuda.bfloat16).dtype is nn_cuda.bfloat16
    assert nn_cuda.tensor([1.0], requires_grad=True).requires_grad
    src = nn_cuda.ones(2)
    c = nn_cuda.tensor(src)
    c.fill_(3)
    assert src[0].item() == 1
    with pytest.raises(TypeError, match="cannot make a tensor"):
        nn_cuda.tensor(["a", "b"])
    with pytest.raises(TypeError):
        nn_cuda.tensor(object())


def test_as_tensor_shares_when_it_can():
    a = np.ones(3)
    t = nn_cuda.as_tensor(a)
    a[0] = 4
    assert t[0].item() == 4
    c = nn_cuda.as_tensor([1.0, 2.0])
    assert c.dtype is nn_cuda.float32
    x = nn_cuda.ones(2)
    assert nn_cuda.as_tensor(x).is_same(x)


def test_tolist_item():
    t = nn_cuda.tensor([[1.5, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert isinstance(nn_cuda.tensor([3]).item(), int)
    assert nn_cuda.tensor([2**62 + 1]).item() == 2**62 + 1
    assert nn_cuda.tensor(True).item() is True
    assert float(nn_cuda.tensor([2.5])) == 2.5 and int(nn_cuda.tensor([7])) == 7
    with pytest.raises(nn_cuda.ValueError, match="expected exactly one"):
        t.item()
    with pytest.raises(nn_cuda.ValueError, match="ambiguous"):
        bool(t)


# ---- factories -----------------------------------------------------------------------------------

def test_factories(device, rng):
    z = nn_cuda.zeros(2, 3, device=device)
    assert z.shape == (2, 3) and z.device == nn_cuda.device(device) and not z.requires_grad
    assert nn_cuda.zeros((2, 3)).shape == (2, 3) and nn_cuda.zeros([4]).shape == (4,)
    assert nn_cuda.ones(2, dtype=nn_cuda.float64, device=device).sum().item() == 2
    assert nn_cuda.full((2, 2), 1.5, device=device).tolist() == [[1.5, 1.5], [1.5, 1.5]]
    assert nn_cuda.empty(3, 1).shape == (3, 1)
    assert nn_cuda.arange(5).dtype is nn_cuda.int64
    assert nn_cuda.arange(5).tolist() == list(range(5))
    assert nn_cuda.arange(1, 2, 0.25).tolist() == [1.0, 1.25, 1.5, 1.75]
    assert_close(nn_cuda.linspace(-1, 1, 5), torch.linspace(-1, 1, 5))
    assert_close(nn_cuda.eye(3, 4, dtype="float64"), torch.eye(3, 4, dtype=torch.float64))
    r = nn_cuda.rand(1000, device=device)
    assert 0 <= r.amin().item() and r.amax().item() < 1 and abs(r.mean().item() - 0.5) < 0.05
    n = nn_cuda.randn(2000, dtype="float64", device=device)
    assert abs(n.mean().item()) < 0.1 and abs(n.var().item() - 1) < 0.1
    ri = nn_cuda.randint(3, 7, (500,), device=device)
    assert ri.dtype is nn_cuda.int64 and set(ri.cpu().numpy().tolist()) == {3, 4, 5, 6}
    assert nn_cuda.randint(5, (3,)).shape == (3,)
    x = nn_cuda.ones(2, 3, dtype="float64", device=device)
    assert nn_cuda.zeros_like(x).dtype is nn_cuda.float64
    assert nn_cuda.ones_like(x, dtype="float32").dtype is nn_cuda.float32
    assert nn_cuda.randn_like(x).shape == (2, 3)
    assert nn_cuda.full_like(x, 2).sum().item() == 12
    nn_cuda.manual_seed(7)
    a = nn_cuda.randn(5)
    nn_cuda.manual_seed(7)
    assert nn_cuda.randn(5).tolist() == a.tolist()
    p = nn_cuda.zeros(3, requires_grad=True)
    assert p.requires_grad and p.is_leaf and p.grad is None and p.grad_fn is None


def test_factory_bad_arguments():
    with pytest.raises(TypeError, match="shape"):
        nn_cuda.zeros("a")
    with pytest.raises(TypeError, match="an int"):
        nn_cuda.zeros(2.5)
    with pytest.raises(TypeError, match="a sequence of ints"):
        nn_cuda.zeros((2, 1.5))
    with pytest.raises(nn_cuda.ValueError):
        nn_cuda.arange(0, 1, 0)
    with pytest.raises(nn_cuda.ValueError, match="low < high"):
        nn_cuda.randint(3, 3, (2,))


def test_cat_stack_where(device, rng):
    a = rng.standard_normal((2, 3))
    b = rng.standard_normal((4, 3))
    ta = nn_cuda.tensor(a, device=device, requires_grad=True)
    tb = nn_cuda.tensor(b, device=device, requires_grad=True)
    pa = torch.tensor(a, requires_grad=True)
    pb = torch.tensor(b, requires_grad=True)
    w = rng.standard_normal((6, 3))
    out = nn_cuda.cat([ta, tb], dim=0)
    ref = torch.cat([pa, pb], 0)
    assert_close(out, ref)
    (out * nn_cuda.tensor(w, device=device)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    assert_close(ta.grad, pa.grad)
    assert_close(tb.grad, pb.grad)
    s = nn_cuda.stack([ta, ta], dim=1)
    assert s.shape == (2, 2, 3)
    cond = ta > 0
    assert_close(nn_cuda.where(cond, ta, 0.0), torch.where(pa > 0, pa, torch.tensor(0.0, dtype=pa.dtype)))
    with pytest.raises(nn_cuda.ShapeError):
        nn_cuda.cat([ta, nn_cuda.zeros(2, 2, dtype="float64", device=device)], dim=0)
    with pytest.raises(TypeError):
        nn_cuda.cat([ta, 3])


# ---- attributes, conversion ----------------------------------------------------------------------

def test_attributes_and_conversions(device):
    t = nn_cuda.ones(2, 3, device=device)
    assert t.ndim == 2 and t.dim() == 2 and t.numel() == 6 and t.size() == (2, 3) and t.size(-1) == 3
    assert t.to("float64").dtype is nn_cuda.float64
    assert t.to(nn_cuda.float64).dtype is nn_cuda.float64
    assert t.to(dtype="float16").dtype is nn_cuda.float16
    assert t.to(device="cpu").device == "cpu"
    assert t.to("cpu", nn_cuda.float64).dtype is nn_cuda.float64
    assert t.double().float().dtype is nn_cuda.float32
    assert t.cpu().device == "cpu"
    x = nn_cuda.ones(2, requires_grad=True)
    y = x.double()
    assert y.grad_fn == "to" and not y.is_leaf
    y.sum().backward()
    assert x.grad.dtype is nn_cuda.float32 and x.grad.tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="Tensor.to"):
        t.to(3.5)


def test_requires_grad_and_grad_setter():
    x = nn_cuda.ones(3)
    assert x.requires_grad_() is x
    assert x.requires_grad
    y = x * 2
    with pytest.raises(nn_cuda.ValueError):
        y.requires_grad = False
    x.grad = nn_cuda.full((3,), 2.0)
    assert x.grad.tolist() == [2.0, 2.0, 2.0]
    x.grad = None
    assert x.grad is None
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert y.clone().grad_fn == "clone"


def test_repr():
    assert repr(nn_cuda.tensor([[1.0, 2.0]])) == "tensor([[1., 2.]])"
    assert repr(nn_cuda.tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    assert repr(nn_cuda.tensor([0.5], dtype="float64")) == "tensor([0.5000], dtype=nn_cuda.float64)"
    assert repr(nn_cuda.tensor([1, 2])) == "tensor([1, 2])"
    x = nn_cuda.tensor([1.0], requires_grad=True)
    assert repr(x * 2) == "tensor([2.], grad_fn=<mul>)"
    assert str(nn_cuda.tensor(3.0)) == "tensor(3.)"
    assert "..." in repr(nn_cuda.zeros(2000))


def test_len_iter():
    t = nn_cuda.arange(6.0).reshape(3, 2)
    assert len(t) == 3
    rows = list(t)
    assert [r.tolist() for r in rows] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    with pytest.raises(TypeError, match="0-d"):
        len(nn_cuda.tensor(1.0))
    with pytest.raises(TypeError, match="0-d"):
        iter(nn_cuda.tensor(1.0))


# ---- indexing ------------------------------------------------------------------------------------

INDICES = [
    1, -1, (0, 2), (slice(None), 1), slice(1, None), slice(None, None, 2), (Ellipsis, 1),
    (None, 0), (1, None, slice(0, 3, 2)), (Ellipsis, None), (slice(-3, -1), Ellipsis, -2),
    (0, 0, 0), slice(5, 10), (slice(None), slice(1, 4, 2), slice(None, None, 3)), (None, Ellipsis, None),
]


@pytest.mark.parametrize("index", INDICES, ids=[repr(i) for i in INDICES])
def test_getitem_matches_numpy_and_torch_grad(index, device, rng):
    a = rng.standard_normal((4, 5, 6))
    t = nn_cuda.tensor(a, device=device, requires_grad=True)
    p = torch.tensor(a, requires_grad=True)
    out = t[index]
    np.testing.assert_array_equal(out.cpu().numpy(), a[index])
    ref = p[index]
    w = rng.standard_normal(ref.shape)
    (out * nn_cuda.tensor(w, device=device)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    assert_close(t.grad, p.grad)


def test_getitem_is_a_view_and_setitem_writes_through():
    t = nn_cuda.zeros(3, 4)
    row = t[1]
    row[2] = 5.0
    assert t[1, 2].item() == 5.0
    t[:, 0] = 1.0
    t[2, 1:3] = nn_cuda.tensor([7.0, 8.0])
    t[0, ...] += 0  # += on a view: in place
    t[0, 1:] = [2.0, 3.0, 4.0]
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 3, 4], [1, 0, 5, 0], [1, 7, 8, 0]])
    t[...] = nn_cuda.tensor([1.0, 2.0, 3.0, 4.0])  # broadcast
    assert t.sum().item() == 30


def test_index_errors():
    t = nn_cuda.zeros(2, 3)
    with pytest.raises(IndexError, match="out of bounds"):
        t[2]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0]
    with pytest.raises(IndexError, match="one ellipsis"):
        t[..., ...]
    with pytest.raises(ValueError, match="positive"):
        t[::-1]
    with pytest.raises(TypeError, match="expected ints"):
        t["a"]
    with pytest.raises(nn_cuda.IndexError):
        t.transpose(0, 5)


# ---- errors --------------------------------------------------------------------------------------

def test_error_hierarchy():
    pairs = {
        "ShapeError": ValueError, "DtypeError": TypeError, "DeviceError": RuntimeError,
        "IndexError": IndexError, "ValueError": ValueError, "OutOfMemoryError": MemoryError,
        "IoError": OSError, "CudaError": RuntimeError,
    }
    assert issubclass(nn_cuda.Error, Exception)
    for name, builtin in pairs.items():
        cls = getattr(nn_cuda, name)
        assert issubclass(cls, nn_cuda.Error) and issubclass(cls, builtin), name
        assert cls.__module__ == "nn_cuda"


def test_errors_carry_the_cpp_message(tmp_path):
    a, b = nn_cuda.zeros(2, 3), nn_cuda.zeros(4, 5)
    with pytest.raises(nn_cuda.ShapeError) as e:
        a + b
    assert str(e.value) == "add: shapes [2, 3] and [4, 5] cannot broadcast"
    with pytest.raises(nn_cuda.DtypeError, match="exp"):
        nn_cuda.arange(3).exp()
    with pytest.raises(nn_cuda.IndexError, match="transpose"):
        a.transpose(0, 2)
    with pytest.raises(nn_cuda.ValueError, match="dropout"):
        nn_cuda.functional.dropout(a, p=1.5)
    with pytest.raises(nn_cuda.OutOfMemoryError, match="bytes"):
        nn_cuda.zeros(1 << 60)
    with pytest.raises(nn_cuda.Error):  # the base catches everything
        a @ b
    if not nn_cuda.cuda_is_available():
        with pytest.raises(nn_cuda.DeviceError):
            a.cuda()
    else:
        with pytest.raises(nn_cuda.DeviceError, match="add"):
            a + a.cuda()
    if hasattr(nn_cuda, "load_safetensors"):
        with pytest.raises(nn_cuda.IoError):
            nn_cuda.load_safetensors(str(tmp_path / "missing.safetensors"))


def test_bad_python_arguments():
    t = nn_cuda.zeros(2)
    with pytest.raises(TypeError):
        t + "a"
    with pytest.raises(TypeError):
        t.sum(dim="x")
    with pytest.raises(TypeError):
        nn_cuda.functional.relu([1.0])


# ---- scalars, operators, in-place ------------------------------------------------------------------

SCALAR_OPS = [
    ("2*t", lambda t: 2 * t), ("t*2", lambda t: t * 2), ("t-1.5", lambda t: t - 1.5),
    ("1.5-t", lambda t: 1.5 - t), ("1/t", lambda t: 1 / t), ("t/4", lambda t: t / 4),
    ("t+1", lambda t: t + 1), ("3+t", lambda t: 3 + t), ("t**2", lambda t: t ** 2),
    ("2**t", lambda t: 2 ** t), ("-t", lambda t: -t), ("t**t", lambda t: t ** t),
    ("t@t.T", lambda t: t @ t.T), ("abs", lambda t: abs(t)),
]


@pytest.mark.parametrize("name,fn", SCALAR_OPS, ids=[n for n, _ in SCALAR_OPS])
def test_scalar_operators_forward_and_grad(name, fn, device, rng):
    a = rng.uniform(0.5, 2.0, (3, 4))
    t = nn_cuda.tensor(a, device=device, requires_grad=True)
    p = torch.tensor(a, requires_grad=True)
    out, ref = fn(t), fn(p)
    assert_close(out, ref)
    w = rng.standard_normal(tuple(ref.shape))
    (out * nn_cuda.tensor(w, device=device)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    assert_close(t.grad, p.grad)


def test_augmented_assignment(device):
    t = nn_cuda.ones(2, 3, device=device)
    view = t[0]
    alias = t
    t += 1
    assert alias is t and t.sum().item() == 12  # in place on a plain tensor
    view *= nn_cuda.tensor([1.0, 2.0, 3.0], device=device)
    assert t[0].tolist() == [2, 4, 6]
    t -= 2
    t /= 2
    assert t.tolist() == [[0, 1, 2], [0, 0, 0]]
    x = nn_cuda.ones(2, requires_grad=True, device=device)
    y = x * 1
    y += x  # recorded: a new result, gradients stay right
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    with nn_cuda.no_grad():
        x -= 0.5  # an optimizer-style update of a leaf
    assert x.tolist() == [0.5, 0.5] and x.is_leaf


def test_comparisons(device, rng):
    a = rng.integers(0, 3, (4, 5)).astype(np.float64)
    b = rng.integers(0, 3, (5,)).astype(np.float64)
    t, u = nn_cuda.tensor(a, device=device), nn_cuda.tensor(b, device=device)
    for op in ["__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"]:
        out = getattr(t, op)(u)
        assert out.dtype is nn_cuda.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.cpu().numpy(), getattr(a, op)(b))
        np.testing.assert_array_equal(getattr(t, op)(1.0).cpu().numpy(), getattr(a, op)(1.0))
    assert (t == "x") is False


def test_inplace(device):
    t = nn_cuda.ones(2, 2, device=device)
    assert t.add_(1) is t and t.tolist() == [[2, 2], [2, 2]]
    t.mul_(nn_cuda.tensor([1.0, 3.0], device=device))
    assert t.tolist() == [[2, 6], [2, 6]]
    t.sub_(1).div_(nn_cuda.full((2, 2), 0.5, device=device))
    assert t.tolist() == [[2, 10], [2, 10]]
    t.add_(nn_cuda.ones(2, device=device), 2.0)
    assert t.tolist() == [[4, 12], [4, 12]]
    t.zero_()
    assert t.sum().item() == 0
    t.fill_(3)
    t.copy_(nn_cuda.arange(2.0, device=device))
    assert t.tolist() == [[0, 1], [0, 1]]
    t.clamp_(0.5, None)
    assert t.tolist() == [[0.5, 1], [0.5, 1]]


def test_methods_match_torch(device, rng):
    a = rng.standard_normal((3, 4, 5))
    t = nn_cuda.tensor(a, device=device)
    p = torch.tensor(a)
    assert_close(t.sum(), p.sum())
    assert_close(t.sum(1, keepdim=True), p.sum(1, keepdim=True))
    assert_close(t.mean((0, 2)), p.mean((0, 2)))
    assert_close(t.var(1, correction=0), p.var(1, unbiased=False))
    assert_close(t.amax(-1), p.amax(-1))
    assert_close(t.amin(0), p.amin(0))
    v, i = t.max(1)
    pv, pi = p.max(1)
    assert_close(v, pv)
    np.testing.assert_array_equal(i.cpu().numpy(), pi.numpy())
    np.testing.assert_array_equal(t.argmax(2).cpu().numpy(), p.argmax(2).numpy())
    assert t.argmax().item() == p.argmax().item()
    assert_close(t.softmax(1), p.softmax(1))
    assert_close(t.log_softmax(-1), p.log_softmax(-1))
    assert_close(t.clamp(-0.5, 0.5), p.clamp(-0.5, 0.5))
    assert_close(t.clamp(min=0), p.clamp(min=0))
    assert_close(t.permute(2, 0, 1), p.permute(2, 0, 1))
    assert_close(t.reshape(12, 5), p.reshape(12, 5))
    assert_close(t.view(-1), p.view(-1))
    assert_close(t.flatten(1), p.flatten(1))
    assert_close(t[:, :1].squeeze(1), p[:, :1].squeeze(1))
    assert t[:1, :, :1].squeeze().shape == (4,)
    assert_close(t.unsqueeze(0).expand(2, 3, 4, 5), p.unsqueeze(0).expand(2, 3, 4, 5))
    assert [c.shape for c in t.chunk(2, 1)] == [tuple(c.shape) for c in p.chunk(2, 1)]
    assert [c.shape for c in t.split(2, 2)] == [tuple(c.shape) for c in p.split(2, 2)]
    assert_close(t.transpose(0, 2).contiguous(), p.transpose(0, 2).contiguous())


# ---- grad mode and autograd ----------------------------------------------------------------------

def test_no_grad_and_friends():
    x = nn_cuda.ones(2, requires_grad=True)
    with nn_cuda.no_grad():
        assert not nn_cuda.is_grad_enabled()
        y = x * 2
        with nn_cuda.enable_grad():
            z = x * 2
    assert nn_cuda.is_grad_enabled()
    assert not y.requires_grad and z.requires_grad

    @nn_cuda.no_grad()
    def f(v):
        return v * 3

    assert not f(x).requires_grad and nn_cuda.is_grad_enabled()
    nn_cuda.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    nn_cuda.set_grad_enabled(True)
    with nn_cuda.set_grad_enabled(False):
        assert not nn_cuda.is_grad_enabled()
    assert nn_cuda.is_grad_enabled()
    with pytest.raises(KeyError):
        with nn_cuda.no_grad():
            raise KeyError("x")
    assert nn_cuda.is_grad_enabled()


def test_autograd_grad_matches_torch(rng):
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((4,))
    x = nn_cuda.tensor(a, requires_grad=True)
    y = nn_cuda.tensor(b, requires_grad=True)
    px = torch.tensor(a, requires_grad=True)
    py_ = torch.tensor(b, requires_grad=True)
    out = ((x * y).tanh() ** 2).sum()
    ref = ((px * py_).tanh() ** 2).sum()
    gx, gy = nn_cuda.autograd.grad(out, [x, y])
    rx, ry = torch.autograd.grad(ref, [px, py_])
    assert_close(gx, rx)
    assert_close(gy, ry)
    assert x.grad is None  # returned, not accumulated
    unused = nn_cuda.ones(1, requires_grad=True)
    g = nn_cuda.autograd.grad((x * 2).sum(), [x, unused])
    assert g[1] is None
    seed = nn_cuda.full((3, 4), 2.0, dtype="float64")
    (gs,) = nn_cuda.autograd.grad(x * 3, x, grad_outputs=seed)
    assert gs.sum().item() == 72


def test_backward_options(rng):
    x = nn_cuda.tensor(rng.standard_normal(3), requires_grad=True)
    y = x * x
    with pytest.raises(nn_cuda.ShapeError, match="one-element"):
        y.backward()  # not a scalar and no gradient given
    y.backward(nn_cuda.ones(3, dtype="float64"), retain_graph=True)
    y.backward(nn_cuda.ones(3, dtype="float64"))
    assert_close(x.grad, 4 * to_torch(x))
    with pytest.raises(nn_cuda.ValueError, match="retain_graph"):
        y.backward(nn_cuda.ones(3, dtype="float64"))
    h = x * 2
    h.retain_grad()
    h.sum().backward()
    assert h.grad.tolist() == [1.0, 1.0, 1.0]


def test_from_torch_helpers_round_trip(rng):
    p = torch.tensor(rng.standard_normal((2, 3)), dtype=torch.bfloat16)
    t = from_torch(p)
    assert t.dtype is nn_cuda.bfloat16
    assert torch.equal(to_torch(t), p)
