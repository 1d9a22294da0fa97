"""Implicit-bias variational inference (IBVI; Coker, Wenger, Marusic & Cunningham, 2025).

Some layers of an MLP carry a Gaussian distribution over their weights,
``q = N(μ, Σ)`` (:mod:`sklearn_ibvi.variational`), initialised *at the prior*
``p = q₀``. Training minimises the expected loss only,

    E_q[−log p(y | X, w)],     one weight sample per minibatch, SGD with momentum,

with no KL term: the implicit bias of SGD keeps the prior's uncertainty in the directions the data
do not constrain. What is reported is the evidence lower bound of the trained ``q``,

    bound = E_q[log p(y | X, w)] − KL(q ‖ p),

the expectation by Monte Carlo over a fixed set of weight draws (common random numbers, so the
per-epoch curve is smooth), the KL in closed form. Point-estimate layers make the bound
conditional on them; with ``variational_layers='all'`` it bounds the whole model's evidence.
"""

import math
import textwrap
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import (
    PREDICT_BATCH_SIZE,
    BayesianClassifierMixin,
    BayesianNetEstimator,
    BayesianRegressorMixin,
    hidden_layer_sizes,
    outputs_in_fixed_batches,
)
from ._nets import BoundTrackingNet
from .exceptions import BoundUndefinedError, warn_at_caller
from .variational import (
    COVARIANCES,
    PARAMETRIZATIONS,
    VARIATIONAL_LAYERS,
    VariationalLinear,
    VariationalMLP,
    WeightSamples,
    sample_float64,
)

#: Epochs before a fit no better than a constant prediction is reported as collapsed.
COLLAPSE_CHECK_MIN_EPOCHS = 5
#: Dead first-layer ReLU units above which training is reported as collapsed. Measured on digits
#: (64-256-256-10, 100 epochs): 1-18 % dead in healthy runs, 64-98 % where lr 0.15 collapsed.
DEAD_UNITS_WARNING_FRACTION = 0.5
#: Nats/sample by which the mean-weight network must beat the constant prediction.
COLLAPSE_LOSS_TOLERANCE = 1e-3

_FAMILIES_WITH_A_BOUND = (
    "covariance='diagonal' or 'diag+lowrank' (or 'lowrank' with rank at least the number of "
    "parameters of every variational layer)"
)


class IBVINetwork(VariationalMLP):
    """:class:`~sklearn_ibvi.variational.VariationalMLP` whose weight draws can be pinned by a seed.

    ``forward(x, n_samples, seed)`` with a seed draws the same weights on every call, whatever the
    rows of ``x`` and whatever the device: the noise comes from a CPU generator of that seed (see
    :func:`~sklearn_ibvi.variational.sample`), so predictions and the bound do not depend on how
    the rows are batched nor on where the model runs, and the global RNG is left untouched.
    Without a seed (training) the global RNG of the device draws, on the device.
    """

    def forward(self, x, n_samples=1, seed=None, samples=None):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return super().forward(x, n_samples, generator, samples)

    def pinned_samples(self, n_samples, seed):
        """The weights ``forward(x, n_samples, seed)`` draws, for ``forward(x, samples=...)``.

        Computed once in float64 on the CPU (``μ + S z + d ⊙ ε`` with the seeded noise), then
        rounded to the network's dtype and moved to its device: the same float32 weights on
        every device, and a call that predicts many batches of rows draws them only once.
        """
        reference = next(self.parameters())
        generator = torch.Generator().manual_seed(seed)
        samples = []
        with torch.no_grad():
            for layer in self.layers:
                if not isinstance(layer, VariationalLinear):
                    samples.append(None)
                    continue
                weights = sample_float64(layer.variational_distribution(), n_samples, generator)
                weights = weights.reshape(n_samples, layer.out_features, -1)
                samples.append(
                    WeightSamples.from_matrices(weights, layer.in_features, layer.has_bias, reference.dtype).to(
                        reference.device
                    )
                )
        return samples


class IBVINet(BoundTrackingNet):
    """skorch net that trains a variational MLP on the expected loss and records its ELBO.

    Parameters
    ----------
    n_bound_samples : int
        Weight draws of the Monte-Carlo expected log-likelihood in the end-of-epoch bound. The
        draws are the same at every epoch (seed ``sample_seed_``), so the curve is smooth. 0 skips
        the end-of-epoch bound (its columns are NaN); :meth:`evidence_lower_bound` then uses one.

    Attributes
    ----------
    sample_seed_ : int
        Seed of the weight draws used by the bound and by predictions, drawn once at
        initialisation from the (seeded) torch RNG.

    Notes
    -----
    The optimizer gets the parametrization's parameter groups
    (:meth:`~sklearn_ibvi.variational.VariationalMLP.param_groups`): group ``i`` steps with
    ``lr × lr_multiplier_i``.
    """

    def __init__(self, *args, n_bound_samples=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_bound_samples = n_bound_samples

    def initialize_module(self):
        super().initialize_module()
        self.sample_seed_ = int(torch.randint(np.iinfo(np.int32).max, ()))
        return self

    def initialize_optimizer(self, triggered_directly=None):
        _, kwargs = self.get_params_for_optimizer("optimizer", self.get_all_learnable_params())
        self.optimizer_ = self.optimizer(self.module_.param_groups(kwargs["lr"]), **kwargs)
        return self

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        # Running sums on the training device: no copy to the host at every step.
        device = next(self.module_.parameters()).device
        self._prequential = torch.zeros((), dtype=torch.float64, device=device)
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._n_seen = 0

    # -- one step ------------------------------------------------------------------------------

    def train_step(self, batch, **fit_params):
        X, y = batch
        module = self.module_
        module.train()
        self.optimizer_.zero_grad(set_to_none=True)
        # One weight sample per minibatch: an unbiased estimate of the expected loss. No KL term.
        per_sample_nll = self.criterion_(module(X, n_samples=1), y)
        loss = per_sample_nll.mean()
        if not torch.isfinite(loss):
            raise self.diverged("training loss")
        # `lr` is in the units of the mean loss (half the squared error for regression, so the
        # path does not depend on noise_std): the step on the mean NLL is lr × step_scale.
        (loss * self.criterion_.step_scale).backward()
        self.optimizer_.step()
        with torch.no_grad():
            # Prequential code: log p(batch | w) under the step's own draw w ~ q, before the step.
            self._prequential -= per_sample_nll.detach().double().sum()
            self._loss_sum += loss.detach().double() * len(X)
        self._n_seen += len(X)
        return {"loss": loss.detach(), "y_pred": None}

    # -- the bound -----------------------------------------------------------------------------

    def sampled_log_likelihood(self, X, y, n_samples):
        """Full-data ``log p(y | X, w_s)`` for ``n_samples`` fixed draws ``w_s ~ q``.

        Returns a float64 tensor of shape (n_samples,). Every row batch sees the same draws.
        """
        module = self.module_
        module.eval()
        total = torch.zeros(n_samples, dtype=torch.float64, device=X.device)
        with torch.no_grad():
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                rows = slice(start, start + PREDICT_BATCH_SIZE)
                outputs = module(X[rows], n_samples=n_samples, seed=self.sample_seed_)
                total -= self.criterion_(outputs, y[rows]).double().sum(1)
        return total.cpu()

    def kl_divergence(self):
        """Closed-form ``KL(q ‖ p)`` summed over the variational layers (float; ``inf`` if singular)."""
        with torch.no_grad():
            return float(self.module_.kl_divergence())

    def evidence_lower_bound(self, X, y, refit_noise=False):
        """``E_q[log p(y | X, w)] − KL(q ‖ p)`` and its parts, as a dict of floats (nats).

        Keys: ``expected_log_likelihood`` (Monte-Carlo mean over ``max(n_bound_samples, 1)``
        draws), ``bound_se`` (its standard error, NaN with one draw), ``kl_divergence`` and
        ``bound`` (NaN when the KL is infinite). With ``refit_noise`` a learned noise is first
        set to the maximiser of the expected log-likelihood, ``σ² = E_q[mean residual²]``.
        """
        kl = self.kl_divergence()
        if not math.isfinite(kl) and not (refit_noise and self.learn_noise):  # no bound: spare the pass
            nan = float("nan")
            return {"expected_log_likelihood": nan, "kl_divergence": kl, "bound": nan, "bound_se": nan}
        log_lik = self.sampled_log_likelihood(X, y, max(self.n_bound_samples, 1))
        log_lik = self.observed_log_likelihood(log_lik, len(y), refit_noise=refit_noise)
        expected_log_likelihood = float(log_lik.mean())
        n = len(log_lik)
        se = float(log_lik.std() / math.sqrt(n)) if n > 1 else float("nan")
        bound = expected_log_likelihood - kl if math.isfinite(kl) else float("nan")
        return {
            "expected_log_likelihood": expected_log_likelihood,
            "kl_divergence": kl,
            "bound": bound,
            "bound_se": se,
        }

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        data = self._train_batches
        if self.n_bound_samples == 0:
            columns = ("expected_log_likelihood", "kl_divergence", "bound", "bound_se")
            parts = dict.fromkeys(columns, float("nan"))
            if self.learn_noise:
                # Predictions need the noise even where the bound is not tracked: one draw.
                log_lik = self.sampled_log_likelihood(data.X, data.y, 1)
                self.observed_log_likelihood(log_lik, len(data.y), refit_noise=True)
        else:
            parts = self.evidence_lower_bound(data.X, data.y, refit_noise=True)
            if math.isfinite(parts["kl_divergence"]) and not math.isfinite(parts["expected_log_likelihood"]):
                raise self.diverged("log-likelihood")
        self.record_noise()
        history = self.history
        history.record("train_loss", float(self._loss_sum) / max(self._n_seen, 1))
        history.record("prequential_log_likelihood", float(self._prequential))
        for key, value in parts.items():
            history.record(key, value)
        if len(history) == COLLAPSE_CHECK_MIN_EPOCHS:
            self._warn_if_collapsed()  # early, so that a long fit does not run on in silence

    # -- collapse to the constant predictor ---------------------------------------------------

    def constant_predictor_loss(self, y):
        """Mean NLL of the best input-independent prediction (class frequencies or the mean)."""
        if self.criterion_.likelihood == "gaussian":
            prediction = y.double().mean().expand(1, len(y), 1)
        else:
            counts = torch.bincount(y.long(), minlength=self.module_.n_outputs).double()
            prediction = torch.log(counts.clamp_min(0.5) / len(y)).expand(1, len(y), -1)
        with torch.no_grad():
            return float(self.criterion_(prediction, y).mean())

    def mean_weights_loss(self, X, y):
        """Mean NLL of the network at the mean weights: the fit without the weight noise."""
        module = self.module_
        module.eval()
        total = 0.0
        with torch.no_grad():
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                rows = slice(start, start + PREDICT_BATCH_SIZE)
                nll = self.criterion_(module.forward_mean(X[rows])[None], y[rows])
                total += float(nll.double().sum())
        return total / len(X)

    def dead_unit_fraction(self, X):
        """Fraction of first-layer ReLU units inactive (≤ 0) on every row under the mean weights."""
        module = self.module_
        if len(module.layers) < 2 or not isinstance(module.activation_fn, torch.nn.ReLU):
            return float("nan")
        first = module.layers[0]
        alive = torch.zeros(first.out_features, dtype=torch.bool, device=X.device)
        with torch.no_grad():
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                rows = X[start : start + PREDICT_BATCH_SIZE]
                pre = first.forward_mean(rows) if isinstance(first, VariationalLinear) else first(rows)
                alive |= (pre > 0).any(0)
        return 1.0 - float(alive.double().mean())

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        self._warned_collapse = False

    def on_train_end(self, net, **kwargs):
        """Warn when training has collapsed to an input-independent prediction (NaN-free failure)."""
        try:
            self._warn_if_collapsed()
        finally:
            super().on_train_end(net, **kwargs)  # releases the training rows

    def _warn_if_collapsed(self):
        """Checked after ``COLLAPSE_CHECK_MIN_EPOCHS`` epochs and at the end of training; warns once a fit."""
        if len(self.history) < COLLAPSE_CHECK_MIN_EPOCHS or getattr(self, "_warned_collapse", False):
            return
        data = self._train_batches
        # The mean-weight network, not the noisy one-sample training loss: early on, or with a
        # wide prior, the weight noise alone can make the latter worse than a constant.
        loss = self.mean_weights_loss(data.X, data.y)
        baseline = self.constant_predictor_loss(data.y)
        dead = self.dead_unit_fraction(data.X)
        no_better = loss >= baseline - COLLAPSE_LOSS_TOLERANCE
        if not (no_better or dead >= DEAD_UNITS_WARNING_FRACTION):
            return
        what = "is no better than" if no_better else "is"
        dead_note = "" if math.isnan(dead) else (
            f" {dead:.0%} of the first layer's ReLU units are dead (inactive on every training row)."
        )
        self._warned_collapse = True
        warn_at_caller(
            f"After {len(self.history)} epochs the training loss of the mean weights ({loss:.4g} "
            f"nats/sample) {what} that of a constant prediction ({baseline:.4g}).{dead_note} The "
            "network has collapsed or has not started learning. Unscaled inputs (the prior's "
            "weight noise grows with the size of x: keep standardize_inputs=True) and too large a "
            f"learning rate kill ReLU units without diverging (try a smaller `lr`, currently "
            f"{self.lr:g}); too small a one needs more epochs.",
            ConvergenceWarning,
        )


class _IBVIEstimator(BayesianNetEstimator):
    """Parameters and wiring shared by the IBVI regressor and classifier."""

    _parameter_constraints = {
        **BayesianNetEstimator._parameter_constraints,
        "covariance": [StrOptions(set(COVARIANCES))],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "variational_layers": [StrOptions(set(VARIATIONAL_LAYERS))],
        "parametrization": [StrOptions(set(PARAMETRIZATIONS))],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "n_predict_samples": [Interval(Integral, 1, None, closed="left")],
        "n_bound_samples": [Interval(Integral, 0, None, closed="left")],
        "callbacks": [list, None],
    }

    # How many draws estimate the bound is not part of the model: it may change between continuations.
    _continuable_params = BayesianNetEstimator._continuable_params | {"n_bound_samples"}

    #: Parameter values that switch the per-epoch bound off, for fits judged on held-out rows.
    _untracked_params = {"n_bound_samples": 0}

    def _continue_with_current_schedule(self, net, n_samples):
        super()._continue_with_current_schedule(net, n_samples)
        net.n_bound_samples = self.n_bound_samples

    def _build_net(self, n_samples, n_features, n_outputs, likelihood, device):
        return IBVINet(
            module=IBVINetwork,
            module__n_features=n_features,
            module__n_outputs=n_outputs,
            module__hidden_layer_sizes=hidden_layer_sizes(self.hidden_layer_sizes),
            module__activation=self.activation,
            module__variational_layers=self.variational_layers,
            module__covariance=self.covariance,
            module__rank=self.rank,
            module__prior_scale=self.prior_scale,
            module__parametrization=self.parametrization,
            **self._common_net_params(n_samples, likelihood, device),
            optimizer__momentum=self.momentum,
            n_bound_samples=self.n_bound_samples,
        )

    def _sample_outputs(self, X):
        """Outputs under ``n_predict_samples`` fixed weight draws, shape ``(S, n, n_outputs)``.

        The draws are made once per call (:meth:`IBVINetwork.pinned_samples`) and the network runs
        in its training precision, float32, over row batches of one fixed shape
        (:func:`~sklearn_ibvi._base.outputs_in_fixed_batches`): a row's outputs do not depend on
        the other rows predicted with it.
        """
        module = self.net_.module_
        samples = module.pinned_samples(self.n_predict_samples, self.net_.sample_seed_)
        return outputs_in_fixed_batches(module, X, samples=samples)

    def _log_marginal_likelihood_bound(self, X, y):
        kl = self.net_.kl_divergence()
        if not math.isfinite(kl):
            raise BoundUndefinedError(
                f"This estimator has no finite bound: with covariance={self.covariance!r} and rank="
                f"{self.rank} the variational covariance is singular, so KL(q ‖ p) is infinite and the "
                f"ELBO is −∞. The families with a bound are {_FAMILIES_WITH_A_BOUND}."
            )
        device = next(self.net_.module_.parameters()).device
        return self.net_.evidence_lower_bound(X.to(device), y.to(device))["bound"]


_SHARED_PARAMETERS_DOC = """
    hidden_layer_sizes : tuple of int, default=(100,)
        Widths of the hidden layers; ``()`` gives a linear model.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation of the hidden layers, as in scikit-learn's MLPs.
    covariance : {'diag+lowrank', 'diagonal', 'lowrank'}, default='diag+lowrank'
        Covariance family of each variational layer: ``diag(d²) + SSᵀ``, ``diag(d²)`` or the
        paper's ``SSᵀ`` (``S`` with ``rank`` columns). ``'lowrank'`` with ``rank`` below the
        layer's parameter count is singular: its KL to the prior is infinite and ``score``
        raises :class:`~sklearn_ibvi.exceptions.BoundUndefinedError`.
    rank : int, default=10
        Columns ``R`` of the low-rank factor (ignored by ``'diagonal'``).
    variational_layers : {'input_output', 'all', 'output'}, default='input_output'
        Which linear layers are Gaussian: the first and last (the paper's choice), all, or the
        read-out only. The others are point estimates and the bound is conditional on them;
        ``'all'`` bounds the whole model's evidence.
    parametrization : {'mup', 'standard'}, default='mup'
        ``'mup'``: maximal-update parametrization (mean init std ``1/√fan_in``, read-out
        ``1/fan_in``; SGD learning-rate multiplier ``fan_out/fan_in`` per layer, divided by ``R``
        for the low-rank factor), so that a learning rate tuned at one width transfers to others.
        ``'standard'``: init std ``1/√fan_in`` everywhere, multiplier 1.
    prior_scale : float, default=1.0
        Prior standard deviation of every parameter in units of its init std. The prior is the
        initial variational distribution: mean ``μ₀`` a draw of the parametrization's init,
        covariance ``(prior_scale · init std)² I`` (on average, for the low-rank families).
    lr : float, default={lr}
        SGD learning rate in the units of the mean minibatch loss, as in scikit-learn and skorch
        (the cross-entropy for classifiers, half the squared error of standardised targets for
        regressors, so the path does not depend on ``noise_std``), before the per-layer
        multipliers of the parametrization. Schedules: pass ``skorch.callbacks.LRScheduler`` in
        ``callbacks``.
{lr_note}
    momentum : float, default=0.9
        SGD momentum.
    batch_size : int or 'auto', default=128
        Minibatch size (``'auto'`` is ``min(200, n_samples)``). One weight sample per minibatch.
    max_epochs : int, default=100
        Passes over the training rows; ``BoundEarlyStopping`` and the searches choose fewer.
    n_predict_samples : int, default=32
        Weight draws averaged by ``predict_proba`` / ``predict``. The draws are fixed per fitted
        model (reproducible predictions, bit-identical however rows are batched); they are made
        once per call and the network runs in float32. With a variational input layer each draw
        costs about one forward pass (one CPU thread, 64|784-256-256-10: 0.9-1.2× scikit-learn's
        ``MLPClassifier.predict_proba`` per draw). Test NLL falls with more draws: 32 draws were
        0.9 % (digits) and 3.8 % (MNIST 10k) above 128 draws', 16 draws 7 % (both); see
        ``benchmarks/results/predict_time.md``.
    n_bound_samples : int, default=1
        Weight draws of the Monte-Carlo expected log-likelihood in the bound, recorded after every
        epoch over the whole training set and used by ``score``. The same draws are used at every
        epoch, so the bound curve is smooth in the epochs. Each draw costs a forward pass over the
        training set plus the closed-form KL (measured on one CPU thread, 64-256-256-10,
        diag+lowrank: +52 % of the fit time on digits, +39 % on an MNIST subset — see the IBVI
        benchmark); 0 skips the per-epoch bound (NaN in the history, ``score`` then uses one
        draw; a regressor with ``noise_std='auto'`` still refits its noise on one draw per
        epoch). Skipped automatically where the KL is infinite (``'lowrank'``).
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks, e.g. ``LRScheduler`` (it scales every parameter group alike, so
        the μP multipliers are kept).
    device : str, default='auto'
        ``'auto'`` uses CUDA when available, else CPU; any torch device string. A model fitted
        on CUDA predicts the same on the CPU; its training noise is drawn on the GPU, so a CUDA
        fit is another Monte-Carlo run than the CPU fit with the same ``random_state`` (user
        guide, *Running on a GPU*).
    random_state : int, RandomState instance or None, default=None
        Seeds the prior draw, the minibatch order and the weight samples; the global RNGs are
        untouched.
    verbose : int, default=0
        Print the skorch epoch log when positive.
    warm_start : bool, default=False
        Continue from the fitted network (and its optimizer's momentum) on the next ``fit``.
    standardize_inputs : bool, default=True
        Standardise every feature with the mean and standard deviation of the training rows
        before the network (fitted in ``fit``, kept by continuations), so raw features fit as
        well as scaled ones. The bound is conditional on ``X`` and stays valid."""

_CLASSIFIER_LR_NOTE = (
    "Too large a rate can collapse the network to chance without diverging (digits, "
    "64-256-256-10: fine at 0.1, collapsed at 0.15); a warning says so."
)
_REGRESSOR_LR_NOTE = (
    "On standardised diabetes (width 100, 100 epochs) 0.02 had the best test R² and bound; 0.15 "
    "diverged. The squared error does not saturate like the cross-entropy, so sampled steps "
    "diverge sooner; under μP the input layer's rate also grows as fan_out/fan_in, i.e. for few "
    "input features."
)


def _parameters_doc(lr, lr_note):
    note = textwrap.fill(lr_note, width=100, initial_indent=" " * 8, subsequent_indent=" " * 8)
    return _SHARED_PARAMETERS_DOC.replace("{lr}", str(lr)).replace("{lr_note}", note)


_SHARED_ATTRIBUTES_DOC = """
    net_ : IBVINet
        The trained skorch net; ``net_.module_`` is the variational network (its layers hold
        ``mean``, ``cov_factor``/``cov_diag_scale`` and the prior in ``*_init`` buffers).
    history_ : skorch.History
        Per epoch: ``bound``, ``expected_log_likelihood``, ``kl_divergence``, ``bound_se``
        (Monte-Carlo standard error, NaN with one draw), ``train_loss`` (the epoch's mean
        one-sample training NLL, nats/sample), ``prequential_log_likelihood`` (sum over the
        epoch's minibatches of ``log p(y_b | X_b, w)`` under the step's single draw ``w ~ q``
        *before* the step: a one-sample estimate of the online code length).
    bound_curve_ : ndarray of shape (n_epochs,)
        ELBO (nats, whole training set) after each epoch; NaN for a singular ``'lowrank'`` family.
    bound_ : float
        The final bound; ``score(X_train, y_train) == bound_ / n_samples``.
    n_epochs_ : int
    input_mean_, input_scale_ : ndarray of shape (n_features,) or None
        The standardisation of the inputs; ``None`` with ``standardize_inputs=False``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, if X had string column names"""

_NOTES_DOC = """
    Notes
    -----
    The default is the paper's configuration (low rank 10 on the input and output layers, μP)
    with a diagonal added to the covariance, so that the KL to the prior, hence the bound, is
    finite. In a quick measurement on digits (64-256-256-10 and 64-100-10, 100 epochs, 3 seeds)
    it had the best or equal test NLL and ECE under Gaussian-noise corruption of the families
    with a finite bound ('diagonal' on all or on input and output layers, 'diag+lowrank' on all,
    which is also 2-3× slower), and the same on clean data. The paper's own configuration is one
    argument away::

        IBVIClassifier(covariance='lowrank')   # rank=10, variational_layers='input_output', μP

    It has no finite bound (``score`` raises); ``bound_curve_`` is then NaN, and the per-epoch
    pass over the data for it is skipped (except by a regressor that learns its noise). ``variational_layers='all'`` with
    ``covariance='diagonal'`` bounds the whole model rather than conditionally on the point
    estimate hidden layers.

    The bound is ``E_q[log p(y | X, w)] − KL(q ‖ p)``, ``p`` the initial variational distribution,
    with the KL in closed form (O(P R²) by the Woodbury identity and the determinant lemma). Point
    estimate layers make it a bound conditional on their values. It is loose: training is not
    regularised by the KL, which grows with every epoch (on digits, faster than the expected
    log-likelihood improves, so the bound peaks at the first epoch).

    Standardise the inputs: the prior's weight noise enters each unit scaled by the size of its
    input, and on unscaled data (e.g. iris in centimetres) the expected loss is minimised by
    switching the noisy units off. This collapse to an input-independent prediction, also caused
    by too large a learning rate, does not make the loss diverge: a
    :class:`~sklearn.exceptions.ConvergenceWarning` reports it after training when the training
    loss is no better than a constant prediction's or at least half of the first layer's ReLU
    units are dead."""

_REFERENCES_DOC = """
    References
    ----------
    .. [1] A. Coker, J. Wenger, I. Marusic and J. P. Cunningham. "Variational Deep Learning via
       Implicit Regularization". ICLR 2026, arXiv:2505.20235.
    .. [2] G. Yang and E. J. Hu. "Tensor Programs IV: Feature Learning in Infinite-Width Neural
       Networks". ICML 2021."""


class IBVIRegressor(BayesianRegressorMixin, _IBVIEstimator):
    __doc__ = f"""Variational MLP regressor regularised by SGD's implicit bias (IBVI); ``score`` is its ELBO,
    a lower bound on the log marginal likelihood per training sample.

    Gaussian weights, initialised at the prior, are trained by SGD with momentum on the expected
    Gaussian negative log-likelihood of standardised targets, with no KL term. ``predict`` averages
    ``n_predict_samples`` weight draws; ``predict(X, return_std=True)`` adds their spread to the
    observation noise. ``score`` is the ELBO per sample, including every normalising constant and
    the Jacobian of the target standardisation.

    Parameters
    ----------{_parameters_doc(0.02, _REGRESSOR_LR_NOTE)}
    noise_std : 'auto' or float, default='auto'
        Observation noise std in units of ``std(y)``. ``'auto'`` learns it after every epoch as
        the value that maximises the ELBO, ``σ² = E_q[mean squared training residual]``, so
        ``score`` bounds the evidence of that σ-optimised model. See :ref:`regression_uncertainty`.

    Attributes
    ----------{_SHARED_ATTRIBUTES_DOC}
    noise_std_ : float
        The observation noise in force, in units of ``y``: learned, or ``noise_std · std(y)``.
        History column ``noise_std`` holds it after every epoch, and each epoch's ``bound`` is
        evaluated at that epoch's value.
    target_mean_, target_scale_ : float
        Standardisation of ``y``.

    See Also
    --------
    IBVIClassifier : The classifier.
    EntropySGDRegressor : Implicit posterior of plain SGD, with an entropy-tracked bound.
    sklearn.neural_network.MLPRegressor : The point-estimate network.
    {_NOTES_DOC}
    {_REFERENCES_DOC}

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ibvi import IBVIRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), IBVIRegressor(
    ...     hidden_layer_sizes=(32,), max_epochs=10, random_state=0)).fit(X, y)
    >>> bound_per_sample = model.score(X, y)
    >>> mean, std = model.predict(X[:3], return_std=True)
    >>> std.shape
    (3,)
    """

    _parameter_constraints = {
        **_IBVIEstimator._parameter_constraints,
        "noise_std": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        covariance="diag+lowrank",
        rank=10,
        variational_layers="input_output",
        parametrization="mup",
        prior_scale=1.0,
        lr=0.02,
        momentum=0.9,
        batch_size=128,
        max_epochs=100,
        n_predict_samples=32,
        n_bound_samples=1,
        noise_std="auto",
        callbacks=None,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        standardize_inputs=True,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.covariance = covariance
        self.rank = rank
        self.variational_layers = variational_layers
        self.parametrization = parametrization
        self.prior_scale = prior_scale
        self.lr = lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.n_predict_samples = n_predict_samples
        self.n_bound_samples = n_bound_samples
        self.noise_std = noise_std
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.standardize_inputs = standardize_inputs


class IBVIClassifier(BayesianClassifierMixin, _IBVIEstimator):
    __doc__ = f"""Variational MLP classifier regularised by SGD's implicit bias (IBVI); ``score`` is its ELBO,
    a lower bound on the log marginal likelihood per training sample.

    Gaussian weights, initialised at the prior, are trained by SGD with momentum on the expected
    softmax cross-entropy, with no KL term. ``predict_proba`` is the average of the class
    probabilities of ``n_predict_samples`` weight draws; ``score`` is the ELBO per sample.

    Parameters
    ----------{_parameters_doc(0.05, _CLASSIFIER_LR_NOTE)}

    Attributes
    ----------{_SHARED_ATTRIBUTES_DOC}
    classes_ : ndarray of shape (n_classes,)

    See Also
    --------
    IBVIRegressor : The regressor.
    EntropySGDClassifier : Implicit posterior of plain SGD, with an entropy-tracked bound.
    sklearn.neural_network.MLPClassifier : The point-estimate network.
    {_NOTES_DOC}
    {_REFERENCES_DOC}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ibvi import IBVIClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), IBVIClassifier(
    ...     hidden_layer_sizes=(16,), max_epochs=20, random_state=0)).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    >>> bound_per_sample = clf.score(X, y)

    The paper's configuration (no finite bound):

    >>> paper = make_pipeline(StandardScaler(), IBVIClassifier(
    ...     covariance='lowrank', hidden_layer_sizes=(16,), max_epochs=20, random_state=0)).fit(X, y)
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        covariance="diag+lowrank",
        rank=10,
        variational_layers="input_output",
        parametrization="mup",
        prior_scale=1.0,
        lr=0.05,
        momentum=0.9,
        batch_size=128,
        max_epochs=100,
        n_predict_samples=32,
        n_bound_samples=1,
        callbacks=None,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        standardize_inputs=True,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.covariance = covariance
        self.rank = rank
        self.variational_layers = variational_layers
        self.parametrization = parametrization
        self.prior_scale = prior_scale
        self.lr = lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.n_predict_samples = n_predict_samples
        self.n_bound_samples = n_bound_samples
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.standardize_inputs = standardize_inputs
