"""Validation-free scorers: ``scorer(fitted_estimator, X_train, y_train)`` by one of the criteria
(:func:`make_bound_scorer` lists them), for :class:`~sklearn.model_selection.GridSearchCV` with the
all-data split::

    GridSearchCV(estimator, grid, scoring=make_bound_scorer(), cv=TrainOnlySplit())

(``make_bound_scorer()`` is the block-prequential criterion, :func:`bound_scorer` the bound).
``refit``, ``n_jobs`` and joblib backends (loky, dask, ray) work as for any search.
"""

from ._criteria import BOUND, FORWARD_CHAINING, criterion_for
from ._held_out import BlockPrequential


def bound_scorer(estimator, X, y):
    """Scorer returning ``estimator.score(X, y)``: the bound per sample (higher is better).

    The ``'bound'`` criterion of :func:`make_bound_scorer`. Works for the sklearn_ibvi
    estimators, :class:`~sklearn_ibvi.BoundEarlyStopping` and pipelines ending in one of them.
    Only meaningful when ``X, y`` are the data the estimator was fitted on — use it with
    :class:`TrainOnlySplit`.

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
    return BOUND.score(estimator, X, y)


class BoundScorer:
    """A validation-free scorer: ``scorer(fitted_estimator, X_train, y_train)`` → nats per sample.

    Built by :func:`make_bound_scorer`; a module-level class so that searches pickle it to
    process-based workers (loky, dask, ray).
    """

    def __init__(self, criterion="bound"):
        self.criterion = criterion_for(criterion).spec

    def __repr__(self):
        return f"make_bound_scorer(criterion={self.criterion!r})"

    def __call__(self, estimator, X, y):
        return criterion_for(self.criterion).score(estimator, X, y)


def make_bound_scorer(criterion="block_prequential", *, n_blocks=2, n_orderings=2, random_state=0):
    """A scorer that ranks fitted estimators by a validation-free criterion.

    Use it with :class:`TrainOnlySplit`, so that each candidate is fitted and scored on all the
    training data::

        GridSearchCV(est, grid, scoring=make_bound_scorer("prequential"), cv=TrainOnlySplit())

    Parameters
    ----------
    criterion : {'block_prequential', 'bound', 'prequential', 'partial_cv'} or held-out scheme, default='block_prequential'
        What the scorer returns, in nats per sample (module docstring has the details). The
        default is the validation-free criterion that selects best (:ref:`model_selection_guide`).
        To choose stopping epochs too, and for less compute, use
        :class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV`:

        - ``'bound'``: ``estimator.score(X, y)``, the estimator's lower-bound estimate of
          ``log p(y | X)`` per sample (same as :func:`bound_scorer`);
        - ``'prequential'``: the first epoch's prequential log-likelihood per sample — the
          evidence when predictions are exact Bayesian predictives, otherwise an online
          learner's log-likelihood; free (already in the history);
        - ``'block_prequential'``: forward-chaining log predictive density per coded row, an
          estimate of the learner's conditional evidence. It refits clones of the candidate on
          prefixes of ``X`` (``(1 − 2^{-n_blocks}) × n_orderings`` of a fit: 1.5 at the
          defaults), unless the candidate is a :class:`~sklearn_ibvi.BoundEarlyStopping` that
          already measured it.
        - ``'partial_cv'``: the same on :class:`PartialKFold`'s two of five shuffled folds — it
          holds rows out, like cross-validation, and trains on 80 % of them (1.6 fits). A
          :class:`BlockPrequential` or :class:`PartialKFold` instance selects other blocks or
          folds.
    n_blocks : int, default=2
        For ``'block_prequential'`` (see :class:`BlockPrequential`).
    n_orderings : int, default=2
        For ``'block_prequential'``: row orders averaged.
    random_state : int, default=0
        Row orders of ``'block_prequential'``; fixed, so all candidates code the same blocks.

    Returns
    -------
    scorer : BoundScorer
        ``scorer(estimator, X, y)`` → float, higher is better.
    """
    if isinstance(criterion, str) and criterion == FORWARD_CHAINING.name:
        criterion = BlockPrequential(n_blocks, random_state, n_orderings)
    return BoundScorer(criterion)
