"""Implicit-bias variational inference (IBVI; Coker, Wenger, Marusic & Cunningham, 2025)."""

from .estimator import IBVIClassifier, IBVIRegressor

__all__ = ["IBVIClassifier", "IBVIRegressor"]
