"""Prequential log-likelihoods: the learner's online predictions coded batch by batch.

``Σ_k log p(y_{B_k} | X_{B_k}, θ before batch k)`` is minus the code length of the learner's
online predictions (Blier & Ollivier 2018; the "training speed" of Lyle et al. 2020). When each
prediction is the exact Bayesian posterior predictive it equals ``log p(y | X)`` by the chain
rule (:func:`prequential_log_evidence`); the estimators record it for SGD's point estimates
during their first epoch (:func:`prequential_log_likelihood`).
"""

import math

import numpy as np

from ._predictive import final_estimator


def prequential_log_evidence(features, y, prior_var, noise_var, batch_size=1):
    """Prequential log-likelihood of Bayesian linear regression with exact sequential updating.

    Codes ``y`` batch by batch with the exact posterior predictive given the batches before,
    ``log N(y_b; Φ_b m, Φ_b S Φ_bᵀ + σ² I)``, then updates ``(m, S)`` by Bayes' rule. By the chain
    rule ``Σ_b log p(y_b | y_{<b}) = log p(y)``, so the result equals the closed-form log evidence
    ``log N(y; 0, Φ Σ₀ Φᵀ + σ² I)`` for any batch size and order: the principle behind the
    ``'prequential'`` criterion, which applies it with the learner's own (approximate) predictive.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        The design matrix ``Φ``.
    y : array-like of shape (n_samples,)
    prior_var : float or array-like of shape (n_features,)
        Prior variances of the weights (the prior is ``N(0, diag(prior_var))``).
    noise_var : float
        Observation noise variance ``σ²``.
    batch_size : int, default=1

    Returns
    -------
    log_likelihood : float
        Nats, whole data set.
    """
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = features.shape
    mean = np.zeros(d)
    cov = np.diag(np.broadcast_to(np.asarray(prior_var, dtype=np.float64), (d,)))
    total = 0.0
    for start in range(0, n, batch_size):
        phi, target = features[start : start + batch_size], y[start : start + batch_size]
        predictive_cov = phi @ cov @ phi.T + noise_var * np.eye(len(target))
        residual = target - phi @ mean
        _, logdet = np.linalg.slogdet(predictive_cov)
        total -= 0.5 * (residual @ np.linalg.solve(predictive_cov, residual) + logdet + len(target) * math.log(2 * math.pi))
        gain = np.linalg.solve(predictive_cov, phi @ cov).T  # S Φ_bᵀ (Φ_b S Φ_bᵀ + σ²I)⁻¹
        mean = mean + gain @ residual
        cov = cov - gain @ phi @ cov
    return float(total)


def prequential_log_likelihood(estimator):
    """The first epoch's prequential log-likelihood of a fitted estimator (nats, whole data).

    ``Σ_k log p(y_{B_k} | X_{B_k}, θ before batch k)`` over the first pass: with several chains
    the predictive is their mixture. Read from the history column
    ``prequential_log_likelihood``; works through pipelines and BoundEarlyStopping.

    Parameters
    ----------
    estimator : fitted sklearn_ibvi estimator, Pipeline ending in one, or BoundEarlyStopping

    Returns
    -------
    log_likelihood : float
    """
    history = getattr(final_estimator(estimator)[0], "history_", None)
    if history is None or len(history) == 0 or "prequential_log_likelihood" not in history[0]:
        raise TypeError(
            f"{type(estimator).__name__} records no 'prequential_log_likelihood' in a training "
            "history; the 'prequential' criterion needs an sklearn_ibvi estimator fitted for at least one epoch."
        )
    return float(history[0, "prequential_log_likelihood"])
