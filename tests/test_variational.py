"""Tests for sklearn_ibvi.variational: closed forms against dense references, μP, IBVI theory."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal
from torch.distributions import kl_divergence as torch_kl

from sklearn_ibvi.networks.variational import (
    VariationalLinear,
    WeightSamples,
)
from sklearn_ibvi.math.gaussian import (
    COVARIANCES,
    DiagonalGaussian,
    DiagPlusLowRankGaussian,
    LowRankGaussian,
)
from sklearn_ibvi.networks.mup import init_std, lr_multiplier, param_groups

FAMILIES = list(COVARIANCES)
from sklearn_ibvi.networks.conversion import VariationalNetwork
from sklearn_ibvi.networks.mlp import MLP


def VariationalMLP(n_features, n_outputs, hidden=(100,), *, activation="relu", bias=True, dtype=None, **options):
    """The network IBVI builds from ``hidden_layer_sizes``: the MLP with its chosen layers Gaussian."""
    mlp = MLP((n_features, *hidden, n_outputs), activation, bias=bias).to(dtype or torch.float32)
    return VariationalNetwork(mlp, n_outputs, **options)



def _dense(g):
    g = g.to(torch.float64)
    return MultivariateNormal(g.mean, g.covariance_matrix())


def _perturbed_layer(covariance, seed=0, in_features=4, out_features=3, rank=2):
    """A small layer whose q has been moved away from its prior p in every part."""
    torch.manual_seed(seed)
    layer = VariationalLinear(in_features, out_features, covariance=covariance, rank=rank, layer_type="hidden")
    with torch.no_grad():
        layer.mean.add_(0.3 * torch.randn_like(layer.mean))
        if layer.cov_factor is not None:
            layer.cov_factor.add_(0.4 * torch.randn_like(layer.cov_factor))
        if layer.cov_diag_scale is not None:
            layer.cov_diag_scale.mul_(torch.exp(0.5 * torch.randn_like(layer.cov_diag_scale)))
    return layer


# --------------------------------------------------------------------------- KL, log-det


def _random_gaussian(family, seed, n_params=5, rank=7):
    """A float64 Gaussian of ``family`` with every parameter drawn N(0, 1); R > P keeps Σ regular."""
    generator = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    parts = {name: draw(*shape) for name, shape in family.parameter_shapes(n_params, rank).items()}
    return family(draw(n_params), **parts)


def _assert_distributed_as(draws, q):
    """Independent ``draws`` (n, P) have q's mean and covariance, within 5 standard errors."""
    n = len(draws)
    cov = q.covariance_matrix()
    var = cov.diagonal()
    centred = draws - q.mean
    cov_se = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert ((draws.mean(0) - q.mean).abs() / (var / n).sqrt()).max() < 5
    assert ((centred.T @ centred / n - cov).abs() / cov_se).max() < 5


@pytest.mark.parametrize("family", list(COVARIANCES.values()), ids=list(COVARIANCES))
def test_every_registered_family_agrees_with_its_dense_covariance(family):
    """One check per registered family: samples, log-determinant, entropy and KL against the dense Σ."""
    q, p = _random_gaussian(family, 0), _random_gaussian(family, 1)
    assert q.family in COVARIANCES and COVARIANCES[q.family] is family
    cov = q.covariance_matrix()
    assert cov.shape == (q.n_params, q.n_params) and q.to(torch.float32).mean.dtype == torch.float32

    _assert_distributed_as(q.sample(40_000, torch.Generator().manual_seed(2)), q)
    torch.testing.assert_close(q.sample_float64(9, torch.Generator().manual_seed(3)),
                               q.sample(9, torch.Generator().manual_seed(3)), rtol=1e-15, atol=1e-15)  # fmt: skip

    torch.testing.assert_close(q.log_det(), torch.logdet(cov), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.entropy(), _dense(q).entropy(), rtol=1e-10, atol=1e-10)
    for a, b in [(q, p), (p, q)]:
        kl = a.kl_to(b)
        assert kl.dtype == torch.float64 and kl.item() > 0.1
        torch.testing.assert_close(kl, torch_kl(_dense(a), _dense(b)), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.kl_to(q), torch.zeros((), dtype=torch.float64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_every_registered_family_initialises_a_layer_at_prior_variance_sigma_squared(covariance):
    """E[Σ₀] = σ² I: the mean prior variance over many layers' parameters is σ², and each
    covariance parameter of the family is a layer parameter with a learning-rate multiplier."""
    torch.manual_seed(0)
    layer = VariationalLinear(30, 20, covariance=covariance, rank=5, prior_scale=0.5)
    family = COVARIANCES[covariance]
    assert set(layer.lr_multipliers) == {"mean", *family.parts}
    assert {name for name, _ in layer.named_parameters()} == {"mean", *family.parts}
    var = layer.prior().covariance_matrix().diagonal()
    torch.testing.assert_close(var.mean().item(), layer.prior_std**2, rtol=0.1, atol=0)



@pytest.mark.parametrize("covariance", ["diagonal", "diag+lowrank"])
def test_layer_kl_equals_dense_multivariate_normal_kl(covariance):
    layer = _perturbed_layer(covariance)
    q, p = layer.variational_distribution(), layer.prior()
    expected = torch_kl(_dense(q), _dense(p))
    got = layer.kl_divergence()
    assert got.dtype == torch.float64
    assert expected.item() > 1.0  # q really moved
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_woodbury_kl_equals_dense_kl_for_unequal_ranks_and_scales():
    torch.manual_seed(1)
    n_params = 9
    q = DiagPlusLowRankGaussian(torch.randn(n_params), torch.randn(n_params, 3), torch.rand(n_params) + 0.1)
    p = DiagPlusLowRankGaussian(torch.randn(n_params), 0.5 * torch.randn(n_params, 2), 2 * torch.rand(n_params) + 0.2)
    for a, b in [(q, p), (p, q)]:
        torch.testing.assert_close(a.kl_to(b), torch_kl(_dense(a), _dense(b)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("family", [DiagonalGaussian, DiagPlusLowRankGaussian], ids=["diagonal", "diag+lowrank"])
def test_woodbury_precision_reproduces_the_dense_inverse_and_log_determinant(family):
    """Σ⁻¹ = D^{-½}(I − MᵀM)D^{-½} and log|Σ| from the pieces a fit keeps for its per-epoch KL."""
    p = _random_gaussian(family, 4, n_params=6, rank=3)
    pieces = p.precision()
    m = torch.zeros(0, 6, dtype=torch.float64) if pieces.whitened_factor is None else pieces.whitened_factor
    precision = pieces.inv_d[:, None] * (torch.eye(6, dtype=torch.float64) - m.T @ m) * pieces.inv_d[None, :]
    torch.testing.assert_close(precision, torch.linalg.inv(p.covariance_matrix()), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(pieces.log_det, torch.logdet(p.covariance_matrix()), rtol=1e-10, atol=1e-10)
    if pieces.diag_mtm is not None:
        torch.testing.assert_close(pieces.diag_mtm, (m**2).sum(0))


@pytest.mark.parametrize("block", [1, 4, 8192])
def test_kl_given_the_prior_precision_equals_dense_kl_whatever_the_row_blocks(block, monkeypatch):
    """The KL a fit records every epoch (prior factorised once, q's factor read in row blocks)."""
    from sklearn_ibvi.math import gaussian

    monkeypatch.setattr(gaussian, "FACTOR_ROW_BLOCK", block)
    torch.manual_seed(2)
    n_params = 11
    q = DiagPlusLowRankGaussian(torch.randn(n_params), torch.randn(n_params, 3), torch.rand(n_params) + 0.1)
    p = DiagPlusLowRankGaussian(torch.randn(n_params), 0.5 * torch.randn(n_params, 2), 2 * torch.rand(n_params) + 0.2)
    expected = torch_kl(_dense(q), _dense(p))
    torch.testing.assert_close(q.kl_to(p, p.precision()), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.kl_to(p), expected, rtol=1e-10, atol=1e-10)
    q.cov_factor.requires_grad_(True)
    q.kl_to(p, p.precision()).backward()
    assert q.cov_factor.grad is not None and torch.isfinite(q.cov_factor.grad).all()


@pytest.mark.parametrize("covariance", FAMILIES)
def test_kl_to_prior_is_zero_at_initialisation(covariance):
    torch.manual_seed(0)
    layer = VariationalLinear(4, 3, covariance=covariance, rank=20 if covariance == "lowrank" else 2)
    assert abs(layer.kl_divergence().item()) < 1e-9


def test_singular_lowrank_kl_is_infinite_and_full_rank_lowrank_is_exact():
    layer = _perturbed_layer("lowrank", rank=2)  # R = 2 < P = 15: singular
    assert layer.kl_divergence().item() == math.inf
    assert layer.variational_distribution().log_det().item() == -math.inf
    # R >= P: Σ = S Sᵀ is non-singular, and the KL is the ordinary one.
    torch.manual_seed(2)
    q = LowRankGaussian(torch.randn(4), torch.randn(4, 6))
    p = LowRankGaussian(torch.randn(4), torch.randn(4, 5))
    torch.testing.assert_close(q.kl_to(p), torch_kl(_dense(q), _dense(p)), rtol=1e-10, atol=1e-10)


def test_kl_between_different_families_is_refused():
    q = DiagonalGaussian(torch.zeros(3), torch.ones(3))
    p = DiagPlusLowRankGaussian(torch.zeros(3), torch.ones(3, 1), torch.ones(3))
    with pytest.raises(ValueError, match="one family"):
        q.kl_to(p)


@pytest.mark.parametrize("covariance", ["diagonal", "diag+lowrank"])
def test_log_det_and_entropy_equal_dense_reference(covariance):
    q = _perturbed_layer(covariance).variational_distribution()
    dense = _dense(q)
    expected_log_det = torch.logdet(dense.covariance_matrix)
    torch.testing.assert_close(q.log_det(), expected_log_det, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.entropy(), dense.entropy(), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("covariance", FAMILIES)
def test_samples_have_the_stated_mean_and_covariance(covariance):
    layer = _perturbed_layer(covariance)
    q = layer.variational_distribution()
    n = 40_000
    torch.manual_seed(3)
    with torch.no_grad():
        w = layer.sample_weights(n).reshape(n, -1).double()
    mean = q.mean.detach().double()
    cov = q.covariance_matrix().detach().double()
    var = cov.diagonal()
    # Monte-Carlo standard errors of the sample mean and covariance (Gaussian fourth moments).
    mean_se = (var / n).sqrt()
    cov_se = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    centred = w - mean
    emp_cov = centred.T @ centred / n
    assert ((w.mean(0) - mean).abs() / mean_se).max() < 5
    assert ((emp_cov - cov).abs() / cov_se).max() < 5


def test_samples_drawn_in_one_batch_are_independent():
    layer = _perturbed_layer("diag+lowrank")
    n = 40_000
    torch.manual_seed(4)
    with torch.no_grad():
        w = layer.sample_weights(n).reshape(n, -1).double()
    var = layer.variational_distribution().covariance_matrix().detach().double().diagonal()
    even, odd = w[0::2] - w[0::2].mean(0), w[1::2] - w[1::2].mean(0)
    cross = even.T @ odd / (n // 2)  # Cov(w_s, w_{s+1}): zero for independent draws
    se = (var[:, None] * var[None, :] / (n // 2)).sqrt()
    assert (cross.abs() / se).max() < 5


# --------------------------------------------------------------------------- forward


def test_sampling_is_reparametrized_so_gradients_reach_every_covariance_part():
    q = DiagPlusLowRankGaussian(*(torch.ones(*shape, requires_grad=True) for shape in [(3,), (3, 2), (3,)]))
    torch.manual_seed(0)
    w = q.sample(4)
    w.square().sum().backward()
    torch.manual_seed(0)  # d‖w‖²/dS = 2 Σ_s w_s z_sᵀ with the same z
    z = torch.randn(4, 2)
    torch.testing.assert_close(q.cov_factor.grad, 2 * w.detach().T @ z)
    assert w.shape == (4, 3) and q.mean.grad.abs().sum() > 0 and q.cov_diag_scale.grad.abs().sum() > 0


def test_layer_without_bias_has_out_times_in_parameters():
    torch.manual_seed(0)
    layer = VariationalLinear(4, 3, bias=False, covariance="diag+lowrank", rank=2)
    assert layer.n_params == 12 and layer.mean.shape == (3, 4)
    x = torch.randn(5, 4)
    torch.manual_seed(1)
    out = layer(x, 2)
    torch.manual_seed(1)
    torch.testing.assert_close(out, torch.stack([x @ w.T for w in layer.sample_weights(2)]))


def test_layer_forward_applies_the_drawn_weights_to_shared_and_per_sample_inputs():
    layer = _perturbed_layer("diag+lowrank")
    x2, x3 = torch.randn(5, 4), torch.randn(7, 5, 4)
    torch.manual_seed(5)
    out2 = layer(x2, n_samples=7)
    torch.manual_seed(5)
    w = layer.sample_weights(7)
    expected2 = torch.stack([x2 @ w_s[:, :4].T + w_s[:, 4] for w_s in w])
    assert out2.shape == (7, 5, 3)
    torch.testing.assert_close(out2, expected2)

    torch.manual_seed(6)
    out3 = layer(x3)  # S taken from the leading axis
    torch.manual_seed(6)
    w = layer.sample_weights(7)
    expected3 = torch.stack([x3[s] @ w[s, :, :4].T + w[s, :, 4] for s in range(7)])
    torch.testing.assert_close(out3, expected3)
    torch.testing.assert_close(layer.forward_mean(x2), x2 @ layer.mean[:, :4].T + layer.mean[:, 4])


@pytest.mark.parametrize(
    ("variational_layers", "input_shapes"),
    [
        # Only the read-out is sampled: the hidden features are computed once, shared by all S.
        ("output", [(5, 4), (5, 8), (5, 6)]),
        # The input layer is sampled, so every later layer sees all S samples, batched.
        # Point-estimate layers after it see the S·B folded rows.
        ("input_output", [(5, 4), (45, 8), (9, 5, 6)]),
        ("all", [(5, 4), (9, 5, 8), (9, 5, 6)]),
    ],
)
def test_mlp_runs_each_layer_once_and_shares_the_deterministic_prefix(variational_layers, input_shapes):
    torch.manual_seed(0)
    net = VariationalMLP(4, 3, (8, 6), activation="tanh", variational_layers=variational_layers, rank=2)
    seen = []
    for layer in net.layers:
        layer.register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape)))
    out = net(torch.randn(5, 4), n_samples=9)
    assert out.shape == (9, 5, 3)
    assert seen == input_shapes  # one call per layer, whatever S
    assert out.std(0).min() > 0  # the samples differ
    assert net.forward_mean(torch.randn(5, 4)).shape == (5, 3)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_float64_draws_for_predictions_are_those_of_sample(covariance):
    layer = _perturbed_layer(covariance)
    q = layer.variational_distribution()
    expected = q.to(torch.float64).sample(9, torch.Generator().manual_seed(3))
    drawn = q.sample_float64(9, torch.Generator().manual_seed(3))
    assert drawn.dtype == torch.float64 and not drawn.requires_grad
    torch.testing.assert_close(drawn, expected, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("family", list(COVARIANCES.values()), ids=list(COVARIANCES))
def test_antithetic_draws_are_reflected_pairs_each_distributed_as_q(family):
    q = _random_gaussian(family, 0)
    independent = q.sample_float64(3, torch.Generator().manual_seed(3))
    paired = q.antithetic_sample_float64(5, torch.Generator().manual_seed(3))
    assert paired.shape == (5, q.n_params) and paired.dtype == torch.float64
    torch.testing.assert_close(paired[0::2], independent, rtol=0, atol=0)  # the odd one out last
    torch.testing.assert_close(paired[0] + paired[1], 2 * q.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(paired[2] + paired[3], 2 * q.mean, rtol=1e-12, atol=1e-12)
    # the reflected draws alone are N(μ, Σ)
    _assert_distributed_as(q.antithetic_sample_float64(80_000, torch.Generator().manual_seed(2))[1::2], q)


@pytest.mark.parametrize("variational_layers", ["input_output", "output", "all"])
@pytest.mark.parametrize("bias", [True, False])
def test_weights_drawn_beforehand_give_the_outputs_of_drawing_in_the_forward(variational_layers, bias):
    torch.manual_seed(0)
    net = VariationalMLP(4, 3, (8, 6), variational_layers=variational_layers, rank=2, bias=bias)
    x = torch.randn(5, 4)
    out = net(x, n_samples=7, generator=torch.Generator().manual_seed(1))
    samples = net.sample_weights(7, torch.Generator().manual_seed(1))
    assert list(samples) == [name for name, layer in zip(net.weight_layer_names, net.layers)
                             if isinstance(layer, VariationalLinear)]  # fmt: skip
    assert all(isinstance(s, WeightSamples) and s.weight.is_contiguous() for s in samples.values())
    torch.testing.assert_close(net(x, samples=samples), out)


def test_output_only_network_samples_only_the_read_out():
    torch.manual_seed(0)
    net = VariationalMLP(4, 2, (8,), variational_layers="output", covariance="diagonal")
    x = torch.randn(5, 4)
    hidden = torch.relu(net.layers[0](x))
    torch.manual_seed(1)
    out = net(x, n_samples=3)
    torch.manual_seed(1)
    torch.testing.assert_close(out, net.layers[1](hidden, 3))


def test_initialisation_is_reproducible_under_manual_seed():
    def build(seed):
        torch.manual_seed(seed)
        return VariationalMLP(5, 2, (7, 7), variational_layers="input_output", covariance="diag+lowrank", rank=3)

    a, b, c = build(0).state_dict(), build(0).state_dict(), build(1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["module.0.layer.mean"], c["module.0.layer.mean"])
    assert torch.equal(a["module.0.layer.mean"], a["module.0.layer.mean_init"])  # q starts at p


def test_mlp_kl_is_the_sum_over_variational_layers():
    torch.manual_seed(0)
    net = VariationalMLP(3, 2, (4,), variational_layers="all", covariance="diagonal")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    expected = sum(torch_kl(_dense(m.variational_distribution()), _dense(m.prior())) for m in net.layers)
    torch.testing.assert_close(net.kl_divergence(), expected, rtol=1e-10, atol=1e-10)
    assert VariationalMLP(3, 2, (4,), covariance="lowrank", rank=2).kl_divergence().item() == math.inf


# --------------------------------------------------------------------------- μP


def test_mup_init_std_per_layer_type_at_width_512():
    torch.manual_seed(0)
    width = 512
    layers = {
        "input": VariationalLinear(64, width, layer_type="input", covariance="diagonal"),
        "hidden": VariationalLinear(width, width, layer_type="hidden", covariance="diagonal"),
        "output": VariationalLinear(width, 64, layer_type="output", covariance="diagonal"),
    }
    expected = {"input": 1 / math.sqrt(64), "hidden": 1 / math.sqrt(width), "output": 1 / width}
    for kind, layer in layers.items():
        assert layer.init_std == pytest.approx(expected[kind])
        assert layer.mean.std().item() == pytest.approx(expected[kind], rel=0.03)
    standard_output = VariationalLinear(width, 64, layer_type="output", parametrization="standard")
    assert standard_output.mean.std().item() == pytest.approx(1 / math.sqrt(width), rel=0.03)
    point_estimate_read_out = VariationalMLP(64, 64, (width,), variational_layers=["0"]).layers[-1]
    assert point_estimate_read_out.weight.std().item() == pytest.approx(1 / width, rel=0.03)


@pytest.mark.parametrize("covariance", FAMILIES)
def test_prior_variance_per_parameter_is_prior_scale_times_init_std_squared(covariance):
    torch.manual_seed(0)
    rank, prior_scale = 10, 0.5
    layer = VariationalLinear(256, 128, covariance=covariance, rank=rank, prior_scale=prior_scale)
    sigma = prior_scale / math.sqrt(256)
    assert layer.prior_std == pytest.approx(sigma)
    n_parts = 2 if covariance == "diag+lowrank" else 1
    if layer.cov_factor is not None:  # entries of std σ/√(R · n_parts)
        assert layer.cov_factor.std().item() == pytest.approx(sigma / math.sqrt(rank * n_parts), rel=0.02)
    if layer.cov_diag_scale is not None:
        expected_d = torch.full_like(layer.cov_diag_scale, sigma / math.sqrt(n_parts))
        torch.testing.assert_close(layer.cov_diag_scale, expected_d)
    # Average prior variance E[Σ₀_jj] = σ²: row norms of S₀ plus d₀².
    var = torch.zeros(layer.n_params)
    if layer.cov_factor is not None:
        var += (layer.cov_factor.detach() ** 2).sum(1)
    if layer.cov_diag_scale is not None:
        var += layer.cov_diag_scale.detach() ** 2
    assert var.mean().item() == pytest.approx(sigma**2, rel=0.02)


def test_mup_learning_rate_multipliers_are_applied_by_sgd():
    torch.manual_seed(0)
    rank = 5
    net = VariationalMLP(64, 10, (256, 256), covariance="diag+lowrank", rank=rank)  # input_output
    groups = net.param_groups(lr=0.1)
    multipliers = {g["name"]: g["lr_multiplier"] for g in groups}
    assert multipliers == pytest.approx(
        {
            "module.0.layer.mean": 256 / 64,
            "module.0.layer.cov_factor": 256 / 64 / rank,
            "module.0.layer.cov_diag_scale": 256 / 64,
            "module.2.weight": 1.0,
            "module.2.bias": 1.0,
            "module.4.layer.mean": 10 / 256,
            "module.4.layer.cov_factor": 10 / 256 / rank,
            "module.4.layer.cov_diag_scale": 10 / 256,
        }
    )
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in net.parameters())

    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    net(torch.randn(16, 64)).square().sum().backward()
    torch.optim.SGD(groups, lr=0.1).step()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.detach(), before[name] - 0.1 * multipliers[name] * p.grad)


def test_standard_parametrization_has_unit_multipliers_but_factor_over_rank_and_sqrt_fan_in_init():
    net = VariationalMLP(64, 10, (256,), parametrization="standard", covariance="diag+lowrank", rank=5)
    groups = net.param_groups(0.1)
    assert any(g["name"].endswith("cov_factor") for g in groups)
    for group in groups:
        assert group["lr_multiplier"] == (1 / 5 if group["name"].endswith("cov_factor") else 1.0), group["name"]
    assert [m.init_std for m in net.layers] == pytest.approx([1 / 8, 1 / 16])
    assert lr_multiplier(64, 256, "standard") == 1.0 and init_std(256, "output", "standard") == 1 / 16


def test_param_groups_never_drop_extra_parameters():
    container = torch.nn.Module()
    container.net = VariationalMLP(3, 2, (4,))
    container.temperature = torch.nn.Parameter(torch.ones(()))
    groups = param_groups(container, lr=0.5)
    extra = [g for g in groups if g["params"][0] is container.temperature]
    assert len(extra) == 1 and extra[0]["lr"] == 0.5
    assert sum(len(g["params"]) for g in groups) == len(list(container.parameters()))


# --------------------------------------------------------------------------- IBVI theory, linear model


def _linear_problem(n_samples=5, n_features=20, seed=0):
    """Over-parametrised linear regression; the bias is absorbed as a column of ones."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, n_features, generator=gen, dtype=torch.float64)
    y = torch.randn(n_samples, generator=gen, dtype=torch.float64)
    x_aug = torch.cat([x, torch.ones(n_samples, 1, dtype=torch.float64)], 1)
    null_projector = torch.eye(n_features + 1, dtype=torch.float64) - torch.linalg.pinv(x_aug) @ x_aug
    torch.manual_seed(seed)
    net = VariationalMLP(n_features, 1, (), variational_layers="all", rank=3, dtype=torch.float64)  # lowrank
    return x, y, x_aug, null_projector, net


def _base_lr(net, x_aug):
    """Base lr at which the mean's effective step (lr × its μP multiplier) is 1/λ_max(X̃ᵀX̃)."""
    lam_max = torch.linalg.eigvalsh(x_aug.T @ x_aug).max().item()
    return 1.0 / (lam_max * net.layers[0].lr_multipliers["mean"])


def _train(net, loss_fn, n_steps, momentum, lr):
    """Full-batch SGD on ``loss_fn`` with the network's μP parameter groups."""
    groups = net.param_groups(lr)
    opt = torch.optim.SGD(groups, lr=lr, momentum=momentum)
    for _ in range(n_steps):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_linear_ibvi_gd_on_expected_loss_converges_to_the_w2_closest_minimiser(momentum):
    x, y, x_aug, null_projector, net = _linear_problem()
    layer = net.layers[0]
    mu0, s0 = layer.mean_init[0].clone(), layer.cov_factor_init.clone()

    def expected_squared_loss():  # ½ E‖y − Xw‖² = ½‖y − Xμ‖² + ½ tr(X S Sᵀ Xᵀ)
        return 0.5 * (y - x_aug @ layer.mean[0]).square().sum() + 0.5 * (x_aug @ layer.cov_factor).square().sum()

    _train(net, expected_squared_loss, 1500, momentum, _base_lr(net, x_aug))
    mu, s = layer.mean[0].detach(), layer.cov_factor.detach()
    # The null-space components never move ...
    torch.testing.assert_close(null_projector @ mu, null_projector @ mu0, rtol=0, atol=1e-12)
    torch.testing.assert_close(null_projector @ s, null_projector @ s0, rtol=0, atol=1e-12)
    # ... so the limit is the minimiser closest to the prior: μ₀ + X⁺(y − Xμ₀), S = P_null S₀.
    torch.testing.assert_close(mu, mu0 + torch.linalg.pinv(x_aug) @ (y - x_aug @ mu0), rtol=0, atol=1e-9)
    torch.testing.assert_close(s, null_projector @ s0, rtol=0, atol=1e-9)


# Sampled steps carry multiplicative noise (X S z): with momentum 0.9 a step of
# 0.2/λ_max already diverges here while 0.1/λ_max converges, so the lr is smaller.
@pytest.mark.parametrize(("momentum", "lr_fraction"), [(0.0, 0.5), (0.9, 0.1)])
def test_linear_ibvi_sampled_gd_keeps_the_null_space_exactly(momentum, lr_fraction):
    x, y, x_aug, null_projector, net = _linear_problem(seed=1)
    layer = net.layers[0]
    mu0, s0 = layer.mean_init[0].clone(), layer.cov_factor_init.clone()

    def sampled_squared_loss():  # one weight sample per step, through the network's forward
        return 0.5 * (y - net(x, n_samples=1)[0, :, 0]).square().sum()

    _train(net, sampled_squared_loss, 1500, momentum, lr_fraction * _base_lr(net, x_aug))
    mu, s = layer.mean[0].detach(), layer.cov_factor.detach()
    torch.testing.assert_close(null_projector @ mu, null_projector @ mu0, rtol=0, atol=1e-12)
    torch.testing.assert_close(null_projector @ s, null_projector @ s0, rtol=0, atol=1e-12)
    # The sampling noise X S z dies out with X S, so the same limit is reached.
    torch.testing.assert_close(mu, mu0 + torch.linalg.pinv(x_aug) @ (y - x_aug @ mu0), rtol=0, atol=1e-6)
    torch.testing.assert_close(s, null_projector @ s0, rtol=0, atol=1e-6)


def test_network_pickles_with_its_prior():
    import pickle

    torch.manual_seed(0)
    net = VariationalMLP(3, 2, (4,), activation="logistic", covariance="diag+lowrank", rank=2)
    with torch.no_grad():
        net.layers[0].mean.add_(1.0)
    clone = pickle.loads(pickle.dumps(net))
    x = torch.randn(5, 3)
    torch.testing.assert_close(clone.forward_mean(x), net.forward_mean(x))
    torch.testing.assert_close(clone.kl_divergence(), net.kl_divergence())
    assert net.kl_divergence().item() > 0
