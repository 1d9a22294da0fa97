"""Model selection from the training data alone: the bound as a scorer, and a no-hold-out splitter.

Every estimator's ``score(X, y)`` is a per-sample bound on (or estimate of) ``log p(y | X)`` of the
data it was fitted on. Scoring each candidate on its own training data therefore ranks
configurations by evidence, without a validation set::

    GridSearchCV(estimator, grid, scoring=bound_scorer, cv=TrainOnlySplit())

``refit``, ``n_jobs`` and joblib backends (loky, dask, ray) work as for any search.
How well each criterion selects, measured against cross-validation, is in the documentation's
model-selection study — read it before trusting a criterion on your problem.
"""

import numpy as np
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils.validation import _num_samples


class TrainOnlySplit(BaseCrossValidator):
    """A single "split" whose train and test sets are both all the samples.

    With :func:`bound_scorer` this makes ``GridSearchCV``/``RandomizedSearchCV`` fit every
    candidate once on all the data and score it by its bound on that same data.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ibvi.model_selection import TrainOnlySplit
    >>> [(train.tolist(), test.tolist()) for train, test in TrainOnlySplit().split(np.zeros((3, 1)))]
    [([0, 1, 2], [0, 1, 2])]
    """

    def split(self, X, y=None, groups=None):
        """Yield ``(all_indices, all_indices)`` once.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y, groups : ignored

        Yields
        ------
        train, test : ndarray
            Both ``arange(n_samples)``.
        """
        indices = np.arange(_num_samples(X))
        yield indices, indices

    def get_n_splits(self, X=None, y=None, groups=None):
        """Always 1."""
        return 1

    def _iter_test_indices(self, X=None, y=None, groups=None):
        yield np.arange(_num_samples(X))


def bound_scorer(estimator, X, y):
    """Scorer returning ``estimator.score(X, y)``: the bound per sample (higher is better).

    Works for the sklearn_ibvi estimators, :class:`~sklearn_ibvi.BoundEarlyStopping` and
    pipelines ending in one of them. Only meaningful when ``X, y`` are the data the estimator was
    fitted on — use it with :class:`TrainOnlySplit`.

    Parameters
    ----------
    estimator : fitted estimator with a bound ``score``
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)

    Returns
    -------
    score : float
        Nats per sample.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sklearn_ibvi import EntropySGDClassifier
    >>> from sklearn_ibvi.model_selection import TrainOnlySplit, bound_scorer
    >>> X, y = load_iris(return_X_y=True)
    >>> search = GridSearchCV(
    ...     EntropySGDClassifier(max_epochs=10, random_state=0),
    ...     {"hidden_layer_sizes": [(8,), (32,)]}, scoring=bound_scorer, cv=TrainOnlySplit(),
    ... ).fit(X, y)
    >>> sorted(search.best_params_)
    ['hidden_layer_sizes']
    """
    return estimator.score(X, y)
