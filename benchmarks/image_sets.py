"""The image data the classification benchmarks share: digits and MNIST splits, out-of-distribution
images, and out-of-distribution detection by maximum probability.

Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on the path).
"""

import numpy as np
from sklearn.datasets import load_digits, load_sample_images
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from sklearn_ibvi.datasets import load_mnist

#: Training rows of the MNIST subset the benchmarks use.
MNIST_TRAIN_ROWS = 10_000


def load_split(name, seed, mnist_test_rows):
    """``X_train, X_test, y_train, y_test, image_shape``, pixels in [0, 1].

    ``name='digits'``: X/16, a stratified 60/40 split drawn by ``seed``. Any other name: MNIST,
    ``MNIST_TRAIN_ROWS`` training rows and ``mnist_test_rows`` test rows, the same for every seed
    (``random_state=0``).
    """
    if name == "digits":
        data = load_digits()
        split = train_test_split(data.data / 16.0, data.target, test_size=0.4, stratify=data.target, random_state=seed)
        return (*split, (8, 8))
    split = load_mnist(n_train=MNIST_TRAIN_ROWS, n_test=mnist_test_rows, random_state=0)
    return (*split, (28, 28))


def natural_patches(n, image_shape, seed):
    """Grey patches of scikit-learn's bundled photos, block-averaged to ``image_shape``, in [0, 1]."""
    rng = np.random.default_rng(seed)
    photos = [img.mean(axis=2) / 255.0 for img in load_sample_images().images]
    h, w = image_shape
    k = max(1, 64 // max(h, w))  # a patch of about 64 pixels a side, k x k pixels per output pixel
    patches = np.empty((n, h, w))
    for i in range(n):
        photo = photos[i % len(photos)]
        r, c = rng.integers(0, photo.shape[0] - k * h), rng.integers(0, photo.shape[1] - k * w)
        patches[i] = photo[r:r + k * h, c:c + k * w].reshape(h, k, w, k).mean(axis=(1, 3))
    return patches.reshape(n, -1)


def max_probability_auroc(proba_in, proba_out):
    """AUROC of the maximum class probability separating in-distribution rows (positive) from others."""
    in_score, out_score = proba_in.max(axis=1), proba_out.max(axis=1)
    labels = np.r_[np.ones(len(in_score)), np.zeros(len(out_score))]
    return float(roc_auc_score(labels, np.r_[in_score, out_score]))
