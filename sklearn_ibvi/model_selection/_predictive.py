"""Log predictive densities of fitted estimators on rows they did not train on."""

import math

import numpy as np
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import column_or_1d


def predictive_log_likelihood(estimator, X, y):
    """Log predictive density of each ``(x, y)`` under a fitted estimator (nats per row).

    Classifiers: ``log predict_proba(X)[i, y_i]``. This package's regressors: the exact density of
    their predictive mixture over posterior samples, with their observation noise (Gaussian or
    Student-t). Other regressors: the Gaussian with the mean and standard deviation of
    ``predict(X, return_std=True)``. Works for pipelines, fitted searches (their
    ``best_estimator_``) and :class:`~sklearn_ibvi.BoundEarlyStopping`.

    Parameters
    ----------
    estimator : fitted estimator
        A classifier with ``predict_proba``, or a regressor with ``predict(X, return_std=True)``.
    X : array-like of shape (n_samples, n_features)
        Held-out inputs.
    y : array-like of shape (n_samples,)
        Held-out targets.

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
        Nats per row.
    """
    y = column_or_1d(np.asarray(y))
    # A fitted search (scikit-learn's or this package's) predicts with its refitted best estimator.
    estimator = getattr(estimator, "best_estimator_", estimator)
    if hasattr(estimator, "predict_proba") and is_classifier(estimator):
        proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        classes = list(estimator.classes_)
        columns = np.array([classes.index(label) if label in classes else -1 for label in y])
        with np.errstate(divide="ignore"):
            log_proba = np.log(proba[np.arange(len(y)), np.maximum(columns, 0)])
        return np.where(columns >= 0, log_proba, -np.inf)
    final, final_X = final_estimator(estimator, X)
    if hasattr(final, "_log_predictive_density"):
        return final._log_predictive_density(final_X, y)
    mean, std = estimator.predict(X, return_std=True)
    residual = (y.astype(np.float64) - mean) / std
    return -0.5 * residual**2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def final_estimator(estimator, X=None):
    """The fitted estimator inside pipelines and BoundEarlyStopping, with ``X`` (when given) as it
    sees it: transformed by the pipelines' earlier steps."""
    while True:
        if isinstance(estimator, Pipeline):
            X = None if X is None else estimator[:-1].transform(X)
            estimator = estimator[-1]
        elif hasattr(estimator, "estimator_") and hasattr(estimator, "best_epoch_"):
            estimator = estimator.estimator_
        else:
            return estimator, X


def log_predictive_scorer(estimator, X, y):
    """Mean log predictive density of held-out ``(X, y)``, nats per sample (higher is better).

    The scorer for cross-validating these estimators: their ``score`` is a bound on the
    *training* evidence and means nothing on held-out rows. For classifiers it equals
    ``-log_loss``; for regressors it is the predictive log density.

    Parameters
    ----------
    estimator : fitted estimator
        A classifier with ``predict_proba``, or a regressor with ``predict(X, return_std=True)``.
    X : array-like of shape (n_samples, n_features)
        Held-out inputs.
    y : array-like of shape (n_samples,)
        Held-out targets.

    Returns
    -------
    score : float
        Nats per sample.
    """
    return float(np.mean(predictive_log_likelihood(estimator, X, y)))

