"""Path counts and the channel-level min cut against exact element-level oracles."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nets import tiny_net

from sparsegraph.errors import MaskError
from sparsegraph.graph.network import Layer, Network, Node
from sparsegraph.metrics.paths import path_metrics

# ------------------------------------------------------------------------------------------
# oracle: the element-level graph with loops, path counts with Python integers


def element_edges(net: Network, masks: dict) -> dict[int, list[list[tuple[int, int]]]]:
    """preds[node][flat element] = list of (source node, source flat element)."""
    preds: dict[int, list[list[tuple[int, int]]]] = {}
    for node in net.nodes:
        c, h, w = node.shape
        p: list[list[tuple[int, int]]] = [[] for _ in range(node.numel)]
        if node.op == "layer":
            lay = net.layers[node.layer]
            src = net.nodes[node.inputs[0]]
            m = np.asarray(masks[lay.name], bool)
            if lay.kind == "linear":
                for o in range(lay.out_channels):
                    for i in range(lay.in_channels):
                        if m[o, i]:
                            p[o].append((src.id, i))
            else:
                sc, sh, sw = src.shape
                cg, og = lay.in_channels // lay.groups, lay.out_channels // lay.groups
                for o in range(c):
                    for y in range(h):
                        for x in range(w):
                            for j in range(cg):
                                for ky in range(lay.kernel[0]):
                                    for kx in range(lay.kernel[1]):
                                        if not m[o, j, ky, kx]:
                                            continue
                                        yy = y * lay.stride[0] - lay.padding[0] + ky
                                        xx = x * lay.stride[1] - lay.padding[1] + kx
                                        if 0 <= yy < sh and 0 <= xx < sw:
                                            ci = (o // og) * cg + j
                                            p[(o * h + y) * w + x].append(
                                                (src.id, (ci * sh + yy) * sw + xx))
        elif node.op == "pool":
            src = net.nodes[node.inputs[0]]
            (hp, hi), (wp, wi) = node.window_h, node.window_w
            for ch in range(c):
                for y in range(h):
                    for x in range(w):
                        for yy in hi[hp[y]:hp[y + 1]]:
                            for xx in wi[wp[x]:wp[x + 1]]:
                                p[(ch * h + y) * w + x].append(
                                    (src.id, (ch * src.shape[1] + yy) * src.shape[2] + xx))
        elif node.op == "add":
            for i in node.inputs:
                for e in range(node.numel):
                    p[e].append((i, e))
        elif node.op == "cat":
            start = 0
            for i in node.inputs:
                for e in range(net.nodes[i].numel):
                    p[start + e].append((i, e))
                start += net.nodes[i].numel
        elif node.op == "reshape":
            for e in range(node.numel):
                p[e].append((node.inputs[0], e))
        preds[node.id] = p
    return preds


def count_paths(net: Network, masks: dict) -> int:
    preds = element_edges(net, masks)
    f: dict[int, list[int]] = {}
    for node in net.nodes:
        if node.op == "input":
            f[node.id] = [1] * node.numel
        else:
            f[node.id] = [sum(f[s][e] for s, e in pe) for pe in preds[node.id]]
    return sum(sum(f[o]) for o in net.outputs)


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
    preds = element_edges(net, masks)

    def paths_to(node: int, e: int) -> int:  # enumeration, not memoised
        if net.nodes[node].op == "input":
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
    nodes = [Node(0, "input", (), (n, 1, 1))]
    nodes += [Node(i + 1, "layer", (i,), (n, 1, 1), layer=i) for i in range(depth)]
    net = Network(layers=layers, nodes=tuple(nodes), outputs=(depth,))
    pm = path_metrics(net, {}, min_cut=False)
    assert pm.log10_paths == pytest.approx((depth + 1) * math.log10(n), rel=1e-12)
    assert all(v == pytest.approx(1.0) for v in pm.layer_share.values())


def channel_oracle_cut(net: Network, masks: dict) -> float:
    g = nx.DiGraph()
    for node in net.nodes:
        for c in range(node.shape[0]):
            if node.op == "input":
                g.add_edge("S", (node.id, c))
            if node.id in net.outputs:
                g.add_edge((node.id, c), "T")
    preds = element_edges(net, masks)
    for node in net.nodes:
        per = node.shape[1] * node.shape[2]
        for e, pe in enumerate(preds[node.id]):
            for s, se in pe:
                sp = net.nodes[s].shape[1] * net.nodes[s].shape[2]
                u, v = (s, se // sp), (node.id, e // per)
                if node.op == "layer":
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
                  nodes=(Node(0, "input", (), (3, 1, 1)), Node(1, "layer", (0,), (2, 1, 1),
                                                                 layer=0)),
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
