"""nn_cuda.nn against torch.nn: every layer and loss with identical weights, forward values and
the gradients of the input and of every parameter, in float32 and float64; Module semantics
(registration, state dicts, modes, Python subclasses)."""
import gc

import numpy as np
import pytest
import torch

import nn_cuda
from nn_cuda import nn

TF = torch.nn.functional
DTYPES = {"float32": (nn_cuda.float32, torch.float32, 2e-5), "float64": (nn_cuda.float64, torch.float64, 1e-10)}


def npy(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t.detach().cpu().numpy()


def close(a, b, tol, what=""):
    a, b = np.asarray(npy(a), dtype=np.float64), np.asarray(npy(b), dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    scale = max(1.0, float(np.abs(b).max()) if b.size else 1.0)
    err = float(np.abs(a - b).max()) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max error {err} > {tol} * {scale}"


def copy_weights(nn_layer, torch_layer):
    """torch -> nn_cuda through NumPy, by state-dict name."""
    state = {k: nn_cuda.tensor(v.detach().cpu().numpy()) for k, v in torch_layer.state_dict().items()}
    result = nn_layer.load_state_dict(state)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []


def run_parity(nn_layer, torch_layer, shape, dtype_name, device, rng, positive=False, train=True):
    nd, td, tol = DTYPES[dtype_name]
    torch_layer = torch_layer.to(td)
    nn_layer.to(device).to(nd)
    copy_weights(nn_layer, torch_layer)
    nn_layer.zero_grad()
    torch_layer.zero_grad()
    nn_layer.train(train)
    torch_layer.train(train)
    x = rng.standard_normal(shape)
    if positive:
        x = np.abs(x) + 0.1
    xt = torch.tensor(x, dtype=td, requires_grad=True)
    xn = nn_cuda.tensor(x, dtype=nd, device=device, requires_grad=True)
    yt = torch_layer(xt)
    yn = nn_layer(xn)
    close(yn, yt, tol, "forward")
    g = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(g, dtype=td))
    yn.backward(nn_cuda.tensor(g, dtype=nd, device=device))
    close(xn.grad, xt.grad, tol * 10, "input grad")
    tparams = dict(torch_layer.named_parameters())
    nparams = dict(nn_layer.named_parameters())
    assert sorted(tparams) == sorted(nparams)
    for name, p in tparams.items():
        close(nparams[name].grad, p.grad, tol * 10, f"grad of {name}")
    tbuf = dict(torch_layer.named_buffers())
    for name, b in nn_layer.named_buffers():
        close(b, tbuf[name], tol, f"buffer {name}")
    return nn_layer, torch_layer


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request):
    return request.param


# ---- layers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_linear(device, dtype_name, rng, bias, shape):
    run_parity(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), shape, dtype_name, device, rng)


@pytest.mark.parametrize("act,fn", [("relu", TF.relu), ("gelu", TF.gelu), ("silu", TF.silu),
                                    ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
                                    ("gelu_tanh", lambda x: TF.gelu(x, approximate="tanh"))])
def test_linear_fused_activation(device, dtype_name, rng, act, fn):
    class Twin(torch.nn.Linear):
        def forward(self, x):
            return fn(super().forward(x))

    layer = nn.Linear(6, 4, activation=act)
    assert layer.activation == act
    run_parity(layer, Twin(6, 4), (5, 6), dtype_name, device, rng)


CONV_CASES = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=3, out_channels=5, kernel_size=3, stride=2, padding=1),
    dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(in_channels=2, out_channels=2, kernel_size=3, dilation=2, padding=2, bias=False),
    dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, padding=1),
    dict(in_channels=4, out_channels=4, kernel_size=3, groups=4, stride=2),
]


@pytest.mark.parametrize("kw", CONV_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_conv2d(device, dtype_name, rng, kw):
    layer = nn.Conv2d(**kw)
    run_parity(layer, torch.nn.Conv2d(**kw), (2, kw["in_channels"], 9, 8), dtype_name, device, rng)
    k = kw["kernel_size"]
    assert layer.kernel_size == (k if isinstance(k, tuple) else (k, k))
    assert layer.groups == kw.get("groups", 1)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2, dilation=2), dict(kernel_size=3, stride=2, ceil_mode=True),
                                dict(kernel_size=(3, 2), stride=(1, 2))])
def test_max_pool2d(device, dtype_name, rng, kw):
    run_parity(nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw), (2, 3, 9, 8), dtype_name, device, rng)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                                dict(kernel_size=3, stride=2, ceil_mode=True)])
def test_avg_pool2d(device, dtype_name, rng, kw):
    run_parity(nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), (2, 3, 9, 8), dtype_name, device, rng)


@pytest.mark.parametrize("out", [1, (3, 2), 4])
def test_adaptive_avg_pool2d(device, dtype_name, rng, out):
    run_parity(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out), (2, 3, 7, 5), dtype_name, device, rng)


@pytest.mark.parametrize("kind,shape", [("1d", (8, 4)), ("1d", (6, 4, 5)), ("2d", (4, 4, 5, 3))])
@pytest.mark.parametrize("kw", [dict(), dict(affine=False), dict(momentum=0.3, eps=1e-3),
                                dict(track_running_stats=False)])
def test_batch_norm(device, dtype_name, rng, kind, shape, kw):
    n = nn.BatchNorm1d(4, **kw) if kind == "1d" else nn.BatchNorm2d(4, **kw)
    t = torch.nn.BatchNorm1d(4, **kw) if kind == "1d" else torch.nn.BatchNorm2d(4, **kw)
    if kw.get("affine", True):  # non-trivial gamma and beta
        with torch.no_grad():
            t.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, 4)))
            t.bias.copy_(torch.tensor(rng.standard_normal(4)))
    # Training: batch statistics, running statistics updated (compared in run_parity).
    run_parity(n, t, shape, dtype_name, device, rng, train=True)
    # A second training batch, then evaluation with the running statistics.
    run_parity(n, t, shape, dtype_name, device, rng, train=True)
    run_parity(n, t, shape, dtype_name, device, rng, train=False)
    if kw.get("track_running_stats", True):
        assert int(n.num_batches_tracked.item()) == int(t.num_batches_tracked.item())
    else:
        assert n.running_mean is None


def test_batch_norm_repr_and_reset():
    bn = nn.BatchNorm2d(3)
    assert repr(bn).startswith("BatchNorm2d(3")
    bn.train()
    bn(nn_cuda.randn(4, 3, 2, 2))
    assert not np.allclose(bn.running_mean.numpy(), 0)
    bn.reset_running_stats()
    assert np.allclose(bn.running_mean.numpy(), 0) and np.allclose(bn.running_var.numpy(), 1)


ACTIVATIONS = [
    (nn.ReLU, torch.nn.ReLU, {}), (nn.LeakyReLU, torch.nn.LeakyReLU, {"negative_slope": 0.2}),
    (nn.Sigmoid, torch.nn.Sigmoid, {}), (nn.Tanh, torch.nn.Tanh, {}), (nn.GELU, torch.nn.GELU, {}),
    (nn.GELU, torch.nn.GELU, {"approximate": "tanh"}), (nn.SiLU, torch.nn.SiLU, {}),
    (nn.Softplus, torch.nn.Softplus, {}), (nn.Softplus, torch.nn.Softplus, {"beta": 2.0, "threshold": 1.0}),
    (nn.Identity, torch.nn.Identity, {}), (nn.Flatten, torch.nn.Flatten, {}),
    (nn.Flatten, torch.nn.Flatten, {"start_dim": 0, "end_dim": -1}),
    (nn.Flatten, torch.nn.Flatten, {"start_dim": 1, "end_dim": 2}),
]


@pytest.mark.parametrize("ncls,tcls,kw", ACTIVATIONS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_parameter_free(device, dtype_name, rng, ncls, tcls, kw):
    run_parity(ncls(**kw), tcls(**kw), (3, 4, 5), dtype_name, device, rng)


def test_dropout_identity_and_scaling(device):
    x = nn_cuda.randn(64, 100, device=device)
    assert np.array_equal(nn.Dropout(0.0)(x).cpu().numpy(), x.cpu().numpy())
    d = nn.Dropout(0.3)
    d.eval()
    assert np.array_equal(d(x).cpu().numpy(), x.cpu().numpy())
    d.train()
    ones = nn_cuda.ones(200, 500, device=device, requires_grad=True)
    y = d(ones)
    v = y.detach().cpu().numpy()
    kept = v != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01  # 100000 draws: sd ~0.0015
    assert np.allclose(v[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    assert np.array_equal(ones.grad.cpu().numpy(), v)  # the gradient uses the same mask
    # Reseeding replays the mask.
    d.manual_seed(7)
    a = d(ones).detach().cpu().numpy()
    d.manual_seed(7)
    assert np.array_equal(a, d(ones).detach().cpu().numpy())
    assert repr(d) == "Dropout(p=0.3)" or "0.3" in repr(d)


class TorchBlock(torch.nn.Module):
    """torchvision's BasicBlock layout, as nn_cuda's ResidualBlock."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                  torch.nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (3, 6, 2)])
def test_residual_block(device, dtype_name, rng, cin, cout, stride):
    block = nn.ResidualBlock(cin, cout, stride)
    assert (block.downsample is None) == (stride == 1 and cin == cout)
    run_parity(block, TorchBlock(cin, cout, stride), (2, cin, 6, 6), dtype_name, device, rng)
    run_parity(block, TorchBlock(cin, cout, stride), (2, cin, 6, 6), dtype_name, device, rng, train=False)


def test_sequential_parity(device, dtype_name, rng):
    n = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 2))
    t = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.GELU(),
                            torch.nn.Linear(8, 2))
    run_parity(n, t, (5, 6), dtype_name, device, rng)


# ---- losses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["MSELoss", "L1Loss"])
def test_regression_losses(device, dtype_name, rng, name, reduction):
    nd, td, tol = DTYPES[dtype_name]
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    xt, yt = torch.tensor(x, dtype=td, requires_grad=True), torch.tensor(y, dtype=td, requires_grad=True)
    xn = nn_cuda.tensor(x, dtype=nd, device=device, requires_grad=True)
    yn = nn_cuda.tensor(y, dtype=nd, device=device, requires_grad=True)
    lt = getattr(torch.nn, name)(reduction=reduction)(xt, yt)
    ln = getattr(nn, name)(reduction=reduction)(xn, yn)
    close(ln, lt, tol, "loss")
    g = rng.standard_normal(tuple(lt.shape))
    lt.backward(torch.tensor(g, dtype=td))
    ln.backward(nn_cuda.tensor(g, dtype=nd, device=device))
    close(xn.grad, xt.grad, tol, "input grad")
    close(yn.grad, yt.grad, tol, "target grad")


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"),
                                dict(label_smoothing=0.1), dict(ignore_index=2), dict(weight=True),
                                dict(weight=True, label_smoothing=0.2, ignore_index=1)])
def test_cross_entropy(device, dtype_name, rng, kw):
    nd, td, tol = DTYPES[dtype_name]
    x = rng.standard_normal((7, 5)) * 2
    target = rng.integers(0, 5, 7)
    target[0] = 2
    tkw, nkw = dict(kw), dict(kw)
    if kw.get("weight"):
        w = rng.uniform(0.5, 2.0, 5)
        tkw["weight"] = torch.tensor(w, dtype=td)
        nkw["weight"] = nn_cuda.tensor(w, dtype=nd, device=device)
    xt = torch.tensor(x, dtype=td, requires_grad=True)
    xn = nn_cuda.tensor(x, dtype=nd, device=device, requires_grad=True)
    lt = torch.nn.CrossEntropyLoss(**tkw)(xt, torch.tensor(target))
    ln = nn.CrossEntropyLoss(**nkw)(xn, nn_cuda.tensor(target, dtype=nn_cuda.int64, device=device))
    close(ln, lt, tol * 10, "loss")
    lt.sum().backward()
    ln.sum().backward()
    close(xn.grad, xt.grad, tol * 10, "input grad")


@pytest.mark.parametrize("kw", [dict(), dict(reduction="sum"), dict(reduction="none"), dict(pos_weight=True)])
def test_bce_with_logits(device, dtype_name, rng, kw):
    nd, td, tol = DTYPES[dtype_name]
    x = rng.standard_normal((6, 3)) * 3
    y = rng.uniform(0, 1, (6, 3))
    tkw, nkw = dict(kw), dict(kw)
    if kw.get("pos_weight"):
        pw = rng.uniform(0.5, 3, 3)
        tkw["pos_weight"] = torch.tensor(pw, dtype=td)
        nkw["pos_weight"] = nn_cuda.tensor(pw, dtype=nd, device=device)
    xt = torch.tensor(x, dtype=td, requires_grad=True)
    xn = nn_cuda.tensor(x, dtype=nd, device=device, requires_grad=True)
    lt = torch.nn.BCEWithLogitsLoss(**tkw)(xt, torch.tensor(y, dtype=td))
    ln = nn.BCEWithLogitsLoss(**nkw)(xn, nn_cuda.tensor(y, dtype=nd, device=device))
    close(ln, lt, tol * 10, "loss")
    lt.sum().backward()
    ln.sum().backward()
    close(xn.grad, xt.grad, tol * 10, "input grad")


def test_loss_errors():
    with pytest.raises(nn_cuda.ShapeError):
        nn.MSELoss()(nn_cuda.zeros(3, 2), nn_cuda.zeros(2, 3))
    with pytest.raises(ValueError):
        nn.MSELoss(reduction="avg")


# ---- init and utils -------------------------------------------------------------------------


def test_init_functions():
    w = nn_cuda.empty(400, 300)
    assert nn.init.zeros_(w) is w and np.all(w.numpy() == 0)
    nn.init.ones_(w)
    assert np.all(w.numpy() == 1)
    nn.init.constant_(w, 2.5)
    assert np.all(w.numpy() == 2.5)
    nn.init.uniform_(w, -2, 3)
    v = w.numpy()
    assert v.min() >= -2 and v.max() <= 3 and abs(v.mean() - 0.5) < 0.05
    nn.init.normal_(w, 1.0, 2.0)
    assert abs(w.numpy().mean() - 1) < 0.03 and abs(w.numpy().std() - 2) < 0.03
    bound = np.sqrt(6 / 700)
    nn.init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.95 * bound
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.numpy().std() - 2 * np.sqrt(2 / 700)) < 0.003
    nn.init.kaiming_uniform_(w, a=0, mode="fan_in", nonlinearity="relu")
    assert np.abs(w.numpy()).max() <= np.sqrt(6 / 300)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - np.sqrt(2 / 400)) < 0.003
    for nl in ["linear", "sigmoid", "tanh", "relu", "selu", "conv2d"]:
        assert nn.init.calculate_gain(nl) == pytest.approx(torch.nn.init.calculate_gain(nl))
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(torch.nn.init.calculate_gain("leaky_relu", 0.2))
    with pytest.raises(ValueError):
        nn.init.kaiming_uniform_(w, nonlinearity="swish")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm(rng, norm_type, max_norm):
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    tp = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    np_ = [nn_cuda.zeros(*g.shape, dtype=nn_cuda.float64, requires_grad=True) for g in grads]
    for t, n, g in zip(tp, np_, grads):
        t.grad = torch.tensor(g)
        n.grad = nn_cuda.tensor(g)
    tn = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type)
    nn_norm = nn.utils.clip_grad_norm_(np_, max_norm, norm_type)
    assert nn_norm.item() == pytest.approx(tn.item(), rel=1e-12)
    for t, n in zip(tp, np_):
        close(n.grad, t.grad, 1e-7, "clipped grad")
    nn.utils.clip_grad_value_(np_, 0.1)
    torch.nn.utils.clip_grad_value_(tp, 0.1)
    for t, n in zip(tp, np_):
        close(n.grad, t.grad, 1e-12, "clamped grad")


# ---- Module semantics -----------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
        self.head = Head(16, 3)
        self.scale = nn.Parameter(nn_cuda.ones(1))

    def forward(self, x):
        return self.head(self.features(x)) * self.scale


class Head(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.register_buffer("calls", nn_cuda.zeros(1))

    def forward(self, x):
        return self.fc(x)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU())
        self.head = torch.nn.Module()
        self.head.fc = torch.nn.Linear(16, 3)
        self.head.register_buffer("calls", torch.zeros(1))
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.head.fc(self.features(x)) * self.scale


def test_python_subclass_registers_and_prints():
    net = Net()
    tnet = TorchNet()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    assert list(net.state_dict().keys()) == list(tnet.state_dict().keys())
    assert [n for n, _ in net.named_children()] == ["features", "head"]
    assert isinstance(net.head, Head) and isinstance(net.features[0], nn.Linear)
    assert net.head.calls.shape == (1,)
    assert len(net.modules()) == 6
    text = repr(net)
    assert text.startswith("Net(") and "(head): Head(" in text and "Linear(in_features=4" in text
    # The Parameter object assigned is the registered parameter.
    p = nn.Parameter(nn_cuda.zeros(2))
    net.extra = p
    assert "extra" in dict(net.named_parameters()) and isinstance(p, nn_cuda.Tensor)
    (net.extra * 3).sum().backward()
    assert np.all(p.grad.numpy() == 3)
    with pytest.raises(ValueError):
        net.head = Head(16, 3)  # a registered name cannot be re-bound
    with pytest.raises(TypeError):
        net.scale = nn_cuda.ones(1)  # a plain Tensor is not a Parameter
    with pytest.raises(AttributeError):
        net.no_such_thing


def test_modes_zero_grad_and_to():
    net = Net()
    assert net.training and net.head.training
    assert net.eval() is net
    assert not net.training and not net.head.fc.training
    net.train()
    assert net.features[1].training
    net(nn_cuda.randn(2, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.to(nn_cuda.float64)
    assert all(p.dtype == nn_cuda.float64 for p in net.parameters())
    assert net(nn_cuda.randn(2, 4, dtype=nn_cuda.float64)).dtype == nn_cuda.float64
    net.to(dtype=nn_cuda.float32)
    assert net.head.fc.weight.dtype == nn_cuda.float32


def test_load_state_dict_strict_and_report():
    net = Net()
    state = net.state_dict()
    del state["scale"]
    with pytest.raises(nn_cuda.ValueError) as e:
        net.load_state_dict(state)
    assert "scale" in str(e.value)
    state["bogus"] = nn_cuda.zeros(1)
    report = net.load_state_dict(state, strict=False)
    assert list(report.missing_keys) == ["scale"] and list(report.unexpected_keys) == ["bogus"]
    bad = net.state_dict()
    bad["head.fc.weight"] = nn_cuda.zeros(2, 2)
    with pytest.raises(ValueError):
        net.load_state_dict(bad)


def test_python_subclass_matches_torch_training(rng):
    """A Python subclass with nested modules trains; five SGD steps match torch's exactly."""
    nn_cuda.manual_seed(0)
    net, tnet = Net(), TorchNet()
    tnet.load_state_dict({k: torch.tensor(v.numpy()) for k, v in net.state_dict().items()})
    opt = nn_cuda.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.1, momentum=0.9)
    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    for _ in range(5):
        for o, m, xx, yy, ce in ((opt, net, nn_cuda.tensor(x), nn_cuda.tensor(y), nn.CrossEntropyLoss()),
                                 (topt, tnet, torch.tensor(x), torch.tensor(y), torch.nn.CrossEntropyLoss())):
            o.zero_grad()
            loss = ce(m(xx), yy)
            loss.backward()
            o.step()
    for (name, p), (tname, tp) in zip(net.named_parameters(), tnet.named_parameters()):
        assert name == tname
        close(p, tp, 1e-5, name)


def test_python_subclass_learns():
    """A small model built from a Python subclass reaches high accuracy on a separable task."""
    rng = np.random.default_rng(5)
    nn_cuda.manual_seed(1)
    x = rng.standard_normal((256, 4)).astype(np.float32)
    y = (x[:, 0] + 2 * x[:, 1] - x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)
    net = Net()
    opt = nn_cuda.optim.Adam(net.parameters(), lr=0.02)
    xs, ys = nn_cuda.tensor(x), nn_cuda.tensor(y)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(net(xs), ys)
        loss.backward()
        opt.step()
    with nn_cuda.no_grad():
        pred = net(xs).numpy().argmax(1)
    assert (pred == y).mean() > 0.95


class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


def test_python_module_inside_cpp_sequential():
    seq = nn.Sequential(Doubler(), nn.Identity(), Doubler())
    gc.collect()  # the Python objects must stay alive while the Sequential is
    x = nn_cuda.ones(2, 3)
    assert np.all(seq(x).numpy() == 4)
    assert isinstance(seq[0], Doubler) and isinstance(seq[-1], Doubler)
    assert "Doubler()" in repr(seq)
    seq.append(nn.ReLU())
    assert len(seq) == 4 and isinstance(list(seq)[3], nn.ReLU)
    sub = seq[1:3]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2
    named = nn.Sequential({"a": nn.Linear(3, 2), "b": nn.ReLU()})
    assert [n for n, _ in named.named_children()] == ["a", "b"]
    with pytest.raises(IndexError):
        seq[10]


def test_assignment_before_init_and_buffers():
    class Early(nn.Module):
        def __init__(self):
            self.n = 3  # a plain attribute is fine before super().__init__()
            self.fc = nn.Linear(2, 2)  # a module is not
            super().__init__()

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()

    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("stat", nn_cuda.zeros(2))

    m = WithBuffer()
    m.stat = nn_cuda.ones(2)  # copied into the registered buffer
    assert m.state_dict()["stat"].numpy().tolist() == [1.0, 1.0]
    with pytest.raises(ValueError):
        m.stat = nn_cuda.ones(3)
    with pytest.raises(ValueError):
        m.stat = None
    m.to(nn_cuda.float64)
    assert m.stat.dtype == nn_cuda.float64
