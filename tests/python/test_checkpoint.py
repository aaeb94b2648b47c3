"""Files: nn_cuda's safetensors against the `safetensors` package (both directions), state dicts
moving between nn_cuda modules and their torch twins, corrupt files, and training checkpoints
that resume exactly."""
import numpy as np
import pytest
import torch

import nn_cuda
from nn_cuda import nn, optim
from nn_cuda.optim import lr_scheduler


def safetensors_torch():
    try:
        import safetensors.torch as st
    except ImportError as e:
        pytest.skip(f"the safetensors package is not installed ({e}); pip install safetensors")
    return st


def sample_tensors(rng):
    return {
        "w32": rng.standard_normal((3, 4)).astype(np.float32),
        "w64": rng.standard_normal(5),
        "idx": rng.integers(-5, 5, (2, 2)).astype(np.int64),
        "mask": rng.uniform(size=7) > 0.5,
        "half": rng.standard_normal(4).astype(np.float16),
        "scalar": np.array(2.5, dtype=np.float32),
    }


def test_save_safetensors_loads_in_safetensors_package(tmp_path, rng, device):
    st = safetensors_torch()
    values = sample_tensors(rng)
    path = tmp_path / "nn.safetensors"
    nn_cuda.save_safetensors(path, {k: nn_cuda.tensor(v, device=device) for k, v in values.items()},
                             metadata={"epoch": 3, "note": "hi"})
    loaded = st.load_file(str(path))
    assert sorted(loaded) == sorted(values)
    for k, v in values.items():
        assert loaded[k].numpy().dtype == v.dtype and loaded[k].numpy().shape == v.shape
        np.testing.assert_array_equal(loaded[k].numpy(), v)
    assert nn_cuda.safetensors_metadata(path) == {"epoch": "3", "note": "hi"}
    # bfloat16 too (NumPy has none: compare through torch).
    b = torch.randn(6).to(torch.bfloat16)
    nn_cuda.save_safetensors(path, {"b": nn_cuda.tensor(b.float().numpy(), dtype=nn_cuda.bfloat16)})
    assert torch.equal(st.load_file(str(path))["b"], b)


def test_safetensors_package_file_loads_in_nn_cuda(tmp_path, rng, device):
    st = safetensors_torch()
    values = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sample_tensors(rng).items()}
    values["bf16"] = torch.randn(3, 2).to(torch.bfloat16)
    values["i32"] = torch.arange(4, dtype=torch.int32)  # widened to int64 on load
    path = tmp_path / "torch.safetensors"
    st.save_file(values, str(path), metadata={"format": "pt"})
    loaded = nn_cuda.load_safetensors(path, device=device)
    assert sorted(loaded) == sorted(values)
    for k, v in values.items():
        got = loaded[k].cpu()
        if v.dtype == torch.bfloat16:
            assert got.dtype == nn_cuda.bfloat16
            assert torch.equal(torch.from_numpy(got.float().numpy()).to(torch.bfloat16), v)
        elif v.dtype == torch.int32:
            assert got.dtype == nn_cuda.int64 and got.numpy().tolist() == [0, 1, 2, 3]
        else:
            np.testing.assert_array_equal(got.numpy(), v.numpy())
    assert nn_cuda.safetensors_metadata(path) == {"format": "pt"}


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        y = torch.nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc(y.flatten(1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.relu(self.bn(self.conv(x))))))


def train_a_little(model, steps=3, seed=0):
    """A few training steps so that the weights and the batch-norm statistics are not initial."""
    rng = np.random.default_rng(seed)
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        x = nn_cuda.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32))
        y = nn_cuda.tensor(rng.integers(0, 3, 8))
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()


def test_nn_state_dict_into_torch_twin(tmp_path, rng):
    st = safetensors_torch()
    net = Net()
    train_a_little(net)
    path = tmp_path / "net.safetensors"
    net.save(path)
    twin = TorchNet()
    twin.load_state_dict(st.load_file(str(path)))
    net.eval()
    twin.eval()
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(net(nn_cuda.tensor(x)).numpy(), twin(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_torch_state_dict_into_nn(tmp_path, rng):
    st = safetensors_torch()
    twin = TorchNet()
    twin.train()
    twin(torch.randn(8, 1, 8, 8))  # move the running statistics
    path = tmp_path / "twin.safetensors"
    st.save_file({k: v.contiguous() for k, v in twin.state_dict().items()}, str(path))
    net = Net()
    report = net.load(path)
    assert list(report.missing_keys) == [] and list(report.unexpected_keys) == []
    net.eval()
    twin.eval()
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(net(nn_cuda.tensor(x)).numpy(), twin(torch.tensor(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)
    # Directly through NumPy as well, without a file.
    other = Net()
    other.load_state_dict({k: nn_cuda.tensor(v.numpy()) for k, v in twin.state_dict().items()})
    other.eval()
    np.testing.assert_allclose(other(nn_cuda.tensor(x)).numpy(), net(nn_cuda.tensor(x)).numpy())


def test_module_save_load_round_trip(tmp_path):
    a, b = Net(), Net()
    train_a_little(a)
    a.save(str(tmp_path / "a.safetensors"))
    b.load(tmp_path / "a.safetensors")
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(va.numpy(), vb.numpy()), k
    with pytest.raises(ValueError):
        nn.Linear(2, 2).load(tmp_path / "a.safetensors")
    report = nn.Linear(2, 2).load(tmp_path / "a.safetensors", strict=False)
    assert sorted(report.missing_keys) == ["bias", "weight"] and "fc.weight" in report.unexpected_keys


def test_corrupt_files_raise_io_error(tmp_path):
    good = tmp_path / "good.safetensors"
    nn_cuda.save_safetensors(good, {"x": nn_cuda.ones(4, 4)})
    raw = good.read_bytes()
    cases = {
        "truncated": raw[:-5],
        "garbage": b"not a safetensors file at all",
        "header_too_long": (10 ** 12).to_bytes(8, "little") + raw[8:],
        "bad_json": raw[:8] + b"{" * (len(raw) - 8),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        with pytest.raises(nn_cuda.IoError) as e:
            nn_cuda.load_safetensors(path)
        assert isinstance(e.value, OSError) and isinstance(e.value, nn_cuda.Error)
        assert name in str(e.value)
        with pytest.raises(nn_cuda.IoError):
            Net().load(path)
    with pytest.raises(nn_cuda.IoError):
        nn_cuda.load_safetensors(tmp_path / "missing.safetensors")


def make_run(seed_model):
    nn_cuda.manual_seed(seed_model)
    model = Net()
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def epoch(model, opt, sched, rng_seed):
    rng = np.random.default_rng(rng_seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(2):
        x = nn_cuda.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32))
        y = nn_cuda.tensor(rng.integers(0, 3, 8))
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    sched.step()


def test_checkpoint_resumes_identically(tmp_path):
    model, opt, sched = make_run(0)
    for e in range(2):
        epoch(model, opt, sched, e)
    path = tmp_path / "ckpt.safetensors"
    nn_cuda.save_checkpoint(path, model, opt, sched, epoch=2, metadata={"run": "a"})
    for e in range(2, 4):
        epoch(model, opt, sched, e)

    model2, opt2, sched2 = make_run(99)  # other initial weights, overwritten by the checkpoint
    info = nn_cuda.load_checkpoint(path, model2, opt2, sched2)
    assert info.epoch == 2 and info.metadata == {"run": "a"}
    assert opt2.param_groups[0]["lr"] == 0.005 and sched2.last_epoch == 2
    for e in range(2, 4):
        epoch(model2, opt2, sched2, e)
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert np.array_equal(a.numpy(), b.numpy()), k
    assert sched.get_last_lr() == sched2.get_last_lr()
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


def test_checkpoint_of_another_model_changes_nothing(tmp_path):
    model, opt, sched = make_run(0)
    path = tmp_path / "ckpt.safetensors"
    nn_cuda.save_checkpoint(path, model, opt, epoch=1)
    other = nn.Sequential(nn.Linear(3, 2))
    other_opt = optim.Adam(other.parameters())
    before = other[0].weight.numpy().copy()
    with pytest.raises(ValueError):
        nn_cuda.load_checkpoint(path, other, other_opt)
    assert np.array_equal(other[0].weight.numpy(), before)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(nn_cuda.IoError):
        nn_cuda.load_checkpoint(tmp_path / "junk.safetensors", model, opt)
    # Without a scheduler in the file, asking for one is an error; ignoring one in the file is not.
    with pytest.raises(ValueError):
        nn_cuda.load_checkpoint(path, model, opt, sched)
    nn_cuda.save_checkpoint(path, model, opt, sched, epoch=4)
    assert nn_cuda.load_checkpoint(path, model, opt).epoch == 4
