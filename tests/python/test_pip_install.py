"""`pip install .` of the repository into a fresh virtual environment (scikit-build-core builds the
library and the module), then importing nn_cuda from outside the source tree.

Slow (it builds the whole library): it runs only with NN_TEST_PIP_INSTALL=1, and skips when pip
cannot fetch the build requirements (scikit-build-core, pybind11) from its index. The CUDA choice
passes through: NN_TEST_PIP_CUDA=ON builds with CUDA (default OFF).
    NN_TEST_PIP_INSTALL=1 /usr/bin/python3 -m pytest -q tests/python/test_pip_install.py
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("NN_TEST_PIP_INSTALL") != "1",
                       reason="set NN_TEST_PIP_INSTALL=1 to build and install the wheel (minutes)"),
]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_pip_install_and_import(tmp_path):
    venv = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    if r.returncode != 0:
        pytest.skip(f"cannot create a virtual environment: {r.stderr.strip()[-300:]}")
    py = venv / "bin" / "python"
    # Build requirements must come from the index: skip (not fail) when it is unreachable.
    probe = _run([str(py), "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp_path / "probe"),
                  "scikit-build-core", "pybind11"], timeout=300)
    if probe.returncode != 0:
        pytest.skip("pip cannot fetch scikit-build-core/pybind11: " + probe.stderr.strip()[-300:])
    # pip >= 23.1 understands -C (config settings); Debian's may be older.
    _run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], timeout=300)
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL=os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2"))
    cuda = os.environ.get("NN_TEST_PIP_CUDA", "OFF")
    r = _run([str(py), "-m", "pip", "install", str(ROOT), "-C", f"cmake.define.NN_CUDA={cuda}"],
             env=env, timeout=3600)
    assert r.returncode == 0, "pip install failed:\n" + (r.stdout + r.stderr)[-4000:]

    script = textwrap.dedent("""
        import os, pathlib, sys
        import nn_cuda
        pkg = pathlib.Path(nn_cuda.__file__).parent
        assert "site-packages" in str(pkg), pkg
        names = sorted(p.name for p in pkg.iterdir())
        assert any(n.startswith("_C") and n.endswith(".so") for n in names), names
        assert any(n.startswith("libnn_cuda.so") for n in names), names
        t = nn_cuda.tensor([[1.0, 2.0]], requires_grad=True)
        (t * t).sum().backward()
        assert t.grad.tolist() == [[2.0, 4.0]]
        import nn_cuda.functional as F
        assert F.relu(nn_cuda.tensor([-1.0, 1.0])).tolist() == [0.0, 1.0]
        print("ok", nn_cuda.__version__, nn_cuda.built_with_cuda())
    """)
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # not the build tree's
    r = _run([str(py), "-c", script], cwd=str(tmp_path), env=clean)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok 0.1.0")
    # The extension finds libnn_cuda next to itself ($ORIGIN), not through the environment.
    r = _run([str(py), "-c", "import nn_cuda, pathlib; print(pathlib.Path(nn_cuda.__file__).parent)"],
             cwd=str(tmp_path), env=clean)
    pkg = pathlib.Path(r.stdout.strip())
    ext = next(pkg.glob("_C*.so"))
    rpath = _run(["readelf", "-d", str(ext)])
    if rpath.returncode == 0:
        assert "$ORIGIN" in rpath.stdout, rpath.stdout
