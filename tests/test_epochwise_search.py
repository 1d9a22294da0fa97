"""Fitted epochwise searches used as the estimators they refit."""

import numpy as np
from sklearn.datasets import load_diabetes

from sklearn_ibvi import IBVIRegressor
from sklearn_ibvi.model_selection import EpochwiseGridSearchCV, log_predictive_scorer


def test_a_fitted_regression_search_predicts_with_std_and_is_scored_by_log_predictive_density():
    """search.predict(X, return_std=True) reaches the refitted regressor, and the log-predictive
    scorer accepts the search object itself (it scores its best estimator)."""
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:120], y[:120]
    search = EpochwiseGridSearchCV(
        IBVIRegressor(hidden_layer_sizes=(8,), max_epochs=3, random_state=0),
        {"prior_scale": [0.5, 1.0]}, cv=2,
    ).fit(X, y)
    mean, std = search.predict(X, return_std=True)
    expected_mean, expected_std = search.best_estimator_.predict(X, return_std=True)
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(std, expected_std)
    assert log_predictive_scorer(search, X, y) == log_predictive_scorer(search.best_estimator_, X, y)
