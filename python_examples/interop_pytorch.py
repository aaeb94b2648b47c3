"""nn_cuda and PyTorch side by side: train a small MLP on Fashion-MNIST in nn_cuda, save its weights
as safetensors, load them into the same network built with torch.nn and check both predict the
same; then hand tensors between the two libraries with DLPack (no copy) in both directions.

    python python_examples/interop_pytorch.py [--epochs 1] [--device cpu|cuda] [--limit N] [--out DIR]

Needs PyTorch (Debian: python3-torch) and the safetensors package (pip install safetensors).
"""
import numpy as np
import torch
import torch.utils.dlpack
from safetensors.torch import load_file

import nn_cuda
import nn_cuda.nn as nn
from nn_cuda.data import DataLoader, TensorDataset

from _common import evaluate, load_fashion_mnist, parse_args, progress


def main():
    args = parse_args(__doc__, epochs=1, lr=1e-3)
    nn_cuda.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load_fashion_mnist(args.data, args.limit)

    # 1. Train in nn_cuda.
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).to(args.device)
    optimizer = nn_cuda.optim.Adam(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True,
                        seed=args.seed, device=args.device)
    for epoch in range(1, args.epochs + 1):
        for images, labels in progress(loader, total=len(loader), desc=f"epoch {epoch}/{args.epochs}"):
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=1000, device=args.device)
    _, accuracy = evaluate(model, test_loader)
    print(f"nn_cuda model: test accuracy {100 * accuracy:.2f}%")

    # 2. Weights to PyTorch through a safetensors file: the parameter names and layouts match
    #    torch.nn's (Linear weight [out, in]; Sequential children named by position).
    path = f"{args.out}/interop_mlp.safetensors"
    nn_cuda.save_safetensors(path, model.state_dict())
    torch_model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                      torch.nn.Linear(128, 10))
    torch_model.load_state_dict(load_file(path))
    torch_model.eval()
    print(f"wrote {path}; loaded into torch.nn: {list(load_file(path))}")

    # 3. The same test images through both models. DLPack hands the nn_cuda batch to PyTorch
    #    without a copy (PyTorch here runs on the CPU, so a CUDA batch comes to the host first).
    model.eval()
    with nn_cuda.no_grad():
        ours = model(test_x.to(args.device)).cpu()
    with torch.no_grad():
        theirs = torch_model(torch.utils.dlpack.from_dlpack(test_x))
    difference = np.abs(ours.numpy() - theirs.numpy()).max()
    agree = (ours.numpy().argmax(1) == theirs.numpy().argmax(1)).mean()
    print(f"logits of {len(test_x)} test images: max |nn_cuda - torch| = {difference:.2e}, "
          f"predicted classes agree on {100 * agree:.2f}%")
    assert difference < 1e-3, f"nn_cuda and PyTorch disagree: max abs difference {difference}"

    # 4. DLPack both ways shares memory: a write on one side shows on the other.
    a = nn_cuda.zeros(2, 3)
    t = torch.utils.dlpack.from_dlpack(a)  # nn_cuda -> torch
    t[0, 1] = 7.0
    assert a.tolist()[0][1] == 7.0
    b = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    c = nn_cuda.from_dlpack(b)  # torch -> nn_cuda
    c.mul_(2.0)
    assert b.tolist() == [[0.0, 2.0, 4.0], [6.0, 8.0, 10.0]]
    print("DLPack: nn_cuda -> torch and torch -> nn_cuda share memory (writes seen on both sides)")
    print("interop OK")


if __name__ == "__main__":
    main()
