"""IBVI benchmark: accuracy, calibration under corruption, fit time and memory, as ratios in one run.

Methods (same architecture, optimizer, batch size and epochs for all; SGD momentum 0.9, lr 0.05):

* ``sklearn_mlp``      scikit-learn ``MLPClassifier`` (solver='sgd', momentum 0.9, no Nesterov, alpha=0)
* ``plain``            a minimal torch loop (``common.fit_plain``): the "plain network" of the ratios
* ``plain_ts``         the plain loop on 80 % of train, temperature fitted on the other 20 % by NLL
* ``ensemble5``        deep ensemble: 5 plain networks from different seeds, probabilities averaged
* ``ibvi_default``     ``IBVIClassifier()`` defaults (diag+lowrank rank 10, input+output layers, μP)
* ``ibvi_paper``       ``IBVIClassifier(covariance='lowrank')``, the paper's configuration
* ``ibvi_default_nb0``, ``ibvi_paper_nb0``  the same with ``n_bound_samples=0`` (no per-epoch bound
  pass): identical training, timed to separate the bound's cost from the variational network's.
* ``inferno_ibvi``     the IBVI authors' ``inferno-torch`` 0.0.8 (own venv, ``inferno_reference.py``):
  low rank 10 on input and output layers, its μP, one sample per step, 32 samples to predict.

Every method is fitted once per seed, the methods interleaved within a seed, one thread; fit times
are medians over seeds (plus ``--timing-repeats`` extra interleaved fits). Peak memory: see
``memory_probe`` -- a fresh subprocess per method, peak RSS from the kernel's high-water mark
(VmHWM, reset through /proc/self/clear_refs just before the fit), reported as the process peak and as
the increase over the trimmed RSS before the fit.

    OMP_NUM_THREADS=1 python -m benchmarks.ibvi.run_benchmark \
        [--inferno-python /work/inferno-venv/bin/python]
"""

import argparse
import ctypes
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
import torch  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from . import common  # noqa: E402
from sklearn_ibvi import IBVIClassifier  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"

LR = 0.05
BATCH = 128
CONFIGS = {
    "digits": dict(hidden=(256, 256), epochs=100, seeds=(0, 1, 2), severities=(1, 3, 5)),
    "mnist": dict(hidden=(256, 256), epochs=20, seeds=(0, 1), severities=(1, 3, 5), n_train=10_000, n_test=2_000),
}
METHODS = (
    "sklearn_mlp", "plain", "plain_ts", "ensemble5",
    "ibvi_default", "ibvi_paper", "ibvi_default_nb0", "ibvi_paper_nb0",
)  # fmt: skip
# Fitted only to be timed: training is identical to the bound-recording fit (checked on clean data).
TIMING_ONLY = ("ibvi_default_nb0", "ibvi_paper_nb0")
LABELS = {
    "sklearn_mlp": "sklearn MLPClassifier",
    "plain": "plain torch MLP (the plain network)",
    "plain_ts": "plain MLP + temperature scaling",
    "ensemble5": "deep ensemble ×5",
    "ibvi_default": "IBVIClassifier default (diag+lowrank)",
    "ibvi_paper": "IBVIClassifier paper (lowrank)",
    "ibvi_default_nb0": "IBVI default, n_bound_samples=0",
    "ibvi_paper_nb0": "IBVI paper, n_bound_samples=0",
    "ibvi_module_loop": "IBVI default network, bare torch loop",  # in stored results only
    "ibvi_output": "IBVIClassifier(variational_layers='output')",
    "inferno_ibvi": "inferno-torch IBVI (reference)",
    "inferno_plain": "plain torch MLP in the inferno venv",
}


# -- methods: fit returns a predict_proba callable ----------------------------------------------


def fit_method(method, X, y, hidden, epochs, seed):
    if method == "sklearn_mlp":
        model = MLPClassifier(
            hidden, solver="sgd", learning_rate_init=LR, momentum=0.9, nesterovs_momentum=False,
            alpha=0.0, batch_size=BATCH, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
            random_state=seed,
        ).fit(X, y)  # fmt: skip
        return model.predict_proba
    if method == "plain":
        net = common.fit_plain(X, y, hidden, LR, epochs, BATCH, seed)
        return lambda Z: common.softmax_proba(common.logits_of(net, Z))
    if method == "plain_ts":
        X_fit, X_cal, y_fit, y_cal = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
        net = common.fit_plain(X_fit, y_fit, hidden, LR, epochs, BATCH, seed)
        temperature = common.fit_temperature(common.logits_of(net, X_cal), y_cal)
        predict = lambda Z: common.softmax_proba(common.logits_of(net, Z), temperature)  # noqa: E731
        predict.temperature = temperature
        return predict
    if method == "ensemble5":
        nets = [common.fit_plain(X, y, hidden, LR, epochs, BATCH, 1000 * seed + k) for k in range(5)]
        return lambda Z: np.mean([common.softmax_proba(common.logits_of(n, Z)) for n in nets], axis=0)
    if method.startswith("ibvi"):
        covariance = "lowrank" if "paper" in method else "diag+lowrank"
        layers = "output" if method == "ibvi_output" else "input_output"
        model = IBVIClassifier(
            hidden_layer_sizes=hidden, covariance=covariance, variational_layers=layers, lr=LR, batch_size=BATCH,
            max_epochs=epochs, n_bound_samples=0 if method.endswith("nb0") else 1, device="cpu", random_state=seed,
        ).fit(X, y)  # fmt: skip
        return model.predict_proba
    raise ValueError(method)


# -- memory probe (runs in its own process) -----------------------------------------------------


def rss_mb():
    """``(VmRSS, VmHWM)`` of this process in MiB, from /proc/self/status (Linux)."""
    status = Path("/proc/self/status").read_text()
    field = lambda key: int(status.split(key + ":")[1].split()[0]) / 1024.0  # noqa: E731 - kB
    return field("VmRSS"), field("VmHWM")


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def release_freed_memory():
    """Collect garbage and return freed heap pages to the OS (glibc ``malloc_trim``)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


MEMORY_EPOCHS = 2  # the peak is reached in the first epoch (and the per-epoch bound pass): no need for all


def memory_probe(dataset, method):
    """Peak RSS of one fit, in this fresh process, over a trimmed baseline.

    A warm-up fit of the same method on a tiny network (hidden width 8, 256 rows, 1 epoch) does the
    lazy initialisation (imports, thread pools, dispatch caches) without pre-allocating the real
    network's buffers; freed memory is then returned to the OS, the peak mark is reset, and the
    full-size fit runs for ``MEMORY_EPOCHS`` epochs on all the training rows.
    """
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    cfg = CONFIGS[dataset]
    X_train, _, y_train, _, _ = common.load_dataset(dataset, cfg.get("n_train"), cfg.get("n_test"))
    fit_method(method, X_train[:256], y_train[:256], (8,) * len(cfg["hidden"]), 1, 0)
    release_freed_memory()
    reset_peak_rss()
    before, _ = rss_mb()
    model = fit_method(method, X_train, y_train, cfg["hidden"], MEMORY_EPOCHS, 0)
    _, peak = rss_mb()
    del model  # alive until the peak was read
    print(json.dumps({"peak_rss_mb": peak, "baseline_rss_mb": before, "fit_increase_mb": peak - before,
                      "epochs": MEMORY_EPOCHS}))  # fmt: skip


def measure_memory(dataset, method, attempts=2):
    """The probe's JSON; retried once, and an ``{"error": ...}`` entry rather than a crash."""
    for attempt in range(attempts):
        proc = subprocess.run(
            [sys.executable, "-m", __spec__.name, "--memory-probe", dataset, method],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=HERE.parent.parent,
        )  # fmt: skip
        if proc.returncode == 0:
            return json.loads(proc.stdout.strip().splitlines()[-1])
    return {"error": f"exit {proc.returncode}: {proc.stderr[-2000:]}"}


# -- the inferno reference (own venv) ----------------------------------------------------------


def _inferno_cmd(python, cfg, data_path, out_path):
    return [
        python, str(HERE / "inferno_reference.py"), str(data_path), str(out_path),
        "--hidden", *map(str, cfg["hidden"]), "--epochs", str(cfg["epochs"]), "--lr", str(LR),
        "--batch-size", str(BATCH), "--seeds", *map(str, cfg["seeds"]),
    ]  # fmt: skip


def run_inferno(python, cfg, data, sets):
    """Fits, interleaved per seed, of inferno's IBVI and the plain loop in inferno's venv."""
    X_train, y_train = data
    with tempfile.TemporaryDirectory() as tmp:
        data_path, out_path = Path(tmp) / "data.npz", Path(tmp) / "out.npz"
        names = list(sets)
        np.savez(data_path, X_train=X_train, y_train=y_train, X_tests=np.stack([sets[n] for n in names]))
        start = time.perf_counter()
        proc = subprocess.run(_inferno_cmd(python, cfg, data_path, out_path), capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        out = dict(np.load(out_path, allow_pickle=True))
        info = json.loads(str(out["info"]))
        info["wall_s"] = time.perf_counter() - start
        probas = {m: out[m] for m in ("inferno_plain", "inferno_ibvi")}  # (seed, set, n, 10)
    return names, probas, info


def inferno_memory(python, cfg, data):
    """Memory probes of the inferno venv's two methods (same protocol as :func:`memory_probe`)."""
    X_train, y_train = data
    memory = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.npz"
        np.savez(data_path, X_train=X_train, y_train=y_train, X_tests=X_train[None, :1])
        cmd = _inferno_cmd(python, cfg, data_path, Path(tmp) / "unused.npz")
        for method in ("inferno_plain", "inferno_ibvi"):
            proc = subprocess.run(cmd + ["--memory-probe", method, "--memory-epochs", str(MEMORY_EPOCHS)],
                                  capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
            ok = proc.returncode == 0
            memory[method] = json.loads(proc.stdout.strip().splitlines()[-1]) if ok else {"error": proc.stderr[-2000:]}
    return memory


# -- main ----------------------------------------------------------------------------------------


def run_dataset(dataset, args, log, checkpoint=lambda dataset, res: None):
    cfg = CONFIGS[dataset]
    if args.quick:
        cfg = {**cfg, "epochs": max(2, cfg["epochs"] // 20), "seeds": cfg["seeds"][:1]}
    X_train, X_test, y_train, y_test, shape = common.load_dataset(dataset, cfg.get("n_train"), cfg.get("n_test"))
    sets = common.test_sets(X_test, shape, cfg["severities"])
    log(f"== {dataset}: train {X_train.shape}, test {X_test.shape}, {len(sets)} test sets, cfg {cfg}")
    res = {
        "config": {**{k: v for k, v in cfg.items()}, "lr": LR, "batch_size": BATCH, "n_train": len(X_train),
                   "n_test": len(X_test), "n_features": X_train.shape[1]},
        "methods": {},
    }  # fmt: skip
    methods = args.methods or METHODS
    for m in methods:
        res["methods"][m] = {"fit_s": [], "predict_clean_s": [], "scores": {name: [] for name in sets}}
    # warm-up (imports, first-call dispatch, allocator), not timed
    for m in methods:
        fit_method(m, X_train[:256], y_train[:256], cfg["hidden"], 1, 0)
    for seed in cfg["seeds"]:
        for m in methods:
            start = time.perf_counter()
            predict = fit_method(m, X_train, y_train, cfg["hidden"], cfg["epochs"], seed)
            fit_s = time.perf_counter() - start
            entry = res["methods"][m]
            entry["fit_s"].append(fit_s)
            if hasattr(predict, "temperature"):
                entry.setdefault("temperature", []).append(predict.temperature)
            for name, X in sets.items():
                if m in TIMING_ONLY and name != "clean":
                    continue
                start = time.perf_counter()
                proba = predict(X)
                if name == "clean":
                    entry["predict_clean_s"].append(time.perf_counter() - start)
                entry["scores"][name].append(common.scores(y_test, proba))
            clean = entry["scores"]["clean"]
            c = clean[-1] if clean else dict.fromkeys(("error", "nll", "ece"), np.nan)
            log(f"  seed {seed} {m:18s} fit {fit_s:7.2f}s  clean err {c['error']:.4f} nll {c['nll']:.4f} "
                f"ece {c['ece']:.4f}")  # fmt: skip
    for m in TIMING_ONLY:
        if m in res["methods"]:
            res["methods"][m]["scores"] = {"clean": res["methods"][m]["scores"]["clean"]}
    checkpoint(dataset, res)
    if not args.no_memory:
        for m in methods:
            res["methods"][m]["memory"] = measure_memory(dataset, m) if not args.quick else None
            log(f"  memory {m:18s} {res['methods'][m]['memory']}")
    if args.inferno_python:
        try:
            names, probas, info = run_inferno(args.inferno_python, cfg, (X_train, y_train), sets)
            memory = inferno_memory(args.inferno_python, cfg, (X_train, y_train)) if not args.no_memory else {}
            for m in ("inferno_plain", "inferno_ibvi"):
                scores = {name: [common.scores(y_test, probas[m][s, i]) for s in range(len(cfg["seeds"]))]
                          for i, name in enumerate(names)}  # fmt: skip
                res["methods"][m] = {
                    "fit_s": info["fit_s"][m], "predict_clean_s": info["predict_clean_s"][m],
                    "scores": scores, "memory": memory.get(m), "versions": info["versions"],
                }  # fmt: skip
                c = scores["clean"]
                log(f"  {m} fit {info['fit_s'][m]} clean nll {[x['nll'] for x in c]}")
        except Exception as error:  # noqa: BLE001 - a reference run that fails is reported, not fatal
            res["inferno_error"] = repr(error)
            log(f"  inferno failed: {error!r}")
    return res


TIMED = ("sklearn_mlp", "plain", "ibvi_default", "ibvi_paper", "ibvi_default_nb0", "ibvi_paper_nb0",
         "ibvi_output")


def extra_timing_repeats(dataset, repeats, log):
    """``repeats`` more interleaved fits (seeds 100, 101, ...) of the methods in the time ratios.

    The machine is shared: single fits vary by ±30 %. More interleaved repeats make the medians,
    and so the ratios, steadier. Times are appended to ``fit_s`` of the stored results.
    """
    cfg = CONFIGS[dataset]
    X_train, _, y_train, _, _ = common.load_dataset(dataset, cfg.get("n_train"), cfg.get("n_test"))
    times = {m: [] for m in TIMED}
    for m in TIMED:
        fit_method(m, X_train[:256], y_train[:256], cfg["hidden"], 1, 0)
    for r in range(repeats):
        for m in TIMED:
            start = time.perf_counter()
            fit_method(m, X_train, y_train, cfg["hidden"], cfg["epochs"], 100 + r)
            times[m].append(time.perf_counter() - start)
        log(f"  timing repeat {r}: " + ", ".join(f"{m} {times[m][-1]:.2f}s" for m in TIMED))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist"])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--inferno-python", default=None, help="python of a venv with inferno-torch 0.0.8")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--timing-only", action="store_true",
                        help="only run --timing-repeats, adding to the results already in --out")
    parser.add_argument("--merge", action="store_true",
                        help="with --methods: add these methods to the stored results of the dataset")
    parser.add_argument("--memory-only", action="store_true",
                        help="only re-measure peak memory of the methods stored in --out")
    parser.add_argument("--quick", action="store_true", help="smoke test: few epochs, one seed")
    parser.add_argument("--out", default=str(RESULTS / "ibvi_benchmark.json"))
    parser.add_argument("--memory-probe", nargs=2, metavar=("DATASET", "METHOD"))
    parser.add_argument("--timing-repeats", type=int, default=0,
                        help="extra interleaved timing-only fits per method, added to the fit times")
    args = parser.parse_args()
    if args.memory_probe:
        memory_probe(*args.memory_probe)
        return
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    start = time.time()

    def log(msg):
        print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)

    results = {
        "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "torch": torch.__version__, "sklearn": sklearn.__version__, "threads": torch.get_num_threads()},
        "datasets": {},
    }  # fmt: skip
    out = Path(args.out)
    if out.exists():  # keep datasets run separately
        results["datasets"] = json.loads(out.read_text()).get("datasets", {})

    def checkpoint(dataset, res):  # partial results survive a later failure
        if args.merge and dataset in results["datasets"]:  # add/replace these methods only
            merged = results["datasets"][dataset]
            for m, entry in res["methods"].items():
                merged["methods"][m] = entry
            res = merged
        results["datasets"][dataset] = res
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))

    if args.memory_only:
        for dataset in args.datasets:
            cfg = CONFIGS[dataset]
            methods = results["datasets"][dataset]["methods"]
            for m in methods:
                if not m.startswith("inferno"):
                    methods[m]["memory"] = measure_memory(dataset, m)
                    log(f"  memory {dataset} {m:18s} {methods[m]['memory']}")
            if args.inferno_python:
                X_train, _, y_train, _, _ = common.load_dataset(dataset, cfg.get("n_train"), cfg.get("n_test"))
                for m, mem in inferno_memory(args.inferno_python, cfg, (X_train, y_train)).items():
                    methods.setdefault(m, {})["memory"] = mem
                    log(f"  memory {dataset} {m:18s} {mem}")
            out.write_text(json.dumps(results, indent=1))
        return

    for dataset in args.datasets:
        if not args.timing_only:
            checkpoint(dataset, run_dataset(dataset, args, log, checkpoint))
        if args.timing_repeats:
            extra = extra_timing_repeats(dataset, args.timing_repeats, log)
            for m, times in extra.items():
                entry = results["datasets"][dataset]["methods"].setdefault(m, {"fit_s": []})
                entry["fit_s"] += times
                entry["n_timing_repeats"] = entry.get("n_timing_repeats", 0) + len(times)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
    log(f"done, wrote {out}")


if __name__ == "__main__":
    main()
