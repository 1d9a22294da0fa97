"""Entropy of the implicit posterior of SGD: the log-determinant change of one step.

One SGD step ``θ ← θ − α g(θ)`` maps the distribution ``q_t`` of the parameters to ``q_{t+1}``.
By the change-of-variables formula its entropy changes by ``log |det J|`` with
``J = I − α H`` (``H`` the Hessian of the minibatch loss) — Duvenaud, Maclaurin & Adams (2016),
"Early Stopping as Nonparametric Variational Inference", eq. (5).

This module holds the estimators of that change as small pure functions:

- :func:`exact_entropy_change`: ``log |det(I − α H)|`` from the full Hessian, in float64.
- :func:`stochastic_entropy_change`: the one-Hessian-vector-product estimate of the quadratic
  lower bound ``log|det(I − A)| ≥ −tr A − tr A²`` (valid when every eigenvalue of ``A`` is below
  :data:`QUADRATIC_BOUND_MAX_EIGENVALUE`).
- :func:`warp_gradient` and the warped estimator for the paper's entropy-friendly SGD.
- :func:`subsampled_entropy_change`: the change of a step that is probed only with probability
  ``ρ``, unbiased around a prediction of it, and the variance the skipping adds.
- :func:`dominant_eigenvalue`: a warm-started power iteration used to check the validity
  condition ``α λ_max(H) < 0.68``.
"""

import torch

from .gaussian import diagonal_gaussian_log_density, entropy_from_log_det

#: The quadratic bound ``log(1 − a) ≥ −a − a²`` holds for every eigenvalue ``a ≤ 0.6838``
#: (the positive root of ``log(1 − a) + a + a² = 0``); we check against 0.68.
QUADRATIC_BOUND_MAX_EIGENVALUE = 0.68


def gaussian_entropy(std):
    """Entropy ``Σ_j ½ log(2πe σ_j²)`` of a diagonal Gaussian with standard deviations ``std``.

    Parameters
    ----------
    std : Tensor
        Standard deviations, any shape; summed over all entries.

    Returns
    -------
    entropy : float
        In nats.
    """
    std = torch.as_tensor(std, dtype=torch.float64)
    return float(entropy_from_log_det(2.0 * torch.log(std).sum(), std.numel()))


def log_prior(theta, std):
    """Log density of ``θ`` under the prior ``N(0, diag(σ²))``, per chain.

    Parameters
    ----------
    theta : Tensor of shape (K, D)
        ``K`` parameter vectors (chains).
    std : Tensor of shape (D,)
        Prior standard deviations.

    Returns
    -------
    log_density : Tensor of shape (K,), float64
    """
    theta = theta.double()
    std = std.double()
    return diagonal_gaussian_log_density(((theta / std) ** 2).sum(-1), torch.log(std).sum(), std.numel())


def exact_entropy_change(hessian, step_size):
    """``log |det(I − α H)|`` for a full Hessian, computed in float64.

    Parameters
    ----------
    hessian : Tensor of shape (D, D)
        Hessian of the loss whose gradient the step follows.
    step_size : float
        ``α``.

    Returns
    -------
    change : float
        The exact entropy change of the step's push-forward.
    """
    hessian = hessian.double()
    jacobian = torch.eye(hessian.shape[0], dtype=torch.float64, device=hessian.device)
    jacobian = jacobian - step_size * hessian
    return float(torch.linalg.slogdet(jacobian)[1])


def quadratic_entropy_change_bound(hessian, step_size):
    """The quadratic lower bound ``−α tr H − α² tr H²`` on ``log|det(I − α H)|`` (exact traces).

    Valid (a lower bound) when ``α λ_max(H) < 0.68``; used as the reference the stochastic
    estimator is unbiased for.
    """
    hessian = hessian.double()
    return float(-step_size * torch.trace(hessian) - step_size**2 * (hessian * hessian.T).sum())


def stochastic_entropy_change(probe, hessian_probe, step_size):
    """One-HVP unbiased estimate of ``−α tr H − α² tr H²``: ``−α rᵀHr − α² ‖Hr‖²``.

    With ``r`` a Rademacher (or standard normal) probe, ``E[rᵀ H r] = tr H`` and
    ``E[‖H r‖²] = E[rᵀ H² r] = tr H²`` (``H`` symmetric), so one Hessian-vector product
    suffices — the paper's Algorithm 2 spends two.

    Parameters
    ----------
    probe : Tensor of shape (..., D)
        The probe ``r``; leading dimensions are independent estimates (e.g. chains).
    hessian_probe : Tensor of shape (..., D)
        ``H r``.
    step_size : float

    Returns
    -------
    change : Tensor of shape (...)
    """
    return -step_size * (probe * hessian_probe).sum(-1) - step_size**2 * (
        hessian_probe * hessian_probe
    ).sum(-1)


def subsampled_entropy_change(estimate, probed, prediction, probe_fraction):
    """Unbiased change ``π + (I/ρ)(ĉ − π)`` of a step probed with probability ``ρ`` (``I ~ Bernoulli(ρ)``).

    ``π`` is any prediction of the change fixed before ``I`` and the probe are drawn (the running
    mean of earlier estimates): ``E_I[π + (I/ρ)(ĉ − π)] = ĉ``, so the running entropy stays unbiased
    whatever ``π`` is, and the variance the skipping adds, ``(1 − ρ)/ρ · (ĉ − π)²``, shrinks from
    ``(1 − ρ)/ρ · ĉ²`` (``π = 0``, plain reweighting) to the spread of the change around its
    prediction. Its unbiased estimate is ``(1 − ρ) · ((I/ρ)(ĉ − π))²``.

    Parameters
    ----------
    estimate : Tensor (...)
        ``ĉ``, the step's estimated change where probed (any value where not).
    probed : Tensor (...) of bool
        ``I``.
    prediction : Tensor (...)
        ``π``.
    probe_fraction : float
        ``ρ``.

    Returns
    -------
    change : Tensor (...)
    added_variance : Tensor (...)
    """
    deviation = torch.where(probed, (estimate - prediction) / probe_fraction, torch.zeros_like(prediction))
    return prediction + deviation, (1 - probe_fraction) * deviation**2


def warp_gradient(grad, threshold):
    """Entropy-friendly gradient ``g − g₀ tanh(g / g₀)`` and its Jacobian factor ``tanh²(g / g₀)``.

    Small gradient entries (``|g| ≪ g₀``) are damped to ``≈ g³ / 3g₀²``, so directions that are
    already fitted contract less and keep their entropy (paper §4).
    The step's Jacobian is ``I − α D H`` with ``D = diag(tanh²(g / g₀))``.

    Returns
    -------
    warped : Tensor
    jacobian_factor : Tensor
        ``D`` as a tensor shaped like ``grad``.
    """
    squashed = torch.tanh(grad / threshold)
    return grad - threshold * squashed, squashed * squashed


def warped_stochastic_entropy_change(sqrt_factor_probe, hessian_probe, sqrt_factor, step_size):
    """Unbiased estimate of ``−α tr(DH) − α² tr((DH)²)`` for the warped step ``I − α D H``.

    ``det(I − α D H) = det(I − α D^½ H D^½)``; with ``u = D^½ r`` and ``v = H u``,
    ``E[uᵀ v] = tr(D^½ H D^½)`` and ``E[‖D^½ v‖²] = tr((D^½ H D^½)²)``.

    Parameters
    ----------
    sqrt_factor_probe : Tensor (..., D)
        ``u = D^½ r``.
    hessian_probe : Tensor (..., D)
        ``v = H u``.
    sqrt_factor : Tensor (..., D)
        ``D^½ = |tanh(g / g₀)|``.
    step_size : float
    """
    return -step_size * (sqrt_factor_probe * hessian_probe).sum(-1) - step_size**2 * (
        (sqrt_factor * hessian_probe) ** 2
    ).sum(-1)


def dominant_eigenvalue(hvp, vector, n_iterations):
    """Power iteration for the largest eigenvalue of a symmetric operator, warm-started.

    Parameters
    ----------
    hvp : callable
        ``v ↦ H v`` on tensors of shape (K, D) (K independent operators, e.g. chains).
    vector : Tensor (K, D)
        Start vector (the previous call's output converges over a run).
    n_iterations : int

    Returns
    -------
    eigenvalue : Tensor (K,)
        Rayleigh quotient of the last iterate: the most *positive* eigenvalue when it dominates
        in magnitude. When a negative eigenvalue dominates, the iteration is repeated on the
        shifted operator ``H − λ I`` (all eigenvalues ≥ 0) to recover the most positive one,
        which is what the validity condition ``α λ_max < 0.68`` is about.
    vector : Tensor (K, D)
    """
    vector = vector / vector.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    eigenvalue = None
    for _ in range(n_iterations):
        image = hvp(vector)
        eigenvalue = (vector * image).sum(-1)
        vector = image / image.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    negative = eigenvalue < 0
    if bool(negative.any()):
        shift = torch.where(negative, eigenvalue, torch.zeros_like(eigenvalue)).unsqueeze(-1)
        shifted = vector
        for _ in range(n_iterations):
            image = hvp(shifted) - shift * shifted
            shifted_value = (shifted * image).sum(-1)
            shifted = image / image.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        eigenvalue = torch.where(negative, shifted_value + shift.squeeze(-1), eigenvalue)
    return eigenvalue, vector
