"""Gaussian families over a flat parameter vector: sampling, log-determinant, entropy and KL.

Each covariance family is a subclass of :class:`Gaussian` over a flat vector of ``P``
parameters, and :data:`COVARIANCES` maps the family names to the classes,

===============  =================================  ===================  ==================================
name             class                              covariance Σ         parameters
===============  =================================  ===================  ==================================
'lowrank'        :class:`LowRankGaussian`           S Sᵀ, S ∈ R^{P×R}    ``cov_factor``
'diagonal'       :class:`DiagonalGaussian`          diag(d²), d ∈ R^P    ``cov_diag_scale``
'diag+lowrank'   :class:`DiagPlusLowRankGaussian`   diag(d²) + S Sᵀ      ``cov_factor``, ``cov_diag_scale``
===============  =================================  ===================  ==================================

a sample being w = μ + S z + d ⊙ ε with z ~ N(0, I_R), ε ~ N(0, I_P). A family also says how a
variational layer initialises its parameters at the prior and which learning-rate multipliers
they get, so a new family is one new class registered in :data:`COVARIANCES`.

A KL to a distribution that stays fixed (IBVI's prior, at every epoch of a fit) reuses its
factorisation: :meth:`Gaussian.precision` computes it once, :meth:`Gaussian.kl_to` takes it.

The Gaussian log-density and entropy the likelihoods and priors of the package share are
:func:`diagonal_gaussian_log_density` and :func:`entropy_from_log_det`.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

#: log 2π, the normalising constant of a standard normal per dimension.
LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------
# One log-density, one entropy
# ---------------------------------------------------------------------------


def diagonal_gaussian_log_density(squared_standardized_distance, log_std_sum, dim):
    """log N(x; μ, diag(σ²)) = −½ Σ_j z_j² − Σ_j log σ_j − ½ D log 2π,  z = (x − μ) / σ.

    Parameters
    ----------
    squared_standardized_distance : Tensor or float
        Σ_j z_j² (or z² elementwise, with ``dim=1``).
    log_std_sum : Tensor or float
        Σ_j log σ_j.
    dim : int
        D, the number of coordinates summed.
    """
    return -0.5 * squared_standardized_distance - log_std_sum - 0.5 * dim * LOG_2PI


def entropy_from_log_det(log_det, dim):
    """H[N(μ, Σ)] = ½ D log(2πe) + ½ log|Σ| (a diagonal Σ gives ½ log|Σ| = Σ_j log σ_j)."""
    return 0.5 * dim * math.log(2.0 * math.pi * math.e) + 0.5 * log_det


# ---------------------------------------------------------------------------
# Equations shared by the families
# ---------------------------------------------------------------------------


def _standard_normal(like: Tensor, generator: torch.Generator | None):
    """N(0, I) noise in ``like``'s dtype and device; from a CPU ``generator`` in float64, then cast."""

    def draw(*shape):
        if generator is None:
            return torch.randn(*shape, dtype=like.dtype, device=like.device)
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(like.device, like.dtype)

    return draw


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


class WoodburyPrecision(NamedTuple):
    """Σ⁻¹ and log|Σ| of Σ = D + S Sᵀ, D = diag(d²), in the pieces a KL *to* this Gaussian needs.

    Σ⁻¹ = D^{-½} (I − Mᵀ M) D^{-½},   M = L⁻¹ Aᵀ,   A = D^{-½} S,   C = I_R + AᵀA = L Lᵀ,

    since A C⁻¹ Aᵀ = A L⁻ᵀ L⁻¹ Aᵀ = Mᵀ M. Computed once by :meth:`Gaussian.precision`, they make
    every later KL to the same distribution two P × R × R products (:func:`_kl_diag_plus_lowrank`).

    Attributes
    ----------
    inv_d : Tensor of shape (P,)
        D^{-½}, float64.
    whitened_factor : Tensor of shape (R, P) or None
        M, float64, row-major (its products with P × R matrices are then one fast GEMM); None
        without a low-rank factor.
    diag_mtm : Tensor of shape (P,) or None
        diag(MᵀM), the column norms ‖M_{:j}‖², float64.
    log_det : Tensor
        log|Σ|, 0-dim float64.
    """

    inv_d: Tensor
    whitened_factor: Tensor | None
    diag_mtm: Tensor | None
    log_det: Tensor


def _woodbury_precision(cov_diag_scale: Tensor, cov_factor: Tensor | None) -> WoodburyPrecision:
    inv_d, a, chol = _diag_plus_lowrank_cholesky(cov_diag_scale, cov_factor)
    log_det = _log_det_diag_plus_lowrank(inv_d, chol)
    if a is None:
        return WoodburyPrecision(inv_d, None, None, log_det)
    m = torch.linalg.solve_triangular(chol, a.T, upper=False).contiguous()
    return WoodburyPrecision(inv_d, m, (m**2).sum(0), log_det)


#: Rows of a P × R factor read at a time by :func:`_factor_products`: float64 blocks this small stay
#: in cache and are reused by the allocator, where a whole-factor temporary costs more than the products.
FACTOR_ROW_BLOCK = 8192


def _factor_products(q_factor: Tensor, r: Tensor, p: WoodburyPrecision):
    """‖B‖², M B and A_qᵀA_q for B = D_p^{-½} S_q and A_q = D_q^{-½} S_q = diag(r^{-½}) B, r = d_q²/d_p².

    Accumulated in float64 over blocks of ``FACTOR_ROW_BLOCK`` rows of S_q (float64 blocks, no
    copy of the whole factor); differentiable in S_q and r.
    """
    rank, m = q_factor.shape[1], p.whitened_factor
    b_sq = q_factor.new_zeros((), dtype=torch.float64)
    m_b = q_factor.new_zeros((0 if m is None else len(m), rank), dtype=torch.float64)
    a_gram = q_factor.new_zeros((rank, rank), dtype=torch.float64)
    r_rsqrt = r.rsqrt()
    for start in range(0, len(q_factor), FACTOR_ROW_BLOCK):
        rows = slice(start, start + FACTOR_ROW_BLOCK)
        b = q_factor[rows] * p.inv_d[rows, None]  # promoted to float64
        b_sq = b_sq + (b**2).sum()
        if m is not None:
            m_b = m_b + m[:, rows] @ b
        a = b * r_rsqrt[rows, None]
        a_gram = a_gram + a.T @ a
    return b_sq, m_b, a_gram


def _mahalanobis_sq(p: WoodburyPrecision, delta: Tensor) -> Tensor:
    """δᵀ Σ_p⁻¹ δ = ‖D_p^{-½}δ‖² − ‖M D_p^{-½}δ‖²  (:class:`WoodburyPrecision`)."""
    white = p.inv_d * delta
    out = (white**2).sum()
    if p.whitened_factor is not None:
        out = out - ((p.whitened_factor @ white) ** 2).sum()
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


def _kl_diag_plus_lowrank(q: Gaussian, p_mean: Tensor, p: WoodburyPrecision) -> Tensor:
    """KL = ½ [tr(Σ_p⁻¹Σ_q) + δᵀΣ_p⁻¹δ − P + log|Σ_p| − log|Σ_q|], δ = μ_q − μ_p, in O(P R²).

    Σ = diag(d²) [+ S Sᵀ] for both q and p, p given by its mean and :class:`WoodburyPrecision`
    (Σ_p⁻¹ = D_p^{-½}(I − MᵀM)D_p^{-½}). With r = d_q²/d_p², B = D_p^{-½} S_q and
    A_q = D_q^{-½} S_q (:func:`_factor_products`):

    tr(Σ_p⁻¹Σ_q) = Σ_j r_j (1 − diag(MᵀM)_j) + ‖B‖² − ‖M B‖²,
    log|Σ_q| = Σ_j log d_{q,j}² + log|I_R + A_qᵀA_q|   (matrix determinant lemma),

    and δᵀΣ_p⁻¹δ by :func:`_mahalanobis_sq`; no P × P matrix is formed. In float64.
    """
    d_q = q.cov_diag_scale.to(torch.float64).abs()
    r = (d_q * p.inv_d) ** 2
    trace = (r if p.diag_mtm is None else r * (1.0 - p.diag_mtm)).sum()
    log_det_q = 2.0 * torch.log(d_q).sum()
    if q.cov_factor is not None and q.cov_factor.shape[1] > 0:
        b_sq, m_b, a_gram = _factor_products(q.cov_factor, r, p)
        trace = trace + b_sq - (m_b**2).sum()
        c = torch.eye(len(a_gram), dtype=a_gram.dtype, device=a_gram.device) + a_gram
        log_det_q = log_det_q + 2.0 * torch.log(torch.diagonal(torch.linalg.cholesky(c))).sum()
    maha = _mahalanobis_sq(p, q.mean.to(torch.float64) - p_mean)
    return 0.5 * (trace + maha - q.n_params + p.log_det - log_det_q)


# ---------------------------------------------------------------------------
# The families
# ---------------------------------------------------------------------------


class Gaussian:
    """Gaussian N(mean, Σ) over P parameters; the subclasses are the covariance families.

    A family names its covariance parameters in :attr:`parts` (attributes of the instance, and
    the parameter names of a variational layer), and says how a layer initialises them at the
    prior (:meth:`initialise_at_prior`) and which learning-rate multipliers they get
    (:meth:`lr_multipliers`).

    Attributes
    ----------
    mean : Tensor of shape (P,)
    cov_factor : Tensor of shape (P, R) or None
        Low-rank factor S, None in families without one.
    cov_diag_scale : Tensor of shape (P,) or None
        Diagonal scale d (the variance is d², the sign of d is irrelevant), None in families
        without one.
    """

    #: The name in :data:`COVARIANCES`.
    family: ClassVar[str]
    #: Names of the covariance parameters, in the order a layer registers them.
    parts: ClassVar[tuple[str, ...]]
    #: Whether the family has a low-rank factor, whose number of columns is the rank.
    uses_rank: ClassVar[bool] = True

    mean: Tensor
    cov_factor: Tensor | None = None
    cov_diag_scale: Tensor | None = None

    def __init__(self, mean: Tensor, **parts: Tensor):
        if set(parts) != set(self.parts):
            raise TypeError(f"A {type(self).__name__} takes mean and {', '.join(self.parts)}, got {sorted(parts)}.")
        self.mean = mean
        for name, value in parts.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_params={self.n_params}, rank={self.rank})"

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
        return type(self)(self.mean.to(*args, **kwargs), **{n: getattr(self, n).to(*args, **kwargs) for n in self.parts})

    # -- layer set-up ------------------------------------------------------

    @classmethod
    def parameter_shapes(cls, n_params: int, rank: int) -> dict[str, tuple[int, ...]]:
        """Shape of each covariance parameter over P = ``n_params`` parameters.

        Covers ``cov_factor`` (P, R) and ``cov_diag_scale`` (P,); a family with other
        parameters overrides it.
        """
        shapes = {"cov_factor": (n_params, rank), "cov_diag_scale": (n_params,)}
        return {name: shapes[name] for name in cls.parts}

    @classmethod
    def initialise_at_prior(cls, parts: dict[str, Tensor], prior_std: float, rank: int) -> None:
        """Fill the covariance parameters ``parts`` in place so that E[Σ₀] = σ² I, σ = ``prior_std``."""
        raise NotImplementedError

    @classmethod
    def lr_multipliers(cls, multiplier: float, rank: int) -> dict[str, float]:
        """Learning-rate multiplier of each covariance parameter, given the mean's ``multiplier``.

        A diagonal scale d_j multiplies only its own noise ε_j, so it gets the mean's multiplier
        m; a factor S gets m / R, since a step moves S z by −lr·m·g ‖z‖²/R and E‖z‖² = R: the
        sampled perturbation moves as fast as the mean whatever the rank.
        """
        factors = {"cov_factor": multiplier / rank if rank else multiplier, "cov_diag_scale": multiplier}
        return {name: factors[name] for name in cls.parts}

    # -- the distribution --------------------------------------------------

    def sample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Draw w = μ + S z + d ⊙ ε, reparametrized (differentiable in μ, S, d).

        Parameters
        ----------
        n_samples : int
            Number of independent draws.
        generator : torch.Generator on the CPU, optional
            Draw the noise from it, in float64 on the CPU, then cast and move it to the mean's
            dtype and device: a seeded generator gives the same weights on every device (to the
            mean's precision). Without it the global RNG of the mean's device draws, in its dtype.

        Returns
        -------
        Tensor of shape (n_samples, P)
            z is drawn first, then ε.
        """
        raise NotImplementedError

    def sample_float64(self, n_samples: int, generator: torch.Generator) -> Tensor:
        """The draws of ``sample(n_samples, generator)``, computed in float64 on the CPU, not differentiable.

        The same noise, z then ε from the CPU ``generator``, and the same arithmetic as
        :meth:`sample` on a float64 CPU copy, in place: one (n_samples, P) float64 array instead
        of four. For predictions, which draw many weights once and need no gradient.
        """
        with torch.no_grad():
            return self.to("cpu", torch.float64)._sample_in_place(n_samples, generator)

    def _sample_in_place(self, n_samples: int, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def antithetic_sample_float64(self, n_samples: int, generator: torch.Generator) -> Tensor:
        """``n_samples`` draws in antithetic pairs ``μ + δ, μ − δ``, float64 on the CPU.

        ``δ`` is the noise of :meth:`sample_float64` (``⌈n/2⌉`` draws); each draw is still
        distributed as ``N(μ, Σ)``, so an average over them is unbiased, and the pairs cancel
        every odd-order term of a function's expansion around ``μ``: Monte-Carlo averages of
        smooth functions (a predictive mean) have lower variance than with independent draws.
        For odd ``n_samples`` the last draw has no partner.
        """
        draws = self.sample_float64((n_samples + 1) // 2, generator)
        mean = self.mean.detach().to("cpu", torch.float64)
        paired = draws.new_empty((n_samples, self.n_params))  # filled in place: 1.5 draws' memory
        paired[0::2] = draws
        paired[1::2].copy_(draws[: n_samples // 2]).neg_().add_(mean, alpha=2.0)  # 2μ − w
        return paired

    def covariance_matrix(self) -> Tensor:
        """Dense Σ, shape (P, P). For small layers and tests only."""
        raise NotImplementedError

    def log_det(self) -> Tensor:
        """log|Σ| in float64, -inf for a singular covariance."""
        raise NotImplementedError

    def entropy(self) -> Tensor:
        """Differential entropy ½ P log(2πe) + ½ log|Σ| in float64 (-inf when Σ is singular)."""
        return entropy_from_log_det(self.log_det(), self.n_params)

    def precision(self) -> WoodburyPrecision | None:
        """Σ⁻¹ and log|Σ| as :class:`WoodburyPrecision`, in float64.

        For :meth:`kl_to` a distribution that stays fixed (a prior): passed there, they spare
        every later KL to it the factorisation of Σ. None for a singular Σ, and in families
        whose KL is computed from the dense covariances (``'lowrank'``).
        """
        return None

    def kl_to(self, prior: Gaussian, prior_precision: WoodburyPrecision | None = None) -> Tensor:
        """Closed-form KL(self ‖ prior) for a ``prior`` of the same family, in float64.

        KL = ½ [tr(Σ_p⁻¹Σ_q) + (μ_p − μ_q)ᵀΣ_p⁻¹(μ_p − μ_q) − P + log|Σ_p| − log|Σ_q|].

        Parameters
        ----------
        prior : Gaussian
        prior_precision : WoodburyPrecision, optional
            ``prior.precision()``, computed beforehand by a caller that needs the KL to the same
            prior many times; it must belong to ``prior``. Ignored where the family has none.

        Returns
        -------
        Tensor
            0-dim float64 tensor, possibly ``inf``; differentiable when finite.
        """
        if type(prior) is not type(self):
            raise ValueError(f"q is {self.family!r} but p is {prior.family!r}: KL needs one family.")
        if self.n_params != prior.n_params:
            raise ValueError(f"q has {self.n_params} parameters, p has {prior.n_params}.")
        return self._kl_to(prior, prior_precision)

    def _kl_to(self, prior: Gaussian, prior_precision: WoodburyPrecision | None) -> Tensor:
        raise NotImplementedError


class LowRankGaussian(Gaussian):
    """N(μ, S Sᵀ), S ∈ R^{P×R}: singular when R < P.

    With R < P q and p live on the affine subspaces μ + range(S), which differ as soon as
    training moves S or μ out of the prior's subspace (a gradient step on S adds directions from
    the data, not from range(S₀)). q is then not absolutely continuous w.r.t. p, so the KL is
    +inf, and it is returned for every singular pair rather than testing the measure-zero case of
    equal supports. With R ≥ P the dense formulas are used (P ≤ R is small).
    """

    family = "lowrank"
    parts = ("cov_factor",)

    def __init__(self, mean: Tensor, cov_factor: Tensor):
        super().__init__(mean, cov_factor=cov_factor)

    @classmethod
    def initialise_at_prior(cls, parts, prior_std, rank):
        """S₀ entries ~ N(0, σ²/R)."""
        parts["cov_factor"].normal_(0.0, prior_std / math.sqrt(rank))

    @property
    def is_singular(self) -> bool:
        return self.rank < self.n_params

    def sample(self, n_samples=1, generator=None):
        noise = _standard_normal(self.mean, generator)
        return self.mean.expand(n_samples, self.n_params) + noise(n_samples, self.rank) @ self.cov_factor.T

    def _sample_in_place(self, n_samples, generator):
        z = torch.randn(n_samples, self.rank, generator=generator, dtype=torch.float64)
        return self.mean.expand(n_samples, self.n_params).clone().addmm_(z, self.cov_factor.T)

    def covariance_matrix(self):
        return self.cov_factor @ self.cov_factor.T

    def log_det(self):
        if self.is_singular:
            return self.mean.new_tensor(-math.inf, dtype=torch.float64)
        chol, info = torch.linalg.cholesky_ex(self.to(torch.float64).covariance_matrix())
        if info.item() != 0:
            return chol.new_tensor(-math.inf)
        return 2.0 * torch.log(torch.diagonal(chol)).sum()

    def _kl_to(self, prior, prior_precision):
        # Singularity first: it needs no float64 copy of the factors.
        if self.is_singular or prior.is_singular:
            return self.mean.new_tensor(math.inf, dtype=torch.float64)
        q, p = self.to(torch.float64), prior.to(torch.float64)
        return _kl_dense(q.mean, q.covariance_matrix(), p.mean, p.covariance_matrix())


class _WoodburyGaussian(Gaussian):
    """Σ = diag(d²) [+ S Sᵀ]: log-determinant and KL in O(P R²) by the Woodbury identity.

    A zero diagonal scale makes Σ singular (treated so even when S would cover it): log|Σ| is
    -inf and every KL involving it +inf.
    """

    def _has_zero_variance(self) -> bool:
        return bool((self.cov_diag_scale == 0).any())

    def log_det(self):
        q = self.to(torch.float64)
        if q._has_zero_variance():
            return q.mean.new_tensor(-math.inf)
        inv_d, _, chol = _diag_plus_lowrank_cholesky(q.cov_diag_scale, q.cov_factor)
        return _log_det_diag_plus_lowrank(inv_d, chol)

    def precision(self):
        if self._has_zero_variance():
            return None
        q = self.to(torch.float64)
        return _woodbury_precision(q.cov_diag_scale, q.cov_factor)

    def _kl_to(self, prior, prior_precision):
        if self._has_zero_variance() or prior._has_zero_variance():
            return self.mean.new_tensor(math.inf, dtype=torch.float64)
        if prior_precision is None:
            prior_precision = prior.precision()
        return _kl_diag_plus_lowrank(self, prior.mean.to(torch.float64), prior_precision)


class DiagonalGaussian(_WoodburyGaussian):
    """N(μ, diag(d²)), d ∈ R^P (mean-field)."""

    family = "diagonal"
    parts = ("cov_diag_scale",)
    uses_rank = False

    def __init__(self, mean: Tensor, cov_diag_scale: Tensor):
        super().__init__(mean, cov_diag_scale=cov_diag_scale)

    @classmethod
    def initialise_at_prior(cls, parts, prior_std, rank):
        """d₀ = σ: Σ₀ = σ² I exactly."""
        parts["cov_diag_scale"].fill_(prior_std)

    def sample(self, n_samples=1, generator=None):
        noise = _standard_normal(self.mean, generator)
        return self.mean.expand(n_samples, self.n_params) + noise(n_samples, self.n_params) * self.cov_diag_scale

    def _sample_in_place(self, n_samples, generator):
        w = torch.randn(n_samples, self.n_params, generator=generator, dtype=torch.float64)
        return w.mul_(self.cov_diag_scale).add_(self.mean)

    def covariance_matrix(self):
        return torch.diag(self.cov_diag_scale**2)


class DiagPlusLowRankGaussian(_WoodburyGaussian):
    """N(μ, diag(d²) + S Sᵀ), d ∈ R^P, S ∈ R^{P×R}: never singular while d has no zero."""

    family = "diag+lowrank"
    parts = ("cov_factor", "cov_diag_scale")

    def __init__(self, mean: Tensor, cov_factor: Tensor, cov_diag_scale: Tensor):
        super().__init__(mean, cov_factor=cov_factor, cov_diag_scale=cov_diag_scale)

    @classmethod
    def initialise_at_prior(cls, parts, prior_std, rank):
        """The prior variance split between the parts: d₀ = σ/√2, S₀ entries ~ N(0, σ²/(2R))."""
        part_std = prior_std / math.sqrt(2)
        parts["cov_factor"].normal_(0.0, part_std / math.sqrt(rank))
        parts["cov_diag_scale"].fill_(part_std)

    def sample(self, n_samples=1, generator=None):
        noise = _standard_normal(self.mean, generator)
        w = self.mean.expand(n_samples, self.n_params) + noise(n_samples, self.rank) @ self.cov_factor.T
        return w + noise(n_samples, self.n_params) * self.cov_diag_scale

    def _sample_in_place(self, n_samples, generator):
        z = torch.randn(n_samples, self.rank, generator=generator, dtype=torch.float64)
        w = torch.randn(n_samples, self.n_params, generator=generator, dtype=torch.float64)
        return w.mul_(self.cov_diag_scale).add_(self.mean).addmm_(z, self.cov_factor.T)

    def covariance_matrix(self):
        return self.cov_factor @ self.cov_factor.T + torch.diag(self.cov_diag_scale**2)


#: The covariance families by name: the one place a name maps to its class.
COVARIANCES: dict[str, type[Gaussian]] = {
    cls.family: cls for cls in (LowRankGaussian, DiagonalGaussian, DiagPlusLowRankGaussian)
}
