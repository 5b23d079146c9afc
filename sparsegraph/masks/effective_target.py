"""Random masks that reach a target *effective* density (Vysogorets & Kempe's low-cost
extension for random pruning).

A random mask at direct density ``D`` has an effective density below ``D``: some kept weights lie
on no input-output path. :func:`random_masks_effective` searches the direct density whose masks
have the largest effective density at most the target, over a chain of nested random masks
(each layer's weights in one random order, the first ``c_l(K)`` kept), by bisection on the
overall kept count ``K``; :class:`EffectiveSearch` records what it found.
:func:`sparsegraph.random_masks` with ``effective=True`` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._args import check_choice, check_density
from ..errors import QuotaError
from ..graph.network import Network
from ..registry import GRANULARITIES
from .quotas import quota_counts
from .quotas import quotas as make_quotas
from .sampling import _expand, _unit_counts, _unit_size, layer_seeds

__all__ = ["EffectiveSearch", "random_masks_effective"]



class _MasksWithInfo(dict):
    """A plain dict of masks with an ``info`` attribute (:class:`EffectiveSearch`)."""

    info: EffectiveSearch


@dataclass(frozen=True)
class EffectiveSearch:
    """What :func:`random_masks_effective` found.

    Attributes
    ----------
    scheme : str
        The quota scheme.
    target : float
        The requested effective density.
    direct_density, effective_density : float
        Of the returned masks (kept / params and effective / params over the prunable weights).
    kept, effective, params : int
        Kept and effective weights of the returned masks, and prunable weights.
    steps : int
        Candidate masks evaluated (each one effective-sparsity pass).
    """

    scheme: str
    target: float
    direct_density: float
    effective_density: float
    kept: int
    effective: int
    params: int
    steps: int


def _effective_fn() -> Any:
    """The effective-mask function (a hook so tests can substitute a reference)."""
    from ..metrics.effective import effective_masks

    return effective_masks


def random_masks_effective(
    net: Network,
    scheme: str,
    density: float,
    *,
    seed: int | np.random.SeedSequence = 0,
    granularity: str = "weight",
    **quota_opts: Any,
) -> tuple[dict[str, np.ndarray], EffectiveSearch]:
    """Random masks whose *effective* density is the largest reachable one ``<= density``.

    The low-cost extension of Vysogorets & Kempe for random pruning. Each layer's weights (or
    units) get a random order from the layer's child stream; the candidate at overall direct
    count ``K`` keeps, per layer, the first ``c_l(K)`` of that order, where ``c(K)`` are the
    quota's counts at direct density ``K / N``. So each candidate is the previous, larger one
    with more weights removed at random per the quota at the new density: the candidates are
    nested and the effective density grows with ``K``. Bisection on ``K`` finds the largest
    ``K`` whose effective density is ``<= density``.

    Parameters
    ----------
    net : Network
        The network.
    scheme : str
        A quota scheme name.
    density : float
        Target effective density in (0, 1].
    seed : int or SeedSequence, default 0
        As in :func:`random_masks` (one child per layer; the same seed gives a different mask
        from ``random_masks(effective=False)``, the draws being orderings here).
    granularity : {"weight", "kernel", "channel"}
        As in :func:`random_masks`.
    **quota_opts
        Passed to :func:`sparsegraph.quotas` (``dense``, ``dense_in_budget``, ...).

    Returns
    -------
    masks : dict of str to ndarray of bool
        The direct masks (their dead weights included).
    info : EffectiveSearch
        Both densities and the counts.

    Raises
    ------
    QuotaError
        For a bad density, scheme or quota option, or when even the sparsest feasible mask of
        the scheme exceeds the target effective density.
    ArgumentError
        For an unknown granularity or a bad seed.

    Notes
    -----
    About ``log2(N)`` effective-sparsity passes; O(params) memory for the orders. To keep the
    chain nested even where largest-remainder rounding is not monotone in the total (Alabama
    paradox), each candidate's counts are clamped between those of the current bracket, so a
    count may differ from the quota's by one weight.

    Examples
    --------
    >>> from sparsegraph.pytorch.models import build_model
    >>> from sparsegraph.masks.effective_target import random_masks_effective
    >>> from sparsegraph.graph.trace import trace
    >>> net = trace(*build_model("lenet300"))
    >>> masks, info = random_masks_effective(net, "erk", 0.01, seed=0)
    >>> info.effective_density <= 0.01 <= info.direct_density
    True
    """
    target = check_density(density, "density (target effective density)")
    if not isinstance(scheme, str):
        raise QuotaError("random_masks_effective needs a scheme name")
    check_choice(granularity, GRANULARITIES, "granularity")
    effective_masks = _effective_fn()
    seeds = layer_seeds(seed, len(net.layers))
    sizes = [_unit_size(layer, granularity) for layer in net.layers]
    orders = [
        np.random.Generator(np.random.PCG64(seq)).permutation(layer.params // size)
        for layer, seq, size in zip(net.layers, seeds, sizes, strict=True)
    ]
    big_n = net.params
    params = np.array([layer.params for layer in net.layers], dtype=np.int64)

    def counts_at(k: int) -> np.ndarray | None:
        try:
            q = make_quotas(net, scheme, k / big_n, **quota_opts)
        except QuotaError as exc:
            if "infeasible" in str(exc) or "dense layers keep" in str(exc):
                return None
            raise
        c = quota_counts(net, q)
        c = _unit_counts(net, c, granularity)
        return np.array([c[layer.name] for layer in net.layers], dtype=np.int64)

    def build(units: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for layer, order, size, c in zip(net.layers, orders, sizes, units, strict=True):
            mask = np.zeros(layer.params, dtype=np.bool_)
            chosen = np.sort(order[: int(c)])
            mask[_expand(chosen.astype(np.int64), size)] = True
            out[layer.name] = mask.reshape(layer.shape)
        return out

    def effective_count(masks: dict[str, np.ndarray]) -> int:
        eff = effective_masks(net, masks)
        return int(sum(int(np.count_nonzero(eff[name])) for name in masks))

    units_total = params // np.array(sizes, dtype=np.int64)
    # brackets: (nominal K, unit counts or None if infeasible, effective count)
    lo_k, lo_units, lo_eff = 0, np.zeros(len(net.layers), dtype=np.int64), 0
    hi_k, hi_units = big_n, units_total.copy()
    steps = 0
    full = build(hi_units)
    hi_eff = effective_count(full)
    steps += 1
    if hi_eff / big_n <= target:
        lo_k, lo_units, lo_eff = hi_k, hi_units, hi_eff
    else:
        while hi_k - lo_k > 1:
            mid = (lo_k + hi_k) // 2
            units = counts_at(mid)
            if units is None:
                lo_k, lo_units, lo_eff = mid, None, 0
                continue
            floor = lo_units if lo_units is not None else np.zeros_like(units)
            units = np.minimum(np.maximum(units, floor), hi_units)
            eff = effective_count(build(units))
            steps += 1
            if eff / big_n <= target:
                lo_k, lo_units, lo_eff = mid, units, eff
            else:
                hi_k, hi_units = mid, units
    if lo_units is None or (lo_k == 0 and target < 1.0):
        raise QuotaError(
            f"no mask of scheme {scheme!r} reaches effective density <= {target}: the sparsest "
            "feasible direct density already exceeds it"
        )
    masks = build(lo_units)
    kept = int(sum(int(m.sum()) for m in masks.values()))
    info = EffectiveSearch(scheme=scheme, target=target, direct_density=kept / big_n,
                           effective_density=lo_eff / big_n, kept=kept, effective=lo_eff,
                           params=big_n, steps=steps)
    return masks, info

