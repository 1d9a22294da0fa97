"""
Choosing a network and its stopping epoch without a validation set
===================================================================

:class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV` ranks every configuration of a
grid by forward chaining: each candidate is trained on prefixes of the training rows (the
first ``n/4`` and ``n/2`` rows of two random orders) and, after every epoch, predicts the block
that follows its prefix. The log predictive density per coded row estimates the learner's
conditional evidence; its maximum over (configuration, epoch) chooses the configuration, which
is refit once on all the rows for the ``n/2`` prefixes' peak epoch, scaled by how the peak moves
from the ``n/4`` prefixes' (``stopping_epoch='scaled'``: kept where it does not come earlier, as
on these data; brought earlier where it does, as on MNIST). Successive halving stops the weaker
half of the candidates at 1/8, 1/4 and 1/2 of the epochs: their curves end early in the plot.

Here it chooses the width, the prior scale and the epoch of an
:class:`~sklearn_ibvi.EntropySGDRegressor` on the diabetes data, beside 5-fold
cross-validation over the same widths and priors and three epoch budgets (``GridSearchCV``
retrains for each budget), and beside
:class:`~sklearn_ibvi.model_selection.EpochwiseGridSearchCV`, 5-fold cross-validation that
reads every epoch off one fit per fold. All are scored
on a held-out test set the selectors never see; the compute is their wall time.
"""

import os
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import EntropySGDRegressor
from sklearn_ibvi.model_selection import BlockPrequentialSearchCV, EpochwiseGridSearchCV, log_predictive_scorer

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=300, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# Set SKLEARN_IBVI_FAST_EXAMPLES=1 (as the docs CI does) for a quick run with fewer epochs/rows.
FAST = bool(os.environ.get("SKLEARN_IBVI_FAST_EXAMPLES"))
estimator = EntropySGDRegressor(max_epochs=16 if FAST else 100, batch_size=32, noise_std=0.6, random_state=0)
grid = {"hidden_layer_sizes": [(16,), (64,)], "prior_scale": [0.5, 2.0]}

warnings.simplefilter("ignore")  # bound-validity warnings of the refits are kept in their histories
start = time.perf_counter()
search = BlockPrequentialSearchCV(estimator, grid).fit(X_train, y_train)
search_seconds = time.perf_counter() - start

start = time.perf_counter()
cv = GridSearchCV(estimator, {**grid, "max_epochs": [4, 8, 16] if FAST else [25, 50, 100]}, scoring=log_predictive_scorer, cv=5)
cv.fit(X_train, y_train)
cv_seconds = time.perf_counter() - start

start = time.perf_counter()
epochwise = EpochwiseGridSearchCV(estimator, grid, cv=5).fit(X_train, y_train)
epochwise_seconds = time.perf_counter() - start

selectors = [
    ("forward chaining", search, search_seconds),
    ("5-fold CV", cv, cv_seconds),
    ("5-fold CV, epochwise", epochwise, epochwise_seconds),
]
for name, selector, seconds in selectors:
    params = selector.best_params_
    print(
        f"{name:>20}: width {params['hidden_layer_sizes'][0]:>3}, prior scale {params['prior_scale']}, "
        f"{params['max_epochs']:>3} epochs; test log predictive density "
        f"{log_predictive_scorer(selector.best_estimator_, X_test, y_test):.3f} nats/row; {seconds:.1f} s"
    )

# %%
# The criterion of every candidate after every epoch, and the chosen epoch: forward chaining
# (left) and cross-validation (right) read off the same kind of curves.
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
for ax, selector, title in [
    (axes[0], search, "BlockPrequentialSearchCV"),
    (axes[1], epochwise, "EpochwiseGridSearchCV (5 folds)"),
]:
    curves = selector.criterion_curves_
    epochs = np.arange(1, curves.shape[1] + 1)
    for params, curve in zip(selector.cv_results_["params"], curves):
        label = f"width {params['hidden_layer_sizes'][0]}, prior scale {params['prior_scale']}"
        ax.plot(epochs, curve, label=label)
    ax.axvline(selector.peak_epoch_, color="k", ls=":", label=f"peak: epoch {selector.peak_epoch_}")
    if selector.best_epoch_ != selector.peak_epoch_:
        ax.axvline(selector.best_epoch_, color="k", ls="--", label=f"refit: epoch {selector.best_epoch_}")
    ax.set_xlabel("epoch")
    ax.set_title(f"{title}, diabetes (300 rows)", fontsize=10)
best = max(np.nanmax(search.criterion_curves_), np.nanmax(epochwise.criterion_curves_))
axes[0].set_ylim(best - 1.5, best + 0.1)
axes[0].set_ylabel("held-out log density (nats/row)")
for ax in axes:
    ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()
