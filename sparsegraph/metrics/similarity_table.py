"""The results of :func:`sparsegraph.layer_similarity`: a per-layer table and the cross-layer
matrix, with ``to_dict()`` for JSON and rich renderings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._args import suggest

__all__ = ["LayerSimilarity", "SimilarityMatrix", "SimilarityTable"]

_TITLES = {"svcca": "SVCCA", "pwcca": "PWCCA", "cka": "minibatch CKA"}


@dataclass(frozen=True)
class LayerSimilarity:
    """One row of a :class:`SimilarityTable`."""

    layer: str
    value: float
    features_a: int
    features_b: int
    samples: int
    result: Any = field(default=None, repr=False, compare=False)  # CCAResult or CKAResult

    def to_dict(self) -> dict[str, Any]:
        """``{"layer", "value", "features_a", "features_b", "samples"}``."""
        return {"layer": self.layer, "value": self.value, "features_a": self.features_a,
                "features_b": self.features_b, "samples": self.samples}


@dataclass(frozen=True)
class SimilarityTable:
    """Per-layer similarity of two models (:func:`layer_similarity`): one row per layer.

    Iterating gives the rows; ``table["features.0"]`` one row; ``table.values`` the values by
    layer. Printing it with rich draws a table.
    """

    method: str
    rows: tuple[LayerSimilarity, ...]
    conv: str = "mean"

    def to_dict(self) -> dict[str, Any]:
        """``{"method": ..., "layers": [{"layer", "value", "features_a", "features_b",
        "samples"}, ...]}``."""
        return {"method": self.method, "layers": [r.to_dict() for r in self.rows]}

    @property
    def layers(self) -> list[str]:
        """Layer names in order."""
        return [r.layer for r in self.rows]

    @property
    def values(self) -> dict[str, float]:
        """``{layer: value}`` in order."""
        return {r.layer: r.value for r in self.rows}

    def __iter__(self) -> Iterator[LayerSimilarity]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, layer: str) -> LayerSimilarity:
        for r in self.rows:
            if r.layer == layer:
                return r
        raise KeyError(f"no layer {layer!r}{suggest(layer, self.layers)}")

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"{_TITLES[self.method]} per layer (conv outputs: {self.conv})",
                  title_justify="left")
        for col in ("layer", "features A", "features B", "samples"):
            t.add_column(col, justify="left" if col == "layer" else "right")
        t.add_column(self.method, justify="right")
        t.add_column("", justify="left")
        for r in self.rows:
            bar = "█" * int(round(20 * max(0.0, r.value)))
            t.add_row(r.layer, str(r.features_a), str(r.features_b), f"{r.samples:,}",
                      f"{r.value:.4f}", f"[cyan]{bar}[/cyan]")
        return t


@dataclass(frozen=True, eq=False)
class SimilarityMatrix:
    """Every layer of model A against every layer of model B (``layer_similarity(cross=True)``).

    Attributes
    ----------
    method : str
        The measure.
    layers_a, layers_b : tuple of str
        Row and column layers.
    values : ndarray of float64, shape (len(layers_a), len(layers_b))
        ``values[i, j]`` compares ``layers_a[i]`` with ``layers_b[j]`` (read-only).
    features_a, features_b : tuple of int
        Widths of the layers.
    samples : int
        Samples per comparison.
    """

    method: str
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    values: np.ndarray
    features_a: tuple[int, ...]
    features_b: tuple[int, ...]
    samples: int
    conv: str = "mean"

    def to_dict(self) -> dict[str, Any]:
        """``{"method", "layers_a", "layers_b", "features_a", "features_b", "samples",
        "values"}`` with ``values`` a list of rows."""
        return {"method": self.method, "layers_a": list(self.layers_a),
                "layers_b": list(self.layers_b), "features_a": list(self.features_a),
                "features_b": list(self.features_b), "samples": self.samples,
                "values": self.values.tolist()}

    def diagonal(self) -> SimilarityTable:
        """The rows where both models' layer names agree, as a :class:`SimilarityTable`."""
        rows = []
        for i, name in enumerate(self.layers_a):
            if name in self.layers_b:
                j = self.layers_b.index(name)
                rows.append(LayerSimilarity(name, float(self.values[i, j]), self.features_a[i],
                                            self.features_b[j], self.samples))
        return SimilarityTable(self.method, tuple(rows), self.conv)

    def __rich__(self) -> Any:
        from rich.table import Table

        t = Table(title=f"{_TITLES[self.method]}: layers of A (rows) against layers of B",
                  title_justify="left")
        t.add_column("A \\ B")
        for j in range(len(self.layers_b)):
            t.add_column(f"{j}", justify="right")
        for i, name in enumerate(self.layers_a):
            t.add_row(f"{name}", *(f"{v:.3f}" for v in self.values[i]))
        t.caption = "columns: " + ", ".join(f"{j} {n}" for j, n in enumerate(self.layers_b))
        return t
