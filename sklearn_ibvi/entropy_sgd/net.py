"""Entropy-tracking SGD (Duvenaud, Maclaurin & Adams 2016): early stopping as variational inference.

SGD started from a draw ``θ₀ ~ p(θ)`` defines an implicit distribution ``q_t`` of ``θ_t``. Its entropy
changes at every step by ``log|det(I − α_t H_t)|`` (:mod:`sklearn_ibvi.math.entropy`), so one run gives an
unbiased one-sample estimate of the evidence lower bound of ``q_t``:

    L_t = log p(y | X, θ_t) + log p(θ_t) + S_t,    S_t = S₀ + Σ_{s<t} log|det(I − α_s H_s)|.

With ``control_variate=True`` the estimate subtracts ``log p(θ₀) + S₀``, whose expectation over the
prior draw is exactly zero (``E[log p(θ₀)] = −S₀``): the mean is unchanged and most of the
``√(D/2)``-nat spread of a single chain disappears.
"""

import math

import torch

from ..core.estimator import PREDICT_BATCH_SIZE
from ..math.entropy import (
    QUADRATIC_BOUND_MAX_EIGENVALUE,
    dominant_eigenvalue,
    exact_entropy_change,
    gaussian_entropy,
    log_prior,
    stochastic_entropy_change,
    subsampled_entropy_change,
    warp_gradient,
    warped_stochastic_entropy_change,
)
from ..core.net import BoundTrackingNet
from ..exceptions import BoundValidityWarning, warn_at_caller

#: ``entropy='exact'`` forms the full Hessian (D² memory, D HVPs per step): refuse beyond this.
MAX_EXACT_PARAMETERS = 5000
#: A step whose warm-started estimate of ``α λ_max`` reaches this level is refined by
#: ``CURVATURE_REFINEMENT_ITERATIONS`` more power iterations on its own Hessian. One iteration
#: per step lags the minibatch Hessians (its estimate fell to 0.76 of the true value at a run's
#: largest step against dense Hessians, tests/test_entropy_sgd.py); refined, it was found within
#: 3 % in most runs measured and within 20 % in all, and every run beyond 0.68 was flagged.
CURVATURE_REFINEMENT_LEVEL = 0.45
CURVATURE_REFINEMENT_ITERATIONS = 4
#: With ``probe_fraction < 1`` a skipped step's change is predicted by the mean of the chain's
#: earlier estimates: a running mean over its first probed steps, then exponentially weighted
#: with this weight, so that the prediction follows the curvature as training changes it.
CHANGE_PREDICTION_WEIGHT = 0.25


def _rademacher_like(tensor, generator):
    """±1 entries shaped like ``tensor``: the bits of 32-bit words drawn on the CPU from ``generator``.

    One draw per 32 entries, unpacked on ``tensor``'s device: the same signs on every device, at a
    32nd of the CPU draws and of the host-to-device copy that one draw per entry needs.
    """
    n = tensor.numel()
    words = torch.randint(0, 2**32, ((n + 31) // 32,), generator=generator, dtype=torch.int64)
    shifts = torch.arange(32, device=tensor.device)
    bits = (words.to(tensor.device)[:, None] >> shifts) & 1
    return bits.flatten()[:n].reshape(tensor.shape).to(tensor.dtype).mul_(2).sub_(1)


class EntropySGDNet(BoundTrackingNet):
    """skorch net whose training step is plain SGD with entropy bookkeeping.

    The state of the bound lives on the net (``entropy_``, ``initial_log_density_``) beside the
    module, so that restoring a snapshot of the net restores the bound of that snapshot too.

    Parameters
    ----------
    entropy : {'stochastic', 'exact'} or None
    n_probes : int
        Rademacher probes (Hessian-vector products) per step for ``'stochastic'``.
    probe_fraction : float
        Probability ``ρ`` that a step's entropy change is estimated. A skipped step adds the
        prediction ``π`` of its change (the running mean of the chain's earlier estimates), a
        probed one ``π + (ĉ − π)/ρ``: the running entropy stays unbiased
        (:func:`~sklearn_ibvi.math.entropy.subsampled_entropy_change`).
    grad_threshold : float
        ``g₀`` of entropy-friendly SGD; 0 for plain SGD.
    control_variate : bool
    n_power_iterations : int
        Power iterations per step monitoring ``α λ_max``, warm-started from the previous step's
        vector (0 disables the check). ``entropy='exact'`` reads ``λ_max`` off its Hessian instead.
    """

    def __init__(
        self,
        *args,
        entropy="stochastic",
        n_probes=1,
        probe_fraction=1.0,
        grad_threshold=0.0,
        control_variate=True,
        n_power_iterations=1,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.entropy = entropy
        self.n_probes = n_probes
        self.probe_fraction = probe_fraction
        self.grad_threshold = grad_threshold
        self.control_variate = control_variate
        self.n_power_iterations = n_power_iterations

    def initialize_module(self):
        super().initialize_module()
        module = self.module_
        if self.entropy == "exact" and module.n_parameters > MAX_EXACT_PARAMETERS:
            raise ValueError(
                f"entropy='exact' forms the full {module.n_parameters}×{module.n_parameters} Hessian at "
                f"every step; it is limited to {MAX_EXACT_PARAMETERS} parameters. Use "
                "entropy='stochastic' for this network."
            )
        # skorch moves the module to the training device after this method; the bookkeeping is
        # put there at once, so that the running sums need no copy to the host at every step.
        device = module.flat().device if self.device is None else torch.device(self.device)
        with torch.no_grad():
            # S₀ and log p(θ₀): the start of the entropy bookkeeping and the control variate.
            self.initial_entropy_ = gaussian_entropy(module.prior_std)
            self.initial_log_density_ = log_prior(module.flat(), module.prior_std).to(device)
        self.entropy_ = torch.full((module.n_chains,), self.initial_entropy_, dtype=torch.float64, device=device)
        # Unbiased estimate of the variance that skipping steps (probe_fraction < 1) adds.
        self.entropy_subsampling_var_ = torch.zeros(module.n_chains, dtype=torch.float64, device=device)
        # The prediction of a skipped step's change, and the probed steps it averages, per chain.
        self.entropy_change_prediction_ = torch.zeros(module.n_chains, dtype=torch.float64, device=device)
        self.n_probed_steps_ = torch.zeros(module.n_chains, dtype=torch.int64, device=device)
        self._eigenvector = None
        self._warned_validity = False
        # Steps taken by this net over all its fits: the validity warning names the step.
        self.n_steps_ = 0
        # The bookkeeping's random draws (probes, probed steps, the power iteration's start) come
        # from a generator of their own, seeded from the fit's stream whether or not the entropy
        # is tracked: a fit with entropy=None follows the same SGD path (initial weights and
        # minibatches) as the tracked fit, so the search's untracked fold and prefix fits and
        # the tracked refit share it. It lives on the net, so continued fits continue it.
        self.bookkeeping_generator_ = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        return self

    def on_epoch_begin(self, net, **kwargs):
        super().on_epoch_begin(net, **kwargs)
        self._prequential = torch.zeros((), dtype=torch.float64, device=self.entropy_.device)
        # α λ_max of every step of the epoch, kept on the device until the epoch ends.
        self._step_curvatures = []
        self._first_step_of_epoch = self.n_steps_

    # -- one step ------------------------------------------------------------------------------

    def train_step(self, batch, **fit_params):
        X, y = batch
        module = self.module_
        module.train()
        params = list(module.parameters())
        per_sample_nll = self.criterion_(module(X), y)
        # Each chain follows the gradient of its own mean minibatch loss: `lr` in the familiar
        # mean-loss units is α = lr / N on the summed full-data NLL, the α of the Jacobian.
        loss = per_sample_nll.mean(1).sum()
        if not torch.isfinite(loss):
            raise self.diverged("training loss")
        probed_chains = None
        if self.entropy == "stochastic" and self.probe_fraction < 1:
            # independent decisions per chain, so that averaging chains averages this noise too
            probed_chains = torch.rand(module.n_chains, generator=self.bookkeeping_generator_) < self.probe_fraction
        probe = self.entropy == "stochastic" and (probed_chains is None or bool(probed_chains.any()))
        monitor = self.entropy == "stochastic" and self.n_power_iterations > 0
        track = probe or monitor
        grads = torch.autograd.grad(loss, params, create_graph=track)
        lr = self._lr()
        if self.grad_threshold > 0:
            # g₀ is in the units of `lr` (the mean-loss gradient, half the squared error for
            # regression); the gradient here is of the NLL, step_scale times smaller.
            threshold = self.grad_threshold / self.criterion_.step_scale
            warped = [warp_gradient(g.detach(), threshold) for g in grads]
            step = [w for w, _ in warped]
            sqrt_factor = module.flat([f.sqrt() for _, f in warped])
        else:
            step, sqrt_factor = [g.detach() for g in grads], None

        def hvp(flat_vector, retain=True):
            # H v as the gradient of the scalar gᵀv: passing v as grad_outputs instead makes torch
            # import its symbolic-shape machinery (sympy, ~0.4 s) on a process's first fit.
            directional = sum((g * v).sum() for g, v in zip(grads, module.unflat(flat_vector)))
            return module.flat(torch.autograd.grad(directional, params, retain_graph=retain))

        if monitor:
            self._step_curvatures.append(self._power_iteration_curvature(hvp, sqrt_factor, lr))
        change = None
        if probe:
            change = self._stochastic_change(hvp, sqrt_factor, lr, params).detach().double()
        elif self.entropy == "exact":
            change = self._exact_change(X, y, sqrt_factor, lr)
        if probed_chains is not None:
            change = self._subsampled_change(change, probed_chains.to(self.entropy_.device))

        with torch.no_grad():
            torch._foreach_add_(params, step, alpha=-lr)
            # Prequential code length: log p(batch | θ before the step), chains as a mixture.
            log_lik = -per_sample_nll.detach().double()
            mixture = torch.logsumexp(log_lik, 0) - math.log(log_lik.shape[0])
            self._prequential += mixture.sum()
            if change is not None:
                self.entropy_ += change
        self.n_steps_ += 1
        return {"loss": loss.detach() / module.n_chains, "y_pred": None}

    def _lr(self):
        """The step ``α N`` on the mean minibatch NLL (``α`` on the summed full-data NLL)."""
        return self.optimizer_.param_groups[0]["lr"] * self.criterion_.step_scale

    def _subsampled_change(self, estimate, probed):
        """The change of a step whose chains were probed where ``probed`` (``estimate`` is None when
        none was), unbiased around the chains' predictions, which the probed chains then update."""
        prediction = self.entropy_change_prediction_
        if estimate is None:
            return prediction.clone()
        change, added_variance = subsampled_entropy_change(estimate, probed, prediction, self.probe_fraction)
        self.entropy_subsampling_var_ += added_variance
        self.n_probed_steps_ += probed
        weight = torch.clamp(1.0 / self.n_probed_steps_.clamp_min(1), min=CHANGE_PREDICTION_WEIGHT)
        self.entropy_change_prediction_ = torch.where(probed, prediction + weight * (estimate - prediction), prediction)
        return change

    def _stochastic_change(self, hvp, sqrt_factor, lr, params):
        module = self.module_
        flat_template = params[0].new_empty((module.n_chains, module.n_parameters))  # dtype, device, shape
        total = 0.0
        for i in range(self.n_probes):
            # One draw for the whole flat (chains, parameters) probe: a few device launches per
            # probe rather than a few per parameter tensor.
            probe = _rademacher_like(flat_template, self.bookkeeping_generator_)
            retain = i < self.n_probes - 1
            if sqrt_factor is None:
                total = total + stochastic_entropy_change(probe, hvp(probe, retain), lr)
            else:
                probe = sqrt_factor * probe
                total = total + warped_stochastic_entropy_change(probe, hvp(probe, retain), sqrt_factor, lr)
        return total / self.n_probes

    def _exact_change(self, X, y, sqrt_factor, lr):
        """Exact ``log|det(I − α D^½ H D^½)|`` per chain, at the weights *before* the step; records
        the step's exact ``α λ_max`` for the validity check."""
        hessians = self._chain_hessians(X, y)
        changes, curvatures = [], []
        for k, hessian in enumerate(hessians):
            if sqrt_factor is not None:
                root = sqrt_factor[k].double()
                hessian = root[:, None] * hessian * root[None, :]
            changes.append(exact_entropy_change(hessian, lr))
            curvatures.append(lr * float(torch.linalg.eigvalsh(hessian)[-1]))
        self._step_curvatures.append(torch.tensor(curvatures, dtype=torch.float64))
        return torch.tensor(changes, dtype=torch.float64, device=self.entropy_.device)

    def _chain_hessians(self, X, y):
        """Per-chain float64 Hessians of the mean minibatch loss (chains are independent blocks)."""
        module = self.module_
        flat = module.flat().detach().double()
        X64 = X.double()

        def chain_loss(theta):
            return self.criterion_(module.chain_output(X64, theta)[None], y).mean()

        # The Hessian of the sum over chains is block diagonal: one chain's block at a time, vmapped.
        return torch.func.vmap(torch.func.hessian(chain_loss))(flat)

    def _power_iteration_curvature(self, hvp, sqrt_factor, lr):
        """``α λ_max`` of this step's Jacobian, per chain, by power iteration on this step's Hessian.

        The vector is carried from step to step, so over a run the iteration never restarts: it
        follows the top eigenvector as the Hessian drifts, one Hessian-vector product per step.
        The Rayleigh quotient can only under-estimate ``λ_max``; how far it may lag is tested
        against dense Hessians (tests/test_entropy_sgd.py).
        """
        if self._eigenvector is None:
            flat = self.module_.flat().detach()
            start = torch.randn(flat.shape, generator=self.bookkeeping_generator_, dtype=flat.dtype)
            self._eigenvector = start.to(flat.device)

        def operator(v):
            if sqrt_factor is None:
                return hvp(v)
            return sqrt_factor * hvp(sqrt_factor * v)

        with torch.enable_grad():
            eigenvalue, vector = dominant_eigenvalue(operator, self._eigenvector, self.n_power_iterations)
            if bool((lr * eigenvalue >= CURVATURE_REFINEMENT_LEVEL).any()):
                # Near the limit, converge on this step's own Hessian before trusting the value.
                refined, vector = dominant_eigenvalue(operator, vector, CURVATURE_REFINEMENT_ITERATIONS)
                eigenvalue = torch.maximum(eigenvalue, refined)
        self._eigenvector = vector.detach()
        return (lr * eigenvalue).detach().double()

    # -- end of epoch: the bound ---------------------------------------------------------------

    def chain_log_likelihood(self, X, y):
        """``log p(y_i | x_i, θ_k)`` of every row under every chain at the criterion's noise, float64
        CPU tensor of shape (K, n_rows)."""
        module = self.module_
        module.eval()
        with torch.no_grad():
            parts = [
                -self.criterion_(module(X[start : start + PREDICT_BATCH_SIZE]), y[start : start + PREDICT_BATCH_SIZE])
                .double()
                for start in range(0, len(X), PREDICT_BATCH_SIZE)
            ]
        return torch.cat(parts, dim=1).cpu()  # one transfer from the device

    def chain_bound_offsets(self):
        """``log p(θ_k) + S_k`` (minus the control variate): the bound less its likelihood term."""
        module = self.module_
        with torch.no_grad():
            offsets = log_prior(module.flat(), module.prior_std) + self.entropy_
            if self.control_variate:
                offsets = offsets - (self.initial_log_density_ + self.initial_entropy_)
        return offsets.cpu()

    def on_epoch_end(self, net, **kwargs):
        super().on_epoch_end(net, **kwargs)
        data = self._train_batches
        log_lik = self.chain_log_likelihood(data.X, data.y)
        if not torch.all(torch.isfinite(log_lik)):
            raise self.diverged("log-likelihood")
        # Neither the path nor the entropy depends on the noise (α H does not): the bound's
        # optimum in the noise is the likelihood term's, given this epoch's weights.
        log_lik = self.observed_log_likelihood(log_lik, refit_noise=True).sum(-1)
        self.record_noise()
        with torch.no_grad():
            prior_term = log_prior(self.module_.flat(), self.module_.prior_std).cpu()
        history = self.history
        history.record("log_likelihood", float(log_lik.mean()))
        history.record("log_prior", float(prior_term.mean()))
        history.record("prequential_log_likelihood", float(self._prequential))
        curvatures = self._epoch_curvatures()
        history.record("step_curvature", float(curvatures.max()) if len(curvatures) else float("nan"))
        for batch, curvature in zip(history[-1]["batches"], curvatures.tolist()):
            batch["step_curvature"] = curvature
        if self.entropy is None:
            history.record("entropy", float("nan"))
            history.record("bound", float("nan"))
            history.record("bound_se", float("nan"))
            return
        bounds = log_lik + self.chain_bound_offsets()
        history.record("entropy", float(self.entropy_.mean()))
        history.record("bound", float(bounds.mean()))
        se = float(bounds.std() / math.sqrt(len(bounds))) if len(bounds) > 1 else float("nan")
        history.record("bound_se", se)
        subsampling_se = float(self.entropy_subsampling_var_.sum().sqrt() / len(bounds))
        history.record("entropy_subsampling_se", subsampling_se)
        self._warn_if_invalid(curvatures)

    def _epoch_curvatures(self):
        """``α λ_max`` of every step of the epoch (the largest over chains), float64 on the CPU."""
        if not self._step_curvatures:
            return torch.zeros(0, dtype=torch.float64)
        return torch.stack(self._step_curvatures).max(1).values.cpu()

    def _warn_if_invalid(self, curvatures):
        """Warn, once per fit, at the first step whose ``α λ_max`` leaves the bound's validity regime."""
        limit = QUADRATIC_BOUND_MAX_EIGENVALUE if self.entropy == "stochastic" else 1.0
        beyond = torch.nonzero(curvatures >= limit).flatten()
        if self._warned_validity or not len(beyond):
            return
        self._warned_validity = True
        first = int(beyond[0])
        what = (
            "the quadratic log-determinant bound behind entropy='stochastic' needs α·λ_max < 0.68"
            if self.entropy == "stochastic"
            else "the step map may not be invertible (α·λ_max ≥ 1), so the change-of-variables entropy is not guaranteed"
        )
        warn_at_caller(
            f"Step {self._first_step_of_epoch + first + 1} (epoch {len(self.history)}): the step size "
            f"times the largest Hessian eigenvalue is {float(curvatures[first]):.3g} ({len(beyond)} of "
            f"this epoch's {len(curvatures)} steps at or above {limit:g}, the largest "
            f"{float(curvatures.max()):.3g}); {what}. The reported bound is not a valid bound from "
            f"here on (history column 'step_curvature' has each epoch's largest value). Lower `lr` "
            f"(currently {self.lr:g}).",
            BoundValidityWarning,
        )

