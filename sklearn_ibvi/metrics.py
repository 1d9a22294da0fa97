"""Scores for probabilistic predictions: calibration, log-likelihood, Brier.

Classification metrics take ``y_true`` (arbitrary labels) and ``y_prob`` as
returned by ``predict_proba``: columns ordered as ``labels`` or, when
``labels`` is None, as the sorted unique values of ``y_true`` (the order of
``classes_`` in scikit-learn classifiers). A 1-D ``y_prob`` is the probability
of the positive class, ``labels[1]``, of a binary problem, as in
:func:`sklearn.metrics.log_loss`.

Regression metrics take the ``(mean, std)`` pair returned by
``predict(X, return_std=True)``.

All losses here are means over samples (lower is better), so they compare
across test sets of different sizes.
"""

import numpy as np
from sklearn.utils import check_array, check_consistent_length, column_or_1d

__all__ = [
    "brier_score",
    "expected_calibration_error",
    "gaussian_negative_log_likelihood",
    "negative_log_likelihood",
    "plot_reliability_diagram",
]


def _check_classification_probabilities(y_true, y_prob, labels):
    """Validate ``(y_true, y_prob)`` and one-hot encode ``y_true``.

    Returns
    -------
    y_prob : ndarray of shape (n_samples, n_classes), float64
        Probabilities, a 1-D binary input expanded to ``[1 - p, p]``.
    y_onehot : ndarray of shape (n_samples, n_classes), float64
        ``y_onehot[i, k] = 1`` iff ``y_true[i] == labels[k]``.
    labels : ndarray of shape (n_classes,)
        The class of each column.
    """
    y_true = column_or_1d(y_true, warn=True)
    y_prob = check_array(
        y_prob, ensure_2d=False, dtype=[np.float64, np.float32], input_name="y_prob"
    )
    check_consistent_length(y_true, y_prob)
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_prob are empty: need at least one sample.")

    if labels is None:
        labels = np.unique(y_true)
        if y_prob.ndim == 2 and len(labels) != y_prob.shape[1]:
            raise ValueError(
                f"y_true and y_prob contain different numbers of classes: "
                f"{len(labels)} vs {y_prob.shape[1]}. Please provide the true "
                f"labels explicitly through the labels argument. Classes found "
                f"in y_true: {labels}"
            )
    else:
        labels = column_or_1d(labels)
        if len(np.unique(labels)) != len(labels):
            raise ValueError(f"labels contains duplicates: {labels}")
        unknown = np.setdiff1d(y_true, labels)
        if len(unknown):
            raise ValueError(f"y_true contains labels not in labels: {unknown}")
        if y_prob.ndim == 2 and len(labels) != y_prob.shape[1]:
            raise ValueError(
                f"The number of classes in labels ({len(labels)}) is different "
                f"from the number of columns of y_prob ({y_prob.shape[1]})."
            )

    if y_prob.ndim == 1:
        if len(labels) != 2:
            raise ValueError(
                f"A 1-D y_prob is the probability of the positive class of a "
                f"binary problem, but {len(labels)} classes were found: "
                f"{labels}. Pass y_prob of shape (n_samples, n_classes), or the "
                f"two class labels through the labels argument."
            )
        y_prob = np.column_stack([1 - y_prob, y_prob])
    elif len(labels) < 2:
        raise ValueError(
            f"y_true contains only one label ({labels[0]!r}). Please provide "
            f"the true labels explicitly through the labels argument."
        )

    if y_prob.min() < 0 or y_prob.max() > 1:
        raise ValueError(
            f"y_prob must contain probabilities in [0, 1], got values in "
            f"[{y_prob.min()}, {y_prob.max()}]."
        )
    # Tolerance of the input precision: float32 softmax outputs pass.
    tolerance = np.sqrt(np.finfo(y_prob.dtype).eps)
    row_sums = y_prob.sum(axis=1)
    bad = ~np.isclose(row_sums, 1.0, rtol=tolerance, atol=0)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(
            f"The rows of y_prob must sum to one: {bad.sum()} of "
            f"{len(row_sums)} do not (e.g. row {i} sums to {row_sums[i]}). "
            f"Make sure to pass probabilities, e.g. from predict_proba."
        )

    y_onehot = (y_true[:, None] == labels[None, :]).astype(np.float64)
    return y_prob.astype(np.float64, copy=False), y_onehot, labels


def _check_n_bins(n_bins):
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)):
        raise TypeError(f"n_bins must be an int, got {n_bins!r}.")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")


def _calibration_bins(y_prob, y_onehot, n_bins):
    """Top-label confidence and accuracy in equal-width bins ``(m/M, (m+1)/M]``.

    Returns
    -------
    counts, accuracy, confidence : ndarray of shape (n_bins,)
        Samples per bin and their mean correctness and mean top probability;
        accuracy and confidence are NaN in empty bins.
    """
    confidence = y_prob.max(axis=1)
    correct = y_onehot[np.arange(len(y_prob)), y_prob.argmax(axis=1)]
    # Right-closed bins as in Guo et al.: a confidence of exactly 1 falls in the
    # last bin, 1/M in the first.
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bin_index = np.searchsorted(inner_edges, confidence, side="left")
    counts = np.bincount(bin_index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(bin_index, correct, minlength=n_bins) / counts
        mean_confidence = np.bincount(bin_index, confidence, minlength=n_bins) / counts
    return counts, accuracy, mean_confidence


def _ece_from_bins(counts, accuracy, confidence):
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - confidence[filled])
    return float(np.sum(counts[filled] * gaps) / counts.sum())


def expected_calibration_error(y_true, y_prob, n_bins=15, labels=None):
    r"""Top-label expected calibration error (ECE) with equal-width bins.

    The top-label confidence :math:`\hat p_i = \max_k p_{ik}` of each sample
    is put into one of ``n_bins`` bins :math:`B_m = ((m-1)/M, m/M]`, and

    .. math::

        \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n}
        \left| \mathrm{acc}(B_m) - \mathrm{conf}(B_m) \right|,

    where :math:`\mathrm{acc}(B_m)` is the fraction of samples in the bin whose
    most probable class is the true one and :math:`\mathrm{conf}(B_m)` their
    mean confidence (Guo et al., 2017). Ties in the most probable class go to
    the first column. Read more in the :ref:`User Guide <calibration>`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, columns ordered as ``labels``. A 1-D array is
        the probability of the positive class ``labels[1]`` of a binary
        problem.

    n_bins : int, default=15
        Number of equal-width confidence bins on [0, 1].

    labels : array-like of shape (n_classes,), default=None
        The class of each column of ``y_prob``. If None, the sorted unique
        values of ``y_true`` (then ``y_true`` must contain every class).

    Returns
    -------
    ece : float
        Expected calibration error, in [0, 1]; 0 is perfectly calibrated.

    See Also
    --------
    plot_reliability_diagram : The per-bin accuracies and confidences.
    sklearn.calibration.calibration_curve : Per-bin frequencies for one class.

    Notes
    -----
    The estimate is biased upwards on small samples: even perfectly calibrated
    probabilities score about :math:`\sum_m |B_m|/n \cdot \sqrt{2 \bar
    p_m(1-\bar p_m)/(\pi |B_m|)}`, which shrinks like :math:`1/\sqrt{n}`.

    References
    ----------
    .. [1] C. Guo, G. Pleiss, Y. Sun and K. Q. Weinberger, "On Calibration of
       Modern Neural Networks", ICML 2017.
    .. [2] M. P. Naeini, G. Cooper and M. Hauskrecht, "Obtaining Well
       Calibrated Probabilities Using Bayesian Binning", AAAI 2015.

    Examples
    --------
    >>> from sklearn_ibvi.metrics import expected_calibration_error
    >>> y_true = ["cat", "dog", "dog", "cat"]
    >>> y_prob = [[0.9, 0.1], [0.25, 0.75], [0.45, 0.55], [0.3, 0.7]]
    >>> # bins (0.8, 1]: 1 right at 0.9; (0.6, 0.8]: 1 of 2 right at 0.725;
    >>> # (0.4, 0.6]: 1 right at 0.55
    >>> ece = expected_calibration_error(y_true, y_prob, n_bins=5)
    >>> print(f"{ece:.3f}")  # (0.1 + 2 * 0.225 + 0.45) / 4
    0.250
    """
    _check_n_bins(n_bins)
    y_prob, y_onehot, _ = _check_classification_probabilities(y_true, y_prob, labels)
    counts, accuracy, confidence = _calibration_bins(y_prob, y_onehot, n_bins)
    return _ece_from_bins(counts, accuracy, confidence)


def negative_log_likelihood(y_true, y_prob, labels=None):
    r"""Mean negative log-likelihood (log loss, cross-entropy) of the true class.

    .. math::

        \mathrm{NLL} = -\frac{1}{n} \sum_{i=1}^{n} \log p_{i, y_i},

    with :math:`p` clipped to :math:`[\epsilon, 1 - \epsilon]`, :math:`\epsilon`
    the machine epsilon of ``y_prob``'s dtype, so that a zero probability on
    the true class costs about 36 nats (float64) instead of infinity. Equals
    :func:`sklearn.metrics.log_loss`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, columns ordered as ``labels``. A 1-D array is
        the probability of the positive class ``labels[1]`` of a binary
        problem.

    labels : array-like of shape (n_classes,), default=None
        The class of each column of ``y_prob``. If None, the sorted unique
        values of ``y_true`` (then ``y_true`` must contain every class).

    Returns
    -------
    nll : float
        Mean negative log-likelihood in nats per sample; lower is better.

    See Also
    --------
    sklearn.metrics.log_loss : The same quantity, with sample weights.
    gaussian_negative_log_likelihood : The regression counterpart.

    Examples
    --------
    >>> from sklearn_ibvi.metrics import negative_log_likelihood
    >>> y_true = [0, 2, 1]
    >>> y_prob = [[0.5, 0.25, 0.25], [0.0, 0.5, 0.5], [0.25, 0.5, 0.25]]
    >>> print(f"{negative_log_likelihood(y_true, y_prob):.4f}")  # -log(1/2)
    0.6931
    """
    dtype = np.asarray(y_prob).dtype
    eps = np.finfo(dtype if dtype == np.float32 else np.float64).eps
    y_prob, y_onehot, _ = _check_classification_probabilities(y_true, y_prob, labels)
    y_prob = np.clip(y_prob, eps, 1 - eps)
    true_class_prob = np.sum(y_prob * y_onehot, axis=1)
    return float(-np.mean(np.log(true_class_prob)))


def brier_score(y_true, y_prob, labels=None):
    r"""Brier score: mean over samples of the squared error summed over classes.

    .. math::

        \mathrm{BS} = \frac{1}{n} \sum_{i=1}^{n} \sum_{k=1}^{K}
        \left(p_{ik} - \mathbb{1}[y_i = k]\right)^2 \in [0, 2],

    Brier's (1950) original definition. The same formula is used for every
    number of classes, binary included, so for a binary problem the value is
    **twice** the customary binary Brier score :math:`\frac1n \sum_i (p_i -
    y_i)^2` returned by :func:`sklearn.metrics.brier_score_loss` with its
    default ``scale_by_half="auto"``; it equals ``brier_score_loss(...,
    scale_by_half=False)`` for any number of classes.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, columns ordered as ``labels``. A 1-D array is
        the probability of the positive class ``labels[1]`` of a binary
        problem; it is scored as the two columns ``[1 - p, p]``.

    labels : array-like of shape (n_classes,), default=None
        The class of each column of ``y_prob``. If None, the sorted unique
        values of ``y_true`` (then ``y_true`` must contain every class).

    Returns
    -------
    brier : float
        Brier score in [0, 2]; lower is better.

    See Also
    --------
    sklearn.metrics.brier_score_loss : The same score with ``scale_by_half=False``.

    References
    ----------
    .. [1] G. W. Brier, "Verification of forecasts expressed in terms of
       probability", Monthly Weather Review 78(1), 1950.

    Examples
    --------
    >>> from sklearn_ibvi.metrics import brier_score
    >>> print(f"{brier_score([0, 1], [[0.8, 0.2], [0.4, 0.6]]):.2f}")  # (0.08 + 0.32) / 2
    0.20
    """
    y_prob, y_onehot, _ = _check_classification_probabilities(y_true, y_prob, labels)
    return float(np.mean(np.sum((y_prob - y_onehot) ** 2, axis=1)))


def gaussian_negative_log_likelihood(y_true, mean, std):
    r"""Mean negative log-likelihood of targets under Gaussian predictions.

    .. math::

        \mathrm{NLL} = \frac{1}{n} \sum_{i=1}^{n} \sum_{j}
        \left[ \tfrac12 \log(2\pi\sigma_{ij}^2)
        + \frac{(y_{ij} - \mu_{ij})^2}{2\sigma_{ij}^2} \right],

    with all normalising constants, so values compare across models and
    noise levels. For several outputs the per-output terms are summed (the
    joint density of a diagonal Gaussian) and then averaged over samples.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_outputs)
        True targets.

    mean : array-like of the shape of ``y_true``
        Predictive means, e.g. the first output of
        ``predict(X, return_std=True)``.

    std : float or array-like broadcastable to the shape of ``y_true``
        Predictive standard deviations, strictly positive. They should include
        the observation noise when scoring observed targets.

    Returns
    -------
    nll : float
        Mean negative log-likelihood in nats per sample; lower is better.

    See Also
    --------
    negative_log_likelihood : The classification counterpart.

    Examples
    --------
    >>> from sklearn_ibvi.metrics import gaussian_negative_log_likelihood
    >>> nll = gaussian_negative_log_likelihood([0.0, 2.0], [0.0, 0.0], [1.0, 2.0])
    >>> print(f"{nll:.4f}")  # mean of 0.5 log(2 pi) and 0.5 log(8 pi) + 0.5
    1.5155
    """
    y_true = check_array(
        y_true, ensure_2d=False, dtype=np.float64, input_name="y_true"
    )
    mean = check_array(mean, ensure_2d=False, dtype=np.float64, input_name="mean")
    std = check_array(
        std, ensure_2d=False, ensure_min_samples=0, dtype=np.float64, input_name="std"
    )
    if y_true.ndim > 2:
        raise ValueError(f"y_true must be 1-D or 2-D, got shape {y_true.shape}.")
    if mean.shape != y_true.shape:
        raise ValueError(
            f"mean must have the shape of y_true {y_true.shape}, got {mean.shape}."
        )
    try:
        std = np.broadcast_to(std, y_true.shape)
    except ValueError:
        raise ValueError(
            f"std of shape {std.shape} cannot be broadcast to the shape of "
            f"y_true {y_true.shape}."
        ) from None
    if np.any(std <= 0):
        raise ValueError(
            f"std must be strictly positive, got minimum {std.min()}. A zero "
            f"predictive std has an infinite negative log-likelihood."
        )
    z = (y_true - mean) / std
    nll = 0.5 * np.log(2 * np.pi) + np.log(std) + 0.5 * z**2
    return float(np.mean(nll.reshape(len(y_true), -1).sum(axis=1)))


def plot_reliability_diagram(y_true, y_prob, n_bins=15, labels=None, ax=None):
    """Plot a top-label reliability diagram: accuracy against confidence per bin.

    Bars show the accuracy of each non-empty confidence bin; the diagonal is
    perfect calibration, and the gap between a bar's top and the bin's mean
    confidence (red) is what :func:`expected_calibration_error` averages.
    Requires matplotlib. Read more in the :ref:`User Guide <calibration>`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.

    y_prob : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, as for :func:`expected_calibration_error`.

    n_bins : int, default=15
        Number of equal-width confidence bins on [0, 1].

    labels : array-like of shape (n_classes,), default=None
        The class of each column of ``y_prob``. If None, the sorted unique
        values of ``y_true``.

    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; a new figure is created if None.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes drawn on; the legend reports the ECE.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_ibvi.metrics import plot_reliability_diagram
    >>> ax = plot_reliability_diagram([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> ax.get_xlabel()
    'Confidence'
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plot_reliability_diagram requires matplotlib. Install it with "
            "`pip install matplotlib`."
        ) from exc

    _check_n_bins(n_bins)
    y_prob, y_onehot, _ = _check_classification_probabilities(y_true, y_prob, labels)
    counts, accuracy, confidence = _calibration_bins(y_prob, y_onehot, n_bins)
    ece = _ece_from_bins(counts, accuracy, confidence)
    filled = counts > 0

    if ax is None:
        _, ax = plt.subplots()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    width = 1.0 / n_bins
    ax.bar(
        edges[:-1][filled],
        accuracy[filled],
        width=width,
        align="edge",
        edgecolor="black",
        label=f"Accuracy (ECE = {ece:.3f})",
    )
    ax.bar(
        edges[:-1][filled],
        confidence[filled] - accuracy[filled],
        bottom=accuracy[filled],
        width=width,
        align="edge",
        color="red",
        alpha=0.3,
        edgecolor="red",
        label="Gap to mean confidence",
    )
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="Perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Confidence")
    ax.set_ylabel("Accuracy")
    ax.legend(loc="upper left")
    return ax
