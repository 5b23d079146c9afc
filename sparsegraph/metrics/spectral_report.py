"""The records of :func:`sparsegraph.spectral` and how they are shown: one
:class:`LayerSpectrum` per layer, the :class:`SpectralReport` with its network summaries, and
the table the command line prints, in which every missing value says why.

The definitions of the numbers are in :mod:`sparsegraph.metrics.spectral`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import MaskError

__all__ = [
    "IMDB_REASONS",
    "LayerSpectrum",
    "SUMMARY_FIELDS",
    "SpectralReport",
    "imdb_reason_code",
    "missing_note",
    "summaries",
]

SUMMARY_FIELDS = (
    "lambda1",
    "mu_hat",
    "delta_s",
    "delta_s_norm",
    "delta_r",
    "delta_r_norm",
    "expansion_ratio",
    "imdb",
    "imdb_delta_r",
    "imdb_delta_s",
    "narc",
    "narc_single_edge",
    "weighted_gap",
)


@dataclass(frozen=True)
class LayerSpectrum:
    """Spectral metrics of one layer graph; see the module docstring for every definition.

    ``scored`` is False (and every score ``None``, ``reason`` saying why) for a layer that
    fails the degree gate. Degrees and node counts are given whenever the layer has an edge.
    """

    name: str
    shape: tuple[int, ...]
    params: int
    kept: int
    dim_left: int
    dim_right: int
    n_left: int
    n_right: int
    edges: int
    mean_degree_left: float | None
    mean_degree_right: float | None
    expansion_ratio: float | None
    scored: bool
    reason: str | None
    imdb_reason: str | None = None
    lambda1: float | None = None
    mu_hat: float | None = None
    bound_s: float | None = None
    delta_s: float | None = None
    delta_s_norm: float | None = None
    bound_r: float | None = None
    delta_r: float | None = None
    delta_r_norm: float | None = None
    imdb: float | None = None
    imdb_delta_r: float | None = None
    imdb_delta_s: float | None = None
    imdb_subgraphs: int | None = None
    imdb_scored: int | None = None
    narc: float | None = None
    narc_single_edge: float | None = None
    weighted_gap: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (``None`` where there is no value)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


#: IMDB's missing-value reasons: code -> (short label for tables, sentence for records).
IMDB_REASONS = {
    "off": ("IMDB off", "IMDB was not computed (switched off)"),
    "unscored": ("layer unscored", "the layer is not scored (see reason), so neither is IMDB"),
    "no_groups": ("IMDB: no degree group",
                  "no 3 or more inputs share one degree: IMDB scores groups of at least 3 "
                  "left nodes of equal degree (small fan-ins often have none)"),
    "none_scored": ("IMDB: groups too sparse",
                    "no left-degree group passes the degree gate (mean degree >= 3 on both "
                    "sides of its subgraph)"),
}


def imdb_reason_code(rec: LayerSpectrum) -> str | None:
    """Which of :data:`IMDB_REASONS` explains a missing IMDB (None when it has a value)."""
    if rec.imdb is not None:
        return None
    if not rec.scored:
        return "unscored"
    if rec.imdb_subgraphs is None:
        return "off"
    return "no_groups" if rec.imdb_subgraphs == 0 else "none_scored"


@dataclass(frozen=True)
class SpectralReport:
    """Per-layer spectral records and network summaries; :meth:`to_dict` is the JSON form.

    Attributes
    ----------
    name : str
        The network's label.
    layers : list of LayerSpectrum
        One record per prunable layer, in network order.
    mean : dict of str to float or None
        Plain mean of each :data:`SUMMARY_FIELDS` entry over the layers that have a value (the
        paper's aggregation); None when no layer has one.
    weighted_mean : dict of str to float or None
        The same, weighted by each layer's parameter count.
    """

    name: str
    layers: list[LayerSpectrum]
    mean: dict[str, float | None]
    weighted_mean: dict[str, float | None]

    @property
    def scored_layers(self) -> int:
        """Number of layers that passed the degree gate."""
        return sum(1 for r in self.layers if r.scored)

    def layer(self, name: str) -> LayerSpectrum:
        """The record of the layer called ``name``."""
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise MaskError(f"no spectral record for layer {name!r}")

    def __rich__(self) -> Any:
        """A rich table of the layers and the network summary (what the CLI prints)."""
        return _rich_report(self)

    def to_dict(self) -> dict[str, Any]:
        """``{"network": {...}, "layers": [...]}`` with ``null`` where there is no value."""
        return {
            "network": {
                "name": self.name,
                "layers": len(self.layers),
                "scored_layers": self.scored_layers,
                "params": sum(r.params for r in self.layers),
                "kept": sum(r.kept for r in self.layers),
                "mean": dict(self.mean),
                "weighted_mean": dict(self.weighted_mean),
            },
            "layers": [r.to_dict() for r in self.layers],
        }


def summaries(
    records: list[LayerSpectrum],
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    mean: dict[str, float | None] = {}
    wmean: dict[str, float | None] = {}
    for field in SUMMARY_FIELDS:
        vals = [(getattr(r, field), r.params) for r in records if getattr(r, field) is not None]
        if not vals:
            mean[field] = wmean[field] = None
            continue
        v = np.array([a for a, _ in vals], dtype=np.float64)
        w = np.array([b for _, b in vals], dtype=np.float64)
        mean[field] = float(v.mean())
        wmean[field] = float((v * w).sum() / w.sum())
    return mean, wmean



# --------------------------------------------------------------------------------------------
# rich rendering (the CLI prints reports with rich)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


#: Short labels (and their explanation under the table) of why a layer has no scores; the
#: layer's own sentence, with its degrees, is ``LayerSpectrum.reason``.
_UNSCORED = {
    True: ("empty layer", "no kept weight: the layer graph is empty (the layer has collapsed)"),
    False: ("too sparse (mean degree < 3)",
            "the Ramanujan bounds are scored from mean degree 3 on both sides (Hoang et al.'s "
            "gate); the layer's degrees are d_l and d_r, and its kept weights may all be "
            "effective"),
}


def missing_note(rec: LayerSpectrum) -> str:
    """Why a row of the table has ``-`` entries ('' when nothing is missing).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer
    >>> from sparsegraph.metrics.spectral import layer_spectrum
    >>> layer = Layer("fc.weight", "fc", "linear", (4, 6), 6, 4)
    >>> missing_note(layer_spectrum(layer, np.eye(4, 6, dtype=bool)))
    'too sparse (mean degree < 3)'
    """
    return _missing(rec)[0]


def _missing(rec: LayerSpectrum) -> tuple[str, str]:
    if not rec.scored:
        return _UNSCORED[rec.edges == 0]
    code = imdb_reason_code(rec)
    return IMDB_REASONS[code] if code else ("", "")


def _rich_report(rep: SpectralReport) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Ramanujan spectral metrics: {rep.name}", title_justify="left")
    cols = ["layer", "dens", "d_l", "d_r", "λ1", "µ̂", "Δs", "Δr", "Δr/bnd", "IMDB", "NaRC"]
    weighted = any(r.weighted_gap is not None for r in rep.layers)
    if weighted:
        cols.append("w-gap")
    cols.append("why '-'")
    for name in cols:
        if name == "layer":
            table.add_column(name, overflow="fold", min_width=12)
        elif name == "why '-'":
            table.add_column(name, style="dim", overflow="fold", min_width=10)
        else:
            table.add_column(name, justify="right", no_wrap=True)
    notes: dict[str, str] = {}
    for r in rep.layers:
        row = [
            r.name, _fmt(r.kept / r.params if r.params else None, 2),
            _fmt(r.mean_degree_left), _fmt(r.mean_degree_right), _fmt(r.lambda1),
            _fmt(r.mu_hat), _fmt(r.delta_s), _fmt(r.delta_r), _fmt(r.delta_r_norm),
            _fmt(r.imdb), _fmt(r.narc),
        ]
        if weighted:
            row.append(_fmt(r.weighted_gap))
        note, why = _missing(r)
        row.append(note)
        if note:
            notes[note] = why
        table.add_row(*row)
    summary = Table(title="network summary", title_justify="left")
    summary.add_column("metric")
    summary.add_column("mean over layers", justify="right")
    summary.add_column("parameter-weighted", justify="right")
    for field in ("delta_s", "delta_r", "delta_r_norm", "imdb", "narc", "narc_single_edge",
                  "weighted_gap"):
        if rep.mean.get(field) is None and field == "weighted_gap":
            continue
        summary.add_row(field, _fmt(rep.mean.get(field)), _fmt(rep.weighted_mean.get(field)))
    with_imdb = sum(1 for r in rep.layers if r.imdb is not None)
    lines = [f"{rep.scored_layers} of {len(rep.layers)} layers scored (mean degree >= 3 on both "
             f"sides); IMDB on {with_imdb}. '-' is a value that does not exist, never a zero:"]
    lines += [f"  {short}: {why}" for short, why in notes.items()]
    return Group(table, summary, Text("\n".join(lines)))
