"""The selection criteria: one registry entry per criterion, looked up by every scorer, search
and early stopping of this package.

Each criterion ranks fitted configurations from the training data alone. Each is an estimate of
a (conditional) log marginal likelihood, in nats per sample, higher is better:

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
    :func:`~sklearn_ibvi.model_selection.prequential_log_evidence`); with SGD's point estimates
    it is the log-likelihood of an online learner, which rewards fast learners and wide noise.
    It needs one epoch only; it does not depend on how long training continues afterwards, so it
    cannot choose a stopping epoch.
``'block_prequential'``
    Forward chaining (:class:`~sklearn_ibvi.model_selection.BlockPrequential`): the rows are
    ordered at random and cut at ``n/2^K, …, n/4, n/2, n``; the learner is fitted on each prefix
    and codes the next block. The sum of the blocks' log predictive densities, per coded row,
    estimates the conditional evidence ``log p(y_rest | X, y_first) / n_rest`` of the learning
    algorithm as configured (its epochs included, so it also chooses a stopping epoch), averaged
    over a few random orders. It costs ``(1 − 2^{-K})`` of a fit per order: 1.5 fits at the
    defaults (``K = 2``, two orders).
``'cv'``
    Five-fold cross-validation (shuffled, stratified for classifiers;
    :class:`~sklearn_ibvi.model_selection.PartialKFold` with all five folds used): learners
    trained on 80 % of the rows score the other 20 %, every row scored once (4 fits). The
    criterion that selects best (:ref:`model_selection_guide`), and
    :class:`~sklearn_ibvi.BoundEarlyStopping`'s default.
``'partial_cv'``
    The same on two of the five folds only (1.6 fits).

A held-out scheme (a :class:`~sklearn_ibvi.model_selection.HeldOutScheme`) is accepted wherever
a criterion name is. How well each criterion selects is summarised in the user guide
(:ref:`model_selection_guide`).

To add a criterion, subclass :class:`Criterion` and add an instance to :data:`CRITERIA`.
"""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import _num_samples

from ._held_out import BlockPrequential, HeldOutScheme, PartialKFold
from ._prequential import prequential_log_likelihood


class Criterion:
    """A selection criterion: how it scores a fitted estimator, and what a screen must fit for it.

    Attributes
    ----------
    name : str or None
        Its key in :data:`CRITERIA` (``None`` for a held-out scheme passed as it is).
    holds_out : bool
        Whether it scores rows that the scored learners did not train on.
    follows_epochs : bool
        Whether it changes epoch by epoch, so that early stopping can follow it.
    not_followable : str
        The message early stopping raises when it cannot.
    """

    name = None
    holds_out = False
    follows_epochs = True
    not_followable = "this criterion does not change epoch by epoch, so it cannot choose where to stop."

    @property
    def spec(self):
        """What the user passes to select this criterion: its name (a held-out scheme: the scheme)."""
        return self.name

    def score(self, estimator, X, y):
        """The criterion of ``estimator``, fitted on ``(X, y)``, in nats per sample."""
        raise NotImplementedError

    def screen(self, estimator, X, y):
        """Fit the unfitted ``estimator`` as far as the criterion needs, and score it."""
        return self.score(estimator.fit(X, y), X, y)

    def epoch_value(self, estimator):
        """The criterion after the last epoch ``estimator`` trained, for early stopping (whole data,
        nats). Held-out criteria are followed from their split learners instead."""
        raise NotImplementedError


class Bound(Criterion):
    """``'bound'``: the estimator's own ``score``, its lower bound on ``log p(y | X)`` per sample."""

    name = "bound"

    def score(self, estimator, X, y):
        return estimator.score(X, y)

    def epoch_value(self, estimator):
        """The whole-data bound after the last epoch ``estimator`` trained (``nan`` if not recorded)."""
        history = estimator.history_
        return float(history[-1, "bound"]) if "bound" in history[-1] else np.nan


class Prequential(Criterion):
    """``'prequential'``: the first epoch's prequential log-likelihood per sample."""

    name = "prequential"
    follows_epochs = False
    not_followable = (
        "criterion='prequential' is the log-likelihood of the first training pass: it does not "
        "change with later epochs, so it cannot choose where to stop. Use "
        "make_bound_scorer('prequential') to rank configurations, and criterion='bound' or "
        "'block_prequential' here."
    )

    def score(self, estimator, X, y):
        return prequential_log_likelihood(estimator) / _num_samples(X)

    def screen(self, estimator, X, y):
        return self.score(_with_one_epoch(estimator).fit(X, y), X, y)


class HeldOut(Criterion):
    """A held-out criterion: the log predictive density of rows held out by ``scheme``, per row."""

    holds_out = True

    def __init__(self, scheme, name=None):
        self.scheme = scheme
        self.name = name

    @property
    def spec(self):
        return self.scheme

    def measured_by(self, estimator):
        """Whether ``estimator`` is a fitted :class:`~sklearn_ibvi.BoundEarlyStopping` that followed
        this scheme: then its ``bound_curve_`` already holds the value, no refit needed. Its
        resolved ``criterion_`` counts, so ``criterion='auto'`` is read as what it chose."""
        followed = getattr(estimator, "criterion_", None)
        return (
            followed is not None
            and hasattr(estimator, "bound_curve_")
            and hasattr(estimator, "best_epoch_")
            and criterion_for(followed).spec == self.scheme
        )

    def score(self, estimator, X, y):
        if self.measured_by(estimator):
            best = estimator.bound_curve_[estimator.best_epoch_ - 1]
            return float(best) / self.scheme.n_held_out(y, classifier=is_classifier(estimator))
        return self.scheme.log_likelihood(estimator, X, y)

    def screen(self, estimator, X, y):
        if not self.measured_by(estimator):  # the scheme fits its own learners
            return self.scheme.log_likelihood(estimator, X, y)
        return super().screen(estimator, X, y)


BOUND = Bound()
PREQUENTIAL = Prequential()
FORWARD_CHAINING = HeldOut(BlockPrequential(), "block_prequential")
CROSS_VALIDATION = HeldOut(PartialKFold(n_splits=5, n_used=5), "cv")
PARTIAL_CV = HeldOut(PartialKFold(), "partial_cv")

#: The criteria, by name: the only place they are listed.
CRITERIA = {
    criterion.name: criterion
    for criterion in (BOUND, PREQUENTIAL, FORWARD_CHAINING, CROSS_VALIDATION, PARTIAL_CV)
}


def criterion_for(criterion):
    """The :class:`Criterion` of a name in :data:`CRITERIA` or of a held-out scheme."""
    if isinstance(criterion, HeldOutScheme):
        return HeldOut(criterion)
    if isinstance(criterion, str) and criterion in CRITERIA:
        return CRITERIA[criterion]
    raise ValueError(
        f"criterion must be one of {tuple(CRITERIA)} or a held-out scheme (BlockPrequential, PartialKFold), "
        f"got {criterion!r}."
    )


def _with_one_epoch(estimator):
    """``estimator`` with every ``max_epochs`` parameter set to 1 (the prequential needs one pass)."""
    params = {
        name: 1
        for name, value in estimator.get_params().items()
        if (name == "max_epochs" or name.endswith("__max_epochs")) and value is not None
    }
    return estimator.set_params(**params)
