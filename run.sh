#!/usr/bin/env bash
# One entry point for setting up, building, running and testing libnn_cuda on a fresh
# Debian/Ubuntu machine, with or without a GPU.
#
#   ./run.sh [FLAGS]      install what is missing, build, train an MLP on Fashion-MNIST with
#                         apps/nn-train (GPU when present); FLAGS go to nn-train (--help)
#   ./run.sh demo         build and run apps/nn-demo (ops on the best device, checked)
#   ./run.sh test         the whole test suite (what ./test.sh and .ci/run do):
#                           1. default build (CUDA when nvcc exists), Release: ctest
#                              (gpu-labelled tests skip without a GPU; includes the
#                              install + outside-consumer test and, with the venv of
#                              ./run.sh python, the Python module's pytest suite)
#                           2. CPU-only build with AddressSanitizer + UBSan: ctest
#   ./run.sh bench        build and run the benchmarks in bench/ (kernels; the MLP training
#                         step and a CNN epoch against LibTorch when libtorch-dev is present)
#   ./run.sh python [SCRIPT [ARGS]]
#                         set up the Python venv build/pyvenv (Debian's python3 with torch,
#                         plus safetensors and tqdm from pip), build the nn_cuda module in
#                         build/release/python, and run SCRIPT with it (for instance
#                         python_examples/mlp_fashion_mnist.py --epochs 3) or, without SCRIPT,
#                         print how to use it from a shell
#   ./run.sh deps         only install the build dependencies
#   ./run.sh stage-deps   copy Debian's GoogleTest sources, nlohmann/json and Fashion-MNIST into
#                         .deps/, for a machine with no package registry (carry .deps/ there;
#                         CMake and bench/gpu_suite.sh pick it up)
#
# Environment: BUILD_ROOT (default ./build), JOBS (default nproc), NN_CMAKE_ARGS (extra
# configure arguments for every build), NN_SKIP_INSTALL=1 (never call apt-get or pip),
# NN_PYTHON_INTERPRETER (the Python the venv is made from; default /usr/bin/python3 when it
# imports torch, else python3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_ROOT=${BUILD_ROOT:-$ROOT/build}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
read -r -a EXTRA_ARGS <<<"${NN_CMAKE_ARGS:-}"

log() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }

# ---- dependencies -----------------------------------------------------------------------------
# nvcc lives outside PATH in the usual toolkit install; CMake's NN_CUDA=AUTO looks on PATH.
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [[ -x $d/nvcc ]]; then
      export PATH="$PATH:$d"
      break
    fi
  done
fi

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

cmake_new_enough() {
  command -v cmake >/dev/null 2>&1 || return 1
  local v
  v=$(cmake --version | sed -n '1s/[^0-9]*\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  [[ -n $v ]] && printf '3.24\n%s\n' "$v" | sort -V -C
}

# Installs the Debian packages named (skipping those present). $1: "required" or "optional".
apt_install() {
  local need=$1
  shift
  local missing=()
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ ${NN_SKIP_INSTALL:-0} == 1 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing ${missing[*]} (no apt-get or NN_SKIP_INSTALL=1)"
    return 0
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
      echo "note: cannot install ${missing[*]}: not root and no sudo"
      return 0
    fi
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
    [[ $need == required ]] && echo "warning: apt-get could not install ${missing[*]}; trying on with what is here"
  fi
}

install_deps() {  # $1: "build" (library + demo) or "test" (+ GoogleTest, Google Benchmark)
  local pkgs=(ninja-build g++ libopenblas-dev nlohmann-json3-dev zlib1g-dev dataset-fashion-mnist)
  command -v cmake >/dev/null 2>&1 || pkgs+=(cmake)
  # Tools already on PATH (a CUDA image without dpkg records, say) count as present.
  command -v ninja >/dev/null 2>&1 && pkgs=("${pkgs[@]/ninja-build/}")
  command -v g++ >/dev/null 2>&1 && pkgs=("${pkgs[@]/g++/}")
  local want=()
  for p in "${pkgs[@]}"; do [[ -n $p ]] && want+=("$p"); done
  apt_install required "${want[@]}"
  if [[ $1 == test ]]; then
    apt_install optional libgtest-dev libbenchmark-dev
    apt_install optional "${PY_DEBS[@]}"
    # The Python suite and the safetensors interop test (reading and writing files with Python's
    # reference library) run in the venv; without one, the interop test needs a python3 with
    # safetensors and numpy.
    if ! setup_pyvenv && ! python3 -c 'import safetensors, numpy' >/dev/null 2>&1 &&
       [[ ${NN_SKIP_INSTALL:-0} != 1 ]]; then
      log "installing the Python packages safetensors and numpy (pip)"
      python3 -m pip install --quiet safetensors numpy ||
        python3 -m pip install --quiet --user safetensors numpy ||
        echo "note: could not install safetensors/numpy; the interop test will not be registered"
    fi
  fi
  if ! cmake_new_enough; then
    # Ubuntu 22.04 ships CMake 3.22; PyPI's cmake package is a current one.
    log "CMake >= 3.24 needed; installing it with pip"
    python3 -m pip install --quiet --user 'cmake>=3.24' || python3 -m pip install --quiet 'cmake>=3.24'
    export PATH="$HOME/.local/bin:$PATH"
    hash -r
    cmake_new_enough || { echo "error: CMake >= 3.24 is required" >&2; exit 1; }
  fi
  for tool in cmake ninja g++; do
    command -v $tool >/dev/null 2>&1 || { echo "error: $tool is required and could not be installed" >&2; exit 1; }
  done
}

# ---- Python -----------------------------------------------------------------------------------
# The nn_cuda module is built for, and tested with, Debian's python3 with its PyTorch (CPU) in a
# venv that sees the system packages and adds from pip what Debian lacks. All of it is optional
# for the library: without it the build has no Python module and no Python tests.
PY_DEBS=(pybind11-dev python3-dev python3-venv python3-pytest python3-numpy python3-matplotlib
         python3-torch)
# module name:pip package. safetensors (weights to PyTorch), tqdm (progress bars),
# scikit-build-core and pybind11 (pip install . without build isolation).
PY_PIP=(safetensors:safetensors tqdm:tqdm scikit_build_core:scikit-build-core pybind11:pybind11)
PYVENV=$BUILD_ROOT/pyvenv
PYVENV_PYTHON=""

# The interpreter the venv is made from.
python_base() {
  if [[ -n ${NN_PYTHON_INTERPRETER:-} ]]; then
    echo "$NN_PYTHON_INTERPRETER"
  elif [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
    echo /usr/bin/python3
  else
    command -v python3 || true
  fi
}

# Creates $PYVENV (or reuses it when made from the same interpreter) and pip-installs what it
# lacks; sets PYVENV_PYTHON. Returns 1, with a note, when no venv can be made.
setup_pyvenv() {
  local base
  base=$(python_base)
  if [[ -z $base ]] || ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "note: no Python venv (${base:-no python3}: no venv/ensurepip module; Debian: python3-venv)"
    return 1
  fi
  if [[ -x $PYVENV/bin/python && $(cat "$PYVENV/.nn-base" 2>/dev/null) == "$base" ]] &&
     "$PYVENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    :
  else
    log "creating the venv $PYVENV from $base (with its site packages)"
    rm -rf "$PYVENV"
    if ! "$base" -m venv --system-site-packages "$PYVENV"; then
      echo "note: $base -m venv failed (Debian: python3-venv); no Python venv"
      rm -rf "$PYVENV"
      return 1
    fi
    echo "$base" >"$PYVENV/.nn-base"
  fi
  local missing=() entry
  for entry in "${PY_PIP[@]}"; do
    "$PYVENV/bin/python" -c "import ${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ ${NN_SKIP_INSTALL:-0} == 1 ]]; then
      echo "note: not installing ${missing[*]} into $PYVENV (NN_SKIP_INSTALL=1)"
    else
      log "installing ${missing[*]} into $PYVENV (pip)"
      "$PYVENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}" ||
        echo "note: pip could not install ${missing[*]}; the tests that need them fail or skip"
    fi
  fi
  PYVENV_PYTHON=$PYVENV/bin/python
}

# Configure arguments that make a build use the venv (the module, the Python tests and the
# safetensors interop test); none without a venv.
python_cmake_args() {
  if [[ -n $PYVENV_PYTHON ]]; then
    printf '%s\n' "-DPython_EXECUTABLE=$PYVENV_PYTHON" "-DNN_PYTHON3=$PYVENV_PYTHON"
  fi
}

# ./run.sh python [SCRIPT [ARGS...]]
cmd_python() {
  install_deps build
  apt_install optional "${PY_DEBS[@]}"
  setup_pyvenv || { echo "error: the Python module needs a venv (see the note above)" >&2; exit 1; }
  local dir=$BUILD_ROOT/release
  configure "$dir" -DCMAKE_BUILD_TYPE=Release -DNN_PYTHON=ON "-DPython_EXECUTABLE=$PYVENV_PYTHON"
  build "$dir" --target nn_cuda_python
  if [[ $# -gt 0 ]]; then
    log "run $*"
    PYTHONPATH="$dir/python${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=${MPLBACKEND:-Agg} \
      "$PYVENV_PYTHON" "$@"
  else
    cat <<EOF

The nn_cuda module is in $dir/python. To use it from a shell:
  source $PYVENV/bin/activate
  export PYTHONPATH=$dir/python
  python -c 'import nn_cuda; print(nn_cuda.randn(2, 3))'
  python python_examples/mlp_fashion_mnist.py --epochs 3
Or in one go: ./run.sh python python_examples/mlp_fashion_mnist.py --epochs 3
EOF
  fi
}

# Copies what a machine with no package registry (the lent GPU runner) cannot install into the
# git-ignored .deps/, which travels with the run and CMake / bench/gpu_suite.sh pick up:
# GoogleTest's sources and nlohmann/json (required), Fashion-MNIST for the training tests
# (optional, about 30 MB gzipped). Google Benchmark is not staged: Debian ships it only as a
# shared library built against this distribution's libstdc++ and glibc, which another image may
# not load, and no source tree is packaged; without it the kernel benchmarks build against the
# built-in harness bench/mini_benchmark.h, which runs on any image.
stage_deps() {
  local src=/usr/src/googletest json=/usr/include/nlohmann
  [[ -f $src/CMakeLists.txt ]] || { echo "error: $src not found (apt-get install libgtest-dev)" >&2; exit 1; }
  [[ -f $json/json.hpp ]] || { echo "error: $json/json.hpp not found (apt-get install nlohmann-json3-dev)" >&2; exit 1; }
  rm -rf "$ROOT/.deps/googletest" "$ROOT/.deps/nlohmann_json" "$ROOT/.deps/fashion-mnist"
  mkdir -p "$ROOT/.deps/nlohmann_json/include"
  cp -a "$src" "$ROOT/.deps/googletest"
  cp -a "$json" "$ROOT/.deps/nlohmann_json/include/"
  echo "staged $src and $json in $ROOT/.deps/"
  local fm=${NN_FASHION_MNIST_DIR:-}
  if [[ -z $fm ]]; then
    fm=$(dpkg -L dataset-fashion-mnist 2>/dev/null | grep '/train-images-idx3-ubyte' | head -1 || true)
    fm=${fm%/*}
  fi
  if [[ -n $fm && -d $fm ]]; then
    mkdir -p "$ROOT/.deps/fashion-mnist"
    cp -a "$fm"/*-ubyte* "$ROOT/.deps/fashion-mnist/"
    echo "staged Fashion-MNIST from $fm in $ROOT/.deps/fashion-mnist"
  else
    echo "note: Fashion-MNIST not staged (apt-get install dataset-fashion-mnist): the training" \
         "tests will fail where it is missing"
  fi
  echo "note: Google Benchmark is not staged; the kernel benchmarks use the built-in harness there"
}

# ---- build steps ------------------------------------------------------------------------------
# configure DIR ARGS...: an existing build directory is reconfigured, so reruns are incremental.
configure() {
  local dir=$1
  shift
  log "configure $dir $*"
  cmake -S "$ROOT" -B "$dir" -G Ninja "$@" "${EXTRA_ARGS[@]}"
}

build() {
  local dir=$1
  shift
  log "build $dir ${*:-}"
  cmake --build "$dir" -j "$JOBS" "$@"
}

run_ctest() {
  log "ctest $1"
  ctest --test-dir "$1" --output-on-failure --no-tests=error -j "$JOBS" --timeout 1500
}

# run_app NAME ARGS...: builds apps/NAME and runs it.
run_app() {
  local app=$1
  shift
  install_deps build
  local dir=$BUILD_ROOT/release
  configure "$dir" -DCMAKE_BUILD_TYPE=Release -DNN_BUILD_TESTS=OFF
  build "$dir" --target "$app"
  log "run $app $*"
  "$dir/apps/$app" "$@"
}

cmd_bench() {
  install_deps test
  apt_install optional libtorch-dev  # the peer of bench_mlp_step and bench_cnn_epoch on the CPU
  local dir=$BUILD_ROOT/release
  configure "$dir" -DCMAKE_BUILD_TYPE=Release -DNN_BUILD_TESTS=OFF
  build "$dir"
  # A run on a GPU leaves a JSON record (date, commit, device, clocks, table) in bench/results/.
  local record=() gpu=""
  if command -v nvidia-smi >/dev/null 2>&1; then
    gpu=$(nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null | head -1 || true)
  fi
  local commit
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  log "bench_mlp_step"
  "$dir/bench/bench_mlp_step"
  log "bench_cnn_epoch"
  "$dir/bench/bench_cnn_epoch" --limit 6400
  for b in bench_matmul bench_softmax bench_linear bench_conv; do
    log "$b"
    if [[ -n $gpu ]]; then
      mkdir -p "$ROOT/bench/results"
      record=(--benchmark_out="$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-$commit-$b.json"
              --benchmark_out_format=json
              --benchmark_context="commit=$commit,gpu=${gpu//,/;}")
    fi
    "$dir/bench/$b" "${record[@]}" "$@"
  done
}

cmd_test() {
  install_deps test
  local failed=() start=$SECONDS

  # 1. The default build: NN_CUDA=AUTO uses CUDA whenever nvcc is found.
  #    With the venv, it builds the Python module for it and runs the Python suite (label python).
  local rel=$BUILD_ROOT/release py_args
  mapfile -t py_args < <(python_cmake_args)
  if configure "$rel" -DCMAKE_BUILD_TYPE=Release -DNN_BUILD_TESTS=ON "${py_args[@]}" && build "$rel"; then
    run_ctest "$rel" || failed+=("ctest (release build)")
  else
    failed+=("release build")
  fi

  # 2. CPU only, with AddressSanitizer and UndefinedBehaviorSanitizer; without CBLAS, so the
  #    built-in GEMM (what a machine without OpenBLAS uses) meets the same tests.
  #    No Python module there; the venv still serves the safetensors interop test.
  local san=$BUILD_ROOT/sanitize
  py_args=()
  [[ -n $PYVENV_PYTHON ]] && py_args=("-DNN_PYTHON3=$PYVENV_PYTHON")
  if configure "$san" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNN_CUDA=OFF -DNN_SANITIZE=ON \
       -DNN_BLAS=OFF -DNN_BUILD_TESTS=ON -DNN_BUILD_BENCH=OFF "${py_args[@]}" && build "$san"; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
      run_ctest "$san" || failed+=("ctest (sanitizer build)")
  else
    failed+=("sanitizer build")
  fi

  log "test suite finished in $((SECONDS - start)) s"
  if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
  fi
  echo "ALL PASSED"
}

cmd=${1:-train}
[[ $# -gt 0 ]] && shift
case $cmd in
  train) run_app nn-train "$@" ;;
  demo) run_app nn-demo "$@" ;;
  test) cmd_test ;;
  bench) cmd_bench "$@" ;;
  python) cmd_python "$@" ;;
  deps) install_deps test ;;
  stage-deps) stage_deps ;;
  -h | --help | help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" ;;
  *)
    # Anything else goes to nn-train (./run.sh --epochs 5 --device cpu).
    run_app nn-train "$cmd" "$@"
    ;;
esac
