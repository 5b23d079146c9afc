"""The one registry of the ways to make a mask: layerwise quota schemes and pruners.

Each way is one :class:`Scheme` record: its name, whether it is a ``"quota"`` (a pure function
from the layer table to per-layer densities; random masks then draw that many weights per
layer) or a ``"pruner"`` (a score over the model's weights that keeps the highest ones), the
function that implements it, what it needs, whether it supports an effective-density target,
its reference and a one-line description. :func:`sparsegraph.quotas`, :func:`sparsegraph.prune`,
:func:`sparsegraph.compare`, the command line's ``--scheme`` choices and ``--help``, and the
README's tables all read these records; nothing else lists a scheme or a capability.

This module imports only the standard library: the functions are named by dotted path and
imported on first use, so the command line can describe every scheme (and ``sparsegraph
--help`` stays fast) without loading numpy, numba or torch.

What a scheme can need (:data:`NEEDS`):

==============  ===================================================================================
``mask``        a mask whose layer densities it copies (``masks=``); not a scheme to sweep
``weights``     the model's weights: an ``nn.Module``, not only a traced Network
``data``        batches of labelled data (``data=`` in Python, ``--data`` on the command line)
``gradients``   autograd through the model (a backward pass per batch or round)
``iterations``  several pruning rounds (``rounds=``, ``--rounds``)
==============  ===================================================================================

Examples
--------
>>> from sparsegraph.registry import SCHEMES, get
>>> [s.name for s in SCHEMES.values() if s.kind == "pruner" and "data" not in s.needs]
['random', 'magnitude', 'synflow', 'lamp']
>>> get("snip").needs == frozenset({"weights", "data", "gradients"})
True
>>> get("erk").function.__name__
'scheme_erk'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import MaskError, QuotaError, SparseGraphError

__all__ = [
    "GRANULARITIES",
    "KINDS",
    "NEEDS",
    "SCHEMES",
    "Scheme",
    "STRUCTURES",
    "SchemeView",
    "get",
    "markdown_table",
    "names",
]

#: What a scheme can need, and how a user provides it.
NEEDS: dict[str, str] = {
    "mask": "a mask to copy layer densities from (masks=)",
    "weights": "the model's weights (an nn.Module, not a traced Network)",
    "data": "labelled batches (data=(x, y) in Python, --data on the command line)",
    "gradients": "autograd through the model",
    "iterations": "several pruning rounds (rounds=, --rounds)",
}

#: What a random mask draws (``sparsegraph.random_masks(granularity=...)``): single weights, whole
#: kernels or whole output filters.
GRANULARITIES = ("weight", "kernel", "channel")
#: How a random mask's layer graphs are drawn: uniformly, or as biregular graphs.
STRUCTURES = ("random", "regular")
#: Mask file formats :func:`sparsegraph.save_masks` writes and the CLI offers (``--format``).
MASK_FORMATS = ("safetensors", "npz", "torch", "torch_prune", "open_lth", "ao_sparsifier")

#: The two kinds of scheme.
KINDS: dict[str, str] = {
    "quota": "layerwise quota: uniformly random masks with these per-layer densities",
    "pruner": "pruning score: the highest-scoring weights are kept",
}


@dataclass(frozen=True)
class Scheme:
    """One way to make a mask.

    Attributes
    ----------
    name : str
        The name users type (``"erk"``, ``"synflow"``).
    kind : {"quota", "pruner"}
        A layerwise quota scheme or a pruning score (:data:`KINDS`).
    target : str
        ``"module:function"`` of the implementation, imported on first use (:attr:`function`).
        Quota schemes: ``f(table, budget, **options) -> densities`` (see
        :mod:`sparsegraph.masks.quotas`). One-shot pruners: ``f(model, net, weights, **kw) ->
        scores`` (one float64 array per layer). Pruners that need ``iterations``: ``f(model,
        net, counts, active, rounds) -> masks``.
    summary : str
        One line: the per-layer density or the score.
    reference : str
        Where it comes from (author year).
    needs : frozenset of str
        Keys of :data:`NEEDS`.
    effective_target : bool
        Whether :func:`sparsegraph.random_masks` (``effective=True``) can aim at a target
        *effective* density with it.
    options : tuple of str
        Extra keyword options of the function beyond the common ones (``erk_power_scale``).

    A record is callable: ``record(*args)`` calls :attr:`function`.
    """

    name: str
    kind: str
    target: str
    summary: str
    reference: str
    needs: frozenset[str] = field(default_factory=frozenset)
    effective_target: bool = False
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:  # pragma: no cover - a registry typo
            raise ValueError(f"scheme {self.name!r}: unknown kind {self.kind!r}")
        unknown = set(self.needs) - set(NEEDS)
        if unknown:  # pragma: no cover - a registry typo
            raise ValueError(f"scheme {self.name!r}: unknown needs {sorted(unknown)}")

    @property
    def function(self) -> Callable[..., Any]:
        """The implementation (imported on first use)."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def sweepable(self) -> bool:
        """Whether :func:`sparsegraph.compare` can sweep it over densities (a scheme that copies
        a given mask cannot)."""
        return "mask" not in self.needs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def describe(self) -> str:
        """``"name: summary (needs data, gradients)"`` for help texts."""
        needs = [n for n in NEEDS if n in self.needs and n != "weights"]
        extra = f" [needs {', '.join(needs)}]" if needs else ""
        return f"{self.name}: {self.summary}{extra}"


_Q = "sparsegraph.masks.quotas:"
_P = "sparsegraph.pytorch.pruners:"

_RECORDS = (
    Scheme("uniform", "quota", _Q + "scheme_uniform", "the same density D in every layer",
           "Zhu & Gupta 2017", effective_target=True),
    Scheme("uniform+", "quota", _Q + "scheme_uniform_plus",
           "first layer dense, last layer at least 20 %, the rest uniform",
           "Gale et al. 2019", effective_target=True),
    Scheme("er", "quota", _Q + "scheme_er",
           "density ∝ (c_in + c_out)/(c_in·c_out); layers above 1 made dense, rest re-solved",
           "Mocanu et al. 2018", effective_target=True),
    Scheme("erk", "quota", _Q + "scheme_erk",
           "density ∝ (Σ dims / Π dims)^p with the kernel dims; RigL's rule above 1",
           "Evci et al. 2020", effective_target=True, options=("erk_power_scale",)),
    Scheme("er_graph", "quota", _Q + "scheme_er_graph",
           "Erdős–Rényi on the unrolled bipartite graph c_in·kh·kw → c_out",
           "Erdős & Rényi 1959", effective_target=True),
    Scheme("igq", "quota", _Q + "scheme_igq",
           "ideal-gas quotas 1/(1 + F·n_ℓ) with one shared force F",
           "Vysogorets & Kempe 2023", effective_target=True),
    Scheme("from_mask", "quota", _Q + "scheme_from_mask",
           "a given mask's own layer densities (the layerwise-shuffle check)",
           "Frankle et al. 2021", needs=frozenset({"mask"})),
    Scheme("random", "pruner", _P + "_score_random",
           "i.i.d. uniform scores from the seed (random pruning, one global ranking)",
           "Liu et al. 2022"),
    Scheme("magnitude", "pruner", _P + "_score_magnitude", "|w| at initialisation",
           "Han et al. 2015", needs=frozenset({"weights"})),
    Scheme("snip", "pruner", _P + "_score_snip",
           "connection sensitivity |g·w| of the cross-entropy loss on the data",
           "Lee et al. 2019", needs=frozenset({"weights", "data", "gradients"})),
    Scheme("grasp", "pruner", _P + "_score_grasp",
           "gradient signal preservation w·(Hg) at temperature 200",
           "Wang et al. 2020", needs=frozenset({"weights", "data", "gradients"})),
    Scheme("synflow", "pruner", _P + "_synflow",
           "iterative synaptic flow |w|·dR/d|w|, data-free, exponential schedule",
           "Tanaka et al. 2020", needs=frozenset({"weights", "gradients", "iterations"})),
    Scheme("lamp", "pruner", _P + "_score_lamp",
           "layer-adaptive magnitude w_u² / Σ_{v≥u} w_v²", "Lee et al. 2021",
           needs=frozenset({"weights"})),
)

#: Every scheme by name, quota schemes first, in the order help texts list them.
SCHEMES: dict[str, Scheme] = {s.name: s for s in _RECORDS}


class SchemeView(Mapping[str, Scheme]):
    """A read-only mapping of name to :class:`Scheme` over one kind (what
    ``sparsegraph.QUOTA_SCHEMES`` and ``sparsegraph.PRUNERS`` are)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __getitem__(self, name: str) -> Scheme:
        record = SCHEMES.get(name)
        if record is None or record.kind != self.kind:
            raise KeyError(name)
        return record

    def __iter__(self) -> Iterator[str]:
        return (n for n, s in SCHEMES.items() if s.kind == self.kind)

    def __len__(self) -> int:
        return sum(1 for s in SCHEMES.values() if s.kind == self.kind)

    def __repr__(self) -> str:
        return f"SchemeView({self.kind!r}: {', '.join(self)})"


def names(kind: str | None = None, *, sweepable: bool | None = None,
          without: str | None = None) -> list[str]:
    """Scheme names in registry order, optionally of one kind, sweepable or not, or lacking
    one need (``without="data"`` gives the data-free ones).

    Examples
    --------
    >>> names("quota", sweepable=True)
    ['uniform', 'uniform+', 'er', 'erk', 'er_graph', 'igq']
    """
    return [
        s.name for s in SCHEMES.values()
        if (kind is None or s.kind == kind)
        and (sweepable is None or s.sweepable == sweepable)
        and (without is None or without not in s.needs)
    ]


_ERRORS: dict[str, type[SparseGraphError]] = {"quota": QuotaError, "pruner": MaskError}


def get(name: Any, kind: str | None = None, *, what: str = "scheme",
        error: type[SparseGraphError] | None = None) -> Scheme:
    """The record called ``name`` (of ``kind`` when given).

    Raises
    ------
    QuotaError or MaskError
        For a name that is not registered (of that kind), naming the known ones and the closest
        match; a pruner asked for as a quota scheme (or the reverse) says which it is. The type
        is ``error``, by default :class:`QuotaError` for quota schemes and any kind and
        :class:`MaskError` for pruners.

    Examples
    --------
    >>> get("igq").kind
    'quota'
    >>> get("ekr")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.QuotaError: unknown scheme 'ekr'; did you mean ...'erk'? Known schemes: ...
    """
    err = error or _ERRORS.get(kind or "quota", QuotaError)
    record = SCHEMES.get(name) if isinstance(name, str) else None
    if record is not None and (kind is None or record.kind == kind):
        return record
    known = names(kind)
    if record is not None:
        raise err(
            f"{what}: {name!r} is a {record.kind} ({KINDS[record.kind].split(':')[0]}), not a "
            f"{kind}; {kind} names: {', '.join(known)}"
        )
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    label = {"quota": "quota scheme", "pruner": "pruner"}.get(kind or "", "scheme")
    if kind is None:
        listing = "; ".join(f"{k}: {', '.join(names(k))}" for k in KINDS)
    else:
        listing = ", ".join(known)
    prefix = "" if what == "scheme" else f"{what}: "
    raise err(f"{prefix}unknown {label} {name!r}{hint} Known schemes: {listing}")


def markdown_table(kind: str) -> str:
    """The README table of one kind: name, what it does, needs, effective target, reference.

    Examples
    --------
    >>> print(markdown_table("quota").splitlines()[0])
    | scheme | per-layer density | needs | effective target | reference |
    """
    head = "per-layer density" if kind == "quota" else "score"
    lines = [f"| scheme | {head} | needs | effective target | reference |",
             "|---|---|---|---|---|"]
    for s in SCHEMES.values():
        if s.kind != kind:
            continue
        needs = ", ".join(n for n in NEEDS if n in s.needs) or "–"
        lines.append(f"| `{s.name}` | {s.summary} | {needs} | "
                     f"{'yes' if s.effective_target else 'no'} | {s.reference} |")
    return "\n".join(lines)
