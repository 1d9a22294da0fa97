"""``K`` independent copies of any PyTorch module, trained at once: the chains of entropy-SGD.

:class:`Chains` holds the parameters of ``n_chains`` copies of a module stacked along a leading
dimension and evaluates them with :func:`torch.func.functional_call`, vectorised over the chains
by :func:`torch.func.vmap`. Because the summed loss of independent chains has a block-diagonal
Hessian, one Hessian-vector product on the stack gives every chain's own product, so the entropy
bookkeeping vectorises over chains for free.

Every parameter starts from its prior draw (:func:`prior_std`): weights ``N(0, s² / fan_in)`` with
``fan_in`` as :mod:`torch.nn.init` computes it (input features of a linear layer, input channels
times kernel size of a convolution), every other parameter (biases, normalisation scales)
``N(0, s²)``. A Gaussian with full support, not PyTorch's uniform initialisation: the bound needs
``log p(θ_t)`` finite wherever SGD takes the weights.
"""

import copy
import math

import torch
from torch import nn

#: Layers whose state changes in a forward pass: the step would not be a function of the weights.
_STATEFUL_LAYERS = (nn.modules.batchnorm._BatchNorm,)


def prior_std(parameter, prior_scale):
    """Prior standard deviation of one parameter tensor (a float, shared by its entries).

    Tensors of two or more dimensions are weights, scaled ``prior_scale / √fan_in`` (LeCun
    scaling keeps pre-activations O(1) at any width); vectors and scalars get ``prior_scale``.
    """
    if parameter.dim() < 2:
        return float(prior_scale)
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(parameter)
    return prior_scale / math.sqrt(fan_in)


def check_stateless(module):
    """Refuse modules whose forward pass changes their own state (batch normalisation)."""
    for name, layer in module.named_modules():
        if isinstance(layer, _STATEFUL_LAYERS):
            raise ValueError(
                f"Layer {name!r} ({type(layer).__name__}) updates running statistics in every "
                "forward pass, so an SGD step is not a function of the weights alone and its "
                "entropy is not tracked. Use nn.LayerNorm or nn.GroupNorm, or no normalisation."
            )


class Chains(nn.Module):
    """``n_chains`` independent copies of ``module``, each initialised by a draw from the prior.

    Parameters
    ----------
    module : nn.Module
        The network of one chain. Its own parameter values are not used (each chain draws its
        own from the prior); its buffers are shared by the chains.
    n_chains : int, default=1
    prior_scale : float, default=1.0
        Multiplier of the prior standard deviations (:func:`prior_std`).

    Notes
    -----
    ``forward`` maps ``(B, ...)`` to ``(n_chains, B, ...)``. The parameters are ``stacked``,
    one tensor of shape ``(n_chains, *shape)`` per parameter of ``module``, in its order.
    """

    def __init__(self, module, n_chains=1, prior_scale=1.0):
        super().__init__()
        check_stateless(module)
        self.n_chains = n_chains
        named = list(module.named_parameters())
        if not named:
            raise ValueError(f"The module {type(module).__name__} has no parameters to train.")
        self.parameter_names = [name for name, _ in named]
        self.buffer_names = [name for name, _ in module.named_buffers()]
        self.stacked = nn.ParameterList()
        stds = []
        for _, parameter in named:
            std = prior_std(parameter, prior_scale)
            shape = (n_chains, *parameter.shape)
            self.stacked.append(nn.Parameter(torch.randn(shape, dtype=parameter.dtype) * std))
            stds.append(torch.full((parameter.numel(),), std))
        self.register_buffer("prior_std", torch.cat(stds))
        for i, (_, buffer) in enumerate(module.named_buffers()):
            self.register_buffer(f"shared_buffer_{i}", buffer.detach().clone())
        # The chains' parameters and buffers are passed to the template at every call; it keeps
        # none of its own (on the meta device it holds no memory and moves with no device).
        template = copy.deepcopy(module).to("meta")
        object.__setattr__(self, "template", template)

    def train(self, mode=True):
        super().train(mode)
        self.template.train(mode)  # dropout and the like follow the chains' mode
        return self

    def _buffers_by_name(self):
        return {name: getattr(self, f"shared_buffer_{i}") for i, name in enumerate(self.buffer_names)}

    def forward(self, X, parameters=None):
        """Outputs of every chain, shape ``(n_chains, B, ...)``.

        ``parameters`` replaces :attr:`stacked` (same shapes), e.g. with float64 copies.
        """
        stacked = list(self.stacked) if parameters is None else list(parameters)
        buffers = self._buffers_by_name()
        if self.n_chains == 1:
            state = {name: p[0] for name, p in zip(self.parameter_names, stacked)}
            return torch.func.functional_call(self.template, (state, buffers), (X,)).unsqueeze(0)

        def one_chain(*chain_parameters):
            state = dict(zip(self.parameter_names, chain_parameters))
            return torch.func.functional_call(self.template, (state, buffers), (X,))

        return torch.func.vmap(one_chain, randomness="different")(*stacked)

    def chain_output(self, X, flat_parameters):
        """Output of one chain whose parameters are the flat vector ``flat_parameters`` (D,)."""
        tensors = self.unflat(flat_parameters[None])
        state = {name: t[0] for name, t in zip(self.parameter_names, tensors)}
        buffers = {name: b.to(flat_parameters.dtype) if b.is_floating_point() else b
                   for name, b in self._buffers_by_name().items()}  # fmt: skip
        return torch.func.functional_call(self.template, (state, buffers), (X,))

    def flat(self, tensors=None):
        """Per-chain flat view ``(K, D)`` of parameters (or of tensors shaped like them)."""
        tensors = list(self.stacked) if tensors is None else tensors
        return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)

    def unflat(self, flat):
        """Inverse of :meth:`flat`: a list of tensors shaped like the stacked parameters."""
        out, start = [], 0
        for p in self.stacked:
            size = p[0].numel()
            out.append(flat[:, start : start + size].reshape(flat.shape[0], *p.shape[1:]))
            start += size
        return out

    @property
    def n_parameters(self):
        """Parameters per chain ``D``."""
        return self.prior_std.numel()
