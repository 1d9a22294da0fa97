"""Any PyTorch module as the network IBVI trains: chosen layers become Gaussian, the rest stay.

:class:`VariationalNetwork` takes a module and replaces its chosen linear and convolutional
layers by :class:`~sklearn_ibvi.networks.variational.VariationalLinear` and
:class:`~sklearn_ibvi.networks.variational.VariationalConv`; the other linear and convolutional
layers become point estimates with the same parametrization (init and μP learning-rate
multiplier); every other layer (activations, pooling, normalisation...) is kept as it is.

The module's own ``forward`` runs unchanged, with S weight draws folded into the batch: up to the
first variational layer the rows are shared by all draws; that layer tiles them S times (rows
``s·B … (s+1)·B − 1`` belong to draw ``s``) and every later variational layer applies draw ``s``
to its block, so the deterministic layers before it run once and those after it run on S·B rows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.validation import check_choice
from .mlp import MLP
from .mup import init_std, lr_multiplier, param_groups
from .variational import VariationalConv, VariationalLinear, WeightSamples

#: The layers that can be variational, and that carry the parametrization when they are not.
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
VARIATIONAL_LAYERS = ("input_output", "output", "all")


def weight_layer_names(module):
    """Names of the linear and convolutional layers of ``module``, in the order of ``named_modules``."""
    return [name for name, layer in module.named_modules() if type(layer) in WEIGHT_LAYERS]


def chosen_layers(module, variational_layers):
    """The names of the layers ``variational_layers`` makes Gaussian (a preset or a list of names)."""
    names = weight_layer_names(module)
    if not names:
        raise ValueError(
            f"The module {type(module).__name__} has no nn.Linear, nn.Conv1d or nn.Conv2d layer to make "
            "variational."
        )
    if isinstance(variational_layers, str):
        check_choice("variational_layers", variational_layers, VARIATIONAL_LAYERS)
        if variational_layers == "all":
            return names
        if variational_layers == "output":
            return names[-1:]
        return list(dict.fromkeys([names[0], names[-1]]))
    layers = dict(module.named_modules())
    chosen = list(variational_layers)
    if not chosen:
        raise ValueError("variational_layers is empty: name at least one layer.")
    for name in chosen:
        if name not in layers:
            raise ValueError(f"variational_layers names {name!r}, which is not a layer of the module; its "
                             f"linear and convolutional layers are {names}.")  # fmt: skip
        if type(layers[name]) not in WEIGHT_LAYERS:
            raise ValueError(
                f"Layer {name!r} is a {type(layers[name]).__name__}; variational layers can be nn.Linear, "
                f"nn.Conv1d or nn.Conv2d (the module's are {names})."
            )
    return chosen


def _layer_type(name, names):
    if name == names[0]:
        return "input"
    return "output" if name == names[-1] else "hidden"


def _as_point_estimate(layer, layer_type, parametrization):
    """Re-initialise a deterministic layer by the parametrization and give it its lr multiplier."""
    # torch's fans: a convolution's both include its kernel size, so their ratio is that of channels
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    std = init_std(fan_in, layer_type, parametrization)
    with torch.no_grad():
        layer.weight.normal_(0.0, std)
        if layer.bias is not None:
            layer.bias.normal_(0.0, std)
    multiplier = lr_multiplier(fan_in, fan_out, parametrization)
    layer.lr_multipliers = {"weight": multiplier, **({"bias": multiplier} if layer.bias is not None else {})}
    return layer


class _Draws:
    """What the variational layers of one forward pass draw: set by the network, read by the layers."""

    def __init__(self, n_samples=1, generator=None, samples=None, mean=False):
        self.n_samples = n_samples
        self.generator = generator
        self.samples = samples or {}
        self.mean = mean
        self.tiled = False


class _Sampled(nn.Module):
    """A variational layer in the user's module: applies the current draws to folded rows."""

    def __init__(self, layer, name):
        super().__init__()
        self.layer = layer
        self.name = name
        self.draws = None  # set for the duration of a forward pass

    def forward(self, x: Tensor) -> Tensor:
        draws, layer = self.draws, self.layer
        if draws is None:
            raise RuntimeError("A variational layer runs only inside VariationalNetwork.forward.")
        if draws.mean:
            return layer.forward_mean(x)
        samples = draws.samples.get(self.name)  # None: the layer draws
        n_samples = draws.n_samples
        if isinstance(layer, VariationalLinear):
            if x.dim() != 2:
                raise ValueError(f"A variational nn.Linear takes (rows, features) inputs, got {tuple(x.shape)}.")
            # Shared rows: one GEMM for all draws; folded rows: one batched GEMM over the draws.
            rows = x if not draws.tiled else x.reshape(n_samples, -1, x.shape[-1])
            out = layer(rows, n_samples, draws.generator, samples)
            draws.tiled = True
            return out.reshape(-1, out.shape[-1])
        if not draws.tiled:
            x = x.repeat(n_samples, *([1] * (x.dim() - 1)))
            draws.tiled = True
        return layer(x, n_samples, draws.generator, samples)


class VariationalNetwork(nn.Module):
    """``module`` with its chosen layers Gaussian: the network IBVI trains.

    Parameters
    ----------
    module : nn.Module
        Mapping ``(B, n_features)`` to ``(B, n_outputs)``. It is modified in place (the
        estimators pass a copy).
    n_outputs : int
    variational_layers : {'input_output', 'output', 'all'} or list of str, default='input_output'
        The first and last linear/convolutional layer (the paper's choice), the last, all, or the
        named layers.
    covariance, rank, prior_scale, parametrization :
        Passed to every variational layer (:class:`~sklearn_ibvi.networks.variational.VariationalLinear`).

    Notes
    -----
    With point-estimate layers the KL of :meth:`kl_divergence` (and any ELBO built from it) is
    conditional on those layers; with every parameter in a variational layer it covers the model.
    """

    def __init__(self, module, n_outputs, *, variational_layers="input_output", covariance="lowrank", rank=10,
                 prior_scale=1.0, parametrization="mup"):  # fmt: skip
        super().__init__()
        if type(module) in WEIGHT_LAYERS:
            module = nn.Sequential(module)  # a single layer: a container to put its replacement in
        names = weight_layer_names(module)
        chosen = chosen_layers(module, variational_layers)
        self.n_outputs = n_outputs
        self.variational_names = chosen
        self.weight_layer_names = names
        modules = dict(module.named_modules())
        for name in names:  # in order, so that seeded draws follow the layers
            layer, layer_type = modules[name], _layer_type(name, names)
            if name in chosen:
                options = dict(covariance=covariance, rank=rank, prior_scale=prior_scale,
                               parametrization=parametrization, layer_type=layer_type)  # fmt: skip
                if isinstance(layer, nn.Linear):
                    replacement = VariationalLinear(
                        layer.in_features, layer.out_features, bias=layer.bias is not None,
                        device=layer.weight.device, dtype=layer.weight.dtype, **options,
                    )  # fmt: skip
                else:
                    replacement = VariationalConv(layer, **options)
                _set_submodule(module, name, _Sampled(replacement, name))
            else:
                _as_point_estimate(layer, layer_type, parametrization)
        self.module = module

    @property
    def variational(self):
        """The variational layers by name, in the module's order."""
        modules = dict(self.module.named_modules())
        return {name: modules[name].layer for name in self.variational_names}

    @property
    def layers(self):
        """Every linear and convolutional layer, variational or not, in the module's order."""
        modules = dict(self.module.named_modules())
        return [getattr(modules[name], "layer", modules[name]) for name in self.weight_layer_names]

    def _run(self, x, draws):
        wrappers = [m for m in self.module.modules() if isinstance(m, _Sampled)]
        for wrapper in wrappers:
            wrapper.draws = draws
        try:
            return self.module(x)
        finally:
            for wrapper in wrappers:
                wrapper.draws = None

    def forward(self, x: Tensor, n_samples: int = 1, generator=None, samples=None) -> Tensor:
        """Outputs ``(S, B, n_outputs)`` under ``n_samples`` weight draws (or the given ``samples``,
        a dict of :class:`~sklearn_ibvi.networks.variational.WeightSamples` by layer name)."""
        if samples is not None:
            n_samples = next(iter(samples.values())).weight.shape[0]
        draws = _Draws(n_samples, generator, samples)
        out = self._run(x, draws)
        if not draws.tiled:
            raise RuntimeError("The module's forward pass did not run any of its variational layers.")
        return out.reshape(n_samples, len(x), *out.shape[1:])

    def forward_mean(self, x: Tensor) -> Tensor:
        """Outputs ``(B, n_outputs)`` with every variational layer at its mean."""
        return self._run(x, _Draws(mean=True))

    def sample_weights(self, n_samples=1, generator=None):
        """``n_samples`` draws of every variational layer, layer after layer, for ``forward(x, samples=...)``."""
        return {
            name: WeightSamples.from_matrices(layer.sample_weights(n_samples, generator), layer.in_features, layer.has_bias)
            for name, layer in self.variational.items()
        }

    def prior_precisions(self) -> dict:
        """Each variational layer's :meth:`~sklearn_ibvi.networks.variational.VariationalLinear.prior_precision`, by name."""
        return {name: layer.prior_precision() for name, layer in self.variational.items()}

    def kl_divergence(self, prior_precisions: dict | None = None) -> Tensor:
        """Σ over the variational layers of KL(q ‖ p), float64 (inf if any layer's is).

        ``prior_precisions`` is :meth:`prior_precisions`, when the caller kept it.
        """
        precisions = prior_precisions or {}
        kls = [layer.kl_divergence(precisions.get(name)) for name, layer in self.variational.items()]
        return torch.stack(kls).sum()

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups with the parametrization's multipliers (:func:`param_groups`)."""
        return param_groups(self, lr)

    def relu_units_after_input_layer(self):
        """The first layer, when the module is the built-in ReLU MLP (its units can die), else None."""
        if isinstance(self.module, MLP) and self.module.activation == "relu" and len(self.layers) > 1:
            return self.layers[0]
        return None


def _set_submodule(module, name, replacement):
    parent_name, _, child = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, child, replacement)
