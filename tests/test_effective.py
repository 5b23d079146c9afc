"""Exact effective sparsity (sparsegraph.metrics.effective) against independent oracles.

- ``reference.autograd_effective``: float64 SynFlow-style autograd on the real nn.Module (does
  not use the tracer); every built-in architecture, hypothesis-generated modules, hand-made cases.
- ``reference.bruteforce_effective``: dense numpy propagation over a Network, for hand-built
  and hypothesis-generated Networks (wide maps that span several bitmap words, random pooling
  windows, reshapes), checking the per-node reachability maps too.

ImageNet ResNet-50 is compared at a 64x64 input: at 224x224 one float64 autograd pass takes
several seconds on a 2-core CI machine, and the engine's code paths (strides, bottlenecks,
downsampling, pooling) are the same at 64x64.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nets import gen_networks
from reference import assert_same_masks, autograd_effective, bruteforce_effective
from torch import nn

import sparsegraph as sg
from sparsegraph.errors import MaskError
from sparsegraph.graph.network import Layer, Network, Node
from sparsegraph.metrics.effective import effective_masks, reachability


def _random_masks(net: Network, density: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {layer.name: rng.random(layer.shape) < density for layer in net.layers}


def _assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)  # in network order
    assert_same_masks(got, want, labels=("engine", "oracle"))


# ----------------------------------------------------------------------------- built-in models

_SLOW = {"vgg16", "vgg19", "resnet18", "resnet50", "resnet18_cifar"}
_MODERN = {"vit_tiny", "mobilenet_v3_small"}  # attention, squeeze-excitation


@functools.cache
def _model(name: str):
    if name == "resnet50":  # 64x64 instead of 224x224 (module docstring)
        from sparsegraph.pytorch.models import resolve_model

        model, x = resolve_model(name, input_shape=(1, 3, 64, 64))
    else:
        model, x = sg.build_model(name)
    return model, x, sg.trace(model, x)


def _model_params():
    from sparsegraph.pytorch.models import MODELS

    for name in MODELS:
        if name in _MODERN:  # gates and attention: compared with DESIGN §3's oracle instead
            continue  # (tests/test_modern.py), the SynFlow oracle here has no such rules
        for density in (0.1, 0.01, 0.003):
            marks = [pytest.mark.slow] if name in _SLOW else []
            yield pytest.param(name, density, marks=marks, id=f"{name}-{density}")


@pytest.mark.parametrize(("name", "density"), list(_model_params()))
def test_builtin_models_match_autograd(name, density):
    model, x, net = _model(name)
    masks = _random_masks(net, density, seed=int(density * 1e4))
    got = effective_masks(net, masks)
    _assert_same(got, autograd_effective(model, masks, x))
    for layer in net.layers:
        assert not (got[layer.name] & ~masks[layer.name]).any()


# ----------------------------------------------------------------------------- generated modules


class _GenNet(nn.Module):
    """A small network assembled from a plan of blocks; forward follows the plan."""

    def __init__(self, plan, mods, head):
        super().__init__()
        self.plan = plan
        self.blocks = nn.ModuleList(mods)
        self.head_kind = head[0]
        self.head = nn.ModuleList(head[1])

    def forward(self, x):
        for kind, idx in self.plan:
            b = self.blocks
            if kind == "conv":
                x = torch.relu(b[idx[0]](x))
            elif kind == "convbn":
                x = b[idx[2]](b[idx[1]](b[idx[0]](x)))
            elif kind == "res":
                x = x + b[idx[0]](x)
            elif kind == "proj":
                x = b[idx[0]](x) + b[idx[1]](x)
            elif kind == "cat":
                x = torch.cat([b[idx[0]](x), b[idx[1]](x)], 1)
            elif kind == "pool":
                x = b[idx[0]](x)
        if self.head_kind == "flatten":
            x = torch.flatten(x, 1)
            for m in self.head:
                x = m(x)
        elif self.head_kind == "mean":
            x = x.mean((2, 3))
            for m in self.head:
                x = m(x)
        return x


def _out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def _conv(draw, c, h, w, *, cout=None, same_size=False):
    """A Conv2d on (c, h, w) with a valid output; returns (module, (cout, h', w'))."""
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    if same_size:
        s, pad = (1, 1), "same"
    else:
        s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        if s == (1, 1) and draw(st.booleans()):
            pad = "same"
        else:
            pad = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
            # make sure the output is not empty
            pad = (max(pad[0], -(-(dh * (kh - 1) + 1 - h) // 2)),
                   max(pad[1], -(-(dw * (kw - 1) + 1 - w) // 2)))
    fixed = cout is not None
    if cout is None:
        cout = draw(st.integers(1, 4))
    groups = draw(st.sampled_from([g for g in (1, 2, 3, c) if c % g == 0 and cout % g == 0]))
    if not fixed and draw(st.integers(0, 4)) == 0:  # depthwise
        groups, cout = c, c * draw(st.integers(1, 2))
    conv = nn.Conv2d(c, cout, (kh, kw), stride=s, padding=pad, dilation=(dh, dw), groups=groups,
                     bias=draw(st.booleans()))
    if pad == "same":
        return conv, (cout, h, w)
    return conv, (cout, _out(h, kh, s[0], pad[0], dh), _out(w, kw, s[1], pad[1], dw))


@st.composite
def _pool(draw, c, h, w):
    kind = draw(st.sampled_from(["max", "avg", "adaptive_avg", "adaptive_max"]))
    if kind.startswith("adaptive"):
        oh, ow = draw(st.integers(1, h)), draw(st.integers(1, w))
        cls = nn.AdaptiveAvgPool2d if kind == "adaptive_avg" else nn.AdaptiveMaxPool2d
        return cls((oh, ow)), (c, oh, ow)
    k = (draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w))))
    s = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    if kind == "max":
        d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        if d[0] * (k[0] - 1) + 1 > h + 2 * p[0] or d[1] * (k[1] - 1) + 1 > w + 2 * p[1]:
            d = (1, 1)
        mod = nn.MaxPool2d(k, s, p, dilation=d)
        return mod, (c, _out(h, k[0], s[0], p[0], d[0]), _out(w, k[1], s[1], p[1], d[1]))
    mod = nn.AvgPool2d(k, s, p, count_include_pad=draw(st.booleans()))
    return mod, (c, _out(h, k[0], s[0], p[0], 1), _out(w, k[1], s[1], p[1], 1))


@st.composite
def gen_modules(draw):
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 8)), draw(st.integers(1, 8))
    x = torch.zeros(1, c, h, w)
    mods, plan = [], []

    def add(*ms):
        mods.extend(ms)
        return tuple(range(len(mods) - len(ms), len(mods)))

    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "convbn", "res", "proj", "cat", "pool"]))
        if kind in ("conv", "convbn"):
            conv, shape = draw(_conv(c, h, w))
            extra = (nn.BatchNorm2d(shape[0]), nn.ReLU()) if kind == "convbn" else ()
            plan.append((kind, add(conv, *extra)))
        elif kind == "res":
            conv, shape = draw(_conv(c, h, w, cout=c, same_size=True))
            plan.append((kind, add(conv)))
        elif kind in ("proj", "cat"):
            a, shape = draw(_conv(c, h, w))
            cout2 = shape[0] if kind == "proj" else draw(st.integers(1, 3))
            b = nn.Conv2d(c, cout2, a.kernel_size, a.stride, a.padding, a.dilation, bias=False)
            plan.append((kind, add(a, b)))
            if kind == "cat":
                shape = (shape[0] + cout2, shape[1], shape[2])
        else:
            pool, shape = draw(_pool(c, h, w))
            plan.append((kind, add(pool)))
        c, h, w = shape
    head_kind = draw(st.sampled_from(["flatten", "mean", "none"]))
    if head_kind == "none" and all(kind == "pool" for kind, _ in plan):
        head_kind = "flatten"  # at least one prunable layer
    head = []
    if head_kind != "none":
        feats = c * h * w if head_kind == "flatten" else c
        hidden = draw(st.integers(1, 5))
        head = [nn.Linear(feats, hidden)]
        if draw(st.booleans()):
            head += [nn.ReLU(), nn.Linear(hidden, draw(st.integers(1, 3)))]
    torch.manual_seed(0)
    return _GenNet(plan, mods, (head_kind, head)).eval(), x


@settings(max_examples=220, deadline=None)
@given(gen_modules(), st.floats(0.05, 1.0), st.integers(0, 2**31 - 1), st.booleans())
def test_generated_modules_match_autograd(gen, density, seed, leave_one_dense):
    model, x = gen
    net = sg.trace(model, x)
    masks = _random_masks(net, density, seed)
    if leave_one_dense and len(masks) > 1:
        masks.pop(net.names[seed % len(net.names)])
    got = effective_masks(net, masks)
    _assert_same(got, autograd_effective(model, masks, x))
    # the tracer-independent Network reference agrees too
    _assert_same(got, bruteforce_effective(net, masks)[0])
    # effective is a subset of kept, and the effective mask is its own effective mask
    full = sg.check_masks(net, masks)
    for name in got:
        assert not (got[name] & ~full[name]).any()
    _assert_same(effective_masks(net, got), got)


# ----------------------------------------------------------------------------- generated Networks


@settings(max_examples=250, deadline=None)
@given(gen_networks(), st.floats(0.02, 1.0), st.integers(0, 2**31 - 1))
def test_generated_networks_match_bruteforce(net, density, seed):
    masks = _random_masks(net, density, seed)
    want, fwd, bwd = bruteforce_effective(net, masks)
    r = reachability(net, masks)
    _assert_same(r.effective, want)
    for n, node in enumerate(net.nodes):
        assert r.forward[n].shape == node.shape
        np.testing.assert_array_equal(r.forward[n], fwd[n], err_msg=f"forward of node {n}")
        np.testing.assert_array_equal(r.backward[n], bwd[n], err_msg=f"backward of node {n}")
        assert not (r.forward[n] & ~r.nonzero[n]).any(), "reached implies nonzero"
    _assert_same(effective_masks(net, r.effective), r.effective)


# ----------------------------------------------------------------------------- hand-made cases


def _mlp(bias: bool) -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2, bias=bias), nn.ReLU(), nn.Linear(2, 1))


def test_unit_with_bias_but_no_input_path_makes_outgoing_weights_inactive():
    model = _mlp(bias=True)
    x = torch.zeros(1, 3)
    net = sg.trace(model, x)
    # hidden unit 1 has a bias but no kept incoming weight: biases are not sources of signal
    masks = {"0.weight": np.array([[1, 1, 0], [0, 0, 0]], bool), "2.weight": np.ones((1, 2), bool)}
    got = effective_masks(net, masks)
    assert got["2.weight"].tolist() == [[True, False]]
    assert got["0.weight"].tolist() == [[True, True, False], [False, False, False]]
    _assert_same(got, autograd_effective(model, masks, x))


def test_dead_end_makes_incoming_weights_inactive():
    model = _mlp(bias=False)
    x = torch.zeros(1, 3)
    net = sg.trace(model, x)
    # hidden unit 0 has incoming weights but no outgoing one
    masks = {"0.weight": np.array([[1, 1, 1], [0, 1, 0]], bool),
             "2.weight": np.array([[0, 1]], bool)}
    got = effective_masks(net, masks)
    assert got["0.weight"].tolist() == [[False, False, False], [False, True, False]]
    assert got["2.weight"].tolist() == [[False, True]]
    _assert_same(got, autograd_effective(model, masks, x))


class _TwoByTwo(nn.Module):
    """conv0 leaves only pixel (0, 0) of a 2x2 map forward-alive; the head reads only pixel
    (0, 0) of conv's output; conv is a dense 3x3 padding-1 kernel on the 2x2 map."""

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 1, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(self.conv0(x)), 1))


def test_small_map_corner_taps_inactive_centre_active():
    model, x = _TwoByTwo(), torch.zeros(1, 1, 2, 2)
    net = sg.trace(model, x)
    conv0 = np.zeros((1, 1, 3, 3), bool)
    conv0[0, 0, 2, 2] = True  # output (y, x) reads input (y + 1, x + 1): only (0, 0) is valid
    masks = {"conv0.weight": conv0, "conv.weight": np.ones((1, 1, 3, 3), bool),
             "fc.weight": np.array([[1, 0, 0, 0]], bool)}  # flat feature 0 = pixel (0, 0)
    got = effective_masks(net, masks)
    taps = got["conv.weight"][0, 0]
    expected = np.zeros((3, 3), bool)
    expected[1, 1] = True
    for ky in range(3):
        for kx in range(3):
            assert taps[ky, kx] == expected[ky, kx], (ky, kx)
    assert got["conv0.weight"][0, 0, 2, 2] and got["fc.weight"][0, 0]
    _assert_same(got, autograd_effective(model, masks, x))
    _assert_same(got, bruteforce_effective(net, masks)[0])
    # with the whole map alive on both sides every tap is active
    masks["conv0.weight"] = np.ones((1, 1, 3, 3), bool)
    masks["fc.weight"] = np.ones((1, 4), bool)
    assert effective_masks(net, masks)["conv.weight"].all()


def test_all_zero_layer_makes_everything_inactive():
    for name in ("lenet5", "vgg11"):  # plain chains: no path can bypass a layer
        model, x, net = _model(name)
        masks = _random_masks(net, 0.5, seed=1)
        masks[net.names[len(net.names) // 2]][:] = False
        got = effective_masks(net, masks)
        assert not any(v.any() for v in got.values()), name


def test_dense_masks_are_fully_effective_on_a_vgg():
    model, x, net = _model("vgg11")
    got = effective_masks(net, {})
    assert all(v.all() for v in got.values())


def test_layer_not_on_the_wiring_has_no_effective_weight():
    net = Network(
        layers=(Layer("a.weight", "a", "linear", (2, 3), 3, 2),
                Layer("b.weight", "b", "linear", (2, 2), 2, 2)),
        nodes=(Node(0, "input", (), (3,)),
               Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
        outputs=(1,),
    )
    got = effective_masks(net, {})
    assert got["a.weight"].all() and not got["b.weight"].any()


def test_accepts_torch_tensors_and_returns_new_arrays():
    model, x = _mlp(bias=False), torch.zeros(1, 3)
    net = sg.trace(model, x)
    masks = {"0.weight": torch.ones(2, 3), "2.weight": torch.tensor([[1.0, 0.0]])}
    got = effective_masks(net, masks)
    assert got["0.weight"].tolist() == [[True] * 3, [False] * 3]
    arr = np.ones((2, 3), bool)
    out = effective_masks(net, {"0.weight": arr})["0.weight"]
    assert out is not arr and not np.shares_memory(out, arr)


def test_misaligned_mask_buffers():
    model, x, net = _model("lenet5")
    masks = _random_masks(net, 0.3, seed=3)
    shifted = {}
    for name, m in masks.items():
        buf = np.zeros(m.size + 1, bool)
        view = buf[1:].reshape(m.shape)
        view[...] = m
        shifted[name] = view
    _assert_same(effective_masks(net, shifted), effective_masks(net, masks))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        ({"0.wieght": np.ones((2, 3))}, "unknown layer"),
        ({"0.weight": np.ones((3, 2))}, "expected shape"),
        ({"0.weight": np.full((2, 3), 2)}, "only 0 and 1"),
        ({"0.weight": np.full((2, 3), np.nan)}, "NaN"),
        ({"0.weight": np.array([["a"] * 3] * 2)}, "0/1"),
    ],
)
def test_bad_masks_raise_mask_error(masks, match):
    model, x = _mlp(bias=False), torch.zeros(1, 3)
    net = sg.trace(model, x)
    with pytest.raises(MaskError, match=match):
        effective_masks(net, masks)
    with pytest.raises(MaskError, match=match):
        reachability(net, masks)


def test_not_a_mapping_raises_mask_error():
    model, x = _mlp(bias=False), torch.zeros(1, 3)
    net = sg.trace(model, x)
    with pytest.raises(MaskError):
        effective_masks(net, [np.ones((2, 3))])


def test_inconsistent_hand_built_network_raises_network_error():
    with pytest.raises(sg.NetworkError, match="node 1 .*linear map of the last axis of \\[4\\]"):
        Network(
            layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
            nodes=(Node(0, "input", (), (4,)),
                   Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
            outputs=(1,),
        )
