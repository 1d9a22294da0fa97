"""The IBVI estimators: parameters, wiring and the bound of a fitted model."""

import math
import textwrap
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from ..core.estimator import (
    INPUT_PARAMETERS_DOC,
    NOISE_ATTRIBUTES_DOC,
    NOISE_PARAMETER_CONSTRAINTS,
    NOISE_PARAMETERS_DOC,
    BayesianClassifierMixin,
    BayesianNetEstimator,
    BayesianRegressorMixin,
    outputs_in_fixed_batches,
)
from ..exceptions import BoundUndefinedError
from ..math.gaussian import COVARIANCES
from ..networks.mup import PARAMETRIZATIONS
from ..networks.conversion import VARIATIONAL_LAYERS
from .net import IBVINet, IBVINetwork

_FAMILIES_WITH_A_BOUND = (
    "covariance='diagonal' or 'diag+lowrank' (or 'lowrank' with rank at least the number of "
    "parameters of every variational layer)"
)

#: Weight draws that average the predictive of a fold or prefix learner (see ``_held_out_params``).
HELD_OUT_PREDICT_SAMPLES = 8


class _IBVIEstimator(BayesianNetEstimator):
    """Parameters and wiring shared by the IBVI regressor and classifier."""

    _parameter_constraints = {
        **BayesianNetEstimator._parameter_constraints,
        "covariance": [StrOptions(set(COVARIANCES))],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "variational_layers": [StrOptions(set(VARIATIONAL_LAYERS)), list, tuple],
        "parametrization": [StrOptions(set(PARAMETRIZATIONS))],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "n_predict_samples": [Interval(Integral, 1, None, closed="left")],
        "n_bound_samples": [Interval(Integral, 0, None, closed="left")],
        "bound_rows": [Interval(Integral, 2, None, closed="left"), None],
        "callbacks": [list, None],
    }

    # How the bound is estimated is not part of the model: it may change between continuations.
    _continuable_params = BayesianNetEstimator._continuable_params | {"n_bound_samples", "bound_rows"}

    def _held_out_params(self):
        """No per-epoch ELBO, and held-out rows scored under at most
        :data:`HELD_OUT_PREDICT_SAMPLES` weight draws: scored after every epoch of every fold,
        the predictive would otherwise cost more than the training. The refit model predicts
        with ``n_predict_samples``."""
        return {"n_bound_samples": 0, "n_predict_samples": min(self.n_predict_samples, HELD_OUT_PREDICT_SAMPLES)}

    def _continue_with_current_schedule(self, net, n_samples):
        super()._continue_with_current_schedule(net, n_samples)
        net.n_bound_samples = self.n_bound_samples
        net.bound_rows = self.bound_rows

    def _build_net(self, module, n_samples, likelihood, device):
        return IBVINet(
            module=IBVINetwork,
            module__module=module,
            module__n_outputs=self._n_outputs,
            module__variational_layers=self.variational_layers,
            module__covariance=self.covariance,
            module__rank=self.rank,
            module__prior_scale=self.prior_scale,
            module__parametrization=self.parametrization,
            **self._common_net_params(n_samples, likelihood, device),
            optimizer__momentum=self.momentum,
            n_bound_samples=self.n_bound_samples,
            bound_rows=self.bound_rows,
        )

    def _sample_outputs(self, X):
        """Outputs under ``n_predict_samples`` fixed weight draws, shape ``(S, n, n_outputs)``.

        The draws are made once per call (:meth:`IBVINetwork.pinned_samples`) and the network runs
        in its training precision, float32, over row batches of one fixed shape
        (:func:`~sklearn_ibvi.core.estimator.outputs_in_fixed_batches`): a row's outputs do not depend on
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
    module : nn.Module class or instance, default=None
        The network of one posterior sample, mapping ``(n_samples, n_features)`` float32 inputs to
        ``(n_samples, n_outputs)``; a class is built with the ``module__*`` parameters. ``None``
        builds the MLP of ``hidden_layer_sizes``. See :ref:`custom_modules`.
    covariance : {'diag+lowrank', 'diagonal', 'lowrank'}, default='diag+lowrank'
        Covariance family of each variational layer: ``diag(d²) + SSᵀ``, ``diag(d²)`` or ``SSᵀ``.
        ``'lowrank'`` has no finite bound (``score`` raises). See :ref:`ibvi_covariance`.
    rank : int, default=10
        Columns of the low-rank factor ``S`` (ignored by ``'diagonal'``).
    variational_layers : {'input_output', 'all', 'output'} or list of str, default='input_output'
        Which linear and convolutional layers are Gaussian (the others are point estimates, and
        the bound is conditional on them), or the names of layers of ``module``.
        See :ref:`ibvi_covariance`.
    parametrization : {'mup', 'standard'}, default='mup'
        ``'mup'``: maximal-update parametrization, so that a learning rate tuned at one width
        transfers to others; ``'standard'``: init std ``1/√fan_in``. See :ref:`ibvi_covariance`.
    prior_scale : float, default=1.0
        Prior standard deviation of every parameter in units of its initialisation scale; the
        prior is the initial variational distribution.
    lr : float, default={lr}
        SGD learning rate in units of the mean minibatch loss, before the μP per-layer multipliers.
{lr_note}
    momentum : float, default=0.9
        SGD momentum.
    batch_size : int or 'auto', default=128
        Minibatch size (``'auto'`` is ``min(200, n_samples)``). One weight sample per minibatch.
    max_epochs : int, default=100
        Passes over the training rows; :class:`~sklearn_ibvi.BoundEarlyStopping` may stop earlier.
    n_predict_samples : int, default=32
        Weight draws (in antithetic pairs) averaged by ``predict_proba`` / ``predict``, fixed
        per fitted model; more draws lower the test NLL and cost one forward pass each.
        See :ref:`ibvi_prediction`.
    n_bound_samples : int, default=1
        Weight draws of the bound's expected log-likelihood, evaluated after every epoch; each
        costs a forward pass over the bound's rows (``bound_rows``), and 0 skips it.
        See :ref:`ibvi_prediction`.
    bound_rows : int or None, default=512
        Training rows the per-epoch bound is evaluated on. On a larger training set it is
        estimated, without bias, from a fixed random subset of this many rows (the same rows at
        every epoch); ``history_`` column ``likelihood_subsampling_se`` is the standard error this
        adds. ``None`` evaluates every row. ``score`` always evaluates the rows it is given.
        See :ref:`the IBVI guide <ibvi_bound_cost>`.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks, e.g. ``LRScheduler`` (it keeps the μP multipliers).
    device : str, default='auto'
        ``'auto'`` uses CUDA when available, else CPU; any torch device string. See :ref:`gpu`.
    random_state : int, RandomState instance or None, default=None
        Seeds the prior draw, the minibatch order and the weight samples; the global RNGs are
        untouched.
    verbose : int, default=0
        Print the skorch epoch log when positive.
    warm_start : bool, default=False
        Continue from the fitted network (and its optimizer's momentum) on the next ``fit``.
""" + INPUT_PARAMETERS_DOC

_CLASSIFIER_LR_NOTE = (
    "Too large a rate can collapse the network to chance without diverging; a warning says so. "
    "See :ref:`ibvi`."
)
_REGRESSOR_LR_NOTE = (
    "The squared error does not saturate, so too large a rate diverges sooner than for "
    "classifiers. See :ref:`ibvi`."
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
        (Monte-Carlo standard error over the weight draws, NaN with one draw),
        ``likelihood_subsampling_se`` (the standard error of estimating from ``bound_rows``
        rows, 0 when all were used), ``train_loss`` (the epoch's mean
        one-sample training NLL, nats/sample), ``prequential_log_likelihood`` (sum over the
        epoch's minibatches of ``log p(y_b | X_b, w)`` under the step's single draw ``w ~ q``
        *before* the step: a one-sample estimate of the online code length) and, for
        regressors, ``noise_std`` (in units of ``y``) and ``noise_dof``.
    bound_curve_ : ndarray of shape (n_epochs,)
        ELBO (nats, whole training set) after each epoch, estimated from ``bound_rows`` rows on a
        larger training set; NaN for a singular ``'lowrank'`` family.
    bound_ : float
        The final bound. ``score(X_train, y_train)`` evaluates every row: it equals
        ``bound_ / n_samples`` on up to ``bound_rows`` training rows, and on more it differs by
        the subset's sampling error (``likelihood_subsampling_se``, in nats).
    n_epochs_ : int
    input_mean_, input_scale_ : ndarray of shape (n_features,) or None
        The map ``x ↦ (x − input_mean_) / input_scale_`` applied to the inputs; ``None`` when
        the network sees the inputs as they are.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, if X had string column names"""

_NOTES_DOC = """
    Notes
    -----
    The default is the paper's configuration (low rank 10 on the input and output layers, μP)
    with a diagonal added to the covariance, so that the KL to the prior, hence the bound, is
    finite; ``covariance='lowrank'`` is the paper's own, with no finite bound. The bound is
    ``E_q[log p(y | X, w)] − KL(q ‖ p)`` with the KL in closed form; it is loose, since training
    is not regularised by the KL. Standardise the inputs: on unscaled data the network can
    collapse to an input-independent prediction, which a
    :class:`~sklearn.exceptions.ConvergenceWarning` reports. See :ref:`ibvi`."""

_REFERENCES_DOC = """
    References
    ----------
    .. [1] A. Coker, J. Wenger, I. Marusic and J. P. Cunningham. "Variational Deep Learning via
       Implicit Regularization". ICLR 2026, arXiv:2505.20235.
    .. [2] G. Yang and E. J. Hu. "Tensor Programs IV: Feature Learning in Infinite-Width Neural
       Networks". ICML 2021."""


class IBVIRegressor(BayesianRegressorMixin, _IBVIEstimator):
    __doc__ = f"""Variational MLP regressor regularised by SGD's implicit bias (IBVI), whose ``score(X, y)``
    on the training rows is its ELBO, a lower bound on the log marginal likelihood per sample.

    Gaussian weights, initialised at the prior, are trained by SGD with momentum on the expected
    Gaussian negative log-likelihood of standardised targets, with no KL term. ``predict`` averages
    ``n_predict_samples`` weight draws; ``predict_interval`` gives the quantiles of their mixture
    with the learned observation noise (Student-t by default). The bound includes every
    normalising constant, so it compares across noise models and models. Read more in the
    :ref:`User Guide <ibvi>`.

    Parameters
    ----------{_parameters_doc(0.02, _REGRESSOR_LR_NOTE)}{NOISE_PARAMETERS_DOC}

    Attributes
    ----------{_SHARED_ATTRIBUTES_DOC}{NOISE_ATTRIBUTES_DOC}
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
        **NOISE_PARAMETER_CONSTRAINTS,
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        module=None,
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
        bound_rows=512,
        noise_std="auto",
        noise="student_t",
        callbacks=None,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        standardize_inputs="auto",
        **module_params,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
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
        self.bound_rows = bound_rows
        self.noise_std = noise_std
        self.noise = noise
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.standardize_inputs = standardize_inputs
        self._set_module_params(module_params)


class IBVIClassifier(BayesianClassifierMixin, _IBVIEstimator):
    __doc__ = f"""Variational MLP classifier regularised by SGD's implicit bias (IBVI), whose ``score(X, y)``
    on the training rows is its ELBO, a lower bound on the log marginal likelihood per sample.

    Gaussian weights, initialised at the prior, are trained by SGD with momentum on the expected
    softmax cross-entropy, with no KL term. ``predict_proba`` is the average of the class
    probabilities of ``n_predict_samples`` weight draws. Read more in the
    :ref:`User Guide <ibvi>`.

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
        module=None,
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
        bound_rows=512,
        callbacks=None,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        standardize_inputs="auto",
        **module_params,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.module = module
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
        self.bound_rows = bound_rows
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.standardize_inputs = standardize_inputs
        self._set_module_params(module_params)
