"""Planning a sweep: which schemes and seeds, on what network, and the record of the request.

:func:`sparsegraph.compare` turns its arguments into a plan here before any work starts, so every
bad argument is refused up front: the schemes (from :mod:`sparsegraph.registry`: a quota scheme
or a pruner; what each needs is checked against what was given), the seeds, the network (traced
from a model name or a model, or given), the layers kept dense, and the data of the pruners that
need it. The task list is the product schemes x densities x seeds in that order.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._args import check_module, check_network, select_layers
from ..errors import ModelSpecError, QuotaError
from ..graph.network import Network
from ..registry import SCHEMES
from ..registry import get as get_scheme
from .run import Payload

__all__ = [
    "check_dense_budget",
    "load_target",
    "parse_seeds",
    "python_call",
    "resolve_schemes",
    "tasks",
    "versions",
]


def parse_seeds(seeds: int | Iterable[int]) -> list[int]:
    """A seed count ``n`` (seeds ``0 .. n-1``) or the seeds themselves, as a list.

    Raises
    ------
    QuotaError
        For a count below 1, a negative or non-integer seed, a repeated seed, or none.

    Examples
    --------
    >>> parse_seeds(3), parse_seeds([4, 2])
    ([0, 1, 2], [4, 2])
    """
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


def resolve_schemes(schemes: str | Iterable[str], *, have_data: bool = False
                    ) -> list[tuple[str, str]]:
    """``[(name, kind), ...]`` for the requested schemes, checked against the registry.

    Raises
    ------
    QuotaError
        For no scheme, an unknown or repeated one, one that is not sweepable (``from_mask``
        copies a given mask), or a pruner that needs data when none was given.

    Examples
    --------
    >>> resolve_schemes("uniform,synflow")
    [('uniform', 'quota'), ('synflow', 'pruner')]
    """
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
    out: list[tuple[str, str]] = []
    for name in names:
        record = get_scheme(name, what="schemes")
        if not record.sweepable:
            raise QuotaError(
                f"schemes: {name!r} copies the layer densities of a given mask; it is not a "
                "scheme to sweep over densities"
            )
        if "data" in record.needs and not have_data:
            free = [n for n, s in SCHEMES.items() if s.sweepable and "data" not in s.needs]
            raise QuotaError(
                f"schemes: {name!r} needs data: pass {{data}}; the data-free schemes are "
                f"{', '.join(free)}",
                data="data=(x, y) or an iterable of (x, y) batches",
            )
        if any(name == n for n, _ in out):
            raise QuotaError(f"schemes: {name!r} appears twice; give each scheme once")
        out.append((name, record.kind))
    return out


def tasks(schemes: Sequence[tuple[str, str]], densities: Sequence[float],
          seeds: Sequence[int]) -> list[tuple[str, str, float, int]]:
    """Every ``(scheme, kind, density, seed)`` in the order of the table."""
    return [(s, k, d, seed) for s, k in schemes for d in densities for seed in seeds]


def load_target(model_or_net: Any, example_input: Any, input_shape: Any, exclude: Any,
                need_model: bool, data: Any = None) -> tuple[Payload, str | None]:
    """The payload every task needs, and the model name when one was given.

    A model name or a model is traced (the tracer has no notion of excluded layers: they are
    resolved against the traced layers here and kept dense by every task). The model and its
    example input are kept only when a pruner needs them.

    Raises
    ------
    ModelSpecError
        A Network where pruners need the model's weights, a model object without an example
        input, ``input_shape`` with a model object.
    ArgumentError
        Something that is neither a model name, a model nor a Network.
    NetworkError
        A network without prunable weights.
    MaskError
        A pattern in ``exclude`` that matches no layer.
    """
    if isinstance(exclude, str):
        exclude = [exclude]
    if isinstance(model_or_net, Network):
        if need_model:
            raise ModelSpecError(
                "pruner schemes score the model's weights, which a traced Network does not "
                "hold: pass the nn.Module (with example_input) or a model name"
            )
        net, spec, model, example = model_or_net, None, None, None
    else:
        from ..graph.trace import trace

        spec = None
        if isinstance(model_or_net, str):
            from ..pytorch.models import resolve_model

            spec = model_or_net
            model, example = resolve_model(spec, input_shape)
            if example_input is not None:
                example = example_input
        else:
            model = check_module(model_or_net, "model_or_net", expected=(
                "a model name, a torch.nn.Module or a Network from sparsegraph.trace"))
            example = example_input
            if example is None:
                example = getattr(model, "example_input", None)
            if example is None:
                raise ModelSpecError(
                    "example_input: a model object needs an example input to be traced (e.g. "
                    "torch.zeros(1, 3, 32, 32)); or pass a built-in model name or a Network"
                )
            if input_shape is not None:
                raise ModelSpecError("input_shape: applies to a model name; pass example_input")
        # a named model is labelled with its name, as the other sub-commands do
        net = trace(model, example, name=spec) if spec is not None else trace(model, example)
    check_network(net, "model_or_net", weights=True)
    dense = select_layers(net, exclude, what="excluded") if exclude else []
    keep_model = need_model and not isinstance(model_or_net, Network)
    return Payload(net, model if keep_model else None, example if keep_model else None,
                   dense or None, data), spec


def check_dense_budget(net: Network, dense: Sequence[str] | None, densities: Sequence[float]
                       ) -> None:
    """Refuse, before any work, densities whose budget is smaller than the layers kept dense.

    Raises
    ------
    QuotaError
        Naming the lowest such density and the weights the dense layers keep.
    """
    if not dense:
        return
    from ..masks.quotas import budget_of

    kept_dense = sum(net.layer(n).params for n in dense)
    bad = [d for d in densities if budget_of(d, net.params) < kept_dense]
    if bad:
        low = min(bad)
        raise QuotaError(
            f"{{exclude}}: the excluded layers {', '.join(dense)} keep {kept_dense:,} weights, "
            f"more than density {low:g} allows ({budget_of(low, net.params):,} of "
            f"{net.params:,}); {len(bad)} of the densities are that low: raise them or exclude "
            "fewer layers", exclude="exclude",
        )


def versions() -> dict[str, str | None]:
    """Versions of Python, the platform, sparsegraph and the libraries a result depends on."""
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


def python_call(args: Mapping[str, Any]) -> str:
    """The ``sparsegraph.compare(...)`` call that repeats a request (a model object shows as
    ``model``; data shows as ``data``)."""
    parts = [repr(args["model"]) if args["model"] is not None else "model"]
    parts.append(f"schemes={list(args['schemes'])!r}")
    parts.append(f"densities={list(args['densities'])!r}")
    parts.append(f"seeds={list(args['seeds'])!r}")
    for key in ("spectral", "input_shape", "exclude"):
        if args.get(key):
            parts.append(f"{key}={args[key]!r}")
    if args.get("rounds", 100) != 100:
        parts.append(f"rounds={args['rounds']!r}")
    if args.get("data"):
        parts.append("data=data")
    return f"sparsegraph.compare({', '.join(parts)})"
