"""Masked layer graphs as scipy, networkx and igraph objects, for your own graph analyses.

Two kinds of graph:

one layer (``layer="features.3.weight"``)
    Its bipartite graph, directed from inputs to outputs, either in the paper's unrolled
    convention (``level="unrolled"``, the default: left = ``fan_in`` unrolled inputs, right =
    output units, an edge per kept weight, weight 1) or at the channel level
    (``level="channel"``: left = input channels, right = output channels, an edge per channel
    pair with at least one kept tap, weight = kept taps). Nodes ``0 .. n_left - 1`` are the left
    side and ``n_left ..`` the right side.
the whole network (``layer=None``)
    The channel-level layered graph of the linearised network: one node per unit of every
    tensor in :attr:`Network.nodes`, in node order and unit order, a tensor's units being the
    positions of the axis its node kind names (channels of an image, features of a token
    tensor; :mod:`sparsegraph.graph.kinds`). Layer edges join input unit to output unit where at
    least one tap is kept (weight = kept taps, attribute ``layer`` = the parameter name); wiring
    edges (every other kind: index maps, reshapes, sums, concatenations, products, gates,
    contractions, softmax) join the units they map onto each other (weight 1, ``layer = ""``).
    Directed, acyclic.

Node attributes in every form: ``layer`` (the layer's parameter name; for the whole network the
tensor's name: the parameter name for a layer node, else the traced node's name), ``unit`` (index
within its side or tensor: unrolled input, channel or neuron) and ``kind`` (``"input"`` /
``"output"`` for the two sides of one layer; ``"input"``, ``"hidden"`` or ``"output"`` for network
inputs, inner tensors and network outputs). The whole-network form also has ``op`` (the node
op) and ``node`` (the node id). :func:`to_scipy` returns only the matrix; :func:`node_table`
gives the attributes as arrays in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._args import check_choice, check_masks, check_network
from ..errors import ArgumentError
from .bipartite import channel_graph, unrolled_graph
from .kinds import KINDS
from .network import Network
from .walker import UnitsWalk

__all__ = ["node_table", "to_igraph", "to_networkx", "to_scipy"]

_LEVELS = ("unrolled", "channel")


@dataclass(frozen=True)
class _Graph:
    """Plain arrays of a directed graph with node attributes."""

    n: int
    src: np.ndarray  # int64
    dst: np.ndarray  # int64
    weight: np.ndarray  # float64
    edge_layer: np.ndarray  # object (str)
    nodes: dict[str, np.ndarray]


def _level(net: Network, level: str | None, layer: str | None) -> str:
    check_network(net)
    if level is None:
        return "unrolled" if layer is not None else "channel"
    check_choice(level, _LEVELS, "level")
    if layer is None and level != "channel":
        raise ArgumentError(
            "level: the whole-network graph is built at the channel level; pass level='channel' "
            f"or name one layer with layer=..., got level={level!r}"
        )
    return level


def _masks(net: Network, masks: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    return check_masks(net, {} if masks is None else masks)


def _layer_biadjacency(net: Network, masks: Mapping[str, Any] | None, layer: str,
                       level: str) -> sp.csr_array:
    lay = net.layer(layer)
    mask = _masks(net, masks)[layer]
    return unrolled_graph(lay, mask) if level == "unrolled" else channel_graph(lay, mask)


def _layer_graph(net: Network, masks: Mapping[str, Any] | None, layer: str,
                 level: str) -> _Graph:
    b = _layer_biadjacency(net, masks, layer, level).tocoo()
    nl, nr = b.shape
    n = nl + nr
    kinds = np.array(["input"] * nl + ["output"] * nr, dtype=object)
    units = np.concatenate([np.arange(nl), np.arange(nr)]).astype(np.int64)
    names = np.full(n, layer, dtype=object)
    return _Graph(
        n=n,
        src=b.row.astype(np.int64),
        dst=b.col.astype(np.int64) + nl,
        weight=b.data.astype(np.float64),
        edge_layer=np.full(b.nnz, layer, dtype=object),
        nodes={"layer": names, "unit": units, "kind": kinds,
               "bipartite": (np.arange(n) >= nl).astype(np.int64)},
    )


def _node_label(net: Network, node: Any) -> str:
    if KINDS[node.kind].has_weight:
        return net.layers[node.layer].name
    return node.name or f"{node.kind}{node.id}"


def network_graph(net: Network, masks: Mapping[str, Any] | None) -> tuple[_Graph, np.ndarray]:
    """The whole network's channel-level graph and each node's first unit (offsets, int64).

    One vertex per unit of every tensor: the positions of its unit axis (channels of a
    convolution's tensors, features of a linear layer's, as each node kind defines it in
    :mod:`sparsegraph.graph.kinds`). Edges from layers carry ``edge_layer`` = the parameter
    name; wiring edges ``""``.
    """
    walk = UnitsWalk(net, _masks(net, masks))
    src, dst, weight, labels = walk.edges()
    offset = walk.offset
    n = int(offset[-1])
    node_of = np.repeat(np.arange(len(net.nodes)), walk.sizes)
    kinds = np.full(n, "hidden", dtype=object)
    for ids, label in ((net.outputs, "output"), (net.inputs, "input")):
        for i in ids:
            kinds[offset[i]:offset[i + 1]] = label
    names = np.array([_node_label(net, node) for node in net.nodes], dtype=object)
    ops = np.array([node.kind for node in net.nodes], dtype=object)
    g = _Graph(
        n=n, src=src, dst=dst, weight=weight, edge_layer=labels,
        nodes={
            "layer": names[node_of],
            "unit": np.arange(n, dtype=np.int64) - offset[node_of],
            "kind": kinds,
            "op": ops[node_of],
            "node": node_of.astype(np.int64),
        },
    )
    return g, offset


def _graph(net: Network, masks: Mapping[str, Any] | None, layer: str | None,
           level: str | None) -> _Graph:
    lev = _level(net, level, layer)
    if layer is not None:
        return _layer_graph(net, masks, layer, lev)
    return network_graph(net, masks)[0]


def to_scipy(
    net: Network,
    masks: Mapping[str, Any] | None = None,
    layer: str | None = None,
    *,
    level: str | None = None,
) -> sp.csr_array:
    """The masked graph as a scipy CSR matrix.

    Parameters
    ----------
    net : Network
        The traced network.
    masks : mapping of str to array-like of bool, optional
        Masks keyed by layer name (missing layers are dense; None: all dense).
    layer : str, optional
        One layer's name; None for the whole network.
    level : {"unrolled", "channel"}, optional
        Default ``"unrolled"`` for one layer, ``"channel"`` (the only choice) for the network.

    Returns
    -------
    scipy.sparse.csr_array
        For one layer its **biadjacency** ``(n_left, n_right)`` (see
        :func:`sparsegraph.graph.bipartite.unrolled_graph` and
        :func:`~sparsegraph.graph.bipartite.channel_graph`); for the network the square directed
        **adjacency** over all channel units in :func:`node_table` order (``[i, j]`` = weight of
        the edge ``i -> j``).

    Raises
    ------
    MaskError
        For an unknown layer name or a mask that does not fit.
    ArgumentError
        For an unknown level, or ``level="unrolled"`` without a layer (a ``ValueError``), or
        a ``net`` that is not a Network.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> m = {"fc.weight": np.array([[1, 0, 1], [0, 0, 1]], bool)}
    >>> to_scipy(net, m, "fc.weight").shape, to_scipy(net, m).shape, to_scipy(net, m).nnz
    ((3, 2), (5, 5), 3)
    """
    lev = _level(net, level, layer)
    if layer is not None:
        return _layer_biadjacency(net, masks, layer, lev)
    g = network_graph(net, masks)[0]
    mat = sp.coo_array((g.weight, (g.src, g.dst)), shape=(g.n, g.n)).tocsr()
    mat.sort_indices()
    return mat


def node_table(
    net: Network, layer: str | None = None, *, level: str | None = None
) -> dict[str, np.ndarray]:
    """Node attributes (``layer``, ``unit``, ``kind``, and ``op``, ``node`` for the network) as
    arrays in the order of :func:`to_scipy`'s rows and of the exported graphs' node ids.

    Examples
    --------
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> list(node_table(net, "fc.weight")["kind"])
    ['input', 'input', 'input', 'output', 'output']
    """
    lev = _level(net, level, layer)
    if layer is not None:
        lay = net.layer(layer)
        nl, nr = (lay.fan_in, lay.out_channels) if lev == "unrolled" else (
            lay.in_channels, lay.out_channels)
        n = nl + nr
        return {
            "layer": np.full(n, layer, dtype=object),
            "unit": np.concatenate([np.arange(nl), np.arange(nr)]).astype(np.int64),
            "kind": np.array(["input"] * nl + ["output"] * nr, dtype=object),
        }
    dense = {name: np.zeros(net.layer(name).shape, bool) for name in net.names}
    return network_graph(net, dense)[0].nodes


def to_networkx(
    net: Network,
    masks: Mapping[str, Any] | None = None,
    layer: str | None = None,
    *,
    level: str | None = None,
) -> Any:
    """The masked graph as a ``networkx.DiGraph`` (integer node ids in :func:`node_table`
    order; node attributes ``layer``, ``unit``, ``kind`` (+ ``bipartite`` 0/1 for one layer,
    ``op`` and ``node`` for the network); edge attributes ``weight`` and ``layer``).

    Parameters are those of :func:`to_scipy`.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> g = to_networkx(net, {"fc.weight": np.array([[1, 0, 1], [0, 0, 1]], bool)}, "fc.weight")
    >>> g.number_of_nodes(), g.number_of_edges(), g.nodes[3]
    (5, 3, {'layer': 'fc.weight', 'unit': 0, 'kind': 'output', 'bipartite': 1})
    """
    import networkx as nx

    g = _graph(net, masks, layer, level)
    out = nx.DiGraph()
    keys = list(g.nodes)
    cols = [g.nodes[k].tolist() for k in keys]
    out.add_nodes_from((i, dict(zip(keys, vals, strict=True)))
                       for i, vals in enumerate(zip(*cols, strict=True)))
    out.add_edges_from(
        (s, d, {"weight": w, "layer": lab})
        for s, d, w, lab in zip(g.src.tolist(), g.dst.tolist(), g.weight.tolist(),
                                g.edge_layer.tolist(), strict=True)
    )
    return out


def to_igraph(
    net: Network,
    masks: Mapping[str, Any] | None = None,
    layer: str | None = None,
    *,
    level: str | None = None,
) -> Any:
    """The masked graph as a directed ``igraph.Graph`` with the vertex attributes of
    :func:`node_table` and edge attributes ``weight`` and ``layer``.

    Parameters are those of :func:`to_scipy`.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> g = to_igraph(net, {"fc.weight": np.array([[1, 0, 1], [0, 0, 1]], bool)})
    >>> g.vcount(), g.ecount(), g.vs[3]["kind"], g.is_directed()
    (5, 3, 'output', True)
    """
    import igraph as ig

    g = _graph(net, masks, layer, level)
    edges = np.column_stack([g.src, g.dst]).tolist() if g.src.size else []
    return ig.Graph(
        n=g.n,
        edges=edges,
        directed=True,
        vertex_attrs={k: v.tolist() for k, v in g.nodes.items()},
        edge_attrs={"weight": g.weight.tolist(), "layer": g.edge_layer.tolist()},
    )
