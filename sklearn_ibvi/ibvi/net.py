"""Implicit-bias variational inference (IBVI; Coker, Wenger, Marusic & Cunningham, 2025).

Some layers of an MLP carry a Gaussian distribution over their weights,
``q = N(μ, Σ)`` (:mod:`sklearn_ibvi.networks.variational`), initialised *at the prior*
``p = q₀``. Training minimises the expected loss only,

    E_q[−log p(y | X, w)],     one weight sample per minibatch, SGD with momentum,

with no KL term: the implicit bias of SGD keeps the prior's uncertainty in the directions the data
do not constrain. What is reported is the evidence lower bound of the trained ``q``,

    bound = E_q[log p(y | X, w)] − KL(q ‖ p),

the expectation by Monte Carlo over a fixed set of weight draws (common random numbers, so the
per-epoch curve is smooth) and, on large training sets, over a fixed random subset of the rows
(:mod:`sklearn_ibvi.math.subsampling`), the KL in closed form. Point-estimate layers make the bound
conditional on them; with ``variational_layers='all'`` it bounds the whole model's evidence.
"""

import math

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ..core.batches import HostRows
from ..core.estimator import PREDICT_BATCH_SIZE
from ..core.net import BoundTrackingNet
from ..exceptions import warn_at_caller
from ..math.subsampling import row_subset, subsampled_total
from ..networks.conversion import VariationalNetwork
from ..networks.variational import VariationalLinear, WeightSamples

#: Epochs before a fit no better than a constant prediction is reported as collapsed.
COLLAPSE_CHECK_MIN_EPOCHS = 5
#: Dead first-layer ReLU units above which training is reported as collapsed. Measured on digits
#: (64-256-256-10, 100 epochs): 1-18 % dead in healthy runs, 64-98 % where lr 0.15 collapsed.
DEAD_UNITS_WARNING_FRACTION = 0.5
#: Nats/sample by which the mean-weight network must beat the constant prediction.
COLLAPSE_LOSS_TOLERANCE = 1e-3


class IBVINetwork(VariationalNetwork):
    """:class:`~sklearn_ibvi.networks.conversion.VariationalNetwork` whose weight draws can be pinned by a seed.

    ``forward(x, n_samples, seed)`` with a seed draws the same weights on every call, whatever the
    rows of ``x`` and whatever the device: the noise comes from a CPU generator of that seed (see
    :meth:`~sklearn_ibvi.math.gaussian.Gaussian.sample`), so predictions and the bound do not
    depend on how the rows are batched nor on where the model runs, and the global RNG is left
    untouched. Without a seed (training) the global RNG of the device draws, on the device.
    """

    def forward(self, x, n_samples=1, seed=None, samples=None):
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return super().forward(x, n_samples, generator, samples)

    def pinned_samples(self, n_samples, seed):
        """The weights ``forward(x, n_samples, seed)`` draws, for ``forward(x, samples=...)``.

        Computed once in float64 on the CPU, in antithetic pairs ``μ ± (S z + d ⊙ ε)`` with the
        seeded noise (:meth:`~sklearn_ibvi.math.gaussian.Gaussian.antithetic_sample_float64`: the
        predictive average of ``S`` paired draws is closer to its limit than that of ``S``
        independent ones), then rounded to the network's dtype and moved to its device: the
        same float32 weights on every device, and a call that predicts many batches of rows
        draws them only once.
        """
        reference = next(self.parameters())
        generator = torch.Generator().manual_seed(seed)
        samples = {}
        with torch.no_grad():
            for name, layer in self.variational.items():
                weights = layer.variational_distribution().antithetic_sample_float64(n_samples, generator)
                weights = weights.reshape(n_samples, layer.out_features, -1)
                samples[name] = WeightSamples.from_matrices(
                    weights, layer.in_features, layer.has_bias, reference.dtype
                ).to(reference.device)
        return samples


class IBVINet(BoundTrackingNet):
    """skorch net that trains a variational MLP on the expected loss and records its ELBO.

    Parameters
    ----------
    n_bound_samples : int
        Weight draws of the Monte-Carlo expected log-likelihood in the end-of-epoch bound. The
        draws are the same at every epoch (seed ``sample_seed_``), so the curve is smooth. 0 skips
        the end-of-epoch bound (its columns are NaN); :meth:`evidence_lower_bound` then uses one.
    bound_rows : int or None
        Training rows the end-of-epoch bound is evaluated on: with more rows than this, a fixed
        uniform subset of this many (drawn from ``sample_seed_``) whose sum, scaled by ``n / m``,
        estimates the expected log-likelihood without bias
        (:func:`~sklearn_ibvi.math.subsampling.subsampled_total`); ``None`` uses every row.

    Attributes
    ----------
    sample_seed_ : int
        Seed of the weight draws used by the bound and by predictions, drawn once at
        initialisation from the (seeded) torch RNG.

    Notes
    -----
    The optimizer gets the parametrization's parameter groups
    (:meth:`~sklearn_ibvi.networks.conversion.VariationalNetwork.param_groups`): group ``i`` steps with
    ``lr × lr_multiplier_i``.
    """

    def __init__(self, *args, n_bound_samples=1, bound_rows=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_bound_samples = n_bound_samples
        self.bound_rows = bound_rows

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
        """``log p(y_i | x_i, w_s)`` of every row under ``n_samples`` fixed draws ``w_s ~ q``, at the
        criterion's noise.

        Returns a float64 CPU tensor of shape (n_samples, n_rows). Every row batch sees the same draws.
        """
        module = self.module_
        module.eval()
        parts = []
        with torch.no_grad():
            # The draws of forward(x, n_samples, seed=sample_seed_), drawn once for all row batches
            # and applied as stored samples (one GEMM with the bias, no per-batch concatenation).
            samples = module.sample_weights(n_samples, torch.Generator().manual_seed(self.sample_seed_))
            for start in range(0, len(X), PREDICT_BATCH_SIZE):
                rows = slice(start, start + PREDICT_BATCH_SIZE)
                parts.append(-self.criterion_(module(X[rows], samples=samples), y[rows]).double())
        return torch.cat(parts, dim=1).cpu()  # one transfer from the device

    def kl_divergence(self):
        """Closed-form ``KL(q ‖ p)`` summed over the variational layers (float; ``inf`` if singular).

        During a fit the prior's factorisation is the one computed when training began.
        """
        with torch.no_grad():
            return float(self.module_.kl_divergence(getattr(self, "_prior_precisions", None)))

    def evidence_lower_bound(self, X, y, refit_noise=False, n_rows=None):
        """``E_q[log p(y | X, w)] − KL(q ‖ p)`` and its parts, as a dict of floats (nats).

        Keys: ``expected_log_likelihood`` (Monte-Carlo mean over ``max(n_bound_samples, 1)``
        draws), ``bound_se`` (its standard error over the draws, NaN with one draw),
        ``likelihood_subsampling_se``, ``kl_divergence`` and ``bound`` (NaN when the KL is
        infinite). With ``refit_noise`` a learned noise is first set to the maximiser of the
        expected log-likelihood (``σ² = E_q[mean residual²]`` for Gaussian noise).

        With ``n_rows`` larger than ``len(X)``, ``X, y`` are a uniform subset of ``n_rows`` rows,
        the expected log-likelihood is the unbiased estimate of theirs
        (:func:`~sklearn_ibvi.math.subsampling.subsampled_total`) and
        ``likelihood_subsampling_se`` the standard error the subset adds (0 for all rows).
        """
        kl = self.kl_divergence()
        if not math.isfinite(kl) and not (refit_noise and self.refits_noise):  # no bound: spare the pass
            nan = float("nan")
            return {"expected_log_likelihood": nan, "kl_divergence": kl, "bound": nan, "bound_se": nan,
                    "likelihood_subsampling_se": nan}  # fmt: skip
        log_lik = self.sampled_log_likelihood(X, y, max(self.n_bound_samples, 1))
        log_lik = self.observed_log_likelihood(log_lik, refit_noise=refit_noise)
        totals, subsampling_se = subsampled_total(log_lik, len(X) if n_rows is None else n_rows)
        expected_log_likelihood = float(totals.mean())
        n = len(totals)
        se = float(totals.std() / math.sqrt(n)) if n > 1 else float("nan")
        bound = expected_log_likelihood - kl if math.isfinite(kl) else float("nan")
        return {
            "expected_log_likelihood": expected_log_likelihood,
            "kl_divergence": kl,
            "bound": bound,
            "bound_se": se,
            "likelihood_subsampling_se": subsampling_se,
        }

    def bound_subset(self, X, y):
        """The rows the end-of-epoch bound is evaluated on: all of ``X, y``, or the fixed subset of
        ``bound_rows`` of them (the same rows at every epoch of a training set of this size)."""
        index = None if self.bound_rows is None else row_subset(len(X), self.bound_rows, self.sample_seed_)
        if index is None:
            return X, y
        return X[index if isinstance(X, HostRows) else index.to(X.device)], y[index.to(y.device)]

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        data = self._train_batches
        X, y = self.bound_subset(data.X, data.y)
        if self.n_bound_samples == 0:
            columns = ("expected_log_likelihood", "kl_divergence", "bound", "bound_se", "likelihood_subsampling_se")
            parts = dict.fromkeys(columns, float("nan"))
            if self.refits_noise:
                # Predictions need the noise even where the bound is not tracked: one draw.
                self.observed_log_likelihood(self.sampled_log_likelihood(X, y, 1), refit_noise=True)
        else:
            parts = self.evidence_lower_bound(X, y, refit_noise=True, n_rows=len(data.X))
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
        """Fraction of first-layer ReLU units inactive (≤ 0) on every row under the mean weights
        (NaN unless the network is the built-in ReLU MLP)."""
        first = self.module_.relu_units_after_input_layer()
        if first is None:
            return float("nan")
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
        # The prior is fixed while training: its Σ⁻¹ pieces serve the KL of every epoch's bound.
        self._prior_precisions = self.module_.prior_precisions() if self.n_bound_samples else None

    def on_train_end(self, net, **kwargs):
        """Warn when training has collapsed to an input-independent prediction (NaN-free failure)."""
        try:
            self._warn_if_collapsed()
        finally:
            self._prior_precisions = None  # float64, as large as the factors: not kept with the model
            super().on_train_end(net, **kwargs)  # releases the training rows

    def _warn_if_collapsed(self):
        """Checked after ``COLLAPSE_CHECK_MIN_EPOCHS`` epochs and at the end of training, on the
        bound's rows (:meth:`bound_subset`); warns once a fit."""
        if len(self.history) < COLLAPSE_CHECK_MIN_EPOCHS or getattr(self, "_warned_collapse", False):
            return
        # On the bound's rows: a fit continued one epoch at a time (BoundEarlyStopping) is checked
        # at the end of every epoch, which must not cost passes over a large training set.
        X, y = self.bound_subset(self._train_batches.X, self._train_batches.y)
        # The mean-weight network, not the noisy one-sample training loss: early on, or with a
        # wide prior, the weight noise alone can make the latter worse than a constant.
        loss = self.mean_weights_loss(X, y)
        baseline = self.constant_predictor_loss(y)
        dead = self.dead_unit_fraction(X)
        no_better = loss >= baseline - COLLAPSE_LOSS_TOLERANCE
        if not (no_better or dead >= DEAD_UNITS_WARNING_FRACTION):
            return
        what = "is no better than" if no_better else "is"
        dead_note = "" if math.isnan(dead) else (
            f" {dead:.0%} of the first layer's ReLU units are dead (inactive on all {len(X)} training rows checked)."
        )
        self._warned_collapse = True
        warn_at_caller(
            f"After {len(self.history)} epochs the training loss of the mean weights ({loss:.4g} "
            f"nats/sample) {what} that of a constant prediction ({baseline:.4g}).{dead_note} The "
            "network has collapsed or has not started learning. Unscaled inputs (the prior's "
            "weight noise grows with the size of x: keep standardize_inputs='auto' or True) and too large a "
            f"learning rate kill ReLU units without diverging (try a smaller `lr`, currently "
            f"{self.lr:g}); too small a one needs more epochs.",
            ConvergenceWarning,
        )

