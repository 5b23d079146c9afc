"""Sweep schemes x densities x seeds: generate each mask, audit it, and tabulate the result.

:func:`compare` draws the key picture of Vysogorets & Kempe (effective against direct compression,
per scheme, over a log grid of densities) for any model, with no data and no training. Each
(scheme, density, seed) is one independent *task*: it builds its mask from its own seed, audits
it (DESIGN §3) and, on request, measures its spectral quality (DESIGN §5). Tasks run on
``dask.distributed`` when it is installed (the ``dask`` extra) and serially otherwise; the table is
the same bytes either way.

The table
---------
One tidy table, one row per scheme x density x seed x layer, plus one *network* row per
scheme x density x seed whose ``layer`` is :data:`NETWORK_ROW` (``"__network__"``). Keeping both in
one table lets a single ``groupby`` reach either; filter on ``layer == "__network__"`` for the
network totals (:meth:`CompareResult.network_rows`). Columns (:data:`COLUMNS`):

``scheme``, ``kind``
    The scheme name and whether it is a layerwise ``"quota"`` (:data:`sparsegraph.masks.quotas.
    QUOTA_SCHEMES`: uniform random masks with that quota) or a data-free ``"pruner"``
    (the data-free entries of :data:`sparsegraph.pytorch.pruners.PRUNERS`: synflow, magnitude,
    random, lamp), scored on the model re-initialised from the task's seed.
``density``, ``seed``
    The requested overall density and the task's seed.
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
import datetime as _dt
import difflib
import itertools
import json
import math
import os
import platform
import shlex
import socket
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskError, ModelSpecError, QuotaError, SparseGraphError
from ..graph.network import Network

__all__ = [
    "COLUMNS",
    "NETWORK_ROW",
    "TASK_COLUMNS",
    "CompareResult",
    "compare",
    "parse_density_grid",
    "reproduce",
]

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


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------


def _check_density(value: Any, where: str) -> float:
    try:
        d = float(value)
    except (TypeError, ValueError):
        raise QuotaError(f"{where}: expected a density in (0, 1], got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(d) or not 0.0 < d <= 1.0:
        raise QuotaError(f"{where}: expected a density in (0, 1], got {value!r}")
    return d


MAX_GRID_POINTS = 1000
"""Most densities one grid may hold: each is a full sweep row (every scheme and seed), so a
larger grid is a typo more often than a plan (``0.1:0.0001:100000000``)."""


def parse_density_grid(spec: str | float | Iterable[float]) -> list[float]:
    """Turn a density grid description into a list of densities.

    Parameters
    ----------
    spec : str, float or iterable of float
        ``"START:STOP:N"``: ``N`` points log-spaced from ``START`` to ``STOP``, both included
        (``numpy.geomspace``; either end may be the larger). ``"a,b,c"``: these densities, in
        this order. ``"a"`` or a number: one density. An iterable: these densities.

    Returns
    -------
    list of float
        Densities in (0, 1], all distinct, in the order given.

    Raises
    ------
    QuotaError
        For a malformed grid, a density outside (0, 1], ``N < 1`` (or ``N == 1`` with
        ``START != STOP``), more than :data:`MAX_GRID_POINTS` densities (checked before the
        grid is built), or a density that appears twice.

    Examples
    --------
    >>> from sparsegraph.sweep.compare import parse_density_grid
    >>> grid = parse_density_grid("0.1:0.0001:20")
    >>> len(grid), grid[0], grid[-1]
    (20, 0.1, 0.0001)
    >>> [round(d, 6) for d in parse_density_grid("0.1:0.001:3")]
    [0.1, 0.01, 0.001]
    >>> parse_density_grid("0.5, 0.05")
    [0.5, 0.05]
    >>> parse_density_grid("0.1:2:5")
    Traceback (most recent call last):
    ...
    sparsegraph.errors.QuotaError: density grid '0.1:2:5': STOP: expected a density in (0, 1], ...
    """
    if isinstance(spec, str):
        text = spec.strip()
        if ":" in text:
            parts = [p.strip() for p in text.split(":")]
            if len(parts) != 3:
                raise QuotaError(
                    f"density grid {spec!r}: expected START:STOP:N (e.g. 0.1:0.0001:20), "
                    "or a comma-separated list of densities"
                )
            start = _check_density(parts[0], f"density grid {spec!r}: START")
            stop = _check_density(parts[1], f"density grid {spec!r}: STOP")
            try:
                n = int(parts[2])
            except ValueError:
                raise QuotaError(
                    f"density grid {spec!r}: N: expected a positive integer, got {parts[2]!r}"
                ) from None
            if n < 1 or (n == 1 and start != stop):
                raise QuotaError(
                    f"density grid {spec!r}: N: expected at least 2 points between two "
                    f"different ends, got {n}"
                )
            if n > MAX_GRID_POINTS:
                raise QuotaError(
                    f"density grid {spec!r}: N: at most {MAX_GRID_POINTS} points, got {n:,}"
                )
            values = [float(v) for v in np.geomspace(start, stop, n)]
            values[0], values[-1] = start, stop  # exact ends
        else:
            items = [p.strip() for p in text.split(",") if p.strip()]
            if not items:
                raise QuotaError(f"density grid {spec!r}: expected at least one density")
            if len(items) > MAX_GRID_POINTS:
                raise QuotaError(f"density grid: at most {MAX_GRID_POINTS} densities, got "
                                 f"{len(items):,}")
            values = [_check_density(p, f"density grid {spec!r}") for p in items]
    elif isinstance(spec, (int, float, np.floating, np.integer)) and not isinstance(spec, bool):
        values = [_check_density(spec, "densities")]
    else:
        try:  # never more than the bound from an endless iterator
            items = list(itertools.islice(spec, MAX_GRID_POINTS + 1))  # type: ignore[arg-type]
        except TypeError:
            raise QuotaError(
                f"densities: expected 'START:STOP:N', a list of densities or a number, got "
                f"{type(spec).__name__}"
            ) from None
        if not items:
            raise QuotaError("densities: expected at least one density, got an empty list")
        if len(items) > MAX_GRID_POINTS:
            raise QuotaError(f"densities: at most {MAX_GRID_POINTS} densities, got more")
        values = [_check_density(v, "densities") for v in items]
    seen: set[float] = set()
    for v in values:
        if v in seen:
            raise QuotaError(f"densities: {v!r} appears twice; give each density once")
        seen.add(v)
    return values


def _parse_seeds(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise QuotaError(f"seeds: expected a positive number of seeds, got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bytes)):
        raise QuotaError(f"seeds: expected a count or a list of integers, got {seeds!r}")
    try:
        values = list(seeds)
    except TypeError:
        raise QuotaError(
            f"seeds: expected a count or a list of integers, got {type(seeds).__name__}"
        ) from None
    out: list[int] = []
    for s in values:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise QuotaError(f"seeds: expected non-negative integers, got {s!r}")
        if int(s) in out:
            raise QuotaError(f"seeds: {int(s)} appears twice; give each seed once")
        out.append(int(s))
    if not out:
        raise QuotaError("seeds: expected at least one seed, got an empty list")
    return out


_NOT_SWEEPABLE = {"from_mask"}
_NEED_DATA = {"snip", "grasp"}


def _registries() -> tuple[list[str], list[str]]:
    from ..masks.quotas import QUOTA_SCHEMES

    # from_mask takes its densities from a given mask: not a scheme to sweep
    quota_names = [str(n) for n in QUOTA_SCHEMES if n not in _NOT_SWEEPABLE]
    try:
        from ..pytorch import pruners
    except ImportError:  # pragma: no cover - the pruners module is part of the library
        pruner_names: list[str] = []
    else:
        # only the data-free scores: snip and grasp need a batch of data
        data_free = getattr(pruners, "DATA_FREE", None)
        pruner_names = [str(n) for n in pruners.PRUNERS
                        if (n in data_free if data_free is not None else n not in _NEED_DATA)]
    return quota_names, pruner_names


def _resolve_schemes(schemes: str | Iterable[str]) -> list[tuple[str, str]]:
    if isinstance(schemes, str):
        names = [p.strip() for p in schemes.split(",") if p.strip()]
    else:
        try:
            names = [str(s).strip() for s in schemes]
        except TypeError:
            raise QuotaError(
                f"schemes: expected scheme names, got {type(schemes).__name__}"
            ) from None
    if not names:
        raise QuotaError("schemes: expected at least one scheme name, got none")
    quota_names, pruner_names = _registries()
    out: list[tuple[str, str]] = []
    for name in names:
        if name in quota_names:
            kind = "quota"
        elif name in pruner_names:
            kind = "pruner"
        else:
            known = quota_names + [p for p in pruner_names if p not in quota_names]
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise QuotaError(
                f"schemes: unknown scheme {name!r}{hint} Quota schemes: "
                f"{', '.join(quota_names)}; pruners: {', '.join(pruner_names) or '(none)'}"
            )
        if any(name == n for n, _ in out):
            raise QuotaError(f"schemes: {name!r} appears twice; give each scheme once")
        out.append((name, kind))
    return out


# ---------------------------------------------------------------------------------------------
# The work of one task (runs on a Dask worker or in this process)
# ---------------------------------------------------------------------------------------------


@dataclass
class _Payload:
    """What every task needs, shipped to each worker once: the network and, for pruner
    schemes, the model and its example input (plain data and a picklable module)."""

    net: Network
    model: Any = None
    example_input: Any = None
    exclude: list[str] | None = None


def _make_masks(payload: _Payload, scheme: str, kind: str, density: float, seed: int
                ) -> dict[str, np.ndarray]:
    net = payload.net
    if kind == "quota":
        from ..masks.quotas import quotas
        from ..masks.sampling import random_masks

        return random_masks(net, quotas(net, scheme, density), seed=seed)
    from ..pytorch.pruners import prune

    return _prune_with_seed(prune, payload, scheme, density, seed)


def _prune_with_seed(prune: Any, payload: _Payload, scheme: str, density: float, seed: int
                     ) -> dict[str, np.ndarray]:
    """Run a data-free pruner on a copy of the model re-initialised from ``seed``.

    Pruning at initialization scores a *freshly initialised* network, so the seed of a pruner
    task is the seed of that initialisation (``torch.manual_seed(seed)`` then
    ``reset_parameters()`` of every module that has one; the global RNG state is restored).
    The caller's model is never modified.
    """
    import copy
    import inspect

    import torch

    model = copy.deepcopy(payload.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    kwargs: dict[str, Any] = {"density": density, "example_input": payload.example_input}
    try:
        params = inspect.signature(prune).parameters
    except (TypeError, ValueError):  # pragma: no cover
        params = {}
    if "seed" in params:
        kwargs["seed"] = int(seed)
    if payload.exclude and "exclude" in params:
        kwargs["exclude"] = list(payload.exclude)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # a collapsed layer is recorded in the table; no warning per task
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(int(seed))
        masks = prune(model, scheme, **kwargs)
    return dict(masks)


def _num(value: Any) -> Any:
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


def _ratio(a: int, b: int) -> float:
    return math.inf if b == 0 else a / b


_SPECTRAL_FIELDS = (
    "lambda1", "mu_hat", "delta_s", "delta_s_norm", "delta_r", "delta_r_norm",
    "expansion_ratio", "imdb", "narc", "narc_single_edge",
)


def _spectral_rows(net: Network, masks: Mapping[str, np.ndarray]
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``spectral_*`` values per layer (NaN where a layer fails the degree gate) and, for the
    network row, the plain mean over the scored layers (the paper's aggregation)."""
    from ..metrics.spectral import spectral

    rep = spectral(net, masks)
    per_layer: dict[str, dict[str, Any]] = {}
    for rec in rep.layers:
        vals: dict[str, Any] = {"spectral_scored": int(bool(rec.scored))}
        for key in _SPECTRAL_FIELDS:
            value = getattr(rec, key, None)
            vals[f"spectral_{key}"] = math.nan if value is None else float(value)
        per_layer[rec.name] = vals
    summary: dict[str, Any] = {"spectral_scored": int(rep.scored_layers)}
    for key in _SPECTRAL_FIELDS:
        value = rep.mean.get(key)
        summary[f"spectral_{key}"] = math.nan if value is None else float(value)
    return per_layer, summary


def _run_task(payload: _Payload, scheme: str, kind: str, density: float, seed: int,
              with_spectral: bool) -> dict[str, Any]:
    """One task: mask, audit, optional spectral; returns the rows and the phase timings."""
    from ..metrics.audit import audit

    net = payload.net
    t0 = time.perf_counter()
    masks = _make_masks(payload, scheme, kind, density, seed)
    t1 = time.perf_counter()
    report = audit(net, masks)
    t2 = time.perf_counter()
    spec_layers: dict[str, dict[str, float]] = {}
    spec_summary: dict[str, float] = {}
    if with_spectral:
        spec_layers, spec_summary = _spectral_rows(net, masks)
    t3 = time.perf_counter()

    data = report.to_dict()
    key = {"scheme": scheme, "kind": kind, "density": density, "seed": seed}
    rows: list[dict[str, Any]] = []
    dead_in = dead_out = in_units = out_units = 0
    for rec in data["layers"]:
        params, kept, eff = int(rec["params"]), int(rec["kept"]), int(rec["effective"])
        row = {
            **key,
            "layer": rec["name"],
            "params": params,
            "kept": kept,
            "effective": eff,
            "direct_density": float(_num(rec["direct_density"])),
            "effective_density": float(_num(rec["effective_density"])),
            "direct_compression": _ratio(params, kept),
            "effective_compression": _ratio(params, eff),
            "collapsed": eff == 0,
            "in_units": int(rec["in_units"]),
            "out_units": int(rec["out_units"]),
            "dead_in_units": int(rec["dead_in_units"]),
            "dead_out_units": int(rec["dead_out_units"]),
        }
        in_units += row["in_units"]
        out_units += row["out_units"]
        dead_in += row["dead_in_units"]
        dead_out += row["dead_out_units"]
        if with_spectral:
            row.update(spec_layers.get(rec["name"], {}))
        rows.append(row)
    nw = data["network"]
    net_row = {
        **key,
        "layer": NETWORK_ROW,
        "params": int(nw["params"]),
        "kept": int(nw["kept"]),
        "effective": int(nw["effective"]),
        "direct_density": float(_num(nw["direct_density"])),
        "effective_density": float(_num(nw["effective_density"])),
        "direct_compression": float(_num(nw["direct_compression"])),
        "effective_compression": float(_num(nw["effective_compression"])),
        "collapsed": bool(nw["collapsed"]),
        "in_units": in_units,
        "out_units": out_units,
        "dead_in_units": dead_in,
        "dead_out_units": dead_out,
    }
    if with_spectral:
        net_row.update(spec_summary)
    rows.append(net_row)
    return {
        "rows": rows,
        "mask_s": t1 - t0,
        "audit_s": t2 - t1,
        "spectral_s": t3 - t2 if with_spectral else 0.0,
        "total_s": t3 - t0,
        "worker": _worker_name(),
    }


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def _warm_up(payload: _Payload | None = None) -> float:
    """Load (or compile) the numba kernels of sampling and audit in this process; seconds.

    Worker processes keep their own copy of every kernel, loaded from numba's on-disk cache (or
    compiled) on first call. Running one small task on the real network first (uniform quota
    at density 1%) brings every specialisation the sweep will use into memory, so the timings
    of the real tasks are warm.
    """
    t0 = time.perf_counter()
    try:
        from ..masks.quotas import quotas
        from ..masks.sampling import random_masks
        from ..metrics.audit import audit

        if payload is not None:
            net = payload.net
            audit(net, random_masks(net, quotas(net, "uniform", 0.01), seed=0))
    except Exception:  # noqa: BLE001 - warming is best effort; a real error shows in the tasks
        pass
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


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
    return _num(value)


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

        Keys: ``scheme``, ``kind``, ``density``, ``seeds`` (successful seeds), ``kept``
        (mean), ``direct_compression`` (mean), ``effective_compression`` (mean, and ``_min``,
        ``_max``, ``_sd``; ``inf`` when a seed collapsed), ``effective_density`` (mean),
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
                    "seeds": len(rows),
                    "kept": float(np.mean([r["kept"] for r in rows])) if rows else math.nan,
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


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    from .. import __version__

    out: dict[str, str | None] = {
        "sparsegraph": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in ("numpy", "scipy", "numba", "torch", "dask", "distributed", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _python_call(args: Mapping[str, Any]) -> str:
    parts = [repr(args["model"]) if args["model"] is not None else "model"]
    parts.append(f"schemes={list(args['schemes'])!r}")
    parts.append(f"densities={list(args['densities'])!r}")
    parts.append(f"seeds={list(args['seeds'])!r}")
    for key in ("spectral", "input_shape", "exclude"):
        if args.get(key):
            parts.append(f"{key}={args[key]!r}")
    return f"sparsegraph.compare({', '.join(parts)})"


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


def _load(model_or_net: Any, example_input: Any, input_shape: Any, exclude: Any,
          need_model: bool) -> tuple[_Payload, str | None]:
    if isinstance(model_or_net, Network):
        if need_model:
            raise ModelSpecError(
                "pruner schemes score the model's weights: pass the nn.Module (with "
                "example_input) or a model name, not a traced Network"
            )
        if exclude is not None:
            raise ModelSpecError("exclude: applies when tracing a model; this Network is traced")
        return _Payload(model_or_net), None
    from ..graph.trace import trace

    spec: str | None = None
    if isinstance(model_or_net, str):
        from ..pytorch.models import resolve_model

        spec = model_or_net
        model, example = resolve_model(spec, input_shape)
        if example_input is not None:
            example = example_input
    else:
        model, example = model_or_net, example_input
        if example is None:
            example = getattr(model, "example_input", None)
        if example is None:
            raise ModelSpecError(
                "example_input: a model object needs an example input to be traced (e.g. "
                "torch.zeros(1, 3, 32, 32)); or pass a built-in model name or a Network"
            )
        if input_shape is not None:
            raise ModelSpecError("input_shape: applies to a model name; pass example_input")
    if isinstance(exclude, str):
        exclude = [exclude]
    import inspect

    accepted = inspect.signature(trace).parameters
    kwargs: dict[str, Any] = {}
    if exclude:
        kwargs["exclude"] = list(exclude)
    if spec is not None and "name" in accepted:
        kwargs["name"] = spec  # as the other sub-commands label a named model
    net = trace(model, example, **kwargs)
    if not net.layers:
        raise MaskError(f"model {net.name!r} has no prunable layer to compare")
    return _Payload(net, model if need_model else None, example if need_model else None,
                    list(exclude) if exclude else None), spec


def _open_client(client: Any, scheduler: str | None, workers: int | None, n_tasks: int
                 ) -> tuple[Any, list[Any], str]:
    """(client or None, things to close, mode)."""
    if client is False or workers == 0:
        if scheduler is not None:
            raise SparseGraphError("scheduler: cannot be combined with client=False / workers=0")
        return None, [], "serial"
    if client is not None and client is not True:
        if scheduler is not None:
            raise SparseGraphError("pass either client= or scheduler=, not both")
        return client, [], "dask"
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        if scheduler is not None or client is True or workers is not None:
            raise SparseGraphError(
                "a Dask scheduler or worker count was requested but dask.distributed is not "
                "installed: pip install 'sparsegraph-pai[dask]'"
            ) from None
        return None, [], "serial"
    if scheduler is not None:
        if workers is not None:
            raise SparseGraphError("workers: only for a local cluster; a scheduler= cluster "
                                   "has its own workers")
        c = Client(scheduler)
        return c, [c], "dask"
    if workers is not None and (isinstance(workers, bool) or workers < 0):
        raise SparseGraphError(f"workers: expected a non-negative integer, got {workers!r}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = int(workers) if workers is not None else max(1, min(int(cores or 1), n_tasks))
    if workers is None and n == 1:
        return None, [], "serial"  # one core or one task: a cluster would only add start-up
    import logging

    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        env={"NUMBA_NUM_THREADS": "1"},
    )
    c = Client(cluster)
    return c, [c, cluster], "dask"


def _progress(enabled: bool, total: int, label: str) -> Any:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )
    bar.start()
    bar.add_task(label, total=total)
    return bar


def _failure(err: BaseException | None, tb: Any = None) -> dict[str, str]:
    if err is None:
        return {"error": "task ended without a result (cancelled or lost)", "traceback": ""}
    text = "".join(traceback.format_exception(type(err), err, tb if tb is not None
                                              else err.__traceback__))
    return {"error": f"{type(err).__name__}: {err}", "traceback": text}


def compare(
    model_or_net: Any,
    *,
    schemes: str | Sequence[str],
    densities: str | float | Sequence[float],
    seeds: int | Sequence[int] = 1,
    spectral: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    retries: int = 2,
    progress: bool = True,
    example_input: Any = None,
    input_shape: Sequence[int] | None = None,
    exclude: str | Sequence[str] | None = None,
    command: str | Sequence[str] | None = None,
) -> CompareResult:
    """Generate, audit and tabulate masks for every scheme x density x seed.

    Parameters
    ----------
    model_or_net : str, nn.Module or Network
        A MODEL argument (built-in name such as ``"vgg16"``, ``path/file.py:factory`` or
        ``package.module:factory``), a model (with ``example_input``), or a traced
        :class:`~sparsegraph.graph.network.Network` (quota schemes only: pruners need the weights).
    schemes : str or sequence of str
        Scheme names (or one comma-separated string). A name in
        :data:`sparsegraph.masks.quotas.QUOTA_SCHEMES` (``uniform``, ``erk``, ``igq``, ...) makes
        uniformly random masks with that layerwise quota (:func:`sparsegraph.random_masks`
        with ``seed``; ``from_mask`` is not sweepable); a data-free pruner of
        :data:`sparsegraph.PRUNERS` (``synflow``, ``magnitude``, ``random``, ``lamp``;
        ``snip`` and ``grasp`` need data and are not accepted) runs
        ``sparsegraph.prune(model, name, density=d, seed=k)`` on a copy of the model
        re-initialised from ``k`` (``torch.manual_seed(k)``, then every module's
        ``reset_parameters()``), i.e. pruning at a fresh initialisation; the caller's model is
        untouched. A name in both registries is a quota.
    densities : str, float or sequence of float
        Overall densities in (0, 1]; a string goes through :func:`parse_density_grid`
        (``"0.1:0.0001:20"`` is 20 log-spaced points).
    seeds : int or sequence of int, default 1
        A count ``n`` (seeds ``0 .. n-1``) or the seeds themselves. The mask of quota scheme
        ``s`` at density ``d`` and seed ``k`` is exactly
        ``random_masks(net, quotas(net, s, d), seed=k)``.
    spectral : bool, default False
        Add the per-layer Ramanujan metrics of :func:`sparsegraph.spectral` (``spectral_*``
        columns; network rows carry their parameter-weighted means). Slower.
    client : distributed.Client, False or None
        Run on this Dask client (a user's cluster). ``False`` runs serially in this process.
        None (default): a new ``LocalCluster`` of worker processes on this machine's cores
        (one thread each, at most one per task), closed afterwards; serially when
        ``dask.distributed`` is not installed or only one worker would be started.
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:8786"``) to connect to.
    workers : int, optional
        Worker processes of the local cluster (default: the cores this process may use, at
        most one per task); ``0`` runs serially.
    retries : int, default 2
        Times a failed task is retried (Dask ``retries=``; the same count serially) before it
        is reported in :attr:`CompareResult.failures`.
    progress : bool, default True
        Show a rich progress bar on stderr.
    example_input : torch.Tensor, optional
        Example input for tracing a model object (or to override a named model's).
    input_shape : sequence of int, optional
        Example input shape for a model name that does not declare one.
    exclude : str or sequence of str, optional
        Layer names or globs kept dense (passed to :func:`sparsegraph.trace`).
    command : str or sequence of str, optional
        The command line to record as the provenance (the CLI passes its own); by default the
        equivalent Python call.

    Returns
    -------
    CompareResult
        The tidy table, the task table (timings, failures) and the provenance.

    Raises
    ------
    QuotaError
        For an unknown scheme, a density outside (0, 1], a bad seed list (before any work).
    ModelSpecError
        For a model that cannot be resolved or traced, or a pruner scheme with a Network.
    SparseGraphError
        For contradictory execution arguments, or Dask requested but not installed.

    Notes
    -----
    Tasks are independent: each builds its mask from its own seed, so the table does not depend
    on the number of workers or the order tasks finish in, and rows are sorted back into the
    requested order. The network (plain data, it pickles) and, for pruners, the model are
    scattered to the workers once, not shipped per task. Before the sweep every worker loads the
    numba kernels on a tiny network (their on-disk caches are per process), so the per-task
    timings are warm; the time this took is ``provenance["execution"]["warmup_s"]``.

    A failed task is retried ``retries`` times and then reported (``status == "failed"`` with
    the error and traceback in :attr:`CompareResult.tasks`); it is never silently dropped.

    Cost: one mask generation and one audit per task, i.e. linear in the number of tasks and in
    the kept weights and pixels of the model.

    Examples
    --------
    >>> import sparsegraph as sg
    >>> res = sg.compare("lenet300", schemes="uniform,igq", densities="0.1:0.01:2",
    ...                  seeds=2, client=False, progress=False)
    >>> len(res.network_rows()), len(res.rows)  # 2 schemes x 2 densities x 2 seeds
    (8, 32)
    >>> row = res.network_rows()[0]
    >>> row["scheme"], row["density"], row["seed"], row["kept"] == round(0.1 * 266200)
    ('uniform', 0.1, 0, True)
    """
    t_start = time.perf_counter()
    scheme_list = _resolve_schemes(schemes)
    density_list = parse_density_grid(densities)
    seed_list = _parse_seeds(seeds)
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise SparseGraphError(f"retries: expected a non-negative integer, got {retries!r}")
    if isinstance(exclude, str):
        exclude = [exclude]
    need_model = any(kind == "pruner" for _, kind in scheme_list)
    payload, spec = _load(model_or_net, example_input, input_shape, exclude, need_model)
    net = payload.net

    arguments: dict[str, Any] = {
        "model": spec,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "exclude": list(exclude) if exclude else None,
        "schemes": [s for s, _ in scheme_list],
        "kinds": [k for _, k in scheme_list],
        "densities": density_list,
        "seeds": seed_list,
        "spectral": bool(spectral),
        "retries": int(retries),
    }
    if command is None:
        command_text = _python_call(arguments)
    elif isinstance(command, str):
        command_text = command
    else:
        command_text = shlex.join([str(c) for c in command])

    specs = [(s, k, d, seed) for s, k in scheme_list for d in density_list for seed in seed_list]
    outputs: list[dict[str, Any] | None] = [None] * len(specs)
    errors: list[dict[str, str] | None] = [None] * len(specs)
    attempts: list[int | None] = [1] * len(specs)

    active, to_close, mode = _open_client(client, scheduler, workers, len(specs))
    bar = None
    n_workers = 1
    address = None
    warm: dict[str, float] = {}
    try:
        label = f"compare {net.name}"
        bar = _progress(progress, len(specs), f"{label} (warming up)")
        if active is None:
            warm = {"local": _warm_up(payload)}
            if bar is not None:
                bar.update(bar.task_ids[0], description=label)
            for i, (s, k, d, seed) in enumerate(specs):
                for attempt in range(int(retries) + 1):
                    attempts[i] = attempt + 1
                    try:
                        outputs[i] = _run_task(payload, s, k, d, seed, bool(spectral))
                        errors[i] = None
                        break
                    except KeyboardInterrupt:
                        raise
                    except Exception as exc:  # noqa: BLE001 - reported in the result
                        errors[i] = _failure(exc)
                if bar is not None:
                    bar.advance(bar.task_ids[0])
        else:
            from distributed import as_completed

            address = getattr(active, "scheduler", None) and active.scheduler.address
            shared = active.scatter(payload, broadcast=True, hash=False)
            token = uuid.uuid4().hex[:12]
            addresses = list(active.scheduler_info(n_workers=-1)["workers"])
            warm_futures = {
                addr: active.submit(_warm_up, shared, workers=[addr], allow_other_workers=False,
                                    pure=False, key=f"sparsegraph-warm-{token}-{j}")
                for j, addr in enumerate(addresses)
            }
            for addr, fut in warm_futures.items():
                try:
                    warm[addr] = float(fut.result())
                except Exception:  # noqa: BLE001 - a worker lost while warming: tasks will tell
                    warm[addr] = math.nan
            n_workers = max(1, len(warm))
            if bar is not None:
                bar.update(bar.task_ids[0], description=f"{label} ({n_workers} workers)")
            futures = [
                active.submit(_run_task, shared, s, k, d, seed, bool(spectral),
                              key=f"sparsegraph-compare-{token}-{i}", retries=int(retries),
                              pure=False)
                for i, (s, k, d, seed) in enumerate(specs)
            ]
            where = {f.key: i for i, f in enumerate(futures)}
            attempts = [None] * len(specs)  # Dask does not say how often a success was retried
            try:
                for fut in as_completed(futures):
                    i = where[fut.key]
                    if fut.status == "finished":
                        outputs[i] = fut.result()
                    else:
                        err = None
                        tb = None
                        if fut.status == "error":
                            err = fut.exception()
                            tb = fut.traceback()
                        errors[i] = _failure(err, tb)
                        attempts[i] = int(retries) + 1
                    if bar is not None:
                        bar.advance(bar.task_ids[0])
            except BaseException:
                active.cancel(futures)
                raise
    finally:
        if bar is not None:
            bar.stop()
        for thing in to_close:
            try:
                thing.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass

    rows: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    for i, (s, k, d, seed) in enumerate(specs):
        out = outputs[i]
        task = {"scheme": s, "kind": k, "density": d, "seed": seed}
        if out is not None:
            rows.extend(out["rows"])
            task.update(status="ok", attempts=attempts[i], error="", worker=out["worker"],
                        mask_s=out["mask_s"], audit_s=out["audit_s"],
                        spectral_s=out["spectral_s"], total_s=out["total_s"])
        else:
            err = errors[i] or _failure(None)
            task.update(status="failed", attempts=attempts[i], error=err["error"], worker="",
                        mask_s=math.nan, audit_s=math.nan, spectral_s=math.nan,
                        total_s=math.nan, traceback=err["traceback"])
        tasks.append(task)

    provenance = {
        "command": command_text,
        "python_call": _python_call(arguments),
        "arguments": arguments,
        "model": {
            "spec": spec,
            "class": type(model_or_net).__name__ if spec is None else None,
            "name": net.name,
            "params": net.params,
            "layers": len(net.layers),
            "fingerprint": net.fingerprint(),
            "input_shapes": [list(s) for s in getattr(net, "input_shapes", ())],
        },
        "execution": {
            "mode": mode,
            "workers": n_workers,
            "scheduler": address,
            "tasks": len(specs),
            "failed": sum(1 for t in tasks if t["status"] != "ok"),
            "warmup_s": max((v for v in warm.values() if math.isfinite(v)), default=0.0),
            "wall_s": time.perf_counter() - t_start,
        },
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }
    return CompareResult(rows=rows, tasks=tasks, provenance=provenance, net=net)


def reproduce(
    record: CompareResult | Mapping[str, Any] | str | os.PathLike[str],
    *,
    model: Any = None,
    example_input: Any = None,
    **execution: Any,
) -> CompareResult:
    """Run a comparison again from its recorded arguments.

    Parameters
    ----------
    record : CompareResult, dict or path
        A result, its :meth:`~CompareResult.to_dict` data, or a ``results.json`` file.
    model : nn.Module or Network, optional
        Needed when the record was made from a model object rather than a model name.
    example_input : torch.Tensor, optional
        With ``model``.
    **execution
        ``client``, ``scheduler``, ``workers``, ``retries``, ``progress``: how to run this time
        (they do not change the result).

    Returns
    -------
    CompareResult
        Compare it with the original with :meth:`CompareResult.equals`.

    Raises
    ------
    ModelSpecError
        If the record names no model and ``model`` is not given, or ``model`` does not match
        the recorded network's fingerprint.
    """
    if isinstance(record, CompareResult):
        prov = record.provenance
    elif isinstance(record, Mapping):
        prov = CompareResult.from_dict(record).provenance
    else:
        prov = CompareResult.from_json(record).provenance
    args = prov["arguments"]
    target: Any = model if model is not None else args.get("model")
    if target is None:
        raise ModelSpecError(
            f"this comparison was run on a {prov.get('model', {}).get('class')} object, not a "
            "model name: pass model= (and example_input=) to reproduce it"
        )
    allowed = {"client", "scheduler", "workers", "retries", "progress"}
    unknown = set(execution) - allowed
    if unknown:
        raise TypeError(f"reproduce: unexpected arguments {sorted(unknown)}")
    result = compare(
        target,
        schemes=args["schemes"],
        densities=[float(d) for d in args["densities"]],
        seeds=list(args["seeds"]),
        spectral=bool(args.get("spectral", False)),
        example_input=example_input,
        input_shape=args.get("input_shape") if model is None else None,
        exclude=args.get("exclude") if not isinstance(model, Network) else None,
        command=prov.get("command"),
        **execution,
    )
    want = prov.get("model", {}).get("fingerprint")
    if want and result.provenance["model"]["fingerprint"] != want:
        raise ModelSpecError(
            f"the model's layers differ from the recorded ones (fingerprint "
            f"{result.provenance['model']['fingerprint']} != {want})"
        )
    return result

