"""The entropy-SGD estimators: parameters, wiring and the bound of a fitted model."""

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
)
from ..exceptions import BoundUndefinedError
from ..networks.chains import Chains
from .net import EntropySGDNet

class _EntropySGDEstimator(BayesianNetEstimator):
    """Parameters and wiring shared by the entropy-SGD regressor and classifier."""

    _parameter_constraints = {
        **BayesianNetEstimator._parameter_constraints,
        "entropy": [StrOptions({"stochastic", "exact"}), None],
        "n_probes": [Interval(Integral, 1, None, closed="left")],
        "probe_fraction": [Interval(Real, 0, 1, closed="right")],
        "grad_threshold": [Interval(Real, 0, None, closed="left")],
        "n_chains": [Interval(Integral, 1, None, closed="left")],
        "control_variate": ["boolean"],
        "n_power_iterations": [Interval(Integral, 0, None, closed="left")],
        "callbacks": [list, None],
    }

    def _held_out_params(self):
        return {"entropy": None}

    def _build_net(self, module, n_samples, likelihood, device):
        return EntropySGDNet(
            module=Chains,
            module__module=module,
            module__n_chains=self.n_chains,
            module__prior_scale=self.prior_scale,
            **self._common_net_params(n_samples, likelihood, device),
            entropy=self.entropy,
            n_probes=self.n_probes,
            probe_fraction=self.probe_fraction,
            grad_threshold=self.grad_threshold,
            control_variate=self.control_variate,
            n_power_iterations=self.n_power_iterations,
        )

    def _sample_outputs(self, X):
        """Outputs of every chain, shape ``(n_chains, n, n_outputs)``: samples of ``q_t``."""
        return self._outputs_in_batches(self.net_.module_, X)

    def _log_marginal_likelihood_bound(self, X, y):
        if self.entropy is None:
            raise BoundUndefinedError(
                "This estimator was fitted with entropy=None, so no entropy was tracked and it has no "
                "bound. Fit with entropy='stochastic' (default) or 'exact' to score it."
            )
        device = next(self.net_.module_.parameters()).device
        log_lik = self.net_.chain_log_likelihood(X.to(device), y.to(device))
        log_lik = self.net_.observed_log_likelihood(log_lik).sum(-1)
        return float((log_lik + self.net_.chain_bound_offsets()).mean())


_SHARED_PARAMETERS_DOC = """
    hidden_layer_sizes : tuple of int, default=(100,)
        Widths of the hidden layers; ``()`` gives a linear model.
    activation : {'relu', 'tanh', 'logistic', 'identity'}, default='relu'
        Activation of the hidden layers, as in scikit-learn's MLPs.
    module : nn.Module class or instance, default=None
        The network of one posterior sample, mapping ``(n_samples, n_features)`` float32 inputs to
        ``(n_samples, n_outputs)``; a class is built with the ``module__*`` parameters. ``None``
        builds the MLP of ``hidden_layer_sizes``. See :ref:`custom_modules`.
    prior_scale : float, default=1.0
        Prior standard deviation of every parameter in units of its initialisation scale
        (``N(0, prior_scale² / fan_in)`` on weights); SGD starts from a draw of it.
    lr : float, default=0.03 (classifier), 0.005 (regressor)
        Learning rate in units of the mean minibatch loss, as in scikit-learn. Too large a rate
        leaves the bound's validity regime (history column ``step_curvature``).
        See :ref:`entropy_validity`.
    batch_size : int or 'auto', default='auto'
        ``'auto'`` is ``min(200, n_samples)``, as in scikit-learn's MLPs.
    max_epochs : int, default=100
        Passes over the training rows; :class:`~sklearn_ibvi.BoundEarlyStopping` may stop earlier.
    entropy : {'stochastic', 'exact'} or None, default='stochastic'
        How the entropy change of each step is tracked: an unbiased stochastic estimate, the exact
        log-determinant (small networks, for checking), or ``None`` (plain SGD, no bound).
        See :ref:`entropy_sgd`.
    n_probes : int, default=1
        Probes per step for ``'stochastic'``; the variance of the entropy estimate falls as 1/n.
    probe_fraction : float in (0, 1], default=1.0
        Fraction of the steps on which the entropy change is estimated; a skipped step adds the
        running mean of the earlier estimates, corrected on the probed steps so that the entropy
        stays unbiased. Smaller values cut the tracking cost and add the variance reported in the
        history column ``entropy_subsampling_se``. See :ref:`entropy_cost`.
    grad_threshold : float, default=0.0
        ``g₀ > 0`` steps along ``g − g₀ tanh(g / g₀)`` (entropy-friendly SGD); ``0`` is plain SGD.
        See :ref:`entropy_sgd`.
    n_chains : int, default=1
        Independent SGD runs from independent prior draws, trained together; the bound is their
        mean and predictions average them. See :ref:`entropy_variance`.
    control_variate : bool, default=True
        Subtract a zero-mean term from the bound estimate: same expectation, lower variance.
        See :ref:`entropy_variance`.
    n_power_iterations : int, default=1
        Power iterations per step estimating ``α λ_max`` for the validity check; 0 disables the
        check. See :ref:`entropy_validity`.
    callbacks : list of skorch callbacks, default=None
        Extra skorch callbacks, e.g. ``LRScheduler``.
    device : str, default='auto'
        ``'auto'`` uses CUDA when available, else CPU; any torch device string. See :ref:`gpu`.
    random_state : int, RandomState instance or None, default=None
        Seeds the prior draw, the minibatch order and the probes; the global RNGs are untouched.
    verbose : int, default=0
        Print the skorch epoch log when positive.
    warm_start : bool, default=False
        Continue from the fitted network and its entropy on the next ``fit``.
""" + INPUT_PARAMETERS_DOC

_SHARED_ATTRIBUTES_DOC = """
    net_ : EntropySGDNet
        The trained skorch net; ``net_.module_`` holds the chains' weights.
    history_ : skorch.History
        Per epoch: ``bound``, ``bound_se``, ``entropy_subsampling_se``, ``log_likelihood``,
        ``log_prior``, ``entropy``, ``prequential_log_likelihood``, ``step_curvature`` (the
        epoch's largest ``α λ_max``) and, for regressors, ``noise_std`` (in units of ``y``) and
        ``noise_dof``; per step: ``history_[:, 'batches', :, 'step_curvature']``.
    bound_curve_ : ndarray of shape (n_epochs,)
        Lower-bound estimate of ``log p(y | X)`` (nats, whole training set) after each epoch.
    bound_ : float
        The final bound; ``score(X_train, y_train) == bound_ / n_samples``.
    n_epochs_ : int
    input_mean_, input_scale_ : ndarray of shape (n_features,) or None
        The map ``x ↦ (x − input_mean_) / input_scale_`` applied to the inputs; ``None`` when
        the network sees the inputs as they are.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, if X had string column names"""

_REFERENCES_DOC = """
    References
    ----------
    .. [1] D. Duvenaud, D. Maclaurin and R. P. Adams. "Early Stopping as Nonparametric
       Variational Inference". AISTATS 2016."""


class EntropySGDRegressor(BayesianRegressorMixin, _EntropySGDEstimator):
    __doc__ = f"""MLP regressor trained by SGD from a prior draw, whose ``score(X, y)`` on the training
    rows is a lower bound on the log marginal likelihood per sample.

    The weights start at a draw of a Gaussian prior and follow plain SGD on the Gaussian negative
    log-likelihood of standardised targets; the entropy of the implicit posterior is tracked to
    estimate the bound, which includes every normalising constant and so compares across noise
    models and models. ``predict_interval`` gives the quantiles of the chains' mixture with the
    learned observation noise (Student-t by default), so use ``n_chains > 1`` for uncertainty that
    varies with ``X``.
    Read more in the :ref:`User Guide <entropy_sgd>`.

    Parameters
    ----------{_SHARED_PARAMETERS_DOC}{NOISE_PARAMETERS_DOC}

    Attributes
    ----------{_SHARED_ATTRIBUTES_DOC}{NOISE_ATTRIBUTES_DOC}
    target_mean_, target_scale_ : float
        Standardisation of ``y``.

    See Also
    --------
    EntropySGDClassifier : The classifier.
    sklearn_ibvi.BoundEarlyStopping : Stop where the bound peaks.
    sklearn.neural_network.MLPRegressor : The point-estimate network.
    {_REFERENCES_DOC}

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_ibvi import EntropySGDRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), EntropySGDRegressor(
    ...     hidden_layer_sizes=(32,), max_epochs=20, random_state=0)).fit(X, y)
    >>> bound_per_sample = model.score(X, y)
    >>> mean, std = model.predict(X[:3], return_std=True)
    """

    _parameter_constraints = {
        **_EntropySGDEstimator._parameter_constraints,
        **NOISE_PARAMETER_CONSTRAINTS,
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        module=None,
        prior_scale=1.0,
        lr=0.005,
        batch_size="auto",
        max_epochs=100,
        entropy="stochastic",
        n_probes=1,
        probe_fraction=1.0,
        grad_threshold=0.0,
        n_chains=1,
        control_variate=True,
        n_power_iterations=1,
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
        self.prior_scale = prior_scale
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.entropy = entropy
        self.n_probes = n_probes
        self.probe_fraction = probe_fraction
        self.grad_threshold = grad_threshold
        self.n_chains = n_chains
        self.control_variate = control_variate
        self.n_power_iterations = n_power_iterations
        self.noise_std = noise_std
        self.noise = noise
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.standardize_inputs = standardize_inputs
        self._set_module_params(module_params)


class EntropySGDClassifier(BayesianClassifierMixin, _EntropySGDEstimator):
    __doc__ = f"""MLP classifier trained by SGD from a prior draw, whose ``score(X, y)`` on the training
    rows is a lower bound on the log marginal likelihood per sample.

    The weights start at a draw of a Gaussian prior and follow plain SGD on the categorical
    (softmax) negative log-likelihood; the entropy of the implicit posterior is tracked to
    estimate the bound. Read more in the :ref:`User Guide <entropy_sgd>`.

    Parameters
    ----------{_SHARED_PARAMETERS_DOC}

    Attributes
    ----------{_SHARED_ATTRIBUTES_DOC}
    classes_ : ndarray of shape (n_classes,)

    See Also
    --------
    EntropySGDRegressor : The regressor.
    sklearn_ibvi.BoundEarlyStopping : Stop where the bound peaks.
    sklearn.neural_network.MLPClassifier : The point-estimate network.
    {_REFERENCES_DOC}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_ibvi import EntropySGDClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = EntropySGDClassifier(hidden_layer_sizes=(16,), max_epochs=30, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        module=None,
        prior_scale=1.0,
        lr=0.03,
        batch_size="auto",
        max_epochs=100,
        entropy="stochastic",
        n_probes=1,
        probe_fraction=1.0,
        grad_threshold=0.0,
        n_chains=1,
        control_variate=True,
        n_power_iterations=1,
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
        self.prior_scale = prior_scale
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.entropy = entropy
        self.n_probes = n_probes
        self.probe_fraction = probe_fraction
        self.grad_threshold = grad_threshold
        self.n_chains = n_chains
        self.control_variate = control_variate
        self.n_power_iterations = n_power_iterations
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.standardize_inputs = standardize_inputs
        self._set_module_params(module_params)
