"""sklearn_ibvi: Bayesian deep learning estimators whose score is a marginal-likelihood bound."""

from .model_selection import BoundEarlyStopping
from .entropy_sgd import EntropySGDClassifier, EntropySGDRegressor
from .ibvi import IBVIClassifier, IBVIRegressor
from .exceptions import (
    BoundUndefinedError,
    BoundValidityWarning,
    EarlyPeakWarning,
    InputScaleWarning,
    NotABoundWarning,
    TrainingDivergedError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "EntropySGDRegressor",
    "EntropySGDClassifier",
    "BoundEarlyStopping",
    "IBVIRegressor",
    "IBVIClassifier",
    "BoundValidityWarning",
    "InputScaleWarning",
    "NotABoundWarning",
    "EarlyPeakWarning",
    "BoundUndefinedError",
    "TrainingDivergedError",
]
