"""Hand-built networks shared by several test modules, and small constructors for them."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from sparsegraph.graph.kinds.layout import index_params
from sparsegraph.graph.network import Layer, Network, Node


def win(n_in: int, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR windows of a valid pooling of size ``k`` and stride ``s``."""
    starts = list(range(0, n_in - k + 1, s))
    idx = [i for a in starts for i in range(a, a + k)]
    return np.arange(0, k * len(starts) + 1, k, dtype=np.int64), np.array(idx, dtype=np.int64)


def conv(n: int, src: int, shape: tuple[int, ...], layer: int, *, stride=(1, 1), padding=(0, 0),
         dilation=(1, 1), groups: int = 1, **kw) -> Node:
    """A 2-d convolution use."""
    return Node(n, "layer", (src,), shape, layer=layer, params={
        "op": "conv", "stride": tuple(stride), "padding": tuple(padding),
        "dilation": tuple(dilation), "groups": groups}, **kw)


def linear(n: int, src: int, shape: tuple[int, ...], layer: int, **kw) -> Node:
    """A linear use (last axis)."""
    return Node(n, "layer", (src,), shape, layer=layer, params={"op": "linear"}, **kw)


def pool(n: int, src: int, shape: tuple[int, ...], wh, ww, **kw) -> Node:
    """Any-in-the-window pooling of a (C, H, W) tensor."""
    return Node(n, "index", (src,), shape, params=index_params(3, windows={1: wh, 2: ww}), **kw)


def tiny_net() -> Network:
    """input -> conv A -> pool -> (depthwise conv B stride 2) + pool -> conv C (1x1) ->
    cat(add, C) -> flatten -> linear D."""
    la = Layer("a.weight", "a", "conv", (3, 2, 3, 3), 2, 3)
    lb = Layer("b.weight", "b", "conv", (3, 1, 3, 3), 3, 3, groups=3)
    lc = Layer("c.weight", "c", "conv", (2, 3, 1, 1), 3, 2)
    ld = Layer("d.weight", "d", "linear", (3, 20), 20, 3)
    nodes = (
        Node(0, "input", (), (2, 4, 4), name="x"),
        conv(1, 0, (3, 4, 4), 0, padding=(1, 1)),
        pool(2, 1, (3, 2, 2), win(4, 2, 2), win(4, 2, 2), name="pool"),
        conv(3, 1, (3, 2, 2), 1, stride=(2, 2), padding=(1, 1), groups=3),
        Node(4, "add", (3, 2), (3, 2, 2), name="add"),
        conv(5, 4, (2, 2, 2), 2),
        Node(6, "cat", (4, 5), (5, 2, 2), name="cat", params={"axis": 0}),
        Node(7, "reshape", (6,), (20,), name="flatten"),
        linear(8, 7, (3,), 3),
    )
    return Network(layers=(la, lb, lc, ld), nodes=nodes, outputs=(8,))


# ------------------------------------------------------------------ generated Networks


def _windows(rng, n_in, n_out):
    ptr, idx = [0], []
    for _ in range(n_out):
        win = sorted(rng.choice(n_in, size=rng.integers(0, min(n_in, 3) + 1), replace=False))
        idx.extend(win)
        ptr.append(len(idx))
    return np.array(ptr, dtype=np.int64), np.array(idx, dtype=np.int64)


def _conv_out(n, k, s, p, d, transposed):
    if transposed:
        return (n - 1) * s - 2 * p + d * (k - 1) + 1
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@st.composite
def gen_networks(draw, max_numel=160):
    """A random Network (no torch) of every node kind on tensors of rank 1-4: linear maps on the
    last axis (some stored transposed), 1-d/2-d/3-d and transposed convolutions, index maps with
    random permutations and windows (wide maps spanning several bitmap words), reshapes, sums,
    concatenations along any axis, constants, products, gates, constant scales, matrix
    products and masked softmax."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 3)) for _ in range(rank - 1)) + (draw(st.integers(1, 70)),)
    nodes = [Node(0, "input", (), shape)]
    layers = []

    def add_node(kind, inputs, shape, **kw):
        nodes.append(Node(len(nodes), kind, inputs, shape, **kw))

    for _ in range(draw(st.integers(1, 7))):
        src = draw(st.integers(max(0, len(nodes) - 3), len(nodes) - 1))
        shape = nodes[src].shape
        numel = int(np.prod(shape))
        kind = draw(st.sampled_from(["linear", "conv", "conv", "index", "index", "reshape",
                                     "add", "cat", "mul", "gate", "scale", "matmul",
                                     "softmax"]))
        name = f"l{len(layers)}.weight"
        if kind == "linear" and shape:
            o = draw(st.integers(1, 4))
            if numel // shape[-1] * o > max_numel:
                continue
            if draw(st.booleans()):
                layers.append(Layer(name, name[:-7], "linear", (o, shape[-1]), shape[-1], o))
                view = None
            else:  # stored (in, out), HF Conv1D style
                layers.append(Layer(name, name[:-7], "linear", (shape[-1], o), shape[-1], o,
                                    transposed=True))
                view = ("T",)
            add_node("layer", (src,), shape[:-1] + (o,), layer=len(layers) - 1,
                     params={"op": "linear", "view": view})
        elif kind == "conv" and 2 <= len(shape) <= 4:
            c, sp = shape[0], shape[1:]
            n = len(sp)
            transposed = n <= 2 and draw(st.integers(0, 3)) == 0
            k = tuple(draw(st.integers(1, 3)) for _ in range(n))
            st_ = tuple(draw(st.integers(1, 2)) for _ in range(n))
            d = tuple(draw(st.integers(1, 2)) for _ in range(n))
            pd = tuple(draw(st.integers(0, 2)) for _ in range(n))
            out = tuple(_conv_out(sp[a], k[a], st_[a], pd[a], d[a], transposed) for a in range(n))
            g = draw(st.sampled_from([v for v in (1, 2, 3) if c % v == 0]))
            co = g * draw(st.integers(1, 2))
            if min(out) < 1 or co * int(np.prod(out)) > max_numel:
                continue
            if transposed:
                layers.append(Layer(name, name[:-7], "conv", (c, co // g) + k, c, co, g,
                                    transposed=True))
            else:
                layers.append(Layer(name, name[:-7], "conv", (co, c // g) + k, c, co, g))
            add_node("layer", (src,), (co,) + out, layer=len(layers) - 1, params={
                "op": "conv_transpose" if transposed else "conv", "stride": st_,
                "padding": pd, "dilation": d, "groups": g})
        elif kind == "index" and shape:
            perm = tuple(rng.permutation(len(shape)).tolist()) if draw(st.booleans()) else tuple(
                range(len(shape)))
            sizes, wins = [], {}
            for j, ax in enumerate(perm):
                if draw(st.booleans()):
                    n_out = draw(st.integers(1, 4))
                    wins[j] = _windows(rng, shape[ax], n_out)
                    sizes.append(n_out)
                else:
                    sizes.append(shape[ax])
            if int(np.prod(sizes)) > max_numel:
                continue
            add_node("index", (src,), tuple(sizes), params=index_params(len(sizes), perm, wins))
        elif kind == "reshape":
            divs = [v for v in range(1, numel + 1) if numel % v == 0]
            a_ = draw(st.sampled_from(divs))
            rest = numel // a_
            b_ = draw(st.sampled_from([v for v in range(1, rest + 1) if rest % v == 0]))
            new = draw(st.sampled_from([(numel,), (a_, rest), (a_, b_, rest // b_)]))
            add_node("reshape", (src,), new)
        elif kind in ("add", "mul"):
            others = [i for i in range(len(nodes)) if nodes[i].shape == shape]
            other = draw(st.sampled_from(others))
            if kind == "add" and draw(st.integers(0, 3)) == 0:
                add_node("const", (), shape)
                other = len(nodes) - 1
            add_node(kind, (src, other), shape)
        elif kind == "cat" and shape:
            ax = draw(st.integers(0, len(shape) - 1))
            others = [i for i in range(len(nodes)) if len(nodes[i].shape) == len(shape) and
                      nodes[i].shape[:ax] + nodes[i].shape[ax + 1:] == shape[:ax] + shape[ax + 1:]]
            other = draw(st.sampled_from(others))
            out = list(shape)
            out[ax] += nodes[other].shape[ax]
            if int(np.prod(out)) > max_numel:
                continue
            add_node("cat", (src, other), tuple(out), params={"axis": ax})
        elif kind == "gate":
            add_node("gate", (src,), shape)
        elif kind == "scale":
            add_node("scale", (src,), shape, params={"keep": rng.random(shape) < 0.7})
        elif kind == "matmul" and len(shape) >= 2:
            t = len(shape)
            perm = tuple(range(t - 2)) + (t - 1, t - 2)
            add_node("index", (src,), shape[:-2] + (shape[-1], shape[-2]),
                     params=index_params(t, perm, {}))
            out = shape[:-1] + (shape[-2],)
            if int(np.prod(out)) > max_numel:
                continue
            add_node("matmul", (src, len(nodes) - 1), out)
        elif kind == "softmax" and shape:
            ax = draw(st.integers(0, len(shape) - 1))
            masked = rng.random(shape) < 0.3 if draw(st.booleans()) else None
            add_node("softmax", (src,), shape, params={"axis": ax, "masked": masked})
    outputs = (len(nodes) - 1,) if draw(st.booleans()) or len(nodes) < 3 else (
        len(nodes) - 1, draw(st.integers(1, len(nodes) - 2)))
    if not layers:
        nodes.append(Node(len(nodes), "layer", (len(nodes) - 1,), nodes[-1].shape[:-1] + (2,),
                          layer=0, params={"op": "linear"}) if nodes[-1].shape else Node(
            len(nodes), "layer", (len(nodes) - 1,), (2,), layer=0,
            params={"op": "embedding"}))
        shp = nodes[-2].shape
        layers.append(Layer("l0.weight", "l0", "linear", (2, shp[-1]), shp[-1], 2) if shp else
                      Layer("l0.weight", "l0", "embedding", (5, 2), 5, 2))
        outputs = (len(nodes) - 1,)
    return Network(tuple(layers), tuple(nodes), outputs)
