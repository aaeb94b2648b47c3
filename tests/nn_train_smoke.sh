#!/usr/bin/env bash
# nn-train from the command line: a short run writes its checkpoint, CSV and weights; --resume
# continues it; short runs of the CNN and the ResNet train; bad flags, a missing data set and a corrupt checkpoint give clear errors.
# Usage: nn_train_smoke.sh NN_TRAIN_BINARY WORK_DIR
set -uo pipefail
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect STATUS PATTERN ARGS...: runs nn-train, checks the exit status and that the output
# matches PATTERN (an extended regular expression).
expect() {
  local status=$1 pattern=$2
  shift 2
  local out rc
  out=$("$bin" "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $status ]]; then
    fail "nn-train $* exited $rc, expected $status"$'\n'"$out"
  elif ! grep -Eq -- "$pattern" <<<"$out"; then
    fail "nn-train $*: output lacks /$pattern/"$'\n'"$out"
  fi
}

common=(--limit 3000 --val-size 500 --batch-size 100 --quiet --device cpu --out "$work/run")
expect 0 "test accuracy: 0\.[0-9]+" --epochs 2 "${common[@]}"
[[ -f $work/run/checkpoint.safetensors ]] || fail "no checkpoint written"
[[ -f $work/run/nn-train-mlp.safetensors ]] || fail "no final weights written"
[[ $(wc -l <"$work/run/metrics.csv") -eq 3 ]] || fail "metrics.csv should have a header and 2 epochs"
head -1 "$work/run/metrics.csv" | grep -q '^epoch,train_loss,val_loss,val_accuracy' || fail "metrics.csv header"
ls "$work/run" | grep -q '\.tmp' && fail "a temporary file was left behind"

expect 0 "resumed from .* after epoch 2" --epochs 3 --resume "$work/run/checkpoint.safetensors" "${common[@]}"
[[ $(wc -l <"$work/run/metrics.csv") -eq 4 ]] || fail "resume should append epoch 3 to metrics.csv"
tail -1 "$work/run/metrics.csv" | grep -q '^3,' || fail "the resumed run's epoch is 3"

# The convolutional models, narrow: a CNN with batch norm, then a ResNet.
expect 0 "test accuracy: 0\.[0-9]+" --model cnn --channels 4,8 --batch-norm --epochs 1 "${common[@]}" --out "$work/cnn"
[[ -f $work/cnn/nn-train-cnn.safetensors ]] || fail "no cnn weights written"
expect 0 "layer2\): ResidualBlock" --model resnet --channels 4,8 --epochs 1 "${common[@]}" --out "$work/resnet"
[[ -f $work/resnet/nn-train-resnet.safetensors ]] || fail "no resnet weights written"
expect 1 "load_state_dict: .*missing" --model cnn --channels 4,8 --resume "$work/run/checkpoint.safetensors" "${common[@]}" --out "$work/cnn2"

expect 1 "dataset-fashion-mnist or pass --data" --data "$work/no-such-dir" "${common[@]}"
expect 2 "unknown model 'resnet9000' \(expected mlp, cnn or resnet\)" --model resnet9000
expect 2 "--model cnn takes two --channels widths" --model cnn --channels 8
expect 2 "--channels expects an integer" --model cnn --channels 8,wide
expect 2 "--channels and --batch-norm apply to --model cnn or resnet" --channels 8,16
expect 2 "unknown flag '--bogus'" --bogus
expect 2 "--epochs expects an integer" --epochs many
expect 2 "--lr needs a value" --lr
head -c 100 "$work/run/checkpoint.safetensors" >"$work/truncated.safetensors"
expect 1 "truncated.safetensors" --epochs 3 --resume "$work/truncated.safetensors" "${common[@]}"
expect 0 "usage: nn-train" --help

if [[ $fails -gt 0 ]]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "nn-train smoke test passed"
