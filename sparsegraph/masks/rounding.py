"""The one rounding rule of the library: overall density to a kept count, real densities to
integer counts, and raw relative densities scaled to a budget.

``density`` is the fraction of weights kept. :func:`budget_of` turns an overall density into the
number of weights to keep (Python's ``round``), :func:`round_counts` splits a kept total over the
layers by largest remainder so the counts sum exactly to it, and :func:`scale_to_budget` is RigL's
rule for proportional schemes that would put a layer above density 1. Every quota
(:func:`sparsegraph.masks.quotas.quotas`), random mask and pruner rounds through these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import QuotaError

__all__ = ["budget_of", "round_counts", "scale_to_budget"]


def budget_of(density: float, params: int) -> int:
    """The kept count of an overall density: ``round(density * params)`` (Python's round).

    Examples
    --------
    >>> from sparsegraph.masks.rounding import budget_of
    >>> budget_of(0.05, 266200)
    13310
    """
    return int(round(float(density) * int(params)))


def round_counts(params: Sequence[int] | np.ndarray, densities: Sequence[float] | np.ndarray,
                 total: int) -> np.ndarray:
    """Integer kept counts from real-valued densities, summing exactly to ``total``.

    The rounding rule of the library: the largest-remainder (Hamilton) method. Each layer gets
    ``floor(density * params)`` and the remaining ``total - sum(floors)`` weights go, one each, to
    the layers with the largest fractional parts (ties to the earlier layer), never above
    ``params``; if the floors already exceed ``total`` (float error), the layers with the
    smallest fractional parts give one back. Every count is therefore within one weight of its
    exact value ``density * params``, which no rule with an exact total can beat.

    Parameters
    ----------
    params : sequence of int
        Weights per layer.
    densities : sequence of float
        Densities in [0, 1].
    total : int
        The required sum of the counts.

    Returns
    -------
    ndarray of int64
        Kept count per layer.

    Raises
    ------
    QuotaError
        If ``total`` is not within one weight per layer of ``sum(densities * params)`` or lies
        outside ``[0, sum(params)]``.

    Examples
    --------
    >>> from sparsegraph.masks.rounding import round_counts
    >>> round_counts([10, 10, 10], [0.25, 0.25, 0.25], 8).tolist()
    [3, 3, 2]
    """
    n = np.asarray(params, dtype=np.int64)
    d = np.asarray(densities, dtype=np.float64)
    total = int(total)
    if not 0 <= total <= int(n.sum()):
        raise QuotaError(f"kept total {total} outside [0, {int(n.sum())}]")
    exact = np.clip(d * n, 0.0, n.astype(np.float64))
    base = np.minimum(np.floor(exact).astype(np.int64), n)
    frac = exact - base
    deficit = total - int(base.sum())
    if deficit > 0:
        order = np.argsort(-frac, kind="stable")
        order = order[base[order] < n[order]]
        if deficit > order.size:
            raise QuotaError(
                f"densities keep {exact.sum():.1f} weights, {deficit} short of the total {total}"
            )
        base[order[:deficit]] += 1
    elif deficit < 0:
        order = np.argsort(frac, kind="stable")
        order = order[base[order] > 0]
        if -deficit > order.size:
            raise QuotaError(
                f"densities keep {exact.sum():.1f} weights, {-deficit} above the total {total}"
            )
        base[order[:-deficit]] -= 1
    return base


def scale_to_budget(params: Sequence[int] | np.ndarray, raw: Sequence[float] | np.ndarray,
                    budget: float) -> np.ndarray:
    """Densities ``eps * raw`` with one scale ``eps`` so that ``sum(density * params) == budget``,
    capping at 1 by RigL's rule.

    While ``eps * max(raw) > 1``, the layers whose raw density equals the maximum become dense
    (they stay in the budget) and ``eps`` is re-solved over the remaining layers
    (Evci et al. 2020, ``get_sparsities_erdos_renyi``). Layers with ``raw == 0`` get density 0.

    Parameters
    ----------
    params : sequence of int
        Weights per layer.
    raw : sequence of float
        Non-negative raw densities (relative weights).
    budget : float
        Weights to keep, in ``[0, sum(params)]``.

    Returns
    -------
    ndarray of float64
        Densities in [0, 1].

    Raises
    ------
    QuotaError
        If the budget cannot be met (every raw density is 0 but the budget is positive).

    Notes
    -----
    At most one re-solve per distinct raw value, O(L^2) for L layers.

    Examples
    --------
    >>> from sparsegraph.masks.rounding import scale_to_budget
    >>> scale_to_budget([10, 100], [1.0, 0.1], 60).round(3).tolist()
    [1.0, 0.5]
    """
    n = np.asarray(params, dtype=np.float64)
    r = np.asarray(raw, dtype=np.float64)
    dense = np.zeros(n.size, dtype=bool)
    out = np.zeros(n.size, dtype=np.float64)
    if budget <= 0:
        return out
    while True:
        free = ~dense & (r > 0)
        rest = budget - float(n[dense].sum())
        if not free.any():
            if rest > 0.5:
                raise QuotaError(
                    f"cannot keep {budget:.0f} weights: the layers that may hold weights only "
                    f"have {float(n[dense].sum()):.0f}"
                )
            break
        divisor = float((r[free] * n[free]).sum())
        eps = rest / divisor
        max_raw = float(r[free].max())
        if max_raw * eps > 1.0:
            dense |= free & (r == max_raw)
            continue
        out[free] = eps * r[free]
        break
    out[dense] = 1.0
    return np.clip(out, 0.0, 1.0)
