"""Reference IBVI run with the authors' library, inferno-torch 0.0.8, in its own venv.

Called by ``run_benchmark.py --inferno-python PY``; uses only torch, numpy and inferno (its public
API: ``inferno.models.MLP``, ``bnn.params.LowRankCovariance``, ``bnn.params.MaximalUpdate``,
``parameters_and_lrs``), nothing from this repository. The recipe is the paper's: low-rank (rank
10) Gaussian input and output layers, deterministic hidden layers, μP, SGD with momentum 0.9 on the
expected cross-entropy with one weight sample per minibatch (``model(x)`` draws one), no KL term;
prediction averages softmax probabilities of 32 samples (``model(x, sample_shape=(32,))``).

For the time ratio in the same process it also fits the same plain torch loop as
``common.fit_plain`` (re-written here: this venv has no scikit-learn).

    python inferno_reference.py data.npz out.npz --hidden 256 256 --epochs 100 --lr 0.05 --seeds 0 1 2
"""

import argparse
import json
import os
import ctypes
import gc
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from inferno import bnn  # noqa: E402
from inferno.models import MLP  # noqa: E402

N_PREDICT_SAMPLES = 32


def plain_mlp(n_features, hidden, n_classes):
    widths = [n_features, *hidden, n_classes]
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def inferno_mlp(n_features, hidden, n_classes, rank=10):
    covs = [bnn.params.LowRankCovariance(rank)] + [None] * (len(hidden) - 1) + [bnn.params.LowRankCovariance(rank)]
    return MLP(n_features, list(hidden), n_classes, cov=covs, parametrization=bnn.params.MaximalUpdate())


def fit(kind, X, y, hidden, lr, epochs, batch_size, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "inferno_plain":
            model = plain_mlp(X.shape[1], hidden, int(y.max()) + 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        else:
            model = inferno_mlp(X.shape[1], hidden, int(y.max()) + 1)
            optimizer = torch.optim.SGD(model.parameters_and_lrs(lr=lr, optimizer="SGD"), lr=lr, momentum=0.9)
        X = torch.as_tensor(X, dtype=torch.float32)
        y = torch.as_tensor(y, dtype=torch.int64)
        n = len(X)
        model.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(X[rows]), y[rows])  # inferno: one sample
                loss.backward()
                optimizer.step()
    return model


def predict_proba(kind, model, X, seed=0):
    model.eval()
    X = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        if kind == "inferno_plain":
            return torch.softmax(model(X).double(), -1).numpy()
        generator = torch.Generator().manual_seed(seed)
        logits = model(X, sample_shape=(N_PREDICT_SAMPLES,), generator=generator)
        return torch.softmax(logits.double(), -1).mean(0).numpy()


def rss_mb():
    """``(VmRSS, VmHWM)`` in MiB from /proc/self/status."""
    with open("/proc/self/status") as f:
        status = f.read()
    field = lambda key: int(status.split(key + ":")[1].split()[0]) / 1024.0  # noqa: E731
    return field("VmRSS"), field("VmHWM")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--hidden", type=int, nargs="+", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--memory-probe", default=None)
    parser.add_argument("--memory-epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = np.load(args.data)
    X, y, X_tests = data["X_train"], data["y_train"], data["X_tests"]
    kinds = ("inferno_plain", "inferno_ibvi")
    common = (args.hidden, args.lr)
    if args.memory_probe:
        # same protocol as run_benchmark.memory_probe: tiny warm-up, trimmed baseline, short full-size fit
        fit(args.memory_probe, X[:256], y[:256], (8,) * len(args.hidden), args.lr, 1, args.batch_size, 0)
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS mark (VmHWM)
            f.write("5")
        before, _ = rss_mb()
        model = fit(args.memory_probe, X, y, *common, args.memory_epochs, args.batch_size, 0)  # noqa: F841
        _, after = rss_mb()
        print(json.dumps({"peak_rss_mb": after, "baseline_rss_mb": before, "fit_increase_mb": after - before}))
        return
    for kind in kinds:  # warm-up
        fit(kind, X[:256], y[:256], *common, 1, args.batch_size, 0)
    fit_s = {k: [] for k in kinds}
    predict_s = {k: [] for k in kinds}
    probas = {k: [] for k in kinds}
    for seed in args.seeds:
        for kind in kinds:
            start = time.perf_counter()
            model = fit(kind, X, y, *common, args.epochs, args.batch_size, seed)
            fit_s[kind].append(time.perf_counter() - start)
            start = time.perf_counter()
            per_set = [predict_proba(kind, model, X_tests[0], seed)]
            predict_s[kind].append(time.perf_counter() - start)
            per_set += [predict_proba(kind, model, Xt, seed) for Xt in X_tests[1:]]
            probas[kind].append(np.stack(per_set))
    import inferno

    info = {
        "fit_s": fit_s,
        "predict_clean_s": predict_s,
        "versions": {"torch": torch.__version__, "inferno": getattr(inferno, "__version__", "0.0.8")},
    }
    np.savez(args.out, info=json.dumps(info), **{k: np.stack(v) for k, v in probas.items()})


if __name__ == "__main__":
    main()
