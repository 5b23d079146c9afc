"""Figures: effective vs direct compression, per-layer audits and per-layer quotas.

Every function draws on its own :class:`matplotlib.figure.Figure` with an Agg canvas
(``FigureCanvasAgg``), never through ``pyplot``: nothing here selects or changes the user's global
matplotlib backend, no display is needed, and figures are not kept alive by a global registry.
Each returns the figure (for further styling) and, when ``path`` is given, writes it as PNG
(``path`` may also be a binary file object such as ``io.BytesIO``).

matplotlib is the optional ``plot`` extra (``pip install 'sparsegraph-pai[plot]'``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from ..errors import SparseGraphError

__all__ = ["plot_audit", "plot_compression", "plot_quotas"]

_DPI = 130
# colour-blind-safe palette (Okabe & Ito 2008), then matplotlib's tab10 for more schemes
_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

PathLike = str | os.PathLike[str] | IO[bytes]


def _new_figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is in the dev extra
        raise ImportError(
            "plots need matplotlib, the 'plot' extra: pip install 'sparsegraph-pai[plot]'"
        ) from exc
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: PathLike | None) -> None:
    if path is not None:
        fig.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})


def _color(i: int) -> str:
    if i < len(_COLORS):
        return _COLORS[i]
    from matplotlib import colormaps

    return colormaps["tab20"](i % 20)


def _short(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


# ---------------------------------------------------------------------------------------------
# effective vs direct compression
# ---------------------------------------------------------------------------------------------


def plot_compression(
    result: Any,
    path: PathLike | None = None,
    *,
    band: str = "minmax",
    title: str | None = None,
) -> Any:
    """Effective against direct compression per scheme, log-log (Vysogorets & Kempe's figure).

    Parameters
    ----------
    result : CompareResult or sequence of dict
        A :func:`sparsegraph.compare` result, or its network rows (dicts with ``scheme``,
        ``density``, ``seed``, ``direct_compression``, ``effective_compression``,
        ``collapsed``).
    path : str, path or binary file, optional
        Where to write the PNG.
    band : {"minmax", "sd"}, default "minmax"
        What the shaded band around each scheme's mean shows over seeds: their range, or the
        mean plus/minus one standard deviation (clipped to be positive).
    title : str, optional
        The figure title; by default the model name and the number of seeds.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    SparseGraphError
        If there is no successful network row to draw or ``band`` is unknown.

    Notes
    -----
    x is the direct compression ``params / kept``, y the effective compression
    ``params / effective``; the dashed diagonal ``y = x`` is a mask without dead weights, and
    the distance above it is the share of kept weights that are inactive. The line is the mean
    over seeds. A mask whose network collapsed (no input-output path) has infinite effective
    compression and cannot sit on a log axis: the first direct compression at which a scheme
    collapsed for any seed is marked by an ``x`` on the top edge and a dotted vertical line in
    the scheme's colour (markers of schemes that collapse at nearly the same compression are
    stacked and labelled, each artist's ``gid`` is ``"collapse:<scheme>"``), and the scheme's
    line ends where all its seeds collapsed.
    """
    if band not in ("minmax", "sd"):
        raise SparseGraphError(f"band: expected 'minmax' or 'sd', got {band!r}")
    if hasattr(result, "network_rows"):
        rows = result.network_rows()
        model = result.provenance.get("model", {}).get("name", "")
        order = list(result.schemes)
    else:
        rows = [dict(r) for r in result if r.get("layer", "__network__") == "__network__"]
        model = ""
        order = list(dict.fromkeys(r["scheme"] for r in rows))
    if not rows:
        raise SparseGraphError("plot_compression: no successful network rows to draw")
    seeds = sorted({r["seed"] for r in rows})

    fig = _new_figure(7.2, 5.2)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)
    xs_all: list[float] = []
    ys_all: list[float] = []
    any_collapse = False
    collapses: list[tuple[float, str, Any]] = []
    for i, scheme in enumerate(order):
        mine = [r for r in rows if r["scheme"] == scheme]
        color, marker = _color(i), _MARKERS[i % len(_MARKERS)]
        if not mine:
            ax.plot([], [], color=color, marker=marker, linestyle="none",
                    label=f"{scheme} (every task failed)")
            continue
        by_density: dict[float, list[dict[str, Any]]] = {}
        for r in mine:
            by_density.setdefault(r["density"], []).append(r)
        points = []
        for _density, group in by_density.items():
            x = float(np.mean([g["direct_compression"] for g in group]))
            y = np.array([g["effective_compression"] for g in group], dtype=float)
            collapsed = any(bool(g["collapsed"]) or not math.isfinite(g["effective_compression"])
                            for g in group)
            points.append((x, y, collapsed))
        points.sort(key=lambda p: p[0])
        line_x, mean_y, lo_y, hi_y = [], [], [], []
        collapse_x = None
        for x, y, collapsed in points:
            if collapsed and collapse_x is None:
                collapse_x = x
            finite = y[np.isfinite(y)]
            if finite.size == 0 or finite.size < y.size:
                continue  # a collapsed seed has no finite effective compression
            m = float(finite.mean())
            if band == "minmax":
                lo, hi = float(finite.min()), float(finite.max())
            else:
                sd = float(finite.std())
                lo, hi = max(m - sd, m * 1e-3), m + sd
            line_x.append(x)
            mean_y.append(m)
            lo_y.append(lo)
            hi_y.append(hi)
        if line_x:
            ax.plot(line_x, mean_y, color=color, marker=marker, markersize=4, linewidth=1.6,
                    label=scheme)
            if len(seeds) > 1:
                ax.fill_between(line_x, lo_y, hi_y, color=color, alpha=0.2, linewidth=0)
            xs_all += line_x
            ys_all += lo_y + hi_y
        else:
            ax.plot([], [], color=color, marker=marker, label=f"{scheme} (collapsed everywhere)")
        if collapse_x is not None:
            any_collapse = True
            xs_all.append(collapse_x)
            collapses.append((collapse_x, scheme, color))
            ax.axvline(collapse_x, color=color, linestyle=":", linewidth=1.2, alpha=0.9)
    _collapse_markers(ax, top, collapses)
    if xs_all:
        lo_x, hi_x = min(xs_all), max(xs_all)
        lo_lim = min([lo_x] + ys_all) / 1.3
        hi_lim = max([hi_x] + ys_all) * 1.6
        ax.plot([lo_lim, hi_lim], [lo_lim, hi_lim], color="0.45", linestyle="--", linewidth=1,
                zorder=0)
        ax.set_xlim(lo_x / 1.3, hi_x * 1.3)
        ax.set_ylim(lo_lim, hi_lim)
    top_axis = ax.secondary_xaxis("top", functions=(_reciprocal, _reciprocal))
    top_axis.set_xlabel("overall density  (kept / parameters)", fontsize=9)
    top_axis.tick_params(labelsize=8)
    ax.set_xlabel("direct compression  (parameters / kept weights)")
    ax.set_ylabel("effective compression  (parameters / effective weights)")
    ax.grid(True, which="major", linewidth=0.6, alpha=0.5)
    ax.grid(True, which="minor", linewidth=0.3, alpha=0.25)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.45", linestyle="--", linewidth=1))
    labels.append("effective = direct")
    if any_collapse:
        handles.append(Line2D([], [], color="0.2", marker="x", linestyle=":", markersize=8,
                              markeredgewidth=2))
        labels.append("layer collapse (first, any seed)")
    if len(seeds) > 1:
        from matplotlib.patches import Patch

        handles.append(Patch(color="0.5", alpha=0.3))
        labels.append("seed range" if band == "minmax" else "mean ± 1 sd over seeds")
    ax.legend(handles, labels, loc="upper left", fontsize=9, framealpha=0.9)
    if title is None:
        seed_text = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
        title = f"{model + ': ' if model else ''}effective vs direct compression ({seed_text})"
    ax.set_title(title, fontsize=11)
    _save(fig, path)
    return fig


#: Collapse markers closer than this factor in direct compression share one stack.
_SAME_X = 1.06


def _collapse_markers(ax: Any, top: Any, collapses: list[tuple[float, str, Any]]) -> None:
    """An ``x`` per collapsed scheme on the top edge; markers at (nearly) the same compression
    are stacked downwards and labelled with their scheme, so none hides another."""
    groups: list[list[tuple[float, str, Any]]] = []
    for item in sorted(collapses, key=lambda c: c[0]):
        if groups and item[0] <= groups[-1][0][0] * _SAME_X:
            groups[-1].append(item)
        else:
            groups.append([item])
    for group in groups:
        for j, (x, scheme, color) in enumerate(group):
            y = 0.97 - 0.065 * j
            ax.plot([x], [y], transform=top, marker="x", markersize=10, markeredgewidth=2.2,
                    color=color, clip_on=False, linestyle="none", gid=f"collapse:{scheme}")
            if len(group) > 1:
                ax.text(x, y, f"  {scheme}", transform=top, color=color, fontsize=8,
                        va="center", ha="left", gid=f"collapse-label:{scheme}")


def _reciprocal(x: Any) -> Any:
    with np.errstate(divide="ignore"):
        return 1.0 / np.asarray(x, dtype=float)


# ---------------------------------------------------------------------------------------------
# one audit
# ---------------------------------------------------------------------------------------------


def _fmt_ratio(x: Any) -> str:
    x = float("inf") if x == "inf" else float(x)
    return "∞" if not math.isfinite(x) else f"{x:,.1f}×"


def plot_audit(report: Any, path: PathLike | None = None, *, title: str | None = None) -> Any:
    """Per-layer direct and effective density of one mask, as paired horizontal bars.

    Parameters
    ----------
    report : AuditReport or dict
        :func:`sparsegraph.audit`'s report or its ``to_dict()`` (``audit --json``) data.
    path : str, path or binary file, optional
        Where to write the PNG.
    title : str, optional
        By default the network's direct and effective density and compression.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Densities are on a log axis (they span orders of magnitude across layers). A layer with no
    effective weight has no effective bar; it is labelled ``0 effective`` in red instead.
    Layers are listed top to bottom in network order.
    """
    data = report.to_dict() if hasattr(report, "to_dict") else report
    if not isinstance(data, Mapping) or "layers" not in data or "network" not in data:
        raise SparseGraphError(
            "plot_audit: expected an AuditReport or its to_dict() data, got "
            f"{type(report).__name__}"
        )
    layers = list(data["layers"])
    if not layers:
        raise SparseGraphError("plot_audit: the report has no layers")
    names = [_short(str(rec["name"])) for rec in layers]
    direct = np.array([float(rec["direct_density"]) for rec in layers])
    effective = np.array([float(rec["effective_density"]) for rec in layers])
    n = len(layers)
    fig = _new_figure(9.0, max(2.8, 0.32 * n + 1.6))
    ax = fig.add_subplot()
    ax.set_xscale("log")
    y = np.arange(n)
    h = 0.38
    positive = np.concatenate([direct[direct > 0], effective[effective > 0]])
    floor = float(positive.min()) / 3 if positive.size else 1e-6
    ax.barh(y - h / 2, np.where(direct > 0, direct - floor, np.nan), height=h, color=_COLORS[0],
            label="direct (kept / params)", left=floor)
    ax.barh(y + h / 2, np.where(effective > 0, effective - floor, np.nan), height=h,
            color=_COLORS[1], label="effective (effective / params)", left=floor)
    for i in range(n):
        for value, dy in ((direct[i], -h / 2), (effective[i], h / 2)):
            if value > 0:
                ax.text(value * 1.08, y[i] + dy, f"{value:.3g}", va="center", ha="left",
                        fontsize=7, color="0.25")
        if effective[i] == 0:
            ax.text(floor * 1.1, y[i] + h / 2, "0 effective", va="center", ha="left",
                    fontsize=8, color="#C00000")
        if direct[i] == 0:
            ax.text(floor * 1.1, y[i] - h / 2, "0 kept", va="center", ha="left", fontsize=8,
                    color="#C00000")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8 if n > 20 else 9)
    ax.invert_yaxis()
    # room for the value labels right of the longest bar; up to 1 (dense) and a bit
    ax.set_xlim(floor, min(3.0, float(positive.max()) * 8) if positive.size else 3.0)
    ax.set_xlabel("density (fraction of the layer's weights), log scale")
    ax.set_ylabel("layer")
    ax.grid(True, axis="x", which="major", linewidth=0.6, alpha=0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, framealpha=0.9)
    if title is None:
        nw = data["network"]
        collapsed = "  — COLLAPSED" if nw.get("collapsed") else ""
        model = data.get("model") or getattr(report, "model", "") or ""
        title = (
            f"{model + ': ' if model and model != 'network' else ''}"
            f"direct {float(nw['direct_density']):.3g} ({_fmt_ratio(nw['direct_compression'])}), "
            f"effective {float(nw['effective_density']):.3g} "
            f"({_fmt_ratio(nw['effective_compression'])}){collapsed}"
        )
    ax.set_title(title, fontsize=10)
    _save(fig, path)
    return fig


# ---------------------------------------------------------------------------------------------
# quotas
# ---------------------------------------------------------------------------------------------


def plot_quotas(
    net: Any,
    quotas: Mapping[str, Mapping[str, float]],
    path: PathLike | None = None,
    *,
    title: str | None = None,
    params: Mapping[str, int] | None = None,
) -> Any:
    """Per-layer densities of several schemes, one line per scheme, log y.

    Parameters
    ----------
    net : Network or None
        Gives the layer order (and parameter counts, shown in the tick labels); without it the
        order of the first quota's keys is used.
    quotas : mapping of str to mapping of str to float
        ``{scheme: {layer name: density}}``, e.g. ``{"erk": sg.quotas(net, "erk", 0.01)}``, or
        the densities a pruner's masks reached.
    path : str, path or binary file, optional
        Where to write the PNG.
    title : str, optional
        The figure title.
    params : mapping of str to int, optional
        Weights per layer for the tick labels when ``net`` is None.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    SparseGraphError
        If ``quotas`` is empty or a quota names a layer the network does not have.

    Notes
    -----
    Every density is a whole number of kept weights over the layer's size, so a line that is
    flat in theory (``uniform``) steps on layers with few weights; the legend says so when a
    line is uneven for that reason.
    """
    if not isinstance(quotas, Mapping) or not quotas:
        raise SparseGraphError("plot_quotas: expected {scheme: {layer: density}}, got nothing")
    if net is not None:
        names = list(net.names)
        params = {layer.name: layer.params for layer in net.layers}
    else:
        names = list(next(iter(quotas.values())))
        params = dict(params or {})
    index = {name: i for i, name in enumerate(names)}
    n = len(names)
    longest = max((len(_short(nm)) for nm in names), default=10)
    fig = _new_figure(max(7.0, min(18.0, 0.36 * n + 4.0)), 4.2 + 0.075 * min(longest + 8, 40))
    ax = fig.add_subplot()
    ax.set_yscale("log")
    for i, (scheme, q) in enumerate(quotas.items()):
        unknown = [k for k in q if k not in index]
        if unknown:
            raise SparseGraphError(
                f"plot_quotas: scheme {scheme!r} has a density for unknown layer {unknown[0]!r}"
            )
        xs = [index[k] for k in q]
        order = np.argsort(xs)
        x = np.asarray(xs)[order]
        vals = np.asarray([float(v) for v in q.values()])[order]
        ax.plot(x, np.where(vals > 0, vals, np.nan), color=_color(i),
                marker=_MARKERS[i % len(_MARKERS)], markersize=5, linewidth=1.4, label=scheme)
    labels = [_short(nm) + (f"  ({_count(params[nm])})" if nm in params else "")
              for nm in names]
    step = max(1, math.ceil(n / 60))
    ax.set_xticks(range(0, n, step))
    ax.set_xticklabels(labels[::step], rotation=60, ha="right", rotation_mode="anchor",
                       fontsize=8 if n > 40 else 9)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_xlabel("layer, in network order" + ("  (weights)" if params else ""), fontsize=10)
    ax.set_ylabel("layer density (kept / params), log scale", fontsize=10)
    ax.grid(True, which="major", linewidth=0.6, alpha=0.5)
    legend_title = "scheme"
    if _rounding_visible(quotas, params):
        legend_title += ("\n(kept counts are whole weights,\nso a flat quota such as uniform"
                         "\nsteps on small layers)")
    ax.legend(fontsize=9, framealpha=0.9, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title=legend_title, title_fontsize=8, alignment="left")
    if title is None:
        title = f"{getattr(net, 'name', '') + ': ' if net is not None else ''}layerwise quotas"
        if params:
            first = next(iter(quotas.values()))
            total = sum(params[k] for k in first)
            overall = sum(float(v) * params[k] for k, v in first.items()) / max(total, 1)
            title += f" at overall density {overall:.3g}"
    ax.set_title(title, fontsize=11)
    _save(fig, path)
    return fig


def _rounding_visible(quotas: Mapping[str, Mapping[str, float]], params: Mapping[str, int]
                      ) -> bool:
    """Whether a line is uneven only by integer rounding: its densities differ, yet each is
    within one weight of a common value."""
    for q in quotas.values():
        vals = [(float(v), params.get(k)) for k, v in q.items() if 0.0 < float(v) < 1.0]
        if len(vals) < 2 or any(p is None for _, p in vals):
            continue
        ds = np.array([v for v, _ in vals])
        if np.ptp(ds) <= 1e-12 * ds.max():
            continue
        # the kept-weighted common density, and every layer within one weight of it
        ps = np.array([p for _, p in vals], dtype=float)
        common = float((ds * ps).sum() / ps.sum())
        if np.all(np.abs(ds * ps - common * ps) <= 1.0 + 1e-9):
            return True
    return False


def _count(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)
