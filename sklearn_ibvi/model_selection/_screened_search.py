"""Screened grid search: a validation-free criterion screens the grid, cross-validation
confirms the best few."""

import copy
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import ParameterGrid
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils.parallel import Parallel, delayed

from ._criteria import criterion_for
from ._held_out import HeldOutScheme
from ._predictive import log_predictive_scorer


def _screening_score(estimator, X, y, criterion):
    """Fit only what the criterion needs (one epoch for the prequential, the prefixes for
    forward chaining) and score; ``-inf`` if training diverged."""
    try:
        return criterion.screen(estimator, X, y)
    except ArithmeticError:  # training diverged (TrainingDivergedError): screened out
        return -np.inf


class ScreenedGridSearchCV(BaseSearchCV):
    """Grid search that screens every candidate with a validation-free criterion, then
    cross-validates only the best few.

    Stage 1 fits each candidate once on all the data and scores it by ``criterion``. Stage 2 is
    an ordinary cross-validated grid search over the ``n_survivors`` best candidates, with
    ``scoring``; ``refit`` refits the winner on all the data. Candidates with equal screening
    scores survive or fall together, so parameters the criterion cannot see are left to
    cross-validation. Screening by forward chaining keeps cross-validation's choice at a fraction
    of its compute. Read more in the :ref:`User Guide <selection_rule>`.

    Parameters
    ----------
    estimator : estimator
        The estimator whose grid is searched.
    param_grid : dict or list of dicts
        As for :class:`~sklearn.model_selection.GridSearchCV`.
    criterion : {'block_prequential', 'prequential', 'bound', 'cv', 'partial_cv'} or held-out scheme, default='block_prequential'
        The screening criterion; ``'prequential'`` is cheaper but tends to discard the best
        regression configurations. See :ref:`selection_criteria`.
    n_survivors : int, default=3
        Candidates (distinct screening scores) kept for cross-validation.
    scoring : str, callable or None, default=None
        Cross-validation score; ``None`` means :func:`log_predictive_scorer`.
    cv, refit, n_jobs, verbose, pre_dispatch, error_score, return_train_score
        As for :class:`~sklearn.model_selection.GridSearchCV`; ``n_jobs`` also parallelises the
        screening fits.

    Attributes
    ----------
    screening_results_ : dict of arrays
        ``params``, ``screening_score`` (nats per sample) and ``survived`` for every candidate.
    cv_results_, best_estimator_, best_params_, best_score_, best_index_, n_splits_, refit_time_
        As for :class:`~sklearn.model_selection.GridSearchCV`, over the survivors.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_ibvi import EntropySGDClassifier
    >>> from sklearn_ibvi.model_selection import ScreenedGridSearchCV
    >>> X, y = load_iris(return_X_y=True)
    >>> search = ScreenedGridSearchCV(
    ...     EntropySGDClassifier(max_epochs=5, batch_size=16, entropy=None, random_state=0),
    ...     {"hidden_layer_sizes": [(4,), (16,), (64,)]}, criterion="prequential", n_survivors=2, cv=3,
    ... ).fit(X, y)
    >>> int(search.screening_results_["survived"].sum())
    2
    """

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        criterion="block_prequential",
        n_survivors=3,
        scoring=None,
        cv=5,
        refit=True,
        n_jobs=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_grid = param_grid
        self.criterion = criterion
        self.n_survivors = n_survivors

    _parameter_constraints = {
        **BaseSearchCV._parameter_constraints,
        "param_grid": [dict, list],
        "criterion": [str, HeldOutScheme],
        "n_survivors": [Integral],
    }

    def fit(self, X, y=None, **params):
        """Screen every candidate on all of ``(X, y)``, then cross-validate the survivors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Training targets.
        **params : dict
            Passed to the estimator's ``fit`` in the cross-validation stage.

        Returns
        -------
        self : object
        """
        if self.n_survivors < 1:
            raise ValueError(f"n_survivors must be at least 1, got {self.n_survivors}.")
        self._screening_data = (X, y)
        try:
            return super().fit(X, y, **params)
        finally:
            del self._screening_data

    def _get_scorers(self):
        if self.scoring is None:
            return log_predictive_scorer, "score"
        return super()._get_scorers()

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        X, y = self._screening_data
        criterion = criterion_for(self.criterion)
        candidates = list(ParameterGrid(self.param_grid))
        scores = Parallel(n_jobs=self.n_jobs, verbose=self.verbose, pre_dispatch=self.pre_dispatch)(
            delayed(_screening_score)(clone(self.estimator).set_params(**copy.deepcopy(p)), X, y, criterion)
            for p in candidates
        )
        scores = np.asarray(scores, dtype=float)
        distinct = np.unique(scores[np.isfinite(scores)])[::-1]
        if len(distinct) == 0:
            raise ValueError("Every candidate failed the screening (non-finite criterion).")
        cutoff = distinct[min(self.n_survivors, len(distinct)) - 1]
        survived = np.isfinite(scores) & (scores >= cutoff)
        self.screening_results_ = {
            "params": np.asarray(candidates, dtype=object),
            "screening_score": scores,
            "survived": survived,
        }
        evaluate_candidates([p for p, keep in zip(candidates, survived) if keep])
