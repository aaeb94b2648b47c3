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
  bench_softmax.json
  kernels_pytorch.jsonl    bench/kernels_pytorch.py: PyTorch timings and the measured ceilings
  mlp_step_ours.jsonl      bench_mlp_step --json
  mlp_step_pytorch.jsonl   bench/mlp_step_pytorch.py
Ratios are peer time / our time: above 1, libnn_cuda is faster. Standard library only: the GPU
image has Python but no package registry.
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


def split_bench_name(name):
    """'matmul/cuda:0/bfloat16/1024/manual_time' -> ('matmul', 'cuda:0', 'bfloat16', '1024')."""
    parts = [p for p in name.split("/") if p and not re.fullmatch(r"[a-z_]+_time", p)]
    family = parts[0] if parts else name
    device = parts[1] if len(parts) > 1 else ""
    dtype = parts[2] if len(parts) > 2 else ""
    shape = "x".join(parts[3:])
    return family, device, dtype, shape


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
        family, device, dtype, shape = split_bench_name(b.get("run_name") or b.get("name", ""))
        row = {"family": family, "device": device, "dtype": dtype, "shape": shape,
               "label": b.get("label", "")}
        if b.get("error_occurred") or b.get("skipped"):
            row["error"] = b.get("error_message") or b.get("skip_message") or "skipped"
        else:
            row["us"] = float(b["real_time"]) * TO_US.get(b.get("time_unit", "ns"), 1e-3)
            if "FLOP" in b:
                row["tflops"] = float(b["FLOP"]) / 1e12
            if "bytes" in b:
                row["gbps"] = float(b["bytes"]) / 1e9
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


class Report:
    def __init__(self, work):
        self.work = work
        self.env = load_env(work)
        self.steps = load_steps(work)
        self.pytorch = load_jsonl(os.path.join(work, "kernels_pytorch.jsonl"))
        self.lines = []

    def out(self, *lines):
        self.lines.extend(lines)

    def ceilings(self):
        """(bf16 TFLOP/s, copy GB/s, where each came from)."""
        measured = {r.get("name"): r for r in self.pytorch if r.get("kind") == "ceiling"}
        bf16 = measured.get("matmul_bf16", {}).get("tflops")
        copy = measured.get("copy", {}).get("gbps")
        return (bf16 or REFERENCE_BF16_TFLOPS, copy or REFERENCE_COPY_GBPS,
                "measured in this run" if bf16 else "DESIGN.md's H100 reference",
                "measured in this run" if copy else "DESIGN.md's H100 reference")

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

    def softmax(self, copy_ceiling, source):
        self.kernel_table(
            "Softmax", "softmax",
            "Softmax over the last axis of [rows, cols]; bytes = one read and one write of "
            f"every element. % of ceiling is against the copy ceiling ({copy_ceiling:.0f} "
            f"GB/s, {source}). vs PyTorch = PyTorch time / ours.",
            "rows x cols", "gbps", 0, copy_ceiling, "copy ceiling")

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

    def ceiling_table(self, bf16, copy, bf16_src, copy_src):
        self.out("## Ceilings", "", "| ceiling | value | source |", "|---|---|---|",
                 f"| bf16 dense matmul | {bf16:.0f} TFLOP/s | {bf16_src} |",
                 f"| device-to-device copy (read + write) | {copy:.0f} GB/s | {copy_src} |", "")

    def render(self):
        self.header()
        self.step_table()
        self.tests()
        bf16, copy, bf16_src, copy_src = self.ceilings()
        self.ceiling_table(bf16, copy, bf16_src, copy_src)
        self.matmul(bf16, bf16_src)
        self.softmax(copy, copy_src)
        self.mlp_step()
        raw = self.env.get("raw")
        if raw:
            self.out(f"Raw outputs and logs of this run: `{raw}`.", "")
        return "\n".join(self.lines).rstrip() + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", help="the suite's scratch folder")
    p.add_argument("--out", required=True, help="markdown file to write")
    args = p.parse_args(argv)
    if not os.path.isdir(args.work):
        print(f"report.py: {args.work} is not a folder", file=sys.stderr)
        return 2
    text = Report(args.work).render()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
