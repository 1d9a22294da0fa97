"""Entropy-tracking SGD (Duvenaud, Maclaurin & Adams 2016): early stopping as variational inference."""

from .estimator import EntropySGDClassifier, EntropySGDRegressor

__all__ = ["EntropySGDClassifier", "EntropySGDRegressor"]
