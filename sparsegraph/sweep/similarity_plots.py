"""Figures of layer similarity: per-layer lines and the cross-layer matrix.

Drawn like :mod:`sparsegraph.sweep.plots` (own Agg figures, never ``pyplot``; PNG written when
``path`` is given; matplotlib is the ``plot`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ArgumentError
from .plots import _MARKERS, PathLike, _color, _new_figure, _save

__all__ = ["plot_similarity", "plot_similarity_matrix"]

_LABELS = {"svcca": "SVCCA", "pwcca": "PWCCA", "cka": "CKA (minibatch)"}


def _as_dict(table: Any, where: str) -> dict[str, Any]:
    data = table.to_dict() if hasattr(table, "to_dict") else table
    if not isinstance(data, Mapping) or "method" not in data or "layers" not in data:
        raise ArgumentError(f"{where}: expected a SimilarityTable or its to_dict() data, got "
                            f"{type(table).__name__}")
    if data["layers"] and isinstance(data["layers"][0], str):
        raise ArgumentError(f"{where}: a SimilarityMatrix; draw it with plot_similarity_matrix")
    return dict(data)


def plot_similarity(
    tables: Any,
    path: PathLike | None = None,
    *,
    title: str | None = None,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylabel: str = "similarity",
) -> Any:
    """Similarity per layer: layers on x, similarity on y, one line per compared model.

    Parameters
    ----------
    tables : SimilarityTable, or mapping of str to SimilarityTable or sequence of them
        One table, or labelled tables (``{"magnitude 10%": [svcca_table, cka_table]}``; their
        ``to_dict()`` data work too). One panel per method, side by side; a line per label in
        each panel, layers in the order of the first table.
    path : str, path or binary file, optional
        Where to write the PNG.
    title : str, optional
        Figure title.
    styles : mapping of str to dict, optional
        Extra ``Axes.plot`` keywords per label (``color``, ``linestyle``, ``marker``, ...).
    ylabel : str, default "similarity"
        The y-axis label (e.g. "similarity to the dense model").

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ArgumentError
        For anything that is not a table (or its dict), or no table at all.
    """
    if hasattr(tables, "to_dict") or (isinstance(tables, Mapping) and "method" in tables):
        tables = {"": tables}
    if not isinstance(tables, Mapping) or not tables:
        raise ArgumentError("plot_similarity: expected a table or a mapping of label to tables")
    series: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # method -> [(label, table)]
    for label, value in tables.items():
        items = value if isinstance(value, Sequence) and not isinstance(value, Mapping) \
            else [value]
        for item in items:
            data = _as_dict(item, f"plot_similarity[{label!r}]")
            series.setdefault(str(data["method"]), []).append((str(label), data))
    layers: list[str] = []
    for entries in series.values():
        for _, data in entries:
            layers += [r["layer"] for r in data["layers"] if r["layer"] not in layers]
    fig = _new_figure(max(6.0, 4.6 * len(series) + 2.4), 4.2)
    axes = fig.subplots(1, len(series), squeeze=False, sharey=True)[0]
    labels = list(dict.fromkeys(label for e in series.values() for label, _ in e))
    values_seen: list[float] = []
    for ax, (method, entries) in zip(axes, series.items(), strict=True):
        for label, data in entries:
            xs = [layers.index(r["layer"]) for r in data["layers"]]
            ys = [float(r["value"]) for r in data["layers"]]
            values_seen += ys
            i = labels.index(label)
            style = {"color": _color(i), "marker": _MARKERS[i % len(_MARKERS)],
                     "linewidth": 1.6, "markersize": 4.5}
            style.update((styles or {}).get(label, {}))
            ax.plot(xs, ys, label=label or None, **style)
        ax.set_title(_LABELS.get(method, method), fontsize=10)
        ax.set_xticks(range(len(layers)))
        ax.set_xticklabels(layers, rotation=45 if len(layers) > 3 else 0, ha="right"
                           if len(layers) > 3 else "center", fontsize=8)
        ax.set_xlabel("layer (output of)")
        ax.grid(True, linewidth=0.6, alpha=0.5)
    low = min(0.0, min(values_seen, default=0.0))
    axes[0].set_ylim(low - 0.03, 1.03)
    axes[0].set_ylabel(ylabel)
    if any(labels):
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8,
                        framealpha=0.9)
    if title:
        fig.suptitle(title, fontsize=11)
    _save(fig, path)
    return fig


def plot_similarity_matrix(matrix: Any, path: PathLike | None = None, *,
                           title: str | None = None) -> Any:
    """The cross-layer similarity matrix as a heat map (A's layers down, B's across).

    Parameters
    ----------
    matrix : SimilarityMatrix or its to_dict() data
        From ``layer_similarity(..., cross=True)``.
    path : str, path or binary file, optional
        Where to write the PNG.
    title : str, optional
        By default the method's name.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ArgumentError
        For anything that is not such a matrix.
    """
    data = matrix.to_dict() if hasattr(matrix, "to_dict") else matrix
    if not isinstance(data, Mapping) or not {"layers_a", "layers_b", "values"} <= set(data):
        raise ArgumentError(f"plot_similarity_matrix: expected a SimilarityMatrix or its "
                            f"to_dict() data, got {type(matrix).__name__}")
    values = np.asarray(data["values"], dtype=np.float64)
    rows, cols = list(data["layers_a"]), list(data["layers_b"])
    side = 0.28
    fig = _new_figure(max(4.5, side * len(cols) + 3.0), max(3.5, side * len(rows) + 2.0))
    ax = fig.add_subplot()
    image = ax.imshow(values, vmin=min(0.0, float(values.min())), vmax=1.0, cmap="magma",
                      origin="upper", aspect="auto")
    fig.colorbar(image, ax=ax, label=_LABELS.get(str(data.get("method")), "similarity"))
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=7)
    ax.set_xlabel("layer of model B")
    ax.set_ylabel("layer of model A")
    ax.set_title(title or f"{_LABELS.get(str(data.get('method')), 'similarity')} between layers",
                 fontsize=10)
    _save(fig, path)
    return fig
