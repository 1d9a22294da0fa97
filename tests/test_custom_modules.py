"""Both families on the user's own ``nn.Module``: a small CNN's bound against independent references.

The references do not go through the package's networks: the CNN's forward pass is written out
with ``torch.nn.functional`` from a flat parameter vector, its Hessian formed densely in float64,
and the IBVI KL computed from dense covariance matrices.
"""

import copy
import math
import pickle

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback
from sklearn.base import clone
from torch import nn
from torch.nn import functional as F

from sklearn_ibvi import EntropySGDClassifier, EntropySGDRegressor, IBVIClassifier, IBVIRegressor

from test_bound_replay import dense_gaussian_kl

IMAGE = (1, 5, 5)
N_ROWS, N_CLASSES = 24, 3


class TinyCNN(nn.Module):
    """Flat rows → 1×5×5 images → conv 3×3 (2 channels) → tanh → linear read-out."""

    def __init__(self, channels=2, n_classes=N_CLASSES):
        super().__init__()
        self.unflatten = nn.Unflatten(1, IMAGE)
        self.conv = nn.Conv2d(1, channels, 3)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(channels * 9, n_classes)

    def forward(self, x):
        return self.head(self.flatten(torch.tanh(self.conv(self.unflatten(x)))))


def cnn_reference(theta, X, channels=2, n_classes=N_CLASSES):
    """TinyCNN's logits from the flat ``[conv.weight, conv.bias, head.weight, head.bias]``."""
    sizes = [channels * 9, channels, n_classes * channels * 9, n_classes]
    w_conv, b_conv, w_head, b_head = torch.split(theta, sizes)
    hidden = torch.tanh(F.conv2d(X.reshape(-1, *IMAGE), w_conv.reshape(channels, 1, 3, 3), b_conv))
    return hidden.flatten(1) @ w_head.reshape(n_classes, -1).T + b_head


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N_ROWS, math.prod(IMAGE), generator=gen, dtype=torch.float64)
    y = torch.arange(N_ROWS) % N_CLASSES
    return X.numpy().astype(np.float32), y.numpy()


# -- entropy-SGD: exact entropy of a conv net against a dense Hessian ----------------------------


class StepRecorder(Callback):
    def initialize(self):
        self.steps = []
        return self

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self._before = dict(theta=net.module_.flat().detach().double()[0].clone(),
                                entropy=float(net.entropy_[0]), X=batch[0].double(), y=batch[1].clone())  # fmt: skip

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training:
            self.steps.append({**self._before, "entropy_next": float(net.entropy_[0]),
                               "theta_next": net.module_.flat().detach().double()[0].clone()})  # fmt: skip


def test_exact_entropy_of_a_conv_net_is_the_logdet_of_its_dense_step_jacobian(images):
    X, y = images
    recorder = StepRecorder()
    lr = 0.2
    model = EntropySGDClassifier(
        module=TinyCNN, entropy="exact", lr=lr, batch_size=8, max_epochs=2, control_variate=False,
        standardize_inputs=False, callbacks=[recorder], random_state=0,
    ).fit(X, y)
    assert len(recorder.steps) == 2 * N_ROWS // 8
    largest_change = 0.0
    for step in recorder.steps:
        def loss(theta):
            return F.cross_entropy(cnn_reference(theta, step["X"]), step["y"])

        theta = step["theta"]
        # the step: plain SGD on the mean minibatch loss
        np.testing.assert_allclose(step["theta_next"], theta - lr * torch.func.grad(loss)(theta), atol=2e-6)
        jacobian = torch.eye(len(theta), dtype=torch.float64) - lr * torch.func.hessian(loss)(theta)
        expected = float(torch.linalg.slogdet(jacobian)[1])
        assert step["entropy_next"] - step["entropy"] == pytest.approx(expected, rel=1e-9, abs=1e-10)
        largest_change = max(largest_change, abs(expected))
    assert largest_change > 1e-2  # the check has something to check
    # the bound: likelihood + prior + entropy, the prior N(0, 1/fan_in) on weights, N(0, 1) on biases
    theta = model.net_.module_.flat().detach().double()[0]
    stds = torch.cat([torch.full((18,), 1 / 3), torch.ones(2), torch.full((54,), 1 / math.sqrt(18)), torch.ones(3)])
    prior = torch.distributions.Normal(0, stds.double())
    log_lik = -F.cross_entropy(cnn_reference(theta, torch.as_tensor(X, dtype=torch.float64)),
                               torch.as_tensor(y), reduction="sum")  # fmt: skip
    entropy = float(prior.entropy().sum()) + sum(s["entropy_next"] - s["entropy"] for s in recorder.steps)
    expected_bound = float(log_lik + prior.log_prob(theta).sum()) + entropy
    assert model.history_[-1, "bound"] == pytest.approx(expected_bound, rel=1e-5)


def test_stochastic_entropy_sgd_trains_a_cnn_regressor_with_chains(images):
    X, _ = images
    y = X[:, 12] * 2.0 + 0.1 * np.random.RandomState(0).randn(len(X))
    model = EntropySGDRegressor(module=TinyCNN, module__n_classes=1, n_chains=3, max_epochs=5, lr=0.01,
                                random_state=0).fit(X, y)  # fmt: skip
    mean, std = model.predict(X, return_std=True)
    assert np.isfinite(model.bound_) and mean.shape == std.shape == (N_ROWS,)
    assert model.net_.module_.n_chains == 3


def test_batch_normalisation_is_refused_by_entropy_sgd_with_the_reason(images):
    X, y = images
    module = nn.Sequential(nn.Linear(25, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"Layer '1' \(BatchNorm1d\) updates running statistics"):
        EntropySGDClassifier(module=module, max_epochs=1).fit(X, y)


def test_exact_entropy_of_a_large_custom_module_is_refused_clearly(images):
    X, y = images
    with pytest.raises(ValueError, match="limited to 5000 parameters"):
        EntropySGDClassifier(module=TinyCNN, module__channels=300, entropy="exact", max_epochs=1).fit(X, y)


# -- IBVI: variational conv layers, the bound against dense KL and written-out draws -------------


@pytest.mark.parametrize("variational_layers", ["input_output", ["conv"]])
def test_ibvi_bound_of_a_cnn_is_its_pinned_draws_mean_log_likelihood_less_the_dense_kl(images, variational_layers):
    X, y = images
    n_draws, rank = 3, 2
    model = IBVIClassifier(
        module=TinyCNN, variational_layers=variational_layers, covariance="diag+lowrank", rank=rank,
        n_bound_samples=n_draws, max_epochs=3, batch_size=8, lr=0.1, standardize_inputs=False, random_state=0,
    ).fit(X, y)
    network = model.net_.module_
    assert list(network.variational) == (["conv", "head"] if variational_layers == "input_output" else ["conv"])
    generator = torch.Generator().manual_seed(model.net_.sample_seed_)
    kl, draws = 0.0, {}
    for name, layer in network.variational.items():
        mean, S, d = (layer.mean.detach().double(), layer.cov_factor.detach().double(),
                      layer.cov_diag_scale.detach().double())  # fmt: skip
        mean0, S0, d0 = layer.mean_init.double(), layer.cov_factor_init.double(), layer.cov_diag_scale_init.double()
        kl += dense_gaussian_kl(
            mean.reshape(-1).numpy(), (S @ S.T + torch.diag(d**2)).numpy(),
            mean0.reshape(-1).numpy(), (S0 @ S0.T + torch.diag(d0**2)).numpy(),
        )
        z = torch.randn(n_draws, rank, generator=generator, dtype=torch.float64)
        eps = torch.randn(n_draws, layer.n_params, generator=generator, dtype=torch.float64)
        draws[name] = (mean.reshape(-1) + z @ S.T + eps * d).reshape(n_draws, *mean.shape)  # (S, out, fan_in + 1)
    head = network.module.head
    X64 = torch.as_tensor(X, dtype=torch.float64)
    log_liks = []
    for s in range(n_draws):
        conv = draws["conv"][s]
        conv_part = [conv[:, :-1].reshape(-1), conv[:, -1]]
        if "head" in draws:
            head_part = [draws["head"][s][:, :-1].reshape(-1), draws["head"][s][:, -1]]
        else:  # a point estimate: the bound is conditional on it
            head_part = [head.weight.detach().double().reshape(-1), head.bias.detach().double()]
        theta = torch.cat(conv_part + head_part)
        log_liks.append(-float(F.cross_entropy(cnn_reference(theta, X64), torch.as_tensor(y), reduction="sum")))
    assert kl > 1e-3  # training moved q away from the prior
    row = model.history_[-1]
    assert row["kl_divergence"] == pytest.approx(kl, rel=1e-6)
    assert row["expected_log_likelihood"] == pytest.approx(np.mean(log_liks), rel=1e-5)
    assert model.score(X, y) * N_ROWS == pytest.approx(np.mean(log_liks) - kl, rel=1e-5)


def test_ibvi_conv_layer_applies_each_draw_to_its_own_rows():
    """The grouped convolution over draws equals one plain convolution per draw."""
    torch.manual_seed(0)
    model = IBVIClassifier(module=TinyCNN, max_epochs=1, random_state=0)
    X = np.random.RandomState(0).randn(6, 25).astype(np.float32)
    model.fit(X, np.arange(6) % 3)
    network = model.net_.module_
    samples = network.sample_weights(4, torch.Generator().manual_seed(1))
    outputs = network(torch.as_tensor(X), samples=samples)
    conv = network.variational["conv"]
    head = network.variational["head"]
    for s in range(4):
        w, b = samples["conv"].weight[s].reshape(2, 1, 3, 3), samples["conv"].bias[s]
        hidden = torch.tanh(F.conv2d(torch.as_tensor(X).reshape(-1, *IMAGE), w, b)).flatten(1)
        expected = hidden @ samples["head"].weight[s].T + samples["head"].bias[s]
        torch.testing.assert_close(outputs[s], expected, rtol=1e-5, atol=1e-5)
    # μP from torch's fans: out_channels / in_channels
    assert conv.lr_multipliers["mean"] == pytest.approx(2.0) and head.layer_type == "output"


def test_ibvi_names_an_unsupported_variational_layer(images):
    X, y = images
    module = nn.Sequential(nn.Linear(25, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"Layer '1' is a LayerNorm; variational layers can be nn.Linear"):
        IBVIClassifier(module=module, variational_layers=["0", "1"], max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"names 'fc'.*linear and convolutional layers are \['0', '3'\]"):
        IBVIClassifier(module=module, variational_layers=["fc"], max_epochs=1).fit(X, y)


def test_ibvi_keeps_other_layers_deterministic_and_trains_through_them(images):
    X, y = images
    module = nn.Sequential(nn.Linear(25, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 3))
    model = IBVIClassifier(module=module, max_epochs=150, batch_size=8, lr=0.1, random_state=0).fit(X, y)
    assert model.score(X, y) == pytest.approx(model.bound_ / N_ROWS, rel=1e-6)
    assert (model.predict(X) == y).mean() > 0.8  # 24 rows, 3 classes: it can fit them
    assert isinstance(module[0], nn.Linear) and module[0].weight.grad is None  # the user's object untouched


# -- the module parameter as scikit-learn sees it -----------------------------------------------


@pytest.mark.parametrize("cls", [EntropySGDClassifier, IBVIClassifier])
def test_module_parameters_clone_set_and_refit(images, cls):
    X, y = images
    model = cls(module=TinyCNN, module__channels=3, max_epochs=2, random_state=0)
    assert model.get_params()["module__channels"] == 3
    copy_ = clone(model).set_params(module__channels=4)
    assert copy_.get_params()["module__channels"] == 4 and model.module__channels == 3
    fitted = copy_.fit(X, y)
    conv = fitted.net_.module_
    n_parameters = conv.n_parameters if cls is EntropySGDClassifier else sum(
        layer.n_params for layer in conv.variational.values())
    assert n_parameters == 4 * 9 + 4 + 3 * 36 + 3
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    assert copy.deepcopy(fitted).score(X, y) == pytest.approx(fitted.score(X, y))


@pytest.mark.parametrize("cls", [EntropySGDClassifier, IBVIRegressor])
def test_module_errors_say_what_is_wrong(images, cls):
    X, y = images
    if cls is IBVIRegressor:
        with pytest.raises(ValueError, match=r"returns \(2, 3\) for 2 rows; the estimator needs shape \(n_samples, 1\)"):
            cls(module=TinyCNN, max_epochs=1).fit(X, y.astype(float))
        return
    with pytest.raises(ValueError, match=r"could not be applied to input rows of shape \(2, 24\)"):
        cls(module=TinyCNN, max_epochs=1).fit(X[:, :24], y)
    with pytest.raises(ValueError, match="`module` is an instance of TinyCNN"):
        cls(module=TinyCNN(), module__channels=3, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="need a `module`"):
        cls(module__channels=3, max_epochs=1).fit(X, y)
    with pytest.raises(TypeError, match="unexpected keyword argument 'channels'"):
        cls(channels=3)


@pytest.mark.parametrize("cls", [EntropySGDClassifier, IBVIClassifier], ids=lambda c: c.__name__)
def test_auto_passes_unit_scale_inputs_to_a_users_module_as_they_are(images, cls):
    """Inputs in the unit-scale range reach the user's module unchanged (it was written for them),
    while the built-in MLP gets them rescaled to unit mean square; raw-scale inputs are
    standardised for both."""
    X, y = images
    X = 0.4 * np.abs(X)  # image-like: non-negative, root mean square 0.4
    params = dict(max_epochs=1, random_state=0)
    own = cls(module=TinyCNN, **params).fit(X, y)
    assert own.input_mean_ is None and own.input_scale_ is None
    as_they_are = cls(module=TinyCNN, standardize_inputs=False, **params).fit(X, y)
    np.testing.assert_array_equal(own.predict_proba(X), as_they_are.predict_proba(X))
    builtin = cls(hidden_layer_sizes=(4,), **params).fit(X, y)
    np.testing.assert_allclose(builtin.input_scale_, np.sqrt(np.mean(X.astype(np.float64) ** 2)), rtol=1e-6)
    assert cls(module=TinyCNN, **params).fit(100 * X, y).input_mean_ is not None
