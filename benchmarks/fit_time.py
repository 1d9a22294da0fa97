"""Fit time of entropy-tracking SGD against scikit-learn's MLPClassifier, as ratios in one run.

digits (X/16), MLP 64-256-256-10 ReLU, plain SGD (no momentum: entropy tracking needs plain SGD,
so the reference does the same arithmetic), batch 128, 50 epochs, one torch/BLAS thread.
Each configuration is timed `--repeats` times, interleaved, and the median is reported.

    python benchmarks/fit_time.py            # writes benchmarks/results/fit_time.{md,json}
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from sklearn_ibvi import BoundValidityWarning, EntropySGDClassifier  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def configurations(epochs, batch_size, lr):
    big, small = (256, 256), (16,)
    common = dict(max_epochs=epochs, batch_size=batch_size, lr=lr, random_state=0)
    sk = dict(solver="sgd", momentum=0.0, learning_rate_init=lr, alpha=0.0, max_iter=epochs,
              batch_size=batch_size, tol=0.0, n_iter_no_change=epochs + 1, random_state=0)
    return {
        "(a) sklearn MLPClassifier, 64-256-256-10": lambda: MLPClassifier(big, **sk),
        "(b) EntropySGDClassifier, tracking off": lambda: EntropySGDClassifier(big, entropy=None, **common),
        "(c) stochastic tracking (probe + validity check)": lambda: EntropySGDClassifier(big, **common),
        "(c') stochastic, probe_fraction=0.5": lambda: EntropySGDClassifier(big, probe_fraction=0.5, **common),
        "(c'') stochastic, no validity monitor": lambda: EntropySGDClassifier(big, n_power_iterations=0, **common),
        "(e) small net 64-16-10, tracking off": lambda: EntropySGDClassifier(small, entropy=None, **common),
        "(d) small net 64-16-10, exact tracking": lambda: EntropySGDClassifier(small, entropy="exact", **common),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--exact-epochs", type=int, default=5, help="exact tracking is timed on fewer epochs and scaled")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", BoundValidityWarning)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    # lr 0.01: at 0.03 this 256-256 net with batches of 128 leaves the bound's validity regime
    configs = configurations(args.epochs, 128, 0.01)
    times = {name: [] for name in configs}
    for name, make in configs.items():  # warm-up: imports, allocator, first-call dispatch
        make().set_params(max_iter=1) if "sklearn" in name else make().set_params(max_epochs=1).fit(X, y)
    for _ in range(args.repeats):
        for name, make in configs.items():
            model = make()
            epochs = args.exact_epochs if "exact" in name else args.epochs
            if "exact" in name:
                model.set_params(max_epochs=epochs)
            start = time.perf_counter()
            model.fit(X, y)
            times[name].append((time.perf_counter() - start) * args.epochs / epochs)
    median = {name: float(np.median(t)) for name, t in times.items()}
    reference = median["(a) sklearn MLPClassifier, 64-256-256-10"]
    untracked = median["(b) EntropySGDClassifier, tracking off"]
    small_untracked = median["(e) small net 64-16-10, tracking off"]
    rows = []
    for name, seconds in median.items():
        base = small_untracked if "small net" in name else untracked
        rows.append((name, seconds, seconds / reference, seconds / base))
    lines = [
        f"Fit time, digits (1797×64), batch 128, {args.epochs} epochs, plain SGD, 1 thread; "
        f"median of {args.repeats} interleaved repeats (exact tracking timed on {args.exact_epochs} epochs, scaled).",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}.",
        "",
        "| configuration | seconds | × sklearn MLPClassifier | × same net, tracking off |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {s:.2f} | {r:.2f} | {b:.2f} |" for n, s, r, b in rows]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fit_time.md").write_text(text + "\n")
    (RESULTS / "fit_time.json").write_text(json.dumps({"median_seconds": median, "all_seconds": times}, indent=2))


if __name__ == "__main__":
    main()
