"""
Choosing a network and its stopping epoch without a validation set
===================================================================

:class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV` ranks every configuration of a
grid by forward chaining: each candidate is trained on prefixes of the training rows (the
first ``n/4`` and ``n/2`` rows of two random orders) and, after every epoch, predicts the block
that follows its prefix. The log predictive density per coded row estimates the learner's
conditional evidence; its maximum over (configuration, epoch) is the choice, refit once on all
the rows. Successive halving stops the weaker half of the candidates at 1/8, 1/4 and 1/2 of
the epochs: their curves end early in the plot.

Here it chooses the width, the prior scale and the epoch of an
:class:`~sklearn_ibvi.EntropySGDRegressor` on the diabetes data, beside 5-fold
cross-validation over the same widths and priors and three epoch budgets (``GridSearchCV``
retrains for each budget). Both are scored on a held-out test set the selectors never see;
the compute is their wall time.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import EntropySGDRegressor
from sklearn_ibvi.model_selection import BlockPrequentialSearchCV, log_predictive_scorer

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=300, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

estimator = EntropySGDRegressor(max_epochs=100, batch_size=32, noise_std=0.6, random_state=0)
grid = {"hidden_layer_sizes": [(16,), (64,)], "prior_scale": [0.5, 2.0]}

warnings.simplefilter("ignore")  # bound-validity warnings of the refits are kept in their histories
start = time.perf_counter()
search = BlockPrequentialSearchCV(estimator, grid).fit(X_train, y_train)
search_seconds = time.perf_counter() - start

start = time.perf_counter()
cv = GridSearchCV(estimator, {**grid, "max_epochs": [25, 50, 100]}, scoring=log_predictive_scorer, cv=5)
cv.fit(X_train, y_train)
cv_seconds = time.perf_counter() - start

for name, selector, seconds in [("forward chaining", search, search_seconds), ("5-fold CV", cv, cv_seconds)]:
    params = selector.best_params_
    print(
        f"{name:>16}: width {params['hidden_layer_sizes'][0]:>3}, prior scale {params['prior_scale']}, "
        f"{params['max_epochs']:>3} epochs; test log predictive density "
        f"{log_predictive_scorer(selector.best_estimator_, X_test, y_test):.3f} nats/row; {seconds:.1f} s"
    )

# %%
# The criterion of every candidate after every epoch, and its chosen epoch.
fig, ax = plt.subplots(figsize=(6.4, 3.8))
epochs = np.arange(1, search.criterion_curves_.shape[1] + 1)
for params, curve in zip(search.cv_results_["params"], search.criterion_curves_):
    label = f"width {params['hidden_layer_sizes'][0]}, prior scale {params['prior_scale']}"
    ax.plot(epochs, curve, label=label)
ax.axvline(search.best_epoch_, color="k", ls=":", label=f"chosen: epoch {search.best_epoch_}")
ax.set_xlabel("epoch")
ax.set_ylabel("forward-chaining log density (nats/row)")
ax.set_ylim(np.nanmax(search.criterion_curves_) - 1.5, np.nanmax(search.criterion_curves_) + 0.1)
ax.legend(fontsize=8)
ax.set_title("BlockPrequentialSearchCV on diabetes (300 training rows)")
fig.tight_layout()
plt.show()
