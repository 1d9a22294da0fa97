"""Warnings and errors of sklearn_ibvi, each naming the condition it reports."""


class BoundValidityWarning(UserWarning):
    """A reported bound was computed outside the regime in which it is a bound.

    Raised, for example, when the step size times the largest Hessian eigenvalue exceeds the
    limit of the quadratic log-determinant bound (``α λ_max ≥ 0.68``). Lower ``lr`` to restore it.
    """


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; nothing of the failed fit is kept."""


class BoundUndefinedError(ValueError):
    """The requested bound is not finite for this model (e.g. a singular variational family)."""
