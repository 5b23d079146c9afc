"""Layerwise quotas (sparsegraph.masks.quotas) against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from torch import nn

from sparsegraph.errors import ArgumentError, QuotaError
from sparsegraph.graph.network import Layer, Network
from sparsegraph.masks.quotas import (
    QUOTA_SCHEMES,
    LayerTable,
    igq_force,
    quota_counts,
    quotas,
    round_counts,
)
from sparsegraph.pytorch.models import MODELS

# ---------------------------------------------------------------------------------------------
# networks: built from the model's modules directly (no tracing; quotas only read the layers)
# ---------------------------------------------------------------------------------------------


def layers_net(model: nn.Module, name: str = "net") -> Network:
    layers = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            layers.append(Layer(f"{mod_name}.weight", mod_name, "conv", tuple(mod.weight.shape),
                                mod.in_channels, mod.out_channels, mod.groups))
        elif isinstance(mod, nn.Linear):
            layers.append(Layer(f"{mod_name}.weight", mod_name, "linear",
                                tuple(mod.weight.shape), mod.in_features, mod.out_features))
    return Network.from_layers(tuple(layers), name=name)


def shapes_net(shapes) -> Network:
    layers = []
    for i, shape in enumerate(shapes):
        shape = tuple(shape)
        if len(shape) >= 3:  # (out, in, *kernel): a convolution
            layers.append(Layer(f"l{i}.weight", f"l{i}", "conv", shape, shape[1], shape[0]))
        else:
            layers.append(Layer(f"l{i}.weight", f"l{i}", "linear", shape, shape[1], shape[0]))
    return Network.from_layers(tuple(layers), name="shapes")


_NETS: dict[str, Network] = {}


def builtin_net(name: str) -> Network:
    if name not in _NETS:
        spec = MODELS[name]
        with torch.device("meta"):
            _NETS[name] = layers_net(spec.factory(num_classes=spec.num_classes), name)
    return _NETS[name]


def counts_of(net: Network, q: dict[str, float]) -> dict[str, int]:
    return {layer.name: round(q[layer.name] * layer.params) for layer in net.layers}


# ---------------------------------------------------------------------------------------------
# independent oracles
# ---------------------------------------------------------------------------------------------


def rigl_erdos_renyi(shapes, density, *, kernel=True, power=1.0):
    """RigL's get_sparsities_erdos_renyi, transcribed from its definition (sparsities out).

    Evci et al. 2020, rigl/sparse_utils.py: rhs/divisor re-solve, densifying the layers with the
    maximum raw probability while eps * max > 1. ER (kernel=False) reads (n_in, n_out) from the
    two channel dims of a PyTorch weight (out, in, ...).
    """
    dense: set[int] = set()
    sparsity = 1 - density
    while True:
        divisor = 0.0
        rhs = 0.0
        raw = {}
        for i, shape in enumerate(shapes):
            n_param = math.prod(shape)
            if i in dense:
                rhs -= n_param * sparsity
            else:
                rhs += n_param * density
                if kernel:
                    raw[i] = (sum(shape) / math.prod(shape)) ** power
                else:
                    n_out, n_in = shape[0], shape[1]
                    raw[i] = (n_in + n_out) / (n_in * n_out)
                divisor += raw[i] * n_param
        if not raw:
            break
        eps = rhs / divisor
        max_prob = max(raw.values())
        if max_prob * eps > 1:
            dense.update(i for i, p in raw.items() if p == max_prob)
        else:
            break
    return [0.0 if i in dense else 1 - eps * raw[i] for i in range(len(shapes))]


# ---------------------------------------------------------------------------------------------
# exact totals
# ---------------------------------------------------------------------------------------------

DENSITIES = [1e-4, 0.001, 0.0123, 0.05, 0.1, 0.2, 0.3333, 0.5, 0.77, 0.9, 0.99, 1.0]
SCHEMES = ["uniform", "uniform+", "er", "erk", "er_graph", "igq"]


@pytest.mark.parametrize("model", list(MODELS))
def test_exact_totals_all_models(model):
    net = builtin_net(model)
    for scheme in SCHEMES:
        for density in DENSITIES:
            try:
                q = quotas(net, scheme, density)
            except QuotaError as exc:
                assert scheme == "uniform+" and "infeasible" in str(exc)
                continue
            assert list(q) == net.names
            counts = counts_of(net, q)
            assert sum(counts.values()) == round(density * net.params), (scheme, density)
            for layer in net.layers:
                assert 0 <= counts[layer.name] <= layer.params
                assert 0.0 <= q[layer.name] <= 1.0
                # densities reproduce the integer counts exactly
                assert q[layer.name] == counts[layer.name] / layer.params
            assert quota_counts(net, q) == counts


def test_density_one_is_dense():
    net = builtin_net("resnet50")
    for scheme in SCHEMES:
        assert all(v == 1.0 for v in quotas(net, scheme, 1.0).values()), scheme


# ---------------------------------------------------------------------------------------------
# formulas
# ---------------------------------------------------------------------------------------------


def test_jaxpruner_erk_case():
    # jaxpruner sparsity_distributions_test: ERK over shapes (2, 4), (3, 6, 7), (7, 4) at
    # sparsity 0.5 gives sparsities 0.0, 0.64, 0.0 (the 0.64 is 81/126 = 0.642857...: the two
    # small layers are made dense one after the other and the middle keeps 45 of 126).
    net = shapes_net([(2, 4), (3, 6, 7), (7, 4)])
    q = quotas(net, "erk", 0.5)
    counts = counts_of(net, q)
    assert list(counts.values()) == [8, 45, 28]
    sparsities = [1 - v for v in q.values()]
    assert sparsities == pytest.approx([0.0, 0.64, 0.0], abs=0.005)
    assert sparsities == pytest.approx(rigl_erdos_renyi([(2, 4), (3, 6, 7), (7, 4)], 0.5),
                                       abs=1 / 126)


@pytest.mark.parametrize("model", ["lenet300", "lenet5", "vgg16", "resnet20", "resnet50"])
@pytest.mark.parametrize("kind", ["erk", "er"])
@pytest.mark.parametrize("density", [0.005, 0.05, 0.2, 0.5, 0.8, 0.95])
def test_er_erk_match_rigl(model, kind, density):
    net = builtin_net(model)
    shapes = [layer.shape for layer in net.layers]
    want = rigl_erdos_renyi(shapes, density, kernel=kind == "erk")
    q = quotas(net, kind, density)
    for layer, sparsity in zip(net.layers, want, strict=True):
        # within one weight of the real-valued RigL density (the rounding)
        assert abs((1 - sparsity) * layer.params - q[layer.name] * layer.params) <= 1.0 + 1e-6


def test_erk_resolve_is_repeated():
    # moderate density where the first conv and several small layers exceed 1 in turn
    net = builtin_net("vgg16")
    q = quotas(net, "erk", 0.6)
    assert q["features.0.weight"] == 1.0
    dense = [n for n, v in q.items() if v == 1.0]
    assert len(dense) >= 2
    want = rigl_erdos_renyi([layer.shape for layer in net.layers], 0.6)
    assert [n for n, s in zip(net.names, want, strict=True) if s == 0.0] == dense


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_erk_power_scale(power):
    net = builtin_net("resnet20")
    want = rigl_erdos_renyi([layer.shape for layer in net.layers], 0.1, power=power)
    q = quotas(net, "erk", 0.1, erk_power_scale=power)
    for layer, sparsity in zip(net.layers, want, strict=True):
        assert abs((1 - sparsity) - q[layer.name]) * layer.params <= 1.0 + 1e-6


def test_er_graph_formula():
    net = builtin_net("resnet20")
    q = quotas(net, "er_graph", 0.05)
    free = [layer for layer in net.layers if q[layer.name] < 1.0]
    # left side c_in * kh * kw (1 x 1 for the linear head), right side c_out
    raw = {layer.name: (layer.in_channels * (layer.shape[2] * layer.shape[3] if len(
        layer.shape) == 4 else 1) + layer.out_channels) / layer.params for layer in free}
    ratios = [q[n] / raw[n] for n in raw]
    # one shared epsilon up to rounding (one weight per layer)
    for layer in free:
        assert abs(q[layer.name] - ratios[0] * raw[layer.name]) * layer.params <= 2.0
    # differs from RigL's ER (kernel dims) and ERK on convolutions
    assert quotas(net, "er_graph", 0.05) != quotas(net, "er", 0.05)
    assert quotas(net, "er_graph", 0.05) != quotas(net, "erk", 0.05)
    # on an MLP the three coincide
    mlp = builtin_net("lenet300")
    assert quotas(mlp, "er_graph", 0.05) == quotas(mlp, "er", 0.05) == quotas(mlp, "erk", 0.05)


@pytest.mark.parametrize("density", [1e-4, 0.01, 0.1, 0.5, 0.9])
def test_igq_shared_force_and_monotone(density):
    net = builtin_net("resnet50")
    n = np.array([layer.params for layer in net.layers], dtype=np.float64)
    budget = round(density * n.sum())
    # independent: brentq on the kept count
    force = brentq(lambda f: (n / (1 + f * n)).sum() - budget, 0.0, 1e12, xtol=1e-300,
                   rtol=1e-15, maxiter=1000)
    assert igq_force(n, budget) == pytest.approx(force, rel=1e-9)
    real = QUOTA_SCHEMES["igq"](LayerTable.from_network(net), budget)
    assert np.allclose((1 / real - 1) / n, force, rtol=1e-9)  # one F shared by all layers
    q = quotas(net, "igq", density)
    got = np.array(list(q.values()))
    assert np.all(np.abs(got - 1 / (1 + force * n)) * n <= 1.0 + 1e-6)
    order = np.argsort(n, kind="stable")
    assert np.all(np.diff(real[order]) <= 1e-15)  # density decreases with layer size
    assert np.all(got > 0) or density < 1e-3


def test_uniform_and_uniform_plus():
    net = builtin_net("resnet20")
    q = quotas(net, "uniform", 0.1)
    for layer in net.layers:
        assert abs(q[layer.name] - 0.1) * layer.params <= 1.0
    qp = quotas(net, "uniform+", 0.1)
    first, last = net.names[0], net.names[-1]
    assert qp[first] == 1.0
    assert qp[last] >= 0.2 - 1 / net.layers[-1].params
    mid = [layer for layer in net.layers[1:-1]]
    # the middle share one density d: (budget - first - last) / middle
    budget = round(0.1 * net.params)
    d = (budget - net.layers[0].params - qp[last] * net.layers[-1].params) / sum(
        layer.params for layer in mid)
    for layer in mid:
        assert abs(qp[layer.name] - d) * layer.params <= 1.0 + 1e-6
    # at a high density the last layer is simply uniform with the middle
    qh = quotas(net, "uniform+", 0.5)
    assert abs(qh[last] - qh[net.names[1]]) * net.layers[-1].params <= 1.0 + 1e-6


def test_uniform_plus_infeasible():
    net = builtin_net("resnet20")
    n0, nl = net.layers[0].params, net.layers[-1].params
    minimum = (n0 + 0.2 * nl) / net.params
    with pytest.raises(QuotaError, match=r"uniform\+ is infeasible.*choose a density above"):
        quotas(net, "uniform+", minimum * 0.9)
    quotas(net, "uniform+", minimum * 1.5)


# ---------------------------------------------------------------------------------------------
# dense layers and the budget
# ---------------------------------------------------------------------------------------------


def test_dense_in_budget():
    net = builtin_net("resnet20")
    q = quotas(net, "erk", 0.1, dense=["conv1.weight", "fc.*"])
    assert q["conv1.weight"] == 1.0 and q["fc.weight"] == 1.0
    assert sum(counts_of(net, q).values()) == round(0.1 * net.params)
    q2 = quotas(net, "erk", 0.1, dense=["conv1.weight", "fc.*"], dense_in_budget=False)
    dense_params = net.layer("conv1.weight").params + net.layer("fc.weight").params
    rest = net.params - dense_params
    assert sum(counts_of(net, q2).values()) == round(0.1 * rest) + dense_params
    # the free layers follow RigL with the dense ones removed
    free = [layer for layer in net.layers if layer.name not in ("conv1.weight", "fc.weight")]
    want = rigl_erdos_renyi([layer.shape for layer in free], round(0.1 * rest) / rest)
    for layer, s in zip(free, want, strict=True):
        assert abs(1 - s - q2[layer.name]) * layer.params <= 1.0 + 1e-6


def test_dense_over_budget_and_unknown():
    net = builtin_net("lenet300")
    with pytest.raises(QuotaError, match="dense layers keep 235200 weights.*dense_in_budget"):
        quotas(net, "uniform", 0.1, dense="fc1.weight")
    with pytest.raises(QuotaError, match="did you mean 'fc1.weight'"):
        quotas(net, "uniform", 0.1, dense=["fc1.wieght"])


# ---------------------------------------------------------------------------------------------
# from_mask, mappings, callables
# ---------------------------------------------------------------------------------------------


def test_from_mask_reproduces_counts():
    net = builtin_net("lenet5")
    rng = np.random.default_rng(0)
    masks = {layer.name: rng.random(layer.shape) < rng.uniform(0.01, 0.9)
             for layer in net.layers}
    q = quotas(net, "from_mask", masks=masks)
    assert counts_of(net, q) == {k: int(v.sum()) for k, v in masks.items()}
    q2 = quotas(net, "from_mask", 0.05, masks=masks)
    assert sum(counts_of(net, q2).values()) == round(0.05 * net.params)
    with pytest.raises(QuotaError, match="needs masks="):
        quotas(net, "from_mask")
    with pytest.raises(QuotaError, match="expected shape"):
        quotas(net, "from_mask", masks={"conv1.weight": np.ones((2, 2), bool)})


def test_mapping_and_callable():
    net = builtin_net("lenet300")
    given = {"fc1.weight": 0.1, "fc2.weight": 0.25, "fc3.weight": 0.5}
    q = quotas(net, given)
    assert counts_of(net, q) == {"fc1.weight": 23520, "fc2.weight": 7500, "fc3.weight": 500}
    q2 = quotas(net, given, 0.05)  # rescaled proportionally
    assert sum(counts_of(net, q2).values()) == round(0.05 * net.params)
    assert q2["fc2.weight"] / q2["fc1.weight"] == pytest.approx(2.5, rel=1e-3)

    def half_of_uniform(table, budget):
        return {name: 0.5 for name in table.names}

    q3 = quotas(net, half_of_uniform, 0.2)
    assert all(abs(v - 0.2) * net.layer(k).params <= 1 for k, v in q3.items())
    with pytest.raises(QuotaError, match="gives no density for layer 'fc3.weight'"):
        quotas(net, {"fc1.weight": 0.1, "fc2.weight": 0.1})
    with pytest.raises(QuotaError, match="unknown layer 'fc4.weight'"):
        quotas(net, {**given, "fc4.weight": 0.1})
    with pytest.raises(QuotaError, match=r"expected a density in \[0, 1\]"):
        quotas(net, {**given, "fc1.weight": 1.5})

    def broken(table, budget):
        raise RuntimeError("boom")

    with pytest.raises(QuotaError, match="raised RuntimeError: boom"):
        quotas(net, broken, 0.1)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan"), float("inf"), "0.1", True])
def test_bad_density(density):
    with pytest.raises(QuotaError, match="density"):
        quotas(builtin_net("lenet300"), "erk", density)


def test_bad_scheme_and_options():
    net = builtin_net("lenet300")
    with pytest.raises(QuotaError, match=r"did you mean 'erk'.*Known schemes: uniform"):
        quotas(net, "erkk", 0.1)
    with pytest.raises(QuotaError, match="needs a density"):
        quotas(net, "igq")
    with pytest.raises(QuotaError, match="erk_power_scale applies to scheme 'erk' only"):
        quotas(net, "igq", 0.1, erk_power_scale=2.0)
    with pytest.raises(QuotaError, match="expected a scheme name"):
        quotas(net, 3, 0.1)
    with pytest.raises(ArgumentError, match="expected a Network"):  # the door's check_network
        quotas({"a": 1}, "erk", 0.1)
    assert issubclass(QuotaError, ValueError)


# ---------------------------------------------------------------------------------------------
# rounding helper and properties
# ---------------------------------------------------------------------------------------------


def test_round_counts_largest_remainder():
    assert round_counts([10, 10, 10], [0.25, 0.25, 0.25], 8).tolist() == [3, 3, 2]
    assert round_counts([10, 10], [0.14, 0.17], 3).tolist() == [1, 2]
    assert round_counts([3, 100], [1.0, 0.5], 53).tolist() == [3, 50]
    # floats slightly off integers come back to the integers
    n = np.array([7, 11, 13])
    c = np.array([3, 5, 8])
    assert round_counts(n, c / n, int(c.sum())).tolist() == c.tolist()
    with pytest.raises(QuotaError):
        round_counts([10], [0.5], 11)


layer_shape = st.one_of(
    st.tuples(st.integers(1, 300), st.integers(1, 300)),
    st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3, 5]),
              st.sampled_from([1, 3, 5])),
)


@settings(max_examples=150)
@given(shapes=st.lists(layer_shape, min_size=1, max_size=8),
       density=st.floats(1e-4, 1.0, exclude_min=False),
       scheme=st.sampled_from(SCHEMES))
def test_property_exact_total(shapes, density, scheme):
    net = shapes_net(shapes)
    try:
        q = quotas(net, scheme, density)
    except QuotaError as exc:
        assert scheme == "uniform+"
        assert "infeasible" in str(exc)
        return
    counts = counts_of(net, q)
    assert sum(counts.values()) == round(density * net.params)
    assert all(0 <= counts[layer.name] <= layer.params for layer in net.layers)
    assert quota_counts(net, q) == counts


@settings(max_examples=100)
@given(params=st.lists(st.integers(1, 10**7), min_size=1, max_size=30),
       frac=st.floats(0.0, 1.0))
def test_property_igq_force(params, frac):
    n = np.array(params, dtype=np.float64)
    budget = round(frac * n.sum())
    force = igq_force(n, budget)
    kept = 0.0 if math.isinf(force) else float((n / (1 + force * n)).sum())
    assert abs(kept - budget) < 1e-6 * max(1.0, n.sum()) + 1e-6


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def test_cli_quotas_json(capsys):
    import json

    from sparsegraph.cli import main

    assert main(["quotas", "lenet300", "--density", "0.3", "--scheme", "erk,igq,uniform+",
                 "--dense", "fc3.weight", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dense"] == ["fc3.weight"] and data["dense_in_budget"] is True
    assert data["totals"]["erk"]["kept"] == round(0.3 * 266200)
    assert "uniform+" in data["errors"] and "infeasible" in data["errors"]["uniform+"]
    fc3 = data["layers"][-1]
    assert fc3["dense"] and fc3["density"]["igq"] == 1.0 and fc3["kept"]["erk"] == 1000
    assert main(["quotas", "lenet300", "--density", "0.3", "--dense", "fc3.weight",
                 "--dense-outside-budget", "--scheme", "uniform", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["uniform"]["kept"] == round(0.3 * 265200) + 1000
    assert main(["quotas", "resnet20", "--density", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "layer3.2.conv2.weight" in out and "igq" in out


def test_cli_quotas_errors(capsys):
    from sparsegraph.cli import main

    assert main(["quotas", "lenet300", "--density", "1.5"]) == 2
    assert "--density" in capsys.readouterr().err
    assert main(["quotas", "lenet300", "--density", "0.1", "--scheme", "erkk"]) == 2
    assert "did you mean 'erk'" in capsys.readouterr().err
    assert main(["quotas", "lenet300", "--density", "0.1", "--scheme", "uniform+"]) == 2
    assert "infeasible" in capsys.readouterr().err
    assert main(["quotas", "lenet300", "--density", "0.1", "--dense", "fc9*"]) == 2
    assert "matches no prunable layer" in capsys.readouterr().err
