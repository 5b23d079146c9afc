"""Path metrics of a masked network: input->output path counts and the channel-level min cut.

**Path counts.** In the linearised masked network (DESIGN §3: activations are identities,
biases and normalisation dropped, every kept weight set to 1) the number of directed paths from
any input element (unit, pixel) to any output element is the *unit-weight synaptic flow* of
SynFlow (Tanaka et al. 2020): the sum of the outputs for an all-ones input. A pooling node is
counted as the **sum** over its window (a path may run through any element of the window, and
each is a different path), which is average pooling times the window size; residual ``add``
nodes add the counts of their inputs; ``cat`` and ``reshape`` relabel elements.

The paths through a layer are the paths that use one of its kept weights, i.e.
``sum over the layer's output elements e of fwd(e) * bwd(e)`` where ``fwd(e)`` counts the paths
from the inputs to ``e`` and ``bwd(e)`` the paths from ``e`` to the outputs (a path in the DAG
reaches a layer's output tensor only through that layer's weights, and at most once). Its
``share`` is that number over all input->output paths (parallel branches each have their own
share; the shares of a chain of layers are all 1 when nothing is bypassed).

Implementation: one forward and one backward pass with ``torch.nn.functional.conv2d`` (and its
input gradient) in float64, with the 0/1 mask as the weight, over the ``(C, H, W)`` tensors of
:attr:`Network.nodes`. Every tensor is carried as ``(values / scale, log10 scale)`` with its
maximum rescaled to 1 after each op, so counts far beyond ``1e308`` (deep nets) neither
overflow nor underflow; the sums are of non-negative numbers, so the result is exact to float64
rounding (relative error ~1e-15 times the depth). Element counts below ``1e-308`` times the
largest count in the same tensor round to zero; they change no reported digit.

**Min cut.** On the whole network's channel-level graph (:func:`sparsegraph.graph.export.to_igraph`
with ``layer=None``): one vertex per channel/neuron of every tensor, an edge of capacity 1 for
every (input channel, output channel) pair of a prunable layer with at least one kept tap,
wiring edges (pool, add, cat, reshape) of unbounded capacity, a super-source joined to every
input channel and every output unit joined to a super-sink (unbounded). ``min_cut`` is the
maximum flow, i.e. the fewest prunable channel edges whose removal disconnects every input from
every output (0 for a collapsed network; ``inf`` when some input reaches an output without a
prunable layer). It ignores the spatial structure: a channel edge counts as present if any tap
is kept, so it is an upper-bound view of connectivity (DESIGN §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._args import check_masks
from ..errors import MaskError
from ..graph.network import Network

__all__ = ["PathMetrics", "path_metrics", "path_counts"]


@dataclass(frozen=True)
class PathMetrics:
    """Result of :func:`path_metrics`.

    Attributes
    ----------
    log10_paths : float
        log10 of the number of input->output paths; ``-inf`` when there is none.
    collapsed : bool
        No input->output path at all (layer collapse).
    layer_log10_paths : dict of str to float
        log10 of the paths through each layer (``-inf`` for none).
    layer_share : dict of str to float
        Paths through each layer / all paths (0.0 when the network is collapsed).
    min_cut : float
        Channel-level min cut between inputs and outputs (an integer value; ``inf`` when
        unbounded); None when not computed.
    channel_edges : int
        Number of prunable channel edges (channel pairs with at least one kept tap).
    """

    log10_paths: float
    collapsed: bool
    layer_log10_paths: dict[str, float] = field(default_factory=dict)
    layer_share: dict[str, float] = field(default_factory=dict)
    min_cut: float | None = None
    channel_edges: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``-inf`` becomes ``null`` and an unbounded cut ``"inf"``."""

        def fin(x: float) -> float | None:
            return None if math.isinf(x) else float(x)

        cut: Any = self.min_cut
        if cut is not None:
            cut = "inf" if math.isinf(cut) else int(cut)
        return {
            "log10_paths": fin(self.log10_paths),
            "collapsed": self.collapsed,
            "min_cut": cut,
            "channel_edges": self.channel_edges,
            "layers": [
                {"name": k, "log10_paths": fin(self.layer_log10_paths[k]),
                 "share": float(self.layer_share[k])}
                for k in self.layer_log10_paths
            ],
        }


class _Scaled:
    """A non-negative tensor as ``value * 10**log`` with ``value.max() == 1`` (or all zero)."""

    __slots__ = ("t", "log")

    def __init__(self, t: Any, log: float = 0.0) -> None:
        m = float(t.max()) if t.numel() else 0.0
        if m > 0.0:
            self.t, self.log = t / m, log + math.log10(m)
        else:
            self.t, self.log = t, -math.inf

    @staticmethod
    def combine(parts: list[_Scaled]) -> _Scaled:
        live = [p for p in parts if p.log != -math.inf]
        if not live:
            return parts[0]
        top = max(p.log for p in live)
        total = live[0].t * 10.0 ** (live[0].log - top)
        for p in live[1:]:
            total = total + p.t * 10.0 ** (p.log - top)
        return _Scaled(total, top)


def _window_matrix(win: tuple[np.ndarray, np.ndarray], n_in: int, torch: Any) -> Any:
    indptr, idx = (np.asarray(a, dtype=np.int64) for a in win)
    mat = np.zeros((indptr.size - 1, n_in))
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    np.add.at(mat, (rows, idx), 1.0)
    return torch.from_numpy(mat)


def _layer_weight(net: Network, li: int, mask: np.ndarray, torch: Any) -> Any:
    layer = net.layers[li]
    w = torch.from_numpy(mask.astype(np.float64))
    if layer.kind == "linear":
        return w.reshape(layer.out_channels, layer.in_channels, 1, 1)
    return w


def _conv_args(layer: Any) -> dict[str, Any]:
    return dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                groups=layer.groups)


def path_counts(net: Network, masks: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """Forward and backward path counts of every node tensor (``_Scaled`` values).

    ``fwd[i]`` counts the paths from the inputs to each element of node ``i``, ``bwd[i]`` the
    paths from each element to the outputs. Internal helper of :func:`path_metrics`.
    """
    import torch
    import torch.nn.functional as F
    from torch.nn.grad import conv2d_input

    checked = check_masks(net, masks)
    nodes = net.nodes
    weights = {}
    for node in nodes:
        if node.op == "layer":
            layer = net.layers[node.layer]
            src = nodes[node.inputs[0]]
            if layer.kind == "linear":
                ok = src.numel == layer.in_channels and node.numel == layer.out_channels
            else:
                ok = src.shape[0] == layer.in_channels and node.shape[0] == layer.out_channels
            if not ok:
                raise MaskError(
                    f"layer {layer.name!r}: node shapes {src.shape} -> {node.shape} do not match "
                    f"the weight {list(layer.shape)}"
                )
            weights[node.id] = _layer_weight(net, node.layer, checked[layer.name], torch)
    pools: dict[int, tuple[Any, Any]] = {}
    for node in nodes:
        if node.op == "pool":
            src = nodes[node.inputs[0]]
            pools[node.id] = (_window_matrix(node.window_h, src.shape[1], torch),
                              _window_matrix(node.window_w, src.shape[2], torch))

    with torch.no_grad():
        fwd: list[Any] = [None] * len(nodes)
        for node in nodes:
            if node.op == "input":
                fwd[node.id] = _Scaled(torch.ones(node.shape, dtype=torch.float64))
            elif node.op == "layer":
                layer = net.layers[node.layer]
                x = fwd[node.inputs[0]]
                xin = x.t.reshape(-1, 1, 1) if layer.kind == "linear" else x.t
                y = F.conv2d(xin[None], weights[node.id], **_conv_args(layer))[0]
                fwd[node.id] = _Scaled(y.reshape(node.shape), x.log)
            elif node.op == "pool":
                x = fwd[node.inputs[0]]
                ph, pw = pools[node.id]
                fwd[node.id] = _Scaled(ph @ x.t @ pw.T, x.log)
            elif node.op == "add":
                fwd[node.id] = _Scaled.combine([fwd[i] for i in node.inputs])
            elif node.op == "cat":
                parts = [fwd[i] for i in node.inputs]
                live = [p.log for p in parts if p.log != -math.inf]
                top = max(live) if live else 0.0
                ts = [p.t * (10.0 ** (p.log - top) if p.log != -math.inf else 0.0)
                      for p in parts]
                fwd[node.id] = _Scaled(torch.cat(ts, dim=0), top)
            elif node.op == "reshape":
                x = fwd[node.inputs[0]]
                fwd[node.id] = _Scaled(x.t.reshape(node.shape), x.log)
            else:  # pragma: no cover
                raise MaskError(f"node {node.id}: unknown op {node.op!r}")

        # backward: contributions from consumers, combined when the node is reached
        pending: list[list[_Scaled]] = [[] for _ in nodes]
        for o in set(net.outputs):
            pending[o].append(_Scaled(torch.ones(nodes[o].shape, dtype=torch.float64)))
        bwd: list[Any] = [None] * len(nodes)
        for node in reversed(nodes):
            parts = pending[node.id]
            g = (_Scaled.combine(parts) if parts
                 else _Scaled(torch.zeros(node.shape, dtype=torch.float64)))
            bwd[node.id] = g
            if node.op == "input" or g.log == -math.inf:
                continue
            if node.op == "layer":
                layer = net.layers[node.layer]
                src = nodes[node.inputs[0]]
                gout = g.t.reshape(-1, 1, 1) if layer.kind == "linear" else g.t
                in_shape = (1, layer.in_channels, *src.shape[1:]) if layer.kind == "conv" else (
                    1, layer.in_channels, 1, 1)
                gi = conv2d_input(in_shape, weights[node.id], gout[None], **_conv_args(layer))
                pending[src.id].append(_Scaled(gi[0].reshape(src.shape), g.log))
            elif node.op == "pool":
                ph, pw = pools[node.id]
                pending[node.inputs[0]].append(_Scaled(ph.T @ g.t @ pw, g.log))
            elif node.op == "add":
                for i in node.inputs:
                    pending[i].append(g)
            elif node.op == "cat":
                start = 0
                for i in node.inputs:
                    c = nodes[i].shape[0]
                    pending[i].append(_Scaled(g.t[start : start + c], g.log))
                    start += c
            elif node.op == "reshape":
                src = nodes[node.inputs[0]]
                pending[src.id].append(_Scaled(g.t.reshape(src.shape), g.log))
    return fwd, bwd


def _log10_dot(a: _Scaled, b: _Scaled) -> float:
    if a.log == -math.inf or b.log == -math.inf:
        return -math.inf
    s = float((a.t * b.t).sum())
    return a.log + b.log + math.log10(s) if s > 0 else -math.inf


def _min_cut(net: Network, masks: Mapping[str, Any]) -> tuple[float, int]:
    import igraph as ig

    from ..graph.export import network_graph

    g, _ = network_graph(net, masks)
    is_layer = g.edge_layer != ""
    n_layer_edges = int(is_layer.sum())
    big = float(n_layer_edges + 1)
    cap = np.where(is_layer, 1.0, big)
    kinds = g.nodes["kind"]
    source, sink = g.n, g.n + 1
    ins = np.flatnonzero(kinds == "input")
    out_nodes = set(net.outputs)
    outs = np.flatnonzero(np.isin(g.nodes["node"], list(out_nodes)))
    src = np.concatenate([g.src, np.full(ins.size, source), outs])
    dst = np.concatenate([g.dst, ins, np.full(outs.size, sink)])
    cap = np.concatenate([cap, np.full(ins.size + outs.size, big)])
    graph = ig.Graph(n=g.n + 2, edges=np.column_stack([src, dst]).tolist(), directed=True)
    value = graph.maxflow_value(source, sink, capacity=cap.tolist())
    return (math.inf if value >= big else float(round(value))), n_layer_edges


def path_metrics(
    net: Network, masks: Mapping[str, Any], *, min_cut: bool = True
) -> PathMetrics:
    """Input->output path counts (log10), each layer's share of them, and the min cut.

    Parameters
    ----------
    net : Network
        The traced network.
    masks : mapping of str to array-like of bool
        Masks keyed by layer name; layers without a key are dense.
    min_cut : bool, default True
        Also compute the channel-level min cut (igraph max-flow).

    Returns
    -------
    PathMetrics

    Raises
    ------
    MaskError
        If a mask does not fit its layer.

    Notes
    -----
    One float64 forward and one backward convolution pass (the cost of a SynFlow score in
    float64 for a batch of one); the min cut is a max-flow on the channel graph. See the module
    docstring for what is counted.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("a.weight", "a", "linear", (3, 2), 2, 3),
    ...             Layer("b.weight", "b", "linear", (1, 3), 3, 1)),
    ...     nodes=(Node(0, "input", (), (2, 1, 1)), Node(1, "layer", (0,), (3, 1, 1), layer=0),
    ...            Node(2, "layer", (1,), (1, 1, 1), layer=1)),
    ...     outputs=(2,),
    ... )
    >>> pm = path_metrics(net, {"a.weight": np.ones((3, 2)), "b.weight": [[1, 1, 0]]})
    >>> round(10 ** pm.log10_paths), pm.min_cut, pm.layer_share["a.weight"]
    (4, 2.0, 1.0)
    """
    fwd, bwd = path_counts(net, masks)
    logs_in = [_log10_sum(bwd[n.id]) for n in net.nodes if n.op == "input"]
    total = _logsumexp10(logs_in)
    layer_logs: dict[str, float] = {}
    shares: dict[str, float] = {}
    for node in net.nodes:
        if node.op != "layer":
            continue
        name = net.layers[node.layer].name
        lg = _log10_dot(fwd[node.id], bwd[node.id])
        layer_logs[name] = lg
        shares[name] = 0.0 if total == -math.inf or lg == -math.inf else 10.0 ** (lg - total)
    for name in net.names:  # layers without a node (should not happen) get no paths
        layer_logs.setdefault(name, -math.inf)
        shares.setdefault(name, 0.0)
    layer_logs = {name: layer_logs[name] for name in net.names}
    shares = {name: shares[name] for name in net.names}
    cut, n_edges = _min_cut(net, masks) if min_cut else (None, 0)
    return PathMetrics(
        log10_paths=total,
        collapsed=total == -math.inf,
        layer_log10_paths=layer_logs,
        layer_share=shares,
        min_cut=cut,
        channel_edges=n_edges,
    )


def _log10_sum(x: _Scaled) -> float:
    if x.log == -math.inf:
        return -math.inf
    s = float(x.t.sum())
    return x.log + math.log10(s) if s > 0 else -math.inf


def _logsumexp10(logs: list[float]) -> float:
    live = [v for v in logs if v != -math.inf]
    if not live:
        return -math.inf
    top = max(live)
    return top + math.log10(sum(10.0 ** (v - top) for v in live))
