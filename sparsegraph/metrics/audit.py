"""Audit a mask: direct vs effective density per layer and for the network (DESIGN §3).

A kept weight is *effective* when it lies on some input-to-output path of the linearised masked
network (:func:`sparsegraph.effective_masks`); the rest of the kept weights are *inactive*. The
report gives, per prunable layer and in total, the parameters, kept and effective weights, the
direct density ``kept / params`` and effective density ``effective / params``, the units and how
many are dead, and for the network the compressions and whether it has collapsed. A layer
without weights (a zero-size ``nn.Linear(16, 0)``) has both densities 1.0: nothing of it is
pruned (as :func:`sparsegraph.quotas` reports it); a network without any prunable weight has no
densities and is refused.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._args import check_masks, check_network, dense_layers
from ..errors import MaskError
from ..graph.network import Layer, Network

__all__ = ["AuditReport", "LayerAudit", "NetworkAudit", "audit", "dead_units"]


@dataclass(frozen=True)
class LayerAudit:
    """The audit of one prunable layer (see :func:`audit` for the meaning of each field)."""

    name: str
    shape: tuple[int, ...]
    params: int
    kept: int
    effective: int
    direct_density: float
    effective_density: float
    in_units: int
    out_units: int
    dead_in_units: int
    dead_out_units: int

    @property
    def inactive(self) -> int:
        """Kept weights that lie on no input-output path."""
        return self.kept - self.effective


@dataclass(frozen=True)
class NetworkAudit:
    """Totals over all prunable layers."""

    params: int
    kept: int
    effective: int
    direct_density: float
    effective_density: float
    direct_compression: float
    effective_compression: float
    collapsed: bool


def _json_number(x: float) -> float | str:
    return "inf" if math.isinf(x) else x


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` returns.

    Attributes
    ----------
    network : NetworkAudit
        Totals.
    layers : list of LayerAudit
        One record per prunable layer, in network order.
    dense_layers : list of str
        Layers the mask had no key for, taken as dense.
    model : str
        The network's label.
    """

    network: NetworkAudit
    layers: list[LayerAudit]
    dense_layers: list[str]
    model: str = "network"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN §6 (infinite compressions as the string ``"inf"``), plus
        ``dense_layers`` and ``model``."""
        net = asdict(self.network)
        for key in ("direct_compression", "effective_compression"):
            net[key] = _json_number(net[key])
        layers = []
        for layer in self.layers:
            record = asdict(layer)
            record["shape"] = list(layer.shape)
            layers.append(record)
        return {"model": self.model, "network": net, "layers": layers,
                "dense_layers": list(self.dense_layers)}

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"sparsegraph audit: {self.model}", show_lines=False)
        for col in ("layer", "shape", "params", "kept", "effective", "direct", "effective",
                    "dead in", "dead out"):
            table.add_column(col, justify="left" if col in ("layer", "shape") else "right",
                             no_wrap=True)
        for r in self.layers:
            style = "red" if r.kept and not r.effective else ("yellow" if r.inactive else None)
            table.add_row(
                r.name + (" (dense: no key)" if r.name in self.dense_layers else ""),
                "x".join(map(str, r.shape)), f"{r.params:,}", f"{r.kept:,}", f"{r.effective:,}",
                f"{r.direct_density:.4g}", f"{r.effective_density:.4g}",
                f"{r.dead_in_units}/{r.in_units}", f"{r.dead_out_units}/{r.out_units}",
                style=style,
            )
        n = self.network
        table.add_section()
        table.add_row("total", "", f"{n.params:,}", f"{n.kept:,}", f"{n.effective:,}",
                      f"{n.direct_density:.4g}", f"{n.effective_density:.4g}", "", "",
                      style="bold")
        yield table
        yield Text(
            f"direct compression {n.direct_compression:.4g}x, effective compression "
            f"{n.effective_compression:.4g}x; {n.kept - n.effective:,} kept weights "
            f"({(n.kept - n.effective) / max(n.kept, 1):.2%}) are inactive"
        )
        if self.dense_layers:
            yield Text(f"taken as dense (no key in the mask): {', '.join(self.dense_layers)}",
                       style="yellow")
        if n.collapsed:
            yield Text(
                "LAYER COLLAPSE: no input-output path is left; the masked network computes a "
                "constant", style="bold white on red"
            )

    def __str__(self) -> str:
        from rich.console import Console

        buffer = io.StringIO()
        Console(width=160, file=buffer, color_system=None).print(self)
        return buffer.getvalue()


def dead_units(layer: Layer, effective: np.ndarray) -> tuple[int, int]:
    """Input and output units of a layer with no effective weight in it.

    Parameters
    ----------
    layer : Layer
        The layer.
    effective : ndarray of bool
        Its effective mask, of the layer's weight shape.

    Returns
    -------
    (dead_in, dead_out) : tuple of int
        Input units (neurons or channels) none of whose outgoing weights in this layer is
        effective, and output units with no effective incoming weight.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer
    >>> layer = Layer("fc.weight", "fc", "linear", (2, 3), 3, 2)
    >>> dead_units(layer, np.array([[1, 0, 0], [1, 0, 0]], dtype=bool))
    (2, 0)
    """
    out_ch, groups = layer.out_channels, layer.groups
    cin_g = layer.in_channels // groups
    # (out, in // groups, taps) in every weight layout; explicit sizes, as a zero-size layer
    # has none to infer
    taps = layer.as_matrix(effective).reshape(out_ch, cin_g, math.prod(layer.kernel))
    per_pair = taps.any(axis=2)
    alive_out = per_pair.any(axis=1)
    alive_in = per_pair.reshape(groups, out_ch // groups, cin_g).any(axis=1).reshape(-1)
    return int(layer.in_channels - alive_in.sum()), int(out_ch - alive_out.sum())


def _check_effective(
    net: Network, canonical: Mapping[str, np.ndarray], effective: Any
) -> dict[str, np.ndarray]:
    """``effective`` as canonical masks: every layer present, each a subset of its mask."""
    try:
        checked = check_masks(net, effective, fill_missing=False, what="effective")
    except MaskError as exc:
        raise MaskError(f"effective: {exc}") from None
    missing = [name for name in net.names if name not in checked]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MaskError(
            f"effective: no mask for layer {missing[0]!r}{more}; pass effective_masks(net, "
            "masks) for every layer, or leave effective=None to compute it"
        )
    for name, eff in checked.items():
        extra = int(np.count_nonzero(eff & ~canonical[name]))
        if extra:
            raise MaskError(
                f"effective mask {name!r} keeps {extra} weights that the mask prunes; an "
                "effective mask is a subset of the mask (effective_masks(net, masks))"
            )
    return checked


def audit(
    net: Network, masks: Mapping[str, Any], *, effective: Mapping[str, np.ndarray] | None = None
) -> AuditReport:
    """Direct and effective density of a mask, per layer and for the whole network.

    Parameters
    ----------
    net : Network
        From :func:`sparsegraph.trace`.
    masks : mapping of str to array-like
        0/1 masks keyed by parameter name; a prunable layer without a key is dense.
    effective : mapping of str to array-like, optional
        The effective masks if already computed (skips :func:`sparsegraph.effective_masks`):
        one for every prunable layer, checked like a mask (0/1 values, the layer's shape) and
        as a subset of ``masks`` (an effective weight is kept).

    Returns
    -------
    AuditReport
        ``.to_dict()`` is the JSON of DESIGN §6; printing it with rich shows a table.

    Raises
    ------
    MaskError
        If a key is unknown, a shape wrong or a value not 0/1 (in ``masks`` or ``effective``);
        if ``effective`` lacks a layer or keeps a weight that ``masks`` prunes.
    ArgumentError
        If ``net`` is not a Network (e.g. a model name: trace it first).
    NetworkError
        If the network has no prunable weights (no layer, or only zero-size ones).

    Notes
    -----
    ``collapsed`` means that no kept weight is effective: no input-output path passes through
    the prunable layers (layer collapse; every path of a network passes through its first
    layer). ``effective_compression`` is then infinite. Dead units are counted per layer (see
    :func:`dead_units`). Cost: one :func:`~sparsegraph.effective_masks` call plus one count per
    layer.

    Examples
    --------
    >>> import numpy as np, torch
    >>> import sparsegraph as sg
    >>> net = sg.trace(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)),
    ...                torch.zeros(1, 3))
    >>> rep = audit(net, {"0.weight": np.array([[1, 1, 1], [0, 0, 0]]),
    ...                   "1.weight": np.array([[0, 1], [0, 1]])})
    >>> rep.network.kept, rep.network.effective, rep.network.collapsed
    (5, 0, True)
    >>> rep.to_dict()["network"]["effective_compression"]
    'inf'
    """
    canonical = check_masks(check_network(net, weights=True), masks)
    if effective is None:
        from .effective import effective_masks

        effective = effective_masks(net, canonical)
    else:
        effective = _check_effective(net, canonical, effective)
    rows = []
    for layer in net.layers:
        kept = int(np.count_nonzero(canonical[layer.name]))
        eff_mask = effective[layer.name]
        eff = int(np.count_nonzero(eff_mask))
        dead_in, dead_out = dead_units(layer, eff_mask)
        rows.append(LayerAudit(
            name=layer.name, shape=tuple(layer.shape), params=layer.params, kept=kept,
            effective=eff, direct_density=kept / layer.params if layer.params else 1.0,
            effective_density=eff / layer.params if layer.params else 1.0,
            in_units=layer.in_channels,
            out_units=layer.out_channels, dead_in_units=dead_in, dead_out_units=dead_out,
        ))
    params = sum(r.params for r in rows)
    kept = sum(r.kept for r in rows)
    eff = sum(r.effective for r in rows)
    totals = NetworkAudit(
        params=params, kept=kept, effective=eff, direct_density=kept / params,
        effective_density=eff / params,
        direct_compression=params / kept if kept else math.inf,
        effective_compression=params / eff if eff else math.inf,
        collapsed=eff == 0,
    )
    return AuditReport(totals, rows, dense_layers(net, masks), net.name)
