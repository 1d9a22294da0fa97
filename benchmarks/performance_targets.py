"""The performance targets, each with its measured ratio and whether it is met, in one table.

Reads what ``fit_time.py``, ``predict_time.py``, ``scale.py`` and ``gpu_fit_time.py`` wrote to
``benchmarks/results/`` (nothing is copied by hand), and writes ``performance_targets.md``, which
the performance guide shows. ``--run`` first re-runs the three CPU benchmarks, one after the other
(about 25 minutes on two cores; nothing else should run meanwhile), so that one command measures
every ratio.

    python benchmarks/performance_targets.py          # summarise the result files
    python benchmarks/performance_targets.py --run    # re-measure, then summarise
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"

#: The targets: fit within 1.15× scikit-learn's MLP, tracking within 1.3× untracked training,
#: prediction within 1.5× one plain forward pass per weight draw, a GPU fit 10× the CPU's.
IBVI_FIT_TARGET = 1.15
TRACKING_TARGET = 1.3
PREDICT_PER_DRAW_TARGET = 1.5
GPU_SPEEDUP_TARGET = 10.0


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _verdict(value, target, default=True):
    """'met' or 'not met'; a setting other than the defaults is only a comparison, and says so."""
    verdict = "met" if value <= target else "not met"
    return verdict if default else f"{verdict} (not the default)"


def fit_rows(fit_time, scale):
    rows = []
    if fit_time:
        median = fit_time["median_seconds"]
        momentum = median["(f) sklearn MLPClassifier, momentum 0.9"]
        for name, label in (
            ("(g) IBVIClassifier, defaults (per-epoch bound on 512 rows)", "defaults"),
            ("(g') IBVIClassifier, per-epoch bound on every row (bound_rows=None)", "bound_rows=None"),
            ("(g'') IBVIClassifier, no per-epoch bound", "n_bound_samples=0"),
        ):
            ratio = median[name] / momentum
            rows.append(("IBVIClassifier fit × MLPClassifier", f"digits, 256-256, {label}", ratio,
                         f"≤ {IBVI_FIT_TARGET}", _verdict(ratio, IBVI_FIT_TARGET, label == "defaults"), "fit_time"))  # fmt: skip
        untracked = median["(b) EntropySGDClassifier, tracking off"]
        bounds = fit_time.get("bound_per_sample", {})
        for name, label in (
            ("(c) stochastic tracking (probe + validity check)", "defaults"),
            ("(c''') stochastic, probe_fraction=0.1, no validity monitor", "probe_fraction=0.1, no check"),
        ):
            ratio = median[name] / untracked
            spread = _spread_text(bounds.get(name, []))
            rows.append(("entropy tracking × untracked", f"digits, 256-256, {label} (bound spread {spread})", ratio,
                         f"≤ {TRACKING_TARGET}", _verdict(ratio, TRACKING_TARGET, label == "defaults"), "fit_time"))  # fmt: skip
    if scale:
        cells = {(c["estimator"], c["rows"], c["width"]): c for c in scale["cells"]}
        pairs = (
            ("IBVIClassifier fit × MLPClassifier", "IBVIClassifier", "MLPClassifier", IBVI_FIT_TARGET),
            ("entropy tracking × untracked", "EntropySGDClassifier", "EntropySGDClassifier, entropy=None",
             TRACKING_TARGET),
        )  # fmt: skip
        for rows_, width in ((10000, 256), (60000, 1024)):
            for target_name, estimator, reference, target in pairs:
                measured, base = cells.get((estimator, rows_, width)), cells.get((reference, rows_, width))
                if measured and base:
                    ratio = measured["fit_s"] / base["fit_s"]
                    rows.append((target_name, f"MNIST {rows_:,} rows, {width}-{width}, defaults", ratio,
                                 f"≤ {target}", _verdict(ratio, target), "scale"))  # fmt: skip
    return rows


def _spread_text(values):
    """The sample standard deviation of the repeats' bounds per sample, as table text."""
    values = [v for v in values if v == v]
    if len(values) < 2:
        return "–"
    mean = sum(values) / len(values)
    return f"{(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5:.3f} nats/sample"


def predict_rows(predict_time):
    if not predict_time:
        return []
    rows = []
    default = predict_time["default_n_predict_samples"]
    for data, timing in predict_time["timings"].items():
        ratio = timing["ratio_per_weight_sample"][str(default)]
        rows.append(("IBVI predict per draw × one MLP forward pass", f"{data}, S = {default}", ratio,
                     f"≤ {PREDICT_PER_DRAW_TARGET}", _verdict(ratio, PREDICT_PER_DRAW_TARGET), "predict_time"))  # fmt: skip
    smallest = {
        data: curve["smallest_within_1pct"]
        for data, curve in predict_time["nll_against_samples"].items()
        if data.endswith("antithetic")
    }
    needed = max(smallest.values())
    rows.append(("smallest S with test NLL within 1 % of S = 128", ", ".join(f"{d}: {s}" for d, s in smallest.items()),
                 needed, f"= default {default}", "met" if needed == default else "not met", "predict_time"))  # fmt: skip
    return rows


def gpu_rows(gpu):
    target = f"≥ {GPU_SPEEDUP_TARGET:g}× 16 CPU cores"
    setting = "MNIST 60,000 rows, 1024-1024"
    if not gpu or gpu.get("n_train") != 60000:
        measured = "" if not gpu else f" (the last GPU run: {gpu['n_train']:,} rows on {gpu['gpu']})"
        return [("GPU fit speed-up", setting + measured, float("nan"), target, "not measured", "gpu_fit_time")]
    rows = []
    for row in gpu["rows"]:
        if row["device"] == "cuda" and "IBVI" in row["configuration"]:
            speedup = row["cpu_over_this"]
            rows.append(("GPU fit speed-up", f"{row['configuration']}, {gpu['gpu']}", speedup, target,
                         "met" if speedup >= GPU_SPEEDUP_TARGET else "not met", "gpu_fit_time"))  # fmt: skip
    return rows


def table(rows, sources):
    lines = [
        "# Performance targets",
        "",
        "Written by `python benchmarks/performance_targets.py` from the result files of the scripts named "
        "in the last column (their headers give machine, versions and command; `--run` re-measures them "
        "first). Ratios are medians of interleaved runs within one script's run; the targets hold at the "
        "defaults, and rows at other settings are there for comparison.",
        "",
        "| target | setting | measured | target | verdict | from |",
        "|---|---|---|---|---|---|",
    ]
    for name, setting, value, target, verdict, source in rows:
        measured = "–" if value != value else f"{value:.2f}" if isinstance(value, float) else str(value)
        source = source if source.startswith("`") else f"`{source}.py`"
        lines.append(f"| {name} | {setting} | {measured} | {target} | {verdict} | {source} |")
    lines += ["", "Machines: " + "; ".join(f"`{name}`: {machine}" for name, machine in sources.items() if machine)]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="re-run fit_time.py, predict_time.py and scale.py first")
    args = parser.parse_args()
    if args.run:
        for script in ("fit_time.py", "predict_time.py", "scale.py"):
            subprocess.run([sys.executable, str(HERE / script)], check=True)
    fit_time, predict_time, scale, gpu = (_load(n) for n in ("fit_time", "predict_time", "scale", "gpu_fit_time"))
    first_fit = ("no compiler or sympy import on a first fit", "all four estimators: fit, predict, score, pickle",
                 "–", "none imported", "tested", "`tests/test_optim.py`")  # fmt: skip
    rows = fit_rows(fit_time, scale) + predict_rows(predict_time) + [first_fit] + gpu_rows(gpu)
    sources = {
        "fit_time": fit_time and fit_time.get("machine", "in the header of fit_time.md"),
        "predict_time": predict_time and f"{predict_time['machine']}, torch {predict_time['torch']}",
        "scale": scale and scale.get("machine"),
        "gpu_fit_time": gpu and f"{gpu['gpu']}, {gpu['cpu_threads']} CPU threads, torch {gpu['torch']}",
    }
    text = table(rows, sources)
    print(text)
    (RESULTS / "performance_targets.md").write_text(text)


if __name__ == "__main__":
    main()
