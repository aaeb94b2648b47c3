#!/usr/bin/env python3
"""Tests of the GPU runner that need no GPU: bench/report.py on recorded outputs, and
bench/gpu_suite.sh's argument handling, GPU detection and report step (with a stand-in
nvidia-smi). CTest test `bench_report` (label bench); standard library only.

bench/testdata/gbench_softmax_cpu.json was written by Google Benchmark 1.7 running
bench_softmax on a CPU. bench/testdata/gpu_run/ is a made-up GPU run in the layout the suite
writes (round numbers, a failed test and a racecheck finding) so every section has rows.
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
        r = self.row("cuda:0", "bfloat16", "2048")
        self.assertEqual(r[3:], ["40.0", "429.50", "53.7%", "858.99", "0.50x"])
        self.assertIn("- 1 case(s) not run: matmul: float16 is not supported", self.md)
        self.assertIn("cuBLAS(Lt)", self.md)

    def test_softmax_strips_manual_time_and_skips_aggregates(self):
        r = self.row("cuda:0", "float32", "4096x1024")
        # 20000 ns = 20 us; 1.68e12 B/s over the measured 3000 GB/s ceiling.
        self.assertEqual(r[3:], ["20.0", "1678", "55.9%", "839", "2.00x"])
        self.assertEqual(sum(1 for line in self.lines if "| 4096x1024 |" in line), 1)

    def test_ceilings_come_from_the_run(self):
        self.assertEqual(self.row("bf16 dense matmul")[1:], ["800 TFLOP/s", "measured in this run"])

    def test_mlp_step_ratio_and_missing_peer(self):
        self.assertEqual(self.row("784-256-256-10/b128")[1:], ["0.500", "1.000", "2.00x"])
        self.assertEqual(self.row("784-1024-1024-10/b1024")[1:], ["1.000", "-", "-"])


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
        self.assertIn("| cpu | float32 | 4096x1024 | 44274.9 | 1 |", md)
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
            for name in ("bench_matmul.json", "ctest-junit.xml", "gtest-gpu.json"):
                with open(os.path.join(work, name), "w") as f:
                    f.write("{ truncated")
            md = render(work)
        self.assertIn("CTest: unreadable JUnit file", md)

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
