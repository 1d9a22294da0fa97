"""Parametrizations of a network's layers: initial scale and learning-rate multiplier.

'mup' is the maximal-update parametrization (Yang & Hu 2021), so a learning rate tuned at one width
transfers to others; 'standard' keeps the usual ``1/√fan_in`` init and one rate for every layer.
"""

import math

from torch import nn

from ..core.validation import check_choice

PARAMETRIZATIONS = ("mup", "standard")
LAYER_TYPES = ("input", "hidden", "output")


def init_std(fan_in: int, layer_type: str = "hidden", parametrization: str = "mup") -> float:
    """Standard deviation s of a layer's (mean) weights and biases at initialisation.

    ============  ===============  ===============
    layer_type    'standard'       'mup'
    ============  ===============  ===============
    'input'       1/√fan_in        1/√fan_in
    'hidden'      1/√fan_in        1/√fan_in
    'output'      1/√fan_in        1/fan_in
    ============  ===============  ===============

    μP's 1/fan_in on the read-out makes the network's initial output vanish as the width
    grows, so that feature learning, not the random init, dominates the function.
    """
    check_choice("layer_type", layer_type, LAYER_TYPES)
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    if parametrization == "mup" and layer_type == "output":
        return 1.0 / fan_in
    return 1.0 / math.sqrt(fan_in)


def lr_multiplier(fan_in: int, fan_out: int, parametrization: str = "mup") -> float:
    """SGD learning-rate multiplier of a layer's weights, biases and diagonal scales.

    'standard': 1. 'mup': ``fan_out / fan_in`` for every layer (the spectral form of μP
    for SGD, Yang, Simon & Bernstein 2023). It has μP's width exponents -- input layer
    ∝ width, hidden 1, output ∝ 1/width -- but keeps the finite data and output
    dimensions in the ratio, so no parameter gets a bare "× width" factor: Yang & Hu's
    table read literally gives input weights and biases lr × fan_out (× 256 for a
    64-256 layer), which NOTES.md measured collapsing IBVI silently. Here a 64 → 256
    input layer gets × 4 and a 256 → 10 read-out × 10/256. Biases, weights of a
    constant input feature, share their layer's multiplier.

    The low-rank factor's multiplier is this divided by the rank R, in both
    parametrizations (see :attr:`VariationalLinear.lr_multipliers`).
    """
    check_choice("parametrization", parametrization, PARAMETRIZATIONS)
    if parametrization == "standard":
        return 1.0
    return fan_out / fan_in


def param_groups(module: nn.Module, lr: float) -> list[dict]:
    """Optimizer parameter groups with the parametrization's learning-rate multipliers.

    Every submodule with an ``lr_multipliers`` mapping (parameter name → multiplier)
    contributes one group per parameter; every other parameter of ``module`` gets
    multiplier 1, so nothing is dropped from the optimizer.

    Parameters
    ----------
    module : nn.Module
    lr : float
        Base learning rate.

    Returns
    -------
    list of dict
        ``{'params': [p], 'lr': lr * m, 'lr_multiplier': m, 'name': qualified name}``,
        ready for ``torch.optim.SGD(groups, lr=lr, momentum=0.9)``.
    """
    groups, seen = [], set()
    for prefix, sub in module.named_modules():
        multipliers = getattr(sub, "lr_multipliers", None)
        if multipliers is None:
            continue
        for name, mult in multipliers.items():
            param = getattr(sub, name)
            if param is None or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{prefix}.{name}" if prefix else name
            groups.append({"params": [param], "lr": lr * mult, "lr_multiplier": mult, "name": full_name})
    for name, param in module.named_parameters():
        if id(param) not in seen:
            seen.add(id(param))
            groups.append({"params": [param], "lr": lr, "lr_multiplier": 1.0, "name": name})
    return groups

