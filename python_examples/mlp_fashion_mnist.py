"""Fashion-MNIST with a 784-256-256-10 MLP in nn_cuda: dropout, Adam, a progress bar per epoch,
the test set evaluated after each epoch, and the curves saved to <out>/mlp_curves.png.

    python python_examples/mlp_fashion_mnist.py --epochs 5 [--device cpu|cuda] [--limit N] [--out DIR]

Three epochs on two CPU cores take well under a minute and reach about 87% test accuracy.
"""
import nn_cuda
import nn_cuda.nn as nn
from nn_cuda.data import DataLoader, TensorDataset

from _common import fit, load_fashion_mnist, parse_args, plot_curves


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

    history = fit(model, optimizer, criterion, train_loader, test_loader, args.epochs)

    plot_curves(history, f"{args.out}/mlp_curves.png", "MLP 784-256-256-10 on Fashion-MNIST (nn_cuda)")
    model.save(f"{args.out}/mlp_fashion_mnist.safetensors")
    print(f"final test accuracy {100 * history[-1]['test_acc']:.2f}%")


if __name__ == "__main__":
    main()
