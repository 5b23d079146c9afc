"""Layerwise density quotas: one overall density turned into per-layer densities.

A quota scheme is a pure function from a :class:`LayerTable` (the layers to allocate) and a
budget (the number of weights to keep among them) to real-valued per-layer densities; each is
one record of :mod:`sparsegraph.registry` (name, function, needs, reference), viewed here as
:data:`QUOTA_SCHEMES`, which is what :func:`quotas`, the command line's ``--scheme`` choices and
the README read. :func:`quotas` validates the request,
hands the free layers and their budget to the scheme, and turns the result into integer kept
counts with the one rounding rule of the library (:func:`~sparsegraph.masks.rounding.round_counts`,
largest remainder; :mod:`sparsegraph.masks.rounding`).

Vocabulary: ``density`` is the fraction of weights kept, ``sparsity = 1 - density``; counts are
integers and named as such.

The budget
----------
``N`` is the number of prunable weights of the network (layers excluded at trace time are not
prunable and not counted anywhere). The kept counts sum exactly to ``round(density * N)``
(Python's ``round``). Layers listed in ``dense`` are kept whole (density 1):

* ``dense_in_budget=True`` (default; RigL's convention): they count toward ``round(density * N)``
  and the other layers share what is left, so the overall density is exactly ``density``;
* ``dense_in_budget=False``: the other layers alone keep ``round(density * N')`` of their ``N'``
  weights and the dense layers come on top, so the overall density exceeds ``density``.

Schemes
-------
``uniform``     every layer ``density``.
``uniform+``    Gale et al. (2019): first layer dense, last layer at least 20% dense, the rest
                one uniform density.
``er``          Mocanu et al. (2018) as in RigL: density proportional to ``(c_in + c_out) /
                (c_in * c_out)`` from the weight's first two dims (kernel dims left out).
``erk``         Evci et al. (2020): proportional to ``(sum of the weight's dims / product of its
                dims) ** erk_power_scale``.
``er_graph``    Erdős–Rényi on the unrolled bipartite graph (``c_in*kh*kw`` inputs -> ``c_out``
                outputs): proportional to ``(c_in*kh*kw + c_out) / params``.
``igq``         Vysogorets & Kempe's ideal-gas quotas: ``1 / (1 + F * n_l)`` with one shared force
                ``F >= 0``.
``from_mask``   the layer densities of a given mask (``masks=``).

The proportional schemes (``uniform``, ``er``, ``erk``, ``er_graph``, and a user mapping rescaled
to a density) share RigL's rule for layers that would exceed density 1: the layer(s) with the
largest raw density become dense, still inside the budget, and the scale is re-solved over the
rest, repeatedly (:func:`~sparsegraph.masks.rounding.scale_to_budget`). This works at every
density in (0, 1].
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from .._args import as_bool_mask, check_density, check_masks, check_network, select_layers
from ..errors import MaskError, QuotaError
from ..graph.network import Layer, Network
from ..registry import SchemeView
from ..registry import get as get_scheme
from .rounding import budget_of, round_counts, scale_to_budget

__all__ = [
    "QUOTA_SCHEMES",
    "LayerTable",
    "quotas",
    "quota_counts",
    "round_counts",
    "scale_to_budget",
    "budget_of",
]

# the last layer of uniform+ keeps at least this fraction (Gale et al. 2019)
UNIFORM_PLUS_LAST_MIN = 0.2


@dataclass(frozen=True)
class LayerTable:
    """The layers a quota scheme allocates, with their position in the network.

    Attributes
    ----------
    layers : tuple of Layer
        The layers to allocate (layers kept dense by the caller are not in the table).
    positions : tuple of int
        Each layer's index in ``Network.layers`` (``uniform+`` needs to know the first and last).
    n_network_layers : int
        Number of prunable layers of the whole network.
    """

    layers: tuple[Layer, ...]
    positions: tuple[int, ...]
    n_network_layers: int

    @property
    def names(self) -> list[str]:
        """Layer names in table order."""
        return [layer.name for layer in self.layers]

    @property
    def params(self) -> np.ndarray:
        """Weights per layer, int64."""
        return np.array([layer.params for layer in self.layers], dtype=np.int64)

    @classmethod
    def from_network(cls, net: Network) -> LayerTable:
        """The table of every layer of ``net``."""
        return cls(tuple(net.layers), tuple(range(len(net.layers))), len(net.layers))

    def __len__(self) -> int:
        return len(self.layers)


# ---------------------------------------------------------------------------------------------
# The schemes: pure functions (table, budget, **options) -> densities
# ---------------------------------------------------------------------------------------------


def _need_budget(budget: int | None, scheme: str) -> int:
    if budget is None:
        raise QuotaError(f"scheme {scheme!r} needs a density")
    return budget


def _raw_erk(layer: Layer, power: float) -> float:
    return (sum(layer.shape) / layer.params) ** power


def _raw_er(layer: Layer) -> float:
    c_out, c_in = layer.out_channels, layer.in_channels // layer.groups
    return (c_in + c_out) / (c_in * c_out)


def _raw_er_graph(layer: Layer) -> float:
    left = layer.in_channels * math.prod(layer.kernel)
    return (left + layer.out_channels) / layer.params


def scheme_uniform(table: LayerTable, budget: int | None) -> np.ndarray:
    """Every layer the same density."""
    budget = _need_budget(budget, "uniform")
    return scale_to_budget(table.params, np.ones(len(table)), budget)


def scheme_uniform_plus(table: LayerTable, budget: int | None) -> np.ndarray:
    """Gale et al. 2019: first layer dense, last layer at least 20% dense, the rest uniform."""
    budget = _need_budget(budget, "uniform+")
    n = table.params.astype(np.float64)
    floors = np.zeros(len(table))
    last = table.n_network_layers - 1
    for i, pos in enumerate(table.positions):
        if pos == 0:
            floors[i] = 1.0
        elif pos == last:
            floors[i] = UNIFORM_PLUS_LAST_MIN
    minimum = float((n * floors).sum())
    if budget < minimum - 1e-9 * max(minimum, 1.0) or (
        budget <= minimum and not np.all(floors > 0)
    ):
        total = int(n.sum())
        raise QuotaError(
            f"uniform+ is infeasible at this density: the dense first layer and the last layer "
            f"at {UNIFORM_PLUS_LAST_MIN:.0%} alone keep {minimum:.0f} of these {total} weights "
            f"(density {minimum / total:.4g}, sparsity {1 - minimum / total:.4g}), but the "
            f"budget is {budget}; choose a density above {minimum / total:.4g}"
        )
    # g(d) = sum n * max(d, floor) is piecewise linear and increasing: solve on each piece.
    breaks = sorted({0.0, 1.0, *[float(f) for f in floors]})
    for lo, hi in zip(breaks[:-1], breaks[1:], strict=True):
        g_hi = float((n * np.maximum(hi, floors)).sum())
        if budget <= g_hi + 1e-9 * g_hi:
            above = floors <= lo
            fixed = float((n[~above] * floors[~above]).sum())
            slope = float(n[above].sum())
            d = hi if slope == 0 else (budget - fixed) / slope
            return np.clip(np.maximum(d, floors), 0.0, 1.0)
    return np.ones(len(table))  # pragma: no cover - budget <= sum(n) always


def scheme_er(table: LayerTable, budget: int | None) -> np.ndarray:
    """Erdős–Rényi as in RigL: proportional to (c_in + c_out) / (c_in * c_out), kernel dims
    left out, capped by RigL's rule."""
    budget = _need_budget(budget, "er")
    return scale_to_budget(table.params, [_raw_er(layer) for layer in table.layers], budget)


def scheme_erk(table: LayerTable, budget: int | None, *,
               erk_power_scale: float = 1.0) -> np.ndarray:
    """Erdős–Rényi-Kernel (RigL): proportional to (sum(shape) / prod(shape)) ** erk_power_scale,
    capped by RigL's rule."""
    budget = _need_budget(budget, "erk")
    raw = [_raw_erk(layer, erk_power_scale) for layer in table.layers]
    return scale_to_budget(table.params, raw, budget)


def scheme_er_graph(table: LayerTable, budget: int | None) -> np.ndarray:
    """Erdős–Rényi on the unrolled bipartite graph (c_in*kh*kw inputs -> c_out outputs):
    proportional to (c_in*kh*kw + c_out) / params, capped by RigL's rule."""
    budget = _need_budget(budget, "er_graph")
    raw = [_raw_er_graph(layer) for layer in table.layers]
    return scale_to_budget(table.params, raw, budget)


def igq_force(params: Sequence[int] | np.ndarray, budget: float) -> float:
    """The shared force ``F >= 0`` of the ideal-gas quotas: ``sum n / (1 + F n) == budget``.

    Bisection on ``log F`` between bounds that bracket the root, to float precision (far below
    one weight). ``inf`` for a zero budget, ``0`` for the full budget.

    Examples
    --------
    >>> from sparsegraph.masks.quotas import igq_force
    >>> F = igq_force([100, 1000], 550)
    >>> round(100 / (1 + F * 100) + 1000 / (1 + F * 1000), 6)
    550.0
    """
    n = np.asarray(params, dtype=np.float64)
    total = float(n.sum())
    if budget <= 0:
        return math.inf
    if budget >= total:
        return 0.0

    def kept(force: float) -> float:
        return float((n / (1.0 + force * n)).sum())

    # kept(F) >= total / (1 + F max n) and <= L / F
    lo = (total - budget) / (budget * float(n.max()))
    hi = n.size / budget
    lo_log, hi_log = math.log(lo), math.log(hi)
    for _ in range(200):
        mid = 0.5 * (lo_log + hi_log)
        if kept(math.exp(mid)) > budget:
            lo_log = mid
        else:
            hi_log = mid
        if hi_log - lo_log < 1e-15:
            break
    return math.exp(0.5 * (lo_log + hi_log))


def scheme_igq(table: LayerTable, budget: int | None) -> np.ndarray:
    """Ideal-gas quotas (Vysogorets & Kempe): density 1 / (1 + F * n_l), one shared force F."""
    budget = _need_budget(budget, "igq")
    n = table.params.astype(np.float64)
    force = igq_force(n, budget)
    if math.isinf(force):
        return np.zeros(n.size)
    return 1.0 / (1.0 + force * n)


def scheme_from_mask(table: LayerTable, budget: int | None, *,
                     masks: Mapping[str, Any] | None = None) -> np.ndarray:
    """A mask's own layer densities (the "layerwise shuffle" of Frankle et al. 2021);
    rescaled by RigL's rule when a density is also given."""
    if masks is None:
        raise QuotaError("scheme 'from_mask' needs masks=: the mask whose layer densities to use")
    if not isinstance(masks, Mapping):
        raise QuotaError(f"masks: expected a mapping of layer name to array, got "
                         f"{type(masks).__name__}")
    out = np.ones(len(table))
    for i, layer in enumerate(table.layers):
        if layer.name in masks:
            value = masks[layer.name]
            shape = getattr(value, "shape", None)  # before any conversion
            if shape is not None and tuple(shape) != layer.shape:
                raise QuotaError(f"masks[{layer.name!r}]: expected shape {list(layer.shape)}, "
                                 f"got {list(shape)}")
            try:  # the one door: any 0/1 array or tensor (float8, sparse, ...), bytes 0/1
                arr = as_bool_mask(value, layer.name)
            except MaskError as exc:
                raise QuotaError(f"from_mask: {exc}") from None
            if arr.shape != layer.shape:
                raise QuotaError(f"masks[{layer.name!r}]: expected shape {list(layer.shape)}, "
                                 f"got {list(arr.shape)}")
            out[i] = np.count_nonzero(arr) / layer.params
    return out


#: Name -> :class:`~sparsegraph.registry.Scheme` record of every quota scheme (a read-only view
#: of :data:`sparsegraph.registry.SCHEMES`; a record is callable as its scheme function
#: ``(table, budget, **options) -> densities``). Read by quotas(), the CLI and the README.
QUOTA_SCHEMES = SchemeView("quota")


# ---------------------------------------------------------------------------------------------
# The public entry points
# ---------------------------------------------------------------------------------------------


def _given_densities(table: LayerTable, given: Any, what: str) -> np.ndarray:
    """Densities from a user mapping / sequence, one per table layer, validated."""
    if isinstance(given, Mapping):
        missing = [name for name in table.names if name not in given]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise QuotaError(f"{what} gives no density for layer {missing[0]!r}{more}; give every "
                             "layer a density or list it in dense=")
        values = [given[name] for name in table.names]
    else:
        try:
            values = list(given)
        except TypeError:
            raise QuotaError(f"{what}: expected densities per layer, got "
                             f"{type(given).__name__}") from None
        if len(values) != len(table):
            raise QuotaError(f"{what}: expected {len(table)} densities (one per layer), got "
                             f"{len(values)}")
    out = np.empty(len(values), dtype=np.float64)
    for i, (name, value) in enumerate(zip(table.names, values, strict=True)):
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise QuotaError(f"{what}[{name!r}]: expected a density in [0, 1], got "
                             f"{value!r}") from None
        if math.isnan(v) or not 0.0 <= v <= 1.0:
            raise QuotaError(f"{what}[{name!r}]: expected a density in [0, 1], got {v!r}")
        out[i] = v
    return out


def quotas(
    net: Network,
    scheme: str | Mapping[str, float] | Callable[..., Any],
    density: float | None = None,
    *,
    dense: Iterable[str] | str | None = None,
    dense_in_budget: bool = True,
    erk_power_scale: float = 1.0,
    masks: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Per-layer densities for an overall density, with integer counts that sum exactly.

    Parameters
    ----------
    net : Network
        The network (from :func:`sparsegraph.trace`).
    scheme : str, mapping or callable
        A name in :data:`QUOTA_SCHEMES` (``"uniform"``, ``"uniform+"``, ``"er"``, ``"erk"``,
        ``"er_graph"``, ``"igq"``, ``"from_mask"``); a mapping of layer name to density; or a
        callable ``f(table, budget) -> densities`` (mapping or sequence in table order) with
        ``table`` a :class:`LayerTable` of the non-dense layers and ``budget`` their kept count
        (None without ``density``).
    density : float, optional
        Overall density in (0, 1]. Required for the named schemes except ``from_mask``. With a
        mapping, callable or ``from_mask``, None keeps the given densities (up to the rounding
        rule) and a value rescales them to it by RigL's rule (:func:`scale_to_budget`).
    dense : str or iterable of str, optional
        Layer names or globs kept dense (density 1).
    dense_in_budget : bool, default True
        Whether the dense layers count toward ``round(density * N)`` (True, RigL's convention:
        overall density exactly ``density``) or come on top of ``round(density * N')`` over the
        other layers (False).
    erk_power_scale : float, default 1.0
        RigL's exponent of the ERK raw density (``erk`` only).
    masks : mapping, optional
        The mask for ``from_mask``.

    Returns
    -------
    dict of str to float
        Every layer of ``net`` in network order; each density is ``count / params`` with the
        integer counts of :func:`quota_counts`, which sum to ``round(density * N)``
        (``N`` = all prunable weights, or the non-dense ones with ``dense_in_budget=False``).

    Raises
    ------
    QuotaError
        For a density outside (0, 1] or NaN, an unknown scheme (listing the known ones), an
        infeasible scheme/density pair (``uniform+`` below its minimum density, dense layers
        above the budget), unknown dense layer names, an option the scheme does not take, or
        user densities outside [0, 1].
    ArgumentError
        If ``net`` is not a Network (:func:`sparsegraph._args.check_network`).

    Notes
    -----
    Rounding: :func:`round_counts` (largest remainder). Cost O(L^2) for L layers. A layer with
    no weights (a zero-size ``nn.Linear(16, 0)``) keeps 0 weights, takes no part in the
    scheme (never a division by its size) and is reported with density 1.0: nothing of it is
    pruned.

    Examples
    --------
    >>> from sparsegraph.pytorch.models import build_model
    >>> from sparsegraph.masks.quotas import quotas
    >>> from sparsegraph.graph.trace import trace
    >>> net = trace(*build_model("lenet300"))
    >>> q = quotas(net, "erk", density=0.1)
    >>> {k: round(v, 4) for k, v in q.items()}
    {'fc1.weight': 0.0796, 'fc2.weight': 0.2302, 'fc3.weight': 1.0}
    >>> sum(round(q[layer.name] * layer.params) for layer in net.layers) == round(0.1 * net.params)
    True
    >>> quotas(net, "uniform+", density=0.01)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.QuotaError: uniform+ is infeasible at this density: ...
    """
    net = check_network(net)
    target = None if density is None else check_density(density)
    if not isinstance(erk_power_scale, Real) or not math.isfinite(float(erk_power_scale)):
        raise QuotaError(f"erk_power_scale: expected a finite number, got {erk_power_scale!r}")
    try:
        dense_names = set(select_layers(net, dense, what="dense"))
    except MaskError as exc:
        raise QuotaError(str(exc)) from None

    if isinstance(scheme, str):
        try:
            record = get_scheme(scheme, "quota")
        except QuotaError as exc:
            raise QuotaError(f"{exc}; or pass a mapping of layer name to density, or a "
                             "callable") from None
        if target is None and "mask" not in record.needs:
            raise QuotaError(f"scheme {scheme!r} needs a density in (0, 1]")
        if "erk_power_scale" not in record.options and erk_power_scale != 1.0:
            raise QuotaError(f"erk_power_scale applies to scheme 'erk' only, not {scheme!r}")
        if "mask" not in record.needs and masks is not None:
            raise QuotaError(f"masks= applies to scheme 'from_mask' only, not {scheme!r}")
        kind, label = "named", scheme
    elif isinstance(scheme, Mapping):
        unknown = [k for k in scheme if k not in net._index]
        if unknown:
            close = difflib.get_close_matches(str(unknown[0]), net.names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise QuotaError(f"quota mapping: unknown layer {unknown[0]!r}{hint}")
        kind, label = "given", "quota mapping"
    elif callable(scheme):
        kind, label = "callable", getattr(scheme, "__name__", "quota callable")
    else:
        raise QuotaError(f"scheme: expected a scheme name, a mapping or a callable, got "
                         f"{type(scheme).__name__}")

    # a layer without weights (nn.Linear(16, 0)) keeps 0 of them and takes no part in a scheme
    empty = {layer.name for layer in net.layers if layer.params == 0}
    positions = [i for i, layer in enumerate(net.layers)
                 if layer.name not in dense_names and layer.name not in empty]
    table = LayerTable(tuple(net.layers[i] for i in positions), tuple(positions), len(net.layers))
    n_free = int(table.params.sum())
    n_dense = net.params - n_free

    budget: int | None = None
    if target is not None:
        if dense_in_budget:
            total = budget_of(target, net.params)
            budget = total - n_dense
            if budget < 0:
                raise QuotaError(
                    f"the dense layers keep {n_dense} weights but density {target} allows only "
                    f"{total} of {net.params}; raise the density, keep fewer layers dense or "
                    "pass {dense_in_budget}", dense_in_budget="dense_in_budget=False"
                )
        else:
            budget = budget_of(target, n_free)

    if kind == "named":
        options: dict[str, Any] = {}
        if "erk_power_scale" in record.options:
            options["erk_power_scale"] = float(erk_power_scale)
        if "mask" in record.needs:
            if masks is not None:
                try:
                    check_masks(net, masks, fill_missing=False)
                except MaskError as exc:
                    raise QuotaError(f"from_mask: {exc}") from None
            options["masks"] = masks
        raw = _given_densities(table, record(table, budget, **options), label)
        rescale = "mask" in record.needs  # given densities are rescaled to the budget
    elif kind == "given":
        raw = _given_densities(table, scheme, label)
        rescale = True
    else:
        try:
            result = scheme(table, budget)  # type: ignore[operator]
        except QuotaError:
            raise
        except Exception as exc:  # noqa: BLE001 - a user's callable can raise anything
            raise QuotaError(
                f"quota callable {label!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        raw = _given_densities(table, result, f"quota callable {label!r}")
        rescale = True

    params = table.params
    if budget is None:
        budget = int(round(float((raw * params).sum())))
        densities = raw
    elif rescale:
        densities = scale_to_budget(params, raw, budget)
    else:
        densities = raw
    counts = round_counts(params, densities, budget)

    out: dict[str, float] = {}
    free_counts = dict(zip(table.names, counts.tolist(), strict=True))
    for layer in net.layers:
        if layer.name in dense_names or layer.name in empty:
            out[layer.name] = 1.0
        else:
            out[layer.name] = free_counts[layer.name] / layer.params
    return out


def quota_counts(net: Network, quotas: Mapping[str, float]) -> dict[str, int]:
    """Integer kept counts of a quota mapping, by the library's one rounding rule.

    The total is ``round(sum(density * params))`` and the counts are apportioned by
    :func:`round_counts`, so densities returned by :func:`quotas` give back exactly its
    counts. Layers without a key are dense.

    Parameters
    ----------
    net : Network
        The network.
    quotas : mapping of str to float
        Layer densities in [0, 1].

    Returns
    -------
    dict of str to int
        Kept count per layer, every layer of ``net`` in order.

    Raises
    ------
    QuotaError
        For an unknown layer name or a density outside [0, 1] or NaN.

    Examples
    --------
    >>> from sparsegraph.pytorch.models import build_model
    >>> from sparsegraph.masks.quotas import quota_counts, quotas
    >>> from sparsegraph.graph.trace import trace
    >>> net = trace(*build_model("lenet300"))
    >>> quota_counts(net, quotas(net, "uniform", density=0.01))
    {'fc1.weight': 2352, 'fc2.weight': 300, 'fc3.weight': 10}
    """
    if not isinstance(quotas, Mapping):
        raise QuotaError(f"quotas: expected a mapping of layer name to density, got "
                         f"{type(quotas).__name__}")
    unknown = [k for k in quotas if k not in net._index]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), net.names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise QuotaError(f"quotas: unknown layer {unknown[0]!r}{hint}")
    table = LayerTable.from_network(net)
    filled = {name: quotas.get(name, 1.0) for name in table.names}
    d = _given_densities(table, filled, "quotas")
    params = table.params
    total = int(round(float((d * params).sum())))
    counts = round_counts(params, d, total)
    return dict(zip(table.names, counts.tolist(), strict=True))
