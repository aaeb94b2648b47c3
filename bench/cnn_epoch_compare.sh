#!/usr/bin/env bash
# One CNN training epoch against PyTorch on one machine: runs bench_cnn_epoch (ours, plus LibTorch
# in the same process when it was built with it) and bench/cnn_pytorch.py epoch (PyTorch eager,
# and torch.compile with --compile) on the same device, data and thread count, and prints one
# markdown table of seconds per epoch with the ratio peer / libnn_cuda (above 1: libnn_cuda is
# faster) and the learning check (bench/report.py --only cnn_epoch). Exits 1 when a side failed
# or did not learn, or a final loss is far from ours.
#
#   bench/cnn_epoch_compare.sh BUILD_DIR [--device cuda|cpu] [--limit N] [--batch-norm | --both]
#                              [--threads N] [--compile] [--no-pytorch] [--out FILE]
#
# --limit N: the first N training images (default: all 60000). --batch-norm: the network with
# batch norm instead of the plain one; --both: both, one after the other. --out FILE also writes
# the table to FILE (e.g. under bench/results/) with a header naming the date, commit, machine
# and load. On the CPU, OMP_WAIT_POLICY defaults to passive: LibTorch's OpenMP threads otherwise
# spin between parallel regions and, on a machine with few or shared cores, fight OpenBLAS's
# threads and the neighbours' work (Debian's LibTorch 1.13 on 2 busy cores ran 5-7x slower), which
# would flatter us.
# PYTHON picks the interpreter that has torch (default: python3; on Debian's CPU PyTorch,
# /usr/bin/python3). Fashion-MNIST: as bench_cnn_epoch finds it (NN_FASHION_MNIST_DIR, else
# Debian's dataset-fashion-mnist); PyTorch gets the folder bench_cnn_epoch used.
set -euo pipefail
usage="usage: cnn_epoch_compare.sh BUILD_DIR [--device DEV] [--limit N] [--batch-norm | --both]"
usage+=" [--threads N] [--compile] [--no-pytorch] [--out FILE]"
build=${1:?$usage}
shift
device=cuda
limit=0
threads=""
compile=0
pytorch=1
out=""
variants=(plain)
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=${2:?--device needs a value}; shift 2 ;;
    --limit) limit=${2:?--limit needs a value}; shift 2 ;;
    --threads) threads=${2:?--threads needs a value}; shift 2 ;;
    --batch-norm) variants=(bn); shift ;;
    --both) variants=(plain bn); shift ;;
    --compile) compile=1; shift ;;
    --no-pytorch) pytorch=0; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    *) echo "cnn_epoch_compare.sh: unknown argument $1" >&2; echo "$usage" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

common=()
[[ $limit != 0 ]] && common+=(--limit "$limit")
if [[ -z $threads ]]; then threads=${NN_NUM_THREADS:-$(nproc 2>/dev/null || echo 1)}; fi
common+=(--threads "$threads")
[[ $device == cpu ]] && export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

status=0
: >"$tmp/cnn_epoch_ours.jsonl"
: >"$tmp/cnn_epoch_pytorch.jsonl"
for v in "${variants[@]}"; do
  flags=("${common[@]}")
  [[ $v == bn ]] && flags+=(--batch-norm)
  "$build/bench/bench_cnn_epoch" --device "$device" --json "${flags[@]}" >"$tmp/ours.part" ||
    status=1
  cat "$tmp/ours.part" >&2
  cat "$tmp/ours.part" >>"$tmp/cnn_epoch_ours.jsonl"
  [[ $pytorch == 1 ]] || continue
  data=$("$python" -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        print(json.loads(line).get("data", "")); break' "$tmp/ours.part")
  pydev=$device
  [[ $pydev == cuda* ]] && pydev=cuda
  modes=("")
  [[ $compile == 1 ]] && modes+=(--compile)
  for mode in "${modes[@]}"; do
    "$python" "$here/cnn_pytorch.py" epoch --device "$pydev" ${data:+--data "$data"} \
      "${flags[@]}" ${mode:+"$mode"} >>"$tmp/cnn_epoch_pytorch.jsonl" || status=1
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

"$python" "$here/report.py" "$tmp" --only cnn_epoch --out "$tmp/table.md" >/dev/null || status=1
cat "$tmp/table.md"
if [[ -n $out ]]; then
  mkdir -p "$(dirname "$out")"
  root=$(cd "$here/.." && pwd)
  commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ $commit != unknown ]] && ! git -C "$root" diff --quiet HEAD 2>/dev/null; then
    commit+="+dirty"
  fi
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
  torch_version=$("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
  {
    echo "# CNN training epoch: libnn_cuda against PyTorch ($device)"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| date (UTC) | $(date -u +%Y-%m-%dT%H:%M:%SZ) |"
    echo "| commit | $commit |"
    echo "| machine | ${cpu:-unknown CPU}, $(nproc 2>/dev/null || echo ?) CPUs, $(uname -sm) |"
    echo "| threads per side | $threads${OMP_WAIT_POLICY:+ (OMP_WAIT_POLICY=$OMP_WAIT_POLICY)} |"
    echo "| load average (1, 5, 15 min) before / after | $load_before / $load_after |"
    echo "| PyTorch ($(basename "$python")) | $torch_version |"
    cmd="bench/cnn_epoch_compare.sh BUILD --device $device ${common[*]}"
    [[ $compile == 1 ]] && cmd+=" --compile"
    echo "| command | $cmd (variants: ${variants[*]}) |"
    echo
    sed '1{/^## /d};2{/^$/d}' "$tmp/table.md"
  } >"$out"
  echo "wrote $out"
fi
exit "$status"
