#!/usr/bin/env bash
# The GPU test-and-benchmark runner: one command for a GPU CI runner or a person on a GPU machine.
# It configures and builds a Release build for the GPU present, runs the whole CTest suite (label
# gpu included), runs the GPU test binary under compute-sanitizer (memcheck, racecheck,
# synccheck), runs the kernel benchmarks with their PyTorch peers (eager and torch.compile) and
# the fused linear benchmarks against cuBLASLt and PyTorch, the conv layers of LeNet and ResNet-18
# against cuDNN and PyTorch, one CNN training epoch against PyTorch eager (and torch.compile, and
# LibTorch on the CPU when the build has it), and writes a markdown result file
# (bench/report.py) under bench/results/ or --out. It exits 1 when a build, test, sanitizer or
# benchmark step failed (after writing the report), 2 on bad arguments or when no GPU is present.
#
#   bench/gpu_suite.sh [--out DIR] [--build DIR] [--quick] [--skip-sanitizer] [--allow-cpu]
#                      [--arch ARCH] [--steps LIST] [--sanitizer-filter GTEST_FILTER]
#
#   --out DIR            where the result file goes (default bench/results/); with --out the raw
#                        outputs and logs also go there as one .tar.gz
#   --build DIR          build folder (default build/gpu-suite); its gpu_suite/ keeps the raw
#                        outputs, so a later call with --steps adds to the same report
#   --quick              sanitizers on a filtered subset, short benchmark runs
#   --skip-sanitizer     no compute-sanitizer runs
#   --allow-cpu          without a GPU: a dry run that builds with NN_CUDA=OFF, runs CTest and the
#                        CPU benchmarks and writes the report (to exercise this script)
#   --arch ARCH          CMAKE_CUDA_ARCHITECTURES (default: the GPU's compute_cap, 9.0 -> 90)
#   --steps LIST         comma-separated subset of configure,build,test,sanitize,bench,
#                        bench_linear,bench_conv,cnn_epoch,report (default: all; report always
#                        runs last). bench: matmul, softmax/cross-entropy, the MLP step, PyTorch's
#                        kernels and the ceilings; bench_linear: GEMM + bias + activation, ours /
#                        cuBLASLt / auto and PyTorch eager / compile; bench_conv: the conv layers
#                        of LeNet and ResNet-18, each pass, ours / cuDNN / auto and PyTorch;
#                        cnn_epoch: one Fashion-MNIST epoch of nn-train's CNN (plain and with
#                        batch norm), ours and PyTorch eager / compile, and its learning check.
#                        Each is sized for one 10-minute call on an H100, PyTorch's share capped
#                        (torch.compile: bench 120 s, bench_linear 150 s; 60 and 90 with --quick;
#                        bench_conv's PyTorch cases 150 s, 60 with --quick; cnn_epoch's compiled
#                        epoch 240 s)
#   --sanitizer-filter F GoogleTest filter for the sanitizer runs (--quick has a default)
#
# Environment: JOBS (default nproc), NN_CMAKE_ARGS (extra configure arguments), NN_CTEST_ARGS
# (extra ctest arguments, e.g. "-LE train"), NN_SANITIZER_TIMEOUT (seconds per sanitizer run,
# default 3000), NN_COMMIT (the commit to report where the tree has no .git), NVIDIA_SMI (the
# nvidia-smi to ask), PYTHON (the interpreter with torch, default python3).
# With no package registry: GoogleTest, nlohmann/json and Fashion-MNIST come from .deps/
# (./run.sh stage-deps on a machine that has them; carry .deps/ along); Google Benchmark is
# optional (the kernel benchmarks fall back to bench/mini_benchmark.h).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
PYTHON=${PYTHON:-python3}
NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
ALL_STEPS=(configure build test sanitize bench bench_linear bench_conv cnn_epoch report)
QUICK_SANITIZER_FILTER='CudaRuntime.*:TensorGpu.*:RandomGpu.*:OpGpu*:NnOpsGpu.*'

out_dir=$ROOT/bench/results
build_dir=$ROOT/build/gpu-suite
quick=0
skip_sanitizer=0
allow_cpu=0
arch=""
steps=""
sanitizer_filter=""
out_given=0

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die_usage() {
  echo "gpu_suite.sh: $*" >&2
  echo "usage: bench/gpu_suite.sh [--out DIR] [--build DIR] [--quick] [--skip-sanitizer]" \
       "[--allow-cpu] [--arch ARCH] [--steps LIST] [--sanitizer-filter F] (--help)" >&2
  exit 2
}
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

parse_args() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --out) [[ $# -ge 2 ]] || die_usage "--out needs a folder"; out_dir=$2; out_given=1; shift 2 ;;
      --build) [[ $# -ge 2 ]] || die_usage "--build needs a folder"; build_dir=$2; shift 2 ;;
      --arch) [[ $# -ge 2 ]] || die_usage "--arch needs a value (e.g. 90)"; arch=$2; shift 2 ;;
      --steps) [[ $# -ge 2 ]] || die_usage "--steps needs a list"; steps=$2; shift 2 ;;
      --sanitizer-filter)
        [[ $# -ge 2 ]] || die_usage "--sanitizer-filter needs a GoogleTest filter"
        sanitizer_filter=$2; shift 2 ;;
      --quick) quick=1; shift ;;
      --skip-sanitizer) skip_sanitizer=1; shift ;;
      --allow-cpu) allow_cpu=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die_usage "unknown argument '$1'" ;;
    esac
  done
  if [[ -z $steps ]]; then
    steps=$(IFS=,; echo "${ALL_STEPS[*]}")
  fi
  local s
  for s in ${steps//,/ }; do
    [[ " ${ALL_STEPS[*]} " == *" $s "* ]] || die_usage "unknown step '$s' in --steps (known: ${ALL_STEPS[*]})"
  done
  [[ -z $arch || $arch =~ ^[0-9]+[af]?(-real|-virtual)?(\;[0-9]+[af]?(-real|-virtual)?)*$ ]] ||
    die_usage "--arch '$arch' is not a CUDA architecture list such as 90 or 90a"
  mkdir -p "$build_dir" || die_usage "cannot create the build folder $build_dir"
  build_dir=$(cd "$build_dir" && pwd)
  WORK=$build_dir/gpu_suite
}

trim() { sed 's/^ *//; s/ *$//' <<<"$1"; }
wants() { [[ ",$steps," == *",$1,"* ]]; }

# ---- bookkeeping ------------------------------------------------------------------------------
# steps.txt holds one line per step (NAME STATUS SECONDS NOTE); report.py shows it and the exit
# status is read back from it, so a run split over several calls with --steps ends with one
# verdict.
record() {  # record NAME STATUS SECONDS [NOTE...]
  local name=$1 status=$2 secs=$3
  shift 3
  printf '%s %s %s %s\n' "$name" "$status" "$secs" "$*" >>"$WORK/steps.txt"
  log "step $name: $status ($secs s)${*:+ - $*}"
}

# run_step NAME LOGFILE CMD...: runs CMD with output to the terminal and LOGFILE; records it.
run_step() {
  local name=$1 logfile=$2
  shift 2
  local start=$SECONDS rc
  log "step $name: $*"
  "$@" 2>&1 | tee "$logfile"
  rc=${PIPESTATUS[0]}
  if [[ $rc -eq 0 ]]; then record "$name" ok $((SECONDS - start)); else
    record "$name" FAIL $((SECONDS - start)) "exit status $rc, log $(basename "$logfile")"
  fi
  return "$rc"
}

to_file() {  # to_file FILE CMD...: CMD's stdout into FILE (its stderr still goes to the log)
  local f=$1
  shift
  "$@" >"$f"
}

add_to_file() {  # add_to_file FILE CMD...: CMD's stdout added to FILE
  local f=$1
  shift
  "$@" >>"$f"
}

forget_steps() {  # drops earlier lines of the steps about to run (a rerun replaces them)
  local f=$WORK/steps.txt pattern=""
  [[ -f $f ]] || return 0
  local s
  for s in ${steps//,/ }; do pattern+="${pattern:+|}$s"; done
  grep -Ev "^(${pattern//,/|})(-[a-z_]+)? " "$f" >"$f.tmp" || true
  mv "$f.tmp" "$f"
}

step_failed() { [[ -f $WORK/steps.txt ]] && grep -q "^$1 FAIL" "$WORK/steps.txt"; }

# ---- the machine ------------------------------------------------------------------------------
detect_gpu() {
  MODE=gpu
  GPU_CAP=""
  local q
  if q=$("$NVIDIA_SMI" --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null) &&
     [[ -n $q ]]; then
    GPU_NAME=$(head -1 <<<"$q" | cut -d, -f1 | sed 's/^ *//; s/ *$//')
    GPU_CAP=$(head -1 <<<"$q" | cut -d, -f2 | tr -d ' ')
    log "GPU: $GPU_NAME (compute capability $GPU_CAP)"
    return 0
  fi
  if [[ $allow_cpu == 1 ]]; then
    MODE=cpu
    GPU_NAME=""
    log "no GPU found ($NVIDIA_SMI gave none): --allow-cpu dry run, CPU-only build, GPU steps skipped"
    return 0
  fi
  echo "gpu_suite.sh: no NVIDIA GPU found ($NVIDIA_SMI lists none). This runner needs a GPU;" \
       "use --allow-cpu for a CPU-only dry run of its steps." >&2
  exit 2
}

# 9.0 -> 90; the user's --arch wins. Plain "90", not "90a": nothing in the library needs the
# sm_90a-only instructions yet, and plain sm_90 code also runs on later chips' PTX JIT.
cuda_arch() {
  if [[ -n $arch ]]; then echo "$arch"; else echo "${GPU_CAP//./}"; fi
}

find_tools() {
  if ! command -v nvcc >/dev/null 2>&1; then
    local d
    for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
      [[ -x $d/nvcc ]] && { export PATH="$PATH:$d"; break; }
    done
  fi
  SANITIZER=$(command -v compute-sanitizer 2>/dev/null || true)
  if [[ -z $SANITIZER ]] && command -v nvcc >/dev/null 2>&1; then
    local cuda_root
    cuda_root=$(cd "$(dirname "$(command -v nvcc)")/.." && pwd)
    for c in "$cuda_root/bin/compute-sanitizer" "$cuda_root/compute-sanitizer/compute-sanitizer"; do
      [[ -x $c ]] && { SANITIZER=$c; break; }
    done
  fi
}

# env.txt: what report.py prints in the header.
write_env() {
  local commit=${NN_COMMIT:-}
  [[ -n $commit ]] || commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [[ $commit != unknown ]] && ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then
    commit+="+dirty"
  fi
  COMMIT=$commit
  {
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit=$commit"
    echo "mode=$MODE"
    echo "build=$build_dir (Release)"
    echo "raw=$WORK"
    local opts=""
    [[ $quick == 1 ]] && opts+="--quick "
    [[ $skip_sanitizer == 1 ]] && opts+="--skip-sanitizer "
    echo "options=${opts}steps=$steps"
    if [[ $MODE == gpu ]]; then
      local q
      q=$("$NVIDIA_SMI" --query-gpu=name,driver_version,compute_cap,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit \
            --format=csv,noheader,nounits 2>/dev/null | head -1)
      IFS=, read -r n drv cap sm smmax mem memmax power <<<"$q"
      echo "gpu_name=$(trim "$n")"
      echo "driver=$(trim "$drv")"
      echo "compute_cap=$(trim "$cap") (built for $(cuda_arch))"
      echo "sm_clock=$(trim "$sm") / $(trim "$smmax")"
      echo "mem_clock=$(trim "$mem") / $(trim "$memmax")"
      echo "power_limit=$(trim "$power") W"
    fi
    if command -v nvcc >/dev/null 2>&1; then
      echo "cuda=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p' | head -1)"
    fi
    local torch
    torch=$("$PYTHON" -c 'import torch; print(torch.__version__, "(CUDA available)" if torch.cuda.is_available() else "(no CUDA)")' 2>/dev/null || true)
    [[ -n $torch ]] && echo "torch=$torch"
  } >"$WORK/env.txt"
}

# Fashion-MNIST for the training tests: the system's copy, NN_FASHION_MNIST_DIR, or the copy
# ./run.sh stage-deps put in .deps/ (gunzipped here with Python: the build may lack zlib).
stage_data() {
  [[ -n ${NN_FASHION_MNIST_DIR:-} ]] && return 0
  local staged=$ROOT/.deps/fashion-mnist
  [[ -d $staged ]] || return 0
  local dest=$WORK/fashion-mnist
  mkdir -p "$dest"
  "$PYTHON" - "$staged" "$dest" <<'EOF' || { log "warning: could not unpack $staged"; return 0; }
import gzip, os, shutil, sys
src, dst = sys.argv[1:3]
for name in os.listdir(src):
    target = os.path.join(dst, name[:-3] if name.endswith(".gz") else name)
    if os.path.exists(target):
        continue
    opener = gzip.open if name.endswith(".gz") else open
    with opener(os.path.join(src, name), "rb") as f, open(target + ".part", "wb") as g:
        shutil.copyfileobj(f, g)
    os.replace(target + ".part", target)
EOF
  export NN_FASHION_MNIST_DIR=$dest
  log "Fashion-MNIST from $staged (unpacked in $dest)"
}

# ---- steps ------------------------------------------------------------------------------------
step_configure() {
  local args=(-DCMAKE_BUILD_TYPE=Release -DNN_BUILD_TESTS=ON -DNN_BUILD_BENCH=ON)
  if [[ $MODE == gpu ]]; then
    args+=(-DNN_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$(cuda_arch)")
  else
    args+=(-DNN_CUDA=OFF)
  fi
  # A generator is chosen once; passing another to an existing build folder is an error.
  if [[ ! -f $build_dir/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
    args+=(-G Ninja)
  fi
  local extra=()
  read -r -a extra <<<"${NN_CMAKE_ARGS:-}"
  run_step configure "$WORK/configure.log" cmake -S "$ROOT" -B "$build_dir" "${args[@]}" "${extra[@]}"
}

step_build() {
  run_step build "$WORK/build.log" cmake --build "$build_dir" -j "$JOBS"
}

step_test() {
  rm -f "$WORK/ctest-junit.xml"
  local extra=()
  read -r -a extra <<<"${NN_CTEST_ARGS:-}"
  run_step test "$WORK/ctest.log" ctest --test-dir "$build_dir" --output-on-failure \
    --no-tests=error -j "$JOBS" --timeout 1500 --output-junit "$WORK/ctest-junit.xml" "${extra[@]}"
}

step_sanitize() {
  local tool
  rm -f "$WORK"/sanitizer-*.log "$WORK/gtest-gpu.json"
  if [[ $skip_sanitizer == 1 ]]; then record sanitize skipped 0 "--skip-sanitizer"; return 0; fi
  if [[ $MODE != gpu ]]; then record sanitize skipped 0 "no GPU"; return 0; fi
  if [[ -z $SANITIZER ]]; then
    record sanitize FAIL 0 "compute-sanitizer not found (CUDA toolkit); pass --skip-sanitizer to run without"
    return 1
  fi
  local binary=$build_dir/tests/nn_tests_gpu
  local filter=$sanitizer_filter
  [[ -z $filter && $quick == 1 ]] && filter=$QUICK_SANITIZER_FILTER
  local limit=${NN_SANITIZER_TIMEOUT:-3000}
  for tool in memcheck racecheck synccheck; do
    local gtest_args=(--gtest_brief=1) extra=()
    if [[ -n $filter ]]; then
      gtest_args+=("--gtest_filter=$filter")
    elif [[ $tool != memcheck ]]; then
      # Whole training runs under racecheck/synccheck cost much and add little: their kernels
      # are the ones the op tests already cover.
      gtest_args+=("--gtest_filter=-TrainGpu.*")
    fi
    # Only memcheck writes the GoogleTest JSON: its counts say how many GPU tests really ran.
    [[ $tool == memcheck ]] && extra=("--gtest_output=json:$WORK/gtest-gpu.json")
    run_step "sanitize-$tool" "$WORK/sanitizer-$tool.log" timeout "$limit" "$SANITIZER" \
      --tool "$tool" --error-exitcode 86 --print-limit 50 "$binary" "${gtest_args[@]}" "${extra[@]}"
  done
}

have_torch_cuda() {
  [[ $MODE == gpu ]] &&
    "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null
}
no_torch_reason() {
  if [[ $MODE == gpu ]]; then echo "no PyTorch with CUDA in $PYTHON"; else echo "no GPU"; fi
}

# Benchmark settings: CUDA cases run at least min_time seconds each (the median of their batches
# is reported); a CPU dry run only checks that every case runs.
bench_settings() {
  BENCH_FILTER=cuda BENCH_MIN_TIME=0.5 BENCH_DEVICE=cuda
  if [[ $MODE != gpu ]]; then BENCH_FILTER=cpu BENCH_MIN_TIME=0.01 BENCH_DEVICE=cpu; fi
  [[ $quick == 1 && $MODE == gpu ]] && BENCH_MIN_TIME=0.1
  local gpu=${GPU_NAME:-none}
  BENCH_CONTEXT="commit=$COMMIT,gpu=${gpu//,/;}"  # a comma in the name must not split the list
}

# run_kernel_bench NAME STEP_RECORD MIN_TIME [EXTRA...]: one benchmark program into NAME.json.
run_kernel_bench() {
  local b=$1 record_as=$2 min_time=$3
  shift 3
  run_step "$record_as" "$WORK/$b.log" "$build_dir/bench/$b" "--benchmark_filter=$BENCH_FILTER" \
    "--benchmark_min_time=$min_time" "--benchmark_out=$WORK/$b.json" \
    --benchmark_out_format=json "--benchmark_context=$BENCH_CONTEXT" "$@"
}

step_bench() {
  rm -f "$WORK"/bench_matmul.json "$WORK"/bench_softmax.json "$WORK"/kernels_pytorch.jsonl \
    "$WORK"/mlp_step_*.jsonl
  bench_settings
  local mlp_args=()
  [[ $MODE != gpu ]] && mlp_args=(--steps 3 --warmup 1)
  [[ $quick == 1 && $MODE == gpu ]] && mlp_args=(--steps 20 --warmup 5)
  local b
  for b in bench_matmul bench_softmax; do
    run_kernel_bench "$b" "bench-$b" "$BENCH_MIN_TIME"
  done
  run_step bench-mlp_step "$WORK/mlp_step_ours.log" \
    to_file "$WORK/mlp_step_ours.jsonl" "$build_dir/bench/bench_mlp_step" --device "$BENCH_DEVICE" \
    --json "${mlp_args[@]}"
  if have_torch_cuda; then
    local qflag=() budget=120
    [[ $quick == 1 ]] && { qflag=(--quick); budget=60; }
    run_step bench-pytorch_kernels "$WORK/kernels_pytorch.log" \
      to_file "$WORK/kernels_pytorch.jsonl" "$PYTHON" "$ROOT/bench/kernels_pytorch.py" \
      "${qflag[@]}" --families ceilings,matmul,softmax --compile-budget "$budget"
    run_step bench-pytorch_mlp_step "$WORK/mlp_step_pytorch.log" \
      to_file "$WORK/mlp_step_pytorch.jsonl" "$PYTHON" "$ROOT/bench/mlp_step_pytorch.py" \
      --device cuda "${mlp_args[@]}"
  else
    record bench-pytorch skipped 0 "$(no_torch_reason)"
  fi
}

# GEMM + bias + activation: 540 CUDA cases in full (144 with --quick), so each runs for a shorter
# min_time than the kernels above; the median over its batches keeps that stable.
step_bench_linear() {
  rm -f "$WORK"/bench_linear.json "$WORK"/kernels_pytorch_linear.jsonl
  bench_settings
  local min_time=0.1 qflag=() budget=150
  [[ $MODE != gpu ]] && min_time=$BENCH_MIN_TIME
  [[ $quick == 1 ]] && { min_time=0.05; qflag=(--quick); budget=90; }
  run_kernel_bench bench_linear bench_linear-ours "$min_time" "${qflag[@]}"
  if have_torch_cuda; then
    run_step bench_linear-pytorch "$WORK/kernels_pytorch_linear.log" \
      to_file "$WORK/kernels_pytorch_linear.jsonl" "$PYTHON" "$ROOT/bench/kernels_pytorch.py" \
      "${qflag[@]}" --families linear --compile-budget "$budget"
  else
    record bench_linear-pytorch skipped 0 "$(no_torch_reason)"
  fi
}

# The conv layers of LeNet and ResNet-18: 234 CUDA cases in full over 2 batches (about 100 in
# --quick), each pass on its own, ours / cuDNN / auto; PyTorch's rows capped by a time budget.
step_bench_conv() {
  rm -f "$WORK"/bench_conv.json "$WORK"/conv_pytorch.jsonl
  bench_settings
  local min_time=0.1 qflag=() budget=150
  [[ $MODE != gpu ]] && min_time=$BENCH_MIN_TIME
  [[ $quick == 1 ]] && { min_time=0.05; qflag=(--quick); budget=60; }
  run_kernel_bench bench_conv bench_conv-ours "$min_time" "${qflag[@]}"
  if have_torch_cuda; then
    run_step bench_conv-pytorch "$WORK/conv_pytorch.log" \
      to_file "$WORK/conv_pytorch.jsonl" "$PYTHON" "$ROOT/bench/cnn_pytorch.py" conv \
      "${qflag[@]}" --budget "$budget"
  else
    record bench_conv-pytorch skipped 0 "$(no_torch_reason)"
  fi
}

# One CNN training epoch (nn-train's CNN, plain and with batch norm): ours on the device, PyTorch
# eager (and one torch.compile'd epoch, time-capped) on the same device, ours against LibTorch on
# the CPU when the build found LibTorch (a slice of the epoch: the CPU is slow), then the learning
# check. A CPU dry run trains a slice on the CPU only.
step_cnn_epoch() {
  rm -f "$WORK"/cnn_epoch_*.jsonl "$WORK"/cnn_epoch*.log "$WORK"/cnn_epoch.md
  bench_settings
  local bin=$build_dir/bench/bench_cnn_epoch args=() variant data
  # LibTorch's OpenMP threads spin between regions unless told not to (cnn_epoch_compare.sh).
  local -x OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
  [[ $MODE != gpu ]] && args=(--limit 1280 --warmup 1)
  [[ $quick == 1 && $MODE == gpu ]] && args=(--limit 20480)
  for variant in "" --batch-norm; do
    run_step "cnn_epoch-ours${variant:+_bn}" "$WORK/cnn_epoch_ours${variant:+_bn}.log" \
      add_to_file "$WORK/cnn_epoch_ours.jsonl" "$bin" --device "$BENCH_DEVICE" --json \
      "${args[@]}" $variant
  done
  local cache=$build_dir/CMakeCache.txt
  if [[ $MODE == gpu ]] && grep -qs '^Torch_DIR:' "$cache" &&
     ! grep -qs '^Torch_DIR:.*NOTFOUND' "$cache"; then
    run_step cnn_epoch-libtorch_cpu "$WORK/cnn_epoch_cpu.log" \
      add_to_file "$WORK/cnn_epoch_ours.jsonl" "$bin" --device cpu --json --limit 6400
  fi
  if have_torch_cuda; then
    data=$("$PYTHON" -c 'import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        print(json.loads(line).get("data", "")); break' "$WORK/cnn_epoch_ours.jsonl" \
      2>/dev/null || true)
    local py=("$PYTHON" "$ROOT/bench/cnn_pytorch.py" epoch --device cuda ${data:+--data "$data"})
    for variant in "" --batch-norm; do
      run_step "cnn_epoch-pytorch${variant:+_bn}" "$WORK/cnn_epoch_pytorch${variant:+_bn}.log" \
        add_to_file "$WORK/cnn_epoch_pytorch.jsonl" "${py[@]}" "${args[@]}" $variant
    done
    run_step cnn_epoch-pytorch_compile "$WORK/cnn_epoch_pytorch_compile.log" \
      add_to_file "$WORK/cnn_epoch_pytorch.jsonl" timeout 240 "${py[@]}" "${args[@]}" --compile
  else
    record cnn_epoch-pytorch skipped 0 "$(no_torch_reason)"
  fi
  run_step cnn_epoch-check "$WORK/cnn_epoch_check.log" \
    "$PYTHON" "$ROOT/bench/report.py" "$WORK" --only cnn_epoch --out "$WORK/cnn_epoch.md"
}

step_report() {
  local slug file
  slug=$(echo "${GPU_NAME:-cpu}" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\{1,\}/-/g; s/^-//; s/-$//')
  file="$out_dir/$(date -u +%Y%m%d-%H%M)-${COMMIT%%+*}-$slug.md"
  mkdir -p "$out_dir" || { log "error: cannot create $out_dir"; return 1; }
  if ! "$PYTHON" "$ROOT/bench/report.py" "$WORK" --out "$file"; then
    log "error: bench/report.py failed"
    return 1
  fi
  if [[ $out_given == 1 ]]; then
    tar -czf "${file%.md}-raw.tar.gz" -C "$build_dir" --exclude gpu_suite/fashion-mnist gpu_suite &&
      log "raw outputs: ${file%.md}-raw.tar.gz"
  fi
  REPORT=$file
}

main() {
  parse_args "$@"
  detect_gpu
  find_tools
  mkdir -p "$WORK"
  if [[ $steps == "$(IFS=,; echo "${ALL_STEPS[*]}")" ]]; then rm -f "$WORK/steps.txt"; else forget_steps; fi
  write_env
  stage_data
  log "build folder $build_dir, raw outputs in $WORK, steps: $steps"

  wants configure && step_configure
  if wants build; then
    if step_failed configure; then record build skipped 0 "configure failed"; else step_build; fi
  fi
  local broken=0
  step_failed configure && broken=1
  step_failed build && broken=1
  if wants test; then
    if [[ $broken == 1 ]]; then record test skipped 0 "build failed"; else step_test; fi
  fi
  if wants sanitize; then
    if [[ $broken == 1 ]]; then record sanitize skipped 0 "build failed"; else step_sanitize; fi
  fi
  if wants bench; then
    if [[ $broken == 1 ]]; then record bench skipped 0 "build failed"; else step_bench; fi
  fi
  if wants bench_linear; then
    if [[ $broken == 1 ]]; then
      record bench_linear skipped 0 "build failed"
    else
      step_bench_linear
    fi
  fi
  local heavy
  for heavy in bench_conv cnn_epoch; do
    if wants "$heavy"; then
      if [[ $broken == 1 ]]; then record "$heavy" skipped 0 "build failed"; else "step_$heavy"; fi
    fi
  done
  REPORT=""
  step_report  # always: a failed run's report says what failed

  local failed
  failed=$(awk '$2 == "FAIL" { print $1 }' "$WORK/steps.txt" | tr '\n' ' ')
  [[ -n $REPORT ]] && log "report: $REPORT"
  if [[ -n $failed ]]; then
    log "FAILED: $failed"
    exit 1
  fi
  [[ -z $REPORT ]] && { log "FAILED: report"; exit 1; }
  log "PASSED"
  exit 0
}

main "$@"
