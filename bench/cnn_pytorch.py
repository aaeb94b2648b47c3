#!/usr/bin/env python3
"""PyTorch's side of the convolution benchmarks (bench/bench_conv.cpp, bench/bench_cnn_epoch.cpp).

    cnn_pytorch.py conv  [--quick] [--budget S]   conv layers on the GPU, JSON objects, one a line
    cnn_pytorch.py epoch [--device DEV] [--limit N] [--batch-size N] [--batch-norm]
                         [--dropout P] [--warmup N] [--seed N] [--threads N] [--compile]
                         [--data DIR]     one CNN training epoch, one JSON object

conv: the layers bench_conv registers (LeNet's two 3x3 convolutions with bias, ResNet-18's stem,
3x3, 3x3/2 and 1x1/2 convolutions without), batches 64 and 256, bfloat16 and float32 with TF32,
each pass on its own: "fwd" is F.conv2d, "bwd_data" and "bwd_weight" are
aten.convolution_backward asked for the input's or the weight's (and bias's) gradient alone, so
each is timed without the other. cuDNN picks its algorithms with torch.backends.cudnn.benchmark
on (what a PyTorch CNN training script sets; --no-cudnn-benchmark for the heuristics alone).
CUDA events, the median of several timed batches after a warm-up (kernels_pytorch.time_ms).
Rows: {"kind": "conv", "dtype": "bfloat16", "direction": "fwd", "layer":
"resnet18-64x56-128-k3s2", "batch": 256, "mode": "eager", "ms": 0.1, "tflops": 300.0}. The layer
name is bench_conv's: <net>-<C>x<H>-<O>-k<kH>s<stride>, padding kH // 2. torch.compile is not
timed for single convolutions: Inductor hands a lone convolution to the same cuDNN call.

epoch: nn-train's --model cnn (bench_cnn_epoch's network) trained for one epoch of the first N
Fashion-MNIST training images (all by default), batch 128, Adam lr 1e-3, the last partial batch
dropped, eager or torch.compile'd. The images live on the device as one tensor and each batch is
gathered there (the fastest plain-PyTorch feed); PyTorch's own initial weights and shuffle order
(same architecture, not the same numbers as ours). A few warm-up steps come first (and, with
--compile, the compilation), then the weights go back to their initial values. Row: {"case":
"cnn/b128/n59904", "peer": "pytorch-eager", "device": "cuda", "seconds": 3.1, "steps": 468,
"ms_per_step": 6.6, "first_loss": 2.3, "final_loss": 0.4} with bench_cnn_epoch's meaning of
each field. The data folder: --data, else NN_FASHION_MNIST_DIR (bench_cnn_epoch --json prints
the one it found, and bench/cnn_epoch_compare.sh passes it on).
"""
import argparse
import copy
import gzip
import json
import os
import sys
import time

from kernels_pytorch import emit, note, time_ms

CONV_DTYPES = ("bfloat16", "float32_tf32")
CONV_DIRECTIONS = ("fwd", "bwd_data", "bwd_weight")
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530  # nn-train's Fashion-MNIST normalisation


def conv_layers(quick):
    """(name, C, H, O, k, stride, bias) in bench_conv.cpp's order."""
    layers = [("lenet", 1, 28, 32, 3, 1, True), ("lenet", 32, 14, 64, 3, 1, True),
              ("resnet18", 3, 224, 64, 7, 2, False)]
    widths, hw = (64, 128, 256, 512), 56
    for i, width in enumerate(widths):
        if i > 0:
            layers.append(("resnet18", widths[i - 1], hw * 2, width, 3, 2, False))
            layers.append(("resnet18", widths[i - 1], hw * 2, width, 1, 2, False))
        layers.append(("resnet18", width, hw, width, 3, 1, False))
        hw //= 2
    out = []
    for net, c, h, o, k, s, bias in layers:
        if quick:
            keep = (net == "lenet" and c > 1) or k == 7 or \
                (k == 3 and s == 1 and o in (64, 256)) or (o == 256 and s == 2)
            if not keep:
                continue
        out.append((f"{net}-{c}x{h}-{o}-k{k}s{s}", c, h, o, k, s, bias))
    return out


def conv_batches(quick):
    return (256,) if quick else (64, 256)


def conv(torch, quick, reps, batches, budget_s):
    """Times every layer, batch, dtype and pass; after `budget_s` seconds the rest is skipped
    (with a note), so the suite's call stays within its time."""
    F = torch.nn.functional
    start, skipped = time.monotonic(), 0
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(5)
    previous = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for dtype_name in CONV_DTYPES:
        dtype = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
        torch.backends.cudnn.allow_tf32 = dtype_name == "float32_tf32"
        for name, c, h, o, k, s, has_bias in conv_layers(quick):
            for n in conv_batches(quick):
                if time.monotonic() - start > budget_s:
                    skipped += 1
                    continue
                pad = k // 2
                x = torch.randn(n, c, h, h, device=dev, dtype=dtype, generator=gen)
                w = torch.randn(o, c, k, k, device=dev, dtype=dtype, generator=gen)
                w /= (c * k * k) ** 0.5
                b = torch.randn(o, device=dev, dtype=dtype, generator=gen) if has_bias else None
                out = (h + 2 * pad - k) // s + 1
                gy = torch.randn(n, o, out, out, device=dev, dtype=dtype, generator=gen)
                flop = 2.0 * n * o * out * out * c * k * k
                bias_sizes = [o] if has_bias else None

                def backward(mask):
                    return torch.ops.aten.convolution_backward(
                        gy, x, w, bias_sizes, [s, s], [pad, pad], [1, 1], False, [0, 0], 1, mask)

                fns = {
                    "fwd": lambda: F.conv2d(x, w, b, stride=s, padding=pad),
                    "bwd_data": lambda: backward([True, False, False]),
                    "bwd_weight": lambda: backward([False, True, has_bias]),
                }
                with torch.no_grad():
                    for direction in CONV_DIRECTIONS:
                        ms = time_ms(torch, fns[direction], reps, batches)
                        emit({"kind": "conv", "dtype": dtype_name, "direction": direction,
                              "layer": name, "batch": n, "mode": "eager", "ms": ms,
                              "tflops": flop / (ms * 1e-3) / 1e12})
                del x, w, b, gy
            torch.cuda.empty_cache()
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous
    if skipped:
        note(f"conv: the budget of {budget_s:.0f} s was spent: {skipped} layer/batch case(s) "
             "not timed (raise --budget)")


# ---- the CNN epoch --------------------------------------------------------------------------


def read_idx(path):
    """An IDX file (optionally gzipped) as (dims, bytes of the data)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    count = 1
    for d in dims:
        count *= d
    if len(raw) - start != count:
        raise ValueError(f"{path}: {len(raw) - start} bytes of data, dims {dims} need {count}")
    return dims, raw[start:]


def find_file(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"no {stem}[.gz] in {folder} (set NN_FASHION_MNIST_DIR or pass "
                            "--data DIR)")


def load_train(torch, folder, limit):
    dims, pixels = read_idx(find_file(folder, "train-images-idx3-ubyte"))
    _, labels = read_idx(find_file(folder, "train-labels-idx1-ubyte"))
    images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
    images = images.view(dims[0], 1, dims[1], dims[2])
    targets = torch.frombuffer(bytearray(labels), dtype=torch.uint8).to(torch.int64)
    if limit:
        images, targets = images[:limit], targets[:limit]
    x = (images.to(torch.float32) / 255.0 - PIXEL_MEAN) / PIXEL_STD
    return x.contiguous(), targets.contiguous()


def make_cnn(torch, batch_norm, dropout):
    nn = torch.nn
    layers, c_in, hw = [], 1, 28
    for width in (32, 64):
        layers.append(nn.Conv2d(c_in, width, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        c_in, hw = width, hw // 2
    layers += [nn.Flatten(), nn.Linear(c_in * hw * hw, 128), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(128, 10))
    return nn.Sequential(*layers)


def train(torch, model, x, y, order, batch, steps, sync):
    """(seconds, first loss, mean loss of the last tenth of the steps)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    tail_from = steps - max(1, steps // 10)
    model.train()
    first, tail = None, torch.zeros((), dtype=torch.float64, device=x.device)
    sync()
    start = time.perf_counter()
    for s in range(steps):
        idx = order[s * batch:(s + 1) * batch]
        loss = loss_fn(model(x.index_select(0, idx)), y.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if s == 0:
            first = loss.detach().to(torch.float64)
        if s >= tail_from:
            tail += loss.detach()
    sync()
    seconds = time.perf_counter() - start
    return seconds, first.item(), tail.item() / (steps - tail_from)


def epoch(torch, args):
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.data or os.environ.get("NN_FASHION_MNIST_DIR")
    if not folder:
        raise ValueError("no Fashion-MNIST folder: pass --data DIR or set NN_FASHION_MNIST_DIR")
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    x, y = load_train(torch, folder, args.limit)
    x, y = x.to(dev), y.to(dev)
    steps = x.shape[0] // args.batch_size
    if steps < 1:
        raise ValueError(f"{x.shape[0]} training images make no batch of {args.batch_size}")
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    order = torch.randperm(x.shape[0], device=dev, generator=gen)
    peer = "pytorch-compile" if args.compile else "pytorch-eager"

    # One module (compiled once): the warm-up trains it, then its initial state comes back.
    model = make_cnn(torch, args.batch_norm, args.dropout).to(dev)
    initial = copy.deepcopy(model.state_dict())
    run = torch.compile(model) if args.compile else model
    if args.warmup:
        train(torch, run, x, y, order, args.batch_size, min(args.warmup, steps), sync)
        model.load_state_dict(initial)
    seconds, first, final = train(torch, run, x, y, order, args.batch_size, steps, sync)
    case = f"{'cnn-bn' if args.batch_norm else 'cnn'}/b{args.batch_size}/n{steps * args.batch_size}"
    emit({"case": case, "peer": peer, "device": args.device, "seconds": seconds, "steps": steps,
          "ms_per_step": 1e3 * seconds / steps, "first_loss": first, "final_loss": final,
          "threads": torch.get_num_threads(), "torch": torch.__version__})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("conv", help="the conv layers on the GPU")
    c.add_argument("--quick", action="store_true", help="bench_conv --quick's subset, fewer reps")
    c.add_argument("--budget", type=float, default=300.0, metavar="SECONDS",
                   help="seconds after which the remaining cases are skipped (default 300)")
    c.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="cuDNN's heuristics instead of torch.backends.cudnn.benchmark")
    e = sub.add_parser("epoch", help="one CNN training epoch")
    e.add_argument("--device", default=None, help="cuda when PyTorch sees a GPU, else cpu")
    e.add_argument("--limit", type=int, default=0, help="the first N training images (0: all)")
    e.add_argument("--batch-size", type=int, default=128)
    e.add_argument("--batch-norm", action="store_true")
    e.add_argument("--dropout", type=float, default=0.1)
    e.add_argument("--warmup", type=int, default=5)
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    e.add_argument("--compile", action="store_true", help="torch.compile the model")
    e.add_argument("--data", default="", help="Fashion-MNIST folder")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("cnn_pytorch.py: PyTorch is not installed", file=sys.stderr)
        return 2
    if args.what == "conv":
        if not torch.cuda.is_available():
            print("cnn_pytorch.py: PyTorch sees no CUDA device", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
        emit({"kind": "device", "name": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
              "cudnn_benchmark": torch.backends.cudnn.benchmark})
        reps, batches = (5, 5) if args.quick else (10, 7)
        conv(torch, args.quick, reps, batches, args.budget)
        return 0
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.compile and not hasattr(torch, "compile"):
        note(f"torch {torch.__version__} has no torch.compile: no compiled epoch")
        return 0
    epoch(torch, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
