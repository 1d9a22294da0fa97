"""Observation models, normalised, as per-sample log-likelihoods.

Both method families train on the negative of these and report bounds with them, so every
normalising constant is here once: a bound that drops ``−½ log 2πσ²`` or the Jacobian of target
standardisation is not comparable across noise levels or models.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .gaussian import diagonal_gaussian_log_density

#: Floor of a learned noise variance (standardised units): a net that interpolates its training
#: targets would otherwise learn σ = 0 and an infinite likelihood.
MIN_NOISE_VARIANCE = 1e-6


def gaussian_log_likelihood(prediction, target, noise_std, target_scale=1.0):
    """``log N(y; m + s f, (s σ)²)`` per sample, for targets standardised as ``y_s = (y − m) / s``.

    Parameters
    ----------
    prediction : Tensor of shape (..., B, 1)
        Network output ``f`` in standardised units.
    target : Tensor of shape (B,)
        Standardised target ``y_s``.
    noise_std : float
        ``σ`` in standardised units.
    target_scale : float
        ``s``; the ``−log s`` term is the Jacobian that turns a density of ``y_s`` into one of ``y``.

    Returns
    -------
    log_likelihood : Tensor of shape (..., B)
    """
    prediction = prediction.squeeze(-1)
    residual = (target - prediction) / noise_std
    return diagonal_gaussian_log_density(residual * residual, math.log(noise_std * target_scale), 1)


def gaussian_log_likelihood_of_residuals(sum_squared_residuals, n_rows, noise_std, target_scale=1.0):
    """``Σ_i log N(y_i; m + s f_i, (s σ)²)`` over ``n_rows`` rows, from ``Σ_i r_i²`` (``r = y_s − f``).

    ``sum_squared_residuals`` may be a tensor (one sum per chain or weight draw); ``noise_std`` is
    in standardised units, as in :func:`gaussian_log_likelihood`.
    """
    log_std_sum = n_rows * math.log(noise_std * target_scale)
    return diagonal_gaussian_log_density(sum_squared_residuals / noise_std**2, log_std_sum, n_rows)


def sum_squared_residuals(log_likelihood, n_rows, noise_std, target_scale=1.0):
    """``Σ_i r_i²`` recovered from a Gaussian log-likelihood summed over ``n_rows`` rows.

    The inverse of :func:`gaussian_log_likelihood_of_residuals` in its first argument: the
    likelihood of every ``σ`` follows from one evaluation at any ``σ``: the log-likelihood is
    −½ Σ r²/σ² plus its value at zero residuals.
    """
    at_zero_residuals = diagonal_gaussian_log_density(0.0, n_rows * math.log(noise_std * target_scale), n_rows)
    return -2.0 * noise_std**2 * (log_likelihood - at_zero_residuals)


def noise_std_maximising_likelihood(sum_squared_residuals, n_rows):
    """``σ̂ = √(mean_k Σ_i r_ki² / n)``: the ``σ`` maximising ``mean_k Σ_i log N(r_ki; 0, σ²)``.

    ``sum_squared_residuals`` holds one sum per posterior sample ``k`` (a chain, a weight draw).
    The mean over samples is the Monte-Carlo expected log-likelihood of a variational bound, whose
    other terms do not depend on ``σ``: ``σ̂`` maximises the bound over the noise (type-II maximum
    likelihood). It is in standardised units.
    """
    return math.sqrt(max(float(torch.as_tensor(sum_squared_residuals).double().mean()) / n_rows, MIN_NOISE_VARIANCE))


def categorical_log_likelihood(logits, target):
    """``log softmax(f)_y`` per sample.

    Parameters
    ----------
    logits : Tensor of shape (..., B, C)
    target : Tensor of shape (B,), integer class indices

    Returns
    -------
    log_likelihood : Tensor of shape (..., B)
    """
    log_probs = F.log_softmax(logits, dim=-1)
    index = target.long().expand(log_probs.shape[:-1]).unsqueeze(-1)
    return log_probs.gather(-1, index).squeeze(-1)


class NegativeLogLikelihood(nn.Module):
    """Per-sample negative log-likelihood of stacked predictions, shape ``(K, B)``.

    The criterion skorch nets hold. ``noise_std`` and ``target_scale`` matter only for
    ``likelihood='gaussian'``.
    """

    def __init__(self, likelihood="categorical", noise_std=1.0, target_scale=1.0):
        super().__init__()
        self.likelihood = likelihood
        self.noise_std = noise_std
        self.target_scale = target_scale

    @property
    def step_scale(self):
        """Factor from ``lr`` to the step on the mean NLL: ``σ²`` for Gaussian, 1 for categorical.

        ``lr`` is given in the units of the mean squared error / 2 for regression (as in
        scikit-learn's MLPRegressor), so the SGD path does not depend on ``noise_std`` — only the
        bound does. The step on the mean NLL is then ``lr σ²``.
        """
        return self.noise_std**2 if self.likelihood == "gaussian" else 1.0

    def forward(self, prediction, target):
        if self.likelihood == "gaussian":
            return -gaussian_log_likelihood(prediction, target, self.noise_std, self.target_scale)
        return -categorical_log_likelihood(prediction, target)
