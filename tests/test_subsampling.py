"""The bound's likelihood term estimated from a fixed subset of the training rows.

The estimator and its standard error are checked against the exact finite-population moments,
enumerating every subset of a small population; the IBVI estimators against a full-row
evaluation of the same model.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_ibvi import IBVIClassifier, IBVIRegressor
from sklearn_ibvi.math.subsampling import row_subset, subsampled_total

N_ROWS, N_KEPT = 9, 4


@pytest.fixture(scope="module")
def population():
    """Per-row values under 3 posterior samples, heavy-tailed like the log-likelihoods of a classifier."""
    generator = torch.Generator().manual_seed(0)
    return -torch.rand(3, N_ROWS, generator=generator, dtype=torch.float64) ** -0.5


def every_subset_estimate(values):
    """``(totals (n_subsets, K), se (n_subsets,))`` over every subset of ``N_KEPT`` rows."""
    totals, ses = [], []
    for subset in itertools.combinations(range(N_ROWS), N_KEPT):
        total, se = subsampled_total(values[:, list(subset)], N_ROWS)
        totals.append(total)
        ses.append(se)
    return torch.stack(totals), torch.tensor(ses, dtype=torch.float64)


def test_the_estimate_averages_to_the_full_sum_over_every_subset(population):
    totals, _ = every_subset_estimate(population)
    torch.testing.assert_close(totals.mean(0), population.sum(-1), rtol=1e-12, atol=1e-12)


def test_the_squared_standard_error_averages_to_the_estimates_variance_over_every_subset(population):
    # Sampling without replacement: the variance of the estimate over all subsets is
    # n²(1 − m/n) S²/m with S² the population variance (n − 1 denominator), and s² is unbiased for S².
    totals, ses = every_subset_estimate(population)
    row_means = population.mean(0)
    exact_variance = N_ROWS**2 * (1 - N_KEPT / N_ROWS) * float(row_means.var()) / N_KEPT
    assert float(totals.mean(1).var(unbiased=False)) == pytest.approx(exact_variance, rel=1e-10)
    assert float((ses**2).mean()) == pytest.approx(exact_variance, rel=1e-10)


def test_every_row_gives_the_exact_sum_and_no_sampling_error(population):
    total, se = subsampled_total(population, N_ROWS)
    torch.testing.assert_close(total, population.sum(-1))
    assert se == 0.0
    assert math.isnan(subsampled_total(population[:, :1], N_ROWS)[1])
    with pytest.raises(ValueError, match="cannot come from"):
        subsampled_total(population, N_ROWS - 1)


def test_the_subset_is_fixed_by_its_seed_sorted_and_without_repeats():
    subset = row_subset(1000, 100, seed=7)
    assert subset.shape == (100,) and len(set(subset.tolist())) == 100
    assert bool((subset[1:] > subset[:-1]).all()) and 0 <= int(subset[0]) and int(subset[-1]) < 1000
    torch.testing.assert_close(subset, row_subset(1000, 100, seed=7))
    assert not torch.equal(subset, row_subset(1000, 100, seed=8))
    assert row_subset(100, 100, seed=7) is None and row_subset(50, 100, seed=7) is None


# --------------------------------------------------------------------------- the estimators


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def classifier(**params):
    defaults = {"hidden_layer_sizes": (32,), "max_epochs": 4, "random_state": 0, "device": "cpu"}
    return IBVIClassifier(**{**defaults, **params})


def test_a_subset_at_least_as_large_as_the_data_changes_nothing(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    every_row = classifier(bound_rows=None).fit(X, y)
    as_large = classifier(bound_rows=300).fit(X, y)
    np.testing.assert_array_equal(as_large.bound_curve_, every_row.bound_curve_)
    assert np.all(np.asarray(as_large.history_[:, "likelihood_subsampling_se"]) == 0.0)
    assert as_large.score(X, y) == pytest.approx(as_large.bound_ / len(X), rel=1e-9)


def test_the_per_epoch_bound_is_the_scaled_sum_over_a_fixed_subset_near_the_full_value(digits):
    X, y = digits
    n, m = len(X), 256
    model = classifier(bound_rows=m, n_bound_samples=2, standardize_inputs=False).fit(X, y)
    net, history = model.net_, model.history_
    subset = row_subset(n, m, net.sample_seed_)
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(model._encode_score_targets(y, n))
    replay = net.sampled_log_likelihood(X_t[subset], y_t[subset], 2).sum(-1).mean() * n / m
    assert history[-1, "expected_log_likelihood"] == pytest.approx(float(replay), rel=1e-9)
    full = net.evidence_lower_bound(X_t, y_t)
    se = history[-1, "likelihood_subsampling_se"]
    assert se > 0
    assert abs(history[-1, "expected_log_likelihood"] - full["expected_log_likelihood"]) < 4 * se
    assert model.score(X, y) == pytest.approx(full["bound"] / n, rel=1e-9)  # score: every row
    # The KL is exact either way; only the likelihood term is estimated.
    assert history[-1, "kl_divergence"] == pytest.approx(full["kl_divergence"], rel=1e-12)


def test_regressors_learn_their_noise_on_the_subset_and_train_as_with_every_row():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 3)).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.standard_normal(1500)
    params = {"hidden_layer_sizes": (16,), "max_epochs": 15, "random_state": 0, "device": "cpu"}
    subset = IBVIRegressor(bound_rows=300, **params).fit(X, y)
    every_row = IBVIRegressor(bound_rows=None, **params).fit(X, y)
    assert np.all(np.asarray(subset.history_[:, "likelihood_subsampling_se"]) > 0)
    np.testing.assert_array_equal(subset.predict(X[:50]), every_row.predict(X[:50]))  # same training
    assert subset.noise_std_ == pytest.approx(every_row.noise_std_, rel=0.1)
    assert np.isfinite(subset.score(X, y))


@pytest.mark.parametrize("bad", [0, 1, 2.5, "all"])
def test_bound_rows_is_validated(digits, bad):
    X, y = digits
    with pytest.raises(InvalidParameterError, match="bound_rows"):
        classifier(bound_rows=bad).fit(X[:50], y[:50])


def test_the_collapse_check_reads_the_bounds_rows_only(digits, monkeypatch):
    from sklearn_ibvi.ibvi.net import COLLAPSE_CHECK_MIN_EPOCHS, IBVINet

    X, y = digits
    checked = []
    loss = IBVINet.mean_weights_loss
    monkeypatch.setattr(IBVINet, "mean_weights_loss", lambda net, X, y: checked.append(len(X)) or loss(net, X, y))
    model = classifier(bound_rows=100, max_epochs=1)
    for _ in range(COLLAPSE_CHECK_MIN_EPOCHS + 1):  # checked after the 5th epoch and at each fit's end
        model.partial_fit(X, y, classes=np.unique(y))
    assert checked == [100, 100, 100]
