"""skorch plumbing shared by the families' nets: training rows for the epoch-end bound, callbacks,
and the one divergence error.
"""

import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PrintLog

from ..exceptions import TrainingDivergedError
from ..math.likelihoods import (
    INITIAL_NOISE_DOF,
    ObservationNoise,
    noise_std_maximising_likelihood,
    observation_log_likelihood,
    squared_residuals,
    student_t_noise_maximising_likelihood,
)


class EpochLog(PrintLog):
    """skorch's ``PrintLog``, which tabulates an epoch only to print it: with ``verbose=0`` (the
    default) and printing as its sink, formatting the table would be work for nothing after every
    epoch."""

    def on_epoch_end(self, net, **kwargs):
        if net.verbose or self.sink is not print:
            super().on_epoch_end(net, **kwargs)


class BoundTrackingNet(NeuralNet):
    """A skorch ``NeuralNet`` that evaluates a bound on its training rows after every epoch.

    Subclasses read the rows of the current fit from ``self._train_batches`` (the training
    iterator) in ``on_epoch_end``; the handle is released when training ends, so a fitted
    estimator does not keep its training data alive (on the GPU, when trained there).

    Regression nets train on the Gaussian criterion at a fixed ``σ``: their steps do not depend on
    the noise, since ``lr`` is in the units of half the squared error
    (:attr:`~sklearn_ibvi.math.likelihoods.NegativeLogLikelihood.step_scale`). The observation
    noise in force for the bound and for predictions is ``noise_``
    (:class:`~sklearn_ibvi.math.likelihoods.ObservationNoise`, standardised units): Gaussian
    (``noise='gaussian'``) or Student-t (``'student_t'``). Its scale is the criterion's fixed
    ``noise_std``, or, with ``learn_noise``, refit after every epoch to the value that maximises
    that epoch's bound (the families' other terms do not depend on it); a Student-t's degrees of
    freedom are always refit so.
    """

    def __init__(self, *args, learn_noise=False, noise="gaussian", **kwargs):
        super().__init__(*args, **kwargs)
        self.learn_noise = learn_noise
        self.noise = noise

    def initialize_criterion(self):
        super().initialize_criterion()
        criterion = self.criterion_
        if criterion.likelihood == "gaussian":
            dof = INITIAL_NOISE_DOF if self.noise == "student_t" else float("inf")
            self.noise_ = ObservationNoise(float(criterion.noise_std), dof)
        else:
            self.noise_ = None
        return self

    @property
    def refits_noise(self):
        """Whether any part of the observation noise is fitted to the training rows."""
        return self.noise_ is not None and (self.learn_noise or not self.noise_.is_gaussian)

    def observed_log_likelihood(self, log_likelihood, refit_noise=False):
        """Log-likelihood of every row under every posterior sample, under the noise in force,
        shape ``(K, n)``.

        ``log_likelihood`` of shape ``(K, n)`` holds each row's value under each posterior sample
        (chain or weight draw), as the criterion computed it. With ``refit_noise``, a learned noise
        is first set to the maximiser of their mean over samples (what the end of an epoch does);
        ``score`` evaluates at the noise in force without refitting. Other likelihoods are
        returned as they are.
        """
        if not self.refits_noise:  # classification, or the criterion's own fixed Gaussian noise
            return log_likelihood
        criterion = self.criterion_
        squares = squared_residuals(log_likelihood, criterion.noise_std, criterion.target_scale)
        if refit_noise and bool(torch.isfinite(squares).all()):  # else the caller reports the divergence
            if self.noise_.is_gaussian:
                self.noise_ = ObservationNoise(noise_std_maximising_likelihood(squares))
            else:
                fixed_std = None if self.learn_noise else self.noise_.std
                self.noise_ = student_t_noise_maximising_likelihood(squares, std=fixed_std, start=self.noise_)
        return observation_log_likelihood(squares, self.noise_, criterion.target_scale)

    def record_noise(self):
        """History columns ``noise_std`` (in units of ``y``) and ``noise_dof`` of regression nets."""
        if self.noise_ is not None:
            self.history.record("noise_std", self.noise_.std * self.criterion_.target_scale)
            self.history.record("noise_dof", self.noise_.dof)

    @property
    def _default_callbacks(self):
        # skorch's loss scorers would record a second, differently averaged train loss.
        return [("epoch_timer", EpochTimer()), ("print_log", EpochLog())]

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
