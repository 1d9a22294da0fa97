"""Observation models, normalised, as per-sample log-likelihoods.

Both method families train on the negative of these and report bounds with them, so every
normalising constant is here once: a bound that drops ``−½ log 2πσ²`` or the Jacobian of target
standardisation is not comparable across noise levels or models.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special
from torch import nn

from .gaussian import diagonal_gaussian_log_density

#: Floor of a learned noise variance (standardised units): a net that interpolates its training
#: targets would otherwise learn σ = 0 and an infinite likelihood.
MIN_NOISE_VARIANCE = 1e-6

#: Range of a learned Student-t noise's degrees of freedom ν. Above 2 its variance σ²ν/(ν − 2) is
#: finite, so ``predict(X, return_std=True)`` is defined; at the top the density is the Gaussian's.
MIN_NOISE_DOF = 2.5
MAX_NOISE_DOF = 1e6

#: Where the search for a Student-t noise's ν starts, with σ at the Gaussian maximiser.
INITIAL_NOISE_DOF = 10.0
#: Newton's method for the Student-t noise stops when its step would move ``(log σ, log ν)`` less
#: than this, or after a step that promised to raise the mean log-likelihood per residual less
#: than the second (rounding of the log-gamma terms is ~1e-13 at ν ~ 300): tight, so that the
#: maximiser does not depend on where the search started; steps are halved at most the third.
NOISE_FIT_TOLERANCE = 1e-10
NOISE_FIT_GAIN_TOLERANCE = 1e-12
MAX_NOISE_FIT_HALVINGS = 30
MAX_NOISE_FIT_STEPS = 100
#: Its steps are at most this long in ``(log σ, log ν)`` and divide by curvatures at least this large.
MAX_NOISE_FIT_STEP = 2.0
MIN_NOISE_FIT_CURVATURE = 1e-12


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


@dataclass(frozen=True)
class ObservationNoise:
    """A regressor's observation noise in standardised units: scale ``σ`` and degrees of freedom ``ν``.

    ``ν = inf`` is the Gaussian ``N(0, σ²)``; a finite ``ν`` the Student-t ``St(0, σ, ν)``, whose
    heavier tails fit residuals with a few large values.
    """

    std: float
    dof: float = math.inf

    @property
    def is_gaussian(self):
        return math.isinf(self.dof)

    @property
    def variance(self):
        """``σ²`` (Gaussian) or ``σ² ν / (ν − 2)`` (Student-t, ``ν > 2``)."""
        return self.std**2 if self.is_gaussian else self.std**2 * self.dof / (self.dof - 2.0)


def student_t_log_normaliser(dof):
    """``c(ν) = log Γ((ν+1)/2) − log Γ(ν/2) − ½ log νπ``: the log density of ``St(0, 1, ν)`` at 0."""
    return math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)


def student_t_log_density(squared_z, log_scale, dof):
    """``log St(r; 0, σ, ν) = c(ν) − log σ − (ν+1)/2 log(1 + z²/ν)`` elementwise, for ``z = r / σ``
    (:func:`student_t_log_normaliser`).

    ``dof`` may be a float or a 0-d tensor (differentiable).
    """
    dof = torch.as_tensor(dof, dtype=squared_z.dtype, device=squared_z.device)
    normaliser = torch.lgamma((dof + 1) / 2) - torch.lgamma(dof / 2) - 0.5 * torch.log(dof * math.pi)
    return normaliser - log_scale - (dof + 1) / 2 * torch.log1p(squared_z / dof)


def observation_log_likelihood(squared_residuals, noise, target_scale=1.0):
    """``log p(y_i | f_i)`` elementwise under ``noise``, for targets standardised as ``y_s = (y − m) / s``.

    Parameters
    ----------
    squared_residuals : Tensor
        ``r² = (y_s − f)²`` in standardised units, any shape.
    noise : ObservationNoise
    target_scale : float
        ``s``; the ``−log s`` term is the Jacobian that turns a density of ``y_s`` into one of ``y``.
    """
    squared_z = squared_residuals / noise.std**2
    log_scale = math.log(noise.std * target_scale)
    if noise.is_gaussian:
        return diagonal_gaussian_log_density(squared_z, log_scale, 1)
    return student_t_log_density(squared_z, log_scale, noise.dof)


def squared_residuals(log_likelihood, noise_std, target_scale=1.0):
    """``r²`` recovered from Gaussian log-likelihoods ``log N(y; m + s f, (s σ)²)``, elementwise.

    The inverse of :func:`gaussian_log_likelihood` in the residual: the training criterion's
    per-row values at its own ``σ`` give the residuals, and through them the likelihood under any
    other noise.
    """
    at_zero_residual = diagonal_gaussian_log_density(0.0, math.log(noise_std * target_scale), 1)
    return (-2.0 * noise_std**2 * (log_likelihood - at_zero_residual)).clamp_min(0.0)


def noise_std_maximising_likelihood(squared_residuals):
    """``σ̂ = √(mean_ki r_ki²)``: the ``σ`` maximising ``mean_k Σ_i log N(r_ki; 0, σ²)``.

    ``squared_residuals`` has shape ``(K, n)``, one row per posterior sample ``k`` (a chain, a weight
    draw). The mean over samples is the Monte-Carlo expected log-likelihood of a variational bound,
    whose other terms do not depend on ``σ``: ``σ̂`` maximises the bound over the noise (type-II
    maximum likelihood). It is in standardised units, floored at ``√MIN_NOISE_VARIANCE``.
    """
    return math.sqrt(max(float(torch.as_tensor(squared_residuals).double().mean()), MIN_NOISE_VARIANCE))


def _student_t_mean_log_likelihood_derivatives(squares, log_std, log_dof):
    """``mean_ki log St(r_ki; 0, σ, ν)``, its gradient and its Hessian in ``(log σ, log ν)`` (numpy).

    With ``w = z² = r²/σ²`` and ``D = ν + w``, per element:
    ``∂ℓ/∂log σ = −1 + (ν+1) w/D``, ``∂²ℓ/∂log σ² = −2ν(ν+1) w/D²``, ``∂²ℓ/∂log σ ∂ν = w(w−1)/D²``,
    ``∂ℓ/∂ν = c'(ν) − ½ log(1 + w/ν) + (ν+1) w/(2νD)`` and
    ``∂²ℓ/∂ν² = c''(ν) + w/(2νD) − w(ν² + 2ν + w)/(2ν²D²)``; ``∂/∂log ν = ν ∂/∂ν``.
    """
    std, dof = math.exp(log_std), math.exp(log_dof)
    w = squares / std**2
    denominator = dof + w
    log_term = np.log1p(w / dof)
    value = student_t_log_normaliser(dof) - log_std - 0.5 * (dof + 1) * log_term.mean()
    d_normaliser = 0.5 * (special.digamma((dof + 1) / 2) - special.digamma(dof / 2)) - 0.5 / dof
    dd_normaliser = 0.25 * (special.polygamma(1, (dof + 1) / 2) - special.polygamma(1, dof / 2)) + 0.5 / dof**2
    share = (w / denominator).mean()
    d_std = -1.0 + (dof + 1) * share
    d_dof = d_normaliser - 0.5 * log_term.mean() + (dof + 1) * share / (2 * dof)
    dd_std = -2.0 * dof * (dof + 1) * (w / denominator**2).mean()
    dd_std_dof = (w * (w - 1) / denominator**2).mean()
    dd_dof = (
        dd_normaliser
        + share / (2 * dof)
        - (w * (dof**2 + 2 * dof + w) / denominator**2).mean() / (2 * dof**2)
    )
    gradient = np.array([d_std, dof * d_dof])
    hessian = np.array([[dd_std, dof * dd_std_dof], [dof * dd_std_dof, dof**2 * dd_dof + dof * d_dof]])
    return value, gradient, hessian


def student_t_noise_maximising_likelihood(squared_residuals, std=None, start=None):
    """The Student-t noise maximising ``mean_k Σ_i log St(r_ki; 0, σ, ν)``, ``ν`` in
    ``[MIN_NOISE_DOF, MAX_NOISE_DOF]``.

    No closed form: Newton's method over ``(log σ, log ν)`` in float64 with the exact Hessian
    (its eigenvalues made negative where the likelihood is not concave), steps halved until the
    likelihood does not fall, and coordinates held at a bound the gradient pushes against. It starts
    from ``start`` (the last epoch's noise, say) or else the Gaussian maximiser and
    ``INITIAL_NOISE_DOF``. With ``std`` given, ``σ`` stays fixed and only ``ν`` is fitted.

    Parameters
    ----------
    squared_residuals : Tensor of shape (K, n)
        Standardised squared residuals, one row per posterior sample.
    std : float or None
        A fixed ``σ``, or ``None`` to fit it.
    start : ObservationNoise or None
        Where the search starts (its ``σ`` only where ``σ`` is fitted).

    Returns
    -------
    noise : ObservationNoise
    """
    squares = torch.as_tensor(squared_residuals, dtype=torch.float64).cpu().numpy()
    learned = np.array([std is None, True])
    if start is None or start.is_gaussian:
        start = ObservationNoise(noise_std_maximising_likelihood(squares), INITIAL_NOISE_DOF)
    lower = np.array([0.5 * math.log(MIN_NOISE_VARIANCE), math.log(MIN_NOISE_DOF)])
    upper = np.array([math.inf, math.log(MAX_NOISE_DOF)])
    x = np.clip([math.log(start.std if std is None else std), math.log(start.dof)], lower, upper)
    value, gradient, hessian = _student_t_mean_log_likelihood_derivatives(squares, *x)
    for _ in range(MAX_NOISE_FIT_STEPS):
        free = learned & ~((x <= lower) & (gradient < 0)) & ~((x >= upper) & (gradient > 0))
        if not free.any():
            break
        g, h = gradient[free], hessian[np.ix_(free, free)]
        # Newton's step with the Hessian's eigenvalues made negative (|λ|, floored): the plain step
        # where the likelihood is concave, an ascent direction where it is not (as on the
        # near-Gaussian plateau of large ν, whose gradient in log ν vanishes but points the way).
        eigenvalues, eigenvectors = np.linalg.eigh(h)
        curvature = np.maximum(np.abs(eigenvalues), MIN_NOISE_FIT_CURVATURE)
        direction = np.zeros(2)
        direction[free] = eigenvectors @ ((eigenvectors.T @ g) / curvature)
        size = np.max(np.abs(direction))
        if size <= NOISE_FIT_TOLERANCE and np.all(eigenvalues < 0):
            break  # converged
        # The last step: one that promises less gain than rounding can resolve (flat in log ν).
        last = g @ direction[free] <= NOISE_FIT_GAIN_TOLERANCE
        direction *= min(1.0, MAX_NOISE_FIT_STEP / max(size, 1e-300))
        for halvings in range(MAX_NOISE_FIT_HALVINGS):
            candidate = np.clip(x + 0.5**halvings * direction, lower, upper)
            derivatives = _student_t_mean_log_likelihood_derivatives(squares, *candidate)
            if derivatives[0] >= value:
                x, (value, gradient, hessian) = candidate, derivatives
                break
        else:
            break  # no step gains: a maximum up to rounding
        if last:
            break
    return ObservationNoise(std=math.exp(x[0]), dof=math.exp(x[1]))


#: The search for predictive quantiles stops when no step moves them further than this, in units of
#: ``σ``; in the worst case (bisection only) after enough halvings for any bracket float64 can hold.
QUANTILE_TOLERANCE = 1e-9
MAX_QUANTILE_ITERATIONS = 200


def mixture_quantile(means, noise, probability):
    """The ``probability`` quantile of the mixture ``(1/S) Σ_s p_noise(y − means[s])``, per column.

    The mixture's quantile lies between the smallest and the largest component's. Newton steps on
    the mixture's CDF, kept inside that bracket (which each step narrows) by bisecting where a step
    would leave it, converge for every column at once.

    Parameters
    ----------
    means : ndarray of shape (S, n)
        Component means (posterior samples' predictions), standardised units.
    noise : ObservationNoise
    probability : float in (0, 1)

    Returns
    -------
    quantile : ndarray of shape (n,)
    """
    if noise.is_gaussian:
        component_cdf, component_quantile = special.ndtr, special.ndtri(probability)

        def component_density(z):
            return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    else:
        dof = noise.dof
        component_cdf = functools.partial(special.stdtr, dof)
        component_quantile = special.stdtrit(dof, probability)
        log_normaliser = student_t_log_normaliser(dof)

        def component_density(z):
            return np.exp(log_normaliser - 0.5 * (dof + 1) * np.log1p(z * z / dof))

    low = means.min(0) + noise.std * component_quantile
    high = means.max(0) + noise.std * component_quantile
    quantile = 0.5 * (low + high)
    for _ in range(MAX_QUANTILE_ITERATIONS):
        z = (quantile - means) / noise.std
        excess = component_cdf(z).mean(0) - probability
        low, high = np.where(excess < 0, quantile, low), np.where(excess < 0, high, quantile)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = quantile - excess * noise.std / component_density(z).mean(0)
        inside = (newton >= low) & (newton <= high)
        following = np.where(inside, newton, 0.5 * (low + high))
        converged = np.max(np.abs(following - quantile), initial=0.0) <= QUANTILE_TOLERANCE * noise.std
        quantile = following
        if converged:
            break
    return quantile


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
