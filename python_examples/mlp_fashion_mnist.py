"""Fashion-MNIST with a 784-256-256-10 MLP in nn_cuda: dropout, Adam, a progress bar per epoch,
the test set evaluated after each epoch, and the curves saved to <out>/mlp_curves.png.

    python python_examples/mlp_fashion_mnist.py --epochs 5 [--device cpu|cuda] [--limit N] [--out DIR]

Three epochs on two CPU cores take well under a minute and reach about 87% test accuracy.
"""
import time

import nn_cuda
import nn_cuda.nn as nn
from nn_cuda.data import DataLoader, TensorDataset

from _common import count_correct, evaluate, load_fashion_mnist, parse_args, plot_curves, progress


def main():
    args = parse_args(__doc__, epochs=5, lr=1e-3,
                      extra=lambda p: p.add_argument("--dropout", type=float, default=0.1))
    nn_cuda.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load_fashion_mnist(args.data, args.limit)
    print(f"{len(train_x)} training and {len(test_x)} test images, device {args.device}")
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size,
                              shuffle=True, seed=args.seed, device=args.device, prefetch=True)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=1000, device=args.device)

    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 256), nn.ReLU(), nn.Dropout(args.dropout),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(args.dropout),
        nn.Linear(256, 10),
    ).to(args.device)
    print(model)
    optimizer = nn_cuda.optim.Adam(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()

    history = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = progress(train_loader, total=len(train_loader), desc=f"epoch {epoch}/{args.epochs}")
        for step, (images, labels) in enumerate(bar):
            logits = model(images)
            loss = criterion(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            # Reading values back waits for the device: fine for an example's bookkeeping.
            loss_sum += loss.item() * len(labels)
            correct += count_correct(logits, labels)
            seen += len(labels)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        test_loss, test_acc = evaluate(model, test_loader)
        history.append(dict(train_loss=loss_sum / seen, train_acc=correct / seen,
                            test_loss=test_loss, test_acc=test_acc))
        print(f"epoch {epoch}: train loss {loss_sum / seen:.4f} acc {100 * correct / seen:.2f}% | "
              f"test loss {test_loss:.4f} acc {100 * test_acc:.2f}% | "
              f"{seen / (time.perf_counter() - start):.0f} images/s")

    plot_curves(history, f"{args.out}/mlp_curves.png", "MLP 784-256-256-10 on Fashion-MNIST (nn_cuda)")
    model.save(f"{args.out}/mlp_fashion_mnist.safetensors")
    print(f"final test accuracy {100 * history[-1]['test_acc']:.2f}%")


if __name__ == "__main__":
    main()
