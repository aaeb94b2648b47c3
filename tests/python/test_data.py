"""nn_cuda.data: datasets, DataLoader batching and shuffling, transforms, Fashion-MNIST, IDX and
CSV files."""
import gzip
import time

import numpy as np
import pytest

import nn_cuda
from nn_cuda import data


def indexed_dataset(n, features=3):
    """Inputs whose row i is filled with i, targets i: batches show which examples they hold."""
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], features, axis=1)
    return data.TensorDataset(nn_cuda.tensor(x), nn_cuda.tensor(np.arange(n), dtype=nn_cuda.int64))


def epoch_indices(loader):
    out = []
    for inputs, targets in loader:
        t = targets.numpy()
        assert np.array_equal(inputs.numpy()[:, 0], t.astype(np.float32))  # rows stay paired
        out.append(t.tolist())
    return out


def test_tensor_dataset_indexing():
    ds = indexed_dataset(5)
    assert len(ds) == 5
    x, y = ds[2]
    assert x.shape == (3,) and np.all(x.numpy() == 2) and y.item() == 2
    assert ds[-1][1].item() == 4
    with pytest.raises(IndexError):
        ds[5]
    with pytest.raises(nn_cuda.ShapeError):
        data.TensorDataset(nn_cuda.zeros(3, 2), nn_cuda.zeros(4))
    sub = data.Subset(ds, [4, 0, 2])
    assert len(sub) == 3 and sub[0][1].item() == 4 and list(sub.indices) == [4, 0, 2]
    parts = data.random_split(ds, [3, 2], seed=1)
    got = sorted(int(p[i][1].item()) for p in parts for i in range(len(p)))
    assert [len(p) for p in parts] == [3, 2] and got == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("n,batch,drop_last,sizes", [(10, 3, False, [3, 3, 3, 1]), (10, 3, True, [3, 3, 3]),
                                                     (9, 3, False, [3, 3, 3]), (4, 8, False, [4]),
                                                     (4, 8, True, [])])
def test_loader_batching(n, batch, drop_last, sizes):
    loader = data.DataLoader(indexed_dataset(n), batch_size=batch, drop_last=drop_last)
    assert len(loader) == len(sizes)
    batches = epoch_indices(loader)
    assert [len(b) for b in batches] == sizes
    assert sum(batches, []) == list(range(sum(sizes)))  # in order without shuffle


@pytest.mark.parametrize("prefetch", [False, True])
def test_loader_shuffle_covers_each_index_once(prefetch):
    loader = data.DataLoader(indexed_dataset(23), batch_size=4, shuffle=True, seed=3, prefetch=prefetch)
    epochs = [sum(epoch_indices(loader), []) for _ in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(23))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert loader.epoch == 3
    # The same seed replays the same epochs; set_epoch picks one.
    again = data.DataLoader(indexed_dataset(23), batch_size=4, shuffle=True, seed=3)
    assert sum(epoch_indices(again), []) == epochs[0]
    again.set_epoch(2)
    assert sum(epoch_indices(again), []) == epochs[2] == list(again.order(2))
    other = data.DataLoader(indexed_dataset(23), batch_size=4, shuffle=True, seed=4)
    assert sum(epoch_indices(other), []) != epochs[0]


def test_loader_devices_and_errors(device):
    loader = data.DataLoader(indexed_dataset(6), batch_size=4, device=device)
    inputs, targets = next(iter(loader))
    assert inputs.device == nn_cuda.device(device if device == "cpu" else "cuda:0")
    assert targets.dtype == nn_cuda.int64
    with pytest.raises(ValueError):
        data.DataLoader(indexed_dataset(6), batch_size=0)


def images(n=4, c=1, h=5, w=6, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, c, h, w)).astype(np.float32)


def test_transforms_direct():
    x = images()
    t = nn_cuda.tensor(x)
    assert data.random_horizontal_flip(p=1.0)(t, 7) is t
    np.testing.assert_array_equal(t.numpy(), x[..., ::-1])
    t = nn_cuda.tensor(x)
    data.random_horizontal_flip(p=0.0)(t, 7)
    np.testing.assert_array_equal(t.numpy(), x)
    t = nn_cuda.tensor(x)
    data.normalize(0.5, 0.25)(t)
    np.testing.assert_allclose(t.numpy(), (x - 0.5) / 0.25, rtol=1e-6, atol=1e-6)
    x3 = images(c=3)
    t = nn_cuda.tensor(x3)
    data.normalize([0.1, 0.2, 0.3], [1.0, 2.0, 4.0])(t)
    want = (x3 - np.array([0.1, 0.2, 0.3])[None, :, None, None]) / np.array([1.0, 2.0, 4.0])[None, :, None, None]
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-6, atol=1e-6)
    t = nn_cuda.tensor(x)
    data.random_crop(0)(t, 1)
    np.testing.assert_array_equal(t.numpy(), x)


def test_random_crop_is_a_shifted_window():
    x = images(n=8, h=6, w=6, seed=2)
    t = nn_cuda.tensor(x)
    data.random_crop(2)(t, 11)
    out = t.numpy()
    assert out.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    shifts = set()
    for i in range(len(x)):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(padded[i, :, dy:dy + 6, dx:dx + 6], out[i])]
        assert hits, f"sample {i} is not a crop of the padded image"
        shifts.add(hits[0])
    assert len(shifts) > 1  # offsets drawn per sample


def test_gaussian_noise_and_compose():
    x = np.zeros((16, 1, 32, 32), dtype=np.float32)
    t = nn_cuda.tensor(x)
    data.gaussian_noise(0.5)(t, 3)
    assert abs(t.numpy().std() - 0.5) < 0.02 and abs(t.numpy().mean()) < 0.02
    t = nn_cuda.tensor(images())
    both = data.compose([data.random_horizontal_flip(1.0), data.normalize(0.5, 0.5)])
    both(t, 0)
    np.testing.assert_allclose(t.numpy(), (images()[..., ::-1] - 0.5) / 0.5, rtol=1e-6, atol=1e-6)
    assert data.transforms.random_crop is not None


@pytest.mark.parametrize("prefetch", [False, True])
def test_loader_transforms(prefetch):
    x = images(n=10)
    ds = data.TensorDataset(nn_cuda.tensor(x), nn_cuda.tensor(np.arange(10), dtype=nn_cuda.int64))
    flip = data.DataLoader(ds, batch_size=4, transform=data.random_horizontal_flip(1.0), prefetch=prefetch)
    out = np.concatenate([b.numpy() for b, _ in flip])
    np.testing.assert_array_equal(out, x[..., ::-1])

    seeds = []

    def in_place(batch, seed):  # a Python callable with a seed, changing the batch in place
        seeds.append(seed)
        batch.mul_(2.0)

    doubled = data.DataLoader(ds, batch_size=4, transform=in_place, prefetch=prefetch)
    np.testing.assert_allclose(np.concatenate([b.numpy() for b, _ in doubled]), 2 * x)
    assert len(seeds) == 3 and len(set(seeds)) == 3

    def replaced(batch):  # one argument, returning a new tensor
        return batch + 1.0

    plus = data.DataLoader(ds, batch_size=5, transform=replaced, prefetch=prefetch)
    np.testing.assert_allclose(np.concatenate([b.numpy() for b, _ in plus]), x + 1, rtol=1e-6)

    def broken(batch):
        raise RuntimeError("transform failed on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        for _ in data.DataLoader(ds, batch_size=5, transform=broken, prefetch=prefetch):
            pass


class Squares(data.Dataset):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return np.full(2, i * i, dtype=np.float32), nn_cuda.tensor(i, dtype=nn_cuda.int64)


@pytest.mark.parametrize("prefetch", [False, True])
def test_python_dataset(prefetch):
    ds = Squares(7)
    assert len(ds) == 7 and np.asarray(ds[3][0]).tolist() == [9.0, 9.0]
    loader = data.DataLoader(ds, batch_size=3, shuffle=True, seed=5, prefetch=prefetch)
    seen = []
    for x, y in loader:
        assert np.array_equal(x.numpy()[:, 0], (y.numpy() ** 2).astype(np.float32))
        seen += y.numpy().tolist()
    assert sorted(seen) == list(range(7))


def fashion_mnist_dir():
    try:
        return data.find_fashion_mnist_dir()
    except nn_cuda.IoError as e:
        pytest.skip(f"Fashion-MNIST not installed: {e}")


def test_fashion_mnist_shapes():
    root = fashion_mnist_dir()
    assert root in data.fashion_mnist_search_dirs() or root
    x, y = data.load_fashion_mnist(split="test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == nn_cuda.float32
    assert y.shape == (10000,) and y.dtype == nn_cuda.int64
    xv, yv = x.numpy(), y.numpy()
    assert xv.min() >= 0 and xv.max() <= 1 and set(np.unique(yv)) == set(range(10))
    # The same values as decoding the IDX file by hand.
    with gzip.open(f"{root}/t10k-labels-idx1-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    np.testing.assert_array_equal(yv, raw)
    np.testing.assert_array_equal(data.read_idx(f"{root}/t10k-labels-idx1-ubyte.gz").numpy(), raw)
    with pytest.raises(ValueError):
        data.load_fashion_mnist(split="valid")


def test_idx_round_trip_and_corrupt_files(tmp_path):
    arr = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    for gz in (False, True):
        path = tmp_path / f"a{int(gz)}.idx"
        data.write_idx(path, nn_cuda.tensor(arr), "ubyte", gzip=gz)
        back = data.read_idx(path)
        assert back.dtype == nn_cuda.int64 and np.array_equal(back.numpy(), arr)
        assert data.read_idx(path, dtype=nn_cuda.float32).dtype == nn_cuda.float32
    f = np.linspace(-1, 1, 6).reshape(2, 3)
    data.write_idx(tmp_path / "f.idx", nn_cuda.tensor(f), "float64")
    np.testing.assert_array_equal(data.read_idx(tmp_path / "f.idx").numpy(), f)
    raw = (tmp_path / "a0.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(nn_cuda.IoError):
        data.read_idx(tmp_path / "short.idx")
    (tmp_path / "junk.idx").write_bytes(b"\x00\x00\x08\x03\xff\xff\xff\xff" + raw[8:])
    with pytest.raises(OSError):
        data.read_idx(tmp_path / "junk.idx")
    with pytest.raises(nn_cuda.IoError):
        data.read_idx(tmp_path / "missing.idx")


def test_read_csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label,c\n1,2.5,0,3\n4, 5,1,6\n\n7,8,2,9e-1\n")
    csv = data.read_csv(path, has_header=True, label_column=2)
    assert csv.values.dtype == nn_cuda.float64 and csv.values.shape == (3, 3)
    np.testing.assert_array_equal(csv.values.numpy(), [[1, 2.5, 3], [4, 5, 6], [7, 8, 0.9]])
    assert csv.labels.numpy().tolist() == [0, 1, 2] and csv.labels.dtype == nn_cuda.int64
    assert list(csv.header) == ["a", "b", "c"] and csv.label_name == "label"
    plain = data.read_csv(path, has_header=True, dtype="float32")
    assert plain.labels is None and plain.values.shape == (3, 4) and plain.values.dtype == nn_cuda.float32
    semi = tmp_path / "s.csv"
    semi.write_text("1;2\n3;4\n")
    assert data.read_csv(semi, delimiter=";").values.numpy().tolist() == [[1, 2], [3, 4]]
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3\n")
    with pytest.raises(nn_cuda.IoError, match="bad.csv"):
        data.read_csv(bad)


def test_dropping_a_prefetching_loader_mid_epoch():
    """The prefetch thread may be waiting for the GIL inside a Python transform when the loader
    is destroyed or restarted: neither may deadlock."""
    ds = indexed_dataset(64)
    calls = []

    def slow(batch, seed):
        calls.append(seed)
        time.sleep(0.01)

    for _ in range(3):
        loader = data.DataLoader(ds, batch_size=4, transform=slow, prefetch=True)
        for _ in loader:
            break
        for _ in loader:  # a new epoch while the worker of the last one is busy
            break
        del loader
    assert len(calls) >= 6
