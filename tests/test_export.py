"""Exports to scipy, networkx and igraph: node/edge counts and attributes."""

from __future__ import annotations

import numpy as np
import pytest
from nets import tiny_net

from sparsegraph.errors import MaskError
from sparsegraph.graph.export import node_table, to_igraph, to_networkx, to_scipy


@pytest.fixture
def net_masks():
    net = tiny_net()
    rng = np.random.default_rng(0)
    masks = {layer.name: rng.random(layer.shape) < 0.5 for layer in net.layers}
    return net, masks


def test_one_layer_unrolled(net_masks):
    net, masks = net_masks
    layer = net.layer("a.weight")
    b = to_scipy(net, masks, "a.weight")
    assert b.shape == (layer.fan_in, layer.out_channels) and b.nnz == masks["a.weight"].sum()
    g = to_networkx(net, masks, "a.weight")
    assert g.number_of_nodes() == layer.fan_in + layer.out_channels
    assert g.number_of_edges() == b.nnz
    assert g.nodes[0] == {"layer": "a.weight", "unit": 0, "kind": "input", "bipartite": 0}
    assert g.nodes[layer.fan_in + 2]["kind"] == "output"
    assert g.nodes[layer.fan_in + 2]["unit"] == 2
    coo = b.tocoo()
    for r, c in zip(coo.row[:20], coo.col[:20], strict=True):
        assert g.has_edge(int(r), int(c) + layer.fan_in)
    ig = to_igraph(net, masks, "a.weight")
    assert (ig.vcount(), ig.ecount()) == (g.number_of_nodes(), g.number_of_edges())
    assert ig.vs["kind"] == [g.nodes[i]["kind"] for i in range(ig.vcount())]
    assert set(ig.es["weight"]) == {1.0}


def test_one_layer_channel_level_grouped(net_masks):
    net, masks = net_masks
    b = to_scipy(net, masks, "b.weight", level="channel")
    m = masks["b.weight"]
    assert b.shape == (3, 3)
    np.testing.assert_array_equal(b.toarray(), np.diag(m.reshape(3, -1).sum(1)))
    g = to_networkx(net, masks, "b.weight", level="channel")
    assert g.number_of_edges() == b.nnz
    for i, j, w in zip(*b.nonzero(), b.data, strict=True):
        assert g.edges[int(i), int(j) + 3]["weight"] == w


def test_whole_network(net_masks):
    net, masks = net_masks
    a = to_scipy(net, masks)
    table = node_table(net)
    n_units = sum(node.shape[0] for node in net.nodes)
    assert a.shape == (n_units, n_units) and len(table["kind"]) == n_units
    assert list(table["kind"][:2]) == ["input", "input"]
    assert list(table["kind"][-3:]) == ["output"] * 3
    assert set(table["op"]) == {"input", "layer", "index", "add", "cat", "reshape"}
    # layer edges: channel pairs with a kept tap; wiring: pool 3 + add 6 + cat 5 + flatten 20
    layer_edges = sum(
        int(np.count_nonzero(masks[lay.name].reshape(lay.out_channels,
                                                     lay.in_channels // lay.groups, -1).any(2)))
        for lay in net.layers)
    assert a.nnz == layer_edges + 3 + 6 + 5 + 20
    g = to_networkx(net, masks)
    assert g.number_of_nodes() == n_units and g.number_of_edges() == a.nnz
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)
    ig = to_igraph(net, masks)
    assert ig.vcount() == n_units and ig.ecount() == a.nnz and ig.is_dag()
    assert sum(1 for e in ig.es if e["layer"] == "") == 34
    assert ig.vs[0]["layer"] == "x" and ig.vs[2]["layer"] == "a.weight"
    # attributes agree with the node table
    assert ig.vs["unit"] == table["unit"].tolist()


def test_dense_default_and_errors(net_masks):
    net, _ = net_masks
    assert to_scipy(net, None, "d.weight").nnz == 60
    with pytest.raises(ValueError, match="level"):
        to_scipy(net, None, level="unrolled")
    with pytest.raises(ValueError, match="level"):
        to_scipy(net, None, "d.weight", level="pixel")
    with pytest.raises(MaskError, match="unknown layer"):
        to_networkx(net, None, "e.weight")
    assert list(node_table(net, "c.weight", level="channel")["kind"]) == ["input"] * 3 + [
        "output"] * 2
