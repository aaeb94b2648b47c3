#!/usr/bin/env python3
"""Tests of the GPU runner that need no GPU: bench/report.py on recorded outputs, and
bench/gpu_suite.sh's argument handling, GPU detection and report step (with a stand-in
nvidia-smi). CTest test `bench_report` (label bench); standard library only.

bench/testdata/gbench_softmax_cpu.json was written by Google Benchmark 1.7 running
bench_softmax on a CPU. bench/testdata/gpu_run/ is a made-up GPU run in the layout the suite
writes (round numbers, a failed test and a racecheck finding) so every section has rows: an
iteration of a CUDA benchmark is a batch of 10 calls, as bench_common.h times it; its linear,
softmax and conv rows miss each of their goals, some peers are absent on purpose, and its CNN
epoch has a PyTorch side that did not learn (the learning check fails; the epoch goals are met).
"""
import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402

DATA = os.path.join(HERE, "testdata")
SUITE = os.path.join(HERE, "gpu_suite.sh")


def render(work):
    return report.Report(work).render()


class ReportOnSampleGpuRun(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.md = render(os.path.join(DATA, "gpu_run"))
        cls.lines = cls.md.splitlines()

    def row(self, *cells):
        """The table row holding all of `cells` in order."""
        for line in self.lines:
            if line.startswith("|") and all(f"| {c} |" in line for c in cells):
                return [c.strip() for c in line.strip("|").split("|")]
        self.fail(f"no row with {cells} in:\n{self.md}")

    def test_verdict_names_the_failed_steps(self):
        self.assertIn("**Verdict: FAILED: test, sanitize-racecheck**", self.md)

    def test_header_has_machine_and_clocks(self):
        self.assertEqual(self.row("GPU")[1], "NVIDIA H100 80GB HBM3")
        self.assertEqual(self.row("SM clock now / max (MHz)")[1], "1980 / 1980")
        self.assertEqual(self.row("driver")[1], "580.159.04")
        self.assertEqual(self.row("commit")[1], "f5f7450")

    def test_ctest_and_gtest_counts(self):
        self.assertIn("CTest (all labels): 2 passed, 1 failed, 1 skipped.", self.md)
        self.assertIn("- failed: `nn_tests_gpu`", self.md)
        self.assertIn("run under memcheck): 1 passed, 1 failed, 1 skipped.", self.md)

    def test_sanitizer_verdicts(self):
        self.assertEqual(self.row("memcheck")[1:], ["0", "ok"])
        self.assertEqual(self.row("racecheck")[1:], ["1", "FAIL"])
        self.assertNotIn("| synccheck |", self.md)  # no log: it did not run

    def test_matmul_rates_ceiling_share_and_pytorch_ratio(self):
        # 400 us per iteration of 10 calls: 40 us a call against PyTorch's 20 us.
        r = self.row("cuda:0", "bfloat16", "2048")
        self.assertEqual(r[3:], ["40.0", "429.50", "53.7%", "858.99", "0.50x"])
        self.assertIn("- 1 case(s) not run: matmul: float16 is not supported", self.md)
        self.assertIn("cuBLAS(Lt)", self.md)

    def test_softmax_strips_manual_time_and_skips_aggregates(self):
        r = self.row("softmax", "cuda:0", "float32", "4096x1024")
        # 200000 ns per iteration of 10 calls = 20 us a call; 1.68e12 B/s over the measured
        # 3000 GB/s ceiling; PyTorch eager took 40 us and has no compiled row.
        self.assertEqual(r[4:], ["20.0", "1678", "55.9%", "839", "2.00x", "n/a", "n/a"])
        self.assertEqual(sum(1 for line in self.lines if "| float32 | 4096x1024 |" in line and
                             "| cuda:0 |" in line), 1)

    def test_rowwise_kernels_eager_and_compile_peers(self):
        r = self.row("softmax", "cuda:0", "bfloat16", "16384x50304")
        self.assertEqual(r[4:], ["1300.0", "2536", "84.5%", "2029", "1.25x", "2536", "1.00x"])
        r = self.row("cross_entropy", "cuda:0", "bfloat16", "16384x50304")
        # Cross-entropy reads the logits once: 1.65 GB in 600 us.
        self.assertEqual(r[4:], ["600.0", "2747", "91.6%", "687", "4.00x", "n/a", "n/a"])
        self.assertEqual(self.row("log_softmax_backward", "cuda:0")[5:7], ["2747", "91.6%"])
        # A CPU row gets no share of a GPU ceiling and no peers.
        self.assertEqual(self.row("softmax", "cpu")[6:], ["n/a"] * 5)
        self.assertIn("- 1 case(s) not run: cross_entropy_backward: out of memory", self.md)

    def test_linear_backends_and_pytorch_peers(self):
        lines = self.md[self.md.index("### cuda:0 bfloat16"):].splitlines()
        r = next(line for line in lines if "| 4096x4096x4096 |" in line)
        cells = [c.strip() for c in r.strip("|").split("|")]
        # ours: the median (200 us), not the mean (250 us); 137.4 GFLOP in 200 us = 687 TFLOP/s,
        # 85.9% of the bf16 ceiling; cuBLASLt took 190 us, PyTorch eager 250 us, compile 180 us.
        self.assertEqual(cells, ["fwd", "relu", "4096x4096x4096", "200.0", "687.2", "85.9%",
                                 "723.4", "0.95x", "723.4", "549.8", "1.25x", "763.5", "0.90x"])
        r = self.row("bwd", "gelu", "8192x8192x8192")
        self.assertEqual(r[3:], ["4000.0", "549.8", "68.7%", "785.4", "0.70x", "785.4", "610.8",
                                 "0.90x", "n/a", "n/a"])
        # No auto row and no compiled peer: n/a, not a crash.
        self.assertEqual(self.row("fwd", "gelu", "1024x256x784")[8:],
                         ["n/a", "20.6", "2.00x", "n/a", "n/a"])
        self.assertIn("- 1 case(s) not run: linear_backward: being written", self.md)
        self.assertIn("- torch.compile failed for linear bfloat16 gelu 1024x256x784", self.md)

    def test_linear_ceiling_per_dtype(self):
        self.assertEqual(self.row("fp16 dense matmul")[1:], ["800 TFLOP/s", "measured in this run"])
        tf32 = self.row("fp32 (TF32) dense matmul")
        self.assertEqual(tf32[1], "400 TFLOP/s")
        self.assertIn("not measured", tf32[2])
        tf32_table = self.md[self.md.index("### cuda:0 float32_tf32"):]
        # 4.29 TFLOP in 40 us = 107.4 TFLOP/s, 26.8% of the (derived) 400 TFLOP/s TF32 ceiling.
        self.assertIn("| bwd | relu | 1024x1024x1024 | 40.0 | 107.4 | 26.8% | n/a |", tf32_table)
        self.assertIn("| fwd | relu | 128x256x784 | 500.0 | 0.103 | n/a |", self.md)

    def test_goals_report_the_gap(self):
        goals = self.md[self.md.index("## Goals"):self.md.index("## Ceilings")]
        self.assertIn("a gap does not fail the run", goals)
        self.assertIn("| gap: worst 0.70x against 0.90x | 1 of 2 row(s) below: 0.70x at bfloat16 "
                      "bwd gelu 8192x8192x8192 |", goals)
        self.assertIn("| gap: worst 0.90x against 1.00x | 1 of 3 row(s) below: 0.90x at bfloat16 "
                      "bwd gelu 8192x8192x8192 |", goals)
        self.assertIn("| gap: worst 55.9% against 85.0% | 2 of 3 row(s) below: 55.9% at softmax "
                      "float32 4096x1024; 84.5% at softmax bfloat16 16384x50304 |", goals)
        # Goals are no tests: the verdict names only the failed steps.
        self.assertIn("**Verdict: FAILED: test, sanitize-racecheck**", self.md)

    def test_ceilings_come_from_the_run(self):
        self.assertEqual(self.row("bf16 dense matmul")[1:], ["800 TFLOP/s", "measured in this run"])

    def test_mlp_step_ratio_and_missing_peer(self):
        self.assertEqual(self.row("784-256-256-10/b128")[1:], ["0.500", "1.000", "2.00x"])
        self.assertEqual(self.row("784-1024-1024-10/b1024")[1:], ["1.000", "-", "-"])


def copy_sample(work, *names):
    for name in names:
        with open(os.path.join(DATA, "gpu_run", name)) as f, \
                open(os.path.join(work, name), "w") as g:
            g.write(f.read())


def write_bench(work, name, benchmarks):
    with open(os.path.join(work, name), "w") as f:
        json.dump({"context": {}, "benchmarks": benchmarks}, f)


def linear_entry(backend, us, m=4096, dtype="bfloat16", direction="fwd"):
    """One bench_linear result: `us` per call over 10 iterations of 10 calls."""
    flop = (2 if direction == "fwd" else 4) * m ** 3
    name = f"linear/cuda:0/{dtype}/{direction}/relu/{backend}/{m}/{m}/{m}/manual_time"
    return {"name": name, "run_name": name, "run_type": "iteration", "iterations": 10,
            "real_time": us * 10, "cpu_time": 1.0, "time_unit": "us", "calls": 100.0,
            "FLOP": flop / (us * 1e-6)}


class Goals(unittest.TestCase):
    def test_met_and_missing_pytorch(self):
        with tempfile.TemporaryDirectory() as work:
            write_bench(work, "bench_linear.json", [
                linear_entry("ours", 210.0), linear_entry("cublaslt", 200.0),
                linear_entry("ours", 420.0, direction="bwd"),
                linear_entry("cublaslt", 380.0, direction="bwd"),
                # Too small to count for the cuBLASLt goal, however slow.
                linear_entry("ours", 100.0, m=1024), linear_entry("cublaslt", 10.0, m=1024)])
            md = render(work)
        self.assertIn("| bf16 GEMMs with M, N, K >= 4096: ours >= 0.9x cuBLASLt (fwd and bwd) | "
                      "met | 2 row(s); worst 0.90x (bfloat16 bwd relu 4096x4096x4096) |", md)
        self.assertIn("| n/a | no PyTorch eager rows in this run |", md)
        self.assertIn("| n/a | its benchmark did not run |", md)  # no bench_softmax.json
        # Every PyTorch cell of the table says n/a.
        self.assertIn("| 210.0 | 654.5 | 82.0% | 687.2 | 0.95x | n/a | n/a | n/a | n/a | n/a |", md)

    def test_softmax_goal_without_a_measured_ceiling(self):
        with tempfile.TemporaryDirectory() as work:
            copy_sample(work, "bench_softmax.json")  # no kernels_pytorch.jsonl: no ceilings
            md = render(work)
        # 2536 GB/s over the 3000 GB/s reference is 84.5%: still a gap, said against what.
        self.assertIn("(no ceiling measured in this run: against DESIGN.md's H100 reference) | "
                      "gap: worst 55.9% against 85.0%", md)
        self.assertIn("| softmax | cuda:0 | bfloat16 | 16384x50304 | 1300.0 | 2536 | 84.5% | n/a | "
                      "n/a | n/a | n/a |", md)

    def test_goals_printed_by_the_cli(self):
        with tempfile.TemporaryDirectory() as work:
            out = os.path.join(work, "r.md")
            r = subprocess.run([sys.executable, os.path.join(HERE, "report.py"),
                                os.path.join(DATA, "gpu_run"), "--out", out],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("goal: fused linear + activation: ours >= 1.0x PyTorch eager", r.stdout)
        self.assertEqual(r.stdout.count("goal: "), len(report.GOALS))
        self.assertEqual(len(report.GOALS), 7)

    def test_judge_lists_at_most_five_rows(self):
        values = [(0.5 + i / 100, f"row{i}") for i in range(8)]
        goal, verdict, detail = report.judge("g", values, 0.9, lambda v: f"{v:.2f}x", "none")
        self.assertEqual(verdict, "gap: worst 0.50x against 0.90x")
        self.assertTrue(detail.startswith("8 of 8 row(s) below: 0.50x at row0;"), detail)
        self.assertTrue(detail.endswith("; and 3 more"), detail)
        self.assertEqual(report.judge("g", [], 0.9, str, "why")[1:], ("n/a", "why"))


class TimePerCall(unittest.TestCase):
    def test_median_preferred_and_rates_follow_it(self):
        b = {"real_time": 2500.0, "time_unit": "us", "iterations": 10, "calls": 100.0,
             "median_us": 200.0}
        us, scale = report.time_per_call_us(b)
        self.assertEqual(us, 200.0)
        self.assertAlmostEqual(scale, 1.25)  # the mean per call is 250 us

    def test_batches_without_median_and_plain_rows(self):
        self.assertEqual(report.time_per_call_us(
            {"real_time": 3.0, "time_unit": "ms", "iterations": 4, "calls": 40.0}), (300.0, 1.0))
        self.assertEqual(report.time_per_call_us({"real_time": 5000.0, "time_unit": "ns"}),
                         (5.0, 1.0))


class PytorchPeerScript(unittest.TestCase):
    def test_linear_shapes_are_the_issues(self):
        import kernels_pytorch
        shapes = kernels_pytorch.linear_shapes(False)
        self.assertEqual(len(shapes), len(set(shapes)))
        for s in (1024, 2048, 4096, 8192):
            self.assertIn((s, s, s), shapes)
        for batch in (128, 65536):
            for n, k in ((256, 784), (1024, 1024), (4096, 4096)):
                self.assertIn((batch, n, k), shapes)
        self.assertTrue(set(kernels_pytorch.linear_shapes(True)) <= set(shapes))

    def test_bad_family_exits_2_before_needing_torch(self):
        r = subprocess.run([sys.executable, os.path.join(HERE, "kernels_pytorch.py"),
                            "--families", "linear,bogus"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown families ['bogus']", r.stderr)


class ConvSection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.md = render(os.path.join(DATA, "gpu_run"))
        cls.conv = cls.md[cls.md.index("## Conv layers"):cls.md.index("## PyTorch peer notes")]

    def row(self, table, *cells):
        part = self.conv[self.conv.index(f"### {table}"):]
        part = part[:part.index("\n### ")] if "\n### " in part else part
        for line in part.splitlines():
            if line.startswith("|") and all(f"| {c} |" in line for c in cells):
                return [c.strip() for c in line.strip("|").split("|")]
        self.fail(f"no row with {cells} in {table}:\n{self.conv}")

    def test_ours_cudnn_auto_and_pytorch(self):
        # 59.19 GFLOP in 200 us = 296.0 TFLOP/s, 37.0% of the measured 800 TFLOP/s bf16 ceiling;
        # cuDNN and auto 180 us, PyTorch 190 us.
        r = self.row("cuda:0 bfloat16", "resnet18-64x56-64-k3s1", "fwd")
        self.assertEqual(r[1:], ["3x3", "256", "fwd", "200.0", "296.0", "37.0%", "328.8", "0.90x",
                                 "328.8", "1.00", "311.5", "0.95x"])
        r = self.row("cuda:0 bfloat16", "resnet18-64x56-64-k3s1", "bwd_data")
        self.assertEqual(r[8:], ["0.80x", "227.7", "0.77", "118.4", "2.00x"])
        # cuDNN rejected it: n/a, and the error is listed.
        r = self.row("cuda:0 bfloat16", "bwd_weight")
        self.assertEqual(r[7:], ["n/a"] * 6)
        self.assertIn("- 1 case(s) not run: conv2d_backward: cuDNN rejected", self.conv)

    def test_roles_order_and_cpu_last(self):
        self.assertEqual(self.row("cuda:0 bfloat16", "resnet18-3x224-64-k7s2")[1], "stem 7x7/2")
        self.assertLess(self.conv.index("resnet18-3x224"), self.conv.index("resnet18-64x56"))
        self.assertLess(self.conv.index("### cuda:0 float32_tf32"), self.conv.index("### cpu"))
        self.assertEqual(self.row("cpu float32", "lenet-1x28-32-k3s1")[4:7],
                         ["5000.0", "0.006", "n/a"])

    def test_roles(self):
        self.assertEqual(report.conv_role("resnet18-64x56-128-k1s2"), "shortcut 1x1/2")
        self.assertEqual(report.conv_role("resnet18-64x56-128-k3s2"), "3x3/2 down")
        self.assertEqual(report.conv_role("lenet-1x28-32-k3s1"), "3x3")
        self.assertEqual(report.conv_role("bogus"), "?")

    def test_goals(self):
        goals = self.md[self.md.index("## Goals"):self.md.index("## Ceilings")]
        self.assertIn("| gap: worst 0.80x against 0.90x | 1 of 2 row(s) below: 0.80x at bfloat16 "
                      "bwd_data resnet18-64x56-64-k3s1/256 |", goals)
        # The stem's batch 64 and the float32 LeNet row count for auto, not for the cuDNN goal.
        self.assertIn("| gap: worst 77% against 95% | 1 of 4 row(s) below: 77% at bfloat16 "
                      "bwd_data resnet18-64x56-64-k3s1/256 |", goals)


class CnnEpochSection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.md = render(os.path.join(DATA, "gpu_run"))
        cls.epoch = cls.md[cls.md.index("## CNN training epoch"):]

    def test_tables_per_device_with_ratios(self):
        self.assertIn("| cnn/b128/n59904 | 468 | 2.000 | 4.27 | 0.4000 | 3.000 | 1.50x | 0.4200 | "
                      "1.500 | 0.75x | 0.4100 |", self.epoch)
        self.assertIn("### cpu (16 CPU threads)", self.epoch)
        self.assertIn("| cnn/b128/n6400 | 50 | 40.000 | 800.00 | 0.9000 | 50.000 | 1.25x | "
                      "0.9500 |", self.epoch)
        self.assertIn("| cnn-bn/b128/n59904 | 468 | 2.500 | 5.34 | 0.3500 | 2.000 | 0.80x | "
                      "2.2000 | - | - | - |", self.epoch)

    def test_learning_check_names_the_side_that_did_not_learn(self):
        self.assertIn("Learning check (cuda, cpu): FAILED", self.epoch)
        self.assertIn("- pytorch-eager on cuda (cnn-bn/b128/n59904) did not learn: final loss "
                      "2.2000, first-step loss 2.3000", self.epoch)

    def test_goals_leave_out_rows_that_failed_the_check(self):
        goals = self.md[self.md.index("## Goals"):self.md.index("## Ceilings")]
        # cnn-bn's 0.80x is not counted: its PyTorch side did not learn.
        self.assertIn("| met | 1 row(s); worst 1.50x (cuda cnn/b128/n59904) |", goals)
        self.assertIn("| met | 1 row(s); worst 1.25x (cpu cnn/b128/n6400) |", goals)

    def run_only(self, work):
        out = subprocess.run([sys.executable, os.path.join(HERE, "report.py"), work, "--only",
                              "cnn_epoch", "--out", "-"], capture_output=True, text=True,
                             timeout=60)
        return out

    def test_only_cnn_epoch_exits_1_when_the_check_fails(self):
        r = self.run_only(os.path.join(DATA, "gpu_run"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(r.stdout.startswith("## CNN training epoch"), r.stdout)
        self.assertNotIn("## Conv", r.stdout)

    def test_only_cnn_epoch_passes_and_fails_on_disagreement(self):
        rows = [{"case": "cnn/b128/n1280", "peer": "nn_cuda", "device": "cpu", "seconds": 2.0,
                 "steps": 10, "ms_per_step": 200.0, "first_loss": 2.3, "final_loss": 1.2},
                {"case": "cnn/b128/n1280", "peer": "libtorch", "device": "cpu", "seconds": 3.0,
                 "steps": 10, "ms_per_step": 300.0, "first_loss": 2.3, "final_loss": 1.3}]
        with tempfile.TemporaryDirectory() as work:
            with open(os.path.join(work, "cnn_epoch_ours.jsonl"), "w") as f:
                f.write("\n".join(json.dumps(r) for r in rows) + "\n")
            r = self.run_only(work)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("| cnn/b128/n1280 | 10 | 2.000 | 200.00 | 1.2000 | 3.000 | 1.50x | "
                          "1.3000 |", r.stdout)
            self.assertIn("Learning check (cpu): passed", r.stdout)
            # A peer that learned but ended far from ours (1.2 + 0.1 + 0.3 < 1.7) fails.
            rows[1]["final_loss"] = 1.7
            with open(os.path.join(work, "cnn_epoch_ours.jsonl"), "w") as f:
                f.write("\n".join(json.dumps(r) for r in rows) + "\n")
            r = self.run_only(work)
        self.assertEqual(r.returncode, 1)
        self.assertIn("libtorch on cpu (cnn/b128/n1280): final loss 1.7000, too far from "
                      "libnn_cuda's 1.2000", r.stdout)

    def test_only_cnn_epoch_without_rows_fails(self):
        with tempfile.TemporaryDirectory() as work:
            r = self.run_only(work)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no CNN epoch rows", r.stderr)


class CnnPytorchScript(unittest.TestCase):
    def test_layers_are_bench_convs(self):
        import cnn_pytorch
        names = [layer[0] for layer in cnn_pytorch.conv_layers(False)]
        self.assertEqual(len(names), 13)
        self.assertEqual(len(set(names)), 13)
        for name in ("lenet-1x28-32-k3s1", "lenet-32x14-64-k3s1", "resnet18-3x224-64-k7s2",
                     "resnet18-64x56-64-k3s1", "resnet18-64x56-128-k3s2",
                     "resnet18-64x56-128-k1s2", "resnet18-512x7-512-k3s1"):
            self.assertIn(name, names)
        self.assertNotIn("?", [report.conv_role(n) for n in names])
        quick = [layer[0] for layer in cnn_pytorch.conv_layers(True)]
        self.assertTrue(set(quick) < set(names))
        # bench_conv.cpp registers the same names (the C++ is the reference).
        with open(os.path.join(HERE, "bench_conv.cpp")) as f:
            source = f.read()
        self.assertIn('{"lenet", 1, 28, 32, 3, 1, true}, {"lenet", 32, 14, 64, 3, 1, true}', source)
        self.assertIn('{"resnet18", 3, 224, 64, 7, 2, false}', source)

    def test_bad_arguments_exit_2_before_needing_torch(self):
        for args in ([], ["conv", "--bogus"], ["epoch", "--limit", "x"]):
            r = subprocess.run([sys.executable, os.path.join(HERE, "cnn_pytorch.py"), *args],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("usage:", r.stderr)

    def test_idx_reader_checks_the_length(self):
        import cnn_pytorch
        with tempfile.TemporaryDirectory() as tmp:
            good = os.path.join(tmp, "good")
            with open(good, "wb") as f:
                f.write(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 8, 9]))
            self.assertEqual(cnn_pytorch.read_idx(good), ([3], bytes([7, 8, 9])))
            bad = os.path.join(tmp, "bad")
            with open(bad, "wb") as f:
                f.write(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes([7]))
            with self.assertRaisesRegex(ValueError, "1 bytes of data"):
                cnn_pytorch.read_idx(bad)


class ReportOnRecordedGoogleBenchmark(unittest.TestCase):
    def test_rows_times_and_errors(self):
        rows = report.load_gbench(os.path.join(DATA, "gbench_softmax_cpu.json"))
        self.assertEqual(len(rows), 3)
        first = rows[0]
        self.assertEqual((first["family"], first["device"], first["dtype"], first["shape"]),
                         ("softmax", "cpu", "float32", "4096x1024"))
        self.assertAlmostEqual(first["us"], 44274.944, places=2)
        self.assertAlmostEqual(first["gbps"], 0.757865, places=5)
        self.assertIn("NN_CUDA=OFF", rows[2]["error"])

    def test_cpu_rows_get_no_pytorch_ratio(self):
        with tempfile.TemporaryDirectory() as work:
            with open(os.path.join(DATA, "gbench_softmax_cpu.json")) as f:
                data = f.read()
            with open(os.path.join(work, "bench_softmax.json"), "w") as f:
                f.write(data)
            md = render(work)
        self.assertIn("| softmax | cpu | float32 | 4096x1024 | 44274.9 | 0.76 | n/a | n/a |", md)
        self.assertIn("DESIGN.md's H100 reference", md)
        self.assertIn("- 1 case(s) not run: skipped: library built without CUDA", md)


class ReportOnNothing(unittest.TestCase):
    def test_empty_run_passes_with_reference_ceilings(self):
        with tempfile.TemporaryDirectory() as work:
            md = render(work)
        self.assertIn("**Verdict: PASSED**", md)
        self.assertIn("| bf16 dense matmul | 798 TFLOP/s | DESIGN.md's H100 reference |", md)
        self.assertNotIn("## Matmul", md)

    def test_unreadable_inputs_do_not_crash(self):
        with tempfile.TemporaryDirectory() as work:
            for name in ("bench_matmul.json", "bench_linear.json", "bench_softmax.json",
                         "kernels_pytorch.jsonl", "ctest-junit.xml", "gtest-gpu.json"):
                with open(os.path.join(work, name), "w") as f:
                    f.write("{ truncated")
            md = render(work)
        self.assertIn("CTest: unreadable JUnit file", md)
        self.assertIn("- 1 case(s) not run: unreadable benchmark JSON bench_linear.json", md)

    def test_cli_rejects_a_missing_folder(self):
        self.assertEqual(report.main(["/nonexistent/gpu_suite", "--out", os.devnull]), 2)


def write_fake_smi(folder, lines):
    """An executable that stands in for nvidia-smi: prints `lines` for any query."""
    path = os.path.join(folder, "fake-nvidia-smi")
    with open(path, "w") as f:
        f.write("#!/bin/sh\ncase \"$*\" in\n")
        f.write(f"  *driver_version*) echo '{lines[1]}' ;;\n")
        f.write(f"  *) echo '{lines[0]}' ;;\nesac\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


class GpuSuiteScript(unittest.TestCase):
    def run_suite(self, *args, smi="false"):
        env = dict(os.environ, NVIDIA_SMI=smi, NN_COMMIT="abc1234", PYTHON=sys.executable)
        return subprocess.run(["bash", SUITE, *args], capture_output=True, text=True, env=env,
                              timeout=120)

    def test_help(self):
        r = self.run_suite("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--allow-cpu", r.stdout)

    def test_bad_arguments_exit_2(self):
        with tempfile.TemporaryDirectory() as tmp:
            for args in (["--bogus"], ["--out"], ["--steps", "build,fly"], ["--arch", "9.0"]):
                r = self.run_suite(*args, "--build", tmp)
                self.assertEqual(r.returncode, 2, args)
                self.assertIn("usage:", r.stderr)

    def test_no_gpu_exits_2_with_a_reason(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = self.run_suite("--build", tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no NVIDIA GPU found", r.stderr)
        self.assertIn("--allow-cpu", r.stderr)

    def test_gpu_detection_and_report_step(self):
        with tempfile.TemporaryDirectory() as tmp:
            smi = write_fake_smi(tmp, ["NVIDIA Fake H100, 9.0",
                                       "NVIDIA Fake H100, 580.1, 9.0, 1755, 1980, 2619, 2619, 700"])
            out = os.path.join(tmp, "results")
            r = self.run_suite("--build", os.path.join(tmp, "b"), "--out", out, "--steps",
                               "report", smi=smi)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            files = sorted(os.listdir(out))
            self.assertEqual(len(files), 2, files)
            self.assertRegex(files[0], r"^\d{8}-\d{4}-abc1234-nvidia-fake-h100-raw\.tar\.gz$")
            self.assertRegex(files[1], r"^\d{8}-\d{4}-abc1234-nvidia-fake-h100\.md$")
            with open(os.path.join(out, files[1])) as f:
                md = f.read()
            with open(os.path.join(tmp, "b", "gpu_suite", "env.txt")) as f:
                env = f.read()
        self.assertIn("| SM clock now / max (MHz) | 1755 / 1980 |", md)
        self.assertIn("compute_cap=9.0 (built for 90)", env)
        self.assertIn("**Verdict: PASSED**", md)

    def test_bench_linear_step_is_its_own_call(self):
        # No build here, so the benchmark fails; a stand-in python without torch skips the peer
        # (on a GPU machine the real one would start benchmarking). The bench step recorded by
        # an earlier call stays in the report.
        with tempfile.TemporaryDirectory() as tmp:
            smi = write_fake_smi(tmp, ["NVIDIA Fake H100, 9.0", "NVIDIA Fake H100, 580.1, 9.0"])
            python = os.path.join(tmp, "python-without-torch")
            with open(python, "w") as f:
                f.write(f'#!/bin/sh\n[ "$1" = -c ] && exit 1\nexec "{sys.executable}" "$@"\n')
            os.chmod(python, 0o755)
            work = os.path.join(tmp, "b", "gpu_suite")
            os.makedirs(work)
            with open(os.path.join(work, "steps.txt"), "w") as f:
                f.write("bench-bench_matmul ok 30\nbench_linear-ours ok 100\n")
            env = dict(os.environ, NVIDIA_SMI=smi, NN_COMMIT="abc1234", PYTHON=python)
            r = subprocess.run(["bash", SUITE, "--build", os.path.join(tmp, "b"), "--out",
                                tmp, "--steps", "bench_linear,report"], capture_output=True,
                               text=True, env=env, timeout=120)
            with open(os.path.join(work, "steps.txt")) as f:
                steps = f.read().splitlines()
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("FAILED: bench_linear-ours", r.stdout)
        self.assertEqual([line.split()[:2] for line in steps],
                         [["bench-bench_matmul", "ok"], ["bench_linear-ours", "FAIL"],
                          ["bench_linear-pytorch", "skipped"]])

    def test_failed_step_recorded_by_an_earlier_call_fails_the_verdict(self):
        with tempfile.TemporaryDirectory() as tmp:
            smi = write_fake_smi(tmp, ["NVIDIA Fake H100, 9.0", "NVIDIA Fake H100, 580.1, 9.0"])
            work = os.path.join(tmp, "b", "gpu_suite")
            os.makedirs(work)
            with open(os.path.join(work, "steps.txt"), "w") as f:
                f.write("build ok 10\ntest FAIL 5 exit status 8\n")
            r = self.run_suite("--build", os.path.join(tmp, "b"), "--out", tmp, "--steps",
                               "report", "--arch", "90a", smi=smi)
            with open(os.path.join(work, "env.txt")) as f:
                env = f.read()
        self.assertEqual(r.returncode, 1)
        self.assertIn("FAILED: test", r.stdout)
        self.assertIn("(built for 90a)", env)


    def test_conv_and_epoch_steps(self):
        # No build here: every benchmark fails, the PyTorch peers are skipped (no torch), and the
        # learning check fails for want of rows; each is recorded under its own name.
        with tempfile.TemporaryDirectory() as tmp:
            smi = write_fake_smi(tmp, ["NVIDIA Fake H100, 9.0", "NVIDIA Fake H100, 580.1, 9.0"])
            python = os.path.join(tmp, "python-without-torch")
            with open(python, "w") as f:
                f.write(f'#!/bin/sh\n[ "$1" = -c ] && exit 1\nexec "{sys.executable}" "$@"\n')
            os.chmod(python, 0o755)
            env = dict(os.environ, NVIDIA_SMI=smi, NN_COMMIT="abc1234", PYTHON=python)
            r = subprocess.run(["bash", SUITE, "--build", os.path.join(tmp, "b"), "--out", tmp,
                                "--steps", "bench_conv,cnn_epoch,report"], capture_output=True,
                               text=True, env=env, timeout=120)
            with open(os.path.join(tmp, "b", "gpu_suite", "steps.txt")) as f:
                steps = [line.split()[:2] for line in f.read().splitlines()]
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(steps, [["bench_conv-ours", "FAIL"], ["bench_conv-pytorch", "skipped"],
                                 ["cnn_epoch-ours", "FAIL"], ["cnn_epoch-ours_bn", "FAIL"],
                                 ["cnn_epoch-pytorch", "skipped"], ["cnn_epoch-check", "FAIL"]])


if __name__ == "__main__":
    unittest.main(verbosity=2)
