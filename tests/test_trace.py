"""Tracing real nn.Modules into the layered bipartite graph (the eager op-level recorder)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sparsegraph as sg
from sparsegraph.errors import TraceError


def windows(node, axis):
    ptr, idx = node.params["windows"][axis]
    return [list(idx[ptr[i]:ptr[i + 1]]) for i in range(len(ptr) - 1)]


def kinds(net):
    return [n.kind for n in net.nodes]


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.b = nn.Conv2d(4, 4, 3, padding="same", dilation=2)
        self.c = nn.Conv2d(8, 6, 1, groups=2)
        self.head = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        y = F.relu(self.bn(self.a(x)))
        y = self.b(y) + x
        z = torch.cat([y, x], dim=1)
        z = self.c(z) * 0.5
        z = F.max_pool2d(z, 2)
        return self.head(z.view(z.size(0), -1))


def test_geometry_of_layers_and_wiring():
    net = sg.trace(Residual(), torch.zeros(2, 4, 4, 4))
    assert net.names == ["a.weight", "b.weight", "c.weight", "head.weight"]
    b_use = net.nodes[net.uses("b.weight")[0]]
    assert (b_use.params["padding"], b_use.params["dilation"], b_use.params["stride"]) == (
        (2, 2), (2, 2), (1, 1))
    c = net.layer("c.weight")
    assert (c.groups, c.shape, c.in_channels, c.out_channels, c.kernel) == (
        2, (6, 4, 1, 1), 8, 6, (1, 1))
    assert kinds(net) == ["input", "layer", "layer", "add", "cat", "layer", "index", "reshape",
                          "layer"]
    add, cat = net.nodes[3], net.nodes[4]
    assert add.inputs == (2, 0) and cat.inputs == (3, 0) and cat.shape == (8, 4, 4)
    pool = net.nodes[6]
    assert windows(pool, 1) == [[0, 1], [2, 3]] and windows(pool, 2) == [[0, 1], [2, 3]]
    assert net.nodes[7].shape == (24,)
    assert net.outputs == (8,)
    assert net.layer("head.weight").kind == "linear"
    assert net.nodes[1].module == "a"


@pytest.mark.parametrize(
    "pool, size, rows",
    [
        (nn.MaxPool2d(3, stride=2, padding=1), 5, [[0, 1], [1, 2, 3], [3, 4]]),
        (nn.AvgPool2d(2), 5, [[0, 1], [2, 3]]),  # the last row is read by no window
        (nn.MaxPool2d(2, ceil_mode=True), 5, [[0, 1], [2, 3], [4]]),
        (nn.MaxPool2d(2, stride=1, dilation=2), 5, [[0, 2], [1, 3], [2, 4]]),
        (nn.AdaptiveAvgPool2d(2), 5, [[0, 1, 2], [2, 3, 4]]),
        (nn.AdaptiveMaxPool2d(1), 3, [[0, 1, 2]]),
    ],
)
def test_pool_windows(pool, size, rows):
    model = nn.Sequential(nn.Conv2d(1, 2, 1), pool, nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 1, size, size))
    net = sg.trace(model, torch.zeros(1, 1, size, size))
    node = next(n for n in net.nodes if n.kind == "index")
    assert windows(node, 1) == rows and windows(node, 2) == rows


def test_spatial_mean_is_a_reduction():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 5, 3)
            self.fc = nn.Linear(5, 2)

        def forward(self, x):
            return self.fc(self.conv(x).mean(dim=(2, 3)))

    net = sg.trace(M(), torch.zeros(1, 3, 6, 6))
    pool = next(n for n in net.nodes if n.kind == "index")
    assert pool.shape == (5, 1, 1)
    assert windows(pool, 1) == [[0, 1, 2, 3]] and windows(pool, 2) == [[0, 1, 2, 3]]
    assert kinds(net) == ["input", "layer", "index", "reshape", "layer"]


def test_identity_ops_leave_no_node():
    model = nn.Sequential(
        nn.Linear(4, 4), nn.BatchNorm1d(4), nn.GELU(), nn.Dropout(0.5), nn.Identity(),
        nn.Sequential(), nn.LayerNorm(4), nn.Linear(4, 2), nn.Softmax(dim=1),
    )
    net = sg.trace(model, torch.zeros(3, 4))
    assert kinds(net) == ["input", "layer", "layer", "softmax"]
    assert model.training  # restored after the eval-mode run


def test_strided_conv_and_multiple_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(1, 2, 3, stride=2, padding=1)
            self.b = nn.Conv2d(1, 2, 3, stride=2, padding=1)

        def forward(self, x, y):
            return self.a(x) + self.b(y)

    net = sg.trace(Two(), (torch.zeros(1, 1, 7, 7), torch.zeros(1, 1, 7, 7)))
    assert kinds(net) == ["input", "input", "layer", "layer", "add"]
    assert net.nodes[2].shape == (2, 4, 4)
    assert net.input_shapes == ((1, 1, 7, 7), (1, 1, 7, 7))
    with pytest.raises(TraceError, match="does not take these example inputs"):
        sg.trace(nn.Linear(3, 2), (torch.zeros(1, 3), torch.zeros(1, 3)))


def test_swish_is_a_gated_product_or_an_identity_module():
    class Swish2(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    model = nn.Sequential(nn.Linear(3, 3), Swish2(), nn.Linear(3, 1))
    net = sg.trace(model, torch.zeros(1, 3))
    assert kinds(net) == ["input", "layer", "gate", "mul", "layer"]
    net = sg.trace(model, torch.zeros(1, 3), identity_modules=(Swish2,))
    assert kinds(net) == ["input", "layer", "layer"]


class Ops(nn.Module):
    """Constructs the fx tracer refused, now read as index maps and products."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect" if kind == "reflect"
                              else "zeros")
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "slice":
            y = y[:, :1, 1:, ::2]
        elif self.kind == "cat2":
            y = torch.cat([y, y], dim=2)
        elif self.kind == "linear3d":
            return self.fc(y.flatten(2).transpose(1, 2)[:, 1:, :])
        elif self.kind == "share":
            y = self.conv(y)
        elif self.kind == "pad":
            y = F.pad(y, (1, 1, 1, 1))
        elif self.kind == "roll":
            y = torch.roll(y, (1, -1), (2, 3))
        elif self.kind == "upsample":
            y = F.interpolate(y, scale_factor=2, mode="bilinear")
        return y.flatten(1)


@pytest.mark.parametrize("kind", ["slice", "cat2", "linear3d", "share", "pad", "roll",
                                  "upsample", "reflect"])
def test_layout_ops_trace_and_agree_with_bruteforce(kind):
    from reference import bruteforce_effective

    model, x = Ops(kind), torch.zeros(1, 2, 4, 4)
    net = sg.trace(model, x)
    expected = (torch.no_grad()(model.eval())(x)).shape[1:]
    assert net.nodes[net.outputs[0]].shape == tuple(expected)
    rng = np.random.default_rng(0)
    masks = {layer.name: rng.random(layer.shape) < 0.5 for layer in net.layers}
    got = sg.effective_masks(net, masks)
    want = bruteforce_effective(net, masks)[0]
    for name in got:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    if kind == "share":  # one parameter, two uses
        assert net.names == ["conv.weight"] and len(net.uses("conv.weight")) == 2


class Unsupported(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.rnn = nn.GRU(16, 2)

    def forward(self, x):
        y = self.conv(x)
        if self.kind == "gru":
            return self.rnn(y.flatten(2))[0]
        if self.kind == "flow":
            return y if y.sum() > 0 else -y
        if self.kind == "item":
            return y * y.max().item()
        if self.kind == "batch":
            return y.flatten(1).t().reshape(-1)
        if self.kind == "dynamic":
            return F.linear(y.flatten(1), y.flatten(1))
        return y


@pytest.mark.parametrize(
    "kind, message, batch",
    [
        ("gru", "recurrent layers", 1),
        ("flow", "reads the values of an activation", 1),
        ("item", "reads the values of an activation", 1),
        ("batch", "mixing the batch", 2),
        ("dynamic", "weight is computed from the input", 1),
    ],
)
def test_unsupported_constructs_name_the_op_and_module(kind, message, batch):
    with pytest.raises(TraceError, match=message) as info:
        sg.trace(Unsupported(kind), torch.zeros(batch, 2, 4, 4))
    assert "\n" not in str(info.value)
    assert kind == "batch" or "module" in str(info.value) or "op" in str(info.value)


def test_bad_arguments():
    with pytest.raises(TraceError, match="must be a torch.nn.Module"):
        sg.trace("resnet20", torch.zeros(1))
    with pytest.raises(TraceError, match="example input of shape"):
        sg.trace(nn.Linear(3, 2), torch.zeros(1, 4))
    with pytest.raises(TraceError, match="does not depend on its input"):
        sg.trace(_Const(), torch.zeros(1, 3))
    with pytest.raises(TraceError, match="holds no tensor"):
        sg.trace(nn.Linear(3, 2), [])


class _Const(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("c", torch.ones(1, 3))

    def forward(self, x):
        return self.fc(self.c)


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(20, 8)
        self.pos = nn.Embedding(6, 8)
        self.fc = nn.Linear(8, 8)
        self.unused = nn.Linear(8, 8)
        self.head = nn.Linear(8, 20, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, ids):
        x = self.wte(ids) + self.pos(torch.arange(ids.shape[1]))
        return self.head(F.gelu(self.fc(x)))


def test_tied_embedding_and_head_is_one_layer_with_two_uses():
    net = sg.trace(TiedLM(), torch.randint(0, 20, (1, 6)))
    assert net.names == ["wte.weight", "fc.weight"]
    assert len(net.uses("wte.weight")) == 2
    skipped = dict(net.skipped)
    assert "constant indices" in skipped["pos.weight"]
    assert "never used" in skipped["unused.weight"]
    masks = {"wte.weight": np.zeros((20, 8), bool), "fc.weight": np.ones((8, 8), bool)}
    masks["wte.weight"][3] = True
    eff = sg.effective_masks(net, masks)
    assert eff["wte.weight"][3].all() and eff["wte.weight"].sum() == 8  # both uses see one mask


def test_embeddings_are_inputs_unless_asked_for():
    class Emb(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.fc = nn.Linear(4, 2)

        def forward(self, ids):
            return self.fc(self.emb(ids))

    ids = torch.randint(0, 10, (1, 5))
    net = sg.trace(Emb(), ids)
    assert net.names == ["fc.weight"] and kinds(net) == ["input", "layer"]
    assert "embeddings=True" in dict(net.skipped)["emb.weight"]
    net = sg.trace(Emb(), ids, embeddings=True)
    assert net.names == ["emb.weight", "fc.weight"] and net.layer("emb.weight").kind == (
        "embedding")


def test_norm_modules_hide_their_weights_and_report_them():
    class WithNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.norm = nn.GroupNorm(2, 4)

        def forward(self, x):
            return self.norm(self.fc(x))

    net = sg.trace(WithNorm(), torch.zeros(2, 4))
    assert kinds(net) == ["input", "layer"]


def test_attention_kinds():
    q = nn.Linear(8, 8)

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v = q, nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(self, x):
            b, t, d = x.shape
            split = [f(x).view(b, t, 2, 4).transpose(1, 2) for f in (self.q, self.k, self.v)]
            return F.scaled_dot_product_attention(*split, is_causal=True)

    net = sg.trace(Attn(), torch.zeros(1, 5, 8))
    soft = next(n for n in net.nodes if n.kind == "softmax")
    masked = np.broadcast_to(soft.params["masked"], soft.shape)
    assert soft.shape == (2, 5, 5) and masked[0].tolist() == np.triu(
        np.ones((5, 5), bool), 1).tolist()
    assert sum(n.kind == "matmul" for n in net.nodes) == 2


def test_multihead_attention_reads_the_packed_projection():
    mha = nn.MultiheadAttention(8, 2, batch_first=True)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    net = sg.trace(M(), torch.zeros(1, 4, 8))
    assert net.names == ["mha.in_proj_weight", "mha.out_proj.weight"]
    views = [net.nodes[u].params["view"] for u in net.uses("mha.in_proj_weight")]
    assert views == [("rows", 0, 8), ("rows", 8, 16), ("rows", 16, 24)]


@pytest.mark.parametrize("name", sorted(sg.MODELS))
def test_builtin_models_trace(name):
    model, x = sg.build_model(name)
    net = sg.trace(model, x)
    conv_linear = [f"{n}.weight" for n, m in model.named_modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(net.names) == sorted(conv_linear)
    assert net.params == sum(model.get_parameter(n).numel() for n in conv_linear)
    assert len(net.outputs) == 1
    for node in net.nodes:
        assert all(i < node.id for i in node.inputs)
    fp = net.fingerprint()
    assert fp == sg.trace(*sg.build_model(name)).fingerprint() and len(fp) == 16


def test_check_masks_errors():
    net = sg.trace(nn.Sequential(nn.Linear(3, 2)), torch.zeros(1, 3))
    from sparsegraph._args import check_masks

    with pytest.raises(sg.MaskError, match=r"expected shape \[2, 3\], got \[3, 2\]"):
        check_masks(net, {"0.weight": np.ones((3, 2))})
    with pytest.raises(sg.MaskError, match="NaN"):
        check_masks(net, {"0.weight": np.full((2, 3), np.nan)})
    with pytest.raises(sg.MaskError, match="found 0.5"):
        check_masks(net, {"0.weight": np.full((2, 3), 0.5)})
    with pytest.raises(sg.MaskError, match="did you mean '0.weight'"):
        check_masks(net, {"0.weigth": np.ones((2, 3))})
    out = check_masks(net, {"0.weight": torch.tensor([[1, 0, 1], [0, 1, 1]])})
    assert out["0.weight"].dtype == np.bool_ and out["0.weight"].sum() == 4
    assert check_masks(net, {})["0.weight"].all()
