import sys

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss, log_loss

from sklearn_ibvi.metrics import (
    brier_score,
    expected_calibration_error,
    gaussian_negative_log_likelihood,
    negative_log_likelihood,
    plot_reliability_diagram,
)

CLASSIFICATION_METRICS = [
    expected_calibration_error,
    negative_log_likelihood,
    brier_score,
]


def _random_probabilities(rng, n_samples, n_classes, concentration=1.0):
    return rng.dirichlet(np.full(n_classes, concentration), size=n_samples)


def _ece_reference(y_true, y_prob, labels, n_bins):
    """Guo et al. (2017), eq. 3, written as a loop over bins ((m-1)/M, m/M]."""
    confidence = y_prob.max(axis=1)
    correct = labels[y_prob.argmax(axis=1)] == y_true
    ece = 0.0
    for m in range(1, n_bins + 1):
        in_bin = (confidence > (m - 1) / n_bins) & (confidence <= m / n_bins)
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            ece += in_bin.mean() * gap
    return ece


# --- hand-computed tiny cases -------------------------------------------------


def test_tiny_case_matches_hand_computation():
    y_true = np.array(["b", "a", "c"])
    y_prob = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.6, 0.1, 0.3]])
    # True-class probabilities 0.7, 0.5, 0.3.
    assert negative_log_likelihood(y_true, y_prob) == pytest.approx(
        -(np.log(0.7) + np.log(0.5) + np.log(0.3)) / 3
    )
    # Squared errors: .04+.09+.01, .25+.09+.04, .36+.01+.49.
    assert brier_score(y_true, y_prob) == pytest.approx((0.14 + 0.38 + 0.86) / 3)
    # Confidences 0.7 (right), 0.5 (right), 0.6 (wrong, predicts "a"), 5 bins:
    # (0.6, 0.8] holds 0.7 -> gap 0.3; (0.4, 0.6] holds 0.5 and 0.6 -> acc 0.5,
    # conf 0.55, gap 0.05.
    assert expected_calibration_error(y_true, y_prob, n_bins=5) == pytest.approx(
        (0.3 + 2 * 0.05) / 3
    )


def test_ece_of_constant_overconfidence_is_the_gap():
    # Always 90 % sure of class 0, right 60 % of the time.
    y_true = np.array([0] * 6 + [1] * 4)
    y_prob = np.tile([0.9, 0.1], (10, 1))
    assert expected_calibration_error(y_true, y_prob) == pytest.approx(0.3)


# --- independent references ---------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 3, 10])
def test_negative_log_likelihood_agrees_with_sklearn_log_loss(n_classes):
    rng = np.random.default_rng(0)
    y_prob = _random_probabilities(rng, 200, n_classes)
    y_prob[0] = np.eye(n_classes)[1]  # a zero on the true class: clipped alike
    labels = np.array([f"class_{k}" for k in range(n_classes)])
    y_true = labels[rng.integers(n_classes, size=200)]
    y_true[0] = labels[0]
    y_true[1:1 + n_classes] = labels
    assert negative_log_likelihood(y_true, y_prob) == pytest.approx(
        log_loss(y_true, y_prob), rel=1e-12
    )


def test_binary_one_dimensional_probabilities_are_the_positive_class():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=100)
    y_true = rng.choice([-1, 1], size=100)
    two_columns = np.column_stack([1 - p, p])
    assert negative_log_likelihood(y_true, p) == pytest.approx(log_loss(y_true, p))
    for metric in CLASSIFICATION_METRICS:
        assert metric(y_true, p) == pytest.approx(metric(y_true, two_columns))


@pytest.mark.parametrize("n_classes", [2, 4])
def test_brier_score_is_sklearn_unscaled_brier(n_classes):
    rng = np.random.default_rng(2)
    y_prob = _random_probabilities(rng, 300, n_classes)
    y_true = rng.integers(n_classes, size=300)
    assert brier_score(y_true, y_prob) == pytest.approx(
        brier_score_loss(y_true, y_prob, scale_by_half=False)
    )


def test_binary_brier_score_is_twice_the_customary_binary_brier():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=300)
    y_true = rng.integers(2, size=300)
    assert brier_score(y_true, p) == pytest.approx(2 * brier_score_loss(y_true, p))
    assert brier_score(y_true, p) == pytest.approx(2 * np.mean((p - y_true) ** 2))


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_agrees_with_loop_over_bins(n_bins):
    rng = np.random.default_rng(4)
    y_prob = _random_probabilities(rng, 500, 5, concentration=0.3)
    labels = np.array([3, 7, 11, 20, 42])
    y_true = labels[rng.integers(5, size=500)]
    assert expected_calibration_error(y_true, y_prob, n_bins=n_bins) == pytest.approx(
        _ece_reference(y_true, y_prob, labels, n_bins)
    )


def test_perfectly_calibrated_probabilities_have_ece_near_zero():
    # y ~ Categorical(p): calibrated by construction, ECE -> 0 like 1/sqrt(n).
    rng = np.random.default_rng(5)
    n = 20_000
    y_prob = _random_probabilities(rng, n, 4, concentration=0.5)
    y_true = (rng.uniform(size=(n, 1)) > np.cumsum(y_prob, axis=1)).sum(axis=1)
    ece = expected_calibration_error(y_true, y_prob, labels=np.arange(4))
    # Finite-sample bias of 15 bins at n = 20000 is ~ 0.004.
    assert ece < 0.015


def test_sharpened_probabilities_are_miscalibrated():
    # Same data, predictions sharpened by temperature 1/3: overconfident.
    rng = np.random.default_rng(6)
    n = 20_000
    y_prob = _random_probabilities(rng, n, 4, concentration=2.0)
    y_true = (rng.uniform(size=(n, 1)) > np.cumsum(y_prob, axis=1)).sum(axis=1)
    sharpened = y_prob**3 / np.sum(y_prob**3, axis=1, keepdims=True)
    labels = np.arange(4)
    calibrated_ece = expected_calibration_error(y_true, y_prob, labels=labels)
    sharpened_ece = expected_calibration_error(y_true, sharpened, labels=labels)
    assert sharpened_ece > 0.1 > 5 * calibrated_ece
    # Overconfidence also costs likelihood: a proper score prefers the truth.
    assert negative_log_likelihood(y_true, sharpened) > negative_log_likelihood(
        y_true, y_prob
    )
    assert brier_score(y_true, sharpened) > brier_score(y_true, y_prob)


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_labels_order_the_columns(metric):
    rng = np.random.default_rng(7)
    y_prob = _random_probabilities(rng, 50, 3)
    y_true = rng.choice(["x", "y", "z"], size=50)
    permutation = [2, 0, 1]
    reordered_labels = np.array(["x", "y", "z"])[permutation]
    assert metric(y_true, y_prob[:, permutation], labels=reordered_labels) == (
        pytest.approx(metric(y_true, y_prob))
    )


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_labels_allow_classes_absent_from_y_true(metric):
    y_prob = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    assert np.isfinite(metric([0, 1], y_prob, labels=[0, 1, 2]))
    with pytest.raises(ValueError, match="labels argument"):
        metric([0, 1], y_prob)


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_float32_probabilities_within_float32_rounding_are_accepted(metric):
    logits = np.random.default_rng(8).normal(size=(100, 10)).astype(np.float32)
    y_prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.isfinite(metric(np.arange(100) % 10, y_prob))


# --- input validation ---------------------------------------------------------


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
@pytest.mark.parametrize(
    "y_true, y_prob, message",
    [
        ([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]], "inconsistent numbers of samples"),
        ([0, 1], [[0.5, 0.4], [0.5, 0.5]], "sum to one"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], r"probabilities in \[0, 1\]"),
        ([0, 1, 2], [0.2, 0.4, 0.9], "1-D y_prob"),
        ([1, 1], [[0.5, 0.5], [0.5, 0.5]], "different numbers of classes"),
        ([1, 1], [0.5, 0.5], "1-D y_prob"),
        ([0, 1], [[[0.5, 0.5]], [[0.5, 0.5]]], "dim 3"),
        ([], np.empty((0, 2)), "sample"),
    ],
)
def test_invalid_input_raises_clear_error(metric, y_true, y_prob, message):
    with pytest.raises(ValueError, match=message):
        metric(y_true, y_prob)


@pytest.mark.parametrize("metric", CLASSIFICATION_METRICS)
def test_invalid_labels_raise_clear_error(metric):
    y_prob = [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(ValueError, match="not in labels"):
        metric([0, 2], y_prob, labels=[0, 1])
    with pytest.raises(ValueError, match="duplicates"):
        metric([0, 1], y_prob, labels=[0, 1, 1])
    with pytest.raises(ValueError, match="number of classes in labels"):
        metric([0, 1], y_prob, labels=[0, 1, 2])


@pytest.mark.parametrize("n_bins, error", [(0, ValueError), (2.5, TypeError)])
def test_ece_rejects_invalid_n_bins(n_bins, error):
    with pytest.raises(error, match="n_bins"):
        expected_calibration_error([0, 1], [[0.6, 0.4], [0.3, 0.7]], n_bins=n_bins)


# --- Gaussian negative log-likelihood -----------------------------------------


def test_gaussian_nll_agrees_with_scipy_norm_logpdf():
    rng = np.random.default_rng(9)
    y, mean = rng.normal(size=(2, 100))
    std = rng.uniform(0.1, 3.0, size=100)
    expected = -np.mean(stats.norm.logpdf(y, loc=mean, scale=std))
    assert gaussian_negative_log_likelihood(y, mean, std) == pytest.approx(expected)


def test_gaussian_nll_sums_outputs_and_broadcasts_std():
    rng = np.random.default_rng(10)
    y, mean = rng.normal(size=(2, 50, 3))
    expected = -np.mean(stats.norm.logpdf(y, loc=mean, scale=0.5).sum(axis=1))
    assert gaussian_negative_log_likelihood(y, mean, 0.5) == pytest.approx(expected)
    assert gaussian_negative_log_likelihood(y, mean, np.full(3, 0.5)) == (
        pytest.approx(expected)
    )


def test_gaussian_nll_invalid_input_raises_clear_error():
    with pytest.raises(ValueError, match="strictly positive"):
        gaussian_negative_log_likelihood([0.0, 1.0], [0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="shape of y_true"):
        gaussian_negative_log_likelihood([0.0, 1.0], [0.0, 1.0, 2.0], 1.0)
    with pytest.raises(ValueError, match="broadcast"):
        gaussian_negative_log_likelihood([0.0, 1.0], [0.0, 1.0], [1.0, 1.0, 1.0])


# --- reliability diagram ------------------------------------------------------


def test_reliability_diagram_draws_one_bar_pair_per_filled_bin():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_true = np.array([0] * 6 + [1] * 4)
    y_prob = np.tile([0.9, 0.1], (10, 1))
    fig, ax = plt.subplots()
    try:
        assert plot_reliability_diagram(y_true, y_prob, ax=ax) is ax
        assert len(ax.patches) == 2  # accuracy bar + gap bar for the 0.9 bin
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert any("ECE = 0.300" in text for text in legend)
    finally:
        plt.close(fig)


def test_reliability_diagram_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_reliability_diagram([0, 1], [[0.6, 0.4], [0.3, 0.7]])
