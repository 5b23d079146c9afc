"""Several quota schemes side by side: per-layer densities and kept counts at one density."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .._args import check_density, check_network, select_layers
from ..errors import MaskError, QuotaError
from ..graph.network import Network
from ..registry import get as get_scheme
from .quotas import quota_counts, quotas

__all__ = ["quota_table"]


def quota_table(
    net: Network,
    schemes: Sequence[str],
    density: float,
    *,
    dense: Iterable[str] | str | None = None,
    dense_in_budget: bool = True,
    erk_power_scale: float = 1.0,
) -> dict[str, Any]:
    """How each quota scheme spreads one overall density over the layers (``sparsegraph
    quotas --json``).

    Parameters
    ----------
    net : Network
        The network.
    schemes : sequence of str
        Quota scheme names (:data:`sparsegraph.QUOTA_SCHEMES`; not ``from_mask``, which needs
        a mask).
    density : float
        Overall density in (0, 1].
    dense, dense_in_budget, erk_power_scale
        As in :func:`sparsegraph.quotas` (``erk_power_scale`` applies to ``erk`` only).

    Returns
    -------
    dict
        ``network``, ``params``, ``density``, ``dense`` (layer names kept dense),
        ``dense_in_budget``, ``layers`` (per layer: ``name``, ``shape``, ``params``, ``dense``,
        ``density`` and ``kept`` per scheme), ``totals`` (per scheme: ``kept``, ``density``) and
        ``errors`` (scheme -> message, for schemes infeasible at this density when several are
        asked for).

    Raises
    ------
    QuotaError
        For no scheme, an unknown one, ``from_mask``, a density outside (0, 1], unknown dense
        layers, or the only scheme asked for being infeasible.
    ArgumentError
        If ``net`` is not a Network.
    NetworkError
        If the network has no prunable weights (the totals are fractions of them).

    Examples
    --------
    >>> import sparsegraph as sg
    >>> net = sg.trace(*sg.build_model("lenet300"))
    >>> t = quota_table(net, ["uniform", "igq"], 0.1)
    >>> t["totals"]["igq"]["kept"] == round(0.1 * net.params), t["layers"][2]["kept"]["uniform"]
    (True, 100)
    """
    net = check_network(net, weights=True)
    d = check_density(density)
    names = list(schemes)
    if not names:
        raise QuotaError("schemes: give at least one quota scheme")
    for s in names:
        if "mask" in get_scheme(s, "quota").needs:
            raise QuotaError(f"scheme {s!r} copies a given mask's densities: use "
                             f"quotas(net, {s!r}, masks=...)")
    try:
        dense_names = set(select_layers(net, dense, what="dense"))
    except MaskError as exc:
        raise QuotaError(str(exc)) from None
    results: dict[str, dict[str, float]] = {}
    errors: dict[str, str] = {}
    for s in names:
        opts: dict[str, Any] = {"dense": sorted(dense_names) or None,
                                "dense_in_budget": dense_in_budget}
        if "erk_power_scale" in get_scheme(s).options:
            opts["erk_power_scale"] = erk_power_scale
        try:
            results[s] = quotas(net, s, d, **opts)
        except QuotaError as exc:
            if len(names) == 1:
                raise
            errors[s] = str(exc)
    counts = {s: quota_counts(net, q) for s, q in results.items()}
    layers = [
        {
            "name": layer.name,
            "shape": list(layer.shape),
            "params": layer.params,
            "dense": layer.name in dense_names,
            "density": {s: q[layer.name] for s, q in results.items()},
            "kept": {s: c[layer.name] for s, c in counts.items()},
        }
        for layer in net.layers
    ]
    totals = {s: {"kept": sum(c.values()), "density": sum(c.values()) / net.params}
              for s, c in counts.items()}
    return {
        "network": net.name,
        "params": net.params,
        "density": d,
        "dense": [n for n in net.names if n in dense_names],
        "dense_in_budget": bool(dense_in_budget),
        "layers": layers,
        "totals": totals,
        "errors": errors,
    }
