"""BoundEarlyStopping against the stopping rules users would otherwise pick, as ratios in one run.

One configuration per data set (the model-selection study's data, split 0: 300 training rows,
500 for digits; one hidden layer of 64, prior scale 1, noise 0.6·std(y) for regression; batch
32, the estimators' default lr, 150 epochs, entropy-SGD with its stochastic bound tracked):

- (a) the estimator for all 150 epochs (the cost every ratio is taken against);
- (b) ``BoundEarlyStopping(criterion='block_prequential')``, the default from 64 rows (two row
  orders × two blocks, prefixes trained in stages, one final fit of the best epoch);
- (c) the same rule on one order of three blocks, ``BlockPrequential(3, n_orderings=1)`` (the
  scheme it used before the repeated-splits study);
- (d) ``BoundEarlyStopping(criterion='bound')``, the published bound;
- (f) ``BoundEarlyStopping(criterion='partial_cv')``: two of five shuffled folds held out
  (learners on 80 % of the rows), the cheap cross-validation that stopped better on MNIST;
- (g) (b) with ``stopping_epoch='scaled'``: the peak corrected for the prefixes' size, as
  ``BlockPrequentialSearchCV`` refits;
- (e) scikit-learn's ``MLPRegressor``/``MLPClassifier`` with ``early_stopping=True`` (10 % of the
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
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.compose import TransformedTargetRegressor  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "model_selection"))

import run_study as study  # noqa: E402  (the model-selection study's data and estimators)

from sklearn_ibvi import BoundEarlyStopping, BoundValidityWarning  # noqa: E402
from sklearn_ibvi.model_selection._epoch_curves import epochwise_evaluations  # noqa: E402
from sklearn_ibvi.model_selection import BlockPrequential, predictive_log_likelihood  # noqa: E402

RESULTS = HERE / "results"
WIDTH, PRIOR_SCALE, NOISE_STD, PATIENCE = 64, 1.0, 0.6, 20


def methods(task):
    """name → factory of an unfitted model."""

    def estimator():
        return study.make_estimator("entropy_sgd", task, WIDTH, PRIOR_SCALE, NOISE_STD if task == "regression" else None)

    mlp = (MLPRegressor if task == "regression" else MLPClassifier)(
        hidden_layer_sizes=(WIDTH,), batch_size=study.BATCH_SIZE, max_iter=study.EPOCHS, early_stopping=True,
        validation_fraction=0.1, n_iter_no_change=PATIENCE, tol=0.0, random_state=0,
    )  # fmt: skip
    if task == "regression":  # the estimators standardise y internally; so does a careful MLP user
        mlp = TransformedTargetRegressor(mlp, transformer=StandardScaler())
    return {
        "(a) 150 epochs, no stopping": estimator,
        "(b) BoundEarlyStopping, block_prequential (default)": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion="block_prequential"
        ),
        "(c) BoundEarlyStopping, one order of 3 blocks": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion=BlockPrequential(3, n_orderings=1)
        ),
        "(d) BoundEarlyStopping, bound": lambda: BoundEarlyStopping(estimator(), patience=PATIENCE, criterion="bound"),
        "(e) sklearn MLP, early_stopping=True": lambda: mlp,
        "(f) BoundEarlyStopping, partial_cv (2 of 5 folds)": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion="partial_cv"
        ),
        "(g) BoundEarlyStopping, block_prequential, stopping_epoch='scaled'": lambda: BoundEarlyStopping(
            estimator(), patience=PATIENCE, criterion="block_prequential", stopping_epoch="scaled"
        ),
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
    """The epoch of lowest test NLL of the 150-epoch run (a)."""
    estimator = methods(task)["(a) 150 epochs, no stopping"]()
    _, values, _ = epochwise_evaluations(
        estimator, X, y, X_test, y_test, lambda learner, Xe, ye: -float(np.mean(predictive_log_likelihood(learner, Xe, ye)))
    )
    return int(np.argmin(values)) + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", default="diabetes,boston,breast_cancer,digits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", BoundValidityWarning)
    data = study.load_datasets(quick=False, split_seed=0)
    results = {}
    for name in args.datasets.split(","):
        X, y, X_test, y_test, task = data[name]
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
