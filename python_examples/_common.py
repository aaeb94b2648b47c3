"""What the python_examples share: the command line, Fashion-MNIST, a progress bar, the evaluation
loop and the plot of the training curves. Each example keeps its model and training loop itself."""
import argparse
import os
import sys
import time

import numpy as np

import nn_cuda

try:
    from tqdm import tqdm
except ImportError:  # the plain one-line bar below stands in
    tqdm = None


def parse_args(doc, epochs, lr, extra=None):
    """The flags every example takes; `extra(parser)` adds the example's own. `doc`: the
    example's docstring, whose first paragraph describes it in --help."""
    p = argparse.ArgumentParser(description=" ".join(doc.split("\n\n")[0].split()))
    p.add_argument("--epochs", type=int, default=epochs, help=f"passes over the data (default {epochs})")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N training and test images (a quick run)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=lr, help=f"learning rate (default {lr})")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=None,
                   help="folder of MNIST-layout IDX files (default: NN_FASHION_MNIST_DIR or "
                        "Debian's dataset-fashion-mnist)")
    p.add_argument("--out", default="out", help="folder for the plot and weights (default ./out)")
    if extra:
        extra(p)
    args = p.parse_args()
    if args.device is None:
        args.device = "cuda" if nn_cuda.cuda_is_available() else "cpu"
    os.makedirs(args.out, exist_ok=True)
    return args


def load_fashion_mnist(data_dir=None, limit=None):
    """(train_images, train_labels, test_images, test_labels) as CPU tensors: images float32
    [N, 1, 28, 28] in [0, 1], labels int64 [N]. Exits with a one-line hint when the data is missing."""
    try:
        train = nn_cuda.data.load_fashion_mnist(data_dir, split="train")
        test = nn_cuda.data.load_fashion_mnist(data_dir, split="test")
    except nn_cuda.IoError as e:
        sys.exit(f"error: {e}")
    if limit:
        train = tuple(t[:limit].contiguous() for t in train)
        test = tuple(t[:limit].contiguous() for t in test)
    return (*train, *test)


class _TextBar:
    """A one-line progress bar for when tqdm is not installed (tqdm's interface, as far as used)."""

    def __init__(self, iterable, total, desc):
        self.iterable, self.total, self.desc = iterable, total, desc
        self.postfix = ""
        self.tty = sys.stderr.isatty()

    def set_postfix(self, **values):
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def _show(self, n, start, end="\r"):
        done = int(30 * n / max(self.total, 1))
        rate = n / max(time.perf_counter() - start, 1e-9)
        print(f"{self.desc} [{'#' * done}{'.' * (30 - done)}] {n}/{self.total} "
              f"{rate:.1f} batch/s {self.postfix}", end=end, file=sys.stderr, flush=True)

    def __iter__(self):
        start, n = time.perf_counter(), 0
        for item in self.iterable:
            yield item
            n += 1
            if self.tty and (n % 10 == 0 or n == self.total):
                self._show(n, start)
        self._show(n, start, end="\n")  # the final state stays on screen (and in logs)


def progress(iterable, total, desc):
    """Iterates over `iterable` behind a progress bar: tqdm's when installed, else a plain one."""
    if tqdm is not None:
        return tqdm(iterable, total=total, desc=desc, unit="batch", dynamic_ncols=True)
    return _TextBar(iterable, total, desc)


def count_correct(logits, labels):
    """How many rows of `logits` have their largest value at the label (compared on the host)."""
    return int((logits.argmax(1).cpu().numpy() == labels.cpu().numpy()).sum())


@nn_cuda.no_grad()
def evaluate(model, loader):
    """(mean cross-entropy, accuracy) of `model` over `loader`, in evaluation mode."""
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for images, labels in loader:
        logits = model(images)
        loss_sum += nn_cuda.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += count_correct(logits, labels)
        count += len(labels)
    model.train()
    return loss_sum / count, correct / count


def plot_curves(history, path, title):
    """Saves the loss and accuracy per epoch (history: a list of dicts with train_loss, test_loss,
    train_acc, test_acc) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        ax_loss.plot(epochs, [h[key] for h in history], marker="o", label=label)
    for key, label in (("train_acc", "train"), ("test_acc", "test")):
        ax_acc.plot(epochs, [100 * h[key] for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved {path}")


def fit(model, optimizer, criterion, train_loader, test_loader, epochs):
    """Trains for `epochs` epochs with a progress bar, evaluating on the test set after each;
    returns one dict of train/test loss and accuracy per epoch."""
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = progress(train_loader, total=len(train_loader), desc=f"epoch {epoch}/{epochs}")
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
    return history
