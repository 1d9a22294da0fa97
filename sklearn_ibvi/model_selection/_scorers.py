"""Validation-free scorers: ``scorer(fitted_estimator, X_train, y_train)`` by one of the criteria
(see :ref:`selection_criteria`), for :class:`~sklearn.model_selection.GridSearchCV` with the
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

    Read more in the :ref:`User Guide <bound_selection>`.

    Parameters
    ----------
    estimator : fitted estimator with a bound ``score``
        An sklearn_ibvi estimator, a BoundEarlyStopping or a pipeline ending in one.
    X : array-like of shape (n_samples, n_features)
        The training inputs.
    y : array-like of shape (n_samples,)
        The training targets.

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

    Parameters
    ----------
    criterion : str or held-out scheme, default='bound'
        The criterion scored, as for :func:`make_bound_scorer`. See :ref:`selection_criteria`.
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

    To choose stopping epochs too, and for less compute, use
    :class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV`.
    Read more in the :ref:`User Guide <bound_selection>`.

    Parameters
    ----------
    criterion : {'block_prequential', 'bound', 'prequential', 'cv', 'partial_cv'} or held-out scheme, default='block_prequential'
        What the scorer returns, in nats per sample: the bound, the prequential or forward-chaining
        log-likelihood, or the held-out log density of five (or two of five) folds; a held-out
        scheme sets other splits.
        See :ref:`selection_criteria`.
    n_blocks : int, default=2
        For ``'block_prequential'``: coded blocks per ordering (see :class:`BlockPrequential`).
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
