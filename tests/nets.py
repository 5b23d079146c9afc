"""Hand-built networks shared by several test modules."""

from __future__ import annotations

import numpy as np

from sparsegraph.graph.network import Layer, Network, Node


def win(n_in: int, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    starts = list(range(0, n_in - k + 1, s))
    idx = [i for a in starts for i in range(a, a + k)]
    return np.arange(0, k * len(starts) + 1, k, dtype=np.int64), np.array(idx, dtype=np.int64)


def tiny_net() -> Network:
    """input -> conv A -> pool -> (depthwise conv B stride 2) + pool -> conv C (1x1) ->
    cat(add, C) -> flatten -> linear D."""
    la = Layer("a.weight", "a", "conv", (3, 2, 3, 3), 2, 3, kernel=(3, 3), padding=(1, 1),
               in_hw=(4, 4), out_hw=(4, 4))
    lb = Layer("b.weight", "b", "conv", (3, 1, 3, 3), 3, 3, groups=3, kernel=(3, 3),
               stride=(2, 2), padding=(1, 1), in_hw=(4, 4), out_hw=(2, 2))
    lc = Layer("c.weight", "c", "conv", (2, 3, 1, 1), 3, 2, in_hw=(2, 2), out_hw=(2, 2))
    ld = Layer("d.weight", "d", "linear", (3, 20), 20, 3)
    nodes = (
        Node(0, "input", (), (2, 4, 4), name="x"),
        Node(1, "layer", (0,), (3, 4, 4), layer=0),
        Node(2, "pool", (1,), (3, 2, 2), name="pool", window_h=win(4, 2, 2),
             window_w=win(4, 2, 2)),
        Node(3, "layer", (1,), (3, 2, 2), layer=1),
        Node(4, "add", (3, 2), (3, 2, 2), name="add"),
        Node(5, "layer", (4,), (2, 2, 2), layer=2),
        Node(6, "cat", (4, 5), (5, 2, 2), name="cat"),
        Node(7, "reshape", (6,), (20, 1, 1), name="flatten"),
        Node(8, "layer", (7,), (3, 1, 1), layer=3),
    )
    return Network(layers=(la, lb, lc, ld), nodes=nodes, outputs=(8,))
