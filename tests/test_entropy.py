"""The entropy-change estimators against exact log-determinants and traces."""

import math

import numpy as np
import pytest
import torch

from sklearn_ibvi.math.entropy import (
    QUADRATIC_BOUND_MAX_EIGENVALUE,
    dominant_eigenvalue,
    exact_entropy_change,
    gaussian_entropy,
    log_prior,
    quadratic_entropy_change_bound,
    stochastic_entropy_change,
    subsampled_entropy_change,
    warp_gradient,
    warped_stochastic_entropy_change,
)
from sklearn_ibvi.math.likelihoods import NegativeLogLikelihood
from sklearn_ibvi.networks.chains import Chains
from sklearn_ibvi.networks.mlp import MLP


def small_net_hessian(seed=0, activation="tanh"):
    """Exact float64 Hessian of a small MLP's mean minibatch loss (an indefinite matrix)."""
    torch.manual_seed(seed)
    module = Chains(MLP((3, 4, 3), activation)).double()
    X = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    names = [n for n, _ in module.named_parameters()]
    criterion = NegativeLogLikelihood()

    def loss(flat):
        tensors = dict(zip(names, module.unflat(flat[None])))
        return criterion(torch.func.functional_call(module, tensors, (X,)), y).mean()

    return torch.func.hessian(loss)(module.flat().detach()[0])


def test_gaussian_entropy_and_log_prior_match_torch_distributions():
    std = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    reference = torch.distributions.Normal(torch.zeros(4, dtype=torch.float64), std)
    assert gaussian_entropy(std) == pytest.approx(float(reference.entropy().sum()), rel=1e-12)
    theta = torch.randn(2, 4, dtype=torch.float64)
    expected = reference.log_prob(theta).sum(-1)
    assert torch.allclose(log_prior(theta, std), expected, rtol=1e-12)


def test_expected_log_prior_of_a_prior_draw_is_minus_its_entropy():
    """E[log p(θ₀)] = −S₀: why subtracting log p(θ₀) + S₀ is a zero-mean control variate."""
    torch.manual_seed(0)
    std = torch.rand(50) + 0.1
    draws = torch.randn(20000, 50, dtype=torch.float64) * std.double()
    values = log_prior(draws, std) + gaussian_entropy(std)
    assert abs(values.mean()) < 3 * values.std() / math.sqrt(len(values))


def test_exact_entropy_change_is_slogdet_of_the_step_jacobian():
    hessian = small_net_hessian()
    alpha = 0.3
    eigenvalues = torch.linalg.eigvalsh(hessian)
    expected = float(torch.log(torch.abs(1 - alpha * eigenvalues)).sum())
    assert exact_entropy_change(hessian, alpha) == pytest.approx(expected, rel=1e-12)


def _probes(n, dim, seed):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, (n, dim), generator=generator) * 2 - 1).double()


def test_stochastic_entropy_change_is_unbiased_for_the_quadratic_bound():
    hessian = small_net_hessian()
    alpha = 0.5 * QUADRATIC_BOUND_MAX_EIGENVALUE / float(torch.linalg.eigvalsh(hessian).abs().max())
    probes = _probes(20000, hessian.shape[0], seed=1)
    estimates = stochastic_entropy_change(probes, probes @ hessian, alpha)
    reference = quadratic_entropy_change_bound(hessian, alpha)
    standard_error = float(estimates.std()) / math.sqrt(len(estimates))
    assert abs(float(estimates.mean()) - reference) < 3 * standard_error
    # In the valid regime the quadratic bound lies below the exact log-determinant.
    assert reference <= exact_entropy_change(hessian, alpha)


@pytest.mark.parametrize("probe_fraction", [0.1, 0.5, 1.0])
def test_subsampled_entropy_change_is_exactly_unbiased_and_reports_its_variance(probe_fraction):
    """Over the two outcomes of I ~ Bernoulli(ρ): E[ΔS] = ĉ for any prediction π, and the reported
    variance averages to Var(ΔS) = (1 − ρ)/ρ · (ĉ − π)²."""
    estimate = torch.tensor([-3.5, -3.5, 0.7, 12.0], dtype=torch.float64)
    prediction = torch.tensor([0.0, -3.0, 0.7, -1.0], dtype=torch.float64)
    outcomes = {
        probed: subsampled_entropy_change(estimate, torch.full((4,), probed), prediction, probe_fraction)
        for probed in (True, False)
    }
    weights = {True: probe_fraction, False: 1 - probe_fraction}
    mean = sum(weights[i] * outcomes[i][0] for i in outcomes)
    variance = sum(weights[i] * (outcomes[i][0] - estimate) ** 2 for i in outcomes)
    reported = sum(weights[i] * outcomes[i][1] for i in outcomes)
    torch.testing.assert_close(mean, estimate, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(variance, (1 - probe_fraction) / probe_fraction * (estimate - prediction) ** 2)
    torch.testing.assert_close(reported, variance, rtol=1e-12, atol=1e-12)
    # a skipped step adds its prediction and no variance
    torch.testing.assert_close(outcomes[False][0], prediction)
    assert bool((outcomes[False][1] == 0).all())


def test_quadratic_bound_fails_outside_its_validity_regime():
    """Past α λ_max ≈ 0.68 the 'bound' exceeds the exact log-determinant: the check is needed."""
    hessian = torch.diag(torch.tensor([1.0, 0.1], dtype=torch.float64))
    assert quadratic_entropy_change_bound(hessian, 0.6) <= exact_entropy_change(hessian, 0.6)
    assert quadratic_entropy_change_bound(hessian, 0.75) > exact_entropy_change(hessian, 0.75)


def test_warped_stochastic_entropy_change_is_unbiased_for_the_warped_jacobian():
    hessian = small_net_hessian(seed=3)
    dim = hessian.shape[0]
    torch.manual_seed(4)
    grad = torch.randn(dim, dtype=torch.float64)
    _, factor = warp_gradient(grad, threshold=0.7)
    root = factor.sqrt()
    warped_hessian = root[:, None] * hessian * root[None, :]  # similar to D H: same determinant
    alpha = 0.5 * QUADRATIC_BOUND_MAX_EIGENVALUE / float(torch.linalg.eigvalsh(warped_hessian).abs().max())
    probes = _probes(20000, dim, seed=5)
    u = probes * root
    estimates = warped_stochastic_entropy_change(u, u @ hessian, root, alpha)
    reference = quadratic_entropy_change_bound(warped_hessian, alpha)
    standard_error = float(estimates.std()) / math.sqrt(len(estimates))
    assert abs(float(estimates.mean()) - reference) < 3 * standard_error
    # and det(I − α D H) is what the warped step's Jacobian really has
    jacobian = torch.eye(dim, dtype=torch.float64) - alpha * factor[:, None] * hessian
    assert exact_entropy_change(warped_hessian, alpha) == pytest.approx(
        float(torch.linalg.slogdet(jacobian)[1]), rel=1e-10
    )
    assert reference <= exact_entropy_change(warped_hessian, alpha)


def test_warp_gradient_derivative_is_its_jacobian_factor():
    grad = torch.linspace(-3, 3, 41, dtype=torch.float64, requires_grad=True)
    warped, factor = warp_gradient(grad, threshold=0.8)
    (derivative,) = torch.autograd.grad(warped.sum(), grad)
    assert torch.allclose(derivative, factor, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dominant_eigenvalue_finds_the_most_positive_eigenvalue(seed):
    hessian = small_net_hessian(seed=seed)
    stacked = torch.stack([hessian, -hessian + 0.1 * torch.eye(hessian.shape[0], dtype=torch.float64)])
    torch.manual_seed(seed)
    value, _ = dominant_eigenvalue(
        lambda v: torch.einsum("kij,kj->ki", stacked, v), torch.randn(2, hessian.shape[0], dtype=torch.float64), 500
    )
    expected = torch.stack([torch.linalg.eigvalsh(h).max() for h in stacked])
    np.testing.assert_allclose(value.numpy(), expected.numpy(), rtol=1e-3, atol=1e-6)
