"""How the classifiers' quality and out-of-distribution detection depend on the learning rate and the epoch.

For each family (``IBVIClassifier``; ``EntropySGDClassifier`` with its bound tracked, as by
default) and each learning rate of {0.025, 0.05, 0.1, 0.2} and the package default, a 256-256 ReLU
MLP (batch 128, other settings the package defaults) is trained one epoch at a time with
``partial_fit``; after checkpoint epochs it is scored on the test rows (accuracy, NLL) and on
out-of-distribution detection: the AUROC of the maximum class probability separating test digits
from uniform-noise images, from grey patches of scikit-learn's bundled photos, and from inverted
test digits (``1 - x``). Entropy-SGD also reports how many fits raised a ``BoundValidityWarning``
(its bound is not a bound there).

Data: digits (X/16, stratified 60/40 split per seed, 50 epochs) and an MNIST subset
(``load_mnist(n_train=10000, n_test=2000, random_state=0)``, 30 epochs); 3 seeds each.

    python benchmarks/learning_rate.py           # ~25 min on one core -> results/learning_rate.{md,json}
    python benchmarks/learning_rate.py --quick   # digits, 1 seed, 2 rates -> results/learning_rate_quick.*
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
from sklearn.datasets import load_digits, load_sample_images  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import sklearn_ibvi  # noqa: E402
from sklearn_ibvi import BoundValidityWarning, EntropySGDClassifier, IBVIClassifier  # noqa: E402
from sklearn_ibvi.datasets import load_mnist  # noqa: E402
from sklearn_ibvi.metrics import negative_log_likelihood  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LEARNING_RATES = (0.025, 0.05, 0.1, 0.2)
FAMILIES = {"IBVI": IBVIClassifier, "entropy-SGD": EntropySGDClassifier}
DATASETS = {"digits": dict(epochs=50, checkpoints=(5, 10, 20, 30, 50)),
            "MNIST 10k": dict(epochs=30, checkpoints=(5, 10, 20, 30))}
OOD_SETS = ("uniform", "photos", "inverted")


def natural_patches(n, image_shape, seed):
    """Grey patches of scikit-learn's bundled photos, block-averaged to ``image_shape``, in [0, 1]."""
    rng = np.random.default_rng(seed)
    photos = [img.mean(axis=2) / 255.0 for img in load_sample_images().images]
    h, w = image_shape
    k = max(1, 64 // max(h, w))
    patches = np.empty((n, h, w))
    for i in range(n):
        photo = photos[i % len(photos)]
        r, c = rng.integers(0, photo.shape[0] - k * h), rng.integers(0, photo.shape[1] - k * w)
        patches[i] = photo[r:r + k * h, c:c + k * w].reshape(h, k, w, k).mean(axis=(1, 3))
    return patches.reshape(n, -1)


def load(name, seed):
    if name == "digits":
        data = load_digits()
        X_train, X_test, y_train, y_test = train_test_split(
            data.data / 16.0, data.target, test_size=0.4, stratify=data.target, random_state=seed)
        shape = (8, 8)
    else:
        X_train, X_test, y_train, y_test = load_mnist(n_train=10000, n_test=2000, random_state=0)
        shape = (28, 28)
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
    for name, X in ood.items():
        other = model.predict_proba(X).max(axis=1)
        labels = np.r_[np.ones(len(confidence)), np.zeros(len(other))]
        out[f"AUROC {name}"] = float(roc_auc_score(labels, np.r_[confidence, other]))
    return out


def run(family, lr, dataset, seed):
    """Per-checkpoint scores of one fit, its training seconds and its validity warnings."""
    X_train, y_train, X_test, y_test, ood = load(dataset, seed)
    spec = DATASETS[dataset]
    params = dict(hidden_layer_sizes=(256, 256), batch_size=128, max_epochs=1, random_state=seed)
    if lr != "default":
        params["lr"] = lr
    model = FAMILIES[family](**params)
    classes = np.unique(y_train)
    curve, seconds, n_invalid = {}, 0.0, 0
    for epoch in range(1, spec["epochs"] + 1):
        start = time.process_time()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BoundValidityWarning)
            model.partial_fit(X_train, y_train, classes=classes)
        n_invalid += sum(issubclass(w.category, BoundValidityWarning) for w in caught)
        seconds += time.process_time() - start
        if epoch in spec["checkpoints"]:
            curve[epoch] = scores(model, X_test, y_test, ood)
    return {"curve": curve, "fit_seconds": seconds, "validity_warnings": n_invalid,
            "lr": float(model.lr)}


def summarise(runs):
    """Mean over seeds of each (dataset, family, lr, checkpoint) metric."""
    table = {}
    for r in runs:
        for epoch, metrics in r["curve"].items():
            key = (r["dataset"], r["family"], r["lr_label"], int(epoch))
            table.setdefault(key, []).append(metrics)
    return {key: {m: float(np.mean([v[m] for v in vals])) for m in vals[0]} for key, vals in table.items()}


def report(runs, command, wall):
    summary = summarise(runs)
    lines = [
        "# Learning rate, epochs and out-of-distribution detection",
        "",
        f"`{command}` — {wall / 60:.1f} min, {platform.machine()}, one thread, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, sklearn-ibvi {sklearn_ibvi.__version__}. 256-256 ReLU MLP, "
        "batch 128, package defaults otherwise; trained with `partial_fit` one epoch at a time. Means over "
        f"{len({r['seed'] for r in runs})} seed(s). AUROC: maximum class probability, test digits against "
        "uniform noise / photo patches / inverted digits. `default` is the package's default learning rate.",
        "",
    ]
    for dataset, spec in DATASETS.items():
        final = spec["epochs"]
        for family in FAMILIES:
            labels = [lab for lab in ["default", *map(str, LEARNING_RATES)]
                      if (dataset, family, lab, final) in summary]
            if not labels:
                continue
            best_acc = max(summary[(dataset, family, lab, final)]["accuracy"] for lab in labels if lab != "default")
            best_nll = min(summary[(dataset, family, lab, final)]["NLL"] for lab in labels if lab != "default")
            lines += [f"## {dataset}, {family}, epoch {final}", "",
                      "| lr | accuracy | NLL | vs best NLL | " + " | ".join(f"AUROC {o}" for o in OOD_SETS)
                      + " | fits with validity warnings |",
                      "|---|---|---|---|" + "---|" * len(OOD_SETS) + "---|"]
            for lab in labels:
                s = summary[(dataset, family, lab, final)]
                fits = [r for r in runs if (r["dataset"], r["family"], r["lr_label"]) == (dataset, family, lab)]
                name = f"default ({fits[0]['lr']:g})" if lab == "default" else lab
                lines.append(
                    f"| {name} | {s['accuracy']:.4f} ({100 * (s['accuracy'] - best_acc):+.2f} pts) | {s['NLL']:.4f} | "
                    f"{100 * (s['NLL'] / best_nll - 1):+.1f} % | "
                    + " | ".join(f"{s[f'AUROC {o}']:.3f}" for o in OOD_SETS)
                    + f" | {sum(f['validity_warnings'] > 0 for f in fits)}/{len(fits)} |")
            lines += ["", f"AUROC (mean of the three sets) against the epoch, {dataset}, {family}:", "",
                      "| lr | " + " | ".join(f"epoch {e}" for e in spec["checkpoints"]) + " |",
                      "|---|" + "---|" * len(spec["checkpoints"])]
            for lab in labels:
                cells = [np.mean([summary[(dataset, family, lab, e)][f"AUROC {o}"] for o in OOD_SETS])
                         for e in spec["checkpoints"]]
                lines.append(f"| {lab} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
            lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits, 1 seed, two rates")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    datasets = ["digits"] if args.quick else list(DATASETS)
    rates = ["default", 0.1] if args.quick else ["default", *LEARNING_RATES]
    seeds = range(1 if args.quick else args.seeds)
    start, runs = time.time(), []
    for dataset in datasets:
        for seed in seeds:
            for family in FAMILIES:
                for lr in rates:
                    r = run(family, lr, dataset, seed)
                    r.update(dataset=dataset, family=family, seed=seed, lr_label=str(lr))
                    runs.append(r)
                    last = r["curve"][max(r["curve"])]
                    print(f"{dataset} seed {seed} {family} lr {lr}: acc {last['accuracy']:.4f} "
                          f"NLL {last['NLL']:.4f} AUROC {last['AUROC uniform']:.3f}/{last['AUROC photos']:.3f}/"
                          f"{last['AUROC inverted']:.3f} ({r['fit_seconds']:.0f} s, "
                          f"{r['validity_warnings']} validity warnings)", flush=True)
    command = "python benchmarks/learning_rate.py" + (" --quick" if args.quick else "")
    text = report(runs, command, time.time() - start)
    stem = "learning_rate_quick" if args.quick else "learning_rate"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(runs, indent=1))
    print(text)


if __name__ == "__main__":
    main()
