"""Path counts and the channel-level min cut against exact element-level oracles."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nets import gen_networks, tiny_net
from reference import count_paths, element_preds

from sparsegraph.errors import MaskError
from sparsegraph.graph.network import Layer, Network, Node
from sparsegraph.metrics.paths import path_metrics

# ------------------------------------------------------------------------------------------
# oracle: the element-level path DAG (tests/reference.py), path counts with Python integers


def random_masks(net: Network, p: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {layer.name: rng.random(layer.shape) < p for layer in net.layers}


# ------------------------------------------------------------------------------------------


@settings(max_examples=15)
@given(p=st.floats(0.1, 1.0), seed=st.integers(0, 2**32 - 1))
def test_path_counts_match_integer_oracle(p, seed):
    net = tiny_net()
    masks = random_masks(net, p, seed)
    total = count_paths(net, masks)
    pm = path_metrics(net, masks, min_cut=False)
    if total == 0:
        assert pm.collapsed and pm.log10_paths == -math.inf
        assert all(v == 0.0 for v in pm.layer_share.values())
        return
    assert not pm.collapsed
    assert pm.log10_paths == pytest.approx(math.log10(total), abs=1e-12)
    for layer in net.layers:
        without = dict(masks)
        without[layer.name] = np.zeros(layer.shape, bool)
        through = total - count_paths(net, without)
        if through == 0:
            assert pm.layer_log10_paths[layer.name] == -math.inf
            assert pm.layer_share[layer.name] == 0.0
        else:
            assert pm.layer_log10_paths[layer.name] == pytest.approx(math.log10(through),
                                                                   abs=1e-12)
            assert pm.layer_share[layer.name] == pytest.approx(through / total, rel=1e-12)


def test_dense_tiny_net_and_enumeration():
    """Dense weights: compare with a depth-first enumeration of every path."""
    net = tiny_net()
    masks = {layer.name: np.ones(layer.shape, bool) for layer in net.layers}
    preds = element_preds(net, masks)

    def paths_to(node: int, e: int) -> int:  # enumeration, not memoised
        if net.nodes[node].kind == "input":
            return 1
        return sum(paths_to(s, se) for s, se in preds[node][e])

    total = sum(paths_to(8, e) for e in range(3))
    assert total == count_paths(net, masks)
    pm = path_metrics(net, masks)
    assert pm.log10_paths == pytest.approx(math.log10(total), abs=1e-12)
    assert pm.layer_share["a.weight"] == pytest.approx(1.0)
    assert pm.layer_share["d.weight"] == pytest.approx(1.0)
    assert 0 < pm.layer_share["b.weight"] < 1  # bypassed by the pool branch


def test_deep_chain_does_not_overflow():
    """60 dense 30->30 linear layers: 30**61 paths (far beyond float64's range)."""
    n, depth = 30, 60
    layers = tuple(Layer(f"l{i}.weight", f"l{i}", "linear", (n, n), n, n) for i in range(depth))
    nodes = [Node(0, "input", (), (n,))]
    nodes += [Node(i + 1, "layer", (i,), (n,), layer=i, params={"op": "linear"})
              for i in range(depth)]
    net = Network(layers=layers, nodes=tuple(nodes), outputs=(depth,))
    pm = path_metrics(net, {}, min_cut=False)
    assert pm.log10_paths == pytest.approx((depth + 1) * math.log10(n), rel=1e-12)
    assert all(v == pytest.approx(1.0) for v in pm.layer_share.values())


def channel_oracle_cut(net: Network, masks: dict) -> float:
    """Max flow on the element graph collapsed to channels (axis 0 of every tensor of the
    tiny CNN)."""
    g = nx.DiGraph()
    for node in net.nodes:
        for c in range(node.shape[0]):
            if node.kind == "input":
                g.add_edge("S", (node.id, c))
            if node.id in net.outputs:
                g.add_edge((node.id, c), "T")
    preds = element_preds(net, masks)
    for node in net.nodes:
        per = node.numel // node.shape[0]
        for e, pe in enumerate(preds[node.id]):
            for s, se in pe:
                sp = net.nodes[s].numel // net.nodes[s].shape[0]
                u, v = (s, se // sp), (node.id, e // per)
                if node.kind == "layer":
                    g.add_edge(u, v, capacity=1)
                else:
                    g.add_edge(u, v)  # no capacity: unbounded
    if "S" not in g or "T" not in g:
        return 0.0
    return float(nx.maximum_flow_value(g, "S", "T"))


@settings(max_examples=10)
@given(p=st.floats(0.05, 1.0), seed=st.integers(0, 2**32 - 1))
def test_min_cut_matches_networkx(p, seed):
    net = tiny_net()
    masks = random_masks(net, p, seed)
    pm = path_metrics(net, masks)
    assert pm.min_cut == channel_oracle_cut(net, masks)
    assert pm.channel_edges == sum(
        int(np.count_nonzero(masks[lay.name].reshape(lay.out_channels,
                                                     lay.in_channels // lay.groups, -1).any(2)))
        for lay in net.layers)


def test_collapsed_network_and_json():
    net = tiny_net()
    masks = random_masks(net, 1.0, 0)
    masks["d.weight"] = np.zeros((3, 20), bool)
    pm = path_metrics(net, masks)
    assert pm.collapsed and pm.min_cut == 0.0
    d = pm.to_dict()
    assert d["log10_paths"] is None and d["min_cut"] == 0 and d["collapsed"] is True
    assert [x["name"] for x in d["layers"]] == net.names


def test_unbounded_cut_when_an_input_is_an_output():
    lay = Layer("a.weight", "a", "linear", (2, 3), 3, 2)
    net = Network(layers=(lay,),
                  nodes=(Node(0, "input", (), (3,)),
                         Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
                  outputs=(0, 1))
    pm = path_metrics(net, {"a.weight": np.zeros((2, 3), bool)})
    assert pm.min_cut == math.inf and pm.to_dict()["min_cut"] == "inf"
    assert pm.log10_paths == pytest.approx(math.log10(3))


def test_bad_masks_raise():
    net = tiny_net()
    with pytest.raises(MaskError, match="expected shape"):
        path_metrics(net, {"a.weight": np.ones((3, 2, 3, 1), bool)})


def test_traced_model_agrees_with_synflow_sum():
    """On a traced model: total paths == sum of the outputs of the linearised float64 network
    (ReLU/BN removed is what trace does; here a plain conv/avgpool stack needs no removal)."""
    torch = pytest.importorskip("torch")
    from sparsegraph.graph.trace import trace

    model = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1, bias=False), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(4, 3, 3, stride=2, bias=False), torch.nn.Flatten(),
        torch.nn.Linear(3, 5, bias=False),
    ).double()
    x = torch.ones(1, 2, 8, 8, dtype=torch.float64)
    net = trace(model, x)
    masks = random_masks(net, 0.5, 1)
    with torch.no_grad():
        for name, prm in model.named_parameters():
            prm.copy_(torch.from_numpy(masks[name].astype(np.float64)))
        y = model(x).sum().item() * 4  # average pooling over 2x2 windows: times 4 = sum
    pm = path_metrics(net, masks)
    assert pm.log10_paths == pytest.approx(math.log10(y), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(gen_networks(max_numel=60), st.floats(0.1, 1.0), st.integers(0, 2**31 - 1))
def test_path_counts_of_generated_networks(net, p, seed):
    """Every node kind (products, contractions, softmax, index maps of any rank): the total
    and per-layer counts against the integer count on the element-level path DAG."""
    masks = random_masks(net, p, seed)
    total = count_paths(net, masks)
    pm = path_metrics(net, masks, min_cut=False)
    if total == 0:
        assert pm.collapsed
        return
    assert pm.log10_paths == pytest.approx(math.log10(total), abs=1e-9)
