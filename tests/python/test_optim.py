"""nn_cuda.optim against torch.optim: every optimizer and option combination from identical
parameters and gradients, parameter groups, state-dict round trips, learning-rate schedules
against torch.optim.lr_scheduler, EarlyStopping, clipping and penalties."""
import math

import numpy as np
import pytest
import torch

import nn_cuda
from nn_cuda import nn, optim
from nn_cuda.optim import lr_scheduler

DT = {"float32": (nn_cuda.float32, torch.float32, 1e-6), "float64": (nn_cuda.float64, torch.float64, 1e-12)}
SHAPES = [(3, 4), (5,)]


def close(a, b, tol, what=""):
    a = np.asarray(a.detach().cpu().numpy(), dtype=np.float64)
    b = np.asarray(b.detach().cpu().numpy(), dtype=np.float64)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)


def make_params(rng, dtype_name, device):
    nd, td, _ = DT[dtype_name]
    values = [rng.standard_normal(s) for s in SHAPES]
    tp = [torch.tensor(v, dtype=td, requires_grad=True) for v in values]
    npar = [nn_cuda.tensor(v, dtype=nd, device=device, requires_grad=True) for v in values]
    return npar, tp


def set_grads(rng, npar, tp, dtype_name, device):
    nd, td, _ = DT[dtype_name]
    for n, t in zip(npar, tp):
        g = rng.standard_normal(tuple(t.shape))
        t.grad = torch.tensor(g, dtype=td)
        n.grad = nn_cuda.tensor(g, dtype=nd, device=device)


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, maximize=True)),
]


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
@pytest.mark.parametrize("name,kw", CASES, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()) or "default")
def test_optimizer_steps_match_torch(device, rng, dtype_name, name, kw):
    npar, tp = make_params(rng, dtype_name, device)
    nopt = getattr(optim, name)(npar, **kw)
    topt = getattr(torch.optim, name)(tp, **kw)
    tol = DT[dtype_name][2]
    for step in range(4):
        set_grads(rng, npar, tp, dtype_name, device)
        nopt.step()
        topt.step()
        for i, (n, t) in enumerate(zip(npar, tp)):
            close(n, t, tol * 10 * (step + 1), f"{name} step {step} param {i}")


def test_param_groups_and_lr(rng):
    npar, tp = make_params(rng, "float64", "cpu")
    nopt = optim.SGD([{"params": [npar[0]]}, {"params": npar[1], "lr": 0.5, "momentum": 0.5, "nesterov": True}],
                     lr=0.1, momentum=0.9)
    topt = torch.optim.SGD([{"params": [tp[0]]}, {"params": tp[1], "lr": 0.5, "momentum": 0.5, "nesterov": True}],
                           lr=0.1, momentum=0.9)
    groups = nopt.param_groups
    assert len(groups) == 2
    assert groups[0]["lr"] == 0.1 and groups[1]["lr"] == 0.5
    assert groups[1]["momentum"] == 0.5 and groups[1]["nesterov"] is True and groups[0]["nesterov"] is False
    assert len(groups[1]["params"]) == 1 and "dampening" in groups[0]
    assert set(groups[0].keys()) >= {"params", "lr", "momentum", "weight_decay"}
    for step in range(3):
        if step == 1:
            nopt.param_groups[0]["lr"] = 0.02
            topt.param_groups[0]["lr"] = 0.02
            nopt.param_groups[1]["momentum"] = 0.7
            topt.param_groups[1]["momentum"] = 0.7
        set_grads(rng, npar, tp, "float64", "cpu")
        nopt.step()
        topt.step()
        for n, t in zip(npar, tp):
            close(n, t, 1e-12)
    assert nopt.param_groups[0]["lr"] == 0.02
    with pytest.raises(ValueError):
        nopt.param_groups[0]["lr"] = -1.0
    with pytest.raises(ValueError):
        nopt.param_groups[0]["betas"] = (0.9, 0.99)  # not an SGD option
    extra = nn_cuda.zeros(2, requires_grad=True, dtype=nn_cuda.float64)
    nopt.add_param_group({"params": [extra], "lr": 0.3})
    assert len(nopt.param_groups) == 3 and nopt.param_groups[2]["lr"] == 0.3


def test_adam_group_options(rng):
    npar, tp = make_params(rng, "float64", "cpu")
    nopt = optim.Adam([{"params": [npar[0]], "betas": (0.5, 0.6), "amsgrad": True}, {"params": [npar[1]]}], lr=0.01)
    topt = torch.optim.Adam([{"params": [tp[0]], "betas": (0.5, 0.6), "amsgrad": True}, {"params": [tp[1]]}], lr=0.01)
    assert nopt.param_groups[0]["betas"] == (0.5, 0.6) and nopt.param_groups[1]["betas"] == (0.9, 0.999)
    for _ in range(3):
        set_grads(rng, npar, tp, "float64", "cpu")
        nopt.step()
        topt.step()
    for n, t in zip(npar, tp):
        close(n, t, 1e-12)


def test_zero_grad_and_errors():
    p = nn_cuda.ones(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * 2).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert np.all(p.grad.numpy() == 0)
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradient: skipped
    assert np.all(p.numpy() == 1)
    with pytest.raises(ValueError):
        optim.SGD([p], lr=-0.1)
    with pytest.raises(ValueError):
        optim.Adam([p], betas=(1.5, 0.9))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    assert "SGD" in repr(opt) and "lr: 0.1" in repr(opt)


def test_step_closure_and_grad_scale():
    p = nn_cuda.tensor([3.0, -4.0], requires_grad=True)
    opt = optim.SGD([p], lr=1.0)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 25.0
    assert np.allclose(p.numpy(), [3 - 6, -4 + 8])
    # Clipping fused into the step: grad (2, 0) with norm 2 clipped to 1.
    q = nn_cuda.tensor([0.0, 0.0], requires_grad=True)
    opt2 = optim.SGD([q], lr=1.0)
    q.grad = nn_cuda.tensor([2.0, 0.0])
    coef = optim.clip_coefficient(optim.total_grad_norm([q]), 1.0)
    opt2.step(grad_scale=coef)
    assert np.allclose(q.numpy(), [-1.0, 0.0], atol=1e-5)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01, amsgrad=True)),
                                     ("AdamW", dict(lr=0.01)), ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_state_dict_round_trip(rng, name, kw):
    npar, _ = make_params(rng, "float64", "cpu")
    opt = getattr(optim, name)(npar, **kw)
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(4)]

    def step(o, ps, gs):
        for p, g in zip(ps, gs):
            p.grad = nn_cuda.tensor(g)
        o.step()

    for gs in grads[:2]:
        step(opt, npar, gs)
    state = opt.state_dict()
    assert state["metadata"]["optimizer"] == name and len(state["tensors"]) > 0
    resumed = [p.detach().clone().requires_grad_(True) for p in npar]
    opt2 = getattr(optim, name)(resumed, **kw)
    opt2.load_state_dict(state)
    for gs in grads[2:]:
        step(opt, npar, gs)
        step(opt2, resumed, gs)
    for a, b in zip(npar, resumed):
        assert np.array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError):
        other = optim.SGD([p.detach().clone().requires_grad_(True) for p in npar], lr=0.1) if name != "SGD" \
            else optim.Adam([p.detach().clone().requires_grad_(True) for p in npar])
        other.load_state_dict(state)


# ---- schedulers -----------------------------------------------------------------------------


def lr_sequences(make_nn, make_torch, steps, groups=2):
    base = [0.1, 0.02][:groups]
    np_ = [nn_cuda.zeros(1, requires_grad=True) for _ in base]
    tp = [torch.zeros(1, requires_grad=True) for _ in base]
    nopt = optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(np_, base)], lr=0.1)
    topt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(tp, base)], lr=0.1)
    ns, ts = make_nn(nopt), make_torch(topt)
    seq_n, seq_t = [list(ns.get_last_lr())], [list(ts.get_last_lr())]
    for _ in range(steps):
        nopt.step()
        topt.step()
        ns.step()
        ts.step()
        seq_n.append(list(ns.get_last_lr()))
        seq_t.append(list(ts.get_last_lr()))
        assert [g["lr"] for g in nopt.param_groups] == seq_n[-1]
    return np.array(seq_n), np.array(seq_t), ns


def test_step_lr():
    n, t, s = lr_sequences(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
                           lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10)
    np.testing.assert_allclose(n, t, rtol=1e-12)
    assert s.last_epoch == 10


def test_exponential_lr():
    n, t, _ = lr_sequences(lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9),
                           lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9), 12)
    np.testing.assert_allclose(n, t, rtol=1e-10)


def test_cosine_annealing_lr():
    n, t, _ = lr_sequences(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
                           lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 10)
    np.testing.assert_allclose(n, t, rtol=1e-9, atol=1e-12)


def test_cosine_warmup_lr():
    n, _, _ = lr_sequences(lambda o: lr_scheduler.CosineWarmupLR(o, warmup_steps=4, total_steps=12, min_lr=0.001),
                           lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0), 14)
    for step, lrs in enumerate(n):
        for base, lr in zip([0.1, 0.02], lrs):
            if step < 4:
                want = base * step / 4
            elif step < 12:
                want = 0.001 + (base - 0.001) * (1 + math.cos(math.pi * (step - 4) / 8)) / 2
            else:
                want = 0.001
            assert lr == pytest.approx(want, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=2),
                                dict(threshold_mode="abs", threshold=0.1, patience=1, cooldown=2, min_lr=0.004)])
def test_reduce_lr_on_plateau(kw):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.9, 0.91, 0.92, 0.93, 0.85, 0.86, 0.86, 0.87, 0.88, 0.9, 0.95, 0.99,
               0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99]
    if "patience" not in kw:
        kw = dict(kw, patience=3)
    p, q = nn_cuda.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    nopt, topt = optim.SGD([p], lr=0.1), torch.optim.SGD([q], lr=0.1)
    ns = lr_scheduler.ReduceLROnPlateau(nopt, **kw)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    for m in metrics:
        ns.step(m)
        ts.step(m)
        assert nopt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        assert ns.num_bad_epochs == ts.num_bad_epochs
        assert ns.best == ts.best
    assert nopt.param_groups[0]["lr"] < 0.1


def test_scheduler_state_dict_round_trip():
    p = nn_cuda.zeros(1, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    s = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        s.step()
    state = s.state_dict()
    assert state["scheduler"] == "StepLR" and state["last_epoch"] == "3"
    opt2 = optim.SGD([nn_cuda.zeros(1, requires_grad=True)], lr=0.1)
    s2 = lr_scheduler.StepLR(opt2, step_size=2, gamma=0.5)
    s2.load_state_dict(state)
    for _ in range(3):
        s.step()
        s2.step()
        assert s.get_last_lr() == s2.get_last_lr()
    with pytest.raises(ValueError):
        lr_scheduler.ExponentialLR(opt2, 0.9).load_state_dict(state)


# ---- early stopping, clipping, penalties ----------------------------------------------------


def test_early_stopping_restores_best():
    model = nn.Linear(2, 1)
    stopper = optim.EarlyStopping(patience=2, min_delta=0.01)
    assert stopper.best == math.inf and stopper.best_epoch == -1
    metrics = [1.0, 0.5, 0.495, 0.6, 0.4]
    best_weight = None
    stops = []
    for epoch, m in enumerate(metrics):
        with nn_cuda.no_grad():
            model.weight.fill_(float(epoch))
        if epoch == 1:
            best_weight = model.weight.numpy().copy()
        stops.append(stopper.step(m, model))
        if stops[-1]:
            break
    assert stops == [False, False, False, True]  # 0.495 is not better by more than min_delta
    assert stopper.should_stop and stopper.best == 0.5 and stopper.best_epoch == 1 and stopper.counter == 2
    assert np.array_equal(model.weight.numpy(), best_weight)
    assert list(stopper.best_state.keys()) == ["weight", "bias"]


def test_early_stopping_max_mode_without_model():
    stopper = optim.EarlyStopping(patience=1, mode="max", restore_best=False)
    assert [stopper.step(a) for a in [0.5, 0.7, 0.6]] == [False, False, True]
    assert stopper.best == 0.7 and stopper.epoch == 3
    with pytest.raises(ValueError):
        optim.EarlyStopping(mode="up")
    with pytest.raises(ValueError):
        stopper.restore_best(nn.Linear(1, 1))


def test_clipping_aliases_match_torch(rng):
    g = rng.standard_normal((4, 4))
    p, q = nn_cuda.zeros(4, 4, requires_grad=True, dtype=nn_cuda.float64), torch.zeros(4, 4, requires_grad=True,
                                                                                        dtype=torch.float64)
    p.grad, q.grad = nn_cuda.tensor(g), torch.tensor(g)
    assert optim.clip_grad_norm_([p], 1.0).item() == pytest.approx(torch.nn.utils.clip_grad_norm_([q], 1.0).item())
    close(p.grad, q.grad, 1e-9)
    assert optim.total_grad_norm(p).item() == pytest.approx(1.0, rel=1e-5)


def test_penalties(rng):
    w = rng.standard_normal((3, 3))
    p = nn_cuda.tensor(w, dtype=nn_cuda.float64, requires_grad=True)
    l1 = optim.l1_penalty([p], 0.1)
    assert l1.item() == pytest.approx(0.1 * np.abs(w).sum())
    l1.backward()
    np.testing.assert_allclose(p.grad.numpy(), 0.1 * np.sign(w))
    p.grad = None
    l2 = optim.l2_penalty([p], 0.2)
    assert l2.item() == pytest.approx(0.1 * (w ** 2).sum())
    l2.backward()
    np.testing.assert_allclose(p.grad.numpy(), 0.2 * w)
    # l2_penalty moves the parameters as SGD's weight_decay does.
    a = nn_cuda.tensor(w, dtype=nn_cuda.float64, requires_grad=True)
    b = nn_cuda.tensor(w, dtype=nn_cuda.float64, requires_grad=True)
    opt_a, opt_b = optim.SGD([a], lr=0.1), optim.SGD([b], lr=0.1, weight_decay=0.2)
    ((a * a).sum() + optim.l2_penalty([a], 0.2)).backward()
    (b * b).sum().backward()
    opt_a.step()
    opt_b.step()
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-14)
