"""Warnings and errors of sklearn_ibvi, each naming the condition it reports, and where warnings point."""

import contextlib
import os
import sys
import sysconfig
import warnings
from pathlib import Path

import joblib
import skorch
import sklearn
import torch

#: Code a warning raised during ``fit`` passes through before it reaches the user's line: this
#: package and the libraries it trains with, and the standard library (context managers, pickle)
#: — but not other installed packages, which may be the caller.
_LIBRARIES = tuple(
    str(Path(m.__file__).resolve().parent) + os.sep for m in (sys.modules[__package__], skorch, sklearn, torch, joblib)
)
_STANDARD_LIBRARY = str(Path(contextlib.__file__).resolve().parent) + os.sep
_SITE_PACKAGES = str(Path(sysconfig.get_paths()["purelib"]).resolve()) + os.sep


def _internal(filename):
    path = str(Path(filename).resolve())
    if path.startswith(_LIBRARIES):
        return True
    return path.startswith(_STANDARD_LIBRARY) and not path.startswith(_SITE_PACKAGES)


def warn_at_caller(message, category):
    """``warnings.warn`` attributed to the first frame outside this package, skorch, sklearn,
    torch, joblib and the standard library: the user's line that called ``fit``/``load``, not
    the skorch hook that noticed the problem (whose depth below the user's call varies)."""
    frame, stacklevel = sys._getframe(1), 2
    while frame.f_back is not None and _internal(frame.f_code.co_filename):
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel)


class BoundValidityWarning(UserWarning):
    """A reported bound was computed outside the regime in which it is a bound.

    Raised, for example, when the step size times the largest Hessian eigenvalue exceeds the
    limit of the quadratic log-determinant bound (``α λ_max ≥ 0.68``). Lower ``lr`` to restore it.
    """


class InputScaleWarning(UserWarning):
    """The inputs are far from standardised (a feature's root mean square above 10).

    The prior over weights, and with it ``prior_scale``, the bound and the default ``lr``, is
    meant for inputs of unit scale: the prior predictive's spread grows with ``|x|``. Put a
    :class:`~sklearn.preprocessing.StandardScaler` before the estimator.
    """


class NotABoundWarning(UserWarning):
    """``score`` was called on rows other than those the estimator was trained on.

    ``score(X, y)`` is a lower bound on the log marginal likelihood of the training rows; on
    other rows it is not a bound and does not rank models. Score held-out rows with
    :func:`~sklearn_ibvi.model_selection.log_predictive_scorer` (or ``'neg_log_loss'`` for
    classifiers); select on the bound with ``scoring=bound_scorer, cv=TrainOnlySplit()``.
    """


class EarlyPeakWarning(UserWarning):
    """:class:`~sklearn_ibvi.BoundEarlyStopping`'s criterion peaked in the first 5 % of the
    epochs it followed: the kept model has barely trained, which is rarely the best model."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; nothing of the failed fit is kept."""


class BoundUndefinedError(ValueError):
    """The requested bound is not finite for this model (e.g. a singular variational family)."""
