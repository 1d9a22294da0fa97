"""Choosing models and stopping epochs: scorers, splitting schemes, searches and early stopping."""

from ._early_stopping import BoundEarlyStopping
from ._epochwise_search import EpochwiseGridSearchCV
from ._forward_chaining import BlockPrequentialSearchCV, block_prequential_log_likelihood
from ._held_out import BlockPrequential, PartialKFold
from ._predictive import log_predictive_scorer, predictive_log_likelihood
from ._prequential import prequential_log_evidence, prequential_log_likelihood
from ._scorers import bound_scorer, make_bound_scorer
from ._screened_search import ScreenedGridSearchCV
from ._splits import TrainOnlySplit

__all__ = [
    "BlockPrequential",
    "BlockPrequentialSearchCV",
    "BoundEarlyStopping",
    "EpochwiseGridSearchCV",
    "PartialKFold",
    "ScreenedGridSearchCV",
    "TrainOnlySplit",
    "block_prequential_log_likelihood",
    "bound_scorer",
    "log_predictive_scorer",
    "make_bound_scorer",
    "predictive_log_likelihood",
    "prequential_log_evidence",
    "prequential_log_likelihood",
]
