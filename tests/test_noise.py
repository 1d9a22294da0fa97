"""Regression noise learned from the data (``noise_std='auto'``) and the predictive std it gives."""

import math

import numpy as np
import pytest
import torch

from sklearn_ibvi import EntropySGDRegressor, IBVIRegressor
from sklearn_ibvi.math.likelihoods import (
    gaussian_log_likelihood,
    gaussian_log_likelihood_of_residuals,
    noise_std_maximising_likelihood,
    sum_squared_residuals,
)

TRUE_NOISE = 0.3


@pytest.fixture(scope="module")
def sine():
    """y = sin(3x) + N(0, 0.3²) on 400 rows, x standardised."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, 400)
    y = np.sin(3 * x) + rng.normal(0.0, TRUE_NOISE, len(x))
    return (x / x.std())[:, None], y


def entropy_sgd(**params):
    defaults = dict(hidden_layer_sizes=(32,), activation="tanh", lr=0.03, batch_size=32, max_epochs=60, random_state=0)
    return EntropySGDRegressor(**{**defaults, **params})


def ibvi(**params):
    defaults = dict(hidden_layer_sizes=(32,), activation="tanh", batch_size=32, max_epochs=60, random_state=0)
    return IBVIRegressor(**{**defaults, **params})


# ----------------------------------------------------------------------------- the closed forms


def test_log_likelihood_of_residuals_sums_the_per_sample_gaussian():
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(3, 50, 1, generator=generator, dtype=torch.float64)
    target = torch.randn(50, generator=generator, dtype=torch.float64)
    per_sample = gaussian_log_likelihood(prediction, target, 0.7, target_scale=2.5).sum(1)
    squares = ((target - prediction.squeeze(-1)) ** 2).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood_of_residuals(squares, 50, 0.7, 2.5), per_sample)
    torch.testing.assert_close(sum_squared_residuals(per_sample, 50, 0.7, 2.5), squares)


def test_learned_noise_maximises_the_mean_log_likelihood_over_samples():
    squares = torch.tensor([30.0, 45.0, 60.0], dtype=torch.float64)  # three chains, 100 rows
    best = noise_std_maximising_likelihood(squares, 100)
    assert best == pytest.approx(math.sqrt(0.45))

    def mean_log_likelihood(noise):
        return float(gaussian_log_likelihood_of_residuals(squares, 100, noise).mean())

    for other in (0.9 * best, 0.99 * best, 1.01 * best, 1.1 * best):
        assert mean_log_likelihood(other) < mean_log_likelihood(best)


def test_learned_noise_is_floored_for_a_net_that_interpolates():
    assert noise_std_maximising_likelihood(torch.zeros(2, dtype=torch.float64), 10) > 0


# ---------------------------------------------------------------------- estimators: recovery


@pytest.mark.parametrize(
    "make",
    [entropy_sgd, lambda: entropy_sgd(n_chains=4), lambda: ibvi(max_epochs=150)],
    ids=["entropy_sgd", "entropy_sgd_4_chains", "ibvi"],
)
def test_learned_noise_is_within_ten_percent_of_the_true_noise(sine, make):
    """σ̂² = E_q[mean squared training residual]. It also holds the spread of q on the training
    rows, small here; IBVI needs the longer run to fit sin(3x) (at 60 epochs σ̂ is 0.37)."""
    X, y = sine
    model = make().fit(X, y)
    assert model.noise_std == "auto"
    assert model.noise_std_ == pytest.approx(TRUE_NOISE, rel=0.1)
    np.testing.assert_allclose(model.history_[-1, "noise_std"], model.noise_std_)


def test_single_chain_return_std_is_the_learned_noise_on_every_row(sine):
    """One chain is one sample of the implicit posterior: no spread, so the std is the noise alone."""
    X, y = sine
    model = entropy_sgd().fit(X, y)
    _, std = model.predict(X, return_std=True)
    np.testing.assert_allclose(std, model.noise_std_, rtol=1e-12)


def test_several_chains_add_their_spread_to_the_learned_noise(sine):
    X, y = sine
    model = entropy_sgd(n_chains=4).fit(X, y)
    _, std = model.predict(X, return_std=True)
    assert np.all(std >= model.noise_std_)
    assert np.ptp(std) > 0


# ------------------------------------------------------------------- the bound at the learned noise


@pytest.mark.parametrize("make", [entropy_sgd, ibvi], ids=["entropy_sgd", "ibvi"])
def test_bound_at_the_learned_noise_is_the_fixed_noise_bound_maximised_over_sigma(sine, make):
    """The path does not depend on σ, so a fixed-σ fit follows the same path: its bound at the
    learned σ equals the learned fit's, and is lower at any other σ (type-II maximum likelihood)."""
    X, y = sine
    learned = make(max_epochs=10).fit(X, y)
    sigma = learned.noise_std_ / learned.target_scale_
    at_learned = make(max_epochs=10, noise_std=sigma).fit(X, y)
    assert at_learned.score(X, y) == pytest.approx(learned.score(X, y), rel=1e-5)
    np.testing.assert_allclose(
        at_learned.predict(X, return_std=True), learned.predict(X, return_std=True), rtol=1e-5, atol=1e-6
    )
    for other in (0.8 * sigma, 1.25 * sigma):
        assert make(max_epochs=10, noise_std=other).fit(X, y).score(X, y) < learned.score(X, y)


@pytest.mark.parametrize("make", [entropy_sgd, ibvi], ids=["entropy_sgd", "ibvi"])
def test_bound_curve_uses_the_noise_learned_at_each_epoch(sine, make):
    X, y = sine
    model = make(max_epochs=4).fit(X, y)
    noise = np.asarray(model.history_[:, "noise_std"], dtype=float)
    assert np.all(np.isfinite(noise)) and len(np.unique(noise)) > 1
    assert model.bound_curve_[-1] == pytest.approx(model.score(X, y) * len(X), rel=1e-6)


@pytest.mark.parametrize("make", [entropy_sgd, ibvi], ids=["entropy_sgd", "ibvi"])
def test_fixed_noise_is_used_as_given(sine, make):
    X, y = sine
    model = make(max_epochs=3, noise_std=0.5).fit(X, y)
    assert model.noise_std_ == pytest.approx(0.5 * y.std())
    np.testing.assert_allclose(model.history_[:, "noise_std"], 0.5 * y.std())
    _, std = model.predict(X, return_std=True)
    assert np.all(std >= 0.5 * y.std() * (1 - 1e-12))


# ---------------------------------------------------------------------------- continued fits


@pytest.mark.parametrize("make", [entropy_sgd, ibvi], ids=["entropy_sgd", "ibvi"])
def test_partial_fit_keeps_learning_the_noise_as_one_fit_does(sine, make):
    X, y = sine
    whole = make(max_epochs=3).fit(X, y)
    stepwise = make()
    for _ in range(3):
        stepwise.partial_fit(X, y)
    assert stepwise.noise_std_ == pytest.approx(whole.noise_std_, rel=1e-6)
    assert stepwise.score(X, y) == pytest.approx(whole.score(X, y), rel=1e-6)


def test_warm_start_refuses_to_switch_between_learned_and_fixed_noise(sine):
    X, y = sine
    model = entropy_sgd(max_epochs=2, warm_start=True).fit(X, y)
    model.set_params(noise_std=0.5)
    with pytest.raises(ValueError, match="noise_std"):
        model.fit(X, y)
    model.set_params(noise_std="auto", max_epochs=1).fit(X, y)
    assert model.n_epochs_ == 3


def test_ibvi_learns_the_noise_without_tracking_the_bound(sine):
    """Fits judged on held-out rows skip the bound (n_bound_samples=0) but predict with the noise."""
    X, y = sine
    tracked = ibvi(max_epochs=3).fit(X, y)
    untracked = ibvi(max_epochs=3, n_bound_samples=0).fit(X, y)
    assert np.all(np.isnan(untracked.bound_curve_))
    assert untracked.noise_std_ == pytest.approx(tracked.noise_std_, rel=1e-6)  # the same single draw
