#!/usr/bin/env python3
"""Turns one run of bench/gpu_suite.sh into the markdown result file under bench/results/.

    bench/report.py WORK_DIR --out FILE.md

WORK_DIR is the suite's scratch folder; every input is optional and a missing one leaves its
section out (a CPU dry run, --skip-sanitizer, no PyTorch):
  env.txt                  key=value lines: date, commit, gpu_name, driver, clocks, cuda, ...
  steps.txt                one line per step: NAME STATUS SECONDS (STATUS: ok, FAIL, skipped)
  ctest-junit.xml          ctest --output-junit
  sanitizer-TOOL.log       compute-sanitizer's output ("ERROR SUMMARY: N errors")
  gtest-gpu.json           the GPU suite's own GoogleTest JSON (passed/failed/skipped tests)
  bench_matmul.json        Google Benchmark JSON (or the built-in harness's, same layout)
  bench_softmax.json       softmax, log_softmax, their backward, cross-entropy fwd and bwd
  bench_linear.json        GEMM + bias + activation: ours, cuBLASLt and auto, fwd and bwd
  kernels_pytorch.jsonl    bench/kernels_pytorch.py: PyTorch timings and the measured ceilings
  kernels_pytorch_linear.jsonl   the same script's linear rows (the suite's bench_linear step)
  mlp_step_ours.jsonl      bench_mlp_step --json
  mlp_step_pytorch.jsonl   bench/mlp_step_pytorch.py
  bench_conv.json          conv layers of LeNet and ResNet-18: ours, cuDNN and auto, each pass
  conv_pytorch.jsonl       bench/cnn_pytorch.py conv: PyTorch's (cuDNN's) time for each layer
  cnn_epoch_ours.jsonl     bench_cnn_epoch --json (ours, and LibTorch when built with it)
  cnn_epoch_pytorch.jsonl  bench/cnn_pytorch.py epoch (eager, torch.compile)
Ratios are peer time / our time: above 1, libnn_cuda is faster; a peer missing from the run
reads "n/a". The issue's goals (0.9x cuBLASLt on large bf16 GEMMs, 1.0x PyTorch eager on fused
linear + activation, softmax at 85% of the measured copy bandwidth, 0.9x cuDNN on ResNet-18's
bf16 convolutions, Auto within 5% of the faster backend, a CNN epoch at least as fast as PyTorch
eager on the GPU and LibTorch on the CPU) are reported as "met" or with their gap, never as a
failure. The CNN epoch's learning check (both sides learned, final losses close) is a check:
`--only cnn_epoch` (bench/cnn_epoch_compare.sh) exits 1 when it fails. Standard library only:
the GPU image has Python but no package registry.
"""
import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

# DESIGN.md's H100 figures, used when the run measured no ceiling of its own.
REFERENCE_BF16_TFLOPS = 798.0
REFERENCE_COPY_GBPS = 3000.0
# The issue's goals, reported against, never failed on.
GOAL_CUBLASLT_RATIO = 0.9   # ours / cuBLASLt throughput on large bf16 GEMMs
GOAL_LARGE_GEMM_DIM = 4096  # "large": M, N and K all at least this
GOAL_EAGER_RATIO = 1.0      # ours / PyTorch eager throughput on fused linear + activation
GOAL_SOFTMAX_SHARE = 0.85   # softmax GB/s over the measured copy ceiling
GOAL_CUDNN_RATIO = 0.9      # ours / cuDNN throughput on ResNet-18's bf16 convolutions, batch 256
GOAL_CONV_BATCH = 256
GOAL_AUTO_SHARE = 0.95      # auto's throughput over the faster of ours and cuDNN
GOAL_EPOCH_RATIO = 1.0      # peer epoch time / ours
# The CNN epoch's learning check: a side learned when its final loss is below this share of its
# first-step loss; two sides agree when their final losses differ by at most
# EPOCH_LOSS_SLACK + EPOCH_LOSS_SHARE x the smaller (bench_cnn_epoch.cpp's losses_agree).
EPOCH_LEARNED_SHARE = 0.75
EPOCH_LOSS_SLACK, EPOCH_LOSS_SHARE = 0.1, 0.25
CONV_DIRECTIONS = ("fwd", "bwd_data", "bwd_weight")
ROWWISE_KINDS = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
                 "cross_entropy", "cross_entropy_backward")
SOFTMAX_GOAL_KINDS = ROWWISE_KINDS[:4]
ISSUE_ROWWISE_SHAPES = ("4096x1024", "16384x50304")
GOALS = {
    "cublaslt": f"bf16 GEMMs with M, N, K >= {GOAL_LARGE_GEMM_DIM}: ours >= "
                f"{GOAL_CUBLASLT_RATIO:.1f}x cuBLASLt (fwd and bwd)",
    "eager": f"fused linear + activation: ours >= {GOAL_EAGER_RATIO:.1f}x PyTorch eager "
             "(every dtype, shape, fwd and bwd)",
    "softmax": f"softmax and log_softmax, fwd and bwd, at {' and '.join(ISSUE_ROWWISE_SHAPES)}: "
               f">= {GOAL_SOFTMAX_SHARE:.0%} of the measured copy bandwidth",
    "conv_cudnn": f"ResNet-18's conv layers in bf16 at batch {GOAL_CONV_BATCH}: ours >= "
                  f"{GOAL_CUDNN_RATIO:.1f}x cuDNN (fwd, bwd_data, bwd_weight)",
    "conv_auto": f"conv backend auto: >= {GOAL_AUTO_SHARE:.0%} of the faster of ours and cuDNN "
                 "(every layer, batch, dtype and pass)",
    "epoch_eager": f"one CNN training epoch on the GPU: ours >= {GOAL_EPOCH_RATIO:.1f}x PyTorch "
                   "eager",
    "epoch_libtorch": f"one CNN training epoch on the CPU: ours >= {GOAL_EPOCH_RATIO:.1f}x "
                      "LibTorch",
}
# Which measured ceiling a linear row's dtype is held against.
LINEAR_CEILING = {"bfloat16": "bf16", "float16": "float16", "float32_tf32": "tf32",
                  "float32": "tf32"}
TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def load_env(work):
    env = {}
    for line in (read_text(os.path.join(work, "env.txt")) or "").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


def load_steps(work):
    steps = []
    for line in (read_text(os.path.join(work, "steps.txt")) or "").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            steps.append({"name": parts[0], "status": parts[1],
                          "seconds": parts[2] if len(parts) > 2 else "",
                          "note": " ".join(parts[3:])})
    return steps


def load_jsonl(path):
    rows = []
    for line in (read_text(path) or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a stray line of other output; the rest still counts
    return rows


def parse_ctest_junit(path):
    """Counts of passed/failed/skipped CTest tests and the failed names, or None."""
    text = read_text(path)
    if text is None:
        return None
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return {"error": "unreadable JUnit file"}
    counts = {"passed": 0, "failed": 0, "skipped": 0, "failed_names": []}
    for case in root.iter("testcase"):
        status = case.get("status", "")
        if case.find("failure") is not None or case.find("error") is not None or status == "fail":
            counts["failed"] += 1
            counts["failed_names"].append(case.get("name", "?"))
        elif case.find("skipped") is not None or status in ("notrun", "disabled"):
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def parse_gtest_json(path):
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"error": "unreadable GoogleTest JSON"}
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for suite in data.get("testsuites", []):
        for t in suite.get("testsuite", []):
            if t.get("failures"):
                counts["failed"] += 1
            elif t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                counts["skipped"] += 1
            else:
                counts["passed"] += 1
    return counts


def sanitizer_errors(work, tool):
    """The error count compute-sanitizer reported for `tool`, or None when it did not run."""
    text = read_text(os.path.join(work, f"sanitizer-{tool}.log"))
    if text is None:
        return None
    found = re.findall(r"ERROR SUMMARY:\s*(\d+)\s+error", text)
    if found:
        return sum(int(n) for n in found)
    return None


def name_parts(name):
    """A benchmark name's parts, without Google Benchmark's '/manual_time' suffix."""
    return [p for p in name.split("/") if p and not re.fullmatch(r"[a-z_]+_time", p)]


def split_bench_name(name):
    """'matmul/cuda:0/bfloat16/1024/manual_time' -> ('matmul', 'cuda:0', 'bfloat16', '1024')."""
    parts = name_parts(name)
    family = parts[0] if parts else name
    device = parts[1] if len(parts) > 1 else ""
    dtype = parts[2] if len(parts) > 2 else ""
    shape = "x".join(parts[3:])
    return family, device, dtype, shape


def time_per_call_us(b):
    """(microseconds per call, factor from the mean's rates to this time's) of one benchmark.
    An iteration of a CUDA benchmark is a batch of calls ("calls" counts them all); the median
    per call ("median_us", bench_common.h) is preferred to the mean, which one slow batch skews."""
    per_iteration = float(b["real_time"]) * TO_US.get(b.get("time_unit", "ns"), 1e-3)
    calls, iterations = b.get("calls"), b.get("iterations")
    mean = per_iteration * float(iterations) / float(calls) if calls and iterations else \
        per_iteration
    median = b.get("median_us")
    if median and mean:
        return float(median), mean / float(median)
    return mean, 1.0


def load_gbench(path):
    """Rows of one Google Benchmark JSON file: name parts, time in us, rates, or an error."""
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [{"error": f"unreadable benchmark JSON {os.path.basename(path)}"}]
    rows = []
    for b in data.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        name = b.get("run_name") or b.get("name", "")
        family, device, dtype, shape = split_bench_name(name)
        parts = name_parts(name)
        row = {"family": family, "device": device, "dtype": dtype, "shape": shape,
               "label": b.get("label", "")}
        if b.get("error_occurred") or b.get("skipped"):
            row["error"] = b.get("error_message") or b.get("skip_message") or "skipped"
        else:
            row["us"], scale = time_per_call_us(b)
            if "FLOP" in b:
                row["tflops"] = float(b["FLOP"]) / 1e12 * scale
            if "bytes" in b:
                row["gbps"] = float(b["bytes"]) / 1e9 * scale
        row["parts"] = parts
        rows.append(row)
    return rows


def fmt(value, digits=1, suffix=""):
    if value is None:
        return "-"
    return f"{value:.{digits}f}{suffix}"


def ratio(peer_time, our_time):
    if not peer_time or not our_time:
        return "-"
    return f"{peer_time / our_time:.2f}x"


def fmt_na(value, digits=1, suffix=""):
    """fmt() for a peer's cell: "n/a" where the peer gave nothing in this run."""
    return "n/a" if value is None or value == 0 else fmt(value, digits, suffix)


def fmt_rate(value):
    """A TFLOP/s figure: one decimal, or three where it is small (a CPU's, a tiny shape's)."""
    return "n/a" if not value else fmt(value, 1 if value >= 10 else 3)


def fmt_gbps(value):
    """A GB/s figure: whole numbers, or two decimals where it is small (a CPU's)."""
    return "n/a" if not value else fmt(value, 0 if value >= 100 else 2)


def ratio_na(peer_time, our_time):
    return "n/a" if not peer_time or not our_time else ratio(peer_time, our_time)


def judge(goal, values, target, show, missing):
    """(goal, verdict, detail) for `values`, a list of (value, row label) that should each reach
    `target`; show(v) formats a value. No values: "n/a" with the reason `missing`."""
    if not values:
        return goal, "n/a", missing
    values = sorted(values, key=lambda v: v[0])
    worst = values[0]
    below = [v for v in values if v[0] < target]
    if not below:
        return goal, "met", f"{len(values)} row(s); worst {show(worst[0])} ({worst[1]})"
    listed = "; ".join(f"{show(v)} at {label}" for v, label in below[:5])
    more = f"; and {len(below) - 5} more" if len(below) > 5 else ""
    return (goal, f"gap: worst {show(worst[0])} against {show(target)}",
            f"{len(below)} of {len(values)} row(s) below: {listed}{more}")


def conv_role(layer):
    """What a layer named <net>-<C>x<H>-<O>-k<k>s<stride> is in its network."""
    m = re.fullmatch(r"([a-z0-9]+)-(\d+)x(\d+)-(\d+)-k(\d+)s(\d+)", layer)
    if not m:
        return "?"
    k, stride = int(m.group(5)), int(m.group(6))
    if k == 1:
        return f"shortcut 1x1/{stride}"
    if m.group(1) == "resnet18" and k == 7:
        return f"stem 7x7/{stride}"
    return f"{k}x{k}" + (f"/{stride} down" if stride > 1 else "")


def conv_layer_sort(layer):
    """LeNet first, then by input size (largest first) and channels, as the networks run."""
    m = re.fullmatch(r"([a-z0-9]+)-(\d+)x(\d+)-(\d+)-k(\d+)s(\d+)", layer)
    if not m:
        return (2, 0, 0, 0, layer)
    return (0 if m.group(1) == "lenet" else 1, -int(m.group(3)), int(m.group(2)),
            int(m.group(6)), -int(m.group(5)), layer)


def device_kind(device):
    """'cuda:0' and 'cuda' -> 'cuda'; 'cpu' -> 'cpu'."""
    return device.split(":")[0]


def dev_list(devices):
    return ", ".join(devices)


class Report:
    def __init__(self, work):
        self.work = work
        self.env = load_env(work)
        self.steps = load_steps(work)
        self.pytorch = (load_jsonl(os.path.join(work, "kernels_pytorch.jsonl")) +
                        load_jsonl(os.path.join(work, "kernels_pytorch_linear.jsonl")) +
                        load_jsonl(os.path.join(work, "conv_pytorch.jsonl")))
        self.epoch_problems = []  # the CNN epoch's failed learning checks, see cnn_epoch
        self.lines = []
        self.goals = {}  # key -> (goal, verdict, detail), filled by the tables, see goal_table

    def out(self, *lines):
        self.lines.extend(lines)

    def ceilings(self):
        """{name: (value, where it came from)} for bf16, float16 and tf32 dense matmul (TFLOP/s)
        and the device-to-device copy (GB/s); reference figures where the run measured none."""
        measured = {r.get("name"): r for r in self.pytorch if r.get("kind") == "ceiling"}
        here = "measured in this run"

        def pick(name, key, fallback, fallback_source):
            value = measured.get(name, {}).get(key)
            return (value, here) if value else (fallback, fallback_source)

        bf16 = pick("matmul_bf16", "tflops", REFERENCE_BF16_TFLOPS, "DESIGN.md's H100 reference")
        return {
            "bf16": bf16,
            "float16": pick("matmul_float16", "tflops", bf16[0],
                            "the bf16 ceiling (same tensor-core rate), not measured"),
            "tf32": pick("matmul_float32_tf32", "tflops", bf16[0] / 2,
                         "half the bf16 ceiling (the tensor cores' TF32 rate), not measured"),
            "copy": pick("copy", "gbps", REFERENCE_COPY_GBPS, "DESIGN.md's H100 reference"),
        }

    def peer_rows(self, kind):
        """PyTorch's rows of one kind; rows written before modes existed are eager."""
        return [dict(r, mode=r.get("mode", "eager")) for r in self.pytorch if r.get("kind") == kind]

    def failures(self):
        return [s["name"] for s in self.steps if s["status"].lower() in ("fail", "failed")]

    def header(self):
        e = self.env
        verdict = "FAILED: " + ", ".join(self.failures()) if self.failures() else "PASSED"
        self.out(f"# GPU suite: {e.get('gpu_name', 'no GPU')} ({e.get('date', '?')})", "",
                 f"**Verdict: {verdict}**", "", "| | |", "|---|---|")
        fields = [("date (UTC)", "date"), ("commit", "commit"), ("mode", "mode"),
                  ("GPU", "gpu_name"), ("compute capability", "compute_cap"),
                  ("driver", "driver"), ("CUDA (nvcc)", "cuda"),
                  ("SM clock now / max (MHz)", "sm_clock"),
                  ("memory clock now / max (MHz)", "mem_clock"), ("power limit", "power_limit"),
                  ("PyTorch", "torch"), ("build", "build"), ("benchmark harness", "harness"),
                  ("options", "options")]
        for label, key in fields:
            if e.get(key):
                self.out(f"| {label} | {e[key]} |")
        self.out("")

    def step_table(self):
        if not self.steps:
            return
        self.out("## Steps", "", "| step | status | seconds | note |", "|---|---|---|---|")
        for s in self.steps:
            self.out(f"| {s['name']} | {s['status']} | {s['seconds']} | {s['note']} |")
        self.out("")

    def tests(self):
        ctest = parse_ctest_junit(os.path.join(self.work, "ctest-junit.xml"))
        gtest = parse_gtest_json(os.path.join(self.work, "gtest-gpu.json"))
        tools = [t for t in ("memcheck", "racecheck", "synccheck")
                 if read_text(os.path.join(self.work, f"sanitizer-{t}.log")) is not None]
        if ctest is None and gtest is None and not tools:
            return
        self.out("## Tests", "")
        if ctest is not None:
            if "error" in ctest:
                self.out(f"CTest: {ctest['error']}", "")
            else:
                self.out(f"CTest (all labels): {ctest['passed']} passed, {ctest['failed']} "
                         f"failed, {ctest['skipped']} skipped.", "")
                for name in ctest["failed_names"][:30]:
                    self.out(f"- failed: `{name}`")
                if ctest["failed_names"]:
                    self.out("")
        if gtest is not None and "error" not in gtest:
            self.out(f"GPU suite (nn_tests_gpu, run under memcheck): {gtest['passed']} passed, "
                     f"{gtest['failed']} failed, {gtest['skipped']} skipped.", "")
        if tools:
            self.out("| compute-sanitizer | errors reported | step status |", "|---|---|---|")
            status = {s["name"]: s["status"] for s in self.steps}
            for t in tools:
                n = sanitizer_errors(self.work, t)
                self.out(f"| {t} | {'-' if n is None else n} | {status.get('sanitize-' + t, '-')} |")
            self.out("")

    def kernel_table(self, title, kind, intro, shape_header, metric, digits, ceiling, ceiling_name):
        """One table per kernel family: our rate, its share of the ceiling, PyTorch's rate and the
        time ratio, joined with PyTorch's rows of the same kind, dtype and shape."""
        rows = load_gbench(os.path.join(self.work, f"bench_{kind}.json"))
        if not rows:
            return
        peers = {(r["dtype"], r["shape"]): r for r in self.pytorch if r.get("kind") == kind}
        unit = "TFLOP/s" if metric == "tflops" else "GB/s"
        self.out(f"## {title}", "", intro, "",
                 f"| device | dtype | {shape_header} | time (us) | {unit} | % of {ceiling_name} | "
                 f"PyTorch {unit} | vs PyTorch |", "|---|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                continue
            peer = peers.get((r["dtype"], r["shape"])) if r["device"].startswith("cuda") else None
            pct = 100.0 * r[metric] / ceiling if r.get(metric) else None
            self.out(f"| {r['device']} | {r['dtype']} | {r['shape']} | {fmt(r['us'])} | "
                     f"{fmt(r.get(metric), digits)} | {fmt(pct, 1, '%')} | "
                     f"{fmt(peer and peer.get(metric), digits)} | "
                     f"{ratio(peer and peer.get('ms', 0) * 1e3, r['us'])} |")
        self.skipped(rows)

    def matmul(self, bf16_ceiling, source):
        self.kernel_table(
            "Matmul", "matmul",
            "C[n, n] = A[n, n] B[n, n], 2 n^3 FLOP. libnn_cuda's CUDA matmul is cuBLAS(Lt) "
            "until our own GEMM lands, so its ratio to cuBLAS is 1 by construction; "
            f"% of ceiling is against the bf16 dense ceiling ({bf16_ceiling:.0f} TFLOP/s, "
            f"{source}). vs PyTorch = PyTorch time / ours (above 1: ours is faster).",
            "n", "tflops", 2, bf16_ceiling, "bf16 ceiling")

    def rowwise(self, copy_ceiling, source):
        """Softmax, log-softmax, their backward and cross-entropy: one table, GB/s against the
        copy ceiling, PyTorch eager and compiled side by side."""
        rows = [r for r in load_gbench(os.path.join(self.work, "bench_softmax.json")) or []
                if r.get("family") in ROWWISE_KINDS or "error" in r]
        if not rows:
            return
        order = {k: i for i, k in enumerate(ROWWISE_KINDS)}
        peers = {(r["kind"], r.get("dtype"), r.get("shape"), r["mode"]): r
                 for k in ROWWISE_KINDS for r in self.peer_rows(k)}
        self.out("## Softmax and cross-entropy", "",
                 "Row-wise kernels over the last axis of [rows, cols]. Bytes are the least traffic "
                 "each needs: softmax and log_softmax read x and write y (2 tensors), their "
                 "backward reads grad_y and y and writes grad_x (3), cross_entropy reads the "
                 "logits once (1), its backward reads them and writes their gradient (2). "
                 f"% of ceiling is against the copy ceiling ({copy_ceiling:.0f} GB/s, {source}). "
                 "vs X = X's time / ours (above 1: ours is faster); PyTorch's cross_entropy is "
                 "F.cross_entropy (reduction \"none\"), its backward torch.autograd.grad.", "",
                 "| kernel | device | dtype | rows x cols | time (us) | GB/s | % of copy ceiling | "
                 "PyTorch eager GB/s | vs eager | PyTorch compile GB/s | vs compile |",
                 "|---|---|---|---|---|---|---|---|---|---|---|")
        ok = sorted((r for r in rows if "error" not in r),
                    key=lambda r: (order[r["family"]], r["device"].startswith("cpu"), r["device"],
                                   r["dtype"]))
        for r in ok:
            cells = []
            for mode in ("eager", "compile"):
                peer = peers.get((r["family"], r["dtype"], r["shape"], mode)) \
                    if r["device"].startswith("cuda") else None
                cells += [fmt_gbps(peer and peer.get("gbps")),
                          ratio_na(peer and peer.get("ms", 0) * 1e3, r["us"])]
            gpu = r["device"].startswith("cuda")
            pct = fmt(100.0 * r["gbps"] / copy_ceiling, 1, "%") if r.get("gbps") and gpu else "n/a"
            self.out(f"| {r['family']} | {r['device']} | {r['dtype']} | {r['shape']} | "
                     f"{fmt(r['us'])} | {fmt_gbps(r.get('gbps'))} | {pct} | "
                     + " | ".join(cells) + " |")
        self.skipped(rows)
        self.softmax_goal(ok, copy_ceiling, source)

    def linear_cases(self):
        """{(device, dtype): {(direction, act, shape): {backend: row}}} in the benchmark's order,
        and all rows (errors included), or (None, None) when bench_linear did not run."""
        rows = load_gbench(os.path.join(self.work, "bench_linear.json"))
        if rows is None:
            return None, None
        tables = {}
        for r in rows:
            p = r.get("parts", [])
            if "error" in r or len(p) != 9 or p[0] != "linear":
                continue
            _, device, dtype, direction, act, backend = p[:6]
            case = (direction, act, "x".join(p[6:]))
            tables.setdefault((device, dtype), {}).setdefault(case, {})[backend] = r
        return tables, rows

    def linear(self, ceil):
        tables, rows = self.linear_cases()
        if not rows:
            return
        peers = {(r.get("dtype"), r.get("direction"), r.get("act"), r.get("shape"), r["mode"]): r
                 for r in self.peer_rows("linear")}
        self.out("## Linear: GEMM + bias + activation", "",
                 "y = act(x w^T + b) with x [M, K], w [N, K]: fwd is the forward as in training "
                 "(it keeps what backward reads), 2 M N K FLOP; bwd is dx, dw and db, 4 M N K "
                 "FLOP. ours = set_linear_backend(Ours), cuBLASLt = (Cublas), auto = (Auto), "
                 "through the public nn::linear / nn::linear_backward. PyTorch is F.linear + "
                 "relu/gelu, eager and torch.compile, fwd and torch.autograd.grad. "
                 "vs X = X's time / ours (above 1: ours is faster). % of ceiling is against the "
                 "dense matmul ceiling of the row's dtype (Ceilings above).", "")
        eager_ratios, cublaslt_ratios = [], []
        for (device, dtype), cases in tables.items():
            ceiling = ceil[LINEAR_CEILING.get(dtype, "bf16")][0]
            self.out(f"### {device} {dtype}", "",
                     "| dir | act | M x N x K | ours (us) | ours TFLOP/s | % of ceiling | "
                     "cuBLASLt TFLOP/s | vs cuBLASLt | auto TFLOP/s | PyTorch eager TFLOP/s | "
                     "vs eager | PyTorch compile TFLOP/s | vs compile |",
                     "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for (direction, act, shape), by_backend in cases.items():
                ours, lt, auto = (by_backend.get(b) for b in ("ours", "cublaslt", "auto"))
                ours_us = ours and ours["us"]
                ours_rate = ours and ours.get("tflops")
                gpu = device.startswith("cuda")
                cells = [fmt_na(ours_us), fmt_rate(ours_rate),
                         fmt(100.0 * ours_rate / ceiling, 1, "%") if ours_rate and gpu else "n/a",
                         fmt_rate(lt and lt.get("tflops")), ratio_na(lt and lt["us"], ours_us),
                         fmt_rate(auto and auto.get("tflops"))]
                label = f"{dtype} {direction} {act} {shape}"
                for mode in ("eager", "compile"):
                    peer = peers.get((dtype, direction, act, shape, mode)) if gpu else None
                    peer_us = peer and peer.get("ms", 0) * 1e3
                    cells += [fmt_rate(peer and peer.get("tflops")), ratio_na(peer_us, ours_us)]
                    if mode == "eager" and peer_us and ours_us:
                        eager_ratios.append((peer_us / ours_us, label))
                dims = [int(d) for d in shape.split("x") if d.isdigit()]
                if (gpu and dtype == "bfloat16" and lt and ours_us and
                        len(dims) == 3 and min(dims) >= GOAL_LARGE_GEMM_DIM):
                    cublaslt_ratios.append((lt["us"] / ours_us, label))
                self.out(f"| {direction} | {act} | {shape} | " + " | ".join(cells) + " |")
            self.out("")
        self.lines.pop()  # skipped() starts with the blank line
        self.skipped(rows)
        times = lambda v: f"{v:.2f}x"  # noqa: E731
        self.goals["cublaslt"] = judge(GOALS["cublaslt"], cublaslt_ratios, GOAL_CUBLASLT_RATIO,
                                       times, "no large bf16 case with both ours and cuBLASLt")
        self.goals["eager"] = judge(GOALS["eager"], eager_ratios, GOAL_EAGER_RATIO, times,
                                    "no PyTorch eager rows in this run")

    def softmax_goal(self, rows, copy_ceiling, source):
        shares = [(r["gbps"] / copy_ceiling, f"{r['family']} {r['dtype']} {r['shape']}")
                  for r in rows if r["family"] in SOFTMAX_GOAL_KINDS and r.get("gbps") and
                  r["device"].startswith("cuda") and r["shape"] in ISSUE_ROWWISE_SHAPES]
        goal = GOALS["softmax"]
        if not source.startswith("measured"):
            goal += f" (no ceiling measured in this run: against {source})"
        self.goals["softmax"] = judge(goal, shares, GOAL_SOFTMAX_SHARE, lambda v: f"{v:.1%}",
                                      "no CUDA softmax rows at the issue's shapes")

    def goal_table(self):
        """The issue's goals, all three once either benchmark ran: reported, never failed on."""
        if not self.goals:
            return []
        for key, goal in GOALS.items():
            self.goals.setdefault(key, (goal, "n/a", "its benchmark did not run"))
        lines = ["## Goals", "", "Goals to report against, not tests: a gap does not fail the run.",
                 "", "| goal | verdict | detail |", "|---|---|---|"]
        lines += [f"| {self.goals[k][0]} | {self.goals[k][1]} | {self.goals[k][2]} |"
                  for k in GOALS]
        return lines + [""]

    def pytorch_notes(self):
        notes = [r.get("text", "") for r in self.pytorch if r.get("kind") == "note"]
        if notes:
            self.out("## PyTorch peer notes", "", *[f"- {n}" for n in notes], "")

    def skipped(self, rows):
        errors = sorted({r["error"] for r in rows if "error" in r})
        self.out("")
        for e in errors:
            n = sum(1 for r in rows if r.get("error") == e)
            self.out(f"- {n} case(s) not run: {e}")
        if errors:
            self.out("")

    def mlp_step(self):
        ours_rows = load_jsonl(os.path.join(self.work, "mlp_step_ours.jsonl"))
        peer_rows = load_jsonl(os.path.join(self.work, "mlp_step_pytorch.jsonl"))
        rows = ours_rows + peer_rows
        ours = {r["case"]: r["ms"] for r in rows if r.get("peer") == "nn_cuda"}
        if not ours:
            return
        peers = sorted({r["peer"] for r in rows if r.get("peer") not in (None, "nn_cuda")})
        ms = {(r["case"], r["peer"]): r["ms"] for r in rows if "peer" in r}
        device = next((r.get("device") for r in ours_rows if r.get("device")), "?")
        self.out("## MLP training step", "",
                 f"Forward, cross-entropy, backward and Adam on {device}: ms per step; "
                 "ratio = peer / libnn_cuda (above 1: libnn_cuda is faster).", "",
                 "| case | libnn_cuda | " + " | ".join(f"{p} | ratio" for p in peers) + " |",
                 "|---|---|" + "---|---|" * len(peers))
        for case, t in ours.items():
            cells = []
            for p in peers:
                v = ms.get((case, p))
                cells += [fmt(v, 3), ratio(v, t)] if v else ["-", "-"]
            self.out(f"| {case} | {t:.3f} | " + " | ".join(cells) + (" |" if cells else "|"))
        self.out("")

    def conv(self, ceil):
        """The conv layers: one table per device and dtype, a row per layer, batch and pass with
        ours, cuDNN, auto and PyTorch side by side; the cuDNN and auto goals."""
        rows = load_gbench(os.path.join(self.work, "bench_conv.json"))
        if not rows:
            return
        tables = {}
        for r in rows:
            p = r.get("parts", [])
            if "error" in r or len(p) != 7 or p[0] != "conv":
                continue
            _, device, dtype, direction, backend, layer, batch = p
            tables.setdefault((device, dtype), {}).setdefault(
                (layer, batch, direction), {})[backend] = r
        peers = {(r.get("dtype"), r.get("direction"), r.get("layer"), str(r.get("batch"))): r
                 for r in self.peer_rows("conv") if r["mode"] == "eager"}
        self.out("## Conv layers: LeNet and ResNet-18", "",
                 "Each pass of one convolution on its own, through the public nn::conv2d / "
                 "nn::conv2d_backward: fwd y = conv(x, w) (+ b), bwd_data dx, bwd_weight dw "
                 "(+ db), each 2 N O Ho Wo C kH kW FLOP. Layers are named "
                 "<net>-<C>x<H>-<O>-k<k>s<stride> (padding k / 2): LeNet's are nn-train's CNN "
                 "(with bias), ResNet-18's the stem, the 3x3 convolutions of each stage, the 3x3/2 "
                 "that open stages 2-4 and their 1x1/2 shortcuts (no bias). ours = "
                 "set_conv_backend(Ours), cuDNN = (Cudnn), auto = (Auto). PyTorch is F.conv2d and "
                 "aten.convolution_backward (cuDNN, cudnn.benchmark on). vs X = X's time / ours "
                 "(above 1: ours is faster); auto vs best = the faster of ours and cuDNN over "
                 "auto's time. % of ceiling is against the dense matmul ceiling of the row's dtype "
                 "(Ceilings above).", "")
        cudnn_ratios, auto_shares = [], []
        order = {d: i for i, d in enumerate(CONV_DIRECTIONS)}
        for (device, dtype) in sorted(tables, key=lambda k: (k[0].startswith("cpu"), k)):
            cases = tables[(device, dtype)]
            ceiling = ceil[LINEAR_CEILING.get(dtype, "bf16")][0]
            gpu = device.startswith("cuda")
            self.out(f"### {device} {dtype}", "",
                     "| layer | role | batch | pass | ours (us) | ours TFLOP/s | % of ceiling | "
                     "cuDNN TFLOP/s | vs cuDNN | auto TFLOP/s | auto vs best | PyTorch TFLOP/s | "
                     "vs PyTorch |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            keys = sorted(cases, key=lambda k: (conv_layer_sort(k[0]), int(k[1]) if
                                                 k[1].isdigit() else 0, order.get(k[2], 9)))
            for layer, batch, direction in keys:
                by_backend = cases[(layer, batch, direction)]
                ours, dnn, auto = (by_backend.get(b) for b in ("ours", "cudnn", "auto"))
                ours_us = ours and ours["us"]
                ours_rate = ours and ours.get("tflops")
                peer = peers.get((dtype, direction, layer, batch)) if gpu else None
                peer_us = peer and peer.get("ms", 0) * 1e3
                best = min([b["us"] for b in (ours, dnn) if b and b.get("us")], default=None)
                auto_share = best / auto["us"] if best and auto and auto.get("us") else None
                label = f"{dtype} {direction} {layer}/{batch}"
                if auto_share is not None and gpu:
                    auto_shares.append((auto_share, label))
                if (gpu and dtype == "bfloat16" and layer.startswith("resnet18") and dnn and
                        ours_us and batch == str(GOAL_CONV_BATCH)):
                    cudnn_ratios.append((dnn["us"] / ours_us, label))
                cells = [layer, conv_role(layer), batch, direction, fmt_na(ours_us),
                         fmt_rate(ours_rate),
                         fmt(100.0 * ours_rate / ceiling, 1, "%") if ours_rate and gpu else "n/a",
                         fmt_rate(dnn and dnn.get("tflops")), ratio_na(dnn and dnn["us"], ours_us),
                         fmt_rate(auto and auto.get("tflops")),
                         "n/a" if auto_share is None else f"{auto_share:.2f}",
                         fmt_rate(peer and peer.get("tflops")), ratio_na(peer_us, ours_us)]
                self.out("| " + " | ".join(cells) + " |")
            self.out("")
        if self.lines[-1] == "":
            self.lines.pop()  # skipped() starts with the blank line
        self.skipped(rows)
        times = lambda v: f"{v:.2f}x"  # noqa: E731
        self.goals["conv_cudnn"] = judge(GOALS["conv_cudnn"], cudnn_ratios, GOAL_CUDNN_RATIO, times,
                                         "no bf16 ResNet-18 case at batch "
                                         f"{GOAL_CONV_BATCH} with both ours and cuDNN")
        self.goals["conv_auto"] = judge(GOALS["conv_auto"], auto_shares, GOAL_AUTO_SHARE,
                                        lambda v: f"{v:.0%}", "no CUDA case with auto and both "
                                        "backends")

    def cnn_epoch(self):
        """One CNN training epoch: a table per device, ours against each peer, and the check
        that every side learned and ended near ours (problems go to self.epoch_problems)."""
        ours_rows = load_jsonl(os.path.join(self.work, "cnn_epoch_ours.jsonl"))
        peer_rows = load_jsonl(os.path.join(self.work, "cnn_epoch_pytorch.jsonl"))
        rows = [r for r in ours_rows + peer_rows
                if r.get("case") and r.get("peer") and r.get("seconds")]
        if not rows:
            return
        self.out("## CNN training epoch", "",
                 "nn-train's --model cnn (conv 3x3 32 and 64, ReLU or batch norm + ReLU, 2x2 max "
                 "pooling, Linear 3136-128-10 with dropout 0.1) trained on Fashion-MNIST, batch "
                 "128, Adam: case cnn[-bn]/b<batch>/n<images>. Seconds for the whole epoch (the "
                 "steps x batch images named); ratio = peer / libnn_cuda (above 1: libnn_cuda is "
                 "faster). LibTorch runs in the same process from our initial weights and batch "
                 "order (on the CPU the two take turns of a few steps); PyTorch "
                 "(bench/cnn_pytorch.py) from its own. Final loss: the mean over the epoch's last "
                 "tenth of steps.", "")
        devices = []
        for r in rows:
            dev = device_kind(r.get("device", "?"))
            if dev not in devices:
                devices.append(dev)
        eager, libtorch = [], []
        for dev in devices:
            here = [r for r in rows if device_kind(r.get("device", "?")) == dev]
            ours = {r["case"]: r for r in here if r["peer"] == "nn_cuda"}
            peers = []
            for r in here:
                if r["peer"] != "nn_cuda" and r["peer"] not in peers:
                    peers.append(r["peer"])
            by = {(r["case"], r["peer"]): r for r in here}
            threads = sorted({str(r.get("threads")) for r in here if r.get("threads")})
            note = f" ({'/'.join(threads)} CPU threads)" if dev == "cpu" and threads else ""
            self.out(f"### {dev}{note}", "",
                     "| case | steps | libnn_cuda s | ms per step | final loss | " +
                     " | ".join(f"{p} s | ratio | final loss" for p in peers) + " |",
                     "|---|---|---|---|---|" + "---|---|---|" * len(peers))
            for case, t in ours.items():
                self.check_learned(dev, t)
                cells = [case, str(t.get("steps", "-")), fmt(t["seconds"], 3),
                         fmt(t.get("ms_per_step"), 2), fmt(t.get("final_loss"), 4)]
                for p in peers:
                    v = by.get((case, p))
                    if not v:
                        cells += ["-", "-", "-"]
                        continue
                    sound = self.check_learned(dev, v) & self.check_agree(dev, t, v)
                    cells += [fmt(v["seconds"], 3), ratio(v["seconds"], t["seconds"]),
                              fmt(v.get("final_loss"), 4)]
                    label = f"{dev} {case}"
                    if sound and p == "pytorch-eager" and dev == "cuda":
                        eager.append((v["seconds"] / t["seconds"], label))
                    if sound and p == "libtorch" and dev == "cpu":
                        libtorch.append((v["seconds"] / t["seconds"], label))
                self.out("| " + " | ".join(cells) + " |")
            for (case, p), v in by.items():
                if p != "nn_cuda" and case not in ours:
                    self.check_learned(dev, v)
            self.out("")
        verdict = "passed" if not self.epoch_problems else "FAILED"
        self.out(f"Learning check ({dev_list(devices)}): {verdict}: every side's final loss below "
                 f"{EPOCH_LEARNED_SHARE:.0%} of its first-step loss, every peer's within "
                 f"{EPOCH_LOSS_SLACK} + {EPOCH_LOSS_SHARE:.0%} of ours.", "")
        for problem in self.epoch_problems:
            self.out(f"- {problem}")
        if self.epoch_problems:
            self.out("")
        times = lambda v: f"{v:.2f}x"  # noqa: E731
        self.goals["epoch_eager"] = judge(GOALS["epoch_eager"], eager, GOAL_EPOCH_RATIO, times,
                                          "no GPU epoch of both ours and PyTorch eager that passed "
                                          "the learning check")
        self.goals["epoch_libtorch"] = judge(GOALS["epoch_libtorch"], libtorch, GOAL_EPOCH_RATIO,
                                             times, "no CPU epoch of both ours and LibTorch that "
                                             "passed the learning check")

    def check_learned(self, dev, r):
        first, final = r.get("first_loss"), r.get("final_loss")
        if first is None or final is None or not final < EPOCH_LEARNED_SHARE * first:
            self.epoch_problems.append(
                f"{r['peer']} on {dev} ({r['case']}) did not learn: final loss {fmt(final, 4)}, "
                f"first-step loss {fmt(first, 4)}")
            return False
        return True

    def check_agree(self, dev, ours, peer):
        a, b = ours.get("final_loss"), peer.get("final_loss")
        if a is None or b is None or abs(a - b) > EPOCH_LOSS_SLACK + EPOCH_LOSS_SHARE * min(a, b):
            self.epoch_problems.append(
                f"{peer['peer']} on {dev} ({peer['case']}): final loss {fmt(b, 4)}, too far from "
                f"libnn_cuda's {fmt(a, 4)}")
            return False
        return True

    def ceiling_table(self, ceil):
        self.out("## Ceilings", "", "| ceiling | value | source |", "|---|---|---|")
        for key, label, unit in (("bf16", "bf16 dense matmul", "TFLOP/s"),
                                 ("float16", "fp16 dense matmul", "TFLOP/s"),
                                 ("tf32", "fp32 (TF32) dense matmul", "TFLOP/s"),
                                 ("copy", "device-to-device copy (read + write)", "GB/s")):
            value, source = ceil[key]
            self.out(f"| {label} | {value:.0f} {unit} | {source} |")
        self.out("")

    def render(self):
        self.header()
        self.step_table()
        self.tests()
        goals_at = len(self.lines)
        ceil = self.ceilings()
        self.ceiling_table(ceil)
        self.matmul(*ceil["bf16"])
        self.linear(ceil)
        self.rowwise(*ceil["copy"])
        self.conv(ceil)
        self.pytorch_notes()
        self.mlp_step()
        self.cnn_epoch()
        self.lines[goals_at:goals_at] = self.goal_table()
        raw = self.env.get("raw")
        if raw:
            self.out(f"Raw outputs and logs of this run: `{raw}`.", "")
        return "\n".join(self.lines).rstrip() + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", help="the suite's scratch folder")
    p.add_argument("--out", required=True, help="markdown file to write (-: standard output)")
    p.add_argument("--only", choices=("cnn_epoch",),
                   help="just this section (bench/cnn_epoch_compare.sh); exit 1 when its "
                        "learning check fails")
    args = p.parse_args(argv)
    if not os.path.isdir(args.work):
        print(f"report.py: {args.work} is not a folder", file=sys.stderr)
        return 2
    report = Report(args.work)
    if args.only:
        report.cnn_epoch()
        text = "\n".join(report.lines).rstrip() + "\n" if report.lines else ""
        if not text:
            print(f"report.py: no CNN epoch rows in {args.work}", file=sys.stderr)
            return 1
    else:
        text = report.render()
    log = sys.stderr if args.out == "-" else sys.stdout
    for goal, verdict, detail in report.goals.values():
        print(f"goal: {goal}: {verdict} ({detail})", file=log)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.out}")
    return 1 if args.only and report.epoch_problems else 0


if __name__ == "__main__":
    sys.exit(main())
