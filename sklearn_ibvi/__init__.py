"""sklearn_ibvi: Bayesian deep learning estimators whose score is a marginal-likelihood bound."""

from .entropy_sgd import EntropySGDClassifier, EntropySGDRegressor
from .exceptions import BoundUndefinedError, BoundValidityWarning, TrainingDivergedError

__version__ = "0.1.0.dev0"

__all__ = [
    "EntropySGDRegressor",
    "EntropySGDClassifier",
    "BoundValidityWarning",
    "BoundUndefinedError",
    "TrainingDivergedError",
]
