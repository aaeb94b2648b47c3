#!/usr/bin/env bash
# Installs a built nn_cuda into a scratch prefix, then configures, builds and runs the outside
# project tests/consumer against it, the way a user would (find_package + nn::nn_cuda). Also
# checks the installed header set: the umbrella and public headers present, internal ones absent.
#
#   tests/install_consumer.sh BUILD_DIR WORK_DIR [extra cmake args for the consumer...]
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 BUILD_DIR WORK_DIR [cmake args...]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
work_dir=$2
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix="$work_dir/prefix"

rm -rf "$work_dir"
mkdir -p "$work_dir"
cmake --install "$build_dir" --prefix "$prefix" >"$work_dir/install.log"

fail=0
inc="$prefix/include/nn"
for f in nn.h core/tensor.h core/device.h core/stream.h core/allocator.h core/rng.h \
         core/error.h core/dtype.h kernels/ops.h; do
  [[ -f "$inc/$f" ]] || { echo "FAIL: $inc/$f was not installed"; fail=1; }
done
for f in core/cuda_context.h core/cudnn_context.h kernels/backend.h kernels/math.h \
         kernels/indexing.h kernels/cpu kernels/cuda; do
  [[ ! -e "$inc/$f" ]] || { echo "FAIL: internal $inc/$f was installed"; fail=1; }
done
for f in nn_cudaConfig.cmake nn_cudaConfigVersion.cmake nn_cudaTargets.cmake; do
  [[ -n $(find "$prefix" -path "*/cmake/nn_cuda/$f") ]] || { echo "FAIL: $f not installed"; fail=1; }
done
[[ $fail -eq 0 ]] || exit 1

# The consumer sees only the install prefix, never our source or build tree.
cmake -S "$here/consumer" -B "$work_dir/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" "$@"
cmake --build "$work_dir/build"
"$work_dir/build/nn_consumer"
echo "install_consumer: PASS (installed to $prefix)"
