"""SynFlow (Tanaka et al. 2020): data-free scores of synaptic flow, pruned iteratively.

``R = 1^T (prod_l |W_l| * M_l) 1`` is the synaptic flow of the linearised network (DESIGN §3):
all-ones input, biases and normalisation left out, every pooling the sum over its window. A
weight's score is ``|w| * dR/d|w|``, computed in float64 by one forward and one backward walk
(:class:`sparsegraph.graph.walker.FlowWalk`) with every tensor rescaled to max 1.

Iterative SynFlow (``prune(model, "synflow", ...)``) scores and prunes ``rounds`` times on the
exponential schedule: round ``k`` keeps ``density ** (k / rounds)`` of the weights (each
layer's quota to that power with per-layer quotas), among those still kept. Each round costs
less than the last: the walk gets the kept positions, every layer computes its products over
its live block only (the output units and input channels that keep a weight), and the
gradients of the weights are taken at the kept positions only
(:mod:`sparsegraph.graph.kinds.layer_flow`). The numbers are those of the dense computation
(only the order of float64 sums differs), so the kept set is the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .._args import check_masks, check_network, suggest, to_numpy
from ..errors import MaskError
from ..graph.network import Network
from ..graph.walker import FlowWalk, Scaled, _common
from ._scoring import _weights
from ._select import compact, threshold

__all__ = ["synflow_scores"]


def synflow_scores(net: Network, weights: Mapping[str, Any],
                   masks: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """SynFlow scores ``|w| * dR/d|w|`` of the linearised network, in float64.

    Parameters
    ----------
    net : Network
        The traced network (:func:`sparsegraph.trace`).
    weights : mapping of str to array-like
        Every layer's weight (numpy or torch); absolute values are used.
    masks : mapping of str to array-like, optional
        Kept weights (0/1); layers without a key are dense.

    Returns
    -------
    dict of str to ndarray of float64
        Scores scaled by one common positive constant (which leaves every ranking unchanged):
        ``R`` is evaluated with per-tensor rescaling so it neither over- nor underflows.

    Raises
    ------
    MaskError
        For a missing, unknown or misshapen weight, a weight holding NaN or infinity, or a bad
        mask (values other than 0/1, NaN, wrong shape, unknown layer).

    Notes
    -----
    ``R = 1^T (prod_l |W_l| * M_l) 1`` on the network of DESIGN §3: all-ones input, biases and
    normalisation left out, every pooling the sum over its window (where Tanaka et al.'s code
    would route a max-pool's gradient to one arg-max), products, contractions and softmax read as
    path counts (:mod:`sparsegraph.metrics.paths`). A score is nonzero exactly when the weight is
    kept and lies on an input-to-output path. Every tensor is carried as ``h * exp(s)`` with
    ``max h = 1``, forward and backward (:class:`sparsegraph.graph.walker.FlowWalk`).
    Cost: one forward and one backward pass of the linearised model at batch size 1, in float64.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("a.weight", "a", "linear", (2, 2), 2, 2),
    ...             Layer("b.weight", "b", "linear", (1, 2), 2, 1)),
    ...     nodes=(Node(0, "input", (), (2,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"}),
    ...            Node(2, "layer", (1,), (1,), layer=1, params={"op": "linear"})),
    ...     outputs=(2,))
    >>> s = synflow_scores(net, {"a.weight": np.ones((2, 2)), "b.weight": [[1.0, 0.0]]})
    >>> (s["a.weight"] / s["b.weight"].max()).tolist()
    [[0.5, 0.5], [0.0, 0.0]]
    """
    net = check_network(net)
    kept = check_masks(net, {} if masks is None else masks)
    unknown = [k for k in weights if k not in net._index]
    if unknown:
        raise MaskError(f"synflow_scores: weight for unknown layer {unknown[0]!r}"
                        f"{suggest(str(unknown[0]), net.names)}")
    leaves = []
    for layer in net.layers:
        if layer.name not in weights:
            raise MaskError(f"synflow_scores: no weight for layer {layer.name!r}")
        w = np.asarray(to_numpy(weights[layer.name], f"weight {layer.name!r}"))
        if w.shape != layer.shape:
            raise MaskError(f"synflow_scores: weight {layer.name!r} has shape {list(w.shape)}, "
                            f"expected {list(layer.shape)}")
        if w.dtype.kind not in "biuf" or not np.isfinite(w).all():
            raise MaskError(f"synflow_scores: weight {layer.name!r} holds NaN, infinity or "
                            "non-numeric values")
        leaves.append(torch.from_numpy(np.abs(w.astype(np.float64)) * kept[layer.name]))
    grads = _flow(net, leaves)
    return {layer.name: (w * g).numpy() for layer, w, g in zip(net.layers, leaves, grads,
                                                                  strict=True)}


def _flow(net: Network, effective_weights: list[torch.Tensor],
          kept: list[np.ndarray] | None = None) -> list[torch.Tensor]:
    """``dR/dw`` for nonnegative float64 weights (already masked), one per layer, all scaled by
    one common positive constant: full tensors, or with ``kept`` flat tensors at those
    positions (see :class:`~sparsegraph.graph.walker.FlowWalk`)."""
    walk = FlowWalk(net, effective_weights, kept=kept).forward(grad=True)
    _, per_use = walk.backward(weights=True)
    layer_grads: list[Scaled | None] = []
    for uses in per_use:
        if not uses:
            layer_grads.append(None)
            continue
        hs, s = _common(uses)
        layer_grads.append(Scaled(sum(hs[1:], hs[0]), s) if len(hs) > 1 else Scaled(hs[0], s))
    live = [g.s for g in layer_grads if g is not None and g.s != -math.inf]
    top = max(live) if live else 0.0
    out = []
    for li, g in enumerate(layer_grads):
        if g is None or g.s == -math.inf:
            shape = net.layers[li].shape if kept is None else (kept[li].size,)
            out.append(torch.zeros(shape, dtype=torch.float64))
        else:
            out.append(g.h * math.exp(g.s - top))
    return out


def _synflow(model: nn.Module, net: Network, counts: dict[str, int] | int,
             active: list[bool], rounds: int, invert: bool = False) -> list[np.ndarray]:
    """Iterative SynFlow (the pruner record's function; see the module docstring). Beyond the
    walk, the work of a round is proportional to the weights still kept: the masked weights
    are zeroed in place where pruned, and only kept positions are scored."""
    eff = [w.detach().to("cpu", torch.float64, copy=True).abs_() for w in
           _weights(model, net.names)]
    flat_eff = [w.numpy().reshape(-1) for w in eff]  # views: zeroing them masks ``eff``
    kept_idx = [np.arange(layer.params, dtype=np.int64) for layer in net.layers]
    kept_w = [f.copy() for f in flat_eff]  # |w| at the kept positions, in their order
    act = [i for i, a in enumerate(active) if a]
    total = sum(net.layers[i].params for i in act)
    buf = np.empty(total, dtype=np.float64)  # the active layers' scores, in layer order
    for k in range(1, rounds + 1):
        frac = k / rounds
        grads = _flow(net, eff, kept_idx)
        start, spans = 0, {}
        for i in act:
            n = kept_idx[i].size
            spans[i] = buf[start:start + n]
            np.multiply(kept_w[i], grads[i].numpy(), out=spans[i])
            start += n
        if invert:  # score inversion: each round keeps its lowest scores
            np.negative(buf[:start], out=buf[:start])
        need = 0
        if isinstance(counts, int):
            target = counts if k == rounds or not total else int(round(
                total * (counts / total) ** frac))
            t, need = _threshold(buf[:start], max(counts, min(start, target)))
        for i in act:
            if not isinstance(counts, int):
                layer = net.layers[i]
                c = counts[layer.name]
                target = c if k == rounds else int(round(layer.params * (c / layer.params) ** frac))
                t, need = _threshold(spans[i], max(c, min(spans[i].size, target)))
            kept, need = compact(spans[i], kept_idx[i], kept_w[i], flat_eff[i], t, need)
            kept_idx[i] = kept_idx[i][:kept]
            kept_w[i] = kept_w[i][:kept]
    out = []
    for layer, idx in zip(net.layers, kept_idx, strict=True):
        m = np.zeros(layer.params, dtype=bool)
        m[idx] = True
        out.append(m.reshape(layer.shape))
    return out


def _threshold(scores: np.ndarray, k: int) -> tuple[float, int]:
    """:func:`~sparsegraph.pytorch._select.threshold` of ``scores``, with NaN replaced by
    ``-inf`` in place when there is any."""
    t, need, flat = threshold(scores, k)
    if flat is not scores:
        scores[:] = flat
    return t, need
