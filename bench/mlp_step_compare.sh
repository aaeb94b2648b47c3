#!/usr/bin/env bash
# The MLP training-step comparison against PyTorch on one machine: runs bench_mlp_step (ours,
# plus LibTorch when it was built with it) and bench/mlp_step_pytorch.py (PyTorch eager, and
# torch.compile with --compile) on the same device, and prints one markdown table of ms per
# step with the ratio peer / libnn_cuda (above 1: libnn_cuda is faster).
#
#   bench/mlp_step_compare.sh BUILD_DIR [--device cuda|cpu] [--compile] [--out FILE]
#
# PYTHON picks the interpreter that has torch (default: python3; on Debian's CPU PyTorch,
# /usr/bin/python3). --out also writes the table to FILE (e.g. under bench/results/).
set -euo pipefail
build=${1:?usage: mlp_step_compare.sh BUILD_DIR [--device DEV] [--compile] [--out FILE]}
shift
device=cuda
compile=0
out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --compile) compile=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "mlp_step_compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$build/bench/bench_mlp_step" --device "$device" --json >"$tmp/ours.jsonl"
"$python" "$here/mlp_step_pytorch.py" --device "$device" >"$tmp/peers.jsonl"
if [[ $compile == 1 ]]; then
  "$python" "$here/mlp_step_pytorch.py" --device "$device" --compile >>"$tmp/peers.jsonl"
fi

"$python" - "$tmp/ours.jsonl" "$tmp/peers.jsonl" "$device" >"$tmp/table.md" <<'EOF'
import json, sys
rows = [json.loads(l) for f in sys.argv[1:3] for l in open(f) if l.strip()]
ours = {r["case"]: r["ms"] for r in rows if r["peer"] == "nn_cuda"}
peers = sorted({r["peer"] for r in rows if r["peer"] != "nn_cuda"})
ms = {(r["case"], r["peer"]): r["ms"] for r in rows}
print(f"MLP training step on {sys.argv[3]}: ms per step; ratio = peer / libnn_cuda (above 1: libnn_cuda is faster)\n")
print("| case | libnn_cuda | " + " | ".join(f"{p} | ratio" for p in peers) + " |")
print("|---|---|" + "---|---|" * len(peers))
for case, t in ours.items():
    cells = []
    for p in peers:
        v = ms.get((case, p))
        cells += [f"{v:.3f}", f"{v / t:.2f}x"] if v else ["-", "-"]
    print(f"| {case} | {t:.3f} | " + " | ".join(cells) + " |")
EOF
cat "$tmp/table.md"
if [[ -n $out ]]; then
  mkdir -p "$(dirname "$out")"
  cp "$tmp/table.md" "$out"
  echo "wrote $out"
fi
