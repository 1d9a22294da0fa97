"""Regression noise learned from the data (``noise_std='auto'``, Gaussian or Student-t) and the
predictive std and intervals it gives."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_ibvi import EntropySGDRegressor, IBVIRegressor
from sklearn_ibvi.math.likelihoods import (
    MIN_NOISE_DOF,
    ObservationNoise,
    gaussian_log_likelihood,
    mixture_quantile,
    noise_std_maximising_likelihood,
    observation_log_likelihood,
    squared_residuals,
    student_t_noise_maximising_likelihood,
)
from sklearn_ibvi.model_selection import log_predictive_scorer, predictive_log_likelihood

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


def test_observation_log_likelihood_inverts_the_criterions_gaussian():
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(3, 50, 1, generator=generator, dtype=torch.float64)
    target = torch.randn(50, generator=generator, dtype=torch.float64)
    per_row = gaussian_log_likelihood(prediction, target, 0.7, target_scale=2.5)
    squares = (target - prediction.squeeze(-1)) ** 2
    torch.testing.assert_close(squared_residuals(per_row, 0.7, 2.5), squares)
    torch.testing.assert_close(observation_log_likelihood(squares, ObservationNoise(0.7), 2.5), per_row)
    # Under another noise: the density of y = m + s·y_s with scipy's Gaussian, Jacobian −log s included.
    reference = stats.norm.logpdf(squares.sqrt().numpy(), scale=0.4) - math.log(2.5)
    np.testing.assert_allclose(observation_log_likelihood(squares, ObservationNoise(0.4), 2.5).numpy(), reference)


def test_student_t_log_likelihood_is_scipys_density_of_y():
    residuals = torch.linspace(-6.0, 6.0, 25, dtype=torch.float64)
    for dof in (MIN_NOISE_DOF, 4.0, 30.0):
        ours = observation_log_likelihood(residuals**2, ObservationNoise(0.6, dof), target_scale=3.0)
        reference = stats.t.logpdf(residuals.numpy(), dof, scale=0.6) - math.log(3.0)
        np.testing.assert_allclose(ours.numpy(), reference, rtol=1e-12)
    assert ObservationNoise(0.6, 4.0).variance == pytest.approx(stats.t.var(4.0, scale=0.6))


def test_learned_noise_maximises_the_mean_log_likelihood_over_samples():
    squares = torch.tensor([[0.3] * 100, [0.45] * 100, [0.6] * 100], dtype=torch.float64)  # three chains
    best = noise_std_maximising_likelihood(squares)
    assert best == pytest.approx(math.sqrt(0.45))

    def mean_log_likelihood(noise):
        return float(observation_log_likelihood(squares, ObservationNoise(noise)).sum(1).mean())

    for other in (0.9 * best, 0.99 * best, 1.01 * best, 1.1 * best):
        assert mean_log_likelihood(other) < mean_log_likelihood(best)


def test_learned_noise_is_floored_for_a_net_that_interpolates():
    assert noise_std_maximising_likelihood(torch.zeros(2, 10, dtype=torch.float64)) > 0


def _mean_log_likelihood(squares, noise):
    return float(observation_log_likelihood(squares, noise).sum(1).mean())


def test_student_t_noise_maximises_the_mean_log_likelihood_over_samples():
    residuals = stats.t.rvs(4.0, scale=0.5, size=(3, 2000), random_state=0)
    squares = torch.as_tensor(residuals**2)
    best = student_t_noise_maximising_likelihood(squares)
    at_best = _mean_log_likelihood(squares, best)
    for std_factor, dof_factor in ((0.97, 1), (1.03, 1), (1, 0.9), (1, 1.1), (1.02, 1.05)):
        other = ObservationNoise(best.std * std_factor, best.dof * dof_factor)
        assert _mean_log_likelihood(squares, other) < at_best
    assert _mean_log_likelihood(squares, ObservationNoise(noise_std_maximising_likelihood(squares))) < at_best
    # 6,000 draws of a known Student-t: its parameters come back.
    assert best.std == pytest.approx(0.5, rel=0.05)
    assert best.dof == pytest.approx(4.0, rel=0.2)
    fixed = student_t_noise_maximising_likelihood(squares, std=0.5)
    assert fixed.std == 0.5 and fixed.dof == pytest.approx(4.0, rel=0.2)


def test_student_t_noise_of_gaussian_residuals_is_nearly_gaussian():
    squares = torch.as_tensor(stats.norm.rvs(scale=0.3, size=(2, 5000), random_state=1) ** 2)
    noise = student_t_noise_maximising_likelihood(squares)
    assert noise.dof > 50
    assert noise.std == pytest.approx(0.3, rel=0.03)


def test_student_t_degrees_of_freedom_stay_where_the_variance_is_finite():
    squares = torch.as_tensor(stats.cauchy.rvs(scale=0.3, size=(1, 3000), random_state=2) ** 2)
    noise = student_t_noise_maximising_likelihood(squares)
    assert noise.dof == pytest.approx(MIN_NOISE_DOF)
    assert math.isfinite(noise.variance)


@pytest.mark.parametrize("noise", [ObservationNoise(0.5), ObservationNoise(0.5, 3.0)], ids=["gaussian", "student_t"])
def test_mixture_quantile_is_where_the_mixtures_cdf_reaches_the_probability(noise):
    means = np.random.default_rng(0).normal(size=(7, 40))
    dist = stats.norm if noise.is_gaussian else stats.t(noise.dof)
    for probability in (0.025, 0.05, 0.5, 0.95, 0.975):
        quantile = mixture_quantile(means, noise, probability)
        cdf = dist.cdf((quantile[None] - means) / noise.std).mean(0)
        np.testing.assert_allclose(cdf, probability, atol=1e-9)
    # One component: its own quantile.
    np.testing.assert_allclose(mixture_quantile(means[:1], noise, 0.9), means[0] + noise.std * dist.ppf(0.9))


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


@pytest.mark.parametrize("noise", ["gaussian", "student_t"])
def test_single_chain_return_std_is_the_learned_noise_on_every_row(sine, noise):
    """One chain is one sample of the implicit posterior: no spread, so the std is the noise's alone,
    and the interval is the noise's own quantiles around the chain's prediction."""
    X, y = sine
    model = entropy_sgd(noise=noise).fit(X, y)
    mean, std = model.predict(X, return_std=True)
    dist = stats.norm(scale=model.noise_std_) if noise == "gaussian" else stats.t(model.noise_dof_, scale=model.noise_std_)
    assert math.isinf(model.noise_dof_) == (noise == "gaussian")
    np.testing.assert_allclose(std, dist.std(), rtol=1e-12)
    interval = model.predict_interval(X, coverage=0.9)
    np.testing.assert_allclose(interval - mean[:, None], [dist.ppf(0.05), dist.ppf(0.95)] * np.ones((len(X), 1)), atol=1e-7)


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


# ------------------------------------------------------------------------- Student-t noise


@pytest.fixture(scope="module")
def heavy_tailed_sine():
    """y = sin(3x) + 0.3 · t₃ noise: 1,000 training rows and 4,000 held-out ones."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.0, 1.0, 5000)
    y = np.sin(3 * x) + 0.3 * stats.t.rvs(3.0, size=len(x), random_state=rng)
    X = (x / x.std())[:, None]
    return (X[:1000], y[:1000]), (X[1000:], y[1000:])


def test_student_t_noise_learns_heavy_tails_and_its_intervals_cover(heavy_tailed_sine):
    """The Gaussian interval of the right variance over-covers at 90 % on t₃ noise; the Student-t
    predictive's own quantiles cover as stated."""
    (X, y), (X_test, y_test) = heavy_tailed_sine
    model = entropy_sgd(max_epochs=40).fit(X, y)
    assert model.noise_dof_ < 6
    assert model.noise_std_ == pytest.approx(0.3, rel=0.2)
    for level in (0.9, 0.95):
        low, high = model.predict_interval(X_test, coverage=level).T
        assert abs(np.mean((low <= y_test) & (y_test <= high)) - level) < 0.02
    gaussian = entropy_sgd(max_epochs=40, noise="gaussian").fit(X, y)
    mean, std = gaussian.predict(X_test, return_std=True)
    assert np.mean(np.abs(y_test - mean) <= stats.norm.ppf(0.95) * std) > 0.93
    # The same path, a model that nests the Gaussian: a higher bound, and a better held-out density.
    assert model.score(X, y) > gaussian.score(X, y)
    assert log_predictive_scorer(model, X_test, y_test) > log_predictive_scorer(gaussian, X_test, y_test)


@pytest.mark.parametrize("make", [entropy_sgd, ibvi], ids=["entropy_sgd", "ibvi"])
def test_student_t_bound_is_at_least_the_gaussian_bound_on_the_same_path(sine, make):
    X, y = sine
    student_t, gaussian = make(max_epochs=5).fit(X, y), make(max_epochs=5, noise="gaussian").fit(X, y)
    np.testing.assert_allclose(student_t.predict(X), gaussian.predict(X), rtol=1e-12)
    assert student_t.score(X, y) >= gaussian.score(X, y) - 1e-6
    assert np.all(np.isfinite(student_t.history_[:, "noise_dof"]))
    assert np.all(np.isinf(gaussian.history_[:, "noise_dof"]))


def test_log_predictive_density_is_the_student_t_mixtures_through_a_pipeline(sine):
    X, y = sine
    single = make_pipeline(StandardScaler(), entropy_sgd(max_epochs=5)).fit(X, y)
    network = single[-1]
    mean = single.predict(X[:50])
    reference = stats.t.logpdf(y[:50], network.noise_dof_, loc=mean, scale=network.noise_std_)
    np.testing.assert_allclose(predictive_log_likelihood(single, X[:50], y[:50]), reference, rtol=1e-6)
    several = ibvi(max_epochs=5, n_predict_samples=4).fit(X, y)
    means = several._standardised_outputs(X[:50]).numpy() * several.target_scale_ + several.target_mean_
    densities = stats.t.pdf(y[:50], several.noise_dof_, loc=means, scale=several.noise_std_)
    np.testing.assert_allclose(predictive_log_likelihood(several, X[:50], y[:50]), np.log(densities.mean(0)), rtol=1e-6)


def test_predict_interval_shapes_and_bad_coverage(sine):
    X, y = sine
    model = entropy_sgd(max_epochs=2, n_chains=2).fit(X, y)
    assert model.predict_interval(X[:5]).shape == (5, 2)
    nested = model.predict_interval(X[:5], coverage=[0.5, 0.9])
    assert nested.shape == (5, 2, 2)
    assert np.all(nested[:, 0, 1] < nested[:, 0, 0]) and np.all(nested[:, 1, 1] > nested[:, 1, 0])
    np.testing.assert_allclose(nested[..., 1], model.predict_interval(X[:5], coverage=0.9))
    for bad in (0.0, 1.0, 95, [0.5, 1.2], []):
        with pytest.raises(ValueError, match="coverage"):
            model.predict_interval(X[:5], coverage=bad)


def test_student_t_gradient_and_hessian_are_autograds():
    """The noise fit's hand-written derivatives in (log σ, log ν) against autograd of the density."""
    from sklearn_ibvi.math.likelihoods import _student_t_mean_log_likelihood_derivatives, student_t_log_density

    squares = stats.t.rvs(3.0, scale=0.4, size=(2, 300), random_state=3) ** 2

    def mean_log_likelihood(params):
        squared_z = torch.as_tensor(squares) * torch.exp(-2 * params[0])
        return student_t_log_density(squared_z, params[0], torch.exp(params[1])).mean()

    for log_std, log_dof in ((-1.0, 1.0), (0.3, 4.0), (-0.9, 12.0)):
        params = torch.tensor([log_std, log_dof], dtype=torch.float64)
        value, gradient, hessian = _student_t_mean_log_likelihood_derivatives(squares, log_std, log_dof)
        assert value == pytest.approx(float(mean_log_likelihood(params)), rel=1e-9)  # lgamma of ~1e5
        np.testing.assert_allclose(gradient, torch.func.grad(mean_log_likelihood)(params).numpy(), rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(hessian, torch.func.hessian(mean_log_likelihood)(params).numpy(), rtol=1e-7, atol=1e-9)


def test_early_stopping_passes_intervals_and_the_exact_density_through(sine):
    from sklearn_ibvi import BoundEarlyStopping

    X, y = sine
    stopped = BoundEarlyStopping(entropy_sgd(n_chains=2), max_epochs=4).fit(X, y)
    kept = stopped.estimator_
    np.testing.assert_allclose(stopped.predict_interval(X[:5], coverage=0.8), kept.predict_interval(X[:5], coverage=0.8))
    np.testing.assert_allclose(stopped.predict(X[:5], coverage=0.8)[1], kept.predict_interval(X[:5], coverage=0.8))
    np.testing.assert_allclose(predictive_log_likelihood(stopped, X, y), kept._log_predictive_density(X, y))


def test_student_t_noise_fit_does_not_depend_on_where_it_starts():
    squares = torch.as_tensor(stats.t.rvs(4.0, scale=0.5, size=(2, 1500), random_state=4) ** 2)
    reference = student_t_noise_maximising_likelihood(squares)
    for start in (ObservationNoise(1e-3, MIN_NOISE_DOF), ObservationNoise(100.0, 1e6), ObservationNoise(5.0, 3.0),
                  ObservationNoise(0.01, 1e5)):
        fitted = student_t_noise_maximising_likelihood(squares, start=start)
        assert fitted.std == pytest.approx(reference.std, rel=1e-6)
        assert fitted.dof == pytest.approx(reference.dof, rel=1e-6)
