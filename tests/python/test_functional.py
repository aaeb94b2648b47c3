"""nn_cuda.functional (and the Tensor methods behind it) against PyTorch: forward values and
gradients (backward of a random weighted sum) for float32 and float64, and for bfloat16/float16
with their tolerances, over broadcasting shapes, non-contiguous views and odd sizes.

The reference is PyTorch in float64 on the values the nn_cuda inputs actually hold (rounded to
their dtype), so one table serves every dtype."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import nn_cuda
import nn_cuda.functional as F
from conftest import assert_close

ALL_FLOATS = ["float32", "float64", "bfloat16", "float16"]
FULL = ["float32", "float64"]

# Half-precision results are compared more loosely than conftest's elementwise defaults: their
# gradients are sums of many rounded products.
HALF_TOL = {"bfloat16": (5e-2, 5e-2), "float16": (1e-2, 1e-2)}


def _tol(dtype):
    return HALF_TOL.get(dtype)


class Case:
    """One row: inputs drawn from `domain` with `shapes`; `strided` makes input i a transposed
    view (non-contiguous); fn(F-like module, *inputs) runs on both libraries."""

    def __init__(self, name, fn, shapes, domain=(-2.0, 2.0), dtypes=FULL, strided=(), grad=True,
                 ref=None, extra=None):
        self.name, self.fn, self.shapes, self.domain = name, fn, shapes, domain
        self.dtypes, self.strided, self.grad, self.ref, self.extra = dtypes, strided, grad, ref, extra


def away_from_zero(lo, hi):
    return ("away", lo, hi)


def draw(rng, shape, domain):
    if domain[0] == "away":  # |x| in [lo, hi], random sign
        mag = rng.uniform(domain[1], domain[2], shape)
        return mag * rng.choice([-1.0, 1.0], shape)
    return rng.uniform(domain[0], domain[1], shape)


CASES = [
    # activations and elementwise unary
    Case("relu", lambda f, x: f.relu(x), [(5, 7)], away_from_zero(0.05, 2), ALL_FLOATS, strided=(0,)),
    Case("leaky_relu", lambda f, x: f.leaky_relu(x, negative_slope=0.2), [(3, 9)], away_from_zero(0.05, 2), ALL_FLOATS),
    Case("sigmoid", lambda f, x: f.sigmoid(x), [(4, 6)], dtypes=ALL_FLOATS, strided=(0,)),
    Case("tanh", lambda f, x: f.tanh(x), [(33,)], dtypes=ALL_FLOATS),
    Case("gelu", lambda f, x: f.gelu(x), [(4, 5)], dtypes=ALL_FLOATS),
    Case("gelu_tanh", lambda f, x: f.gelu(x, approximate="tanh"), [(4, 5)], dtypes=ALL_FLOATS, strided=(0,)),
    Case("silu", lambda f, x: f.silu(x), [(2, 3, 5)], dtypes=ALL_FLOATS),
    Case("softplus", lambda f, x: f.softplus(x, beta=2.0, threshold=3.0), [(6, 5)], (-3.0, 3.0)),
    Case("exp", lambda f, x: x.exp(), [(3, 4)], dtypes=ALL_FLOATS),
    Case("log", lambda f, x: x.log(), [(3, 4)], (0.2, 3.0), ALL_FLOATS, strided=(0,)),
    Case("sqrt", lambda f, x: x.sqrt(), [(7,)], (0.2, 3.0), ALL_FLOATS),
    Case("rsqrt", lambda f, x: x.rsqrt(), [(2, 5)], (0.3, 3.0)),
    Case("abs", lambda f, x: x.abs(), [(4, 4)], away_from_zero(0.05, 2), ALL_FLOATS),
    Case("neg", lambda f, x: -x, [(4, 3)], dtypes=ALL_FLOATS, strided=(0,)),
    Case("pow_int", lambda f, x: x.pow(3.0), [(4, 3)]),
    Case("pow_frac", lambda f, x: x ** 2.5, [(4, 3)], (0.2, 2.0)),
    Case("clamp", lambda f, x: x.clamp(-0.5, 0.7), [(5, 6)], away_from_zero(0.02, 2)),
    Case("clamp_min", lambda f, x: x.clamp(min=0.1), [(5, 6)], (-1.0, 1.0)),
    Case("softmax_last", lambda f, x: f.softmax(x, dim=-1), [(4, 7)], dtypes=ALL_FLOATS, strided=(0,)),
    Case("softmax_dim0", lambda f, x: f.softmax(x, dim=0), [(5, 3, 2)]),
    Case("log_softmax", lambda f, x: f.log_softmax(x, dim=1), [(3, 11)], dtypes=ALL_FLOATS),
    # binary, broadcasting, scalars
    Case("add", lambda f, a, b: a + b, [(3, 4), (4,)], dtypes=ALL_FLOATS),
    Case("sub_bcast", lambda f, a, b: a - b, [(2, 1, 5), (3, 1)], strided=(1,)),
    Case("mul", lambda f, a, b: a * b, [(3, 4), (3, 4)], dtypes=ALL_FLOATS, strided=(0, 1)),
    Case("div", lambda f, a, b: a / b, [(3, 4), (1, 4)], away_from_zero(0.5, 2.0)),
    Case("maximum", lambda f, a, b: f.maximum(a, b), [(4, 5), (4, 5)]),
    Case("minimum", lambda f, a, b: f.minimum(a, b), [(4, 5), (5,)]),
    Case("pow_tensor", lambda f, a, b: a ** b, [(3, 2), (3, 2)], (0.3, 2.0)),
    Case("scalar_mix", lambda f, x: 1.5 - 2 * x / 3 + 1 / (x + 4), [(3, 5)], (0.0, 2.0), ALL_FLOATS),
    Case("where", lambda f, c, a, b: f.where(c > 0, a, b), [(3, 4), (3, 4), (4,)]),
    # reductions
    Case("sum_all", lambda f, x: x.sum(), [(4, 5)], dtypes=ALL_FLOATS, strided=(0,)),
    Case("sum_dims", lambda f, x: x.sum((0, 2), keepdim=True), [(3, 4, 5)]),
    Case("mean_dim", lambda f, x: f.mean(x, dim=1), [(3, 4, 5)], dtypes=ALL_FLOATS),
    Case("amax", lambda f, x: x.amax(-1), [(6, 5)]),
    Case("amin", lambda f, x: f.amin(x, dim=0, keepdim=True), [(6, 5)]),
    Case("var", lambda f, x: x.var(1), [(4, 9)]),
    Case("var_pop", lambda f, x: f.var(x, dim=(0, 1), correction=0), [(4, 3, 2)]),
    Case("max_dim", lambda f, x: f.max(x, 1)[0], [(5, 6)]),
    Case("min_dim", lambda f, x: x.min(0, keepdim=True)[0], [(5, 6)]),
    # matmul, linear
    Case("matmul_2d", lambda f, a, b: a @ b, [(3, 4), (4, 5)], dtypes=ALL_FLOATS, strided=(1,)),
    Case("matmul_batched", lambda f, a, b: f.matmul(a, b), [(2, 3, 4), (4, 5)]),
    Case("matmul_vec", lambda f, a, b: a.matmul(b), [(5,), (5, 3)]),
    Case("bmm", lambda f, a, b: f.bmm(a, b), [(2, 3, 4), (2, 4, 5)], dtypes=ALL_FLOATS),
    Case("linear", lambda f, x, w, b: f.linear(x, w, b), [(4, 6), (3, 6), (3,)], dtypes=ALL_FLOATS),
    Case("linear_nobias_3d", lambda f, x, w: f.linear(x, w), [(2, 3, 5), (7, 5)], strided=(1,)),
    # convolutional networks
    Case("conv2d", lambda f, x, w, b: f.conv2d(x, w, b), [(2, 3, 7, 6), (4, 3, 3, 3), (4,)], dtypes=ALL_FLOATS),
    Case("conv2d_opts", lambda f, x, w: f.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2)),
         [(1, 2, 9, 8), (3, 2, 3, 2)]),
    Case("conv2d_groups", lambda f, x, w, b: f.conv2d(x, w, b, padding="same", groups=2),
         [(2, 4, 5, 5), (6, 2, 3, 3), (6,)]),
    Case("conv2d_depthwise", lambda f, x, w: f.conv2d(x, w, stride=2, groups=3), [(1, 3, 8, 7), (3, 1, 2, 2)]),
    Case("max_pool2d", lambda f, x: f.max_pool2d(x, 2), [(2, 3, 6, 7)], dtypes=ALL_FLOATS),
    Case("max_pool2d_opts", lambda f, x: f.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, ceil_mode=True),
         [(1, 2, 7, 6)]),
    Case("avg_pool2d", lambda f, x: f.avg_pool2d(x, 3, stride=2, padding=1), [(2, 2, 7, 8)]),
    Case("avg_pool2d_nopad", lambda f, x: f.avg_pool2d(x, 2, padding=1, count_include_pad=False),
         [(1, 3, 5, 5)]),
    Case("adaptive_avg_pool2d", lambda f, x: f.adaptive_avg_pool2d(x, (3, 2)), [(2, 3, 7, 5)], dtypes=ALL_FLOATS),
    Case("adaptive_avg_pool2d_none", lambda f, x: f.adaptive_avg_pool2d(x, (None, 4)), [(1, 2, 5, 9)]),
    # losses
    Case("mse_loss", lambda f, a, b: f.mse_loss(a, b), [(4, 5), (4, 5)]),
    Case("mse_loss_sum", lambda f, a, b: f.mse_loss(a, b, reduction="sum"), [(6,), (6,)]),
    Case("l1_loss_none", lambda f, a, b: f.l1_loss(a, b, reduction="none"), [(3, 4), (3, 4)], away_from_zero(0.1, 2)),
    Case("bce_logits", lambda f, a, b: f.binary_cross_entropy_with_logits(a, b), [(5, 3), (5, 3)], (-3.0, 3.0)),
    # shapes
    Case("reshape", lambda f, x: f.reshape(x, (6, -1)), [(3, 4, 2)], strided=(0,)),
    Case("view_method", lambda f, x: x.view(2, 12) * 2, [(4, 6)]),
    Case("flatten", lambda f, x: f.flatten(x, 1), [(2, 3, 4)]),
    Case("transpose", lambda f, x: f.transpose(x, 0, 2) * 3, [(2, 3, 4)]),
    Case("permute", lambda f, x: f.permute(x, (1, 2, 0)) * 3, [(2, 3, 4)]),
    Case("narrow", lambda f, x: f.narrow(x, 1, 1, 2), [(3, 4)]),
    Case("select", lambda f, x: f.select(x, 0, -1), [(3, 4)]),
    Case("unsqueeze_expand", lambda f, x: f.expand(f.unsqueeze(x, 1), (3, 4, 5)), [(3, 5)]),
    Case("squeeze", lambda f, x: f.squeeze(x, 1), [(3, 1, 5)]),
    Case("cat", lambda f, a, b: f.cat([a, b], dim=1), [(2, 3), (2, 5)], dtypes=ALL_FLOATS),
    Case("stack", lambda f, a, b: f.stack([a, b], dim=-1), [(2, 3), (2, 3)]),
    Case("chunk", lambda f, x: f.chunk(x, 3, dim=1)[1], [(2, 7)]),
    Case("split", lambda f, x: f.split(x, [1, 4], dim=0)[1] * 2, [(5, 3)]),
    Case("split_size", lambda f, x: x.split(2, 1)[-1], [(2, 5)]),
]


class TorchF:
    """torch.nn.functional under nn_cuda.functional's names, for the shared lambdas."""

    def __getattr__(self, name):
        table = {
            "maximum": torch.maximum, "minimum": torch.minimum, "where": torch.where,
            "mean": torch.mean, "amax": torch.amax, "amin": torch.amin, "max": torch.max,
            "matmul": torch.matmul, "bmm": torch.bmm, "reshape": torch.reshape,
            "flatten": torch.flatten, "transpose": torch.transpose, "permute": torch.permute,
            "narrow": torch.narrow, "select": torch.select, "unsqueeze": torch.unsqueeze,
            "squeeze": torch.squeeze, "cat": torch.cat, "stack": torch.stack, "chunk": torch.chunk,
            "split": torch.split, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        }
        if name == "var":
            return lambda x, dim=None, correction=1: torch.var(x, dim=dim, unbiased=bool(correction))
        if name == "expand":
            return lambda x, shape: x.expand(*shape)
        return table.get(name) or getattr(TF, name)


TORCH_F = TorchF()


def _make_inputs(case, dtype, device, rng):
    """nn_cuda inputs (leaf, view) and their float64 torch mirrors (leaf, view)."""
    ours, theirs = [], []
    for i, shape in enumerate(case.shapes):
        strided = i in case.strided and len(shape) >= 2
        base_shape = shape[:-2] + (shape[-1], shape[-2]) if strided else shape
        a = draw(rng, base_shape, case.domain)
        leaf = nn_cuda.tensor(a, dtype=dtype, device=device, requires_grad=case.grad)
        held = leaf.detach().cpu().double().numpy()  # what the leaf holds after rounding
        pleaf = torch.tensor(held, dtype=torch.float64, requires_grad=case.grad)
        if strided:
            view, pview = leaf.transpose(-1, -2), pleaf.transpose(-1, -2)
            assert not view.is_contiguous() or min(shape[-2:]) == 1
        else:
            view, pview = leaf, pleaf
        ours.append((leaf, view))
        theirs.append((pleaf, pview))
    return ours, theirs


def _ids():
    out = []
    for c in CASES:
        for d in c.dtypes:
            out.append(pytest.param(c, d, id=f"{c.name}-{d}"))
    return out


@pytest.mark.parametrize("case,dtype", _ids())
def test_op_matches_torch(case, dtype, device, rng):
    ours, theirs = _make_inputs(case, dtype, device, rng)
    out = case.fn(F, *[v for _, v in ours])
    ref = case.fn(TORCH_F, *[v for _, v in theirs])
    assert out.dtype.name == dtype
    assert out.shape == tuple(ref.shape)
    rtol_atol = _tol(dtype) or (None, None)
    assert_close(out, ref, dtype=dtype, rtol=rtol_atol[0], atol=rtol_atol[1], msg=f"{case.name} forward")
    if not case.grad:
        return
    w = rng.standard_normal(tuple(ref.shape))
    (out * nn_cuda.tensor(w, dtype=dtype, device=device)).sum().backward()
    wref = torch.tensor(nn_cuda.tensor(w, dtype=dtype).double().numpy())
    (ref * wref).sum().backward()
    for i, ((leaf, _), (pleaf, _)) in enumerate(zip(ours, theirs)):
        if pleaf.grad is None:
            assert leaf.grad is None or float(leaf.grad.abs().sum().item()) == 0.0
            continue
        assert leaf.grad is not None, f"{case.name}: input {i} got no gradient"
        assert leaf.grad.dtype.name == dtype and leaf.grad.shape == leaf.shape
        g_tol = _tol(dtype) or {"float32": (1e-4, 1e-4), "float64": (1e-9, 1e-10)}[dtype]
        assert_close(leaf.grad, pleaf.grad, dtype=dtype, rtol=g_tol[0], atol=g_tol[1],
                     msg=f"{case.name} grad of input {i}")


# ---- ops with non-differentiable inputs or options -------------------------------------------------

@pytest.mark.parametrize("dtype", FULL)
@pytest.mark.parametrize("options", [
    dict(), dict(weight=True), dict(label_smoothing=0.1), dict(ignore_index=2),
    dict(reduction="sum"), dict(reduction="none", weight=True, label_smoothing=0.2),
])
def test_cross_entropy(options, dtype, device, rng):
    n, c = 7, 5
    logits = rng.standard_normal((n, c)) * 2
    target = rng.integers(0, c, n)
    target[0] = 2
    kw = dict(options)
    x = nn_cuda.tensor(logits, dtype=dtype, device=device, requires_grad=True)
    p = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    if kw.pop("weight", False):
        wc = rng.uniform(0.5, 2.0, c)
        kw_ours = dict(kw, weight=nn_cuda.tensor(wc, dtype=dtype, device=device))
        kw_torch = dict(kw, weight=torch.tensor(wc))
    else:
        kw_ours, kw_torch = kw, kw
    out = F.cross_entropy(x, nn_cuda.tensor(target, device=device), **kw_ours)
    ref = TF.cross_entropy(p, torch.tensor(target), **kw_torch)
    assert_close(out, ref, dtype=dtype)
    out.sum().backward()
    ref.sum().backward()
    assert_close(x.grad, p.grad, dtype=dtype, rtol=1e-4 if dtype == "float32" else None)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_bce_with_logits_weights(reduction, device, rng):
    a = rng.standard_normal((4, 3))
    t = rng.uniform(0, 1, (4, 3))
    pw = rng.uniform(0.5, 2, 3)
    w = rng.uniform(0.5, 2, (4, 3))
    x = nn_cuda.tensor(a, device=device, requires_grad=True)
    p = torch.tensor(a, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(
        x, nn_cuda.tensor(t, device=device), pos_weight=nn_cuda.tensor(pw, device=device),
        reduction=reduction, weight=nn_cuda.tensor(w, device=device))
    ref = TF.binary_cross_entropy_with_logits(p, torch.tensor(t), pos_weight=torch.tensor(pw),
                                              reduction=reduction, weight=torch.tensor(w))
    assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    assert_close(x.grad, p.grad)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(training, affine, device, rng):
    a = rng.standard_normal((4, 3, 5, 2)) * 2 + 1
    x = nn_cuda.tensor(a, device=device, requires_grad=True)
    p = torch.tensor(a, requires_grad=True)
    rm0, rv0 = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    rm, rv = nn_cuda.tensor(rm0, device=device), nn_cuda.tensor(rv0, device=device)
    prm, prv = torch.tensor(rm0), torch.tensor(rv0)
    g, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    if affine:
        gw = nn_cuda.tensor(g, device=device, requires_grad=True)
        bw = nn_cuda.tensor(b, device=device, requires_grad=True)
        pg, pb = torch.tensor(g, requires_grad=True), torch.tensor(b, requires_grad=True)
    else:
        gw = bw = pg = pb = None
    out = F.batch_norm(x, rm, rv, gw, bw, training=training, momentum=0.2, eps=1e-4)
    ref = TF.batch_norm(p, prm, prv, pg, pb, training=training, momentum=0.2, eps=1e-4)
    assert_close(out, ref)
    assert_close(rm, prm)  # running statistics updated in place (training) or untouched
    assert_close(rv, prv)
    w = rng.standard_normal(a.shape)
    (out * nn_cuda.tensor(w, device=device)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    assert_close(x.grad, p.grad, rtol=1e-8, atol=1e-9)
    if affine:
        assert_close(gw.grad, pg.grad, rtol=1e-8, atol=1e-9)
        assert_close(bw.grad, pb.grad, rtol=1e-8, atol=1e-9)


def test_max_pool2d_return_indices(device, rng):
    a = rng.standard_normal((2, 3, 6, 5))
    y, idx = F.max_pool2d(nn_cuda.tensor(a, device=device), 2, return_indices=True)
    ry, ridx = TF.max_pool2d(torch.tensor(a), 2, return_indices=True)
    assert_close(y, ry)
    assert idx.dtype is nn_cuda.int64
    np.testing.assert_array_equal(idx.cpu().numpy(), ridx.numpy())


def test_dropout(device, rng):
    x = nn_cuda.ones(200, 50, device=device, requires_grad=True)
    assert F.dropout(x, p=0.3, training=False).is_same(x)
    nn_cuda.manual_seed(3)
    y = F.dropout(x, p=0.3)
    kept = (y > 0).float().mean().item()
    assert abs(kept - 0.7) < 0.02
    values = np.unique(y.detach().cpu().numpy())
    np.testing.assert_allclose(values, [0.0, 1 / 0.7], rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.cpu().numpy(), y.detach().cpu().numpy())
    nn_cuda.manual_seed(3)
    y2 = F.dropout(x, p=0.3)
    np.testing.assert_array_equal(y2.detach().cpu().numpy(), y.detach().cpu().numpy())


def test_functional_bad_arguments():
    x = nn_cuda.zeros(1, 1, 4, 4)
    w = nn_cuda.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="pair"):
        F.conv2d(x, w, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="same"):
        F.conv2d(x, w, padding="same")  # even kernel: asymmetric padding
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(x, w, padding="full")
    with pytest.raises(nn_cuda.ValueError, match="reduction"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(nn_cuda.ShapeError, match="conv2d"):
        F.conv2d(nn_cuda.zeros(1, 2, 4, 4), w)
    with pytest.raises(TypeError):
        F.relu(np.zeros(3))
