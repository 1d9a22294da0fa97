"""skorch plumbing shared by the families' nets: training rows for the epoch-end bound, callbacks,
and the one divergence error.
"""

from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PrintLog

from ..exceptions import TrainingDivergedError
from ..math.likelihoods import (
    gaussian_log_likelihood_of_residuals,
    noise_std_maximising_likelihood,
    sum_squared_residuals,
)


class BoundTrackingNet(NeuralNet):
    """A skorch ``NeuralNet`` that evaluates a bound on its training rows after every epoch.

    Subclasses read the rows of the current fit from ``self._train_batches`` (the training
    iterator) in ``on_epoch_end``; the handle is released when training ends, so a fitted
    estimator does not keep its training data alive (on the GPU, when trained there).

    The Gaussian observation noise in force for the bound and for predictions is ``noise_std_``
    (standardised units). It is the criterion's fixed ``noise_std``, or, with ``learn_noise``,
    refit after every epoch to the value that maximises that epoch's bound (the families' other
    terms do not depend on it). Training steps do not depend on it: ``lr`` is in the units of
    half the squared error (:attr:`~sklearn_ibvi.math.likelihoods.NegativeLogLikelihood.step_scale`).
    """

    def __init__(self, *args, learn_noise=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.learn_noise = learn_noise

    def initialize_criterion(self):
        super().initialize_criterion()
        criterion = self.criterion_
        self.noise_std_ = float(criterion.noise_std) if criterion.likelihood == "gaussian" else float("nan")
        return self

    def observed_log_likelihood(self, log_likelihood, n_rows, refit_noise=False):
        """Log-likelihoods at the noise in force, from ``log_likelihood`` at the criterion's noise.

        ``log_likelihood`` holds one full-data value per posterior sample (chain or weight draw),
        as the criterion computed it. With ``refit_noise`` and ``learn_noise``, ``noise_std_`` is
        first set to the maximiser of their mean (what the end of an epoch does); ``score``
        evaluates at the noise in force without refitting. Other likelihoods pass through.
        """
        criterion = self.criterion_
        if criterion.likelihood != "gaussian" or not self.learn_noise:
            return log_likelihood
        squares = sum_squared_residuals(log_likelihood, n_rows, criterion.noise_std, criterion.target_scale)
        if refit_noise:
            self.noise_std_ = noise_std_maximising_likelihood(squares, n_rows)
        return gaussian_log_likelihood_of_residuals(squares, n_rows, self.noise_std_, criterion.target_scale)

    def record_noise(self):
        """History column ``noise_std`` of regression nets: the noise in force, in units of ``y``."""
        if self.criterion_.likelihood == "gaussian":
            self.history.record("noise_std", self.noise_std_ * self.criterion_.target_scale)

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

    def diverged(self, what):
        """The error for a NaN/inf ``what`` (``'training loss'``, ``'log-likelihood'``)."""
        # `lr` as the user set it: parameter groups carry per-layer multipliers (μP) on top.
        return TrainingDivergedError(
            f"The {what} became non-finite in epoch {len(self.history)}: SGD diverged. Lower `lr` "
            f"(currently {self.lr:g}). The estimator keeps its previous state."
        )
