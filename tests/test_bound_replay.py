"""The bounds replayed step by step against dense, independent references.

A tiny tanh network (13 or 21 parameters) is trained by the estimators with minibatches of 7 on
30 rows (a ragged last batch of 2) and several chains. A callback records what each step saw —
its minibatch and every chain's weights before and after it — and the references below recompute
from those alone, in float64 and without any of the package's functions: the SGD step, the full
Hessian of the minibatch loss *before* the step (``torch.func.hessian``), ``log|det(I − α H)|`` with
``α = lr × step_scale`` on the *mean* minibatch loss, the normalised likelihoods, the prior and the
bound's assembly. A per-step replay tells ``θ_t`` from ``θ_{t+1}`` and a batch of 7 (or 2) from the
30 rows, which a full-batch linear model cannot.

The data are standardised (mean 0, standard deviation 1 per column) so that an estimator that
standardises its inputs itself trains on the same numbers.
"""

import math

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_ibvi import EntropySGDClassifier, EntropySGDRegressor, IBVIRegressor

N_SAMPLES, N_FEATURES, HIDDEN, BATCH, EPOCHS, CHAINS = 30, 2, 3, 7, 3, 3
NOISE_STD, PRIOR_SCALE = 0.7, 1.3


def standardised(X):
    X = np.asarray(X, dtype=np.float64)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32)


@pytest.fixture(scope="module")
def regression_data():
    rng = np.random.default_rng(0)
    X = standardised(rng.normal(size=(N_SAMPLES, N_FEATURES)))
    y = 3.0 * np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.3 * rng.normal(size=N_SAMPLES) + 5.0
    return X, y


@pytest.fixture(scope="module")
def classification_data():
    rng = np.random.default_rng(1)
    X = standardised(rng.normal(size=(N_SAMPLES, N_FEATURES)))
    y = np.where(X[:, 0] > 0.4, 2, np.where(X[:, 0] * X[:, 1] > 0, 1, 0))
    return X, y


# -- recording what each step saw --------------------------------------------------------------


def chain_parameters(module):
    """Per-chain float64 vectors ``[W₀, b₀, W₁, b₁]`` read from the network's layers."""
    layers = [layer for layer in module.template if isinstance(layer, torch.nn.Linear)]
    assert module.parameter_names == [f"{i}.{kind}" for i in range(0, 2 * len(layers), 2) for kind in ("weight", "bias")]
    return module.flat().detach().double().clone()


class StepRecorder(Callback):
    """Weights, entropy and minibatch before and after every training step; weights per epoch."""

    def initialize(self):
        self.steps, self.epoch_weights, self.initial_weights = [], [], None
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            theta = chain_parameters(net.module_)
            if self.initial_weights is None:
                self.initial_weights = theta
            X, y = batch
            self._before = dict(theta=theta, entropy=net.entropy_.clone(), X=X.double(), y=y.clone(),
                                prediction=net.entropy_change_prediction_.clone())

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            after = dict(theta_next=chain_parameters(net.module_), entropy_next=net.entropy_.clone())
            self.steps.append({**self._before, **after, "epoch": len(net.history) - 1})

    def on_epoch_end(self, net, **kwargs):
        self.epoch_weights.append(chain_parameters(net.module_))


# -- the references: a tanh MLP and its likelihoods, written out --------------------------------


def unpack(theta, sizes):
    """``[(W, b), ...]`` from a flat ``[W₀, b₀, W₁, b₁, ...]``."""
    layers, start = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        W = theta[start : start + fan_in * fan_out].reshape(fan_out, fan_in)
        start += fan_in * fan_out
        layers.append((W, theta[start : start + fan_out]))
        start += fan_out
    return layers


def tanh_mlp(theta, X, sizes):
    hidden = X
    layers = unpack(theta, sizes)
    for i, (W, b) in enumerate(layers):
        hidden = hidden @ W.T + b
        if i < len(layers) - 1:
            hidden = torch.tanh(hidden)
    return hidden


def per_sample_log_likelihood(theta, X, y, problem):
    f = tanh_mlp(theta, X, problem["sizes"])
    if problem["kind"] == "regression":
        residual = (y - f[:, 0]) / NOISE_STD
        return -0.5 * residual**2 - math.log(NOISE_STD * problem["target_scale"]) - 0.5 * math.log(2 * math.pi)
    return torch.log_softmax(f, dim=1)[torch.arange(len(y)), y.long()]


def prior_stds(sizes):
    stds = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        stds += [np.full(fan_in * fan_out, PRIOR_SCALE / math.sqrt(fan_in)), np.full(fan_out, PRIOR_SCALE)]
    return torch.as_tensor(np.concatenate(stds))


def log_prior_density(theta, sizes):
    std = prior_stds(sizes)
    return float(torch.sum(-0.5 * (theta / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)))


def prior_entropy(sizes):
    return float(torch.sum(0.5 * torch.log(2 * math.pi * math.e * prior_stds(sizes) ** 2)))


def minibatch_loss(problem, X, y):
    """The mean minibatch NLL as a function of one chain's parameters."""
    return lambda theta: -per_sample_log_likelihood(theta, X, y, problem).mean()


def step_size(problem):
    """α on the mean minibatch NLL: lr in half-squared-error units (times σ²) or cross-entropy."""
    return problem["lr"] * (NOISE_STD**2 if problem["kind"] == "regression" else 1.0)




# -- fits ---------------------------------------------------------------------------------------


def fit_recorded(estimator_class, X, y, **params):
    recorder = StepRecorder()
    model = estimator_class(
        hidden_layer_sizes=(HIDDEN,), activation="tanh", prior_scale=PRIOR_SCALE, batch_size=BATCH,
        max_epochs=EPOCHS, n_chains=CHAINS, n_power_iterations=0, callbacks=[recorder],
        standardize_inputs=False,  # the replays are of the network on the inputs given
        random_state=0, **params,
    ).fit(X, y)
    return model, recorder


@pytest.fixture(scope="module", params=["regression", "classification", "warped regression"])
def exact_fit(request, regression_data, classification_data):
    """Exact-entropy fits: a regressor with the control variate, a classifier without it, and the
    entropy-friendly (warped-gradient) regressor."""
    grad_threshold = 0.0
    if request.param.endswith("regression"):
        X, y = regression_data
        lr = 0.3
        if request.param.startswith("warped"):
            grad_threshold = 0.2
        model, recorder = fit_recorded(
            EntropySGDRegressor, X, y, lr=lr, noise_std=NOISE_STD, noise="gaussian", entropy="exact", grad_threshold=grad_threshold
        )
        y_fit = torch.as_tensor((y - y.mean()) / y.std())
        problem = dict(kind="regression", sizes=(N_FEATURES, HIDDEN, 1), target_scale=float(y.std()))
    else:
        X, y = classification_data
        lr = 0.5
        model, recorder = fit_recorded(
            EntropySGDClassifier, X, y, lr=lr, entropy="exact", control_variate=False
        )
        y_fit = torch.as_tensor(y)
        problem = dict(kind="classification", sizes=(N_FEATURES, HIDDEN, 3))
    problem.update(lr=lr, grad_threshold=grad_threshold, X=torch.as_tensor(X, dtype=torch.float64), y=y_fit)
    # The replay of every recorded step, once per fit: the weights it lands on and its Jacobian.
    for step in recorder.steps:
        replays = [replayed_step(problem, step["X"], step["y"], theta) for theta in step["theta"]]
        step["replayed_theta_next"] = [theta_next for theta_next, _ in replays]
        step["replayed_jacobian"] = [jacobian for _, jacobian in replays]
    return model, recorder, problem


def replayed_step(problem, X, y, theta):
    """``θ_{t+1}`` and the step's Jacobian ``I − α D H`` at ``θ_t`` (``D = I`` without warping).

    Entropy-friendly SGD steps along ``g − g₀ tanh(g / g₀)`` with ``g`` the gradient in the units
    of ``lr`` (half the squared error for regression: σ² times the NLL's gradient), and its
    Jacobian carries ``D = diag(tanh²(g / g₀))``.
    """
    loss = minibatch_loss(problem, X, y)
    alpha, threshold = step_size(problem), problem["grad_threshold"]
    gradient, hessian = torch.func.grad(loss)(theta), torch.func.hessian(loss)(theta)
    if threshold > 0:
        in_lr_units = gradient * alpha / problem["lr"]
        direction = (in_lr_units - threshold * torch.tanh(in_lr_units / threshold)) * problem["lr"] / alpha
        hessian = torch.diag(torch.tanh(in_lr_units / threshold) ** 2) @ hessian
    else:
        direction = gradient
    return theta - alpha * direction, torch.eye(len(theta), dtype=torch.float64) - alpha * hessian


def log_abs_det(matrix):
    return float(torch.linalg.slogdet(matrix)[1])


def entropy_tolerance(problem):
    """Relative tolerance of one step's entropy change. The Hessian is formed in float64 at the
    float32 weights in both, but the warp's ``D`` comes from the float32 training gradient."""
    return 1e-5 if problem["grad_threshold"] > 0 else 1e-9


# -- entropy-tracking SGD -----------------------------------------------------------------------


def test_sgd_steps_each_chain_along_its_own_mean_minibatch_loss_with_a_ragged_last_batch(exact_fit):
    model, recorder, problem = exact_fit
    steps = recorder.steps
    batches_per_epoch = -(-N_SAMPLES // BATCH)
    assert len(steps) == EPOCHS * batches_per_epoch
    for epoch in range(EPOCHS):
        epoch_steps = [s for s in steps if s["epoch"] == epoch]
        # every row once per epoch, in batches of 7 and a last one of 30 mod 7 = 2
        assert [len(s["y"]) for s in epoch_steps] == [BATCH] * (N_SAMPLES // BATCH) + [N_SAMPLES % BATCH]
        rows = torch.cat([s["X"] for s in epoch_steps])
        assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, problem["X"].tolist()))
    for step in steps:
        for k in range(CHAINS):
            np.testing.assert_allclose(step["theta_next"][k], step["replayed_theta_next"][k], rtol=0, atol=2e-6)
    # the path is not trivial: the steps move the weights by far more than the tolerance
    assert max(float((s["theta_next"] - s["theta"]).abs().max()) for s in steps) > 1e-2


def test_exact_entropy_change_of_every_step_is_logdet_of_the_jacobian_before_the_step(exact_fit):
    """ΔS = log|det(I − α H(θ_t))| with H at the weights the step starts from, not where it lands."""
    model, recorder, problem = exact_fit
    largest_before_after_gap = 0.0
    for step in recorder.steps:
        for k in range(CHAINS):
            change = float(step["entropy_next"][k] - step["entropy"][k])
            before = log_abs_det(step["replayed_jacobian"][k])
            after = log_abs_det(replayed_step(problem, step["X"], step["y"], step["theta_next"][k])[1])
            assert change == pytest.approx(before, rel=entropy_tolerance(problem), abs=1e-10)
            largest_before_after_gap = max(largest_before_after_gap, abs(after - before))
    # The replay can tell the two apart: H(θ_{t+1}) would be off by far more than the tolerance.
    assert largest_before_after_gap > 1e-3


def test_exact_entropy_step_size_is_lr_on_the_mean_batch_loss_whatever_the_batch_size(exact_fit):
    """α does not scale with the batch (7, or 2 on the ragged last batch) over the 30 rows."""
    model, recorder, problem = exact_fit
    for step in recorder.steps:
        fraction = len(step["y"]) / N_SAMPLES
        for k in range(CHAINS):
            jacobian = step["replayed_jacobian"][k]
            change = float(step["entropy_next"][k] - step["entropy"][k])
            assert change == pytest.approx(log_abs_det(jacobian), rel=entropy_tolerance(problem), abs=1e-10)
            identity = torch.eye(len(jacobian), dtype=torch.float64)
            scaled = log_abs_det(identity - fraction * (identity - jacobian))  # α → α B / N
            assert abs(change - scaled) > 1e-4


def test_history_bound_is_likelihood_plus_prior_plus_entropy_less_the_control_variate(exact_fit):
    model, recorder, problem = exact_fit
    sizes, X, y = problem["sizes"], problem["X"], problem["y"]
    control_variate = model.control_variate
    initial_entropy = prior_entropy(sizes)
    entropy = np.full(CHAINS, initial_entropy)
    history = model.history_
    for epoch in range(EPOCHS):
        prequential = 0.0
        for step in (s for s in recorder.steps if s["epoch"] == epoch):
            log_liks = []
            for k in range(CHAINS):
                entropy[k] += log_abs_det(step["replayed_jacobian"][k])
                log_liks.append(per_sample_log_likelihood(step["theta"][k], step["X"], step["y"], problem))
            # prequential code: chains as an equal mixture, before the step
            prequential += float((torch.logsumexp(torch.stack(log_liks), 0) - math.log(CHAINS)).sum())
        theta = recorder.epoch_weights[epoch]
        log_lik = np.array([float(per_sample_log_likelihood(theta[k], X, y, problem).sum()) for k in range(CHAINS)])
        log_prior = np.array([log_prior_density(theta[k], sizes) for k in range(CHAINS)])
        bounds = log_lik + log_prior + entropy
        if control_variate:
            bounds -= np.array([log_prior_density(t, sizes) for t in recorder.initial_weights]) + initial_entropy
        row = history[epoch]
        # S₀ from float32 prior stds: ~1e-7 nats from the float64 reference
        assert row["entropy"] == pytest.approx(entropy.mean(), rel=0, abs=1e-6)
        assert row["log_likelihood"] == pytest.approx(log_lik.mean(), rel=1e-6)
        assert row["log_prior"] == pytest.approx(log_prior.mean(), rel=1e-6)
        assert row["prequential_log_likelihood"] == pytest.approx(prequential, rel=1e-6)
        assert row["bound"] == pytest.approx(bounds.mean(), rel=1e-6, abs=1e-4)
        assert row["bound_se"] == pytest.approx(bounds.std(ddof=1) / math.sqrt(CHAINS), rel=1e-5)
    assert model.bound_ == history[-1, "bound"]
    assert model.score(X.float().numpy(), model_targets(model, problem)) == pytest.approx(
        model.bound_ / N_SAMPLES, rel=1e-6
    )


def model_targets(model, problem):
    """The targets in the units ``fit`` was given (undo the replay's standardisation)."""
    if problem["kind"] == "regression":
        return problem["y"].numpy() * model.target_scale_ + model.target_mean_
    return problem["y"].numpy()


@pytest.mark.parametrize("probe_fraction", [1.0, 0.5])
def test_stochastic_entropy_is_unbiased_for_the_quadratic_bound_at_the_hessian_before_each_step(
    regression_data, probe_fraction
):
    """E[ΔS] = −α tr H − α² tr H² at θ_t, per step and chain, with minibatches and a ragged batch;
    with a fraction ρ of the steps probed, each change is the prediction π fixed before the step,
    or π + (ĉ − π)/ρ, and the reported subsampling error is √(Σ (1 − ρ)((ΔS − π))²) over the
    probed steps and the chains."""
    X, y = regression_data
    n_probes, lr = 32, 0.3
    model, recorder = fit_recorded(
        EntropySGDRegressor, X, y, lr=lr, noise_std=NOISE_STD, noise="gaussian", entropy="stochastic", n_probes=n_probes,
        probe_fraction=probe_fraction,
    )
    problem = dict(kind="regression", sizes=(N_FEATURES, HIDDEN, 1), target_scale=float(y.std()), lr=lr)
    alpha = step_size(problem)
    expected, variance, scaled = np.zeros(EPOCHS), np.zeros(EPOCHS), np.zeros(EPOCHS)
    tracked, subsampling_var = np.zeros(EPOCHS), np.zeros(EPOCHS)
    for step in recorder.steps:
        loss = minibatch_loss(problem, step["X"], step["y"])
        for k in range(CHAINS):
            H = torch.func.hessian(loss)(step["theta"][k])
            M = alpha * H + alpha**2 * H @ H  # the estimate is −rᵀMr for a Rademacher r
            mean = -float(torch.trace(M))
            # Var(rᵀMr) = 2(‖M‖²_F − Σ M_ii²) for Rademacher r; the estimate averages n_probes of them
            probe_var = 2 * float((M**2).sum() - (torch.diagonal(M) ** 2).sum()) / n_probes
            expected[step["epoch"]:] += mean
            # ΔS = π + (I/ρ)(ĉ − π), I ~ Bernoulli(ρ): Var = (Var ĉ + (mean − π)²) / ρ − (mean − π)²
            prediction = float(step["prediction"][k])
            offset = mean - prediction
            variance[step["epoch"]:] += (probe_var + offset**2) / probe_fraction - offset**2
            a = alpha * len(step["y"]) / N_SAMPLES
            scaled[step["epoch"]:] -= float(a * torch.trace(H) + a**2 * torch.trace(H @ H))
            change = float(step["entropy_next"][k] - step["entropy"][k])
            tracked[step["epoch"]:] += change
            subsampling_var[step["epoch"]:] += (1 - probe_fraction) * (change - prediction) ** 2
    # Chain means of the summed changes, as the history reports them
    expected, scaled, tracked = expected / CHAINS, scaled / CHAINS, tracked / CHAINS
    standard_error = np.sqrt(variance) / CHAINS
    history = model.history_
    np.testing.assert_allclose(
        np.asarray(history[:, "entropy"]) - prior_entropy(problem["sizes"]), tracked, rtol=0, atol=1e-6
    )
    assert np.all(np.abs(tracked - expected) < 5 * standard_error)
    np.testing.assert_allclose(
        history[:, "entropy_subsampling_se"], np.sqrt(subsampling_var) / CHAINS, rtol=1e-9, atol=1e-12
    )
    if probe_fraction == 1:
        # and the test has the power to see a step size scaled by the batch fraction
        assert np.all(np.abs(scaled - expected) > 8 * standard_error)
    else:
        # some (step, chain) pairs were skipped (their change is the prediction) and some probed
        skipped = sum(
            int(torch.isclose(s["entropy_next"] - s["entropy"], s["prediction"], rtol=0, atol=1e-9).sum())
            for s in recorder.steps
        )
        assert 0 < skipped < len(recorder.steps) * CHAINS
        # after its first probe a chain predicts a skipped step's change by its earlier estimates
        assert all(bool((s["prediction"] != 0).all()) for s in recorder.steps[-3:])


# -- IBVI ---------------------------------------------------------------------------------------


def dense_gaussian_kl(mean_q, cov_q, mean_p, cov_p):
    """KL(N(μ_q, Σ_q) ‖ N(μ_p, Σ_p)) in numpy, dense."""
    precision_p = np.linalg.inv(cov_p)
    delta = mean_p - mean_q
    return 0.5 * (
        np.trace(precision_p @ cov_q) + delta @ precision_p @ delta - len(mean_q)
        + np.linalg.slogdet(cov_p)[1] - np.linalg.slogdet(cov_q)[1]
    )


@pytest.mark.parametrize("n_bound_samples", [2, 0])
def test_ibvi_bound_is_the_mean_log_likelihood_of_its_pinned_draws_less_the_dense_kl(
    regression_data, n_bound_samples
):
    """Two diag+lowrank layers of a tanh network: ELBO = mean_s log p(y | X, w_s) − Σ_layers KL,
    over ``n_bound_samples`` draws (``score`` uses one when the per-epoch bound is off).

    The draws are rebuilt from the documented recipe (a CPU generator seeded with
    ``sample_seed_``; per layer ``z ~ N(0, I_R)`` then ``ε ~ N(0, I_P)`` in float64,
    ``w = μ + S z + d ⊙ ε``), the KL from dense covariances.
    """
    X, y = regression_data
    n_draws, rank = max(n_bound_samples, 1), 2
    model = IBVIRegressor(
        standardize_inputs=False,
        hidden_layer_sizes=(HIDDEN,), activation="tanh", covariance="diag+lowrank", rank=rank,
        variational_layers="all", prior_scale=PRIOR_SCALE, noise_std=NOISE_STD, noise="gaussian", batch_size=BATCH,
        max_epochs=2, lr=0.05, n_bound_samples=n_bound_samples, random_state=0,
    ).fit(X, y)
    net = model.net_
    layers = [layer for layer in net.module_.layers]
    kl, weights = 0.0, []
    generator = torch.Generator().manual_seed(net.sample_seed_)
    for layer in layers:
        mean, S, d = (layer.mean.detach().double(), layer.cov_factor.detach().double(),
                      layer.cov_diag_scale.detach().double())
        mean0, S0, d0 = layer.mean_init.double(), layer.cov_factor_init.double(), layer.cov_diag_scale_init.double()
        kl += dense_gaussian_kl(
            mean.reshape(-1).numpy(), (S @ S.T + torch.diag(d**2)).numpy(),
            mean0.reshape(-1).numpy(), (S0 @ S0.T + torch.diag(d0**2)).numpy(),
        )
        z = torch.randn(n_draws, rank, generator=generator, dtype=torch.float64)
        eps = torch.randn(n_draws, layer.n_params, generator=generator, dtype=torch.float64)
        w = mean.reshape(-1) + z @ S.T + eps * d
        weights.append(w.reshape(n_draws, layer.out_features, layer.in_features + 1))
    X64 = torch.as_tensor(X, dtype=torch.float64)
    y_s = torch.as_tensor((y - y.mean()) / y.std())
    log_liks = []
    for s in range(n_draws):
        hidden = X64
        for i, w in enumerate(weights):
            hidden = hidden @ w[s, :, :-1].T + w[s, :, -1]
            if i < len(weights) - 1:
                hidden = torch.tanh(hidden)
        residual = (y_s - hidden[:, 0]) / NOISE_STD
        log_liks.append(float(torch.sum(
            -0.5 * residual**2 - math.log(NOISE_STD * y.std()) - 0.5 * math.log(2 * math.pi)
        )))
    log_liks = np.array(log_liks)
    assert kl > 1e-3  # training moved q away from the prior
    if n_bound_samples:
        row = model.history_[-1]
        assert row["kl_divergence"] == pytest.approx(kl, rel=1e-6)
        assert row["expected_log_likelihood"] == pytest.approx(log_liks.mean(), rel=1e-6)
        assert row["bound_se"] == pytest.approx(log_liks.std(ddof=1) / math.sqrt(n_draws), rel=1e-4)
        assert row["bound"] == pytest.approx(log_liks.mean() - kl, rel=1e-6)
    assert model.score(X, y) * N_SAMPLES == pytest.approx(log_liks.mean() - kl, rel=1e-6)


class LossRecorder(Callback):
    def initialize(self):
        self.losses = []
        return self

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if training:
            self.losses.append((len(net.history) - 1, float(loss), len(batch[1])))


def test_ibvi_train_loss_and_prequential_code_are_the_epochs_one_draw_minibatch_losses(regression_data):
    """Each step's loss is the mean NLL of its minibatch under one draw; the epoch's ``train_loss``
    is their row-weighted mean and the prequential log-likelihood minus their row-weighted sum."""
    X, y = regression_data
    recorder = LossRecorder()
    model = IBVIRegressor(
        standardize_inputs=False,
        hidden_layer_sizes=(HIDDEN,), activation="tanh", noise_std=NOISE_STD, noise="gaussian", batch_size=BATCH,
        max_epochs=2, lr=0.05, callbacks=[recorder], random_state=0,
    ).fit(X, y)
    for epoch in range(2):
        steps = [(loss, rows) for e, loss, rows in recorder.losses if e == epoch]
        assert [rows for _, rows in steps] == [7, 7, 7, 7, 2]
        total = sum(loss * rows for loss, rows in steps)
        assert model.history_[epoch, "train_loss"] == pytest.approx(total / N_SAMPLES, rel=1e-6)
        assert model.history_[epoch, "prequential_log_likelihood"] == pytest.approx(-total, rel=1e-6)
