#!/usr/bin/env python3
"""PyTorch's side of the kernel benchmarks, and the device's measured ceilings.

Times PyTorch on the shapes and dtypes of bench/bench_matmul.cpp, bench/bench_softmax.cpp and
bench/bench_linear.cpp, with CUDA events (median of several timed batches after a warm-up), on
random data, eager and (for linear and the row-wise kernels) torch.compile. Also measures the
ceilings that bench/report.py divides by: a large device-to-device copy (bytes read + written per
second) and large dense matrix products in bf16, fp16 and fp32 with TF32 (FLOP/s). Prints one JSON
object per line:

  {"kind": "device", "name": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", ...}
  {"kind": "ceiling", "name": "copy", "gbps": 3000.0, ...}
  {"kind": "ceiling", "name": "matmul_bf16", "shape": "8192", "ms": 1.4, "tflops": 790.0}
  {"kind": "matmul", "dtype": "bfloat16", "shape": "1024", "ms": 0.01, "tflops": 200.0}
  {"kind": "softmax", "dtype": "float32", "shape": "4096x1024", "mode": "eager", "ms": 0.02,
   "gbps": 1500.0}
  {"kind": "linear", "dtype": "bfloat16", "shape": "8192x4096x4096", "direction": "fwd",
   "act": "gelu", "mode": "compile", "ms": 0.5, "tflops": 550.0}
  {"kind": "note", "text": "torch.compile unavailable (...): compile rows skipped"}

Linear is F.linear + relu/gelu (exact) with inputs that require grad: "fwd" is the forward as in
training, "bwd" is torch.autograd.grad of its output for x, w and b (4 M N K FLOP), as
bench_linear counts them; shape is M x N x K (batch x out x in). Row-wise kinds are softmax,
log_softmax, their _backward, cross_entropy (F.cross_entropy, reduction "none") and
cross_entropy_backward, with bench_softmax's byte counts. Run by bench/gpu_suite.sh; --quick
shortens every measurement and keeps the subset bench_linear --quick runs; --families picks what
to run; --compile-budget caps the seconds spent compiling (the rest is skipped, with a note).
"""
import argparse
import json
import math
import statistics
import sys
import time

FAMILIES = ("ceilings", "matmul", "softmax", "linear")
MATMUL_SIZES = (256, 512, 1024, 2048)
ROWWISE_SHAPES = ((4096, 1024), (16384, 50304))
EARLIER_SOFTMAX_SHAPES = ((16384, 256), (1024, 8192), (256, 32768))
ROWWISE_KINDS = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
                 "cross_entropy", "cross_entropy_backward")
# Tensor-bytes multiples, as bench_softmax.cpp counts them.
ROWWISE_TRAFFIC = {"softmax": 2, "log_softmax": 2, "softmax_backward": 3,
                   "log_softmax_backward": 3, "cross_entropy": 1, "cross_entropy_backward": 2}
LINEAR_DTYPES = ("bfloat16", "float16", "float32_tf32")
LINEAR_ACTS = ("relu", "gelu")
LINEAR_COMPILE_DTYPES = ("bfloat16",)  # what torch.compile users train in; compiles are slow


def linear_shapes(quick):
    """(M, N, K) as bench_linear.cpp registers them, in the same order."""
    if quick:
        return [(1024, 1024, 1024), (4096, 4096, 4096), (1024, 256, 784), (8192, 4096, 4096)]
    shapes = [(s, s, s) for s in (1024, 2048, 4096, 8192)]
    for batch in (128, 1024, 8192, 65536):
        for n, k in ((256, 784), (1024, 1024), (4096, 4096)):
            if (batch, n, k) not in shapes:
                shapes.append((batch, n, k))
    return shapes


def time_ms(torch, fn, reps, batches, cap_s=1.0):
    """Median milliseconds per call over `batches` event-timed batches of `reps` calls, with
    fewer calls per batch where `reps` x `batches` calls would take more than about `cap_s`."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    estimate_s = start.elapsed_time(stop) * 1e-3
    if estimate_s * reps * batches > cap_s:
        reps = max(1, int(cap_s / (estimate_s * batches)))
    times = []
    for _ in range(batches):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / reps)
    return statistics.median(times)


def emit(record):
    print(json.dumps(record), flush=True)


def note(text):
    emit({"kind": "note", "text": text})
    print(f"kernels_pytorch.py: {text}", file=sys.stderr, flush=True)


class Compiler:
    """torch.compile when it works here, within a budget of seconds; says why when it does not."""

    def __init__(self, torch, budget_s):
        self.torch = torch
        self.budget_s = budget_s
        self.spent_s = 0.0
        self.reason = None
        self.skipped = 0
        if budget_s <= 0:
            self.reason = "not asked for: --compile-budget 0"
            return
        if not hasattr(torch, "compile"):
            self.reason = f"torch {torch.__version__} has no torch.compile"
            return
        # Static shapes, one specialisation per shape: what a model with fixed shapes gets.
        # Without this dynamo would go dynamic after the second shape, then give up at its
        # cache limit and silently run eager.
        try:
            import torch._dynamo as dynamo
            for limit in ("cache_size_limit", "recompile_limit"):
                if hasattr(dynamo.config, limit):
                    setattr(dynamo.config, limit, max(getattr(dynamo.config, limit), 256))
            if hasattr(dynamo.config, "automatic_dynamic_shapes"):
                dynamo.config.automatic_dynamic_shapes = False
        except Exception as e:  # noqa: BLE001 - any failure means "no compile" here
            self.reason = f"torch._dynamo is not usable ({type(e).__name__}: {e})"
            return
        try:
            probe = torch.compile(lambda t: torch.relu(t) + 1, dynamic=False)
            probe(torch.ones(8, device="cuda"))
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001 - no triton, no compiler, ...
            self.reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    @property
    def available(self):
        return self.reason is None

    def compile(self, fn):
        return self.torch.compile(fn, dynamic=False)

    def run(self, label, body):
        """Runs body() (which compiles and times) unless the budget is spent; notes a failure."""
        if not self.available:
            return
        if self.spent_s > self.budget_s:
            self.skipped += 1
            return
        start = time.monotonic()
        try:
            body()
        except Exception as e:  # noqa: BLE001 - one case failing must not end the run
            msg = str(e).splitlines()[0] if str(e) else ""
            note(f"torch.compile failed for {label}: {type(e).__name__}: {msg}")
        finally:
            self.spent_s += time.monotonic() - start

    def summary(self):
        if not self.available:
            note(f"torch.compile unavailable ({self.reason}): compile rows skipped")
        elif self.skipped:
            note(f"torch.compile budget of {self.budget_s:.0f} s spent: {self.skipped} compile "
                 "case(s) skipped (raise --compile-budget)")


def ceilings(torch, dev, gen, quick, reps, batches):
    # The copy moves 2 x 2 GiB per call (1 GiB quick).
    n_bytes = (1 << 30) if quick else (2 << 30)
    src = torch.empty(n_bytes, dtype=torch.uint8, device=dev)
    src.random_(0, 256, generator=gen)
    dst = torch.empty_like(src)
    ms = time_ms(torch, lambda: dst.copy_(src), max(1, reps // 2), batches)
    emit({"kind": "ceiling", "name": "copy", "bytes": 2 * n_bytes, "ms": ms,
          "gbps": 2 * n_bytes / (ms * 1e-3) / 1e9})
    del src, dst
    n = 4096 if quick else 8192
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    for name, dtype, tf32 in (("matmul_bf16", torch.bfloat16, False),
                              ("matmul_float16", torch.float16, False),
                              ("matmul_float32_tf32", torch.float32, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
        b = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
        ms = time_ms(torch, lambda: torch.matmul(a, b), reps, batches)
        emit({"kind": "ceiling", "name": name, "shape": str(n), "ms": ms,
              "tflops": 2 * n**3 / (ms * 1e-3) / 1e12})
        del a, b
    torch.backends.cuda.matmul.allow_tf32 = previous_tf32


def matmul(torch, dev, gen, reps, batches):
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    for dtype_name, dtype, tf32 in (("float32", torch.float32, False),
                                    ("float32_tf32", torch.float32, True),
                                    ("bfloat16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for n in MATMUL_SIZES:
            a = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
            b = torch.randn(n, n, device=dev, dtype=dtype, generator=gen)
            ms = time_ms(torch, lambda: torch.matmul(a, b), reps, batches)
            emit({"kind": "matmul", "dtype": dtype_name, "shape": str(n), "ms": ms,
                  "tflops": 2 * n**3 / (ms * 1e-3) / 1e12})
    torch.backends.cuda.matmul.allow_tf32 = previous_tf32


def rowwise_fns(torch, kind):
    """(forward function of x (and target), whether it is a backward kind)."""
    F = torch.nn.functional
    base = kind.removesuffix("_backward")
    if base == "softmax":
        return (lambda x, t: torch.softmax(x, dim=-1)), base != kind
    if base == "log_softmax":
        return (lambda x, t: torch.log_softmax(x, dim=-1)), base != kind
    return (lambda x, t: F.cross_entropy(x, t, reduction="none")), base != kind


def time_backward(torch, forward, inputs, reps, batches, forward_ms=None):
    """Milliseconds of torch.autograd.grad of forward()'s output for `inputs`, on one graph kept
    with retain_graph. Where a graph cannot run backward twice, forward + backward is timed and
    the forward (`forward_ms`, or timed here) taken off."""
    y = forward()
    g = torch.randn_like(y)
    try:
        return time_ms(torch, lambda: torch.autograd.grad(y, inputs, g, retain_graph=True), reps,
                       batches)
    except RuntimeError:
        if forward_ms is None:
            forward_ms = time_ms(torch, forward, reps, batches)
        both = time_ms(torch, lambda: torch.autograd.grad(forward(), inputs, g), reps, batches)
        return max(both - forward_ms, 1e-6)


def time_rowwise(torch, fn, backward, x, target, reps, batches):
    if not backward:
        with torch.no_grad():
            return time_ms(torch, lambda: fn(x, target), reps, batches)
    xg = x.detach().requires_grad_(True)
    return time_backward(torch, lambda: fn(xg, target), xg, reps, batches)


def rowwise(torch, dev, gen, reps, batches, compiler):
    for kind in ROWWISE_KINDS:
        for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
            shapes = list(ROWWISE_SHAPES)
            if kind == "softmax":
                shapes += EARLIER_SOFTMAX_SHAPES
            for rows, cols in shapes:
                x = torch.randn(rows, cols, device=dev, dtype=dtype, generator=gen)
                target = torch.randint(0, cols, (rows,), device=dev, generator=gen)
                moved = ROWWISE_TRAFFIC[kind] * x.numel() * x.element_size()
                fn, backward = rowwise_fns(torch, kind)
                record = {"kind": kind, "dtype": dtype_name, "shape": f"{rows}x{cols}"}

                def measure(f, mode):
                    ms = time_rowwise(torch, f, backward, x, target, reps, batches)
                    emit(dict(record, mode=mode, ms=ms, gbps=moved / (ms * 1e-3) / 1e9))

                measure(fn, "eager")
                if (rows, cols) in ROWWISE_SHAPES:
                    compiler.run(f"{kind} {dtype_name} {rows}x{cols}",
                                 lambda: measure(compiler.compile(fn), "compile"))
                del x, target
                torch.cuda.empty_cache()


def linear_fn(torch, act):
    F = torch.nn.functional
    if act == "relu":
        return lambda x, w, b: F.relu(F.linear(x, w, b))
    return lambda x, w, b: F.gelu(F.linear(x, w, b))  # exact erf GELU, as Activation::Gelu


def time_linear(torch, fn, x, w, b, reps, batches):
    """(forward ms, backward ms) of fn with x, w and b requiring grad."""
    fwd = time_ms(torch, lambda: fn(x, w, b), reps, batches)
    return fwd, time_backward(torch, lambda: fn(x, w, b), (x, w, b), reps, batches, fwd)


def linear(torch, dev, gen, quick, reps, batches, compiler):
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    dtypes = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32_tf32": torch.float32}
    for dtype_name in LINEAR_DTYPES:
        dtype = dtypes[dtype_name]
        torch.backends.cuda.matmul.allow_tf32 = dtype_name == "float32_tf32"
        for m, n, k in linear_shapes(quick):
            # As bench_linear: w ~ N(0, 1/K), so float16 stays finite.
            x = torch.randn(m, k, device=dev, dtype=dtype, generator=gen).requires_grad_(True)
            w = (torch.randn(n, k, device=dev, dtype=dtype, generator=gen) / math.sqrt(k))
            w.requires_grad_(True)
            b = torch.randn(n, device=dev, dtype=dtype, generator=gen).requires_grad_(True)
            mnk = m * n * k
            for act in LINEAR_ACTS:
                record = {"kind": "linear", "dtype": dtype_name, "shape": f"{m}x{n}x{k}",
                          "act": act}

                def measure(fn, mode):
                    fwd, bwd = time_linear(torch, fn, x, w, b, reps, batches)
                    emit(dict(record, direction="fwd", mode=mode, ms=fwd,
                              tflops=2 * mnk / (fwd * 1e-3) / 1e12))
                    emit(dict(record, direction="bwd", mode=mode, ms=bwd,
                              tflops=4 * mnk / (bwd * 1e-3) / 1e12))

                fn = linear_fn(torch, act)
                measure(fn, "eager")
                if dtype_name in LINEAR_COMPILE_DTYPES:
                    compiler.run(f"linear {dtype_name} {act} {m}x{n}x{k}",
                                 lambda: measure(compiler.compile(fn), "compile"))
            del x, w, b
            torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = previous_tf32


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller ceilings")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help=f"comma-separated subset of {','.join(FAMILIES)} (default: all)")
    p.add_argument("--compile-budget", type=float, default=None, metavar="SECONDS",
                   help="seconds of torch.compile cases before the rest are skipped "
                        "(default 240, 90 with --quick; 0: no compile)")
    args = p.parse_args()
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        p.error(f"unknown families {unknown} (known: {', '.join(FAMILIES)})")
    try:
        import torch
    except ImportError:
        print("kernels_pytorch.py: PyTorch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("kernels_pytorch.py: PyTorch sees no CUDA device", file=sys.stderr)
        return 2
    reps, batches = (5, 5) if args.quick else (20, 10)
    budget = args.compile_budget
    if budget is None:
        budget = 90.0 if args.quick else 240.0
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(1)
    emit({"kind": "device", "name": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "cuda": torch.version.cuda})

    # Ceilings first, on a cold-ish chip.
    if "ceilings" in families:
        ceilings(torch, dev, gen, args.quick, reps, batches)
    if "matmul" in families:
        matmul(torch, dev, gen, reps, batches)
    if "softmax" in families or "linear" in families:
        compiler = Compiler(torch, budget)
        if "softmax" in families:
            rowwise(torch, dev, gen, reps, batches, compiler)
        if "linear" in families:
            linear(torch, dev, gen, args.quick, reps, batches, compiler)
        compiler.summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
