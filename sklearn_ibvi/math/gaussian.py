"""Gaussian families over a flat parameter vector: sampling, log-determinant, entropy and KL.

:class:`Gaussian` and the pure functions :func:`sample`, :func:`covariance_matrix`,
:func:`log_det_covariance`, :func:`entropy` and :func:`kl_divergence` cover the three
covariance families over a flat vector of ``P`` parameters,

===============  ===============================  =====================
family           covariance Σ                     parameters
===============  ===============================  =====================
'lowrank'        S Sᵀ, S ∈ R^{P×R}                 ``cov_factor``
'diagonal'       diag(d²), d ∈ R^P                 ``cov_diag_scale``
'diag+lowrank'   diag(d²) + S Sᵀ                   both
===============  ===============================  =====================

a sample being w = μ + S z + d ⊙ ε with z ~ N(0, I_R), ε ~ N(0, I_P).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

COVARIANCES = ("lowrank", "diagonal", "diag+lowrank")


# ---------------------------------------------------------------------------
# Gaussians over a flat parameter vector
# ---------------------------------------------------------------------------


class Gaussian(NamedTuple):
    """Gaussian N(mean, diag(cov_diag_scale²) + cov_factor cov_factorᵀ) over P parameters.

    The family is given by which covariance parts are present (see :attr:`family`).

    Parameters
    ----------
    mean : Tensor of shape (P,)
    cov_factor : Tensor of shape (P, R) or None
        Low-rank factor S.
    cov_diag_scale : Tensor of shape (P,) or None
        Diagonal scale d; the variance is d², so the sign of d is irrelevant.
    """

    mean: Tensor
    cov_factor: Tensor | None = None
    cov_diag_scale: Tensor | None = None

    @property
    def family(self) -> str:
        """'lowrank', 'diagonal' or 'diag+lowrank'."""
        if self.cov_factor is not None and self.cov_diag_scale is not None:
            return "diag+lowrank"
        if self.cov_factor is not None:
            return "lowrank"
        if self.cov_diag_scale is not None:
            return "diagonal"
        raise ValueError("A Gaussian needs a cov_factor, a cov_diag_scale or both.")

    @property
    def n_params(self) -> int:
        """P, the dimension."""
        return self.mean.shape[0]

    @property
    def rank(self) -> int:
        """R, the number of columns of the low-rank factor (0 without one)."""
        return 0 if self.cov_factor is None else self.cov_factor.shape[1]

    def to(self, *args, **kwargs) -> Gaussian:
        """The same distribution with every tensor passed through ``Tensor.to``."""
        return Gaussian(*(None if t is None else t.to(*args, **kwargs) for t in self))


def sample(q: Gaussian, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
    """Draw w = μ + S z + d ⊙ ε, reparametrized (differentiable in μ, S, d).

    Parameters
    ----------
    q : Gaussian
    n_samples : int
        Number of independent draws.
    generator : torch.Generator on the CPU, optional
        Draw the noise from it, in float64 on the CPU, then cast and move it to ``q``'s dtype and
        device: a seeded generator gives the same weights on every device (to ``q``'s precision).
        Without it the global RNG of ``q``'s device draws, in ``q``'s dtype, on the device.

    Returns
    -------
    Tensor of shape (n_samples, P)
        z is drawn first, then ε.
    """

    def standard_normal(*shape):
        if generator is None:
            return torch.randn(*shape, dtype=q.mean.dtype, device=q.mean.device)
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(q.mean.device, q.mean.dtype)

    w = q.mean.expand(n_samples, q.n_params)
    if q.cov_factor is not None:
        w = w + standard_normal(n_samples, q.rank) @ q.cov_factor.T
    if q.cov_diag_scale is not None:
        w = w + standard_normal(n_samples, q.n_params) * q.cov_diag_scale
    return w


def sample_float64(q: Gaussian, n_samples: int, generator: torch.Generator) -> Tensor:
    """The draws of ``sample(q, n_samples, generator)``, computed in float64 on the CPU, not differentiable.

    The same noise, z then ε from the CPU ``generator``, and the same arithmetic as :func:`sample`
    on a float64 CPU copy of ``q``, in place: one (n_samples, P) float64 array instead of four.
    For predictions, which draw many weights once and need no gradient.
    """
    with torch.no_grad():
        q = q.to("cpu", torch.float64)
        z = torch.randn(n_samples, q.rank, generator=generator, dtype=torch.float64) if q.rank else None
        if q.cov_diag_scale is None:
            w = q.mean.expand(n_samples, q.n_params).clone()
        else:
            w = torch.randn(n_samples, q.n_params, generator=generator, dtype=torch.float64)
            w.mul_(q.cov_diag_scale).add_(q.mean)
        if z is not None:
            w.addmm_(z, q.cov_factor.T)
    return w


def covariance_matrix(q: Gaussian) -> Tensor:
    """Dense Σ = diag(d²) + S Sᵀ, shape (P, P). For small layers and tests only."""
    cov = q.mean.new_zeros(q.n_params, q.n_params)
    if q.cov_factor is not None:
        cov = cov + q.cov_factor @ q.cov_factor.T
    if q.cov_diag_scale is not None:
        cov = cov + torch.diag(q.cov_diag_scale**2)
    return cov


def _diag_plus_lowrank_cholesky(cov_diag_scale: Tensor, cov_factor: Tensor | None):
    """Pieces of the Woodbury identity for Σ = D + S Sᵀ, D = diag(d²).

    Σ⁻¹ = D^{-½} (I − A C⁻¹ Aᵀ) D^{-½},   A = D^{-½} S,   C = I_R + AᵀA = L Lᵀ,
    log|Σ| = Σ_j log d_j² + log|C|      (matrix determinant lemma).

    Returns ``(inv_d, A, L)``; A and L are None without a factor. C ⪰ I, so the
    Cholesky factor of this R × R matrix is always well conditioned.
    """
    inv_d = 1.0 / cov_diag_scale.abs()
    if cov_factor is None or cov_factor.shape[1] == 0:
        return inv_d, None, None
    a = inv_d[:, None] * cov_factor
    c = torch.eye(a.shape[1], dtype=a.dtype, device=a.device) + a.T @ a
    return inv_d, a, torch.linalg.cholesky(c)


def _log_det_diag_plus_lowrank(inv_d: Tensor, chol: Tensor | None) -> Tensor:
    log_det = -2.0 * torch.log(inv_d).sum()
    if chol is not None:
        log_det = log_det + 2.0 * torch.log(torch.diagonal(chol)).sum()
    return log_det


def _trace_precision_times_covariance(p_pieces, q: Gaussian) -> Tensor:
    """tr(Σ_p⁻¹ Σ_q) in O(P R²), Σ_p given by its Woodbury pieces.

    With B the whitened q-part (B = D_p^{-½} S_q, r = d_q²/d_p²):
    tr(Σ_p⁻¹ D_q) = Σ r − tr(C⁻¹ Aᵀ diag(r) A),
    tr(Σ_p⁻¹ S_q S_qᵀ) = ‖B‖² − ‖L⁻¹ AᵀB‖².
    """
    inv_d, a, chol = p_pieces
    trace = q.mean.new_zeros(())
    if q.cov_diag_scale is not None:
        r = (q.cov_diag_scale * inv_d) ** 2
        trace = trace + r.sum()
        if a is not None:
            # tr(C⁻¹ Aᵀ diag(r) A) = ‖L⁻¹ Aᵀ diag(√r)‖²_F
            k = torch.linalg.solve_triangular(chol, (a * r.sqrt()[:, None]).T, upper=False)
            trace = trace - (k**2).sum()
    if q.cov_factor is not None:
        b = inv_d[:, None] * q.cov_factor
        trace = trace + (b**2).sum()
        if a is not None:
            k = torch.linalg.solve_triangular(chol, a.T @ b, upper=False)
            trace = trace - (k**2).sum()
    return trace


def _mahalanobis_sq(p_pieces, delta: Tensor) -> Tensor:
    """δᵀ Σ_p⁻¹ δ = ‖D^{-½}δ‖² − ‖L⁻¹ Aᵀ D^{-½}δ‖²  (Woodbury)."""
    inv_d, a, chol = p_pieces
    white = inv_d * delta
    out = (white**2).sum()
    if a is not None:
        k = torch.linalg.solve_triangular(chol, (a.T @ white)[:, None], upper=False)
        out = out - (k**2).sum()
    return out


def _kl_dense(mean_q, cov_q, mean_p, cov_p) -> Tensor:
    """KL between Gaussians given dense covariances; inf if either is singular."""
    chol_p, info_p = torch.linalg.cholesky_ex(cov_p)
    chol_q, info_q = torch.linalg.cholesky_ex(cov_q)
    if info_p.item() != 0 or info_q.item() != 0:
        return mean_q.new_tensor(math.inf)
    n = mean_q.shape[0]
    trace = (torch.cholesky_solve(cov_q, chol_p)).diagonal().sum()
    delta = (mean_q - mean_p)[:, None]
    maha = (delta * torch.cholesky_solve(delta, chol_p)).sum()
    log_det_p = 2.0 * torch.log(torch.diagonal(chol_p)).sum()
    log_det_q = 2.0 * torch.log(torch.diagonal(chol_q)).sum()
    return 0.5 * (trace + maha - n + log_det_p - log_det_q)


def _is_singular_lowrank(q: Gaussian) -> bool:
    return q.family == "lowrank" and q.rank < q.n_params


def _has_zero_variance(q: Gaussian) -> bool:
    return q.cov_diag_scale is not None and bool((q.cov_diag_scale == 0).any())


def log_det_covariance(q: Gaussian) -> Tensor:
    """Log-determinant log|Σ| in float64; O(P R²) via the matrix determinant lemma.

    Returns -inf for a singular covariance: 'lowrank' with R < P, or a zero diagonal
    scale (the latter treated as singular even when S would cover it).
    """
    q = q.to(torch.float64)
    if _is_singular_lowrank(q) or _has_zero_variance(q):
        return q.mean.new_tensor(-math.inf)
    if q.family == "lowrank":  # R ≥ P: dense P × P with P ≤ R is cheap
        chol, info = torch.linalg.cholesky_ex(covariance_matrix(q))
        if info.item() != 0:
            return q.mean.new_tensor(-math.inf)
        return 2.0 * torch.log(torch.diagonal(chol)).sum()
    inv_d, _, chol = _diag_plus_lowrank_cholesky(q.cov_diag_scale, q.cov_factor)
    return _log_det_diag_plus_lowrank(inv_d, chol)


def entropy(q: Gaussian) -> Tensor:
    """Differential entropy ½ P log(2πe) + ½ log|Σ| in float64 (-inf when Σ is singular)."""
    return 0.5 * q.n_params * math.log(2.0 * math.pi * math.e) + 0.5 * log_det_covariance(q)


def kl_divergence(q: Gaussian, p: Gaussian) -> Tensor:
    """Closed-form KL(q ‖ p) between two Gaussians of the same family, in float64.

    KL = ½ [tr(Σ_p⁻¹Σ_q) + (μ_p − μ_q)ᵀΣ_p⁻¹(μ_p − μ_q) − P + log|Σ_p| − log|Σ_q|].

    For 'diagonal' and 'diag+lowrank' every term is computed in O(P R²) with the
    Woodbury identity and the matrix determinant lemma; no P × P matrix is formed.

    For 'lowrank' with R < P both covariances are singular: q and p live on the
    affine subspaces μ + range(S), which differ as soon as training moves S or μ out of
    the prior's subspace (a gradient step on S adds directions from the data, not from
    range(S₀)). q is then not absolutely continuous w.r.t. p and the KL is +inf; we
    return +inf for every singular 'lowrank' pair rather than test the measure-zero
    case of equal supports. With R ≥ P the dense formula is used (P ≤ R is small).

    Parameters
    ----------
    q, p : Gaussian
        q the current distribution, p the reference (IBVI: the initial distribution).

    Returns
    -------
    Tensor
        0-dim float64 tensor, possibly ``inf``; differentiable when finite.
    """
    if q.family != p.family:
        raise ValueError(f"q is {q.family!r} but p is {p.family!r}: KL needs one family.")
    if q.n_params != p.n_params:
        raise ValueError(f"q has {q.n_params} parameters, p has {p.n_params}.")
    # Singularity first: it needs no float64 copy of the factors.
    if _is_singular_lowrank(q) or _is_singular_lowrank(p):
        return q.mean.new_tensor(math.inf, dtype=torch.float64)
    q, p = q.to(torch.float64), p.to(torch.float64)
    if _has_zero_variance(q) or _has_zero_variance(p):
        return q.mean.new_tensor(math.inf)
    if q.family == "lowrank":
        return _kl_dense(q.mean, covariance_matrix(q), p.mean, covariance_matrix(p))

    p_pieces = _diag_plus_lowrank_cholesky(p.cov_diag_scale, p.cov_factor)
    q_inv_d, _, q_chol = _diag_plus_lowrank_cholesky(q.cov_diag_scale, q.cov_factor)
    trace = _trace_precision_times_covariance(p_pieces, q)
    maha = _mahalanobis_sq(p_pieces, q.mean - p.mean)
    log_det_p = _log_det_diag_plus_lowrank(p_pieces[0], p_pieces[2])
    log_det_q = _log_det_diag_plus_lowrank(q_inv_d, q_chol)
    return 0.5 * (trace + maha - q.n_params + log_det_p - log_det_q)

