"""Fashion-MNIST with a LeNet-style CNN in nn_cuda: two stages of 3x3 convolution, ReLU and 2x2 max
pooling (optionally batch norm), a 128-wide hidden layer and the classifier; Adam, optional
augmentation through the data loader, a progress bar per epoch, the test set evaluated after each
epoch, and the curves saved to <out>/cnn_curves.png.

    python python_examples/cnn_fashion_mnist.py --epochs 5 [--batch-norm] [--augment]
        [--channels 32,64] [--device cpu|cuda] [--limit N] [--out DIR]

On a GPU an epoch takes seconds; on a CPU, --channels 16,32 and --limit 10000 keep it short.
"""
import nn_cuda
import nn_cuda.nn as nn
from nn_cuda.data import DataLoader, TensorDataset, compose, random_crop, random_horizontal_flip

from _common import fit, load_fashion_mnist, parse_args, plot_curves


def make_cnn(channels, batch_norm):
    layers, in_channels = [], 1
    for width in channels:  # 28x28 -> 14x14 -> 7x7
        layers.append(nn.Conv2d(in_channels, width, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        in_channels = width
    side = 28 // 2 ** len(channels)
    layers += [nn.Flatten(), nn.Linear(in_channels * side * side, 128), nn.ReLU(), nn.Dropout(0.1),
               nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def extra_flags(p):
    p.add_argument("--channels", default="32,64", help="widths of the two conv stages (default 32,64)")
    p.add_argument("--batch-norm", action="store_true", help="batch norm after each convolution")
    p.add_argument("--augment", action="store_true", help="random crops (pad 2) and horizontal flips")


def main():
    args = parse_args(__doc__, epochs=5, lr=1e-3, extra=extra_flags)
    nn_cuda.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load_fashion_mnist(args.data, args.limit)
    print(f"{len(train_x)} training and {len(test_x)} test images, device {args.device}")
    # Augmentation runs on the host, per batch, before the batch moves to the device.
    augment = compose([random_crop(2), random_horizontal_flip(0.5)]) if args.augment else None
    train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size,
                              shuffle=True, seed=args.seed, transform=augment, device=args.device,
                              prefetch=True)
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=1000, device=args.device)

    channels = [int(c) for c in args.channels.split(",")]
    model = make_cnn(channels, args.batch_norm).to(args.device)
    print(model)
    optimizer = nn_cuda.optim.Adam(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()

    history = fit(model, optimizer, criterion, train_loader, test_loader, args.epochs)

    title = f"CNN {args.channels}{' + batch norm' if args.batch_norm else ''} on Fashion-MNIST (nn_cuda)"
    plot_curves(history, f"{args.out}/cnn_curves.png", title)
    model.save(f"{args.out}/cnn_fashion_mnist.safetensors")
    print(f"final test accuracy {100 * history[-1]['test_acc']:.2f}%")


if __name__ == "__main__":
    main()
