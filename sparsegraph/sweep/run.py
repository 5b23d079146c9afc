"""Running a sweep's tasks: in this process, or on ``dask.distributed`` (a local cluster of
worker processes, a user's client, or a scheduler address).

Every task is independent (its mask comes from its own seed), so where it runs never changes its
rows. :func:`execute` runs a list of tasks and says how: *serial* (in this process) or *dask*.
Without an explicit choice (no ``client``, ``scheduler`` or ``workers``) it measures first:
the first task of each scheme runs here, the rest of the work is estimated from those timings,
and a local cluster is started only when it would finish sooner than this process alone, i.e.
when the remaining work exceeds what starting and warming the worker processes costs
(:data:`CLUSTER_START_S`, measured on a 2-core machine). The reason is recorded.
"""

from __future__ import annotations

import math
import os
import socket
import time
import traceback
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SparseGraphError
from ..graph.network import Network
from .results import NETWORK_ROW, num, ratio

__all__ = ["CLUSTER_START_S", "Execution", "Payload", "choose", "execute"]

#: Seconds a local Dask cluster takes before its workers run tasks at full speed: starting the
#: scheduler and the worker processes, importing numpy, numba and torch in each, and loading the
#: kernels. Measured on a loaded 2-core machine for two workers: 14-21 s from start to the end of
#: an 18-task ResNet-20 sweep that takes 1.1 s serially, 6-9 s of it in the workers' warm-up.
CLUSTER_START_S = 10.0


@dataclass
class Payload:
    """What every task needs, shipped to each worker once: the network; for pruners, the
    model and its example input (a picklable module); the layers kept dense; the data batches
    of the pruners that need data; the rounds of iterative pruners."""

    net: Network
    model: Any = None
    example_input: Any = None
    exclude: list[str] | None = None
    data: Any = None
    rounds: int = 100


def _make_masks(payload: Payload, scheme: str, kind: str, density: float, seed: int
                ) -> dict[str, np.ndarray]:
    """The mask of one task: random masks from the quota, or the pruner's on a fresh model."""
    net = payload.net
    if kind == "quota":
        from ..masks.quotas import quotas
        from ..masks.sampling import random_masks

        return random_masks(net, quotas(net, scheme, density, dense=payload.exclude or None),
                            seed=seed)
    return _prune_with_seed(payload, scheme, density, seed)


def _prune_with_seed(payload: Payload, scheme: str, density: float, seed: int
                     ) -> dict[str, np.ndarray]:
    """Run a pruner on a copy of the model re-initialised from ``seed``.

    Pruning at initialization scores a *freshly initialised* network, so the seed of a pruner
    task is the seed of that initialisation (``torch.manual_seed(seed)`` then
    ``reset_parameters()`` of every module that has one; the global RNG state is restored).
    The caller's model is never modified.
    """
    import copy

    import torch

    from ..pytorch.pruners import prune

    model = copy.deepcopy(payload.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # a collapsed layer is recorded in the table; no warning per task
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(int(seed))
        masks = prune(model, scheme, density=density, example_input=payload.example_input,
                      seed=int(seed), exclude=payload.exclude or None, data=payload.data,
                      rounds=payload.rounds)
    return dict(masks)


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


def _run_task(payload: Payload, scheme: str, kind: str, density: float, seed: int,
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
            "direct_density": float(num(rec["direct_density"])),
            "effective_density": float(num(rec["effective_density"])),
            "direct_compression": ratio(params, kept),
            "effective_compression": ratio(params, eff),
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
        "direct_density": float(num(nw["direct_density"])),
        "effective_density": float(num(nw["effective_density"])),
        "direct_compression": float(num(nw["direct_compression"])),
        "effective_compression": float(num(nw["effective_compression"])),
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


def _warm_up(payload: Payload | None = None) -> float:
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



def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return int(os.cpu_count() or 1)  # pragma: no cover - platforms without affinity


def _explicit(client: Any, scheduler: str | None, workers: int | None
              ) -> tuple[str, Any, list[Any]]:
    """How the caller asked to run: ``("serial" | "dask" | "local" | "auto", client, to close)``
    (``"local"``: start a local cluster of ``workers`` processes)."""
    if client is False or workers == 0:
        if scheduler is not None:
            raise SparseGraphError("scheduler: cannot be combined with client=False / workers=0")
        return "serial", None, []
    if client is not None and client is not True:
        if scheduler is not None:
            raise SparseGraphError("pass either client= or scheduler=, not both")
        return "dask", client, []
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 0):
        raise SparseGraphError(f"workers: expected a non-negative integer, got {workers!r}")
    try:
        from distributed import Client
    except ImportError:
        if scheduler is not None or client is True or workers is not None:
            raise SparseGraphError(
                "a Dask scheduler or worker count was requested but dask.distributed is not "
                "installed: pip install 'sparsegraph-pai[dask]'"
            ) from None
        return "serial", None, []
    if scheduler is not None:
        if workers is not None:
            raise SparseGraphError("workers: only for a local cluster; a scheduler= cluster "
                                   "has its own workers")
        c = Client(scheduler)
        return "dask", c, [c]
    if workers is not None or client is True:
        return "local", None, []
    return "auto", None, []


def _local_cluster(n: int) -> tuple[Any, list[Any]]:
    import logging

    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,  # failed tasks are reported in the result, once
        env={"NUMBA_NUM_THREADS": "1"},
    )
    c = Client(cluster)
    return c, [c, cluster]


@dataclass
class Execution:
    """What :func:`execute` did: per task its output (or None) and error, the attempts, and
    how it ran (``mode``, ``workers``, ``scheduler``, ``reason``, warm-up seconds)."""

    outputs: list[dict[str, Any] | None]
    errors: list[dict[str, str] | None]
    attempts: list[int | None]
    mode: str = "serial"
    workers: int = 1
    scheduler: str | None = None
    reason: str = ""
    warm: dict[str, float] = field(default_factory=dict)
    estimate_s: float | None = None


def _run_here(payload: Payload, specs: Sequence[tuple], indices: Sequence[int],
              spectral: bool, retries: int, ex: Execution, bar: Any) -> dict[int, float]:
    """Run the tasks ``indices`` in this process; returns their wall times."""
    took: dict[int, float] = {}
    for i in indices:
        s, k, d, seed = specs[i]
        t0 = time.perf_counter()
        for attempt in range(retries + 1):
            ex.attempts[i] = attempt + 1
            out = _run_here_one(payload, s, k, d, seed, spectral)
            if "failure" in out:
                ex.errors[i] = out["failure"]
                if out.get("final"):
                    break
                continue
            ex.outputs[i] = out
            ex.errors[i] = None
            break
        took[i] = time.perf_counter() - t0
        if bar is not None:
            bar.advance(bar.task_ids[0])
    return took


def _run_task_once(payload: Payload, scheme: str, kind: str, density: float, seed: int,
                   spectral: bool) -> dict[str, Any]:
    """:func:`_run_task`, with a bad request (a :class:`SparseGraphError`, which another try
    would only repeat) returned as ``{"failure": ..., "final": True}`` instead of raised, so it
    is not retried, here or by Dask; any other exception is raised for a retry."""
    try:
        return _run_task(payload, scheme, kind, density, seed, spectral)
    except SparseGraphError as exc:
        return {"failure": _failure(exc), "final": True}


def _run_here_one(payload: Payload, scheme: str, kind: str, density: float, seed: int,
                  spectral: bool) -> dict[str, Any]:
    try:
        return _run_task_once(payload, scheme, kind, density, seed, spectral)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported in the result
        return {"failure": _failure(exc)}


def _run_dask(active: Any, payload: Payload, specs: Sequence[tuple], indices: Sequence[int],
              spectral: bool, retries: int, ex: Execution, bar: Any, label: str) -> None:
    from distributed import as_completed

    ex.scheduler = getattr(active, "scheduler", None) and active.scheduler.address
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
            ex.warm[addr] = float(fut.result())
        except Exception:  # noqa: BLE001 - a worker lost while warming: tasks will tell
            ex.warm[addr] = math.nan
    ex.workers = max(1, len(addresses))
    if bar is not None:
        bar.update(bar.task_ids[0], description=f"{label} ({ex.workers} workers)")
    futures = [
        active.submit(_run_task_once, shared, *specs[i], spectral,
                      key=f"sparsegraph-compare-{token}-{i}", retries=retries, pure=False)
        for i in indices
    ]
    where = {f.key: i for i, f in zip(indices, futures, strict=True)}
    for i in indices:
        ex.attempts[i] = None  # Dask does not say how often a success was retried
    try:
        for fut in as_completed(futures):
            i = where[fut.key]
            if fut.status == "finished":
                out = fut.result()
                if "failure" in out:
                    ex.errors[i], ex.attempts[i] = out["failure"], 1
                else:
                    ex.outputs[i] = out
            else:
                err = tb = None
                if fut.status == "error":
                    err, tb = fut.exception(), fut.traceback()
                ex.errors[i] = _failure(err, tb)
                ex.attempts[i] = retries + 1
            if bar is not None:
                bar.advance(bar.task_ids[0])
    except BaseException:
        active.cancel(futures)
        raise


def choose(left_s: float, cores: int) -> tuple[str, str]:
    """``("local" | "serial", reason)`` for ``left_s`` seconds of serial work on ``cores``:
    a local cluster only when its workers save more time than :data:`CLUSTER_START_S`.

    Examples
    --------
    >>> choose(3.0, 2)[0], choose(60.0, 2)[0]
    ('serial', 'local')
    """
    saved = left_s - left_s / max(cores, 1)
    head = f"about {left_s:.1f} s of work left after one task per scheme"
    if cores > 1 and saved > CLUSTER_START_S:
        return "local", (f"{head}: {cores} worker processes save more than the ~"
                         f"{CLUSTER_START_S:g} s a local Dask cluster takes to start")
    return "serial", (f"{head}: less than {cores} worker processes would save over the ~"
                      f"{CLUSTER_START_S:g} s a local Dask cluster takes to start "
                      "(ask for workers to use one anyway)")


def execute(payload: Payload, specs: Sequence[tuple[str, str, float, int]], *,
            spectral: bool = False, client: Any = None, scheduler: str | None = None,
            workers: int | None = None, retries: int = 2, progress: bool = False,
            label: str = "compare") -> Execution:
    """Run every ``(scheme, kind, density, seed)`` task; see the module docstring for where.

    Raises
    ------
    SparseGraphError
        For contradictory execution arguments, or Dask requested but not installed.
    """
    n = len(specs)
    ex = Execution(outputs=[None] * n, errors=[None] * n, attempts=[1] * n)
    how, active, to_close = _explicit(client, scheduler, workers)
    bar = _progress(progress, n, f"{label} (warming up)")
    try:
        todo = list(range(n))
        if how == "auto":
            cores = min(_cores(), n)
            if cores < 2:
                how = "serial"
                ex.reason = ("one task" if n == 1 else "one core") + ": no cluster needed"
            else:
                ex.warm = {"local": _warm_up(payload)}
                if bar is not None:
                    bar.update(bar.task_ids[0], description=label)
                firsts = list(dict.fromkeys(specs[i][0] for i in todo))
                pilots = [next(i for i in todo if specs[i][0] == s) for s in firsts]
                took = _run_here(payload, specs, pilots, spectral, retries, ex, bar)
                todo = [i for i in todo if i not in took]
                per = {specs[i][0]: t for i, t in took.items()}
                left = sum(per[specs[i][0]] for i in todo)
                ex.estimate_s = left
                how, ex.reason = choose(left, cores)
                workers = cores if how == "local" else None
        elif how == "serial":
            ex.reason = ("requested (client=False or workers=0)" if client is False
                         or workers == 0 else "dask.distributed is not installed")
        if how == "local":
            if not ex.reason:
                ex.reason = f"requested ({workers} workers)" if workers else "requested"
            count = int(workers) if workers else min(_cores(), max(len(todo), 1))
            active, extra = _local_cluster(max(1, count))
            to_close += extra
            how = "dask"
        elif how == "dask" and not ex.reason:
            ex.reason = "requested (a Dask client or scheduler)"
        ex.mode = how
        if how == "serial":
            if not ex.warm:
                ex.warm = {"local": _warm_up(payload)}
                if bar is not None:
                    bar.update(bar.task_ids[0], description=label)
            _run_here(payload, specs, todo, spectral, retries, ex, bar)
        elif todo:
            _run_dask(active, payload, specs, todo, spectral, retries, ex, bar, label)
    finally:
        if bar is not None:
            bar.stop()
        for thing in to_close:
            try:
                thing.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass
    return ex


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


