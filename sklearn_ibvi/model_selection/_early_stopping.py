"""Early stopping on a criterion followed epoch by epoch: train, keep the best epoch.

:class:`BoundEarlyStopping` follows a criterion after every epoch — by default the log
predictive density of held-out folds, or the wrapped estimator's own bound ("early stopping as
variational inference") — stops once it has stopped improving, and keeps the model of the best
epoch, whose ``score`` is its bound on the training rows.
"""

import copy
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.base import _fit_context
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags, indexable
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_is_fitted

from ..core.estimator import BayesianNetEstimator
from ._epoch_curves import HeldOutRun, advance, held_out_clone
from ..exceptions import BoundUndefinedError, EarlyPeakWarning, warn_at_caller
from ._criteria import BOUND, CRITERIA, CROSS_VALIDATION, criterion_for
from ._held_out import BlockPrequential, HeldOutScheme

#: A criterion that peaks within this fraction of the epochs followed has kept a barely trained
#: model: ``fit`` warns (``EarlyPeakWarning``).
EARLY_PEAK_FRACTION = 0.05


class _PatienceRule:
    """Follow a criterion value by value: the best so far, and whether to stop.

    Stops once ``patience`` values in a row have not risen more than ``threshold`` above the
    reference (the last value that did); ``patience=None`` never stops.
    """

    def __init__(self, patience, threshold):
        self.patience = patience
        self.threshold = threshold
        self.best, self.best_epoch = -np.inf, 0
        self.epochs = 0
        self._reference, self._since = -np.inf, 0

    def update(self, value):
        """Take the next epoch's value; return whether training should stop now."""
        self.epochs += 1
        if value > self.best:
            self.best, self.best_epoch = value, self.epochs
        if value > self._reference + self.threshold:
            self._reference, self._since = value, 0
        else:
            self._since += 1
        return self.patience is not None and self._since >= self.patience


def _estimator_has(attribute):
    """``available_if`` check: the fitted (else the unfitted) wrapped estimator has ``attribute``."""

    def check(self):
        return hasattr(self.estimator_ if hasattr(self, "estimator_") else self.estimator, attribute)

    return check


class BoundEarlyStopping(MetaEstimatorMixin, BaseEstimator):
    """Early stopping at the epoch where a criterion peaks, whose ``score(X, y)`` on the training
    rows is the kept model's lower bound on the log marginal likelihood per sample.

    The criterion is read after every epoch; once it has not risen more than ``threshold`` for
    ``patience`` epochs, training stops and the estimator *as it was at the best epoch* is kept
    (weights, bound bookkeeping and history), so ``predict`` and ``score`` describe that model.
    A held-out criterion trains learners on part of the rows first, then fits ``estimator`` once
    for ``best_epoch_`` epochs. A :class:`~sklearn.pipeline.Pipeline` ending in an estimator of
    this package is stopped as that estimator on the transformed rows.
    Read more in the :ref:`User Guide <early_stopping>`.

    Parameters
    ----------
    estimator : sklearn_ibvi estimator, or a Pipeline ending in one
        An unfitted estimator of this package (its ``partial_fit`` trains one more epoch and
        records a per-epoch bound).
    patience : int or None, default=20
        Epochs without an improvement larger than ``threshold`` before stopping; ``None`` runs
        all ``max_epochs`` epochs and keeps the best. See :ref:`early_stopping`.
    threshold : float, default=0.0
        Minimum absolute improvement, in nats on the whole-data criterion, that resets the
        patience count; the kept epoch is always the criterion's maximum.
    max_epochs : int or None, default=None
        Upper limit on the epochs; ``None`` uses ``estimator.max_epochs``.
    criterion : {'auto', 'cv', 'bound', 'block_prequential', 'partial_cv'} or held-out scheme, default='auto'
        What is followed epoch by epoch: five-fold cross-validation, the estimator's bound,
        forward chaining, or two of five folds. ``'auto'`` is ``'cv'``, or ``'bound'`` when some
        class (for a regressor: the data) has fewer than 5 rows. A held-out scheme sets other
        splits. See :ref:`selection_criteria`.
    stopping_epoch : {'peak', 'scaled'}, default='peak'
        The epoch kept: where the criterion peaks, or (forward chaining only) that peak corrected
        for the prefixes' size. See :ref:`forward_chaining`.
    verbose : int, default=0
        1 prints why training stopped and which epoch is kept; 2 also prints the criterion after
        every epoch.

    Attributes
    ----------
    estimator_ : estimator or Pipeline
        The wrapped estimator at the best epoch (a snapshot, not the last epoch's state); for a
        Pipeline, the fitted steps followed by it.
    best_epoch_ : int
        The kept epoch, counting from 1.
    peak_epoch_ : int
        Where the criterion peaked (``best_epoch_`` unless ``stopping_epoch='scaled'``).
    bound_curve_ : ndarray of shape (n_epochs,)
        The criterion after every epoch it was followed (nats, whole data; for a held-out
        criterion summed over the held-out rows of every split).
    n_epochs_ : int
        Epochs the criterion was followed (``peak_epoch_ + patience`` when stopped early; the
        block-prequential prefixes may have trained up to ``patience − 1`` more).
    criterion_ : str or held-out scheme
        The criterion followed (``criterion='auto'`` resolved). If it peaks within the first 5 %
        of the epochs followed, ``fit`` warns (:class:`~sklearn_ibvi.EarlyPeakWarning`).
    n_features_in_ : int
    feature_names_in_ : ndarray of str, if the wrapped estimator has it
    classes_ : ndarray, for classifiers

    See Also
    --------
    sklearn_ibvi.model_selection.make_bound_scorer : Rank configurations by the same criteria.
    skorch.callbacks.EarlyStopping : Early stopping on a validation score.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_ibvi import BoundEarlyStopping, EntropySGDClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = BoundEarlyStopping(
    ...     EntropySGDClassifier(hidden_layer_sizes=(16,), max_epochs=50, entropy=None, random_state=0),
    ...     patience=5,
    ... ).fit(X, y)
    >>> model.criterion_  # 'auto': five-fold cross-validation
    'cv'
    >>> bool(model.best_epoch_ == model.bound_curve_.argmax() + 1)
    True
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "partial_fit"]), Pipeline],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "criterion": [StrOptions({"auto", *CRITERIA}), HeldOutScheme],
        "stopping_epoch": [StrOptions({"peak", "scaled"})],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator,
        patience=20,
        threshold=0.0,
        max_epochs=None,
        criterion="auto",
        stopping_epoch="peak",
        verbose=0,
    ):
        self.estimator = estimator
        self.patience = patience
        self.threshold = threshold
        self.max_epochs = max_epochs
        self.criterion = criterion
        self.stopping_epoch = stopping_epoch
        self.verbose = verbose

    # -- fitting -------------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Train epoch by epoch until the criterion stops improving; keep the best epoch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        preprocessing, estimator = self._split_pipeline()
        if is_classifier(estimator) and y is not None:  # before any split stratifies by it
            check_classification_targets(y)
        self.criterion_ = self._resolved_criterion(estimator, y)
        criterion = self._checked_criterion(estimator)  # a Criterion of the registry
        max_epochs = self._max_epochs(estimator)
        if preprocessing is not None:  # fitted once on all the rows: every epoch sees the same X
            preprocessing = clone(preprocessing)
            X = preprocessing.fit_transform(X, y)
        X, y = indexable(X, y)  # held-out criteria take rows by index
        rule = _PatienceRule(self.patience, self.threshold)
        if criterion.holds_out:
            curve, runs = self._follow_held_out(estimator, criterion.scheme, rule, X, y, max_epochs)
            kept = None
        else:
            curve, kept = self._follow_bound(estimator, criterion, rule, X, y, max_epochs)
        if rule.best_epoch == 0:
            raise BoundUndefinedError(
                f"The criterion {self.criterion_!r} was never finite in {len(curve)} epochs "
                f"(last value {curve[-1]}): nothing to keep."
            )
        best_epoch = rule.best_epoch
        if self.stopping_epoch == "scaled":
            best_epoch = criterion.scheme.scaled_epoch([run.curve[: len(curve)] for run in runs])
        if self.verbose:
            self._print_decision(stopped=len(curve) < max_epochs, best_epoch=best_epoch, peak_epoch=rule.best_epoch)
        if rule.best_epoch <= EARLY_PEAK_FRACTION * len(curve):
            self._warn_early_peak(rule.best_epoch, len(curve))
        if kept is None:
            kept = clone(estimator).set_params(max_epochs=best_epoch).fit(X, y)

        if isinstance(self.estimator, Pipeline):  # predict and score through the fitted steps
            steps = preprocessing.steps if preprocessing is not None else []
            kept = Pipeline([*steps, (self.estimator.steps[-1][0], kept)])
        self.estimator_ = kept
        self.best_epoch_ = best_epoch
        self.peak_epoch_ = rule.best_epoch
        self.bound_curve_ = np.asarray(curve, dtype=float)
        self.n_epochs_ = len(curve)
        return self

    def _split_pipeline(self):
        """``(steps before the last, or None; the sklearn_ibvi estimator trained epoch by epoch)``."""
        if not isinstance(self.estimator, Pipeline):
            return None, self.estimator
        name, last = self.estimator.steps[-1]
        if not isinstance(last, BayesianNetEstimator):
            raise TypeError(
                "BoundEarlyStopping trains the last step of a Pipeline epoch by epoch, so that step must "
                "be an sklearn_ibvi estimator (EntropySGDRegressor, EntropySGDClassifier, IBVI...); "
                f"the last step {name!r} is {type(last).__name__}."
            )
        return (self.estimator[:-1] if len(self.estimator.steps) > 1 else None), last

    @property
    def _criterion_name(self):
        return repr(self.criterion_) if isinstance(self.criterion_, str) else type(self.criterion_).__name__

    def _warn_early_peak(self, peak, epochs):
        if not criterion_for(self.criterion_).holds_out:  # the bound
            advice = (
                "The bound is known to peak far earlier than the test-optimal epoch: stop on held-out "
                "rows instead, criterion='cv', or choose the configuration and its epoch with "
                "model_selection.EpochwiseGridSearchCV."
            )
        else:
            advice = (
                "The held-out log-likelihood fell from the start: the model overfits within an epoch or "
                "diverges. Try a smaller lr or a larger batch_size, or compare configurations with "
                "model_selection.EpochwiseGridSearchCV."
            )
        warn_at_caller(
            f"BoundEarlyStopping's criterion {self._criterion_name} peaked at epoch {peak} of the {epochs} "
            f"it followed (within the first {EARLY_PEAK_FRACTION:.0%}), so the kept model has barely "
            f"trained. {advice}",
            EarlyPeakWarning,
        )

    def _follow_bound(self, estimator, criterion, rule, X, y, max_epochs):
        """Train epoch by epoch, reading the criterion (the bound); the curve and a copy of the best epoch."""
        estimator, curve, kept = clone(estimator), [], None
        for _ in range(max_epochs):
            estimator.partial_fit(X, y)
            value = criterion.epoch_value(estimator)
            if np.isnan(value):
                raise BoundUndefinedError(
                    f"{type(estimator).__name__} recorded no bound (e.g. it was configured with "
                    "entropy=None). Enable its bound, or use criterion='block_prequential'."
                )
            curve.append(value)
            stop = rule.update(value)
            if rule.best_epoch == rule.epochs:
                kept = copy.deepcopy(estimator)
            self._print_epoch(rule, value)
            if stop:
                break
        return curve, kept

    def _follow_held_out(self, estimator, scheme, rule, X, y, max_epochs):
        """Train the split learners in stages of ``patience`` epochs; the criterion curve and
        the runs (whose curves may go up to ``patience - 1`` epochs further)."""
        learner = held_out_clone(estimator).set_params(max_epochs=max_epochs)
        splits = scheme.held_out_splits(y, classifier=is_classifier(estimator))
        runs = [HeldOutRun(learner, train, held_out) for train, held_out in splits]
        stage = self.patience or max_epochs
        curve = []
        while len(curve) < max_epochs:
            epochs = min(max_epochs, len(curve) + stage)
            runs = [advance(run, X, y, epochs, error_score="raise") for run in runs]
            for value in sum(run.curve for run in runs)[len(curve) :]:
                curve.append(float(value))
                stop = rule.update(value)
                self._print_epoch(rule, value)
                if stop:
                    return curve, runs
        return curve, runs

    def _print_decision(self, stopped, best_epoch, peak_epoch):
        """One line, as skorch's EarlyStopping prints it: why training ended and what is kept."""
        name = self._criterion_name
        reason = f"Stopping since {name} has not improved in the last {self.patience} epochs. " if stopped else ""
        scaled = f" (scaled from the peak at epoch {peak_epoch})" if best_epoch != peak_epoch else ""
        print(f"{reason}Keeping the model of epoch {best_epoch}{scaled}.")

    def _print_epoch(self, rule, value):
        if self.verbose >= 2:
            best = " (best)" if rule.best_epoch == rule.epochs else ""
            print(f"epoch {rule.epochs}: {self._criterion_name} {value:.6g}{best}")

    def _resolved_criterion(self, estimator, y):
        if not (isinstance(self.criterion, str) and self.criterion == "auto"):
            return self.criterion
        if y is None:  # fit reports it
            return BOUND.name
        if is_classifier(estimator):
            smallest = np.unique(np.asarray(y), return_counts=True)[1].min()
        else:
            smallest = _num_samples(y)
        # cross-validation when every fold can hold out a row of every class; else the bound
        return CROSS_VALIDATION.name if smallest >= CROSS_VALIDATION.scheme.n_splits else BOUND.name

    def _checked_criterion(self, estimator):
        criterion = criterion_for(self.criterion_)
        if not criterion.follows_epochs:
            raise ValueError(criterion.not_followable)
        if not isinstance(estimator, BayesianNetEstimator):
            raise TypeError(
                f"BoundEarlyStopping needs an estimator of sklearn_ibvi whose partial_fit records a "
                f"per-epoch bound (EntropySGDRegressor, EntropySGDClassifier, IBVI...), or a Pipeline "
                f"ending in one; {type(estimator).__name__} has no bound."
            )
        scalable = isinstance(criterion.spec, BlockPrequential) and criterion.spec.n_blocks >= 2
        if self.stopping_epoch == "scaled" and not scalable:
            raise ValueError(
                "stopping_epoch='scaled' corrects forward chaining's peak for the n/4 and n/2 "
                f"prefixes; it needs criterion='block_prequential' (or a BlockPrequential with "
                f"n_blocks >= 2), and the criterion is {self.criterion_!r}."
            )
        return criterion

    def _max_epochs(self, estimator):
        max_epochs = self.max_epochs if self.max_epochs is not None else estimator.get_params().get("max_epochs")
        if not isinstance(max_epochs, Integral) or max_epochs < 1:
            raise ValueError(
                f"BoundEarlyStopping needs at least one epoch; got max_epochs={max_epochs!r} "
                "(from the wrapped estimator when max_epochs=None)."
            )
        return int(max_epochs)

    # -- delegation ----------------------------------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimator_")

    def predict(self, X, **predict_params):
        """Predict with the kept model; keyword arguments (e.g. ``return_std=True``) pass through.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        **predict_params : dict
            Passed to ``estimator_.predict``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,), or a tuple with ``return_std=True``
        """
        check_is_fitted(self)
        return self.estimator_.predict(X, **predict_params)

    @available_if(_estimator_has("predict_interval"))
    def predict_interval(self, X, coverage=0.95):
        """Central predictive intervals of the kept regressor (see its ``predict_interval``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float or array-like of floats in (0, 1), default=0.95

        Returns
        -------
        intervals : ndarray of shape (n_samples, 2), or (n_samples, 2, n_coverages)
        """
        check_is_fitted(self)
        return self.estimator_.predict_interval(X, coverage=coverage)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the kept model (averaged over its posterior samples).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.estimator_.predict_proba(X)

    def score(self, X, y):
        """The kept model's ``score``: its bound per sample on ``(X, y)`` (the training data).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        return self.estimator_.score(X, y)

    @property
    def n_features_in_(self):
        """Number of features seen during fit."""
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self):
        """Feature names seen during fit, if ``X`` had string column names."""
        return self.estimator_.feature_names_in_

    @property
    def classes_(self):
        """Class labels of the wrapped classifier."""
        return self.estimator_.classes_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        wrapped = get_tags(self.estimator)
        tags.estimator_type = wrapped.estimator_type
        tags.classifier_tags = copy.deepcopy(wrapped.classifier_tags)
        tags.regressor_tags = copy.deepcopy(wrapped.regressor_tags)
        tags.input_tags = copy.deepcopy(wrapped.input_tags)
        tags.target_tags = copy.deepcopy(wrapped.target_tags)
        tags.non_deterministic = wrapped.non_deterministic
        return tags
