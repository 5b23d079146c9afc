"""Path metrics of a masked network: input->output path counts and the channel-level min cut.

**Path counts.** In the linearised masked network (DESIGN §3: activations are identities,
biases and normalisation dropped, every kept weight set to 1) the number of directed paths from
any input element to any output element is the *unit-weight synaptic flow* of SynFlow (Tanaka
et al. 2020): the sum of the outputs for an all-ones input. An index map (pooling, slicing,
upsampling) counts the **sum** over its window (a path may run through any element of the
window, and each is a different path); residual ``add`` nodes add the counts of their inputs;
``cat`` and ``reshape`` relabel elements. Through a product a path runs through one factor while
the other is nonzero, through a contraction the same over the contracted index, and through a
softmax fibre from any unmasked entry to any unmasked entry (DESIGN §3's rules, read as counts);
a gate passes its input's paths on.

The paths through a layer are the paths that use one of its kept weights, i.e.
``sum over the layer's output elements e of fwd(e) * bwd(e)`` where ``fwd(e)`` counts the paths
from the inputs to ``e`` and ``bwd(e)`` the paths from ``e`` to the outputs (a path reaches a
layer's output tensor only through that layer's weights, and at most once per use). Its
``share`` is that number over all input->output paths (parallel branches each have their own
share; the shares of a chain of layers are all 1 when nothing is bypassed). A layer used
several times (a tied embedding and LM head) counts the paths through each use.

Implementation: one forward and one backward walk (:class:`sparsegraph.graph.walker.FlowWalk`)
in float64 with the 0/1 mask as the weight. Every tensor is carried as ``(values / scale, log
scale)`` with its maximum rescaled to 1 after each node, backward included, so counts far beyond
``1e308`` (deep nets) neither overflow nor underflow; the sums are of non-negative numbers, so
the result is exact to float64 rounding (relative error ~1e-15 times the depth). Element counts
below ``1e-308`` times the largest count in the same tensor round to zero; they change no
reported digit.

**Min cut.** On the whole network's channel-level graph (:func:`sparsegraph.to_igraph` with
``layer=None``): one vertex per unit of every tensor, an edge of capacity 1 for every (input
unit, output unit) pair of a prunable layer with at least one kept weight, wiring edges of
unbounded capacity, a super-source joined to every input unit and every output unit joined to a
super-sink (unbounded). ``min_cut`` is the maximum flow, i.e. the fewest prunable channel edges
whose removal disconnects every input from every output (0 for a collapsed network; ``inf`` when
some input reaches an output without a prunable layer). It ignores the spatial structure: a
channel edge counts as present if any tap is kept, so it is an upper-bound view of connectivity
(DESIGN §3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._args import check_masks, check_network
from ..graph.network import Network
from ..graph.walker import FlowWalk, Scaled

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


def path_counts(net: Network, masks: Mapping[str, Any]) -> tuple[list[Scaled], list[Scaled]]:
    """Forward and backward path counts of every node (:class:`~sparsegraph.graph.walker.Scaled`).

    ``fwd[i]`` counts the paths from the inputs to each element of node ``i``, ``bwd[i]`` the
    paths from each element to the outputs (natural-log scales). Internal helper of
    :func:`path_metrics`.
    """
    import torch

    net = check_network(net)
    checked = check_masks(net, masks)
    weights = [torch.from_numpy(checked[layer.name].astype(np.float64)) for layer in net.layers]
    walk = FlowWalk(net, weights).forward(grad=True)
    bwd, _ = walk.backward()
    return walk.fwd, bwd


def _log10_dot(a: Scaled, b: Scaled) -> float:
    if a.s == -math.inf or b.s == -math.inf:
        return -math.inf
    s = float((a.h * b.h).sum())
    return a.log10 + b.log10 + math.log10(s) if s > 0 else -math.inf


def _min_cut(net: Network, masks: Mapping[str, Any]) -> tuple[float, int]:
    import igraph as ig

    from ..graph.export import network_graph

    g, _ = network_graph(net, masks)
    is_layer = g.edge_layer != ""
    n_layer_edges = int(is_layer.sum())
    big = float(n_layer_edges + 1)
    cap = np.where(is_layer, 1.0, big)
    source, sink = g.n, g.n + 1
    ins = np.flatnonzero(np.isin(g.nodes["node"], net.inputs))
    outs = np.flatnonzero(np.isin(g.nodes["node"], net.outputs))
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
    ...     nodes=(Node(0, "input", (), (2,)),
    ...            Node(1, "layer", (0,), (3,), layer=0, params={"op": "linear"}),
    ...            Node(2, "layer", (1,), (1,), layer=1, params={"op": "linear"})),
    ...     outputs=(2,),
    ... )
    >>> pm = path_metrics(net, {"a.weight": np.ones((3, 2)), "b.weight": [[1, 1, 0]]})
    >>> round(10 ** pm.log10_paths), pm.min_cut, pm.layer_share["a.weight"]
    (4, 2.0, 1.0)
    """
    net = check_network(net)
    fwd, bwd = path_counts(net, masks)
    total = _logsumexp10([_log10_sum(fwd[o]) for o in net.outputs])
    layer_logs: dict[str, float] = {}
    shares: dict[str, float] = {}
    for name in net.names:
        lg = _logsumexp10([_log10_dot(fwd[n], bwd[n]) for n in net.uses(name)])
        layer_logs[name] = lg
        shares[name] = 0.0 if total == -math.inf or lg == -math.inf else 10.0 ** (lg - total)
    cut, n_edges = _min_cut(net, masks) if min_cut else (None, 0)
    return PathMetrics(
        log10_paths=total,
        collapsed=total == -math.inf,
        layer_log10_paths=layer_logs,
        layer_share=shares,
        min_cut=cut,
        channel_edges=n_edges,
    )


def _log10_sum(x: Scaled) -> float:
    if x.s == -math.inf:
        return -math.inf
    s = float(x.h.sum())
    return x.log10 + math.log10(s) if s > 0 else -math.inf


def _logsumexp10(logs: list[float]) -> float:
    live = [v for v in logs if v != -math.inf]
    if not live:
        return -math.inf
    top = max(live)
    return top + math.log10(sum(10.0 ** (v - top) for v in live))
