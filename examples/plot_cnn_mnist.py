"""
IBVI on your own network: a small CNN on MNIST
==============================================

Both families train any PyTorch module passed as ``module`` (a class, with its constructor's
arguments as ``module__*`` parameters, or an instance). The module maps the rows of ``X`` to
logits; ``nn.Unflatten`` turns the 784 pixels back into an image.
:class:`~sklearn_ibvi.IBVIClassifier` makes the module's first and last weight layers Gaussian
(here the first convolution and the read-out) and keeps the rest as point estimates.

This example trains the CNN with IBVI on 2,000 MNIST digits, and the same CNN plainly with skorch,
then compares their test log loss on clean digits and on digits rotated by 30°
(:func:`~sklearn_ibvi.datasets.corrupt_images`). The measured comparison on 10,000 rows, with
IBVI's MLP beside it, is ``benchmarks/cnn_mnist.py`` (the benchmarks page shows its table).
"""

import os
import matplotlib.pyplot as plt
import numpy as np
import torch
from skorch import NeuralNetClassifier
from torch import nn

from sklearn_ibvi import IBVIClassifier
from sklearn_ibvi.datasets import corrupt_images, load_mnist
from sklearn_ibvi.metrics import negative_log_likelihood


class CNN(nn.Module):
    def __init__(self, channels=16, n_classes=10):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, channels, 5, stride=2), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 5, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(2 * channels * 16, n_classes),
        )  # fmt: skip

    def forward(self, x):
        return self.layers(x)


# Set SKLEARN_IBVI_FAST_EXAMPLES=1 (as the docs CI does) for a quick run with fewer epochs/rows.
FAST = bool(os.environ.get("SKLEARN_IBVI_FAST_EXAMPLES"))
X_train, X_test, y_train, y_test = load_mnist(n_train=500 if FAST else 2000, n_test=300 if FAST else 1000, random_state=0)
training = dict(lr=0.05, batch_size=128, max_epochs=2 if FAST else 8)

ibvi = IBVIClassifier(module=CNN, module__channels=16, random_state=0, **training).fit(X_train, y_train)
print("variational layers:", list(ibvi.net_.module_.variational))

torch.manual_seed(0)
plain = NeuralNetClassifier(
    CNN, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.SGD, optimizer__momentum=0.9,
    iterator_train__shuffle=True, train_split=None, verbose=0, **training,
).fit(X_train, y_train)  # fmt: skip

test_sets = {
    "clean": X_test,
    "rotated 30°": corrupt_images(X_test, "rotation", 2, image_shape=(28, 28), random_state=0).astype(np.float32),
}
models = {"IBVIClassifier(module=CNN)": ibvi, "CNN, plain SGD": plain}
nll = {name: [negative_log_likelihood(y_test, model.predict_proba(X)) for X in test_sets.values()]
       for name, model in models.items()}  # fmt: skip
for name, values in nll.items():
    print(f"{name:28s}", "  ".join(f"{shift}: NLL {v:.3f}" for shift, v in zip(test_sets, values)))

fig, ax = plt.subplots(figsize=(5, 3))
width = 0.38
for i, (name, values) in enumerate(nll.items()):
    ax.bar(np.arange(len(test_sets)) + (i - 0.5) * width, values, width, label=name)
ax.set_xticks(range(len(test_sets)), list(test_sets))
ax.set_ylabel("test negative log-likelihood")
ax.legend(frameon=False)
fig.tight_layout()
plt.show()
