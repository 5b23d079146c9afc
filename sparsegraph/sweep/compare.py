"""Sweep schemes x densities x seeds: generate each mask, audit it, and tabulate the result.

:func:`compare` draws the key picture of Vysogorets & Kempe (effective against direct compression,
per scheme, over a log grid of densities) for any model, with no training. Each
(scheme, density, seed) is one independent *task*: it builds its mask from its own seed, audits
it (DESIGN §3) and, on request, measures its spectral quality (DESIGN §5). The sweep is split by
concern:

* this module: the entry points :func:`compare` and :func:`reproduce`, and the density grid;
* :mod:`sparsegraph.sweep.plan`: schemes, seeds, the network and what each task needs;
* :mod:`sparsegraph.sweep.run`: running the tasks in this process or on ``dask.distributed``
  (chosen by measured work when not told); the table is the same bytes either way;
* :mod:`sparsegraph.sweep.results`: :class:`CompareResult`, its tidy table (the columns are
  documented there), files and provenance;
* :mod:`sparsegraph.sweep.report` and :mod:`sparsegraph.sweep.plots`: the HTML report and figures.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import os
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._args import check_count, check_density
from ..errors import ModelSpecError, QuotaError
from .plan import (
    check_dense_budget,
    load_target,
    parse_seeds,
    python_call,
    resolve_schemes,
    tasks,
    versions,
)
from .results import COLUMNS, NETWORK_ROW, TASK_COLUMNS, CompareResult
from .run import _failure, execute

__all__ = [
    "COLUMNS",
    "NETWORK_ROW",
    "TASK_COLUMNS",
    "CompareResult",
    "compare",
    "parse_density_grid",
    "reproduce",
]


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------


def _check_density(value: Any, where: str) -> float:
    """A density of the grid, written as text or given as a number (the door's rule)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise QuotaError(f"{where}: expected a number in (0, 1], got {value!r}") from None
    return check_density(value, where)


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
    sparsegraph.errors.QuotaError: density grid '0.1:2:5': STOP: expected a number in (0, 1], ...
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
    data: Any = None,
    rounds: int = 100,
    command: str | Sequence[str] | None = None,
) -> CompareResult:
    """Generate, audit and tabulate masks for every scheme x density x seed.

    Parameters
    ----------
    model_or_net : str, nn.Module or Network
        A MODEL argument (built-in name such as ``"vgg16"``, ``path/file.py:factory`` or
        ``package.module:factory``), a model (with ``example_input``), or a traced
        :class:`~sparsegraph.graph.network.Network` (quota schemes only: pruners score the
        model's weights, which a Network does not hold).
    schemes : str or sequence of str
        Scheme names of :mod:`sparsegraph.registry` (or one comma-separated string). A quota
        scheme (:data:`sparsegraph.QUOTA_SCHEMES`: ``uniform``, ``erk``, ``igq``, ...; not
        ``from_mask``, which copies a given mask) makes uniformly random masks with that
        layerwise quota (:func:`sparsegraph.random_masks` with ``seed``); a pruner
        (:data:`sparsegraph.PRUNERS`: ``synflow``, ``magnitude``, ``random``, ``lamp``, and
        ``snip`` and ``grasp`` when ``data`` is given) runs ``sparsegraph.prune(model, name,
        density=d, seed=k, data=data)`` on a copy of the model re-initialised from ``k``
        (``torch.manual_seed(k)``, then every module's ``reset_parameters()``), i.e. pruning at
        a fresh initialisation; the caller's model is untouched.
    densities : str, float or sequence of float
        Overall densities in (0, 1]; a string goes through :func:`parse_density_grid`
        (``"0.1:0.0001:20"`` is 20 log-spaced points).
    seeds : int or sequence of int, default 1
        A count ``n`` (seeds ``0 .. n-1``) or the seeds themselves. The mask of quota scheme
        ``s`` at density ``d`` and seed ``k`` is exactly
        ``random_masks(net, quotas(net, s, d, dense=exclude), seed=k)``.
    spectral : bool, default False
        Add the per-layer Ramanujan metrics of :func:`sparsegraph.spectral` (``spectral_*``
        columns; network rows carry the plain mean over the layers that passed the degree
        gate, the paper's aggregation). Slower.
    client : distributed.Client, True, False or None
        Run on this Dask client (a user's cluster). ``False`` runs serially in this process;
        ``True`` on a new local cluster. None (default): decide by the work (see
        :mod:`sparsegraph.sweep.run`): the first task of each scheme runs here, and a
        ``LocalCluster`` of worker processes (one thread each) is started only when the rest
        would finish sooner on it; serially when ``dask.distributed`` is not installed. The
        choice and its reason are ``provenance["execution"]["mode"]`` and ``["reason"]``.
    scheduler : str, optional
        Address of a running Dask scheduler (``"tcp://host:8786"``) to connect to.
    workers : int, optional
        Worker processes of a local cluster, started whatever the work (default: decide as
        above); ``0`` runs serially.
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
        Layer names or globs kept dense by every scheme: quota schemes get them as ``dense=``
        (they count in the budget, so the overall density is still exactly the target) and
        pruners as ``exclude=`` (the same rule).
    data : (x, y) pair or iterable of (x, y) batches, optional
        For the pruners that need data (``snip``, ``grasp``); every seed scores on the same
        batches (:func:`sparsegraph.load_data` makes them from digits, random inputs, a file
        or a factory).
    rounds : int, default 100
        Rounds of the iterative pruners (``synflow``), as in :func:`sparsegraph.prune`.
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
        For an unknown scheme, one that needs data without ``data``, a density outside
        (0, 1], a bad seed list, excluded layers that keep more weights than a density allows
        (all before any work).
    ModelSpecError
        For a model name that cannot be resolved, a model object without ``example_input``,
        ``input_shape`` with a model object, or a pruner scheme with a Network.
    TraceError
        For a model that cannot be traced.
    ArgumentError
        For ``model_or_net`` that is neither a model name, a model nor a Network, a negative
        ``retries`` or ``rounds`` below 1.
    NetworkError
        For a network without prunable weights.
    MaskError
        For a pattern in ``exclude`` that matches no layer.
    SparseGraphError
        For contradictory execution arguments, or Dask requested but not installed.

    Notes
    -----
    Tasks are independent: each builds its mask from its own seed, so the table does not depend
    on the number of workers or the order tasks finish in, and rows are sorted back into the
    requested order. The network (plain data, it pickles) and, for pruners, the model are
    scattered to the workers once, not shipped per task. Before the sweep every worker (and this
    process, when it runs tasks) makes one uniform mask of the real network at density 1% and
    audits it, which loads the numba kernels the sweep uses (their on-disk caches are per
    process), so the per-task timings are warm; the longest of these warm-ups is
    ``provenance["execution"]["warmup_s"]``.

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
    scheme_list = resolve_schemes(schemes, have_data=data is not None)
    density_list = parse_density_grid(densities)
    seed_list = parse_seeds(seeds)
    retries = check_count(retries, "retries", minimum=0)
    rounds = check_count(rounds, "rounds")
    if isinstance(exclude, str):
        exclude = [exclude]
    need_model = any(kind == "pruner" for _, kind in scheme_list)
    payload, spec = load_target(model_or_net, example_input, input_shape, exclude, need_model,
                                data if need_model else None)
    net = payload.net
    payload.rounds = rounds
    check_dense_budget(net, payload.exclude, density_list)

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
        "rounds": rounds,
        "data": getattr(data, "description", None) or ("given" if data is not None else None),
    }
    if command is None:
        command_text = python_call(arguments)
    elif isinstance(command, str):
        command_text = command
    else:
        command_text = shlex.join([str(c) for c in command])

    specs = tasks(scheme_list, density_list, seed_list)
    ex = execute(payload, specs, spectral=bool(spectral), client=client, scheduler=scheduler,
                 workers=workers, retries=int(retries), progress=progress,
                 label=f"compare {net.name}")

    rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    for i, (s, k, d, seed) in enumerate(specs):
        out = ex.outputs[i]
        task = {"scheme": s, "kind": k, "density": d, "seed": seed}
        if out is not None:
            rows.extend(out["rows"])
            task.update(status="ok", attempts=ex.attempts[i], error="", worker=out["worker"],
                        mask_s=out["mask_s"], audit_s=out["audit_s"],
                        spectral_s=out["spectral_s"], total_s=out["total_s"])
        else:
            err = ex.errors[i] or _failure(None)
            task.update(status="failed", attempts=ex.attempts[i], error=err["error"], worker="",
                        mask_s=math.nan, audit_s=math.nan, spectral_s=math.nan,
                        total_s=math.nan, traceback=err["traceback"])
        task_rows.append(task)

    provenance = {
        "command": command_text,
        "python_call": python_call(arguments),
        "arguments": arguments,
        "model": {
            "spec": spec,
            "class": type(model_or_net).__name__ if spec is None else None,
            "name": net.name,
            "params": net.params,
            "layers": len(net.layers),
            "fingerprint": net.fingerprint(),
            "input_shapes": [list(s) for s in getattr(net, "input_shapes", ())],
            "dense": list(payload.exclude or []),
            "skipped": [{"name": n, "reason": r} for n, r in getattr(net, "skipped", ())],
        },
        "execution": {
            "mode": ex.mode,
            "reason": ex.reason,
            "workers": ex.workers,
            "scheduler": ex.scheduler,
            "tasks": len(specs),
            "failed": sum(1 for t in task_rows if t["status"] != "ok"),
            "warmup_s": max((v for v in ex.warm.values() if math.isfinite(v)), default=0.0),
            "estimated_s": ex.estimate_s,
            "wall_s": time.perf_counter() - t_start,
        },
        "versions": versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(sys.argv),
    }
    return CompareResult(rows=rows, tasks=task_rows, provenance=provenance, net=net)


def reproduce(
    record: CompareResult | Mapping[str, Any] | str | os.PathLike[str],
    *,
    model: Any = None,
    example_input: Any = None,
    data: Any = None,
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
    data : (x, y) pair or iterable of (x, y) batches, optional
        The data again, when the record's schemes include a pruner that needs data (files
        record only its description).
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
        rounds=int(args.get("rounds", 100)),
        exclude=args.get("exclude"),
        data=data,
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

