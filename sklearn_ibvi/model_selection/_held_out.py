"""Held-out schemes: ways to split the training rows into (rows to train on, rows to score).

A scheme gives ``held_out_splits(y, classifier)``; the searches, :class:`~sklearn_ibvi.BoundEarlyStopping`
and the scorers train a learner on each split's first part and score the log predictive density
of its second part. Two schemes: forward chaining (:class:`BlockPrequential`) and partial
cross-validation (:class:`PartialKFold`).
"""

import math
from numbers import Integral

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import column_or_1d

from ._epoch_curves import held_out_clone
from ._predictive import predictive_log_likelihood

class HeldOutScheme:
    """Base of the held-out schemes: the held-out log-likelihood of a learner from its splits.

    A scheme is accepted wherever a criterion or ``cv`` takes one
    (:class:`~sklearn_ibvi.model_selection.EpochwiseGridSearchCV`,
    :class:`~sklearn_ibvi.BoundEarlyStopping`,
    :func:`~sklearn_ibvi.model_selection.make_bound_scorer`). For another scheme, subclass this,
    implement :meth:`held_out_splits` (deterministic: every candidate must get the same splits)
    and name the constructor's parameters in ``_fields`` (for ``repr`` and equality).
    """

    def held_out_splits(self, y, classifier=False):
        """``[(train_indices, held_out_indices), …]`` over the rows of ``y``.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Targets of the rows to split.
        classifier : bool, default=False
            Whether the learner is a classifier (a scheme may stratify by class).
        """
        raise NotImplementedError

    def n_held_out(self, y, classifier=False):
        """Rows scored over all the splits (a row scored by two splits counts twice)."""
        return sum(len(held_out) for _, held_out in self.held_out_splits(y, classifier))

    def log_likelihood(self, estimator, X, y):
        """The scheme's criterion for ``estimator`` on ``(X, y)``, nats per held-out row.

        ``Σ_splits Σ_{i held out} log p(y_i | x_i, learner fitted on the split's training rows)``
        divided by :meth:`n_held_out`. Fits a clone of ``estimator`` (any estimator or pipeline,
        fitted or not; its parameters, epochs included, are used as they are, except that an
        sklearn_ibvi estimator's per-epoch bound is switched off) on each split.
        """
        total, count = 0.0, 0
        for train, held_out in self.held_out_splits(y, classifier=is_classifier(estimator)):
            learner = held_out_clone(estimator).fit(_safe_indexing(X, train), _safe_indexing(y, train))
            log_density = predictive_log_likelihood(learner, _safe_indexing(X, held_out), _safe_indexing(y, held_out))
            total += float(np.sum(log_density))
            count += len(held_out)
        return total / count

    def _key(self):
        return tuple(getattr(self, name) for name in self._fields)

    def __repr__(self):
        return f"{type(self).__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields) + ")"

    def __eq__(self, other):
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self):
        return hash((type(self), *self._key()))

    def _check_integers(self, **minimums):
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if not isinstance(value, Integral) or value < minimum:
                raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}.")


def classes_first(order, y):
    """``order`` with the first row of every class moved to the front (in order of appearance),
    so that every prefix of it has seen every class."""
    _, first = np.unique(y[order], return_index=True)
    return np.r_[order[np.sort(first)], np.delete(order, first)]


class BlockPrequential(HeldOutScheme):
    """The forward-chaining (block-prequential) criterion and its blocks.

    The rows are put in a random order (for classifiers, one row of every class first, so every
    prefix has seen every class) and cut at ``n/2^K, …, n/4, n/2, n`` (``K = n_blocks``). The
    learner is fitted on each prefix and scored on the block that follows it. With several
    orderings this is done for each (orders seeded ``random_state``, ``random_state + 1``, …)
    and the criterion is the log predictive density per coded row over all of them
    (:meth:`~HeldOutScheme.log_likelihood`).

    The defaults (two blocks, two orderings) are those of
    :class:`~sklearn_ibvi.model_selection.BlockPrequentialSearchCV`.
    Read more in the :ref:`User Guide <forward_chaining>`.

    Parameters
    ----------
    n_blocks : int, default=2
        ``K``: per ordering, the coded blocks cover ``1 − 2^{-K}`` of the rows, and fitting the
        prefixes costs ``1 − 2^{-K}`` of a full fit.
    random_state : int, default=0
        Seeds the row orders; keep it fixed across the candidates of a search, so that every
        candidate codes the same blocks.
    n_orderings : int, default=2
        Row orders averaged: less variance, proportionally more prefix fits.
    """

    _fields = ("n_blocks", "random_state", "n_orderings")

    def __init__(self, n_blocks=2, random_state=0, n_orderings=2):
        self.n_blocks = n_blocks
        self.random_state = random_state
        self.n_orderings = n_orderings

    def blocks(self, y, classifier=False):
        """``[(prefix_indices, coded_indices), …]``: per ordering, smallest prefix first.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Targets of the rows to split.
        classifier : bool
            Put one row of every class at the front of each order.
        """
        self._check_integers(n_blocks=1, n_orderings=1, random_state=0)
        y = column_or_1d(np.asarray(y))
        n = len(y)
        cuts = [max(1, math.ceil(n / 2**k)) for k in range(self.n_blocks, -1, -1)]
        if len(set(cuts)) < len(cuts) or (classifier and cuts[0] < len(np.unique(y))):
            raise ValueError(
                f"{n} samples are too few for {self.n_blocks} prequential blocks: the first prefix "
                f"has {cuts[0]} rows. Use fewer blocks."
            )
        blocks = []
        for ordering in range(self.n_orderings):
            order = np.random.RandomState(self.random_state + ordering).permutation(n)
            if classifier:
                order = classes_first(order, y)
            blocks += [(order[:start], order[start:stop]) for start, stop in zip(cuts[:-1], cuts[1:])]
        return blocks

    held_out_splits = blocks

    def scaled_epoch(self, block_curves):
        """The epochs for a fit on all rows, from the blocks' criterion curves
        (``scaled_stopping_epoch`` of the ``n/4`` and ``n/2`` prefixes' curves, each summed
        over the orderings).

        Parameters
        ----------
        block_curves : list of array-like of shape (n_epochs,)
            Per block of :meth:`blocks`, in its order, the held-out log density after every
            epoch; curves of unequal length are cut to the shortest.
        """
        if self.n_blocks < 2:
            raise ValueError(
                f"The scaled epoch compares the n/4 and n/2 prefixes' peaks; {self!r} has "
                f"{self.n_blocks} block. Use n_blocks >= 2, or the criterion's peak."
            )
        epochs = min(len(curve) for curve in block_curves)
        quarter, half = (
            sum(np.asarray(curve[:epochs]) for curve in block_curves[k :: self.n_blocks])
            for k in (self.n_blocks - 2, self.n_blocks - 1)
        )
        return scaled_stopping_epoch(quarter, half)

    def n_coded(self, n_samples):
        """Rows coded by the blocks of every ordering (all but each first prefix): the
        :meth:`~HeldOutScheme.n_held_out` of ``n_samples`` rows, in closed form."""
        return self.n_orderings * (n_samples - max(1, math.ceil(n_samples / 2**self.n_blocks)))


class PartialKFold(HeldOutScheme):
    """Partial cross-validation: the first ``n_used`` folds of a shuffled ``n_splits``-fold split.

    Each used fold trains on ``(n_splits − 1) / n_splits`` of the rows and scores the rest; the
    folds are shuffled with ``random_state`` (stratified by class for classifiers). It costs
    ``n_used × (1 − 1/n_splits)`` of a fit per candidate. Against forward chaining
    (:class:`~sklearn_ibvi.model_selection.BlockPrequential`) its learners see more rows but
    fewer rows are scored, which pays on larger data sets rather than small ones.
    Read more in the :ref:`User Guide <selection_criteria>`.

    Parameters
    ----------
    n_splits : int, default=5
        Folds of the split the used ones come from.
    n_used : int, default=2
        Folds trained and scored (the first ones). ``n_used = n_splits`` is full k-fold CV.
    random_state : int, default=0
        Seeds the shuffle; keep it fixed across the candidates of a search.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ibvi.model_selection import PartialKFold
    >>> splits = PartialKFold().held_out_splits(np.arange(100.0))
    >>> [(len(train), len(held_out)) for train, held_out in splits]
    [(80, 20), (80, 20)]
    """

    _fields = ("n_splits", "n_used", "random_state")

    def __init__(self, n_splits=5, n_used=2, random_state=0):
        self.n_splits = n_splits
        self.n_used = n_used
        self.random_state = random_state

    def held_out_splits(self, y, classifier=False):
        """``[(train_indices, held_out_indices), …]``: the first ``n_used`` folds.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Targets of the rows to split.
        classifier : bool
            Stratify the folds by class.
        """
        self._check_integers(n_splits=2, n_used=1, random_state=0)
        if self.n_used > self.n_splits:
            raise ValueError(f"n_used={self.n_used} is more than n_splits={self.n_splits}.")
        y = column_or_1d(np.asarray(y))
        folds = shuffled_folds(self.n_splits, classifier, self.random_state)
        splits = []
        for train, held_out in folds.split(np.zeros((len(y), 1)), y):
            splits.append((train, held_out))
            if len(splits) == self.n_used:
                return splits


def shuffled_folds(cv, classifier, random_state):
    """An int ``cv`` as shuffled k-fold (stratified for classifiers) seeded by ``random_state``;
    anything else as given. scikit-learn's own int means unshuffled folds."""
    if isinstance(cv, Integral):
        return (StratifiedKFold if classifier else KFold)(cv, shuffle=True, random_state=random_state)
    return cv


def scaled_stopping_epoch(quarter_curve, half_curve):
    """The epoch for all ``n`` rows from the peaks of the ``n/4`` and ``n/2`` prefixes' curves:
    ``e_half × clip(e_half / e_quarter, 1/2, 1)`` (epochs counted from 1).

    If the peak does not move when the prefix doubles (ratio 1: the optimum is a number of
    epochs) the ``n/2`` prefix's peak is kept; if it halves (ratio 1/2: a number of SGD steps)
    it is halved once more for ``n`` rows; in between, geometric interpolation, and a peak that
    comes later for ``n/2`` than for ``n/4`` is kept as it is. Each curve is a prefix size's
    held-out log density summed over the orderings, per epoch.
    """
    quarter, half = (int(np.argmax(np.nan_to_num(c, nan=-np.inf))) + 1 for c in (quarter_curve, half_curve))
    return int(np.clip(np.rint(half * np.clip(half / quarter, 0.5, 1.0)), 1, len(half_curve)))
