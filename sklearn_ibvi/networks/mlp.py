"""Multi-layer perceptrons whose weights are drawn from a Gaussian prior, several chains at once.

:class:`ChainMLP` stacks ``n_chains`` independent networks along a leading dimension, so ``K``
SGD chains train in one batched matrix product instead of ``K`` Python loops. Because the
summed loss of independent chains has a block-diagonal Hessian, one Hessian-vector product on the
stack gives every chain's own product — the entropy bookkeeping vectorises for free.
"""

import math

import torch
from torch import nn

# Module classes, not functions: a fitted network must pickle.
ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "logistic": nn.Sigmoid,
    "identity": nn.Identity,
}


def layer_sizes(n_inputs, hidden_layer_sizes, n_outputs):
    """``(n_inputs, *hidden_layer_sizes, n_outputs)`` as a tuple of ints."""
    return (int(n_inputs), *(int(h) for h in hidden_layer_sizes), int(n_outputs))


def prior_std(fan_in, prior_scale):
    """Prior standard deviations ``(weight_std, bias_std)`` of one layer.

    Weights ``N(0, prior_scale² / fan_in)`` (LeCun scaling keeps pre-activations O(1) at any width),
    biases ``N(0, prior_scale²)``. A Gaussian, not PyTorch's uniform default: the bound needs a prior
    with full support, or ``log p(θ_t)`` is ``−∞`` as soon as a weight leaves the initial range.
    """
    return prior_scale / math.sqrt(fan_in), float(prior_scale)


class ChainMLP(nn.Module):
    """``n_chains`` independent MLPs evaluated on the same inputs.

    Parameters
    ----------
    sizes : tuple of int
        Layer widths from input to output, e.g. ``(64, 256, 10)``; ``(d, 1)`` is a linear model.
    activation : {'relu', 'tanh', 'logistic', 'identity'}
    prior_scale : float
        Multiplier of the prior standard deviations (see :func:`prior_std`).
    n_chains : int

    Notes
    -----
    Parameters are initialised by a draw from the prior, which is what makes SGD from them a
    sample of the implicit posterior. ``forward`` maps ``(B, d)`` to ``(n_chains, B, n_outputs)``.
    """

    def __init__(self, sizes, activation="relu", prior_scale=1.0, n_chains=1):
        super().__init__()
        self.sizes = tuple(sizes)
        self.activation = activation
        self.activation_fn = ACTIVATIONS[activation]()
        self.n_chains = n_chains
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        stds = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:]):
            weight_std, bias_std = prior_std(fan_in, prior_scale)
            self.weights.append(nn.Parameter(torch.randn(n_chains, fan_out, fan_in) * weight_std))
            self.biases.append(nn.Parameter(torch.randn(n_chains, fan_out) * bias_std))
            stds += [torch.full((fan_out * fan_in,), weight_std), torch.full((fan_out,), bias_std)]
        # Flattened in the order of `parameters()` (weights first, then biases), see `flat`.
        weight_part = [s for i, s in enumerate(stds) if i % 2 == 0]
        bias_part = [s for i, s in enumerate(stds) if i % 2 == 1]
        self.register_buffer("prior_std", torch.cat(weight_part + bias_part))

    def forward(self, X):
        hidden = X
        n_layers = len(self.weights)
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if hidden.dim() == 2:
                hidden = torch.matmul(hidden, weight.transpose(1, 2)) + bias.unsqueeze(1)
            else:
                hidden = torch.baddbmm(bias.unsqueeze(1), hidden, weight.transpose(1, 2))
            if i < n_layers - 1:
                hidden = self.activation_fn(hidden)
        return hidden

    def flat(self, tensors=None):
        """Per-chain flat view ``(K, D)`` of parameters (or of tensors shaped like them)."""
        tensors = list(self.parameters()) if tensors is None else tensors
        return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)

    def unflat(self, flat):
        """Inverse of :meth:`flat`: a list of tensors shaped like ``parameters()``."""
        out, start = [], 0
        for p in self.parameters():
            size = p[0].numel()
            out.append(flat[:, start : start + size].reshape(flat.shape[0], *p.shape[1:]))
            start += size
        return out

    @property
    def n_parameters(self):
        """Parameters per chain ``D``."""
        return self.prior_std.numel()
