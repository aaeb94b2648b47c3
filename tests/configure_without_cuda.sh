#!/usr/bin/env bash
# Configures the project as on a machine with no CUDA toolkit (every directory holding nvcc
# removed from PATH, CUDA variables unset) and checks that the default NN_CUDA=AUTO chooses the
# CPU-only library, while NN_CUDA=ON fails with a message that says what is missing.
#
#   tests/configure_without_cuda.sh SOURCE_DIR WORK_DIR [extra cmake args...]
set -euo pipefail
src=$1
work=$2
shift 2

path=""
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [[ -x "$d/nvcc" ]] && continue
  path="${path:+$path:}$d"
done
run_cmake() {
  env -u CUDACXX -u CUDA_PATH -u CUDA_HOME -u CUDAToolkit_ROOT PATH="$path" \
    cmake -S "$src" -B "$1" -DNN_BUILD_TESTS=OFF -DNN_BUILD_BENCH=OFF -DNN_BUILD_APPS=OFF "${@:2}"
}

rm -rf "$work"
mkdir -p "$work"
if ! run_cmake "$work/auto" "$@" >"$work/auto.log" 2>&1; then
  cat "$work/auto.log"
  echo "FAIL: NN_CUDA=AUTO did not configure without a CUDA toolkit"
  exit 1
fi
grep -q "nn_cuda: CUDA OFF (NN_CUDA=AUTO)" "$work/auto.log" || {
  cat "$work/auto.log"
  echo "FAIL: NN_CUDA=AUTO without a toolkit did not choose the CPU-only library"
  exit 1
}
if run_cmake "$work/on" -DNN_CUDA=ON "$@" >"$work/on.log" 2>&1; then
  echo "FAIL: NN_CUDA=ON configured without a CUDA compiler"
  exit 1
fi
grep -q "NN_CUDA=ON but no CUDA compiler was found" "$work/on.log" || {
  cat "$work/on.log"
  echo "FAIL: NN_CUDA=ON without a toolkit failed without saying why"
  exit 1
}
echo "PASS: AUTO falls back to the CPU-only library; ON names the missing compiler"
