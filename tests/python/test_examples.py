"""python_examples/ in a short mode: each example runs in a subprocess on a slice of Fashion-MNIST
(one epoch, 2000 images) and must exit 0 and write what it promises (a PNG of its curves, or the
safetensors file PyTorch loaded). Skips with a reason when Fashion-MNIST is not installed (Debian:
dataset-fashion-mnist, or NN_FASHION_MNIST_DIR). CTest runs it as `python_examples`.
"""
import os
import pathlib
import subprocess
import sys

import pytest

import nn_cuda

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "python_examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
QUICK = ["--epochs", "1", "--limit", "2000", "--device", "cpu"]


def _fashion_mnist_missing():
    try:
        nn_cuda.data.find_fashion_mnist_dir()
    except nn_cuda.IoError as e:
        return str(e)
    return None


_MISSING = _fashion_mnist_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=f"Fashion-MNIST not found: {_MISSING}")


@pytest.fixture
def out_dir(request, tmp_path):
    """Where an example writes: $NN_PYTHON_TEST_OUT/<test> under CTest (kept for a look), else tmp."""
    root = os.environ.get("NN_PYTHON_TEST_OUT")
    if not root:
        return tmp_path
    path = pathlib.Path(root) / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    for old in path.iterdir():
        old.unlink()
    return path


def run_example(name, out_dir, *extra):
    env = dict(os.environ, MPLBACKEND="Agg")
    # The examples import nn_cuda like a user would: from PYTHONPATH, as this test process does.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(pathlib.Path(nn_cuda.__file__).resolve().parents[1])] +
        [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, str(EXAMPLES / name), *QUICK, "--out", str(out_dir), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def assert_png(path):
    assert path.is_file(), f"{path} was not written"
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE, f"{path} is not a PNG"
    assert path.stat().st_size > 1000, f"{path} is suspiciously small"


def test_mlp_example(out_dir):
    stdout = run_example("mlp_fashion_mnist.py", out_dir)
    assert "final test accuracy" in stdout
    assert_png(out_dir / "mlp_curves.png")
    # 16 steps on 2000 images already lift a 10-class model well above chance.
    accuracy = float(stdout.rsplit("final test accuracy", 1)[1].split("%")[0])
    assert accuracy > 50.0, stdout


def test_cnn_example(out_dir):
    stdout = run_example("cnn_fashion_mnist.py", out_dir, "--channels", "8,16", "--batch-norm",
                         "--augment")
    assert "final test accuracy" in stdout
    assert_png(out_dir / "cnn_curves.png")


def test_interop_example(out_dir):
    pytest.importorskip("safetensors", reason="the example loads weights with the safetensors package "
                                              "(pip install safetensors)")
    stdout = run_example("interop_pytorch.py", out_dir)
    assert "interop OK" in stdout
    assert (out_dir / "interop_mlp.safetensors").is_file()
