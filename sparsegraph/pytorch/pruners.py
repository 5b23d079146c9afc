"""Pruning at initialization: masks from the classic saliency scores.

``prune(model, scheme, density=D, example_input=x)`` scores every prunable weight (the
``nn.Linear`` / ``nn.Conv2d`` weights of :func:`sparsegraph.trace`, keyed by parameter name)
and keeps exactly ``round(D * N)`` of them: globally by default, or per layer when ``quotas``
names a scheme of :func:`sparsegraph.quotas` or gives a mapping of layer densities.

Each pruner is one record of :mod:`sparsegraph.registry` (name, scoring function, what it needs,
reference), viewed here as :data:`PRUNERS`. Scores (a higher score is kept; ``w`` the weight,
``g = dL/dw`` over the data):

========== =====================================================================================
random     i.i.d. uniform draws from ``seed`` (one ``SeedSequence`` child stream per layer)
magnitude  ``|w|``
snip       ``|g * w|`` (Lee et al. 2019, connection sensitivity)
grasp      ``w * (H g)`` with ``g`` and the Hessian-gradient product of the loss of logits / 200
           (Wang et al. 2020 remove the highest ``-w * (H g)``; the temperature 200 is theirs)
synflow    ``|w| * dR/d|w|`` with ``R = 1^T (prod |W_l|) 1`` the synaptic flow of the linearised
           network on an all-ones input, iterated ``rounds`` times on the exponential schedule
           (Tanaka et al. 2020): round ``k`` keeps ``density ** (k / rounds)``
lamp       ``w_u^2 / sum_{v >= u} w_v^2`` within a layer, its weights sorted by magnitude
           (Lee et al. 2021, layer-adaptive magnitude-based pruning)
========== =====================================================================================

Selection keeps the highest scores with ties broken by position (layer order, then the flat
index within the layer; a stable sort of ``-score``), never by a threshold, so the count is
exact. A layer left with no weight at all is reported with a :class:`LayerCollapseWarning` and
in :attr:`PruneMasks.collapsed_layers`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._args import (
    check_count,
    check_density,
    check_seed,
    select_layers,
)
from ..errors import ArgumentError, LayerCollapseWarning, MaskError, QuotaError, TraceError
from ..graph.network import Network
from ..registry import Scheme, SchemeView, names
from ..registry import get as get_scheme
from ._scoring import _top_global, _top_k, _top_layer, _weights  # noqa: F401 (_top_k: re-export)
from .synflow import _synflow, synflow_scores  # noqa: F401 (the registry's synflow record)

__all__ = ["PRUNERS", "LayerCollapseWarning", "PruneMasks", "prune", "synflow_scores"]

GRASP_TEMPERATURE = 200.0


class PruneMasks(dict):
    """The masks :func:`prune` returns: a ``dict`` of parameter name to bool array, with

    Attributes
    ----------
    scheme : str
        The pruner (also readable as ``method``, its former name).
    density : float
        The requested overall density.
    collapsed_layers : list of str
        Layers with no kept weight (also reported by a :class:`LayerCollapseWarning`).
    """

    scheme: str = ""
    density: float = 0.0
    collapsed_layers: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collapsed_layers = []

    @property
    def method(self) -> str:
        """The pruner's name (the former name of :attr:`scheme`)."""
        return self.scheme


# ------------------------------------------------------------------------------------ scores


def _batches(data: Any, method: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if data is None:
        raise MaskError(
            f"{method} needs data: pass {{data}}; the data-free pruners are "
            f"{', '.join(names('pruner', without='data'))}",
            data="data=(x, y) or an iterable of (x, y) batches (e.g. a DataLoader)",
        )
    if (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, torch.Tensor) for t in data)):
        data = [tuple(data)]
    batches = []
    for i, item in enumerate(data):
        if not (isinstance(item, (tuple, list)) and len(item) >= 2
                and isinstance(item[0], torch.Tensor) and isinstance(item[1], torch.Tensor)):
            raise MaskError(f"data batch {i}: expected an (x, y) pair of tensors, got "
                            f"{type(item).__name__}")
        batches.append((item[0], item[1]))
    if not batches:
        raise MaskError(f"{method}: data holds no batch")
    return batches


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _first_tensor(out: Any) -> torch.Tensor | None:
    """The logits in a model's output: the output itself when it is a tensor; for a mapping
    (a dict, HF's ``ModelOutput``) its ``"logits"`` entry, else its first tensor value; for a
    tuple or list its first tensor element (searched depth first)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"]
        items: Iterable[Any] = out.values()
    elif isinstance(out, (tuple, list)):
        items = out
    else:
        return None
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _batch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dev: torch.device,
                temperature: float, where: str) -> torch.Tensor:
    """Cross entropy of the model's logits (:func:`_first_tensor`) / ``temperature`` and ``y``;
    a model or loss that fails is one :class:`TraceError` naming the batch."""
    try:
        out = model(x.to(dev))
    except Exception as exc:  # noqa: BLE001 - a user's model can raise anything
        raise TraceError(f"{where}: the model failed on the batch: {type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                         ) from None
    logits = _first_tensor(out)
    if logits is None:
        raise TraceError(f"{where}: the model returned {type(out).__name__} holding no tensor; "
                         "snip and grasp need logits (a tensor, or a tuple/dict holding one)")
    try:
        return F.cross_entropy(logits / temperature, y.to(dev))
    except Exception as exc:  # noqa: BLE001 - shape / dtype mismatch of logits and labels
        raise MaskError(
            f"{where}: cross entropy of logits {list(logits.shape)} and labels "
            f"{list(y.shape)} ({y.dtype}) failed: {str(exc).strip().splitlines()[0]}"
        ) from None


def _loss_grads(model: nn.Module, weights: list[torch.Tensor], batches: list,
                temperature: float = 1.0, create_graph: bool = False,
                ) -> list[list[torch.Tensor]] | list[torch.Tensor]:
    dev = _device(model)
    total = [torch.zeros_like(w) for w in weights]
    for i, (x, y) in enumerate(batches):
        loss = _batch_loss(model, x, y, dev, temperature, f"data batch {i}")
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        for t, g in zip(total, grads, strict=True):
            if g is not None:
                t.add_(g)
    return total


def _score_snip(model: nn.Module, net: Network, weights: list[torch.Tensor], data: Any,
                **_: Any) -> list[np.ndarray]:
    grads = _loss_grads(model, weights, _batches(data, "snip"))
    return [(g * w.detach()).abs().double().cpu().numpy() for g, w in zip(grads, weights,
                                                                           strict=True)]


def _score_grasp(model: nn.Module, net: Network, weights: list[torch.Tensor], data: Any,
                 **_: Any) -> list[np.ndarray]:
    batches = _batches(data, "grasp")
    dev = _device(model)
    g_total = _loss_grads(model, weights, batches, GRASP_TEMPERATURE)
    hg = [torch.zeros_like(w) for w in weights]
    for i, (x, y) in enumerate(batches):
        with _twice_differentiable_attention():
            loss = _batch_loss(model, x, y, dev, GRASP_TEMPERATURE, f"data batch {i}")
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        z = sum((g * gt).sum() for g, gt in zip(grads, g_total, strict=True) if g is not None)
        if not isinstance(z, torch.Tensor) or not z.requires_grad:
            continue
        for acc, h in zip(hg, torch.autograd.grad(z, weights, allow_unused=True), strict=True):
            if h is not None:
                acc.add_(h)
    return [(w.detach() * h).double().cpu().numpy() for w, h in zip(weights, hg, strict=True)]


def _twice_differentiable_attention() -> Any:
    """Attention computed by the math kernel: the fused CPU kernels of
    ``scaled_dot_product_attention`` have no second derivative, which GraSP's Hessian-gradient
    product needs (torch >= 2.3; older torch always has a math fallback)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - torch < 2.3
        import contextlib

        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


def _score_magnitude(model: nn.Module, net: Network, weights: list[torch.Tensor],
                     **_: Any) -> list[np.ndarray]:
    return [w.detach().abs().double().cpu().numpy() for w in weights]


def _lamp(w: np.ndarray) -> np.ndarray:
    sq = np.square(np.abs(w.astype(np.float64))).ravel()
    order = np.argsort(sq, kind="stable")  # ascending magnitude, ties by position
    suffix = np.cumsum(sq[order][::-1])[::-1]  # sum over v >= u in that order
    out = np.zeros_like(sq)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[order] = np.where(suffix > 0, sq[order] / suffix, 0.0)
    return out.reshape(w.shape)


def _score_lamp(model: nn.Module, net: Network, weights: list[torch.Tensor],
                **_: Any) -> list[np.ndarray]:
    return [_lamp(w.detach().cpu().double().numpy()) for w in weights]


def _score_random(model: nn.Module, net: Network, weights: list[torch.Tensor], seed: int,
                  **_: Any) -> list[np.ndarray]:
    children = np.random.SeedSequence(seed).spawn(len(weights))
    return [np.random.default_rng(c).random(tuple(w.shape)) for c, w in zip(children, weights,
                                                                             strict=True)]


# -------------------------------------------------------------------------------- the entry


#: Name -> :class:`~sparsegraph.registry.Scheme` record of every pruner (a read-only view of
#: :data:`sparsegraph.registry.SCHEMES`; ``PRUNERS[name].needs`` says what it needs).
PRUNERS = SchemeView("pruner")


def _layer_counts(net: Network, density: float, quotas: Any, dense: list[str]
                  ) -> dict[str, int] | int:
    """Per-layer kept counts (quotas given) or the global count over the pruned layers."""
    from ..masks.quotas import budget_of, quota_counts
    from ..masks.quotas import quotas as make_quotas

    if quotas is None:
        dense_params = sum(net.layer(n).params for n in dense)
        k = budget_of(density, net.params) - dense_params
        if k < 0:
            raise QuotaError(
                f"density {density!r} keeps {budget_of(density, net.params)} weights, fewer than "
                f"the {dense_params} of the excluded (dense) layers {', '.join(dense)}"
            )
        return k
    if isinstance(quotas, str):
        q = make_quotas(net, quotas, density, dense=dense or None)
    elif isinstance(quotas, Mapping):
        q = make_quotas(net, dict(quotas), density, dense=dense or None)
    else:
        raise QuotaError(f"quotas: expected a scheme name or a mapping of layer densities, got "
                         f"{type(quotas).__name__}")
    return quota_counts(net, q)


def prune(
    model: nn.Module,
    scheme: str | None = None,
    *,
    density: float,
    example_input: torch.Tensor | tuple[torch.Tensor, ...],
    data: Any = None,
    quotas: str | Mapping[str, float] | None = None,
    seed: int = 0,
    rounds: int = 100,
    exclude: Iterable[str] | str | None = None,
    invert: bool = False,
    method: str | None = None,
) -> PruneMasks:
    """Masks from a pruning-at-initialization score.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its weights, buffers, ``requires_grad`` flags and train/eval modes are left
        as they were (scoring runs in eval mode, without touching ``.grad``). A traced
        :class:`~sparsegraph.graph.network.Network` is refused: it holds no weights to score.
    scheme : {"random", "magnitude", "snip", "grasp", "synflow", "lamp"}
        The pruner (see the module docstring and :data:`PRUNERS`; the same ``scheme`` word as
        :func:`sparsegraph.quotas` and :func:`sparsegraph.compare`).
    density : float
        Overall fraction of the prunable weights kept, in (0, 1]: exactly
        ``round(density * N)`` are kept (``N`` all prunable weights, excluded layers included).
    example_input : Tensor or tuple of Tensor
        For :func:`sparsegraph.trace`; fixes the spatial sizes.
    data : (x, y) pair or iterable of (x, y) batches, optional
        Required by ``snip`` and ``grasp``: the loss is the cross entropy of the logits of
        ``model(x)`` and the integer labels ``y``, summed over the batches. A model that returns
        a tuple or list gives its first tensor as the logits; one that returns a dict (or HF's
        ``ModelOutput``) its ``"logits"`` entry, else its first tensor value. The batches are
        read once (a generator is fine).
    quotas : str or mapping, optional
        None: one global ranking. A scheme name of :func:`sparsegraph.quotas` (``"erk"``,
        ``"igq"``, ...) or a mapping of layer densities: each layer keeps its own count.
    seed : int, default 0
        Seed of ``random`` (the other scores are deterministic given the weights and data).
    rounds : int, default 100
        SynFlow's pruning rounds; round ``k`` keeps ``density ** (k / rounds)`` of the weights
        (each layer's quota to that power with ``quotas``), scoring only those still kept.
    exclude : str or iterable of str, optional
        Layer names or globs kept dense (their weights count toward the budget).
    invert : bool, default False
        Score inversion, the sanity check of Frankle et al. 2021: keep the *lowest*-scoring
        weights instead of the highest, with the same exact counts (ties still broken by
        position). For SynFlow every round keeps its lowest scores.
    method : str, optional
        Deprecated spelling of ``scheme``.

    Returns
    -------
    PruneMasks
        A dict of parameter name to bool array for every layer of ``sparsegraph.trace(model,
        example_input)``, with ``.collapsed_layers``.

    Raises
    ------
    MaskError
        Unknown pruner, ``snip``/``grasp`` without ``data``, bad data (labels that do not fit
        the logits), unknown excluded layer.
    QuotaError
        Density outside (0, 1], or a budget smaller than the excluded layers.
    ArgumentError
        A seed or a number of rounds that is not a valid integer, a Network instead of a model,
        or both ``scheme`` and ``method``.
    TraceError
        If the model cannot be traced, or (``snip``/``grasp``) fails on a data batch or
        returns no tensor.

    Warns
    -----
    LayerCollapseWarning
        When a layer keeps no weight.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> masks = prune(model, "synflow", density=0.25, example_input=torch.zeros(1, 4), rounds=10)
    >>> sum(int(m.sum()) for m in masks.values()), round(0.25 * (32 + 24))
    (14, 14)
    """
    from ..graph.trace import trace

    if method is not None:
        if scheme is not None:
            raise ArgumentError("pass the pruner once: scheme= (method= is its old name)")
        warnings.warn("prune(method=...) is deprecated; pass the pruner as scheme=",
                      DeprecationWarning, stacklevel=2)
        scheme = method
    if isinstance(model, Network):
        raise ArgumentError(
            "model: a traced Network holds no weights to score; pass the nn.Module (and "
            "example_input) instead"
        )
    record = get_scheme(scheme, "pruner", error=MaskError)
    method = record.name
    d = check_density(density)
    rounds = check_count(rounds, "rounds")
    seed = check_seed(seed)
    if "data" in record.needs:
        data = _batches(data, method)  # validate before any work; read a generator once
    net = trace(model, example_input)
    dense = select_layers(net, exclude, what="excluded")
    counts = _layer_counts(net, d, quotas, dense)
    layer_names = net.names
    active = [n not in dense for n in layer_names]

    if "iterations" in record.needs:
        masks = record(model, net, counts, active, rounds, invert=bool(invert))
    else:
        scores = _scores_preserving(model, net, record, data=data, seed=seed)
        if invert:  # keep the lowest: the highest of the negated scores (NaN stays lowest)
            scores = [-s for s in scores]
        masks = _select(net, scores, counts, active)
    result = PruneMasks(zip(layer_names, masks, strict=True))
    result.scheme, result.density = method, d
    result.collapsed_layers = [n for n, a in zip(layer_names, active, strict=True)
                               if a and not result[n].any()]
    if result.collapsed_layers:
        shown = ", ".join(result.collapsed_layers[:5])
        if len(result.collapsed_layers) > 5:
            shown += f" and {len(result.collapsed_layers) - 5} more"
        warnings.warn(
            f"{method} at density {d:g} kept no weight of {shown} "
            "(layer collapse: unless a skip connection bypasses them, no input reaches the output)",
            LayerCollapseWarning,
            stacklevel=2,
        )
    return result


def _select(net: Network, scores: list[np.ndarray], counts: dict[str, int] | int,
            active: list[bool], eligible: list[np.ndarray] | None = None) -> list[np.ndarray]:
    if eligible is None:
        eligible = [np.ones(layer.shape, dtype=bool) for layer in net.layers]
    if isinstance(counts, int):
        idx = [i for i, a in enumerate(active) if a]
        chosen = _top_global([scores[i] for i in idx], [eligible[i] for i in idx], counts)
        out = [np.ones(layer.shape, dtype=bool) for layer in net.layers]
        for i, m in zip(idx, chosen, strict=True):
            out[i] = m
        return out
    return [_top_layer(s, e, counts[layer.name]) if a else np.ones(layer.shape, dtype=bool)
            for layer, s, e, a in zip(net.layers, scores, eligible, active, strict=True)]


def _scores_preserving(model: nn.Module, net: Network, record: Scheme, **kw: Any
                       ) -> list[np.ndarray]:
    """Run a scorer; one that takes gradients runs in eval mode with gradients on, and the
    model's state, modes and flags are put back exactly afterwards."""
    weights = _weights(model, net.names)
    if "gradients" not in record.needs:
        return record(model, net, weights, **kw)
    snapshot = {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()}
    modes = {m: m.training for m in model.modules()}
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        model.eval()
        for w in weights:
            w.requires_grad_(True)
        with torch.enable_grad():
            return record(model, net, weights, **kw)
    finally:
        with torch.no_grad():
            for k, v in model.state_dict(keep_vars=True).items():
                v.copy_(snapshot[k])
        for m, t in modes.items():
            m.train(t)
        for p, f in flags.items():
            p.requires_grad_(f)
