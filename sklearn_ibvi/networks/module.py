"""The network of an estimator: the user's ``module`` or the MLP of ``hidden_layer_sizes``."""

import copy
import inspect

import torch
from torch import nn

from .mlp import MLP, layer_sizes


def build_module(module, module_params, hidden_layer_sizes, activation, n_features, n_outputs):
    """A fresh ``nn.Module`` mapping ``(B, n_features)`` inputs to ``(B, n_outputs)`` outputs.

    ``module`` is None (the MLP ``n_features → hidden_layer_sizes → n_outputs``), an
    ``nn.Module`` class (called with ``module_params``, the estimator's ``module__*`` parameters
    without their prefix) or an instance (copied, so fitting never changes the user's object).
    """
    if module is None:
        if module_params:
            raise ValueError(
                f"module__* parameters ({', '.join(sorted(module_params))}) need a `module`; the "
                "built-in MLP is set by hidden_layer_sizes and activation."
            )
        return MLP(layer_sizes(n_features, hidden_layer_sizes, n_outputs), activation)
    if isinstance(module, nn.Module):
        if module_params:
            raise ValueError(
                f"module__* parameters ({', '.join(sorted(module_params))}) are passed to the "
                f"module's constructor, but `module` is an instance of {type(module).__name__}. "
                "Pass the class instead, or set the instance up yourself."
            )
        return copy.deepcopy(module)
    if inspect.isclass(module) and issubclass(module, nn.Module):
        return module(**module_params)
    raise TypeError(f"`module` must be an nn.Module class or instance, or None; got {module!r}.")


def check_output_shape(module, X, n_outputs, task):
    """Run ``module`` on a few rows of ``X`` and raise a clear error unless it gives ``(B, n_outputs)``.

    ``task`` says what the outputs are for (e.g. ``'logits of 10 classes'``).
    """
    rows = X[:2]
    try:
        with torch.no_grad():
            output = module(rows)
    except Exception as error:
        raise ValueError(
            f"The module could not be applied to input rows of shape {tuple(rows.shape)} (the "
            f"estimator passes X as a (n_samples, n_features) float32 tensor; reshape inside the "
            f"module, e.g. with nn.Unflatten): {type(error).__name__}: {error}"
        ) from error
    expected = (len(rows), n_outputs)
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(
            f"The module returns {shape} for {len(rows)} rows; the estimator needs shape "
            f"(n_samples, {n_outputs}): {task}."
        )
