"""Searches that score every candidate on held-out rows after every epoch of one fit per split.

Such a search chooses a configuration *and* its stopping epoch from the same fits, can drop
candidates on their early curves (successive halving over epochs), and refits the winner once.
The splits are cross-validation folds (:class:`EpochwiseGridSearchCV`) or forward-chaining
blocks (:class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV`).
"""

import math
import time
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import check_is_fitted

from ._epoch_curves import (
    HeldOutRun,
    advance,
    final_estimator,
    final_parameter_prefix,
    for_held_out_scoring,
)
from ._held_out import HeldOutScheme
from ._predictive import log_predictive_scorer
from ..exceptions import warn_at_caller


def _epochs_parameter(estimator):
    """The name of the parameter that sets the training epochs of ``estimator`` (or its pipeline)."""
    final_estimator(estimator)
    return final_parameter_prefix(estimator) + "max_epochs"


#: Successive halving trains every candidate to these fractions of its epochs, keeping the
#: better half of the candidates after each stage but the last.
HALVING_STAGES = (1 / 8, 1 / 4, 1 / 2, 1.0)


def _held_out_curve(parts, runs):
    """A candidate's curve from its splits' curves ``parts``: their summed log densities per
    held-out row, ``-inf`` where a prediction was not a number (over the epochs every split has
    trained)."""
    epochs = min(len(part) for part in parts)
    curve = sum(part[:epochs] for part in parts) / sum(len(run.held_out) for run in runs)
    return np.where(np.isnan(curve), -np.inf, curve)


def _best_so_far(runs):
    """The candidate's best criterion over the epochs trained (``-inf`` if a split failed)."""
    if any(run.error is not None for run in runs):
        return -np.inf
    return float(np.max(_held_out_curve([run.curve for run in runs], runs)))


class _EpochwiseSearch(BaseSearchCV):
    """Base of the epochwise searches: subclasses say which rows each split trains on and scores
    (``_held_out_splits``); the rest — staged training, successive halving, results, refit — is here."""

    _parameter_constraints = {
        "estimator": "no_validation",
        "param_grid": [dict, list],
        "successive_halving": ["boolean"],
        "refit": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "pre_dispatch": [Integral, str],
        "error_score": [StrOptions({"raise"}), Real],
    }

    def __init__(
        self, estimator, param_grid, *, successive_halving, refit, n_jobs, verbose, pre_dispatch, error_score, cv=None
    ):
        super().__init__(
            estimator=estimator,
            scoring=None,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=False,
        )
        self.param_grid = param_grid
        self.successive_halving = successive_halving

    def fit(self, X, y):
        """Score every candidate on its splits epoch by epoch, keep the best (candidate, epoch), refit it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Training targets.

        Returns
        -------
        self : object
        """
        self._validate_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} needs targets y: the held-out rows are scored by their density.")
        epochs_name = _epochs_parameter(self.estimator)
        candidates = list(ParameterGrid(self.param_grid))
        splits = self._held_out_splits(X, y)
        runs = [[HeldOutRun(self._candidate(p, held_out=True), *split) for split in splits] for p in candidates]
        parallel = Parallel(n_jobs=self.n_jobs, verbose=self.verbose, pre_dispatch=self.pre_dispatch)
        alive = np.arange(len(candidates))
        fractions = HALVING_STAGES if self.successive_halving else (1.0,)
        for fraction in fractions:
            tasks = [(c, s) for c in alive for s in range(len(splits))]
            advanced = parallel(
                delayed(advance)(runs[c][s], X, y, max(1, math.ceil(fraction * runs[c][s].budget)), self.error_score)
                for c, s in tasks
            )
            for (c, s), run in zip(tasks, advanced):
                runs[c][s] = run
            if fraction < 1:  # keep the better half, by the best value each has reached so far
                reached = np.array([_best_so_far(runs[c]) for c in alive])
                alive = np.sort(alive[np.argsort(-reached, kind="stable")[: math.ceil(len(alive) / 2)]])
        self._record_results(candidates, runs)
        confirmed = self._confirm(X, y, candidates, runs, alive)
        if confirmed is None:
            best = self.best_index_
            self.best_epoch_ = self._refit_epoch(runs[best])
        else:  # another search chose among the finalists: its candidate, its epoch
            best, self.best_epoch_ = confirmed
            self.best_index_ = best
            self.best_score_ = float(self.cv_results_["mean_test_score"][best])
            self.peak_epoch_ = int(self.cv_results_["best_epoch"][best])
        self.best_params_ = {**candidates[best], epochs_name: self.best_epoch_}
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = self._candidate(self.best_params_, held_out=False).fit(X, y)
            self.refit_time_ = time.perf_counter() - start
        self.scorer_ = log_predictive_scorer
        self.multimetric_ = False
        self.n_splits_ = len(splits)
        return self

    def _refit_epoch(self, split_runs):
        """The epochs the refit trains: the chosen candidate's peak."""
        return self.peak_epoch_

    def _confirm(self, X, y, candidates, runs, finalists):
        """``None`` to keep the criterion's choice, or ``(candidate index, epochs)`` chosen
        another way among the ``finalists`` (the candidates trained to the end)."""
        return None

    def _candidate(self, params, held_out):
        learner = clone(self.estimator).set_params(**{k: clone(v, safe=False) for k, v in params.items()})
        return for_held_out_scoring(learner) if held_out else learner

    def _record_results(self, candidates, runs):
        n_candidates, n_splits = len(candidates), len(runs[0])
        longest = max(run.budget for split_runs in runs for run in split_runs)
        curves = np.full((n_candidates, longest), np.nan)
        split_scores = np.full((n_candidates, n_splits), np.nan)
        fit_times = np.array([[run.training_seconds for run in split_runs] for split_runs in runs])
        trained = np.array([min(run.run.epochs for run in split_runs) for split_runs in runs])
        best_epochs = np.ma.masked_all(n_candidates, dtype=int)
        failures = []
        for c, split_runs in enumerate(runs):
            errors = [run.error for run in split_runs if run.error is not None]
            if errors:
                failures.append(f"{candidates[c]}: {errors[0]}")
                continue
            parts = [run.curve for run in split_runs]
            curve = _held_out_curve(parts, split_runs)
            curves[c, : len(curve)] = curve
            epoch = int(np.argmax(curve))
            best_epochs[c] = epoch + 1
            split_scores[c] = [part[epoch] / len(run.held_out) for part, run in zip(parts, split_runs)]
        if len(failures) == n_candidates:
            raise ValueError(f"Every candidate failed to train on its splits; the first: {failures[0]}")
        if failures:
            warn_at_caller(
                f"{len(failures)} of {n_candidates} candidates failed to train on a split and were scored "
                f"error_score={self.error_score!r}; the first: {failures[0]}",
                FitFailedWarning,
            )
        failed = np.ma.getmaskarray(best_epochs)
        scores = np.max(np.where(np.isnan(curves), -np.inf, curves), axis=1)
        if failed.any():  # then error_score is a number: 'raise' raised in advance
            scores[failed] = self.error_score
        ranking = np.where(np.isfinite(scores), scores, -np.inf)
        order = np.argsort(-ranking, kind="stable")
        ranks = np.empty(n_candidates, dtype=np.int32)
        ranks[order] = np.arange(1, n_candidates + 1)
        for i in range(1, n_candidates):  # ties share the better rank, as in GridSearchCV
            if ranking[order[i]] == ranking[order[i - 1]]:
                ranks[order[i]] = ranks[order[i - 1]]
        with np.errstate(invalid="ignore"):  # a candidate that scores some split at -inf: std NaN
            spread = split_scores.std(axis=1)
        results = {
            "mean_fit_time": fit_times.mean(1),
            "std_fit_time": fit_times.std(1),
            "params": candidates,
            "mean_test_score": scores,
            "std_test_score": spread,
            "rank_test_score": ranks,
            "best_epoch": best_epochs,
            "n_epochs_trained": trained,
        }
        for i in range(n_splits):
            results[f"split{i}_test_score"] = split_scores[:, i]
        for name in sorted({name for params in candidates for name in params}):
            column = np.ma.masked_all(n_candidates, dtype=object)
            for c, params in enumerate(candidates):
                if name in params:
                    column[c] = params[name]
            results[f"param_{name}"] = column
        self.cv_results_ = results
        self.criterion_curves_ = curves
        self.best_index_ = int(order[0])
        self.best_score_ = float(scores[self.best_index_])
        self.peak_epoch_ = int(best_epochs[self.best_index_])

    def _held_out_splits(self, X, y):
        """``[(train_indices, held_out_indices), …]``: the rows each candidate trains on and scores."""
        raise NotImplementedError

    def predict(self, X, **predict_params):
        """Predict with the refitted best estimator; regressors take ``return_std=True``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        **predict_params : dict
            Passed to ``best_estimator_.predict`` (e.g. ``return_std=True`` for a regressor).

        Returns
        -------
        y_pred : ndarray, or tuple ``(mean, std)`` with ``return_std=True``
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X, **predict_params)

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        raise NotImplementedError(f"{type(self).__name__}.fit scores candidates epoch by epoch, not through _run_search.")


class EpochwiseGridSearchCV(_EpochwiseSearch):
    """Cross-validation that chooses a configuration *and* its stopping epoch from one fit per
    fold; refit once.

    For every candidate of ``param_grid`` a clone of ``estimator`` is trained on each
    cross-validation fold (bound tracking off) and, after every epoch, scores the fold's held-out
    rows by their mean log predictive density: ``GridSearchCV`` with
    :func:`~sklearn_ibvi.model_selection.log_predictive_scorer` over every ``max_epochs`` at
    once. The search keeps the best (candidate, epoch) and refits that candidate on all rows for
    that many epochs. This is the package's recommended selection method for every estimator
    and data size. Read more in the :ref:`User Guide <epochwise_cv>`.

    Parameters
    ----------
    estimator : sklearn_ibvi estimator, or a Pipeline ending in one
        Its ``max_epochs`` (or a ``max_epochs`` in ``param_grid``) is the epoch budget.
    param_grid : dict or list of dicts
        As for :class:`~sklearn.model_selection.GridSearchCV`.
    cv : int, cross-validation generator, iterable or held-out scheme, default=5
        As for :class:`~sklearn.model_selection.GridSearchCV` (an int is unshuffled k-fold), or
        a held-out scheme such as :class:`~sklearn_ibvi.model_selection.PartialKFold`.
    successive_halving : bool, default=False
        Train all candidates for part of their epochs and only the better half onward at each
        stage: less compute, but candidates that start slowly are dropped, and the selection
        loses to full cross-validation. See :ref:`epochwise_cv`.
    refit : bool, default=True
        Refit the chosen candidate on all rows for the chosen number of epochs
        (``best_estimator_``).
    n_jobs : int, default=None
        Fold fits run in parallel (any joblib backend: loky, dask, ray).
    verbose : int, default=0
        Controls the verbosity of the search.
    pre_dispatch : int or str, default='2*n_jobs'
        Jobs dispatched during parallel execution, as in scikit-learn's searches.
    error_score : 'raise' or float, default=np.nan
        Score of a candidate whose fold fit fails, with a ``FitFailedWarning``; ``'raise'``
        re-raises the error.

    Attributes
    ----------
    cv_results_ : dict of arrays
        ``params``, ``param_<name>``, ``mean_test_score`` (the candidate's criterion at its best
        epoch, nats per held-out row), ``std_test_score`` and ``split<i>_test_score`` (per fold),
        ``rank_test_score``, ``best_epoch``, ``n_epochs_trained`` (fewer than the budget for the
        candidates successive halving dropped), ``mean_fit_time``, ``std_fit_time`` (per fold).
    criterion_curves_ : ndarray of shape (n_candidates, max_epochs)
        Every candidate's criterion after every epoch (NaN past the epochs it trained, or for
        failures).
    best_index_ : int
    best_epoch_ : int
        The chosen epoch, counting from 1.
    peak_epoch_ : int
        The same (the criterion's peak; the forward-chaining search may refit elsewhere).
    best_params_ : dict
        The chosen candidate's parameters, with ``max_epochs`` set to ``best_epoch_``.
    best_score_ : float
        Its criterion, nats per held-out row.
    best_estimator_ : estimator
        The refit model (``refit=True``).
    refit_time_ : float
    n_splits_ : int
        Folds (or held-out splits of the scheme).
    scorer_ : callable
        :func:`~sklearn_ibvi.model_selection.log_predictive_scorer`: ``score(X, y)`` is the refit
        model's mean log predictive density of ``(X, y)`` (held-out rows).

    See Also
    --------
    BlockPrequentialSearchCV : The same search on forward-chaining blocks of the training rows.
    sklearn.model_selection.HalvingGridSearchCV : Successive halving that refits from scratch
        at each resource level.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_ibvi import EntropySGDClassifier
    >>> from sklearn_ibvi.model_selection import EpochwiseGridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = EpochwiseGridSearchCV(
    ...     EntropySGDClassifier(max_epochs=20, random_state=0),
    ...     {"hidden_layer_sizes": [(8,), (32,)], "prior_scale": [0.5, 1.0]}, cv=3,
    ... ).fit(X, y)
    >>> search.n_splits_, search.best_params_["max_epochs"] == search.best_epoch_
    (3, True)
    """

    _parameter_constraints = {
        **_EpochwiseSearch._parameter_constraints,
        "cv": ["cv_object", HeldOutScheme],
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        cv=5,
        successive_halving=False,
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
            cv=cv,
        )

    def _held_out_splits(self, X, y):
        classifier = is_classifier(self.estimator)
        if isinstance(self.cv, HeldOutScheme):
            return self.cv.held_out_splits(y, classifier)
        return list(check_cv(self.cv, y, classifier=classifier).split(X, y))
