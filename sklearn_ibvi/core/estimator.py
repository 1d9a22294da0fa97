"""Estimator plumbing shared by every sklearn_ibvi estimator.

One validation path, one seeding rule, one device rule (the last two in :mod:`._devices`), one place that turns network outputs
into ``predict``/``predict_proba``, and ``score = bound / n``. A method family supplies only:

- ``_build_net(n_samples, n_features, n_outputs, likelihood, device)`` → an uninitialised skorch net;
- ``_sample_outputs(X)`` → network outputs of shape ``(S, n, n_outputs)`` (chains or weight draws);
- ``_log_marginal_likelihood_bound(X, y)`` → its bound (nats, whole data set);

and its net records ``bound`` in the history at the end of every epoch (``nan`` when it has none).
A family may extend ``_continuable_params`` and ``_continue_with_current_schedule`` with
parameters of its own that a continued net can apply. ``X`` given to ``_sample_outputs`` and
``_log_marginal_likelihood_bound`` is a float32 CPU tensor, or a
:class:`~sklearn_ibvi.core.batches.HostRows` of a memmap: both give tensors when sliced by rows (the
training net may also get a HostRows of an in-memory array).

Reliability rules that live here, once for every family (tests/test_reliability.py):

- a failed fit (divergence, an exception in a callback, an interrupt in the middle of an epoch)
  leaves the estimator exactly as it was;
- ``warm_start``/``partial_fit`` continue the fitted network with the *current* training schedule
  (``lr``, ``max_epochs``, ``batch_size``, ``verbose``) and refuse changes of the parameters that
  define the model, which the continued network could not honour;
- pickles are device-neutral: a model trained on CUDA loads, predicts and scores on a machine
  without CUDA (on the CPU, with a warning);
- sections that draw from torch's process-global RNG hold one lock, so fits in threads give the
  results they give alone;
- :class:`numpy.memmap` inputs are validated and read chunk by chunk, never copied whole; standardised
  training rows cost no second copy of the data set (:meth:`BayesianNetEstimator._network_inputs`).
"""

import copy
import math
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_y,
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from skorch.exceptions import DeviceWarning

from .batches import HostRows, TensorBatches, is_out_of_core
from .optim import SGD
from .devices import (
    resolve_device,
    seeded_torch,
    torch_rng_state,
    resumed_torch,
    net_device,
    serialized_net,
    deserialized_net,
    moved_net,
)
from ..exceptions import InputScaleWarning, NotABoundWarning, warn_at_caller
from ..networks.module import build_module, check_output_shape
from ..math.likelihoods import NegativeLogLikelihood, mixture_quantile, observation_log_likelihood

PREDICT_BATCH_SIZE = 4096

#: Bytes of float32 per chunk when validating out-of-core (memmap) inputs.
VALIDATION_CHUNK_BYTES = 16 * 2**20

#: A feature whose root mean square exceeds this is far from standardised: ``fit`` warns.
MAX_STANDARDISED_RMS = 10.0
#: ``standardize_inputs='auto'`` rescales inputs whose largest feature root mean square lies in
#: this range by one common factor instead of standardising each feature.
UNIT_SCALE_RMS = (0.1, 1.5)


def inputs_in_range(rms):
    """Whether features of these root mean squares keep their relative sizes
    (``standardize_inputs='auto'``): the largest in :data:`UNIT_SCALE_RMS`.

    Images in [0, 1] and standardised tables pass, and are only rescaled to unit mean square
    (:meth:`InputStandardization.common_scale`) for the built-in MLP; raw measurements (counts, incomes, raw pixel
    values) or features shrunk to tiny values are standardised feature by feature. Per-feature
    standardisation of images would divide their nearly constant border pixels by a tiny spread,
    so that test-time pixel noise there reaches the network hundreds of times larger.
    """
    low, high = UNIT_SCALE_RMS
    return rms.size == 0 or low <= float(rms.max()) <= high


def hidden_layer_sizes(value):
    """Validated ``hidden_layer_sizes`` as a tuple of positive ints (an int means one layer)."""
    sizes = (value,) if isinstance(value, Integral) else tuple(value)
    if not all(isinstance(h, Integral) and h >= 1 for h in sizes):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {value!r}.")
    return tuple(int(h) for h in sizes)


def _rows_per_chunk(X):
    """Rows of ``X`` in ``VALIDATION_CHUNK_BYTES`` of float32."""
    return max(1, VALIDATION_CHUNK_BYTES // (4 * max(1, int(np.prod(X.shape[1:])))))


def _row_chunks(X):
    """``X`` as the estimators read it (float32), in float64 chunks of rows of shape
    ``(rows, n_features)``: a memmap is read, never copied whole."""
    n_features = int(np.prod(X.shape[1:]))
    rows = max(1, _rows_per_chunk(X) // 2)  # VALIDATION_CHUNK_BYTES of float64
    for start in range(0, len(X), rows):
        chunk = np.asarray(X[start : start + rows], dtype=np.float32)
        yield chunk.astype(np.float64).reshape(-1, n_features)


def _is_private_copy(validated, given):
    """Whether ``validated`` is an array validation made for the estimator (a conversion of
    ``given``), which it may therefore change in place; False when in doubt."""
    if validated is given or not isinstance(validated, np.ndarray) or not validated.flags.owndata:
        return False
    return not isinstance(given, np.ndarray) or not np.may_share_memory(validated, given)


def feature_rms(X):
    """Root mean square of every feature (columns of ``X`` flattened past the first axis),
    accumulated in float64 over chunks of rows."""
    squares = np.zeros(int(np.prod(X.shape[1:])))
    for chunk in _row_chunks(X):
        squares += np.einsum("ij,ij->j", chunk, chunk)
    return np.sqrt(squares / max(1, len(X)))


class InputStandardization:
    """The fixed affine map ``x ↦ (x − mean) / scale`` fitted on the training rows.

    :meth:`fit` standardises every feature: ``scale`` is its standard deviation, 1 for a constant
    feature (as in :class:`~sklearn.preprocessing.StandardScaler`). :meth:`common_scale` only
    rescales all features by one factor. The map is a fixed function of the training
    inputs, and the bound is a bound on ``log p(y | X)`` given ``X``: it stays valid, and the
    prior, ``prior_scale`` and the default learning rates see inputs of unit scale.
    """

    def __init__(self, mean, scale):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)

    @classmethod
    def common_scale(cls, rms):
        """No centring and one scale for every feature: the root mean square of all entries
        (from the features' root mean squares ``rms``), so the inputs have unit mean square
        and keep their relative sizes.

        Images in [0, 1] have a mean square of 0.1-0.25 (MNIST 0.11, digits / 16 0.23), so
        without it the input layer would see inputs two to three times smaller than the unit
        scale that the weights' initialisation, the prior and μP's learning-rate multipliers
        assume, and would learn several times more slowly than on standardised tables at the
        same ``lr``.
        """
        overall = float(np.sqrt(np.mean(np.square(rms)))) if np.size(rms) else 0.0
        return cls(np.zeros_like(rms), np.full_like(rms, overall if overall > 0 else 1.0))

    @classmethod
    def fit(cls, X):
        """Mean and standard deviation of every feature, two float64 passes over chunks of rows
        (the second centred, so large offsets such as ``X ~ N(1e6, 1)`` keep their precision)."""
        n = max(1, len(X))
        mean = sum((chunk.sum(0) for chunk in _row_chunks(X)), np.zeros(int(np.prod(X.shape[1:])))) / n
        squares = sum((((chunk - mean) ** 2).sum(0) for chunk in _row_chunks(X)), np.zeros_like(mean))
        scale = np.sqrt(squares / n)
        # float32 cannot resolve a spread below its rounding of the mean: treat it as constant
        constant = ~(scale > 8 * np.finfo(np.float32).eps * np.maximum(np.abs(mean), 1e-30))
        return cls(mean, np.where(constant, 1.0, scale))

    def transform(self, X, copy=True):
        """The rows ``X`` (2-D) standardised as float32, in place in a float32 ``X`` when ``copy=False``."""
        X = np.array(X, dtype=np.float32, copy=copy or None)
        X -= self.mean
        X /= self.scale
        return X


#: Random projections of the features that a fingerprint of the training rows sums (few: cheap).
FINGERPRINT_PROJECTIONS = 3

#: Relative tolerance of two fingerprints of the same rows: float64 sums of float32 values in
#: another chunking or order, or a preprocessing step whose last bit differs.
FINGERPRINT_RTOL = 1e-6


def rows_fingerprint(X, y):
    """A cheap summary of the rows ``(X, y)``: equal, to rounding, for the same rows in any order.

    ``(n_samples, n_features, sums)``: for ``z`` = a few fixed random projections of the float32
    rows of ``X``, ``y``, and ``y`` times each projection (which ties every target to its row),
    the sum, the sum of absolute values (the scale of the sum's rounding error) and the sum of
    squares, accumulated in float64 over chunks of rows, so a memmap is read, never copied whole.
    Order does not matter because neither does it to the bound.
    """
    n_features = int(np.prod(X.shape[1:]))
    projections = np.random.default_rng(0).standard_normal((n_features, FINGERPRINT_PROJECTIONS))
    y = np.asarray(y, dtype=np.float64).reshape(len(y), 1)
    sums = np.zeros((3, 2 * FINGERPRINT_PROJECTIONS + 1))
    start = 0
    for chunk in _row_chunks(X):
        projected = chunk @ projections
        targets = y[start : start + len(chunk)]
        start += len(chunk)
        z = np.hstack([projected, targets, targets * projected])
        sums += [z.sum(0), np.abs(z).sum(0), (z * z).sum(0)]
    return len(X), n_features, sums


def same_rows(fingerprint, other):
    """Whether two :func:`rows_fingerprint` results describe the same rows (to rounding)."""
    (n, d, sums), (other_n, other_d, other_sums) = fingerprint, other
    if (n, d) != (other_n, other_d):
        return False
    scale = np.maximum(sums[1:], other_sums[1:])  # sum: its absolute values; squares: themselves
    return bool(np.all(np.abs(sums[[0, 2]] - other_sums[[0, 2]]) <= FINGERPRINT_RTOL * scale))


def _warn_unless_training_rows(estimator, X, y):
    fingerprint = getattr(estimator, "_training_rows_fingerprint", None)
    if fingerprint is None or same_rows(fingerprint, rows_fingerprint(X, y)):
        return
    scorers = "scoring=log_predictive_scorer (from sklearn_ibvi.model_selection)"
    if is_classifier(estimator):
        scorers += " or scoring='neg_log_loss'"
    warn_at_caller(
        f"{type(estimator).__name__}.score(X, y) is a lower bound on the log marginal likelihood per "
        "sample of the rows it was trained on (those of its last fit or partial_fit call), and these "
        "are other rows: there it is not a bound and does not rank models. To score held-out rows "
        f"(cross_val_score, GridSearchCV), pass {scorers}; to select on the bound, score the "
        "training rows: GridSearchCV(..., scoring=bound_scorer, cv=TrainOnlySplit()).",
        NotABoundWarning,
    )


def _warn_if_unstandardised(X):
    rms = feature_rms(X)
    if rms.size == 0:
        return
    worst = int(np.argmax(rms))
    if rms[worst] > MAX_STANDARDISED_RMS:
        warn_at_caller(
            f"X is far from standardised: feature {worst} has root mean square {rms[worst]:.3g} "
            f"({int(np.sum(rms > MAX_STANDARDISED_RMS))} of {rms.size} features above {MAX_STANDARDISED_RMS:g}). "
            "With standardize_inputs=False the prior over weights, prior_scale, the bound and the default "
            "lr assume inputs of unit scale, and SGD from a prior draw can diverge or stall on raw "
            "features. Set standardize_inputs='auto' (the default) or True, or put a StandardScaler first.",
            InputScaleWarning,
        )


def _check_last_epoch_complete(net):
    """Re-raise an interrupt that skorch swallowed in the middle of an epoch.

    skorch ends training quietly on ``KeyboardInterrupt`` (its ``EarlyStopping`` stops that way,
    at the end of an epoch). Mid-epoch, the weights and entropy have moved past the last recorded
    bound, so keeping them would report a bound of other weights: the fit is abandoned instead.
    """
    if len(net.history) and "bound" not in net.history[-1]:
        raise KeyboardInterrupt(
            f"Training was interrupted during epoch {len(net.history)}, before its bound was "
            "recorded; the estimator keeps its previous state."
        )


def _same_value(a, b):
    if a is b:
        return True
    try:
        return bool(np.shape(a) == np.shape(b) and np.all(a == b))
    except Exception:  # incomparable values are different values
        return False


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


#: The parameters documented alike in every estimator (numpydoc lines, closing its Parameters).
INPUT_PARAMETERS_DOC = """    standardize_inputs : {'auto', True, False}, default='auto'
        ``True``: standardise every feature with the training rows' mean and standard deviation
        before the network. ``'auto'``: the same, unless the largest feature root mean square is
        in [0.1, 1.5] (images in [0, 1], scaled tables); such inputs are divided by one common
        scale, their overall root mean square, so they reach the built-in MLP with unit mean
        square and their relative sizes kept, and reach your own ``module`` as they are. The
        bound stays valid. See :ref:`inputs`.
    **module_params
        ``module__<name>=value``: arguments of ``module``'s constructor, as in skorch; settable
        with ``set_params`` and searchable. See :ref:`custom_modules`."""

class BayesianNetEstimator(BaseEstimator):
    """Base of the estimators: fit, validation, seeding, device and the bound as ``score``."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like"],
        "activation": [StrOptions({"relu", "tanh", "logistic", "identity"})],
        "module": [None, callable],
        "prior_scale": [Interval(Real, 0, None, closed="neither")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "standardize_inputs": ["boolean", StrOptions({"auto"})],
    }

    #: Parameters that may change between a fit and its continuation (``warm_start``,
    #: ``partial_fit``): the training schedule, which the continuation applies, and what is read
    #: only at prediction time. A change of any other parameter is refused: the continued network
    #: could not honour it. ``random_state`` is ignored by a continuation, which keeps its stream.
    _continuable_params = frozenset(
        {"lr", "max_epochs", "batch_size", "verbose", "warm_start", "random_state", "device", "n_predict_samples"}
    )

    def _held_out_params(self):
        """Parameter values for fits judged on held-out rows (fold and prefix learners of the
        searches): each family switches its per-epoch bound off, whose work would be wasted there."""
        return {}

    # -- the module's own parameters, as skorch's ``module__*`` ------------------------------------

    def _set_module_params(self, params):
        """Store ``__init__``'s ``module__*`` keyword arguments; refuse any other name."""
        for name, value in params.items():
            if not name.startswith("module__"):
                raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {name!r}")
            setattr(self, name, value)

    def _module_params(self):
        """The ``module__*`` parameters, without their prefix: the module's constructor arguments."""
        return {name[len("module__") :]: value for name, value in vars(self).items() if name.startswith("module__")}

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        params.update({f"module__{name}": value for name, value in self._module_params().items()})
        return params

    def set_params(self, **params):
        for name in [name for name in params if name.startswith("module__")]:
            setattr(self, name, params.pop(name))
        return super().set_params(**params)

    def _network(self, X):
        """The untrained network of one posterior sample, checked against the rows ``X``."""
        # On a stream of its own: the module's own initial values are replaced by the family's
        # prior draws, which follow the fit's stream whatever the module's constructor draws.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(torch.initial_seed() + 1)  # the CPU only: CUDA untouched
            module = build_module(
                self.module, self._module_params(), hidden_layer_sizes(self.hidden_layer_sizes), self.activation,
                X.shape[1], self._n_outputs,
            )  # fmt: skip
            rows = X[:2]
            rows = rows if isinstance(rows, torch.Tensor) else torch.as_tensor(np.asarray(rows, dtype=np.float32))
            check_output_shape(module, rows.float(), self._n_outputs, self._output_meaning)
        return module

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, X, y):
        """Train the network from a prior draw and track its bound.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Training targets.

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
        with the same ``random_state``. A continuation trains with the current ``lr`` and
        ``batch_size``; changing a parameter that defines the model (e.g. ``hidden_layer_sizes``)
        since the network was started raises a ``ValueError``.

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
        if continuing:
            self._check_continuable()
        with unchanged_on_failure(self):
            given = X
            X, y = self._validated_training_data(X, y, reset=not continuing)
            if not continuing:
                self._fit_input_standardization(X)
            y = self._encode_fit_targets(y, reset=not continuing, classes=classes)
            X = self._network_inputs(X, private=_is_private_copy(X, given), training=True)
            self._fit_net(X, y, continuing, epochs)
            # of the rows as the network sees them, as score sees them: score warns on other rows
            self._training_rows_fingerprint = rows_fingerprint(X, y)
        return self

    def _fit_input_standardization(self, X):
        """``input_mean_`` and ``input_scale_`` of the training rows (``None`` when the network
        sees the inputs as they are)."""
        self.input_mean_ = self.input_scale_ = None
        if self.standardize_inputs is False:
            _warn_if_unstandardised(X)
            return
        rms = feature_rms(X) if self.standardize_inputs == "auto" else None
        if rms is not None and inputs_in_range(rms):
            if self.module is not None:
                return  # the user's module was written for these inputs: they reach it as they are
            standardization = InputStandardization.common_scale(rms)
        else:
            standardization = InputStandardization.fit(X)
        self.input_mean_, self.input_scale_ = standardization.mean, standardization.scale

    def _network_inputs(self, X, private=False, training=False):
        """Validated rows as the network sees them: standardised when ``fit`` standardised them.

        Standardised rows never cost a second copy of the data set where it can be avoided:

        * a memmap stays where it is and is standardised batch by batch as it is read
          (:class:`~sklearn_ibvi.core.batches.HostRows`);
        * a ``private`` float32 array (the copy validation made of float64 or integer input) is
          standardised in place;
        * the caller's own float32 array, for training on the CPU, is read and standardised batch
          by batch, like a memmap;
        * otherwise the rows are standardised into a float32 copy (prediction, and training on
          an accelerator, to which the rows are copied anyway).
        """
        standardization = None
        if getattr(self, "input_mean_", None) is not None:
            standardization = InputStandardization(self.input_mean_, self.input_scale_)
        if standardization is None:
            return X
        if is_out_of_core(X):
            return HostRows(X, standardization=standardization)
        if private:
            return standardization.transform(X, copy=False)
        if training and torch.device(resolve_device(self.device)).type == "cpu":
            return HostRows(X, standardization=standardization)
        return standardization.transform(X)

    def _validated_training_data(self, X, y, reset):
        """``validate_data`` as float32, or, for a memmap, chunkwise checks of the data in place."""
        if not is_out_of_core(X):
            return validate_data(self, X, y, dtype=np.float32, reset=reset)
        self._check_rows_in_chunks(X, reset)
        y = _check_y(y, estimator=self)
        check_consistent_length(X, y)
        return X, y

    def _check_rows_in_chunks(self, X, reset):
        """What ``validate_data(dtype=float32)`` checks of ``X``, one chunk of rows at a time."""
        rows = _rows_per_chunk(X)
        for start in range(0, max(len(X), 1), rows):
            check_array(X[start : start + rows], dtype=np.float32, estimator=self, input_name="X")
        validate_data(self, X, skip_check_array=True, reset=reset)

    def _model_defining_params(self):
        params = self.get_params(deep=False)
        params["hidden_layer_sizes"] = hidden_layer_sizes(params["hidden_layer_sizes"])
        return {name: value for name, value in params.items() if name not in self._continuable_params}

    def _check_continuable(self):
        started_with = getattr(self, "_started_with_params", None)
        if started_with is None:
            return
        now = self._model_defining_params()
        changed = [name for name in now if not _same_value(now[name], started_with.get(name))]
        if changed:
            changes = ", ".join(f"{name}={started_with.get(name)!r} → {now[name]!r}" for name in changed)
            raise ValueError(
                f"warm_start/partial_fit continue the fitted network, but parameters that define it "
                f"changed since it was started ({changes}). Set them back, or fit a new network "
                "with warm_start=False. Only the training schedule (lr, max_epochs, batch_size, "
                "verbose) may change between continuations."
            )

    def _continue_with_current_schedule(self, net, n_samples):
        """Apply ``lr``, ``max_epochs``, ``batch_size`` and ``verbose`` to a continued net."""
        if self.lr != net.lr:
            # Rescale every parameter group, keeping per-group multipliers (μP) and schedules.
            for group in net.optimizer_.param_groups:
                group["lr"] = group["lr"] * (self.lr / net.lr)
            net.lr = self.lr
        net.max_epochs = self.max_epochs
        net.batch_size = self._batch_size_for(n_samples)
        net.verbose = self.verbose

    def _fit_net(self, X, y, continuing, epochs):
        """Train the net on ``X`` as the network sees it (see :meth:`_network_inputs`)."""
        device = resolve_device(self.device)
        if continuing:
            # The copy shares the history (see moved_net): on failure, drop the rows it added.
            net = moved_net(self.net_, device, share_history=True)
            completed = len(net.history)
            try:
                self._continue_with_current_schedule(net, len(X))
                with resumed_torch(net.rng_state_, device):
                    net.partial_fit(X, y, epochs=epochs)
                    net.rng_state_ = torch_rng_state(device)
                _check_last_epoch_complete(net)
            except BaseException:
                if net.history is self.net_.history:
                    del net.history[completed:]
                raise
        else:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            with seeded_torch(seed, device):
                net = self._build_net(self._network(X), len(X), self._likelihood, device)
                net.fit(X, y, epochs=epochs)
                net.rng_state_ = torch_rng_state(device)
            _check_last_epoch_complete(net)
            self._started_with_params = self._model_defining_params()
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
        """``X`` as the network sees it: a float32 CPU tensor, or for a memmap, its rows read
        (and standardised) on demand (HostRows)."""
        check_is_fitted(self, "net_")
        if is_out_of_core(X):
            self._check_rows_in_chunks(X, reset=False)
            rows = self._network_inputs(X)
            return rows if isinstance(rows, HostRows) else HostRows(rows)
        validated = validate_data(self, X, dtype=np.float32, reset=False)
        return torch.as_tensor(self._network_inputs(validated, private=_is_private_copy(validated, X)))

    def score(self, X, y):
        """Bound on the log marginal likelihood per sample (nats/sample), with ``X, y`` as data.

        Called on the training rows (of the last ``fit`` or ``partial_fit``, in any order) this
        is ``bound_ / n_samples``, the quantity that model selection maximises. On other rows only
        the likelihood term is re-evaluated, which is not a bound on their evidence: a
        :class:`~sklearn_ibvi.NotABoundWarning` says so; score held-out rows with
        :func:`~sklearn_ibvi.model_selection.log_predictive_scorer`. See :ref:`bound`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs, normally the training rows.
        y : array-like of shape (n_samples,)
            Targets of ``X``.

        Returns
        -------
        score : float
            The bound per sample, in nats.
        """
        X = self._validated_input(X)
        y = self._encode_score_targets(y, len(X))
        _warn_unless_training_rows(self, X, y)
        y = torch.as_tensor(y)
        bound = float(self._log_marginal_likelihood_bound(X, y))
        if math.isnan(bound):
            raise ValueError(
                "The bound is not a number on these data: the network's float32 arithmetic "
                "overflowed. Scale the inputs (e.g. with StandardScaler) to the range the model was "
                "trained on."
            )
        return bound / len(X)

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
        return _finite_outputs(torch.cat(parts, dim=1).cpu())

    # outputs_in_fixed_batches (module level, below) is the float32 alternative IBVI predicts with.

    def _batch_size_for(self, n_samples):
        return min(200, n_samples) if self.batch_size == "auto" else min(self.batch_size, n_samples)

    def _common_net_params(self, n_samples, likelihood, device):
        """skorch parameters every family's net takes: likelihood, plain SGD schedule, batches.

        Families add their module and their own options (``optimizer__momentum``...).
        """
        return dict(
            criterion=NegativeLogLikelihood,
            criterion__likelihood=likelihood,
            criterion__noise_std=getattr(self, "noise_std", 1.0),
            criterion__target_scale=getattr(self, "target_scale_", 1.0),
            optimizer=SGD,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self._batch_size_for(n_samples),
            iterator_train=TensorBatches,
            iterator_train__shuffle=True,
            iterator_train__device=device,
            train_split=None,
            callbacks=list(self.callbacks or []),
            device=device,
            verbose=self.verbose,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    # -- persistence ---------------------------------------------------------------------------

    def __getstate__(self):
        """Device-neutral state: the net as ``torch.save`` bytes, loadable with any map location."""
        state = dict(super().__getstate__())
        if "net_" in state:
            state["_net_saved_on"] = str(net_device(state["net_"]))
            state["net_"] = serialized_net(state["net_"])
        return state

    def __setstate__(self, state):
        """Load the net where it was saved, or on the CPU when that was CUDA and CUDA is absent."""
        state = dict(state)
        saved_on = state.pop("_net_saved_on", None)
        if isinstance(state.get("net_"), bytes):
            to_cpu = torch.device(saved_on).type == "cuda" and not torch.cuda.is_available()
            if to_cpu:
                warn_at_caller(
                    f"This {type(self).__name__} was trained on {saved_on}, and CUDA is not available "
                    "here: it is loaded on the CPU, where it predicts and scores. To continue "
                    "training it here, set device='cpu' (or 'auto').",
                    DeviceWarning,
                )
            state["net_"] = deserialized_net(state["net_"], to_cpu)
            state["history_"] = state["net_"].history
        super().__setstate__(state)

    def __deepcopy__(self, memo):
        """A deep copy on the same device, without the device-neutral pickling and unpickling."""
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied


#: Rows of every batch of :func:`outputs_in_fixed_batches`, by device type (others: ``'cuda'``'s).
#: On one CPU thread 256 rows ran as fast per row as 512-4096 for 64-256-256-10 and 784-256-256-10
#: networks under 32 weight draws, and keep the activations of a batch small.
FIXED_BATCH_ROWS = {"cpu": 256, "cuda": 4096}


def outputs_in_fixed_batches(module, X, **forward_kwargs):
    """``module(batch, **forward_kwargs)`` of shape ``(S, b, ...)`` over the rows of ``X``, as float64.

    The module runs in its own precision (float32) on its device, on batches of exactly
    ``FIXED_BATCH_ROWS[device type]`` rows, the last one padded with zero rows that are dropped
    from the result. Every matrix product therefore has the same shape whatever the number of
    rows, and a row's outputs do not depend on which other rows are predicted with it: float32
    BLAS results do depend on a product's shape (measured with MKL on one thread: 1-3 rows take
    another kernel than 5 or more, 3e-5 apart in a 784-256 layer), not on a row's place in it.
    The outputs are returned as float64 on the CPU, for the float64 averages taken from them.
    """
    device = next(module.parameters()).device
    dtype = next(module.parameters()).dtype
    rows_per_batch = FIXED_BATCH_ROWS.get(device.type, FIXED_BATCH_ROWS["cuda"])
    module.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(X), rows_per_batch):
            batch = X[start : start + rows_per_batch].to(device, dtype)
            n_rows = len(batch)
            if n_rows < rows_per_batch:
                batch = torch.nn.functional.pad(batch, (0, 0, 0, rows_per_batch - n_rows))
            parts.append(module(batch, **forward_kwargs)[:, :n_rows].to("cpu", torch.float64))
    return _finite_outputs(torch.cat(parts, dim=1))


def _finite_outputs(outputs):
    """``outputs``, or the error for inputs on which the network overflowed."""
    if not torch.all(torch.isfinite(outputs)):
        raise ValueError(
            "The network's outputs overflowed (inf or NaN) on these inputs. Scale the inputs "
            "(e.g. with StandardScaler) to the range the model was trained on."
        )
    return outputs


def _finite_float64_targets(y):
    """Regression targets as finite float64 (``None`` in an object array becomes NaN: refused)."""
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise ValueError("Input y contains NaN or infinity (or None), which a regression target cannot be.")
    return y


def _standardisation(y):
    """``(mean, std)`` of ``y`` (std 1 for constant ``y``), without overflow or underflow.

    Beyond ``|y| ~ 1e154`` the squares overflow and below ``~1e-154`` they underflow, which
    would turn the scale into ``inf`` or 0; there the moments are taken of ``y / max|y|``.
    """
    peak = float(np.max(np.abs(y)))
    if 1e-150 < peak < 1e150:
        mean, scale = float(y.mean()), float(y.std())
    elif peak == 0:
        mean, scale = 0.0, 0.0
    else:
        unit = y / peak
        mean, scale = float(unit.mean()) * peak, float(unit.std()) * peak
    return mean, (scale if scale > 0 else 1.0)


#: The regressors' observation-noise parameters, their validation and their documentation.
NOISE_PARAMETER_CONSTRAINTS = {
    "noise_std": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "noise": [StrOptions({"student_t", "gaussian"})],
}
NOISE_PARAMETERS_DOC = """
    noise_std : 'auto' or float, default='auto'
        Scale ``σ`` of the observation noise in units of ``std(y)`` (the standard deviation for
        Gaussian noise); ``'auto'`` learns, after every epoch, the value that maximises the bound.
    noise : {'student_t', 'gaussian'}, default='student_t'
        Observation model of the bound and the predictions. ``'student_t'`` learns the degrees of
        freedom ``ν`` with ``σ`` (in [2.5, 10⁶]): residuals with a few large values get heavy tails,
        Gaussian ones a large ``ν``. Training steps are the same for both (squared error); only the
        bound, ``predict_interval`` and ``return_std`` differ. See :ref:`regression_uncertainty`."""
NOISE_ATTRIBUTES_DOC = """
    noise_std_ : float
        Scale of the observation noise in force, in units of ``y``: learned, or
        ``noise_std · std(y)``. History column ``noise_std`` holds it after every epoch, and each
        epoch's ``bound`` is evaluated at that epoch's noise.
    noise_dof_ : float
        Degrees of freedom of the Student-t noise in force (history column ``noise_dof``);
        ``inf`` for Gaussian noise."""


class BayesianRegressorMixin(RegressorMixin):
    """Regression on standardised targets with a learned observation noise; ``predict(X,
    return_std=False)`` and ``predict_interval(X, coverage)``.

    ``noise`` is the observation model, ``'student_t'`` or ``'gaussian'``; ``noise_std`` its scale in
    units of ``std(y)``, or ``'auto'``: learned in ``fit`` as the value that maximises the bound
    after every epoch (the net's ``noise_``), with a Student-t's degrees of freedom.
    """

    _likelihood = "gaussian"
    _n_outputs = 1
    _output_meaning = "the predicted mean of the target (standardised)"
    score = BayesianNetEstimator.score

    #: ``σ`` of the training criterion when the noise is learned. The SGD path does not depend on
    #: it (``lr`` is in half-squared-error units); the bound and predictions use the learned one.
    _TRAINING_NOISE_STD = 1.0

    def _common_net_params(self, n_samples, likelihood, device):
        params = super()._common_net_params(n_samples, likelihood, device)
        learn_noise = isinstance(self.noise_std, str) and self.noise_std == "auto"
        params["criterion__noise_std"] = self._TRAINING_NOISE_STD if learn_noise else self.noise_std
        params["learn_noise"] = learn_noise
        params["noise"] = self.noise
        return params

    def _record_fit_summary(self):
        super()._record_fit_summary()
        self.noise_std_ = self.net_.noise_.std * self.target_scale_
        self.noise_dof_ = self.net_.noise_.dof

    def _encode_fit_targets(self, y, reset, classes=None):
        y = _finite_float64_targets(column_or_1d(y, warn=True))
        if reset:
            self.target_mean_, self.target_scale_ = _standardisation(y)
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _encode_score_targets(self, y, n_samples):
        return self._standardised_targets(y, n_samples).astype(np.float32)

    def _standardised_targets(self, y, n_samples):
        y = _finite_float64_targets(column_or_1d(y))
        if len(y) != n_samples:
            raise ValueError(f"X has {n_samples} samples but y has {len(y)}.")
        return (y - self.target_mean_) / self.target_scale_

    def _standardised_outputs(self, X):
        """The posterior samples' predicted means, float64 of shape ``(S, n)``, standardised units."""
        outputs = self._sample_outputs(self._validated_input(X)).squeeze(-1).double()
        if not bool(torch.isfinite(outputs * self.target_scale_ + self.target_mean_).all()):
            raise ValueError(
                f"The predictions overflow float64 in the units of y (the targets' scale is "
                f"{self.target_scale_:.3g}, and the network's standardised outputs reach "
                f"{float(outputs.abs().max()):.3g}). Rescale y, or the inputs, before fitting."
            )
        return outputs

    def predict(self, X, return_std=False, coverage=None):
        """Predictive mean of the target, and on request its standard deviation and intervals.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the predictive standard deviation in target units,
            ``√(noise variance + spread²)``: the noise's variance is ``noise_std_²`` for Gaussian
            noise and ``noise_std_² ν / (ν − 2)`` for Student-t noise of ``ν = noise_dof_``; the spread
            is that of the posterior samples' means (a single chain has none). ``mean ± z · std`` is
            an interval of the stated coverage only for Gaussian noise: ask for ``coverage``.
        coverage : float or array-like of floats in (0, 1), default=None
            Also return the central intervals of these coverages, as :meth:`predict_interval` does
            (a ``Pipeline`` passes it through its own ``predict``). See :ref:`regression_uncertainty`.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,), only if ``return_std``
        intervals : ndarray of shape (n_samples, 2), or (n_samples, 2, n_coverages) for several
            coverages, only if ``coverage`` is given
        """
        outputs = self._standardised_outputs(X)
        y_mean = (outputs.mean(0) * self.target_scale_ + self.target_mean_).numpy()
        returned = [y_mean]
        if return_std:
            spread = outputs.var(0, unbiased=False)
            returned.append((torch.sqrt(spread + self.net_.noise_.variance) * self.target_scale_).numpy())
        if coverage is not None:
            returned.append(self._intervals(outputs, coverage))
        return returned[0] if len(returned) == 1 else tuple(returned)

    def predict_interval(self, X, coverage=0.95):
        """Central predictive intervals of the target: the ``(1 ∓ coverage) / 2`` quantiles.

        The predictive distribution is the mixture, over the posterior samples (IBVI's
        ``n_predict_samples`` weight draws, entropy-SGD's chains), of the observation noise
        (Gaussian or Student-t) around each sample's mean; its quantiles are found by Newton steps on
        its CDF, kept inside a bisection bracket.
        In a ``Pipeline``, call ``predict(X, coverage=...)``, which returns the mean with them.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float or array-like of floats in (0, 1), default=0.95
            Probability the predictive distribution puts inside each interval.

        Returns
        -------
        intervals : ndarray of shape (n_samples, 2), or (n_samples, 2, n_coverages) for several
            Lower and upper ends in target units.
        """
        return self._intervals(self._standardised_outputs(X), coverage)

    def _intervals(self, outputs, coverage):
        """:meth:`predict_interval` of the posterior samples' standardised means ``outputs``."""
        levels = np.atleast_1d(np.asarray(coverage, dtype=float))
        if levels.ndim != 1 or len(levels) == 0 or not np.all((levels > 0) & (levels < 1)):
            raise ValueError(
                f"coverage must be a probability strictly between 0 and 1, or a list of them; got {coverage!r}."
            )
        means, noise = outputs.numpy(), self.net_.noise_
        ends = [
            np.stack([mixture_quantile(means, noise, (1 - level) / 2),
                      mixture_quantile(means, noise, (1 + level) / 2)], axis=1)
            for level in levels
        ]
        intervals = np.stack(ends, axis=-1) * self.target_scale_ + self.target_mean_
        return intervals[..., 0] if np.ndim(coverage) == 0 else intervals

    def _log_predictive_density(self, X, y):
        """``log (1/S) Σ_s p(y_i | x_i, sample s)`` per row, nats, in the units of ``y``."""
        outputs = self._standardised_outputs(X)
        y = torch.as_tensor(self._standardised_targets(y, outputs.shape[1]))
        per_sample = observation_log_likelihood((y - outputs) ** 2, self.net_.noise_, self.target_scale_)
        return (torch.logsumexp(per_sample, 0) - math.log(len(outputs))).numpy()


def _sorted_labels(labels, check=True):
    """``np.unique(labels)``, with a clear error for labels of mixed types (e.g. str and int)."""
    labels = np.asarray(labels)
    try:
        return np.unique(labels)
    except TypeError:
        if not check:
            return np.asarray(list(dict.fromkeys(labels.tolist())), dtype=object)
        kinds = sorted({type(label).__name__ for label in labels.ravel().tolist()})
        raise ValueError(
            f"The class labels mix types ({', '.join(kinds)}) and cannot be ordered: use labels "
            "that are all strings or all numbers."
        ) from None


class BayesianClassifierMixin(ClassifierMixin):
    """Categorical likelihood; ``predict`` returns labels from ``classes_``."""

    _likelihood = "categorical"
    score = BayesianNetEstimator.score

    @property
    def _n_outputs(self):
        return len(self.classes_)

    @property
    def _output_meaning(self):
        return f"the logits of the {len(self.classes_)} classes"

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
        try:
            check_classification_targets(y)
        except TypeError:  # sklearn's own sort of labels of mixed types
            _sorted_labels(y)
            raise
        if reset:
            self.classes_ = _sorted_labels(y if classes is None else classes)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                    f"but the data contain only one class: {self.classes_[0]!r}."
                )
        elif classes is not None and not _same_value(_sorted_labels(classes), self.classes_):
            raise ValueError(
                f"classes={_sorted_labels(classes)!r} differs from the classes of the fitted network "
                f"{self.classes_!r}; the classes are fixed when the network is started."
            )
        return self._encode_score_targets(y, len(y))

    def _encode_score_targets(self, y, n_samples):
        y = column_or_1d(y)
        if len(y) != n_samples:
            raise ValueError(f"X has {n_samples} samples but y has {len(y)}.")
        try:
            index = np.searchsorted(self.classes_, y)
        except TypeError:  # labels that cannot even be compared with the classes (str vs int)
            raise ValueError(
                f"y contains labels not seen during fit: {_sorted_labels(y, check=False)[:10]!r}; "
                f"known classes are {self.classes_!r}."
            ) from None
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels not seen during fit: {np.unique(y[unknown])[:10]!r}; "
                f"known classes are {self.classes_!r}."
            )
        return index.astype(np.int64)

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
