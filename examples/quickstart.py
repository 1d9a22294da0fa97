"""
Quickstart: a neural network with predictive intervals and an evidence bound
============================================================================

Fits :class:`~sklearn_ibvi.IBVIRegressor` on the diabetes data bundled with scikit-learn — raw
features, no scaler: the estimator standardises them itself — and shows what it gives beyond a
point prediction: predictive intervals per row (a learned Student-t noise around each draw of
the weight posterior) whose coverage is checked on held-out rows, and ``score``, the lower bound
on the log marginal likelihood per training sample.

Then it chooses the width, the prior scale and the stopping epoch with
:class:`~sklearn_ibvi.model_selection.EpochwiseGridSearchCV` (5-fold cross-validation that reads
every epoch off one fit per fold) and, without any held-out rows, with
:class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV` (forward chaining on the
training rows), and scores both choices on the test rows.

Run with ``python examples/quickstart.py``.
"""

import warnings

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

from sklearn_ibvi import IBVIRegressor
from sklearn_ibvi.model_selection import (
    BlockPrequentialSearchCV,
    EpochwiseGridSearchCV,
    log_predictive_scorer,
)

X, y = load_diabetes(return_X_y=True, scaled=False)  # raw units: ages in years, blood pressure in mm Hg
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)

# %%
# One fit: a prediction, an interval and a bound
# ----------------------------------------------
model = IBVIRegressor(hidden_layer_sizes=(64,), max_epochs=60, random_state=0).fit(X_train, y_train)
levels = [0.9, 0.95]
mean, intervals = model.predict(X_test, coverage=levels)  # intervals: (rows, lower/upper, level)
rmse = float(np.sqrt(np.mean((mean - y_test) ** 2)))
print(f"test RMSE {rmse:.1f} (the target's standard deviation is {y_test.std():.1f})")
print(f"learned noise: Student-t of scale {model.noise_std_:.1f}, {model.noise_dof_:.3g} degrees of freedom "
      "(large: Gaussian-like residuals; small: heavy tails)")
for i, level in enumerate(levels):
    low, high = intervals[:, 0, i], intervals[:, 1, i]
    covered = np.mean((low <= y_test) & (y_test <= high))
    print(f"central {level:.0%} interval covers {covered:.1%} of the test rows")
print(f"test log predictive density: {log_predictive_scorer(model, X_test, y_test):.3f} nats/row")
print(f"score(X_train, y_train) = {model.score(X_train, y_train):.3f} nats/sample "
      "(the evidence lower bound per training sample)")

# %%
# Choosing the network and its stopping epoch
# -------------------------------------------
grid = {"hidden_layer_sizes": [(16,), (64,)], "prior_scale": [0.5, 1.0]}
searches = {
    "5-fold CV, every epoch": EpochwiseGridSearchCV(IBVIRegressor(max_epochs=60, random_state=0), grid, cv=5),
    "forward chaining": BlockPrequentialSearchCV(IBVIRegressor(max_epochs=60, random_state=0), grid),
}
print()
for name, search in searches.items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a candidate that stops improving early
        search.fit(X_train, y_train)
    chosen = {k: v for k, v in search.best_params_.items() if k != "max_epochs"}
    print(f"{name:>22}: chooses {chosen} at {search.best_params_['max_epochs']} epochs; "
          f"test log predictive density {log_predictive_scorer(search, X_test, y_test):.3f} nats/row")
