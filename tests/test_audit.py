"""The audit report: totals, JSON shape, dead units, collapse, rendering."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sparsegraph as sg
from sparsegraph.graph.network import Layer
from sparsegraph.metrics.audit import dead_units

DESIGN_NETWORK_KEYS = {
    "params", "kept", "effective", "direct_density", "effective_density",
    "direct_compression", "effective_compression", "collapsed",
}
DESIGN_LAYER_KEYS = {
    "name", "shape", "params", "kept", "effective", "direct_density", "effective_density",
    "in_units", "out_units", "dead_in_units", "dead_out_units",
}


@pytest.fixture
def mlp():
    return sg.trace(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), torch.zeros(1, 4))


def test_hand_counted_mlp(mlp):
    # unit 0 of the hidden layer has inputs but no outgoing weight: a dead end;
    # unit 2 has an outgoing weight but no input: only its bias would feed it.
    first = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    second = np.array([[0, 1, 1], [0, 0, 1]])
    rep = sg.audit(mlp, {"0.weight": first, "2.weight": second})
    a, b = rep.layers
    assert (a.kept, a.effective, b.kept, b.effective) == (3, 1, 3, 1)
    assert (a.dead_in_units, a.dead_out_units) == (3, 2)
    assert (b.dead_in_units, b.dead_out_units) == (2, 1)
    n = rep.network
    assert (n.params, n.kept, n.effective, n.collapsed) == (18, 6, 2, False)
    assert n.direct_compression == 3.0 and n.effective_compression == 9.0
    assert math.isclose(n.effective_density, 2 / 18)


def test_json_matches_design_and_reports_dense_layers(mlp):
    rep = sg.audit(mlp, {"0.weight": np.ones((3, 4))})
    data = json.loads(json.dumps(rep.to_dict(), allow_nan=False))
    assert set(data["network"]) == DESIGN_NETWORK_KEYS
    assert all(set(layer) == DESIGN_LAYER_KEYS for layer in data["layers"])
    assert data["layers"][0]["shape"] == [3, 4]
    assert data["dense_layers"] == ["2.weight"]
    assert data["network"]["direct_compression"] == 1.0
    assert "taken as dense" in str(rep)


def test_collapse_is_loud_and_infinite(mlp):
    rep = sg.audit(mlp, {"0.weight": np.zeros((3, 4)), "2.weight": np.ones((2, 3))})
    assert rep.network.collapsed and rep.network.effective == 0
    assert rep.to_dict()["network"]["effective_compression"] == "inf"
    assert "LAYER COLLAPSE" in str(rep)
    empty = sg.audit(mlp, {"0.weight": np.zeros((3, 4)), "2.weight": np.zeros((2, 3))})
    assert empty.to_dict()["network"]["direct_compression"] == "inf"


def test_effective_of_effective_is_itself(mlp):
    rng = np.random.default_rng(0)
    masks = {name: rng.random(mlp.layer(name).shape) < 0.4 for name in mlp.names}
    eff = sg.effective_masks(mlp, masks)
    rep = sg.audit(mlp, eff)
    assert rep.network.kept == rep.network.effective == sg.audit(mlp, masks).network.effective


def test_bad_masks_raise_mask_error(mlp):
    with pytest.raises(sg.MaskError, match="did you mean '2.weight'"):
        sg.audit(mlp, {"2.wieght": np.ones((2, 3))})
    with pytest.raises(sg.MaskError, match="expected shape"):
        sg.audit(mlp, {"2.weight": np.ones((3, 2))})


@settings(max_examples=60)
@given(
    groups=st.sampled_from([1, 2, 4]),
    per_group_in=st.integers(1, 3),
    per_group_out=st.integers(1, 3),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_dead_units_against_brute_force(groups, per_group_in, per_group_out, k, seed):
    cin, cout = groups * per_group_in, groups * per_group_out
    layer = Layer("w", "m", "conv", (cout, per_group_in, k, k), cin, cout, groups)
    eff = np.random.default_rng(seed).random(layer.shape) < 0.2
    alive_in, alive_out = set(), set()
    for o, i, _ky, _kx in zip(*np.nonzero(eff), strict=True):
        alive_out.add(o)
        alive_in.add(o // per_group_out * per_group_in + i)
    assert dead_units(layer, eff) == (cin - len(alive_in), cout - len(alive_out))


@settings(max_examples=60)
@given(
    layout=st.sampled_from(["conv_transpose", "conv1d_hf", "embedding"]),
    groups=st.sampled_from([1, 2]),
    per_group_in=st.integers(1, 3),
    per_group_out=st.integers(1, 3),
    k=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_dead_units_of_input_major_weights(layout, groups, per_group_in, per_group_out, k,
                                           seed):
    """Weights stored input-major (a transposed convolution's ``(in, out // g, *k)``, HF's
    ``Conv1D`` ``(in, out)``, an embedding's ``(vocabulary, dim)``): unit ``i`` of the input
    side is read from the weight's *first* axis."""
    if layout != "conv_transpose":
        groups, k = 1, 1
    cin, cout = groups * per_group_in, groups * per_group_out
    if layout == "conv_transpose":
        layer = Layer("w", "m", "conv", (cin, per_group_out, k, k), cin, cout, groups,
                      transposed=True)
    elif layout == "conv1d_hf":
        layer = Layer("w", "m", "linear", (cin, cout), cin, cout, transposed=True)
    else:
        layer = Layer("w", "m", "embedding", (cin, cout), cin, cout)
    eff = np.random.default_rng(seed).random(layer.shape) < 0.3
    alive_in, alive_out = set(), set()
    for i, j, *_ in zip(*np.nonzero(eff), strict=True):
        alive_in.add(i)
        alive_out.add(i // per_group_in * per_group_out + j)  # j: output within i's group
    assert dead_units(layer, eff) == (cin - len(alive_in), cout - len(alive_out))


def test_dead_units_of_a_zero_size_layer():
    layer = Layer("w", "m", "linear", (0, 3), 3, 0)
    assert dead_units(layer, np.zeros((0, 3), bool)) == (3, 0)
