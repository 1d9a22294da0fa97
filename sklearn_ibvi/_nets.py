"""skorch plumbing shared by the families' nets: training rows for the epoch-end bound, callbacks,
and the one divergence error.
"""

from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PrintLog

from .exceptions import TrainingDivergedError


class BoundTrackingNet(NeuralNet):
    """A skorch ``NeuralNet`` that evaluates a bound on its training rows after every epoch.

    Subclasses read the rows of the current fit from ``self._train_batches`` (the training
    iterator) in ``on_epoch_end``; the handle is released when training ends, so a fitted
    estimator does not keep its training data alive (on the GPU, when trained there).
    """

    @property
    def _default_callbacks(self):
        # skorch's loss scorers would record a second, differently averaged train loss.
        return [("epoch_timer", EpochTimer()), ("print_log", PrintLog())]

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        if training:
            self._train_batches = iterator
        return iterator

    def on_train_end(self, net, **kwargs):
        super().on_train_end(net, **kwargs)
        self._train_batches = None

    def diverged(self, what, hint=""):
        """The error for a NaN/inf ``what`` (``'training loss'``, ``'log-likelihood'``)."""
        # `lr` as the user set it: parameter groups carry per-layer multipliers (μP) on top.
        return TrainingDivergedError(
            f"The {what} became non-finite in epoch {len(self.history)}: SGD diverged. Lower `lr` "
            f"(currently {self.lr:g}){hint}. The estimator keeps its previous state."
        )
