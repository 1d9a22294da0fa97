"""Sums over training rows estimated from a fixed random subset of them.

A bound's likelihood term is a sum over the ``n`` training rows. From ``m`` rows drawn uniformly
without replacement, ``(n / m) Σ_{i∈S} ℓ_i`` estimates it without bias, and its standard error
has the finite-population factor ``√(1 − m/n)`` (Cochran, *Sampling Techniques*, §2.4):

    SE = n · √((1 − m/n) · s² / m),    s² the sample variance of the ``ℓ_i``, i ∈ S.

The subset is drawn from a seed once per fit, so successive epochs are scored on the same rows:
their differences carry the change of the model, not the change of the subset.
"""

import math

import torch


def row_subset(n_rows: int, n_kept: int, seed: int) -> torch.Tensor | None:
    """Sorted indices of ``n_kept`` of ``n_rows`` rows drawn without replacement from ``seed``;
    ``None`` when every row is kept."""
    if n_kept >= n_rows:
        return None
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n_rows, generator=generator)[:n_kept].sort().values


def subsampled_total(row_values: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, float]:
    """The estimate of a sum over ``n_rows`` rows from the values of a uniform subset of them,
    and the standard error that subsampling adds.

    Parameters
    ----------
    row_values : Tensor of shape (K, m)
        Each subset row's value under each of ``K`` posterior samples (weight draws, chains).
    n_rows : int
        Rows of the whole set, ``n ≥ m``.

    Returns
    -------
    total : Tensor of shape (K,)
        ``(n / m) Σ_i row_values[k, i]`` per sample: unbiased over the draw of the subset.
    se : float
        ``n √((1 − m/n) s² / m)`` with ``s²`` the sample variance over rows of the values
        averaged over samples; 0 when every row is kept, NaN from a single row.
    """
    n_kept = row_values.shape[-1]
    if n_kept > n_rows:
        raise ValueError(f"A subset of {n_kept} rows cannot come from {n_rows}.")
    total = row_values.sum(-1) * (n_rows / n_kept)
    if n_kept == n_rows:
        return total, 0.0
    if n_kept < 2:
        return total, math.nan
    variance = float(row_values.mean(0).var())
    return total, n_rows * math.sqrt((1.0 - n_kept / n_rows) * variance / n_kept)
