"""Terms of the bounds in the corners the other tests leave out, against dense numpy references.

Written against survivors of a mutation run (benchmarks/mutation/): the warped estimator's exact
per-probe value, full-rank low-rank covariances, zero variances, rank-deficient factors, and the
size limit of the exact entropy.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from scipy.stats import norm

from sklearn_ibvi import EntropySGDRegressor, IBVIRegressor, TrainingDivergedError
from sklearn_ibvi.math.entropy import (
    stochastic_entropy_change,
    warp_gradient,
    warped_stochastic_entropy_change,
)
from sklearn_ibvi.entropy_sgd.net import MAX_EXACT_PARAMETERS, EntropySGDNet
from sklearn_ibvi.math.likelihoods import (
    NegativeLogLikelihood,
    categorical_log_likelihood,
    gaussian_log_likelihood,
)
from sklearn_ibvi.networks.chains import Chains
from sklearn_ibvi.networks.mlp import MLP
from sklearn_ibvi.math.gaussian import DiagonalGaussian, DiagPlusLowRankGaussian, LowRankGaussian

from test_bound_replay import dense_gaussian_kl


def symmetric_matrix(dim, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(dim, dim))
    return torch.as_tensor(0.3 * (A + A.T))


def rademacher(n, dim, seed):
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.choice([-1.0, 1.0], size=(n, dim)))


# -- the stochastic entropy estimates, probe by probe -------------------------------------------


def test_stochastic_estimate_is_minus_the_quadratic_forms_of_alpha_h_and_its_square_per_probe():
    H, alpha = symmetric_matrix(6, seed=0), 0.3
    r = rademacher(50, 6, seed=1)
    estimates = stochastic_entropy_change(r, r @ H, alpha)
    reference = -alpha * np.einsum("pi,ij,pj->p", r, H, r) - alpha**2 * np.einsum("pi,ij,pj->p", r, H @ H, r)
    np.testing.assert_allclose(estimates, reference, rtol=1e-12, atol=1e-12)


def test_warped_stochastic_estimate_is_the_quadratic_form_of_the_symmetrised_warped_hessian():
    """With u = D^½ r and v = H u the estimate is −α rᵀAr − α² ‖Ar‖², A = D^½ H D^½, per probe;
    its mean over probes is −α tr A − α² tr A², whose Monte-Carlo error is known in closed form."""
    dim, alpha = 6, 0.2
    H = symmetric_matrix(dim, seed=2)
    grad = torch.as_tensor(np.random.default_rng(3).normal(size=dim))
    _, factor = warp_gradient(grad, threshold=0.7)
    root = factor.sqrt()
    A = (root[:, None] * H * root[None, :]).numpy()
    r = rademacher(4000, dim, seed=4)
    u = r * root
    estimates = warped_stochastic_entropy_change(u, u @ H, root, alpha).numpy()
    M = alpha * A + alpha**2 * A @ A
    np.testing.assert_allclose(estimates, -np.einsum("pi,ij,pj->p", r, M, r), rtol=1e-12, atol=1e-12)
    # Var(rᵀMr) = 2(‖M‖²_F − Σ M_ii²) for Rademacher r: an error bar that does not come from the estimates
    standard_error = math.sqrt(2 * (np.sum(M**2) - np.sum(np.diag(M) ** 2)) / len(r))
    assert abs(estimates.mean() + np.trace(M)) < 4 * standard_error


# -- Gaussian log-determinants and KLs at the edges of their families ----------------------------


def test_full_rank_lowrank_log_det_and_entropy_equal_the_dense_ones():
    rng = np.random.default_rng(5)
    S = rng.normal(size=(4, 6))  # R = 6 ≥ P = 4: S Sᵀ is non-singular
    q = LowRankGaussian(torch.as_tensor(rng.normal(size=4)), torch.as_tensor(S))
    log_det = np.linalg.slogdet(S @ S.T)[1]
    assert float(q.log_det()) == pytest.approx(log_det, rel=1e-10)
    assert float(q.entropy()) == pytest.approx(0.5 * 4 * math.log(2 * math.pi * math.e) + 0.5 * log_det, rel=1e-10)


def test_rank_deficient_lowrank_factor_has_no_density_and_an_infinite_kl():
    """R ≥ P but the columns span one direction: Σ = S Sᵀ is singular, so log|Σ| = −∞ and a KL
    with it on either side is +∞ (the dense path, not the R < P shortcut)."""
    rng = np.random.default_rng(6)
    v = rng.normal(size=(4, 1))
    singular = LowRankGaussian(torch.zeros(4, dtype=torch.float64), torch.as_tensor(np.hstack([v] * 5)))
    regular = LowRankGaussian(torch.zeros(4, dtype=torch.float64), torch.as_tensor(rng.normal(size=(4, 5))))
    assert float(singular.log_det()) == -math.inf
    assert float(singular.kl_to(regular)) == math.inf
    assert float(regular.kl_to(singular)) == math.inf


@pytest.mark.parametrize("with_factor", [False, True])
def test_a_zero_variance_makes_the_log_det_minus_infinity_and_the_kl_infinite(with_factor):
    rng = np.random.default_rng(7)
    scale = torch.as_tensor(np.abs(rng.normal(size=5)) + 0.5)
    zero_scale = scale.clone()
    zero_scale[2] = 0.0
    factor = torch.as_tensor(rng.normal(size=(5, 2)))

    def gaussian(diag_scale):
        mean = torch.zeros(5, dtype=torch.float64)
        return DiagPlusLowRankGaussian(mean, factor, diag_scale) if with_factor else DiagonalGaussian(mean, diag_scale)

    degenerate, regular = gaussian(zero_scale), gaussian(scale)
    assert float(degenerate.log_det()) == -math.inf
    assert float(degenerate.kl_to(regular)) == math.inf
    assert float(regular.kl_to(degenerate)) == math.inf


def test_kl_of_lowrank_gaussians_with_full_rank_factors_is_the_dense_kl():
    rng = np.random.default_rng(8)
    Sq, Sp = rng.normal(size=(3, 4)), rng.normal(size=(3, 5))
    mq, mp = rng.normal(size=3), rng.normal(size=3)
    q = LowRankGaussian(torch.as_tensor(mq), torch.as_tensor(Sq))
    p = LowRankGaussian(torch.as_tensor(mp), torch.as_tensor(Sp))
    assert float(q.kl_to(p)) == pytest.approx(dense_gaussian_kl(mq, Sq @ Sq.T, mp, Sp @ Sp.T), rel=1e-10)


def test_rank_one_diag_plus_lowrank_log_det_and_kl_keep_their_factor():
    rng = np.random.default_rng(12)
    S, d, m = rng.normal(size=(4, 1)), np.abs(rng.normal(size=4)) + 0.3, rng.normal(size=4)
    S0, d0 = rng.normal(size=(4, 1)), np.abs(rng.normal(size=4)) + 0.3
    q = DiagPlusLowRankGaussian(torch.as_tensor(m), torch.as_tensor(S), torch.as_tensor(d))
    p = DiagPlusLowRankGaussian(torch.zeros(4, dtype=torch.float64), torch.as_tensor(S0), torch.as_tensor(d0))
    cov_q, cov_p = S @ S.T + np.diag(d**2), S0 @ S0.T + np.diag(d0**2)
    assert float(q.log_det()) == pytest.approx(np.linalg.slogdet(cov_q)[1], rel=1e-10)
    assert float(q.kl_to(p)) == pytest.approx(dense_gaussian_kl(m, cov_q, np.zeros(4), cov_p), rel=1e-10)


def test_singular_ibvi_family_records_no_bound_and_no_standard_error():
    rng = np.random.default_rng(13)
    X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    common = dict(hidden_layer_sizes=(3,), covariance="lowrank", rank=2, max_epochs=1, n_bound_samples=3, random_state=0)
    model = IBVIRegressor(noise_std=0.5, noise="gaussian", **common).fit(X, y)  # nothing to learn
    row = model.history_[-1]
    assert row["kl_divergence"] == math.inf
    assert all(math.isnan(row[column]) for column in ("expected_log_likelihood", "bound", "bound_se"))
    # a learned noise (here the scale and a Student-t's ν) still needs the likelihood pass; the
    # bound stays undefined
    learned = IBVIRegressor(**common).fit(X, y).history_[-1]
    assert learned["kl_divergence"] == math.inf and math.isnan(learned["bound"])
    assert math.isfinite(learned["expected_log_likelihood"]) and learned["noise_std"] > 0


def test_kl_between_gaussians_of_different_dimensions_is_refused():
    q = DiagonalGaussian(torch.zeros(3), torch.ones(3))
    p = DiagonalGaussian(torch.zeros(4), torch.ones(4))
    with pytest.raises(ValueError, match="3 parameters, p has 4"):
        q.kl_to(p)


# -- the exact entropy's size limit ------------------------------------------------------------


def test_exact_entropy_accepts_networks_up_to_the_parameter_limit_and_refuses_larger_ones():
    def exact_net(n_inputs):  # a linear model of n_inputs weights and a bias
        return EntropySGDNet(
            module=Chains, module__module=MLP((n_inputs, 1)), criterion=NegativeLogLikelihood,
            optimizer=torch.optim.SGD, lr=0.1, entropy="exact", train_split=None,
        )

    assert exact_net(MAX_EXACT_PARAMETERS - 1).initialize().module_.n_parameters == MAX_EXACT_PARAMETERS
    with pytest.raises(ValueError, match="limited to"):
        exact_net(MAX_EXACT_PARAMETERS).initialize()


# -- a bound that is not a number is an error, not a record -------------------------------------


@pytest.mark.parametrize(
    ("estimator_class", "params"),
    [
        (EntropySGDRegressor, dict(entropy="exact", n_power_iterations=0)),
        (IBVIRegressor, dict(variational_layers="all", covariance="diagonal")),
    ],
)
def test_weights_that_overflow_on_the_last_step_make_the_fit_fail_at_the_epochs_likelihood(estimator_class, params):
    """One full-batch step of lr 1e20 leaves the loss of that step finite but the weights near
    float32's range: the end-of-epoch log-likelihood overflows, and the fit says so."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(30, 2))
    X = (X - X.mean(0)) / X.std(0)
    y = X[:, 0] + rng.normal(size=30)
    model = estimator_class(hidden_layer_sizes=(), lr=1e20, batch_size=30, max_epochs=1, random_state=0, **params)
    with pytest.raises(TrainingDivergedError, match="The log-likelihood became non-finite"):
        model.fit(X, y)


# -- the likelihoods as functions of their own ---------------------------------------------------


def test_likelihoods_are_the_normalised_gaussian_and_categorical_log_densities():
    rng = np.random.default_rng(10)
    prediction, target = rng.normal(size=(2, 5, 1)), rng.normal(size=5)
    torch.testing.assert_close(
        gaussian_log_likelihood(torch.as_tensor(prediction), torch.as_tensor(target), 0.4),
        torch.as_tensor(norm.logpdf(target, prediction[..., 0], 0.4)),
        rtol=1e-12, atol=1e-12,
    )  # target_scale defaults to 1: no Jacobian
    torch.testing.assert_close(
        gaussian_log_likelihood(torch.as_tensor(prediction), torch.as_tensor(target), 0.4, target_scale=3.0),
        torch.as_tensor(norm.logpdf(target, prediction[..., 0], 0.4) - math.log(3.0)),
        rtol=1e-12, atol=1e-12,
    )
    logits, labels = rng.normal(size=(2, 5, 3)), rng.integers(0, 3, size=5)
    torch.testing.assert_close(
        categorical_log_likelihood(torch.as_tensor(logits), torch.as_tensor(labels)),
        torch.as_tensor(log_softmax(logits, axis=-1)[:, np.arange(5), labels]),
        rtol=1e-12, atol=1e-12,
    )


def test_ibvi_without_a_per_epoch_bound_records_its_columns_as_nan():
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
    model = IBVIRegressor(hidden_layer_sizes=(3,), max_epochs=2, n_bound_samples=0, random_state=0).fit(X, y)
    for column in ("expected_log_likelihood", "kl_divergence", "bound", "bound_se"):
        values = model.history_[:, column]
        assert len(values) == 2 and all(isinstance(v, float) and math.isnan(v) for v in values)
