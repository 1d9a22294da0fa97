"""Shared pieces of the IBVI benchmarks: data, corrupted test sets, the plain network, metrics.

Nothing here imports the IBVI authors' library; ``inferno_reference.py`` runs in its own venv and
receives the data through an ``.npz`` file written by :func:`save_data`.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from sklearn_ibvi.datasets import CORRUPTION_KINDS, corrupt_images, load_mnist  # noqa: E402
from sklearn_ibvi.metrics import (  # noqa: E402
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)

LABELS = np.arange(10)


def load_dataset(name, n_train=10_000, n_test=5_000):
    """``(X_train, X_test, y_train, y_test, image_shape)``, float32 in [0, 1]."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
        return X_train, X_test, y_train.astype(np.int64), y_test.astype(np.int64), (8, 8)
    if name == "mnist":
        X_train, X_test, y_train, y_test = load_mnist(n_train=n_train, n_test=n_test, random_state=0)
        return X_train, X_test, y_train, y_test, (28, 28)
    raise ValueError(name)


def test_sets(X_test, image_shape, severities):
    """``{'clean': X_test, 'kind/severity': corrupted X_test}``, seeded per set."""
    out = {"clean": X_test}
    for k, kind in enumerate(CORRUPTION_KINDS):
        for severity in severities:
            out[f"{kind}/{severity}"] = corrupt_images(
                X_test, kind, severity, image_shape, random_state=1000 + 10 * k + severity
            ).astype(np.float32)
    return out


def scores(y_true, proba):
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(1, keepdims=True)
    return {
        "error": float(np.mean(proba.argmax(1) != y_true)),
        "nll": negative_log_likelihood(y_true, proba, labels=LABELS),
        "ece": expected_calibration_error(y_true, proba, n_bins=15, labels=LABELS),
        "brier": brier_score(y_true, proba, labels=LABELS),
    }


# -- the plain network: a minimal, honest torch loop --------------------------------------------


def plain_mlp(n_features, hidden, n_classes):
    """``nn.Sequential`` of ``nn.Linear`` + ReLU, PyTorch's default initialisation."""
    widths = [n_features, *hidden, n_classes]
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def fit_plain(X, y, hidden, lr, epochs, batch_size, seed, momentum=0.9):
    """Minibatch SGD with momentum on the mean cross-entropy; tensors sliced, no DataLoader."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = plain_mlp(X.shape[1], hidden, int(y.max()) + 1)
    X = torch.as_tensor(X, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.int64)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    n = len(X)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(X[rows]), y[rows])
            loss.backward()
            optimizer.step()
    return model


def logits_of(model, X):
    model.eval()
    with torch.no_grad():
        return model(torch.as_tensor(X, dtype=torch.float32)).double()


def softmax_proba(logits, temperature=1.0):
    return torch.softmax(logits / temperature, dim=-1).numpy()


def fit_temperature(logits, y):
    """Temperature minimising the NLL of held-out ``logits`` (search over log T in [-3, 3])."""
    y = torch.as_tensor(y)

    def nll(log_t):
        return float(torch.nn.functional.cross_entropy(logits / np.exp(log_t), y))

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))
