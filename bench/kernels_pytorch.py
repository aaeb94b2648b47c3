#!/usr/bin/env python3
"""PyTorch's side of the kernel benchmarks, and the device's measured ceilings.

Times torch.matmul (float32, float32 with TF32, bfloat16) and torch.softmax on the shapes of
bench/bench_matmul.cpp and bench/bench_softmax.cpp, with CUDA events (median of several timed
batches after a warm-up), on random data. Also measures the two ceilings that bench/report.py
divides by: a large device-to-device copy (bytes read + written per second) and a large bf16
matrix product (dense FLOP/s). Prints one JSON object per line:

  {"kind": "matmul", "dtype": "bfloat16", "shape": "1024", "ms": 0.01, "tflops": 200.0}
  {"kind": "softmax", "dtype": "float32", "shape": "4096x1024", "ms": 0.02, "gbps": 1500.0}
  {"kind": "ceiling", "name": "copy", "gbps": 3000.0, ...}
  {"kind": "device", "name": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", ...}

Run by bench/gpu_suite.sh; --quick shortens every measurement.
"""
import argparse
import json
import statistics
import sys

MATMUL_SIZES = (256, 512, 1024, 2048)
SOFTMAX_SHAPES = ((4096, 1024), (16384, 256), (1024, 8192), (256, 32768))


def time_ms(torch, fn, reps, batches):
    """Median milliseconds per call over `batches` event-timed batches of `reps` calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller ceilings")
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        print("kernels_pytorch.py: PyTorch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("kernels_pytorch.py: PyTorch sees no CUDA device", file=sys.stderr)
        return 2
    reps, batches = (5, 5) if args.quick else (20, 10)
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(1)
    emit({"kind": "device", "name": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "cuda": torch.version.cuda})

    # Ceilings first, on a cold-ish chip: the copy moves 2 x 2 GiB per call (1 GiB quick).
    n_bytes = (1 << 30) if args.quick else (2 << 30)
    src = torch.empty(n_bytes, dtype=torch.uint8, device=dev)
    src.random_(0, 256, generator=gen)
    dst = torch.empty_like(src)
    ms = time_ms(torch, lambda: dst.copy_(src), max(1, reps // 2), batches)
    emit({"kind": "ceiling", "name": "copy", "bytes": 2 * n_bytes, "ms": ms,
          "gbps": 2 * n_bytes / (ms * 1e-3) / 1e9})
    del src, dst
    n = 4096 if args.quick else 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=gen)
    ms = time_ms(torch, lambda: torch.matmul(a, b), reps, batches)
    emit({"kind": "ceiling", "name": "matmul_bf16", "shape": str(n), "ms": ms,
          "tflops": 2 * n**3 / (ms * 1e-3) / 1e12})
    del a, b

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

    for dtype_name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        for rows, cols in SOFTMAX_SHAPES:
            x = torch.randn(rows, cols, device=dev, dtype=dtype, generator=gen)
            ms = time_ms(torch, lambda: torch.softmax(x, dim=-1), reps, batches)
            moved = 2 * x.numel() * x.element_size()
            emit({"kind": "softmax", "dtype": dtype_name, "shape": f"{rows}x{cols}", "ms": ms,
                  "gbps": moved / (ms * 1e-3) / 1e9})
    return 0


if __name__ == "__main__":
    sys.exit(main())
