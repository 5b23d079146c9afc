"""A sweep's result (:class:`CompareResult`): one tidy table, the task table, the provenance.

The table
---------
One tidy table, one row per scheme x density x seed x layer, plus one *network* row per
scheme x density x seed whose ``layer`` is :data:`NETWORK_ROW` (``"__network__"``). Keeping both in
one table lets a single ``groupby`` reach either; filter on ``layer == "__network__"`` for the
network totals (:meth:`CompareResult.network_rows`). Columns (:data:`COLUMNS`):

``scheme``, ``kind``
    The scheme name and its kind in :mod:`sparsegraph.registry`: a layerwise ``"quota"``
    (uniform random masks with that quota) or a ``"pruner"`` (scored on the model
    re-initialised from the task's seed).
``density``, ``seed``
    The requested (target) overall density and the task's seed. The density a mask reached is
    ``direct_density`` on the network row (exactly the target for quota schemes and pruners,
    up to layers kept dense outside the budget).
``layer``
    The parameter name, or ``"__network__"``.
``params``, ``kept``, ``effective``
    Weights, kept weights, effective weights (on an input-to-output path).
``direct_density``, ``effective_density``
    ``kept / params`` and ``effective / params``.
``direct_compression``, ``effective_compression``
    ``params / kept`` and ``params / effective`` (``inf`` when the count is 0).
``collapsed``
    Network row: no input-to-output path at all (layer collapse). Layer row: the layer has no
    effective weight left (for a plain chain of layers this happens exactly when the network
    collapses; with skip connections a layer can be dead while the network is not).
``in_units``, ``out_units``, ``dead_in_units``, ``dead_out_units``
    Units of the layer and how many carry no effective weight (network row: sums over layers).
``spectral_*`` (only with ``spectral=True``)
    The layer's Ramanujan metrics from :func:`sparsegraph.spectral` (``lambda1``, ``mu_hat``,
    ``delta_s``, ``delta_s_norm``, ``delta_r``, ``delta_r_norm``, ``expansion_ratio``, ``imdb``,
    ``narc``, ``narc_single_edge``; NaN for a layer below the degree gate) and
    ``spectral_scored`` (1 when the layer passed the gate). On the network row: the plain mean
    over the scored layers (the paper's aggregation) and the number of scored layers.

A second table, :attr:`CompareResult.tasks`, has one row per task: its status (``"ok"`` or
``"failed"``), the error of a failed task, where it ran, and the seconds spent making the mask
(``mask_s``), auditing it (``audit_s``) and in the spectral metrics (``spectral_s``). A failed
task (after its retries) is listed there and in :attr:`CompareResult.failures`, and has no rows in
the table; it is never silently dropped.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SparseGraphError
from ..graph.network import Network

__all__ = ["COLUMNS", "NETWORK_ROW", "TASK_COLUMNS", "CompareResult"]

NETWORK_ROW = "__network__"

#: Columns of the tidy table, in order (``spectral_*`` columns follow when requested).
COLUMNS: tuple[str, ...] = (
    "scheme", "kind", "density", "seed", "layer", "params", "kept", "effective",
    "direct_density", "effective_density", "direct_compression", "effective_compression",
    "collapsed", "in_units", "out_units", "dead_in_units", "dead_out_units",
)

#: Columns of the per-task table.
TASK_COLUMNS: tuple[str, ...] = (
    "scheme", "kind", "density", "seed", "status", "attempts", "error", "worker",
    "mask_s", "audit_s", "spectral_s", "total_s",
)

_FLOAT_COLUMNS = {
    "density", "direct_density", "effective_density", "direct_compression",
    "effective_compression", "mask_s", "audit_s", "spectral_s", "total_s",
}
_INT_COLUMNS = {
    "spectral_scored", "seed", "params", "kept", "effective", "in_units", "out_units",
    "dead_in_units", "dead_out_units", "attempts",
}
_BOOL_COLUMNS = {"collapsed"}

_FORMAT = "sparsegraph-compare"
_FORMAT_VERSION = 1


def num(value: Any) -> Any:
    """JSON/report numbers back to Python numbers (``"inf"`` strings to float infinity)."""
    if isinstance(value, str) and value in ("inf", "Infinity", "+inf"):
        return math.inf
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def ratio(a: int, b: int) -> float:
    return math.inf if b == 0 else a / b



def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if math.isnan(value):
            return None
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return num(value)


def _from_json_value(key: str, value: Any) -> Any:
    if value is None:
        return math.nan if (key in _FLOAT_COLUMNS or _is_spectral_float(key)) else None
    if isinstance(value, str) and value in ("inf", "-inf"):
        return math.inf if value == "inf" else -math.inf
    if key in _FLOAT_COLUMNS or _is_spectral_float(key):
        return float(value)
    return value


def _is_spectral_float(key: str) -> bool:
    return key.startswith("spectral_") and key != "spectral_scored"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


@dataclass(eq=False)
class CompareResult:
    """The outcome of :func:`compare`: the tidy table, the task table and the provenance.

    Attributes
    ----------
    rows : list of dict
        The tidy table (see the module docstring): one dict per scheme x density x seed x layer,
        plus network rows (``layer == "__network__"``), ordered by scheme, density and seed as
        requested, then layer in network order, the network row last.
    tasks : list of dict
        One per (scheme, density, seed), in the same order: status, error, worker, timings.
    provenance : dict
        The exact command and arguments, the model, how it ran, and the versions of Python,
        sparsegraph, numpy, scipy, numba, torch and dask (see :func:`reproduce`).
    net : Network or None
        The network the sweep ran on (not saved to files).
    """

    rows: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    provenance: dict[str, Any]
    net: Network | None = field(default=None, repr=False)

    # -- views -------------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        """Column names of :attr:`rows` in order (``spectral_*`` columns last)."""
        extra = sorted({k for r in self.rows for k in r if k not in COLUMNS})
        return [*COLUMNS, *extra]

    @property
    def schemes(self) -> list[str]:
        """The schemes, in the order requested."""
        return list(self.provenance["arguments"]["schemes"])

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The tasks that failed after their retries (empty when all succeeded)."""
        return [t for t in self.tasks if t["status"] != "ok"]

    def to_records(self, *, layers: bool = True) -> list[dict[str, Any]]:
        """The tidy table as a list of dicts (copies); ``layers=False`` keeps network rows only.

        Examples
        --------
        ``pandas.DataFrame(result.to_records())`` is the table as a data frame.
        """
        return [dict(r) for r in self.rows if layers or r["layer"] == NETWORK_ROW]

    def network_rows(self) -> list[dict[str, Any]]:
        """The network rows only (one per successful scheme x density x seed)."""
        return self.to_records(layers=False)

    def summary(self) -> list[dict[str, Any]]:
        """Network rows aggregated over seeds: one dict per scheme x density.

        Keys: ``scheme``, ``kind``, ``density`` (the requested one; also as
        ``target_density``), ``seeds`` (successful seeds), ``kept`` (mean),
        ``direct_density`` (mean of the densities reached), ``direct_compression`` (mean),
        ``effective_compression`` (mean, and ``_min``, ``_max``, ``_sd``; ``inf`` when a seed
        collapsed), ``effective_density`` (mean),
        ``collapsed`` (number of seeds that collapsed), ``dead_units`` (mean of dead input plus
        output units), ``failed`` (seeds whose task failed).
        """
        groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
        for row in self.network_rows():
            groups.setdefault((row["scheme"], row["density"]), []).append(row)
        failed: dict[tuple[str, float], int] = {}
        for t in self.failures:
            failed[(t["scheme"], t["density"])] = failed.get((t["scheme"], t["density"]), 0) + 1
        out = []
        args = self.provenance["arguments"]
        kinds = dict(zip(args["schemes"], args.get("kinds", []), strict=False))
        for scheme in args["schemes"]:
            for density in args["densities"]:
                rows = groups.get((scheme, density), [])
                eff = np.array([r["effective_compression"] for r in rows], dtype=float)
                finite = eff[np.isfinite(eff)]
                rec = {
                    "scheme": scheme,
                    "kind": kinds.get(scheme, rows[0]["kind"] if rows else ""),
                    "density": density,
                    "target_density": density,
                    "seeds": len(rows),
                    "kept": float(np.mean([r["kept"] for r in rows])) if rows else math.nan,
                    "direct_density": float(np.mean([r["direct_density"]
                                                     for r in rows])) if rows else math.nan,
                    "direct_compression": float(np.mean([r["direct_compression"]
                                                         for r in rows])) if rows else math.nan,
                    "effective_compression": float(eff.mean()) if rows else math.nan,
                    "effective_compression_min": float(eff.min()) if rows else math.nan,
                    "effective_compression_max": float(eff.max()) if rows else math.nan,
                    "effective_compression_sd": float(finite.std()) if finite.size else math.nan,
                    "effective_density": float(np.mean([r["effective_density"]
                                                        for r in rows])) if rows else math.nan,
                    "collapsed": sum(bool(r["collapsed"]) for r in rows),
                    "dead_units": float(np.mean([r["dead_in_units"] + r["dead_out_units"]
                                                 for r in rows])) if rows else math.nan,
                    "failed": failed.get((scheme, density), 0),
                }
                out.append(rec)
        return out

    def equals(self, other: CompareResult) -> bool:
        """True when both tables hold the same rows and the same tasks succeeded (timings,
        workers and provenance are not compared)."""
        if len(self.rows) != len(other.rows) or len(self.tasks) != len(other.tasks):
            return False
        for a, b in zip(self.rows, other.rows, strict=True):
            if a.keys() != b.keys() or not all(_same(a[k], b[k]) for k in a):
                return False
        keys = ("scheme", "density", "seed", "status")
        return all(
            all(_same(a[k], b[k]) for k in keys)
            for a, b in zip(self.tasks, other.tasks, strict=True)
        )

    # -- files -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready data (infinities as the string ``"inf"``, NaN as null)."""
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "provenance": _jsonable(self.provenance),
            "columns": self.columns,
            "rows": _jsonable(self.rows),
            "tasks": _jsonable(self.tasks),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int | None = 1
                ) -> str:
        """Write :meth:`to_dict` as JSON to ``path`` (when given); returns the text."""
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_csv(self, path: str | os.PathLike[str], *, layers: bool = True) -> None:
        """Write the tidy table as CSV (header row, ``inf`` for infinity, ``True``/``False``
        for the collapsed flag, floats at full precision); ``layers=False`` writes the
        network rows only."""
        columns = self.columns
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in self.to_records(layers=layers):
                writer.writerow([_csv_cell(row.get(c)) for c in columns])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareResult:
        """Rebuild a result from :meth:`to_dict` data (e.g. a ``results.json``)."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise SparseGraphError(
                f"not a sparsegraph compare record: expected format {_FORMAT!r}, got "
                f"{data.get('format') if isinstance(data, Mapping) else type(data).__name__!r}"
            )
        rows = [{k: _from_json_value(k, v) for k, v in r.items()} for r in data["rows"]]
        tasks = [{k: _from_json_value(k, v) for k, v in t.items()} for t in data["tasks"]]
        prov = dict(data["provenance"])
        args = dict(prov.get("arguments", {}))
        args["densities"] = [float(d) for d in args.get("densities", [])]
        prov["arguments"] = args
        return cls(rows=rows, tasks=tasks, provenance=prov)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> CompareResult:
        """Read a result written by :meth:`to_json`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(json.load(fh))

    def __repr__(self) -> str:
        args = self.provenance.get("arguments", {})
        return (
            f"CompareResult({self.provenance.get('model', {}).get('name', '?')!r}, "
            f"{len(args.get('schemes', []))} schemes x {len(args.get('densities', []))} "
            f"densities x {len(args.get('seeds', []))} seeds, {len(self.rows)} rows, "
            f"{len(self.failures)} failed)"
        )


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if math.isnan(value):
            return "nan"
        return repr(value)
    return value

