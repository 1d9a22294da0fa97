"""The multi-layer perceptron both families build from ``hidden_layer_sizes``."""

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


class MLP(nn.Sequential):
    """Linear layers of the widths ``sizes`` with ``activation`` between them.

    Parameters
    ----------
    sizes : tuple of int
        Layer widths from input to output, e.g. ``(64, 256, 10)``; ``(d, 1)`` is a linear model.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
    bias : bool, default=True
    """

    def __init__(self, sizes, activation="relu", bias=True):
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(ACTIVATIONS[activation]())
            layers.append(nn.Linear(fan_in, fan_out, bias=bias))
        super().__init__(*layers)
        self.sizes = tuple(sizes)
        self.activation = activation
