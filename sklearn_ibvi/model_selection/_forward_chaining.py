"""Forward chaining (block prequential) as a search: choose a configuration *and* its stopping
epoch on the blocks of :class:`~sklearn_ibvi.model_selection.BlockPrequential` (an epochwise search on
the blocks), then refit once on all the rows.
"""

from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils._param_validation import Interval, StrOptions

from ._epochwise_search import EpochwiseGridSearchCV, _EpochwiseSearch, _held_out_curve
from ._held_out import BlockPrequential, shuffled_folds


def block_prequential_log_likelihood(estimator, X, y, n_blocks=2, random_state=0, *, n_orderings=2):
    """Forward-chaining log-likelihood of a learner, nats per coded row.

    ``BlockPrequential(n_blocks, random_state, n_orderings).log_likelihood(estimator, X, y)``:
    see :class:`BlockPrequential` and :ref:`forward_chaining`.

    Parameters
    ----------
    estimator : estimator with ``predict_proba`` (classifier) or ``predict(X, return_std=True)``
        The unfitted learner, cloned and fitted on every prefix.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,)
        Targets.
    n_blocks : int, default=2
        Coded blocks per ordering.
    random_state : int, default=0
        Seeds the row orders.
    n_orderings : int, default=2
        Random row orders whose log-likelihoods are averaged.

    Returns
    -------
    log_likelihood : float
        Log predictive density of the coded rows, nats per row.
    """
    return BlockPrequential(n_blocks, random_state, n_orderings).log_likelihood(estimator, X, y)


# -- the search ----------------------------------------------------------------------------------


class BlockPrequentialSearchCV(_EpochwiseSearch):
    """Choose a configuration and its stopping epoch by forward chaining; refit once.

    For every candidate of ``param_grid`` a clone of ``estimator`` is trained on each prefix of
    :class:`BlockPrequential` and, after every epoch, scores the block that follows its prefix.
    A candidate's criterion at epoch ``e`` is the log predictive density per coded row, an
    estimate of its conditional evidence from the training data alone. The search keeps the best
    (candidate, epoch) and refits that candidate on all the rows. A candidate costs a fraction of
    the fits 5-fold cross-validation needs. Read more in the :ref:`User Guide <forward_chaining>`.

    Parameters
    ----------
    estimator : sklearn_ibvi estimator, or a Pipeline ending in one
        Its ``max_epochs`` (or a ``max_epochs`` in ``param_grid``) is the epoch budget.
    param_grid : dict or list of dicts
        As for :class:`~sklearn.model_selection.GridSearchCV`.
    n_blocks : int, default=2
        Coded blocks per ordering: with 2, prefixes of ``n/4`` and ``n/2`` rows code the next
        ``n/4`` and ``n/2``. See :ref:`forward_chaining`.
    n_orderings : int, default=2
        Random row orders whose criteria are averaged: less variance, proportionally more compute.
    successive_halving : bool, default=True
        Train all candidates for part of their epochs and only the better half onward at each
        stage, which cuts the compute. See :ref:`forward_chaining`.
    stopping_epoch : {'scaled', 'peak'}, default='scaled'
        The epochs of the refit: where the chosen candidate's criterion peaks (``'peak'``), or
        that peak corrected for the prefixes' size (``'scaled'``). See :ref:`forward_chaining`.
    random_state : int, default=0
        Seeds the row orders; every candidate codes the same blocks.
    tie_break_cv : int, cross-validation generator or None, default=None
        If the orderings disagree on the better of the two finalists, cross-validation with these
        folds chooses between them (an int ``k`` is shuffled ``k``-fold). See :ref:`forward_chaining`.
    refit : bool, default=True
        Refit the chosen candidate on all rows for the chosen number of epochs
        (``best_estimator_``).
    n_jobs : int, default=None
        Prefix fits run in parallel (any joblib backend: loky, dask, ray).
    verbose : int, default=0
        Controls the verbosity of the search.
    pre_dispatch : int or str, default='2*n_jobs'
        Jobs dispatched during parallel execution, as in scikit-learn's searches.
    error_score : 'raise' or float, default=np.nan
        Score of a candidate whose prefix fit fails, with a ``FitFailedWarning``; ``'raise'``
        re-raises the error.

    Attributes
    ----------
    cv_results_ : dict of arrays
        ``params``, ``param_<name>``, ``mean_test_score`` (the candidate's criterion at its best
        epoch, nats per coded row), ``std_test_score`` and ``split<i>_test_score`` (per block),
        ``rank_test_score``, ``best_epoch``, ``n_epochs_trained`` (fewer than the budget for the
        candidates successive halving dropped), ``mean_fit_time``, ``std_fit_time`` (per prefix).
    criterion_curves_ : ndarray of shape (n_candidates, max_epochs)
        Every candidate's criterion after every epoch (NaN past the epochs it trained, or for
        failures).
    best_index_ : int
    best_epoch_ : int
        The epochs of the refit (``stopping_epoch``), counting from 1.
    peak_epoch_ : int
        The epoch where the chosen candidate's criterion peaks.
    tie_break_ : dict or None
        With ``tie_break_cv``: ``finalists``, ``ordering_gaps`` (nats per coded row) and
        ``search`` (the fitted ``EpochwiseGridSearchCV``, ``None`` where the orderings agreed).
    best_params_ : dict
        The chosen candidate's parameters, with ``max_epochs`` set to ``best_epoch_``.
    best_score_ : float
        Its criterion, nats per coded row.
    best_estimator_ : estimator
        The refit model (``refit=True``).
    refit_time_ : float
    n_splits_ : int
        Coded blocks per candidate (``n_blocks × n_orderings``).
    scorer_ : callable
        :func:`~sklearn_ibvi.model_selection.log_predictive_scorer`: ``score(X, y)`` is the refit
        model's mean log predictive density of ``(X, y)`` (held-out rows).

    See Also
    --------
    sklearn_ibvi.BoundEarlyStopping : Early stopping by the same criterion for one configuration.
    ScreenedGridSearchCV : Forward chaining screens, cross-validation confirms.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_ibvi import EntropySGDClassifier
    >>> from sklearn_ibvi.model_selection import BlockPrequentialSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = BlockPrequentialSearchCV(
    ...     EntropySGDClassifier(max_epochs=20, random_state=0),
    ...     {"hidden_layer_sizes": [(8,), (32,)], "prior_scale": [0.5, 1.0]},
    ... ).fit(X, y)
    >>> sorted(search.best_params_)
    ['hidden_layer_sizes', 'max_epochs', 'prior_scale']
    >>> search.best_params_["max_epochs"] == search.best_epoch_
    True
    """

    _parameter_constraints = {
        **_EpochwiseSearch._parameter_constraints,
        "n_blocks": [Interval(Integral, 1, None, closed="left")],
        "n_orderings": [Interval(Integral, 1, None, closed="left")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "stopping_epoch": [StrOptions({"scaled", "peak"})],
        "tie_break_cv": ["cv_object", None],
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        n_blocks=2,
        n_orderings=2,
        successive_halving=True,
        stopping_epoch="scaled",
        random_state=0,
        tie_break_cv=None,
        refit=True,
        n_jobs=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
    ):
        super().__init__(
            estimator,
            param_grid,
            successive_halving=successive_halving,
            refit=refit,
            n_jobs=n_jobs,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
        )
        self.n_blocks = n_blocks
        self.n_orderings = n_orderings
        self.stopping_epoch = stopping_epoch
        self.random_state = random_state
        self.tie_break_cv = tie_break_cv

    def _scheme(self):
        return BlockPrequential(self.n_blocks, self.random_state, self.n_orderings)

    def _refit_epoch(self, split_runs):
        if self.stopping_epoch == "peak" or self.n_blocks < 2:
            return self.peak_epoch_
        return self._scheme().scaled_epoch([run.curve for run in split_runs])

    def _held_out_splits(self, X, y):
        if self.tie_break_cv is not None and self.n_orderings < 2:
            raise ValueError(
                f"tie_break_cv asks whether the row orderings agree; n_orderings={self.n_orderings} "
                "gives one ordering. Use n_orderings >= 2."
            )
        return self._scheme().blocks(y, classifier=is_classifier(self.estimator))

    def _confirm(self, X, y, candidates, runs, finalists):
        """The orderings guard (``tie_break_cv``)."""
        self.tie_break_ = None
        scores = self.cv_results_["mean_test_score"]
        finalists = [c for c in finalists if np.isfinite(scores[c])]
        if self.tie_break_cv is None or len(finalists) < 2:
            return None
        first, second = sorted(finalists, key=lambda c: -scores[c])[:2]
        k = self.n_blocks
        gaps = np.array(
            [
                _ordering_peak(runs[first][o * k : (o + 1) * k]) - _ordering_peak(runs[second][o * k : (o + 1) * k])
                for o in range(self.n_orderings)
            ]
        )
        self.tie_break_ = {"finalists": (first, second), "ordering_gaps": gaps, "search": None}
        if orderings_agree(gaps):
            return None
        pair = [{name: [value] for name, value in candidates[c].items()} for c in (first, second)]
        search = EpochwiseGridSearchCV(
            self.estimator,
            pair,
            cv=shuffled_folds(self.tie_break_cv, is_classifier(self.estimator), self.random_state),
            successive_halving=False,
            refit=False,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
            pre_dispatch=self.pre_dispatch,
            error_score=self.error_score,
        ).fit(X, y)
        self.tie_break_["search"] = search
        return (first, second)[search.best_index_], search.best_epoch_


def orderings_agree(gaps):
    """Whether every ordering puts the same finalist first: its per-ordering gaps (first's peak
    criterion minus second's) all positive or all negative. A zero gap is a disagreement."""
    gaps = np.asarray(gaps)
    return bool(np.all(gaps > 0) or np.all(gaps < 0))


def _ordering_peak(split_runs):
    """One ordering's criterion at its peak: its blocks' log density per coded row."""
    return float(np.max(_held_out_curve([run.curve for run in split_runs], split_runs)))
