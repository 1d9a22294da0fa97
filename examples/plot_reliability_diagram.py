"""
Reliability diagrams on digits: IBVI, an SGD-trained MLP, and temperature scaling
=================================================================================

:class:`~sklearn_ibvi.IBVIClassifier` is compared on scikit-learn's 8×8 digits with
:class:`~sklearn.neural_network.MLPClassifier` of the same architecture trained by SGD with
momentum, and with that MLP after temperature scaling: its logits divided by a temperature
:math:`T` fitted by minimising the negative log-likelihood on 20 % of the training rows held out
from the MLP's fit (IBVI trains on all the training rows: it has nothing to tune afterwards),

.. math::

    T^\\star = \\arg\\min_T \\; -\\sum_{i \\in \\text{held out}} \\log \\operatorname{softmax}(z_i / T)_{y_i}.

Each panel is a top-label reliability diagram
(:func:`~sklearn_ibvi.metrics.plot_reliability_diagram`): the accuracy of the test rows in each
confidence bin against the bin's confidence. The printout gives accuracy, negative
log-likelihood and expected calibration error (ECE, 15 bins) per model on the test rows. On
a data set this easy all three are accurate and their errors are close; which is best
calibrated can change with the seed and the epoch budget, so read the comparison from the
printed numbers rather than from one diagram.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from sklearn_ibvi import IBVIClassifier
from sklearn_ibvi.metrics import (
    expected_calibration_error,
    negative_log_likelihood,
    plot_reliability_diagram,
)

# Set SKLEARN_IBVI_FAST_EXAMPLES=1 (as the docs CI does) for a quick run with fewer epochs/rows.
FAST = bool(os.environ.get("SKLEARN_IBVI_FAST_EXAMPLES"))
X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixel intensities in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
epochs = 30 if FAST else 100
hidden = (128,)

ibvi = IBVIClassifier(hidden_layer_sizes=hidden, max_epochs=epochs, batch_size=32, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    ibvi.fit(X_train, y_train)

# The MLP is fitted on 80 % of the training rows; the other 20 % fit its temperature.
X_fit, X_cal, y_fit, y_cal = train_test_split(
    X_train, y_train, test_size=0.2, stratify=y_train, random_state=0
)
mlp = MLPClassifier(
    hidden_layer_sizes=hidden, solver="sgd", learning_rate_init=0.05, momentum=0.9,
    batch_size=32, max_iter=epochs, alpha=0.0, random_state=0,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ConvergenceWarning at the fixed epoch budget
    mlp.fit(X_fit, y_fit)


def logits(model, X):
    """The MLP's pre-softmax outputs (its log-probabilities, up to a constant per row)."""
    return np.log(np.clip(model.predict_proba(X), 1e-300, None))


def held_out_nll(temperature):
    return -np.mean(log_softmax(logits(mlp, X_cal) / temperature, axis=1)[np.arange(len(y_cal)), y_cal])


temperature = minimize_scalar(held_out_nll, bounds=(0.05, 20.0), method="bounded").x
probabilities = {
    "IBVIClassifier": ibvi.predict_proba(X_test),
    "MLPClassifier (SGD, momentum)": mlp.predict_proba(X_test),
    f"MLP + temperature scaling (T = {temperature:.2f})": softmax(logits(mlp, X_test) / temperature, axis=1),
}

fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
print(f"{'model':>45} {'accuracy':>9} {'NLL':>7} {'ECE':>7}")
for ax, (name, proba) in zip(axes, probabilities.items()):
    accuracy = np.mean(proba.argmax(axis=1) == y_test)
    nll = negative_log_likelihood(y_test, proba)
    ece = expected_calibration_error(y_test, proba)
    print(f"{name:>45} {accuracy:9.3f} {nll:7.3f} {ece:7.3f}")
    plot_reliability_diagram(y_test, proba, ax=ax)
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
fig.tight_layout()
plt.show()
