"""How the classifiers' quality and out-of-distribution detection depend on the learning rate and the epoch.

For each family (``IBVIClassifier``; ``EntropySGDClassifier`` with its bound tracked, as by
default) and each learning rate of {0.025, 0.05, 0.1, 0.2} and the package default, a 256-256 ReLU
MLP (batch 128, other settings the package defaults, inputs as the estimator prepares them) is
trained one epoch at a time with ``partial_fit``; after checkpoint epochs it is scored on the test
rows (accuracy, NLL) and on out-of-distribution detection: the AUROC of the maximum class
probability separating test digits from uniform-noise images, from grey patches of scikit-learn's
bundled photos, and from inverted test digits (``1 - x``), with the mean maximum probability on
each set. Entropy-SGD also reports how many fits raised a ``BoundValidityWarning`` (its bound is
not a bound there).

The target checked at each data set's main epoch: the default rate within 0.2 accuracy points and
5 % NLL of the best rate of the grid, and, for IBVI, within 0.02 of the best rate's AUROC on at
least two of the three out-of-distribution sets. The curves run to the default ``max_epochs``.

Data: digits (X/16, stratified 60/40 split per seed; main epoch 50) and an MNIST subset
(``load_mnist(n_train=10000, n_test=2000, random_state=0)``; main epoch 30); 3 seeds each.

    python benchmarks/learning_rate.py --n-jobs 2   # ~25 min on two cores -> results/learning_rate.{md,json}
    python benchmarks/learning_rate.py --quick      # digits, 1 seed, 2 rates -> results/learning_rate_quick.*
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
from joblib import Parallel, delayed  # noqa: E402
import torch  # noqa: E402

import sklearn_ibvi  # noqa: E402
from sklearn_ibvi import BoundValidityWarning, EntropySGDClassifier, IBVIClassifier, TrainingDivergedError  # noqa: E402
from sklearn_ibvi.metrics import negative_log_likelihood  # noqa: E402

from image_sets import load_split, max_probability_auroc, natural_patches  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEARNING_RATES = (0.025, 0.05, 0.1, 0.2)
FAMILIES = {"IBVI": IBVIClassifier, "entropy-SGD": EntropySGDClassifier}
DATASETS = {"digits": dict(epochs=100, main_epoch=50, checkpoints=(5, 10, 20, 30, 50, 100)),
            "MNIST 10k": dict(epochs=100, main_epoch=30, checkpoints=(5, 10, 20, 30, 50, 100))}
#: The target: the default rate within these of the grid's best (accuracy points, NLL ratio, AUROC).
TARGET_ACCURACY, TARGET_NLL, TARGET_AUROC = 0.002, 1.05, 0.02
OOD_SETS = ("uniform", "photos", "inverted")
#: What :func:`scores` measures at a checkpoint, in its order (NaN for a fit that diverged).
SCORE_NAMES = ("accuracy", "NLL", "confidence test",
               *(f"{m} {o}" for o in OOD_SETS for m in ("AUROC", "confidence")))


def load(name, seed):
    X_train, X_test, y_train, y_test, shape = load_split(name, seed, mnist_test_rows=2000)
    rng = np.random.default_rng(seed)
    ood = {"uniform": rng.uniform(0, 1, size=X_test.shape),
           "photos": natural_patches(len(X_test), shape, seed),
           "inverted": 1.0 - X_test}
    return X_train, y_train, X_test, y_test, ood


def scores(model, X_test, y_test, ood):
    proba = model.predict_proba(X_test)
    out = {"accuracy": float(np.mean(proba.argmax(axis=1) == y_test)),
           "NLL": float(negative_log_likelihood(y_test, proba, labels=np.arange(proba.shape[1])))}
    confidence = proba.max(axis=1)
    out["confidence test"] = float(confidence.mean())
    for name, X in ood.items():
        other = model.predict_proba(X)
        out[f"AUROC {name}"] = max_probability_auroc(proba, other)
        out[f"confidence {name}"] = float(other.max(axis=1).mean())
    assert tuple(out) == SCORE_NAMES
    return out


def run(family, lr, dataset, seed):
    """Per-checkpoint scores of one fit, its training seconds and its validity warnings."""
    torch.set_num_threads(1)
    X_train, y_train, X_test, y_test, ood = load(dataset, seed)
    spec = DATASETS[dataset]
    params = dict(hidden_layer_sizes=(256, 256), batch_size=128, max_epochs=1, random_state=seed)
    if lr != "default":
        params["lr"] = lr
    model = FAMILIES[family](**params)
    classes = np.unique(y_train)
    curve, seconds, n_invalid = {}, 0.0, 0
    diverged = None
    for epoch in range(1, spec["epochs"] + 1):
        start = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BoundValidityWarning)
            try:
                model.partial_fit(X_train, y_train, classes=classes)
            except TrainingDivergedError:
                diverged = epoch
        n_invalid += sum(issubclass(w.category, BoundValidityWarning) for w in caught)
        seconds += time.process_time() - start
        if diverged is not None:  # the remaining checkpoints are failures: NaN
            curve.update({e: dict.fromkeys(SCORE_NAMES, float("nan")) for e in spec["checkpoints"] if e >= epoch})
            break
        if epoch in spec["checkpoints"]:
            curve[epoch] = scores(model, X_test, y_test, ood)
    return {"curve": curve, "fit_seconds": seconds, "validity_warnings": n_invalid,
            "diverged_epoch": diverged, "lr": float(model.lr)}


def summarise(runs):
    """Mean over seeds of each (dataset, family, lr, checkpoint) metric."""
    table = {}
    for r in runs:
        for epoch, metrics in r["curve"].items():
            key = (r["dataset"], r["family"], r["lr_label"], int(epoch))
            table.setdefault(key, []).append(metrics)
    return {key: {m: float(np.mean([v[m] for v in vals])) for m in vals[0]} for key, vals in table.items()}


def grid_best(summary, dataset, family, epoch, labels):
    """The best value over the grid's rates (the default aside; diverged rates ignored) of the
    accuracy, the NLL and each AUROC at ``epoch``."""
    grid = [summary[(dataset, family, lab, epoch)] for lab in labels if lab != "default"]
    best = {m: np.nanmax([g[m] for g in grid]) for m in ["accuracy", *(f"AUROC {o}" for o in OOD_SETS)]}
    return {**best, "NLL": np.nanmin([g["NLL"] for g in grid])}


def verdict(default, best, family):
    """Whether the ``default`` rate's scores meet the target against the grid's ``best``, and how."""
    gap_accuracy = best["accuracy"] - default["accuracy"]
    nll_ratio = default["NLL"] / best["NLL"]
    met = bool(gap_accuracy <= TARGET_ACCURACY and nll_ratio <= TARGET_NLL)
    text = f"{100 * gap_accuracy:.2f} accuracy points and {100 * (nll_ratio - 1):+.1f} % NLL from the best rate"
    if family == "IBVI":
        n_ood = sum(default[f"AUROC {o}"] >= best[f"AUROC {o}"] - TARGET_AUROC for o in OOD_SETS)
        met = met and n_ood >= 2
        text += f"; AUROC within {TARGET_AUROC} of the best rate's on {n_ood} of {len(OOD_SETS)} sets"
    return met, text


def report(runs, command, wall):
    summary = summarise(runs)
    lines = [
        "# Learning rate, epochs and out-of-distribution detection",
        "",
        f"`{command}` — {wall / 60:.1f} min, {platform.machine()}, one thread per fit, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, sklearn-ibvi {sklearn_ibvi.__version__}. 256-256 ReLU MLP, "
        "batch 128, package defaults otherwise; trained with `partial_fit` one epoch at a time. Means over "
        f"{len({r['seed'] for r in runs})} seed(s). AUROC: maximum class probability, test digits against "
        "uniform noise / photo patches / inverted digits. `default` is the package's default learning rate. "
        f"Target: the default within {100 * TARGET_ACCURACY:g} accuracy points and "
        f"{100 * (TARGET_NLL - 1):g} % NLL of the grid's best rate, and for IBVI within {TARGET_AUROC} of the "
        "best rate's AUROC on at least two of the three sets.",
        "",
    ]
    for dataset, spec in DATASETS.items():
        epoch = spec["main_epoch"]
        for family in FAMILIES:
            labels = [lab for lab in ["default", *map(str, LEARNING_RATES)]
                      if (dataset, family, lab, epoch) in summary]
            if not labels:
                continue
            best = grid_best(summary, dataset, family, epoch, labels)
            lines += [f"## {dataset}, {family}, epoch {epoch}", "",
                      "| lr | accuracy | NLL | vs best NLL | " + " | ".join(f"AUROC {o}" for o in OOD_SETS)
                      + " | fits with validity warnings | fits diverged |",
                      "|---|---|---|---|" + "---|" * len(OOD_SETS) + "---|---|"]
            for lab in labels:
                s = summary[(dataset, family, lab, epoch)]
                fits = [r for r in runs if (r["dataset"], r["family"], r["lr_label"]) == (dataset, family, lab)]
                name = f"default ({fits[0]['lr']:g})" if lab == "default" else lab
                lines.append(
                    f"| {name} | {s['accuracy']:.4f} ({100 * (s['accuracy'] - best['accuracy']):+.2f} pts) | {s['NLL']:.4f} | "
                    f"{100 * (s['NLL'] / best['NLL'] - 1):+.1f} % | "
                    + " | ".join(f"{s[f'AUROC {o}']:.3f}" for o in OOD_SETS)
                    + f" | {sum(f['validity_warnings'] > 0 for f in fits)}/{len(fits)}"
                    + f" | {sum(f['diverged_epoch'] is not None for f in fits)}/{len(fits)} |")
            if "default" in labels:
                met, text = verdict(summary[(dataset, family, "default", epoch)], best, family)
                lines += ["", f"Target {'met' if met else 'not met'}: the default is {text}."]
            checkpoints = [e for e in spec["checkpoints"] if (dataset, family, labels[0], e) in summary]
            lines += ["", f"AUROC (mean of the three sets) against the epoch, {dataset}, {family}:", "",
                      "| lr | " + " | ".join(f"epoch {e}" for e in checkpoints) + " |",
                      "|---|" + "---|" * len(checkpoints)]
            for lab in labels:
                cells = [np.mean([summary[(dataset, family, lab, e)][f"AUROC {o}"] for o in OOD_SETS])
                         for e in checkpoints]
                lines.append(f"| {lab} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
            if "default" in labels:
                lines += ["", f"Mean maximum probability at the default rate, {dataset}, {family}: test rows / "
                          "out-of-distribution rows (mean of the three sets):", "",
                          "| | " + " | ".join(f"epoch {e}" for e in checkpoints) + " |",
                          "|---|" + "---|" * len(checkpoints)]
                for label, keys in (("test", ["confidence test"]),
                                    ("out of distribution", [f"confidence {o}" for o in OOD_SETS])):
                    cells = [np.mean([summary[(dataset, family, "default", e)][k] for k in keys]) for e in checkpoints]
                    lines.append(f"| {label} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
            lines.append("")
    return "\n".join(lines)


def tasks(datasets, seeds, rates):
    """(family, lr, dataset, seed) of every fit; the default is not fitted again where it is a grid rate."""
    for dataset in datasets:
        for seed in seeds:
            for family, cls in FAMILIES.items():
                for lr in rates:
                    if lr != "default" and lr == cls().lr and "default" in rates:
                        continue
                    yield family, lr, dataset, seed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits, 1 seed, two rates")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=1, help="fits in parallel, one thread each")
    args = parser.parse_args()
    datasets = ["digits"] if args.quick else list(DATASETS)
    rates = ["default", 0.1] if args.quick else ["default", *LEARNING_RATES]
    seeds = range(1 if args.quick else args.seeds)
    start = time.time()
    todo = list(tasks(datasets, seeds, rates))
    results = Parallel(n_jobs=args.n_jobs, verbose=10)(delayed(run)(*task) for task in todo)
    runs = []
    for (family, lr, dataset, seed), r in zip(todo, results):
        labels = [str(lr)]
        if lr == "default" and r["lr"] in LEARNING_RATES:
            labels.append(str(r["lr"]))  # the default is also that grid rate's fit
        for label in labels:
            runs.append({**r, "dataset": dataset, "family": family, "seed": seed, "lr_label": label})
        last = r["curve"][max(r["curve"])]
        print(f"{dataset} seed {seed} {family} lr {lr}: acc {last['accuracy']:.4f} "
              f"NLL {last['NLL']:.4f} AUROC {last['AUROC uniform']:.3f}/{last['AUROC photos']:.3f}/"
              f"{last['AUROC inverted']:.3f} ({r['fit_seconds']:.0f} s, "
              f"{r['validity_warnings']} validity warnings)", flush=True)
    command = "python benchmarks/learning_rate.py" + (" --quick" if args.quick else f" --n-jobs {args.n_jobs}")
    text = report(runs, command, time.time() - start)
    stem = "learning_rate_quick" if args.quick else "learning_rate"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(runs, indent=1))
    print(text)


if __name__ == "__main__":
    main()
