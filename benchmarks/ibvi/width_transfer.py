"""μP learning-rate transfer across widths for IBVIClassifier (the paper's width-transfer claim).

digits (X/16, stratified 60/40 split, random_state=0), MLP 64-w-w-10 ReLU for w in 64/256/1024,
IBVIClassifier defaults otherwise (diag+lowrank rank 10 on input and output layers), SGD momentum
0.9, batch 128, a log-spaced grid of learning rates, one seed, two arms: ``parametrization='mup'``
and ``'standard'``. (The stored results also hold a third arm, 'standard' with the low-rank factor's
learning rate divided by R, measured by patching the library; that script is in git history at
commit 672f8aa. ``--report-only`` and ``--merge`` keep it.) For every (parametrization, width, lr): test NLL of the 32-sample model average, test error,
and the last epoch's mean training loss. A run whose loss diverges (TrainingDivergedError) is
recorded as NaN; a run the estimator reports as collapsed (ConvergenceWarning) is flagged.

    OMP_NUM_THREADS=1 python -m benchmarks.ibvi.width_transfer
    # writes benchmarks/results/ibvi_width_transfer.{png,md,json}; the committed run used
    #   --epochs 50 --lrs 0.005 0.01 0.02 0.04 0.08 0.16 0.32
"""

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from sklearn_ibvi import IBVIClassifier  # noqa: E402
from sklearn_ibvi.exceptions import TrainingDivergedError  # noqa: E402

from . import common  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "results"
PARAMETRIZATIONS = ("mup", "standard")  # the arms this script runs
TITLES = {
    "mup": "μP (parametrization='mup')",
    "standard": "standard parametrization (as shipped)",
    "standard_factor_lr_over_R": "standard, low-rank factor lr ÷ R (patched)",
}


def run_one(X_train, y_train, X_test, y_test, width, lr, parametrization, epochs, seed):
    model = IBVIClassifier(
        hidden_layer_sizes=(width, width), parametrization=parametrization, lr=lr, max_epochs=epochs,
        batch_size=128, n_bound_samples=0, device="cpu", random_state=seed,
    )  # fmt: skip
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model.fit(X_train, y_train)
        except TrainingDivergedError:
            return {"test_nll": float("nan"), "test_error": float("nan"), "train_loss": float("nan"),
                    "diverged": True, "collapsed": False, "fit_s": time.perf_counter() - start}  # fmt: skip
    fit_s = time.perf_counter() - start
    collapsed = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    s = common.scores(y_test, model.predict_proba(X_test))
    return {"test_nll": s["nll"], "test_error": s["error"], "train_loss": float(model.history_[-1, "train_loss"]),
            "diverged": False, "collapsed": collapsed, "fit_s": fit_s}  # fmt: skip


def best_lr(lrs, values):
    values = np.asarray(values, dtype=float)
    if np.all(np.isnan(values)):
        return float("nan"), float("nan")
    i = int(np.nanargmin(values))
    return lrs[i], values[i]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--lrs", type=float, nargs="+", default=list(np.geomspace(0.005, 0.16, 6)))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=list(PARAMETRIZATIONS), choices=PARAMETRIZATIONS)
    parser.add_argument("--merge", action="store_true", help="keep the stored runs of the other arms")
    parser.add_argument("--report-only", action="store_true", help="rewrite the md/png from the stored JSON")
    args = parser.parse_args()
    stored = RESULTS / "ibvi_width_transfer.json"
    if args.report_only:
        config = json.loads(stored.read_text())["config"]
        args.widths, args.lrs, args.epochs, args.seed = config["widths"], config["lrs"], config["epochs"], config["seed"]
        args.arms, args.merge = [], True
    torch.set_num_threads(1)
    X_train, X_test, y_train, y_test, _ = common.load_dataset("digits")
    lrs = [float(f"{lr:.4g}") for lr in args.lrs]
    t0 = time.time()
    runs = json.loads(stored.read_text())["runs"] if args.merge and stored.exists() else {}
    for p in args.arms:
        runs[p] = {str(w): {} for w in args.widths}
    for width in args.widths:  # widths outermost: the slow runs come last, partial results stay usable
        for p in args.arms:
            for lr in lrs:
                r = run_one(X_train, y_train, X_test, y_test, width, lr, p, args.epochs, args.seed)
                runs[p][str(width)][str(lr)] = r
                print(f"[{time.time() - t0:6.1f}s] {p:26s} w={width:5d} lr={lr:<7g} nll {r['test_nll']:.4f} "
                      f"err {r['test_error']:.4f} train {r['train_loss']:.4f} fit {r['fit_s']:.1f}s"
                      f"{' DIVERGED' if r['diverged'] else ''}{' COLLAPSED' if r['collapsed'] else ''}",
                      flush=True)  # fmt: skip

    # optimal lr per width, and the regret at the widest width of the lr tuned at the narrowest
    summary = {}
    narrow, wide = str(min(args.widths)), str(max(args.widths))
    arms = [p for p in TITLES if p in runs]  # stored arms included
    for p in arms:
        summary[p] = {}
        for w in map(str, args.widths):
            nll = [runs[p][w][str(lr)]["test_nll"] for lr in lrs]
            lr_star, nll_star = best_lr(lrs, nll)
            summary[p][w] = {"best_lr": lr_star, "best_nll": nll_star}
        lr_narrow = summary[p][narrow]["best_lr"]
        summary[p]["transfer"] = {
            "lr_tuned_at": int(narrow), "applied_at": int(wide), "lr": lr_narrow,
            "nll_at_wide": runs[p][wide][str(lr_narrow)]["test_nll"],
            "best_nll_at_wide": summary[p][wide]["best_nll"],
        }  # fmt: skip
        tr = summary[p]["transfer"]
        tr["regret"] = tr["nll_at_wide"] - tr["best_nll_at_wide"]

    RESULTS.mkdir(exist_ok=True)
    payload = {"config": {"data": "digits", "widths": args.widths, "lrs": lrs, "epochs": args.epochs,
                          "seed": args.seed, "arms": arms, "covariance": "diag+lowrank", "rank": 10,
                          "variational_layers": "input_output", "batch_size": 128, "momentum": 0.9},
               "runs": runs, "summary": summary}  # fmt: skip
    (RESULTS / "ibvi_width_transfer.json").write_text(json.dumps(payload, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(arms), figsize=(5 * len(arms), 4), sharey=True)
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(args.widths)))
    for ax, p in zip(axes, arms):
        for color, w in zip(colors, map(str, args.widths)):
            nll = np.array([runs[p][w][str(lr)]["test_nll"] for lr in lrs])
            ax.plot(lrs, nll, "o-", color=color, label=f"width {w}")
            lr_star = summary[p][w]["best_lr"]
            if np.isfinite(lr_star):
                ax.plot([lr_star], [summary[p][w]["best_nll"]], "*", color=color, markersize=14)
            for lr, r in zip(lrs, (runs[p][w][str(lr)] for lr in lrs)):
                if r["diverged"]:
                    ax.axvline(lr, color=color, ls=":", lw=1)
                elif r["collapsed"]:
                    ax.plot([lr], [r["test_nll"]], "x", color="red", markersize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learning rate (base, before per-layer multipliers)")
        ax.set_title(TITLES[p], fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test NLL (nats), 32-sample average")
    axes[0].legend()
    fig.suptitle(f"IBVIClassifier on digits, 64-w-w-10, {args.epochs} epochs, seed {args.seed}: "
                 "★ = best lr; x = collapse warning; dotted = diverged", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(RESULTS / "ibvi_width_transfer.png", dpi=120)

    lines = [
        "## IBVI: learning-rate transfer across widths (μP vs standard)",
        "",
        f"digits (X/16, stratified 60/40 split, random_state=0), IBVIClassifier 64-w-w-10 ReLU, defaults "
        f"(diag+lowrank rank 10 on input and output layers), SGD momentum 0.9, batch 128, {args.epochs} epochs, "
        f"seed {args.seed}, 1 thread. Learning rates {lrs}. Test NLL of the 32-sample model average. Arms: "
        "`mup`; `standard` as shipped when the JSON was made; `standard_factor_lr_over_R`: standard with the "
        "low-rank factor's lr divided by R as under μP and in inferno (a benchmark-only patch then; the "
        "library's `standard` does this since the fix, so a fresh run's `standard` arm matches it). "
        "Plot: `ibvi_width_transfer.png`. "
        "Reproduce: `OMP_NUM_THREADS=1 python -m benchmarks.ibvi.width_transfer --epochs "
        f"{args.epochs} --lrs {' '.join(map(str, lrs))}`.",
        "",
        "| parametrization | " + " | ".join(f"best lr, w={w}" for w in args.widths)
        + f" | test NLL at w={wide} with the lr best at w={narrow} | best test NLL at w={wide} | regret |",
        "|---|" + "---|" * (len(args.widths) + 3),
    ]
    for p in arms:
        tr = summary[p]["transfer"]
        cells = " | ".join(f"{summary[p][str(w)]['best_lr']:g} ({summary[p][str(w)]['best_nll']:.3f})" for w in args.widths)
        lines.append(f"| {p} | {cells} | {tr['nll_at_wide']:.3f} | {tr['best_nll_at_wide']:.3f} | {tr['regret']:.3f} |")
    lines += [
        "",
        "![test NLL against lr per width](ibvi_width_transfer.png)",
        "",
        "Best lr per width with its test NLL in brackets. Full grid (test NLL / test error):",
        "",
    ]
    lines.append("| parametrization | width | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |")
    lines.append("|---|---|" + "---|" * len(lrs))
    for p in arms:
        for w in map(str, args.widths):
            cells = []
            for lr in lrs:
                r = runs[p][w][str(lr)]
                cell = "diverged" if r["diverged"] else f"{r['test_nll']:.3f} / {r['test_error']:.3f}"
                cells.append(cell + (" (collapsed)" if r["collapsed"] else ""))
            lines.append(f"| {p} | {w} | " + " | ".join(cells) + " |")
    (RESULTS / "ibvi_width_transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
