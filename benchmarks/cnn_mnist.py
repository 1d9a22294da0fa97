"""IBVI on a user's convolutional network: a small CNN on MNIST against the same CNN trained plainly
and against IBVI's default MLP, clean and under the package's image corruptions.

    python benchmarks/cnn_mnist.py            # 10,000 training rows, 3 seeds (about 2 min, one thread)
    python benchmarks/cnn_mnist.py --quick    # 2,000 rows, 1 seed (under a minute)

Every model trains 10 epochs with SGD (momentum 0.9, batch 128, lr 0.05) on the same rows; the
test set is 5,000 MNIST test digits, clean, with Gaussian pixel noise (severity 3) and rotated by
30° (severity 2) by :func:`sklearn_ibvi.datasets.corrupt_images`. Reported per model: accuracy,
NLL and ECE (medians over seeds), fit time as a ratio to the plain CNN's measured in the same
run (models interleaved per seed), and the memory of the trained parameters. Writes
``benchmarks/results/cnn_mnist.md`` and ``cnn_mnist.json`` (not in ``--quick`` mode).
"""

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

from sklearn_ibvi import IBVIClassifier
from sklearn_ibvi.datasets import corrupt_images, load_mnist
from sklearn_ibvi.metrics import expected_calibration_error, negative_log_likelihood

RESULTS = Path(__file__).parent / "results"
SHIFTS = {"clean": None, "noise (sev. 3)": ("gaussian_noise", 3), "rotation 30°": ("rotation", 2)}
TRAINING = dict(lr=0.05, batch_size=128, max_epochs=10)


class CNN(nn.Module):
    """Two strided 5×5 convolutions (16 and 32 channels) and a linear read-out: 18k parameters."""

    def __init__(self, n_classes=10):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 16, 5, stride=2), nn.ReLU(),
            nn.Conv2d(16, 32, 5, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 4 * 4, n_classes),
        )  # fmt: skip

    def forward(self, x):
        return self.layers(x)


def models(seed):
    """The three models, unfitted, and how to read each one's trained parameters."""
    plain = NeuralNetClassifier(
        CNN, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.SGD, optimizer__momentum=0.9,
        train_split=None, verbose=0, iterator_train__shuffle=True, **TRAINING,
    )  # fmt: skip
    return {
        "CNN, plain SGD (skorch)": (plain, lambda m: m.module_.parameters(), seed),
        "IBVIClassifier(module=CNN)": (IBVIClassifier(module=CNN, random_state=seed, **TRAINING), None, None),
        "IBVIClassifier, MLP 256-256": (
            IBVIClassifier(hidden_layer_sizes=(256, 256), random_state=seed, **TRAINING), None, None,
        ),
    }


def parameter_megabytes(model, parameters):
    params = parameters(model) if parameters else model.net_.module_.parameters()
    return sum(p.numel() * p.element_size() for p in params) / 2**20


def run(n_train, seeds):
    X_train, X_test, y_train, y_test = load_mnist(n_train=n_train, n_test=5000, random_state=0)
    test_sets = {
        name: X_test if shift is None else corrupt_images(X_test, *shift, image_shape=(28, 28), random_state=0)
        for name, shift in SHIFTS.items()
    }
    rows = {}
    for seed in seeds:
        for name, (model, parameters, torch_seed) in models(seed).items():
            if torch_seed is not None:
                torch.manual_seed(torch_seed)
            start = time.perf_counter()
            model.fit(X_train, y_train.astype(np.int64))
            fit_time = time.perf_counter() - start
            record = rows.setdefault(name, {"fit_s": [], "memory_mb": parameter_megabytes(model, parameters)})
            record["fit_s"].append(fit_time)
            for shift, X in test_sets.items():
                proba = model.predict_proba(X.astype(np.float32))
                scores = record.setdefault(shift, {"accuracy": [], "nll": [], "ece": []})
                scores["accuracy"].append(float(np.mean(proba.argmax(1) == y_test)))
                scores["nll"].append(float(negative_log_likelihood(y_test, proba)))
                scores["ece"].append(float(expected_calibration_error(y_test, proba)))
            print(f"seed {seed} {name}: fit {fit_time:.1f} s", flush=True)
    baseline = np.array(rows["CNN, plain SGD (skorch)"]["fit_s"])
    for record in rows.values():
        record["fit_ratio"] = float(np.median(np.array(record["fit_s"]) / baseline))
    return rows


def table(rows):
    header = "| model | " + " | ".join(f"{s}: acc / NLL / ECE" for s in SHIFTS) + " | fit time × plain CNN | parameters (MB) |"
    lines = [header, "|" + "---|" * (len(SHIFTS) + 3)]
    for name, record in rows.items():
        cells = [
            " / ".join(f"{np.median(record[s][k]):.3f}" for k in ("accuracy", "nll", "ece")) for s in SHIFTS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {record['fit_ratio']:.2f} | {record['memory_mb']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 training rows, one seed")
    args = parser.parse_args()
    n_train, seeds = (2000, [0]) if args.quick else (10000, [0, 1, 2])
    start = time.perf_counter()
    rows = run(n_train, seeds)
    wall = time.perf_counter() - start
    text = table(rows)
    print(text)
    if args.quick:
        return
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cnn_mnist.json").write_text(json.dumps({"n_train": n_train, "seeds": seeds, "rows": rows}, indent=1))
    (RESULTS / "cnn_mnist.md").write_text(
        f"# IBVI on a custom CNN (MNIST, {n_train} training rows, {len(seeds)} seeds)\n\n"
        f"`python benchmarks/cnn_mnist.py` — {wall / 60:.1f} min on {machine}. Test: 5,000 MNIST test "
        "digits; medians over seeds; the corruptions are `sklearn_ibvi.datasets.corrupt_images`. All "
        "models: 10 epochs, SGD momentum 0.9, batch 128, lr 0.05. The CNN: conv 5×5/2 (16) → conv "
        "5×5/2 (32) → linear; IBVI makes its first convolution and its read-out variational "
        "(diag+lowrank, rank 10).\n\n" + text + "\n"
    )


if __name__ == "__main__":
    main()
