"""Model selection from the training data alone: validation-free criteria, scorers and searches.

Three criteria rank fitted configurations without held-out data. Each is an estimate of a
(conditional) log marginal likelihood, in nats per sample, higher is better:

``'bound'``
    The estimator's own ``score``: the published lower-bound estimate of ``log p(y | X)`` —
    entropy-tracking SGD's ``log p(y | X, θ_t) + log p(θ_t) + S_t`` (with the zero-mean control
    variate when ``control_variate=True``), IBVI's ELBO. A bound on the evidence of the model
    *as a distribution over weights at the kept epoch*; it also defines a stopping epoch.
``'prequential'``
    The first training pass's prequential log-likelihood ``Σ_k log p(y_{B_k} | X_{B_k}, θ before
    batch k)`` (chains mixed), i.e. minus the code length of the learner's online predictions
    (Blier & Ollivier 2018; the "training speed" of Lyle et al. 2020). When each prediction is
    the exact Bayesian posterior predictive it *equals* ``log p(y | X)`` (chain rule;
    :func:`prequential_log_evidence`); with SGD's point estimates it is the log-likelihood of an
    online learner, which rewards fast learners and wide noise. It needs one epoch only; it does
    not depend on how long training continues afterwards, so it cannot choose a stopping epoch.
``'block_prequential'``
    Forward chaining: the rows are ordered at random and cut at ``n/2^K, …, n/4, n/2, n``; the
    learner is fitted on each prefix and codes the next block. The sum of the blocks' log
    predictive densities, per coded row, estimates the conditional evidence
    ``log p(y_rest | X, y_first) / n_rest`` of the learning algorithm as configured (its
    epochs included, so it also chooses a stopping epoch, see
    :class:`~sklearn_ibvi.BoundEarlyStopping`), averaged over a few random orders. It costs
    ``(1 − 2^{-K})`` of a fit per order: 1.5 fits at the defaults (``K = 2``, two orders).

How well each selects, against 5-fold cross-validation and on which data sizes, is measured in
the benchmarks and summarised in the user guide (:ref:`model_selection_guide`). In short: forward
chaining is the only validation-free criterion near cross-validation, hence the default of
:func:`make_bound_scorer`; :class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV` runs it
at the lowest cost, choosing the configuration and the stopping epoch and refitting once;
:class:`~sklearn_ibvi.model_selection.EpochwiseGridSearchCV` runs cross-validation the same way,
every epoch read off one fit per fold, and is the choice on larger data.

Use any criterion with :class:`~sklearn.model_selection.GridSearchCV` and the all-data splitter::

    GridSearchCV(estimator, grid, scoring=make_bound_scorer(), cv=TrainOnlySplit())

(``make_bound_scorer()`` is the block-prequential criterion, :func:`bound_scorer` the bound), or
screen a grid and let cross-validation confirm the survivors with :class:`ScreenedGridSearchCV`.
``refit``, ``n_jobs`` and joblib backends (loky, dask, ray) work as for any search.
"""

import copy
import math
from numbers import Integral

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import BaseCrossValidator, ParameterGrid
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _num_samples

from ._held_out import BlockPrequential, HeldOutScheme, PartialKFold
from ._predictive import log_predictive_scorer


#: The criteria, by name ('partial_cv' holds rows out, like CV: it is not validation-free).
CRITERIA = ("bound", "prequential", "block_prequential", "partial_cv")


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


# -- the quantities ------------------------------------------------------------------------------


def prequential_log_evidence(features, y, prior_var, noise_var, batch_size=1):
    """Prequential log-likelihood of Bayesian linear regression with exact sequential updating.

    Codes ``y`` batch by batch with the exact posterior predictive given the batches before,
    ``log N(y_b; Φ_b m, Φ_b S Φ_bᵀ + σ² I)``, then updates ``(m, S)`` by Bayes' rule. By the chain
    rule ``Σ_b log p(y_b | y_{<b}) = log p(y)``, so the result equals the closed-form log evidence
    ``log N(y; 0, Φ Σ₀ Φᵀ + σ² I)`` for any batch size and order: the principle behind the
    ``'prequential'`` criterion, which applies it with the learner's own (approximate) predictive.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The design matrix ``Φ``.
    y : array-like of shape (n_samples,)
    prior_var : float or array-like of shape (n_features,)
        Prior variances of the weights (the prior is ``N(0, diag(prior_var))``).
    noise_var : float
        Observation noise variance ``σ²``.
    batch_size : int, default=1

    Returns
    -------
    log_likelihood : float
        Nats, whole data set.
    """
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = features.shape
    mean = np.zeros(d)
    cov = np.diag(np.broadcast_to(np.asarray(prior_var, dtype=np.float64), (d,)))
    total = 0.0
    for start in range(0, n, batch_size):
        phi, target = features[start : start + batch_size], y[start : start + batch_size]
        predictive_cov = phi @ cov @ phi.T + noise_var * np.eye(len(target))
        residual = target - phi @ mean
        _, logdet = np.linalg.slogdet(predictive_cov)
        total -= 0.5 * (residual @ np.linalg.solve(predictive_cov, residual) + logdet + len(target) * math.log(2 * math.pi))
        gain = np.linalg.solve(predictive_cov, phi @ cov).T  # S Φ_bᵀ (Φ_b S Φ_bᵀ + σ²I)⁻¹
        mean = mean + gain @ residual
        cov = cov - gain @ phi @ cov
    return float(total)


def _bayesian_estimator(estimator):
    """The fitted sklearn_ibvi estimator inside a pipeline and/or a BoundEarlyStopping."""
    while True:
        if hasattr(estimator, "steps"):
            estimator = estimator.steps[-1][1]
        elif hasattr(estimator, "estimator_") and hasattr(estimator, "best_epoch_"):
            estimator = estimator.estimator_
        else:
            return estimator


def prequential_log_likelihood(estimator):
    """The first epoch's prequential log-likelihood of a fitted estimator (nats, whole data).

    ``Σ_k log p(y_{B_k} | X_{B_k}, θ before batch k)`` over the first pass: with several chains
    the predictive is their mixture. Read from the history column
    ``prequential_log_likelihood``; works through pipelines and BoundEarlyStopping.
    """
    history = getattr(_bayesian_estimator(estimator), "history_", None)
    if history is None or len(history) == 0 or "prequential_log_likelihood" not in history[0]:
        raise TypeError(
            f"{type(estimator).__name__} records no 'prequential_log_likelihood' in a training "
            "history; the 'prequential' criterion needs an sklearn_ibvi estimator fitted for at least one epoch."
        )
    return float(history[0, "prequential_log_likelihood"])


def resolve_criterion(criterion):
    """``'bound'``/``'prequential'`` as given; ``'block_prequential'`` → ``BlockPrequential()``,
    ``'partial_cv'`` → ``PartialKFold()``; a held-out scheme as given."""
    if isinstance(criterion, HeldOutScheme):
        return criterion
    if criterion == "block_prequential":
        return BlockPrequential()
    if criterion == "partial_cv":
        return PartialKFold()
    if criterion in ("bound", "prequential"):
        return criterion
    raise ValueError(
        f"criterion must be one of {CRITERIA} or a held-out scheme (BlockPrequential, PartialKFold), got {criterion!r}."
    )


# -- scorers -------------------------------------------------------------------------------------


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
    return estimator.score(X, y)


class BoundScorer:
    """A validation-free scorer: ``scorer(fitted_estimator, X_train, y_train)`` → nats per sample.

    Built by :func:`make_bound_scorer`; a module-level class so that searches pickle it to
    process-based workers (loky, dask, ray).
    """

    def __init__(self, criterion="bound"):
        self.criterion = resolve_criterion(criterion)

    def __repr__(self):
        return f"make_bound_scorer(criterion={self.criterion!r})"

    def __call__(self, estimator, X, y):
        criterion = self.criterion
        if criterion == "bound":
            return bound_scorer(estimator, X, y)
        if criterion == "prequential":
            return prequential_log_likelihood(estimator) / _num_samples(X)
        if _measures_held_out(estimator, criterion):
            best = estimator.bound_curve_[estimator.best_epoch_ - 1]
            return float(best) / criterion.n_held_out(y, classifier=is_classifier(estimator))
        return criterion.log_likelihood(estimator, X, y)


def _measures_held_out(estimator, criterion):
    """Whether ``estimator`` is a fitted BoundEarlyStopping that followed this held-out criterion
    (then its ``bound_curve_`` already holds the value: no refit needed). Its resolved
    ``criterion_`` counts, so ``criterion='auto'`` is read as what it chose."""
    from ._early_stopping import BoundEarlyStopping  # noqa: PLC0415 (early_stopping imports this module

    followed = getattr(estimator, "criterion_", None)
    return isinstance(estimator, BoundEarlyStopping) and followed is not None and resolve_criterion(followed) == criterion


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
    if criterion == "block_prequential":
        criterion = BlockPrequential(n_blocks, random_state, n_orderings)
    return BoundScorer(criterion)


# -- screening search ----------------------------------------------------------------------------


def _with_one_epoch(estimator):
    """``estimator`` with every ``max_epochs`` parameter set to 1 (the prequential needs one pass)."""
    params = {
        name: 1
        for name, value in estimator.get_params().items()
        if (name == "max_epochs" or name.endswith("__max_epochs")) and value is not None
    }
    return estimator.set_params(**params)


def _screening_score(estimator, X, y, scorer):
    """Fit only what the criterion needs: one epoch (prequential), the prefixes (block), all."""
    criterion = scorer.criterion
    try:
        if criterion == "prequential":
            return scorer(_with_one_epoch(estimator).fit(X, y), X, y)
        if isinstance(criterion, HeldOutScheme) and not _measures_held_out(estimator, criterion):
            return criterion.log_likelihood(estimator, X, y)
        return scorer(estimator.fit(X, y), X, y)
    except ArithmeticError:  # training diverged (TrainingDivergedError): screened out
        return -np.inf


class ScreenedGridSearchCV(BaseSearchCV):
    """Grid search that screens every candidate with a validation-free criterion, then
    cross-validates only the best few.

    Stage 1 fits each candidate once on all the data and scores it by ``criterion`` (for
    ``'prequential'`` a single epoch suffices and only one is run; ``'block_prequential'`` adds
    the prefix fits). Stage 2 is an ordinary
    cross-validated grid search over the ``n_survivors`` best candidates, with ``scoring``
    (default :func:`log_predictive_scorer`, the held-out log predictive density); ``refit``
    refits the winner on all the data. Candidates with equal screening scores survive or fall
    together — parameters the criterion cannot see (``max_epochs`` for ``'prequential'``) are
    therefore left entirely to cross-validation.

    Screening by forward chaining keeps cross-validation's choice at a fraction of its compute;
    screening by the cheaper ``'prequential'`` tends to discard the best regression
    configurations, since it favours wide noise (:ref:`model_selection_guide`). The default
    ``'block_prequential'`` (two blocks × two orders) screens with 1.5 fits per candidate;
    ``BlockPrequential(3, n_orderings=1)`` is a cheaper screen.

    Parameters
    ----------
    estimator : estimator
    param_grid : dict or list of dicts
        As for :class:`~sklearn.model_selection.GridSearchCV`.
    criterion : {'block_prequential', 'prequential', 'bound', 'partial_cv'} or held-out scheme, default='block_prequential'
        The screening criterion (see :func:`make_bound_scorer`).
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
        y : array-like of shape (n_samples,)
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
        scorer = BoundScorer(self.criterion)
        candidates = list(ParameterGrid(self.param_grid))
        scores = Parallel(n_jobs=self.n_jobs, verbose=self.verbose, pre_dispatch=self.pre_dispatch)(
            delayed(_screening_score)(clone(self.estimator).set_params(**copy.deepcopy(p)), X, y, scorer)
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
