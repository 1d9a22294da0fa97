"""Variational layers: a layer's weights and bias as one Gaussian vector.

* :class:`VariationalLinear`, a linear layer whose weights *and* bias are one Gaussian
  vector, initialised at the prior and remembering it;
* :class:`VariationalConv`, the same for 1-D and 2-D convolutions;
* :class:`~sklearn_ibvi.networks.conversion.VariationalNetwork` puts them into any module.

The prior
---------
IBVI's prior is the initial variational distribution, p = q_{θ₀} = N(μ₀, Σ₀), one per
variational layer. Every weight and bias of a layer shares one scale: a bias is treated
as the weight of a constant input feature. With s the parametrization's init std
(:func:`init_std`) and σ = ``prior_scale`` · s,

* μ₀ ~ N(0, s² I) is drawn once (the parametrization's usual init; ``prior_scale`` does
  not rescale it, so a smaller prior never makes the network harder to train);
* 'diagonal': Σ₀ = σ² I exactly (d₀ = σ);
* 'lowrank': Σ₀ = S₀S₀ᵀ with S₀ entries ~ N(0, σ²/R), so E[Σ₀] = σ² I;
* 'diag+lowrank': d₀ = σ/√2 and S₀ entries ~ N(0, σ²/(2R)), so E[Σ₀] = σ² I.

So in every family a parameter's prior variance is σ² (on average over S₀); each family's
``initialise_at_prior`` (:mod:`sklearn_ibvi.math.gaussian`) draws its Σ₀.

References
----------
Coker, Wenger, Marusic & Cunningham (2025). Variational Deep Learning via Implicit
Regularization. arXiv:2505.20235.
Yang & Hu (2021). Tensor Programs IV: Feature Learning in Infinite-Width Neural Networks.
Yang, Simon & Bernstein (2023). A Spectral Condition for Feature Learning. arXiv:2310.17813.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..core.validation import check_choice
from ..math.gaussian import COVARIANCES, Gaussian, WoodburyPrecision
from .mup import LAYER_TYPES, PARAMETRIZATIONS, init_std, lr_multiplier, param_groups

def _batched_linear(x: Tensor, weights: Tensor, bias: bool) -> Tensor:
    """Apply S weight samples ``weights`` (S, out, in [+1]) to x (B, in) or (S, B, in).

    Returns (S, B, out). A shared 2-D input is multiplied by all S samples in a single
    GEMM, (B, in) × (in, S·out); a 3-D input pairs sample s of x with sample s of the weights
    (bmm). With a bias, x gets a constant column of ones and meets the whole (out, in + 1)
    matrix: one product, whose gradient is the weights' gradient as it is, not two slices of it
    filled in separately.
    """
    if x.dim() == 3 and x.shape[0] != weights.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but {weights.shape[0]} weight samples were drawn.")
    if x.dim() not in (2, 3):
        raise ValueError(f"x must have shape (B, in) or (S, B, in), got {tuple(x.shape)}.")
    if bias:
        x = torch.cat([x, x.new_ones(*x.shape[:-1], 1)], dim=-1)
    if x.dim() == 2:
        n_samples, out_features, in_features = weights.shape
        out = x @ weights.reshape(n_samples * out_features, in_features).T
        return out.view(len(x), n_samples, out_features).transpose(0, 1)
    return torch.bmm(x, weights.transpose(1, 2))


class WeightSamples(NamedTuple):
    """S draws of a linear layer's weights, stored for batched products over the draws.

    Attributes
    ----------
    weight : Tensor of shape (S, out, in), contiguous
    bias : Tensor of shape (S, out) or None
    """

    weight: Tensor
    bias: Tensor | None = None

    @classmethod
    def from_matrices(cls, weights: Tensor, in_features: int, bias: bool, dtype=None) -> WeightSamples:
        """Split (S, out, in [+1]) matrices, bias last, as :meth:`VariationalLinear.sample_weights`
        draws them (converted to ``dtype`` on the way, when given)."""
        dtype = weights.dtype if dtype is None else dtype
        return cls(
            weights[..., :in_features].to(dtype).contiguous(),
            weights[..., in_features].to(dtype).contiguous() if bias else None,
        )

    def to(self, *args, **kwargs) -> WeightSamples:
        """The same draws with every tensor passed through ``Tensor.to``."""
        return WeightSamples(*(None if t is None else t.to(*args, **kwargs) for t in self))


def _linear_under_samples(x: Tensor, samples: WeightSamples) -> Tensor:
    """Outputs (S, B, out) of x (B, in), shared by all S draws, or (S, B, in), one row set per draw.

    A shared input is multiplied by all S draws in one GEMM, (B, in) × (in, S·out); a 3-D input
    in one batched GEMM over the draws. The (S, out, in) weights are read transposed in place:
    nothing is copied per call, and the bias is added inside the product.
    """
    weight, bias = samples
    n_samples, out_features, in_features = weight.shape
    if x.dim() == 2:
        flat = weight.reshape(n_samples * out_features, in_features).T
        if bias is None:
            out = x @ flat
        else:
            out = torch.addmm(bias.reshape(-1), x, flat)
        return out.view(len(x), n_samples, out_features).transpose(0, 1)
    if x.dim() != 3 or x.shape[0] != n_samples:
        raise ValueError(f"x must have shape (B, in) or ({n_samples}, B, in), got {tuple(x.shape)}.")
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias[:, None, :], x, weight.transpose(1, 2))


#: Every covariance parameter name of the registered families: a layer registers those its family
#: lacks as None, so ``layer.cov_factor`` reads None in a 'diagonal' layer.
_COVARIANCE_PARAMETERS = tuple(dict.fromkeys(name for family in COVARIANCES.values() for name in family.parts))


class _GaussianWeights(nn.Module):
    """A Gaussian q over a layer's P parameters, initialised at (and remembering) its prior p.

    Owns the parameters ``mean`` (of shape ``mean_shape``, flattened row-wise to the P-vector)
    and the covariance parameters of the family ``COVARIANCES[covariance]``, the prior in the
    ``*_init`` buffers, and the KL and the sampling of the flat vector. A variational layer
    subclasses it and maps the flat draws to its weights.
    """

    def __init__(self, mean_shape, *, covariance, rank, init_std, prior_std, device=None, dtype=None):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.family = COVARIANCES[covariance]
        self.covariance = covariance
        self.rank = int(rank) if self.family.uses_rank else 0
        self.init_std = init_std
        self.prior_std = prior_std
        self.n_params = math.prod(mean_shape)
        self.mean = nn.Parameter(torch.empty(*mean_shape, **factory))
        shapes = self.family.parameter_shapes(self.n_params, self.rank)
        for name in _COVARIANCE_PARAMETERS:
            self.register_parameter(name, nn.Parameter(torch.empty(shapes[name], **factory)) if name in shapes else None)
        # The prior p = q at initialisation, kept as buffers (saved, moved with .to()).
        for name in ("mean", *_COVARIANCE_PARAMETERS):
            param = getattr(self, name)
            self.register_buffer(f"{name}_init", None if param is None else torch.empty_like(param.data))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw a fresh prior (μ₀ ~ N(0, s² I), Σ₀ by the family), set q to it and remember it in ``*_init``."""
        with torch.no_grad():
            self.mean.normal_(0.0, self.init_std)
            self.mean_init.copy_(self.mean)
            parts = {name: getattr(self, name) for name in self.family.parts}
            self.family.initialise_at_prior(parts, self.prior_std, self.rank)
            for name, param in parts.items():
                getattr(self, f"{name}_init").copy_(param)

    def _lr_multipliers(self, multiplier: float) -> dict[str, float]:
        """``multiplier`` for ``mean``, the family's multipliers for the covariance parameters."""
        return {"mean": multiplier, **self.family.lr_multipliers(multiplier, self.rank)}

    def variational_distribution(self) -> Gaussian:
        """q = N(μ, Σ) over the flat layer parameters (a differentiable view)."""
        return self.family(self.mean.reshape(-1), **{name: getattr(self, name) for name in self.family.parts})

    def prior(self) -> Gaussian:
        """p = N(μ₀, Σ₀), the distribution at initialisation."""
        return self.family(
            self.mean_init.reshape(-1), **{name: getattr(self, f"{name}_init") for name in self.family.parts}
        )

    def prior_precision(self) -> WoodburyPrecision | None:
        """The prior's Σ⁻¹ and log|Σ| for :meth:`kl_divergence` (:meth:`Gaussian.precision`).

        Training never changes the prior, so a fit computes them once and passes them to the
        KL of every epoch. None where there is none (``'lowrank'``, a singular prior).
        """
        return self.prior().precision()

    def kl_divergence(self, prior_precision: WoodburyPrecision | None = None) -> Tensor:
        """KL(q ‖ p) in closed form, float64 (inf for singular 'lowrank'); see :meth:`Gaussian.kl_to`.

        ``prior_precision`` is :meth:`prior_precision`, when the caller kept it.
        """
        return self.variational_distribution().kl_to(self.prior(), prior_precision)


class VariationalLinear(_GaussianWeights):
    """Linear layer with Gaussian weights, initialised at (and remembering) its prior.

    The weight matrix and the bias form one parameter vector of size
    P = out_features · (in_features + bias), stored row-wise as the (out, in [+1]) matrix
    ``mean`` whose last column is the bias; the covariance is over the whole layer, so
    weights and biases may be correlated.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default=True
    covariance : {'lowrank', 'diagonal', 'diag+lowrank'}, default='lowrank'
    rank : int, default=10
        R, columns of the low-rank factor (ignored by 'diagonal').
    prior_scale : float, default=1.0
        σ / s: the prior standard deviation of each parameter in units of the
        parametrization's init std s (see the module docstring for p exactly).
    parametrization : {'mup', 'standard'}, default='mup'
    layer_type : {'input', 'hidden', 'output'}, default='hidden'
        Position in the network; sets the init std (:func:`init_std`).
    device, dtype : optional
        Passed to the parameter factories.

    Attributes
    ----------
    has_bias : bool
    n_params : int
        P = out_features · (in_features + has_bias).
    mean : Parameter of shape (out_features, in_features + has_bias)
        Mean weights; the last column is the bias when ``has_bias``.
    cov_factor : Parameter of shape (P, R) or None
    cov_diag_scale : Parameter of shape (P,) or None
    mean_init, cov_factor_init, cov_diag_scale_init : buffers
        The prior p = N(μ₀, Σ₀): the parameters' values at initialisation.
    init_std : float
        s, the std of μ₀.
    prior_std : float
        σ = prior_scale · s, the prior std of every parameter (E[Σ₀] = σ² I).
    lr_multipliers : dict
        Learning-rate multiplier per parameter name (see :func:`param_groups`).

    Notes
    -----
    μP learning-rate multipliers (``parametrization='mup'``), with m = fan_out/fan_in
    (:func:`lr_multiplier`):

    * ``mean``: m.
    * ``cov_diag_scale``: m. d_j multiplies only its own noise ε_j, so a step moves
      d_j ε_j by −lr·m·g_j ε_j², of mean size lr·m·g_j -- as fast as the mean, no
      dependence on R.
    * ``cov_factor``: m / R. A step moves S z by −lr·m·g ‖z‖²/R and E‖z‖² = R, so
      the sampled perturbation moves as fast as the mean whatever the rank
      (equivalently, an R^{-½} multiplier on S z).

    Standard parametrization: m = 1, so ``mean`` and ``cov_diag_scale`` 1 and
    ``cov_factor`` 1/R (the rank argument above does not depend on the width rule).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        covariance: str = "lowrank",
        rank: int = 10,
        prior_scale: float = 1.0,
        parametrization: str = "mup",
        layer_type: str = "hidden",
        device=None,
        dtype=None,
    ):
        check_choice("covariance", covariance, COVARIANCES)
        check_choice("parametrization", parametrization, PARAMETRIZATIONS)
        check_choice("layer_type", layer_type, LAYER_TYPES)
        if COVARIANCES[covariance].uses_rank and rank < 1:
            raise ValueError(f"rank must be >= 1 for covariance={covariance!r}, got {rank}.")
        if not prior_scale > 0:
            raise ValueError(f"prior_scale must be > 0, got {prior_scale}.")
        std = init_std(in_features, layer_type, parametrization)
        super().__init__(
            (out_features, in_features + bool(bias)), covariance=covariance, rank=rank, init_std=std,
            prior_std=float(prior_scale) * std, device=device, dtype=dtype,
        )  # fmt: skip
        self.in_features = in_features
        self.out_features = out_features
        self.has_bias = bool(bias)
        self.prior_scale = float(prior_scale)
        self.parametrization = parametrization
        self.layer_type = layer_type

    @property
    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multiplier per parameter name (see the class Notes)."""
        m = lr_multiplier(self.in_features, self.out_features, self.parametrization)
        # 1/R on a factor in both parametrizations (Gaussian.lr_multipliers): it keeps S z moving as
        # fast as the mean whatever the rank (without it the standard parametrization collapsed to
        # chance at lr >= 0.02 on digits).
        return self._lr_multipliers(m)

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups with :attr:`lr_multipliers` (:func:`param_groups`)."""
        return param_groups(self, lr)

    def sample_weights(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n_samples`` independent draws of the (out, in [+1]) weight matrix, bias last (see :meth:`Gaussian.sample`)."""
        w = self.variational_distribution().sample(n_samples, generator)
        return w.reshape(n_samples, self.out_features, self.in_features + self.has_bias)

    def forward(
        self,
        x: Tensor,
        n_samples: int | None = None,
        generator: torch.Generator | None = None,
        samples: WeightSamples | None = None,
    ) -> Tensor:
        """Outputs under independent weight samples.

        Parameters
        ----------
        x : Tensor of shape (B, in_features) or (S, B, in_features)
            A 2-D input is shared by all samples; a 3-D input gets one weight sample
            per leading index.
        n_samples : int, optional
            S. Defaults to 1 for a 2-D input and to ``x.shape[0]`` for a 3-D one.
        generator : torch.Generator on the CPU, optional
            Where the weight noise comes from (see :meth:`Gaussian.sample`).
        samples : WeightSamples, optional
            Weights drawn beforehand: nothing is drawn, ``n_samples`` and ``generator`` are
            ignored (prediction draws once and reuses the draws for every batch of rows).

        Returns
        -------
        Tensor of shape (S, B, out_features)
        """
        if samples is not None:
            return _linear_under_samples(x, samples)
        if n_samples is None:
            n_samples = x.shape[0] if x.dim() == 3 else 1
        return _batched_linear(x, self.sample_weights(n_samples, generator), self.has_bias)

    def forward_mean(self, x: Tensor) -> Tensor:
        """Output with the mean weights, shape (..., out_features)."""
        weight = self.mean[:, : self.in_features]
        return nn.functional.linear(x, weight, self.mean[:, self.in_features] if self.has_bias else None)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.has_bias}, "
            f"covariance={self.covariance!r}, rank={self.rank}, prior_scale={self.prior_scale}, "
            f"parametrization={self.parametrization!r}, layer_type={self.layer_type!r}"
        )


# ---------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------

_CONVOLUTIONS = {1: nn.functional.conv1d, 2: nn.functional.conv2d}


class VariationalConv(_GaussianWeights):
    """1-D or 2-D convolution with Gaussian weights, initialised at (and remembering) its prior.

    The kernel and the bias form one parameter vector, stored row-wise as the
    (out_channels, in_channels/groups · ∏kernel_size [+1]) matrix ``mean`` whose last column is
    the bias: a convolution is a linear layer applied to every patch, and the covariance family,
    the prior and the μP rules are those of :class:`VariationalLinear` for that matrix
    (``fan_in = in_channels/groups · ∏kernel_size``); its μP learning-rate multiplier is that of
    torch's fans, ``out_channels / (in_channels/groups)``, as in :mod:`torch.nn.init`.

    Parameters
    ----------
    conv : nn.Conv1d or nn.Conv2d
        The layer whose shape and arguments (stride, padding, dilation, groups, bias) it takes;
        its values are not used. ``padding_mode`` must be ``'zeros'``.
    covariance, rank, prior_scale, parametrization, layer_type :
        As for :class:`VariationalLinear`.
    """

    def __init__(self, conv, *, covariance="lowrank", rank=10, prior_scale=1.0, parametrization="mup",
                 layer_type="hidden"):  # fmt: skip
        check_choice("covariance", covariance, COVARIANCES)
        check_choice("parametrization", parametrization, PARAMETRIZATIONS)
        check_choice("layer_type", layer_type, LAYER_TYPES)
        if conv.padding_mode != "zeros":
            raise ValueError(f"Variational convolutions support padding_mode='zeros', not {conv.padding_mode!r}.")
        self.kernel_shape = tuple(conv.weight.shape[1:])
        # torch's fans, both with the kernel size: the μP multiplier is out_channels / in_channels
        self.in_features, self.fan_out = nn.init._calculate_fan_in_and_fan_out(conv.weight)
        self.out_features = conv.out_channels
        std = init_std(self.in_features, layer_type, parametrization)
        has_bias = conv.bias is not None
        super().__init__(
            (self.out_features, self.in_features + has_bias), covariance=covariance, rank=rank, init_std=std,
            prior_std=float(prior_scale) * std, device=conv.weight.device, dtype=conv.weight.dtype,
        )  # fmt: skip
        self.has_bias = has_bias
        self.convolution = _CONVOLUTIONS[len(self.kernel_shape) - 1]
        self.conv_args = {"stride": conv.stride, "padding": conv.padding, "dilation": conv.dilation}
        self.groups = conv.groups
        self.prior_scale = float(prior_scale)
        self.parametrization = parametrization
        self.layer_type = layer_type

    @property
    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multiplier per parameter name (as :attr:`VariationalLinear.lr_multipliers`)."""
        return self._lr_multipliers(lr_multiplier(self.in_features, self.fan_out, self.parametrization))

    def sample_weights(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """``n_samples`` draws of the (out, fan_in [+1]) weight matrix, bias last."""
        w = self.variational_distribution().sample(n_samples, generator)
        return w.reshape(n_samples, self.out_features, self.in_features + self.has_bias)

    def forward(
        self,
        x: Tensor,
        n_samples: int,
        generator: torch.Generator | None = None,
        samples: WeightSamples | None = None,
    ) -> Tensor:
        """Outputs ``(S·B, out, ...)`` of the rows ``x`` of shape ``(S·B, in, ...)``, sample ``s``
        applied to the ``s``-th block of B rows (one grouped convolution over the samples).

        The ``n_samples`` draws come from ``generator`` (see :meth:`sample_weights`), or are the
        ``samples`` drawn beforehand."""
        if samples is None:
            draws = self.sample_weights(n_samples, generator)
            samples = WeightSamples.from_matrices(draws, self.in_features, self.has_bias)
        weight, bias = samples
        n_samples = weight.shape[0]
        n_rows = x.shape[0] // n_samples
        spatial = x.shape[2:]
        # (S·B, C, ...) → (B, S·C, ...): each sample's channels become groups of their own.
        stacked = x.reshape(n_samples, n_rows, -1, *spatial).transpose(0, 1).reshape(n_rows, -1, *spatial)
        kernels = weight.reshape(n_samples * self.out_features, *self.kernel_shape)
        out = self.convolution(
            stacked, kernels, None if bias is None else bias.reshape(-1), groups=n_samples * self.groups,
            **self.conv_args,
        )  # fmt: skip
        out_spatial = out.shape[2:]
        out = out.reshape(n_rows, n_samples, self.out_features, *out_spatial).transpose(0, 1)
        return out.reshape(n_samples * n_rows, self.out_features, *out_spatial)

    def forward_mean(self, x: Tensor) -> Tensor:
        """Output with the mean weights."""
        weight = self.mean[:, : self.in_features].reshape(self.out_features, *self.kernel_shape)
        bias = self.mean[:, self.in_features] if self.has_bias else None
        return self.convolution(x, weight, bias, groups=self.groups, **self.conv_args)

    def extra_repr(self) -> str:
        return (
            f"kernel_shape={self.kernel_shape}, out_channels={self.out_features}, bias={self.has_bias}, "
            f"covariance={self.covariance!r}, rank={self.rank}, prior_scale={self.prior_scale}, "
            f"parametrization={self.parametrization!r}, layer_type={self.layer_type!r}"
        )
