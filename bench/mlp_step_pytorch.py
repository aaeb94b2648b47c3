#!/usr/bin/env python3
"""PyTorch's side of the MLP training-step benchmark (bench/bench_mlp_step.cpp is ours).

One step = forward of Linear-ReLU-Linear-ReLU-Linear, cross-entropy, backward, Adam step, on
the same shapes, batch sizes and optimizer settings as bench_mlp_step. Prints one JSON object
per case on stdout: {"case": "784-256-256-10/b128", "ms": median milliseconds per step}.
bench/mlp_step_compare.sh runs both programs on one machine and prints the ratios.
"""
import argparse
import json
import statistics
import time

import torch


def make_model(sizes, device):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(device)


def time_case(sizes, batch, device, steps, warmup, compile_model):
    torch.manual_seed(0)
    model = make_model(sizes, device)
    if compile_model:
        model = torch.compile(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, sizes[0], device=device)
    y = torch.randint(0, sizes[-1], (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    for sizes in ([784, 256, 256, 10], [784, 1024, 1024, 10]):
        for batch in (128, 1024):
            ms = time_case(sizes, batch, args.device, args.steps, args.warmup, args.compile)
            name = "-".join(map(str, sizes)) + f"/b{batch}"
            print(json.dumps({"case": name, "ms": ms, "device": args.device,
                              "peer": "pytorch-compile" if args.compile else "pytorch-eager"}))


if __name__ == "__main__":
    main()
