"""Which of IBVI's choices its calibration and shift robustness come from (MNIST 10k).

``IBVIClassifier`` on the peer benchmark's MNIST setting (2 hidden layers of 256, batch 128, 20
epochs, the default ``lr``), with one choice changed at a time: more prediction draws, which layers
are Gaussian, the covariance family, and the prior scale. Scored on the clean test rows, under
Gaussian pixel noise (severity 5) and under 30° rotation (``sklearn_ibvi.datasets.corrupt_images``):
accuracy, NLL and ECE, means over seeds. The peer table (``peers.py``) has temperature scaling and
last-layer Laplace on the same data.

    python benchmarks/ibvi_variants.py --n-jobs 2   # ~6 min on two cores -> results/ibvi_variants.{md,json}
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
import sklearn  # noqa: E402
import torch  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

import sklearn_ibvi  # noqa: E402
from sklearn_ibvi import IBVIClassifier  # noqa: E402
from sklearn_ibvi.datasets import corrupt_images, load_mnist  # noqa: E402
from sklearn_ibvi.metrics import expected_calibration_error, negative_log_likelihood  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
EPOCHS = 20
#: One change from the defaults each: (fit parameters, {row label: prediction parameters}).
#: More prediction draws need no new fit: they are scored on the defaults' fit.
VARIANTS = [
    ({}, {"defaults": {}, "n_predict_samples=128": {"n_predict_samples": 128}}),
    ({"variational_layers": "all"}, {"variational_layers='all'": {}}),
    ({"variational_layers": "output"}, {"variational_layers='output'": {}}),
    ({"covariance": "diagonal"}, {"covariance='diagonal'": {}}),
    ({"prior_scale": 0.5}, {"prior_scale=0.5": {}}),
    ({"prior_scale": 2.0}, {"prior_scale=2": {}}),
]
LABELS = [label for _, rows in VARIANTS for label in rows]
SHIFTS = {"clean": None, "noise": ("gaussian_noise", 5), "rotation 30°": ("rotation", 2)}
METRICS = ("accuracy", "NLL", "ECE")


def test_sets(seed):
    X_train, X_test, y_train, y_test = load_mnist(n_train=10000, n_test=10000, random_state=seed)
    shifted = {name: X_test if kind is None else corrupt_images(X_test, *kind, (28, 28), random_state=seed)
               for name, kind in SHIFTS.items()}
    return X_train, y_train, shifted, y_test


def run(fit_params, rows, seed):
    """Scores of one fit, one dict per prediction setting in ``rows``, with the fit seconds."""
    torch.set_num_threads(1)
    X_train, y_train, shifted, y_test = test_sets(seed)
    model = IBVIClassifier(hidden_layer_sizes=(256, 256), batch_size=128, max_epochs=EPOCHS,
                           random_state=seed, **fit_params)
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train, y_train)
    seconds = time.process_time() - start
    scored = []
    for label, predict_params in rows.items():
        model.set_params(**predict_params)
        out = {"variant": label, "seed": seed, "fit_seconds": seconds}
        for name, X in shifted.items():
            proba = model.predict_proba(X)
            out[f"{name} accuracy"] = float(np.mean(proba.argmax(axis=1) == y_test))
            out[f"{name} NLL"] = float(negative_log_likelihood(y_test, proba, labels=np.arange(10)))
            out[f"{name} ECE"] = float(expected_calibration_error(y_test, proba))
        scored.append(out)
    return scored


def report(runs, command, wall, n_seeds):
    lines = [
        "# Where IBVI's calibration comes from (MNIST 10k)",
        "",
        f"`{command}` — {wall / 60:.1f} min, {platform.machine()}, one thread per fit, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, sklearn-ibvi {sklearn_ibvi.__version__}. `IBVIClassifier`, 256-256 "
        f"ReLU MLP, batch 128, {EPOCHS} epochs, default `lr`, 10,000 training and 10,000 test rows, one change "
        f"from the defaults per row; means over {n_seeds} seeds. Cells are accuracy / NLL / ECE.",
        "",
        "| variant | " + " | ".join(SHIFTS) + " | fit (s) |",
        "|---|" + "---|" * (len(SHIFTS) + 1),
    ]
    for label in LABELS:
        rs = [r for r in runs if r["variant"] == label]
        cells = [" / ".join(f"{np.mean([r[f'{shift} {m}'] for r in rs]):.3f}" for m in METRICS) for shift in SHIFTS]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.median([r['fit_seconds'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1, help="fits in parallel, one thread each")
    args = parser.parse_args()
    start = time.time()
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(run)(fit, rows, seed) for seed in range(args.seeds) for fit, rows in VARIANTS)
    runs = [r for scored in results for r in scored]
    text = report(runs, f"python benchmarks/ibvi_variants.py --n-jobs {args.n_jobs}", time.time() - start, args.seeds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ibvi_variants.md").write_text(text + "\n")
    (RESULTS / "ibvi_variants.json").write_text(json.dumps(runs, indent=1))
    print(text)


if __name__ == "__main__":
    main()
