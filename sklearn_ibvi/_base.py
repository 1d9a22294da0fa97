"""Estimator plumbing shared by every sklearn_ibvi estimator.

One validation path, one seeding rule, one device rule, one place that turns network outputs
into ``predict``/``predict_proba``, and ``score = bound / n``. A method family supplies only:

- ``_build_net(n_samples, n_features, n_outputs, likelihood, device)`` → an uninitialised skorch net;
- ``_sample_outputs(X)`` → network outputs of shape ``(S, n, n_outputs)`` (chains or weight draws);
- ``_log_marginal_likelihood_bound(X, y)`` → its bound (nats, whole data set).
"""

import copy
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .likelihoods import categorical_log_likelihood, gaussian_log_likelihood

PREDICT_BATCH_SIZE = 4096


def hidden_layer_sizes(value):
    """Validated ``hidden_layer_sizes`` as a tuple of positive ints (an int means one layer)."""
    sizes = (value,) if isinstance(value, Integral) else tuple(value)
    if not all(isinstance(h, Integral) and h >= 1 for h in sizes):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {value!r}.")
    return tuple(int(h) for h in sizes)


def resolve_device(device):
    """``'auto'`` → ``'cuda'`` when available, else ``'cpu'``; anything else is passed through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextmanager
def seeded_torch(seed, device):
    """Run torch code with ``manual_seed(seed)`` and leave the global RNG state untouched."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def unchanged_on_failure(estimator):
    """If the block raises, restore every attribute of ``estimator``: a failed refit loses nothing."""
    saved = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


class BayesianNetEstimator(BaseEstimator):
    """Base of the estimators: fit, validation, seeding, device and the bound as ``score``."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions({"relu", "tanh", "logistic", "identity"})],
        "prior_scale": [Interval(Real, 0, None, closed="neither")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train the network from a prior draw and track its bound.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
            The fitted estimator. If training fails (e.g. the loss diverges), the exception
            propagates and the estimator is left exactly as it was before the call.
        """
        return self._train(X, y, continuing=self.warm_start and hasattr(self, "net_"), epochs=None)

    def partial_fit(self, X, y):
        """Train for one more epoch, continuing the weights and the bound's bookkeeping.

        The first call on an unfitted estimator starts from a prior draw. Continuing keeps the
        random stream, so ``k`` calls give the same fit and bound as one ``fit`` of ``k`` epochs
        with the same ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        return self._train(X, y, continuing=hasattr(self, "net_"), epochs=1)

    def _train(self, X, y, continuing, epochs, classes=None):
        self._validate_params()
        hidden_layer_sizes(self.hidden_layer_sizes)
        with unchanged_on_failure(self):
            X, y = validate_data(self, X, y, dtype=np.float32, reset=not continuing)
            y = self._encode_fit_targets(y, reset=not continuing, classes=classes)
            self._fit_net(X, y, continuing, epochs)
        return self

    def _fit_net(self, X, y, continuing, epochs):
        device = resolve_device(self.device)
        if continuing:
            net = copy.deepcopy(self.net_)
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(net.rng_state_)
                net.partial_fit(X, y, epochs=epochs)
                net.rng_state_ = torch.get_rng_state()
        else:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            with seeded_torch(seed, device):
                net = self._build_net(len(X), X.shape[1], self._n_outputs, self._likelihood, device)
                net.fit(X, y, epochs=epochs)
                net.rng_state_ = torch.get_rng_state()
        self.net_ = net
        self._record_fit_summary()

    def _record_fit_summary(self):
        """Expose the training record as fitted attributes (``bound_curve_``, ``bound_``...)."""
        self.history_ = self.net_.history
        self.bound_curve_ = np.asarray(self.net_.history[:, "bound"], dtype=float)
        self.bound_ = float(self.bound_curve_[-1]) if len(self.bound_curve_) else float("nan")
        self.n_epochs_ = len(self.net_.history)

    # -- prediction ----------------------------------------------------------------------------

    def _validated_input(self, X):
        check_is_fitted(self, "net_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return torch.as_tensor(X)

    def score(self, X, y):
        """Bound on the log marginal likelihood per sample (nats/sample), with ``X, y`` as data.

        Called on the training data this is ``bound_ / n_samples``, the quantity that model
        selection maximises (see :mod:`sklearn_ibvi.model_selection`). On other data it re-evaluates
        only the likelihood term; it is then not a bound on those data's evidence.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        score : float
        """
        X = self._validated_input(X)
        y = torch.as_tensor(self._encode_score_targets(y, len(X)))
        return float(self._log_marginal_likelihood_bound(X, y)) / len(X)

    def _outputs_in_batches(self, module, X, **forward_kwargs):
        """``module(batch, **forward_kwargs)`` of shape ``(S, b, ...)``, concatenated over row batches.

        On the CPU the forward runs in float64 (parameters cast, not copied into a new module), so
        predictions do not depend on how rows are batched — float32 BLAS results do, at the 1e-7
        level. On CUDA it runs in the training precision, float32.
        """
        device = next(module.parameters()).device
        dtype = torch.float64 if device.type == "cpu" else torch.float32
        state = {name: t.to(dtype) if t.is_floating_point() else t for name, t in module.state_dict().items()}
        module.eval()
        with torch.no_grad():
            parts = [
                torch.func.functional_call(
                    module, state, (X[i : i + PREDICT_BATCH_SIZE].to(device, dtype),), forward_kwargs
                )
                for i in range(0, len(X), PREDICT_BATCH_SIZE)
            ]
        return torch.cat(parts, dim=1).cpu()

    def _batch_size_for(self, n_samples):
        return min(200, n_samples) if self.batch_size == "auto" else min(self.batch_size, n_samples)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class BayesianRegressorMixin(RegressorMixin):
    """Gaussian likelihood on standardised targets; ``predict(X, return_std=False)``."""

    _likelihood = "gaussian"
    _n_outputs = 1
    score = BayesianNetEstimator.score

    def _encode_fit_targets(self, y, reset, classes=None):
        y = column_or_1d(y, warn=True).astype(np.float64)
        if reset:
            self.target_mean_ = float(y.mean())
            scale = float(y.std())
            self.target_scale_ = scale if scale > 0 else 1.0
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _encode_score_targets(self, y, n_samples):
        y = column_or_1d(np.asarray(y, dtype=np.float64))
        if len(y) != n_samples:
            raise ValueError(f"X has {n_samples} samples but y has {len(y)}.")
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _log_likelihood(self, outputs, y):
        """Per-sample log-likelihood ``(S, n)`` of original-scale targets (Jacobian included)."""
        return gaussian_log_likelihood(outputs, y, self.noise_std, self.target_scale_)

    def predict(self, X, return_std=False):
        """Predictive mean (and standard deviation) of the target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the predictive standard deviation: observation noise ``noise_std`` plus
            the spread of the posterior samples (chains or weight draws), in target units.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,), only if ``return_std``
        """
        outputs = self._sample_outputs(self._validated_input(X)).squeeze(-1).double()
        mean = outputs.mean(0)
        y_mean = (mean * self.target_scale_ + self.target_mean_).numpy()
        if not return_std:
            return y_mean
        spread = outputs.var(0, unbiased=False)
        y_std = (torch.sqrt(spread + self.noise_std**2) * self.target_scale_).numpy()
        return y_mean, y_std


class BayesianClassifierMixin(ClassifierMixin):
    """Categorical likelihood; ``predict`` returns labels from ``classes_``."""

    _likelihood = "categorical"
    score = BayesianNetEstimator.score

    @property
    def _n_outputs(self):
        return len(self.classes_)

    def partial_fit(self, X, y, classes=None):
        """Train for one more epoch, continuing the weights and the bound's bookkeeping.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            All the classes, needed on the first call when a batch may lack some of them.

        Returns
        -------
        self : object
        """
        return self._train(X, y, continuing=hasattr(self, "net_"), epochs=1, classes=classes)

    def _encode_fit_targets(self, y, reset, classes=None):
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if reset:
            self.classes_ = np.unique(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contain only one class: {self.classes_[0]!r}."
                )
        return self._encode_score_targets(y, len(y))

    def _encode_score_targets(self, y, n_samples):
        y = column_or_1d(y)
        if len(y) != n_samples:
            raise ValueError(f"X has {n_samples} samples but y has {len(y)}.")
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not seen during fit: {np.unique(y[unknown])[:10]!r}; "
                f"known classes are {self.classes_!r}."
            )
        return index.astype(np.int64)

    def _log_likelihood(self, outputs, y):
        return categorical_log_likelihood(outputs, y)

    def predict_proba(self, X):
        """Class probabilities averaged over posterior samples (chains or weight draws).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        outputs = self._sample_outputs(self._validated_input(X))
        proba = torch.softmax(outputs.double(), dim=-1).mean(0).numpy()
        return proba / proba.sum(1, keepdims=True)

    def predict(self, X):
        """Most probable class under the model-averaged probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
