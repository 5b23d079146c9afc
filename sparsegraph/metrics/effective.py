"""Exact effective sparsity: which kept weights lie on an input-to-output path (DESIGN §3).

The definition. Linearise the network (activations are identity maps, normalisation and biases
are dropped, every pooling is "any input in the window") and keep only the mask's weights. A
kept weight is **effective** iff it lies on at least one directed path from some input element
to some output element; every other kept weight is *inactive*. This is per weight and per pixel:
padding, stride, dilation and the spatial size matter, so on a 2x2 map the corner taps of a 3x3
``padding=1`` kernel can be inactive while its centre tap is active.

The algorithm. One forward reachability pass from all input elements and one backward pass from
all output elements, over the wiring of :attr:`Network.nodes`:

- ``layer``: output pixel ``p`` of channel ``o`` is forward-alive iff some kept weight
  ``(o, i, ky, kx)`` reads from it a forward-alive input pixel
  ``q = (y*sy - py + ky*dy, x*sx - px + kx*dx)`` inside the input map of channel ``i`` (with
  groups, ``i`` is the global input channel of ``o``'s group); backward the same edges are
  followed in reverse. A Linear layer is the 1x1 case.
- ``pool``: an output pixel is alive iff some pixel of its window is; ``add``: element-wise OR;
  ``cat``: concatenation; ``reshape``: the same flat elements relabelled.
- A tensor consumed by several nodes is backward-alive where any consumer sends something back.

Weight ``(o, i, ky, kx)`` is then effective iff it is kept and some output pixel ``p`` of
``o`` is backward-alive while its input pixel ``q`` (inside the map) is forward-alive in ``i``.
This equals "SynFlow score != 0" in exact arithmetic, which is how the tests check it
(``tests/reference.py``, a float64 autograd oracle with per-layer rescaling).

The implementation keeps, per tensor and channel, a status byte (all dead / all alive / mixed)
and a bitmap of pixels for mixed channels only, so that at practical densities (where nearly
every channel is all-alive or all-dead) the cost is close to one read and one write of the
masks; see :mod:`sparsegraph.graph._kernels_reach`.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._args import check_masks
from ..errors import TraceError
from ..graph import _kernels_reach as K
from ..graph.network import Network, Node, aligned8, empty_aligned8, word_view

__all__ = ["effective_masks", "reachability", "Reachability"]

_PLANS: weakref.WeakKeyDictionary[Network, list[Any]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Reachability:
    """Per-node alive elements of the linearised masked network.

    Attributes
    ----------
    forward : tuple of ndarray of bool
        ``forward[n]`` (shape ``net.nodes[n].shape``): elements of node ``n`` reachable from
        some network input.
    backward : tuple of ndarray of bool
        ``backward[n]``: elements of node ``n`` from which some network output is reachable.
    effective : dict of str to ndarray of bool
        The effective masks, as :func:`effective_masks` returns them.
    """

    forward: tuple[np.ndarray, ...]
    backward: tuple[np.ndarray, ...]
    effective: dict[str, np.ndarray]

    def alive(self, node: int) -> np.ndarray:
        """Elements of node ``node`` on some input-to-output path (forward and backward alive)."""
        return self.forward[node] & self.backward[node]


# ----------------------------------------------------------------------------- plan


def _bad(node: Node, what: str) -> TraceError:
    return TraceError(f"network node {node.id} ({node.op} {node.name!r}): {what}")


def _windows(node: Node, axis: str, n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    win = node.window_h if axis == "h" else node.window_w
    if win is None:
        raise _bad(node, f"pool node without window_{axis}")
    ptr = np.ascontiguousarray(win[0], dtype=np.int64)
    idx = np.ascontiguousarray(win[1], dtype=np.int64)
    ok = (
        ptr.ndim == 1 and idx.ndim == 1 and ptr.shape[0] == n_out + 1 and ptr[0] == 0
        and ptr[-1] == idx.shape[0] and bool(np.all(np.diff(ptr) >= 0))
        and bool(np.all((idx >= 0) & (idx < n_in)))
    )
    if not ok:
        raise _bad(node, f"window_{axis} is not a CSR window list of {n_out} rows over {n_in}")
    return ptr, idx


def _bitmap(rows: np.ndarray, cols: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int]:
    """Bitmap (h, ceil(w/64)) of the pixels rows x cols (bool vectors) and its status."""
    dense = np.zeros((1, h, w), dtype=np.uint8)
    dense[0] = np.outer(rows, cols)
    st = np.zeros(1, dtype=np.uint8)
    maps = np.empty((1, h, (w + 63) >> 6), dtype=np.uint64)
    K.or_flat(st, maps, w, dense.ravel())
    if st[0] != 2:
        maps[0] = 0
    return maps[0], int(st[0])


def _conv_plan(net: Network, node: Node) -> tuple[Any, ...]:
    layer = net.layers[node.layer]
    src = net.nodes[node.inputs[0]]
    cin, hin, win = src.shape
    cout, hout, wout = node.shape
    if layer.kind == "linear":
        if (cin, cout) != (layer.in_channels, layer.out_channels) or layer.shape != (cout, cin):
            raise _bad(node, f"linear layer {layer.name!r} {layer.shape} does not fit its "
                             f"input {src.shape} and output {node.shape}")
        if hin * win != 1 or hout * wout != 1:
            raise _bad(node, "a linear layer must see (F, 1, 1) tensors")
        return ("linear", node.layer)
    if layer.kind != "conv":
        raise _bad(node, f"unknown layer kind {layer.kind!r}")
    g = layer.groups
    kh, kw = layer.kernel
    if (
        cin != layer.in_channels or cout != layer.out_channels or g < 1 or cin % g or cout % g
        or layer.shape != (cout, cin // g, kh, kw)
    ):
        raise _bad(node, f"conv layer {layer.name!r} {layer.shape} (groups {g}) does not fit "
                         f"its input {src.shape} and output {node.shape}")
    sy, sx = layer.stride
    py, px = layer.padding
    dy, dx = layer.dilation
    if min(sy, sx, dy, dx) < 1:
        raise _bad(node, f"conv layer {layer.name!r}: stride and dilation must be >= 1")
    taps = np.zeros((kh * kw, 6), dtype=np.int64)
    for ky in range(kh):
        offy = ky * dy - py
        ylo, yhi = max(0, -(offy // sy)), min(hout, (hin - 1 - offy) // sy + 1)
        for kx in range(kw):
            offx = kx * dx - px
            xlo, xhi = max(0, -(offx // sx)), min(wout, (win - 1 - offx) // sx + 1)
            taps[ky * kw + kx] = (ylo, yhi, xlo, xhi, offy, offx)
    fv, bi, flags = K.conv_taps(taps, hout, wout, hin, win, sy, sx)
    if kh * kw <= K.MAX_COVER_TAPS:
        cover = K.tap_cover(fv, flags, wout)
    else:
        cover = np.zeros(0, dtype=np.uint8)
    pos = np.arange(cin // g * kh * kw, dtype=np.int32)
    chan_of, tap_of = pos // (kh * kw), pos % (kh * kw)
    return ("conv", node.layer, cin // g, cout // g, taps, fv, bi, flags, sy, sx, chan_of, tap_of,
            cover)


def _pool_plan(net: Network, node: Node) -> tuple[Any, ...]:
    src = net.nodes[node.inputs[0]]
    cin, hin, win = src.shape
    cout, hout, wout = node.shape
    if cin != cout:
        raise _bad(node, f"pooling changes the channels ({cin} -> {cout})")
    whp, whi = _windows(node, "h", hout, hin)
    wwp, wwi = _windows(node, "w", wout, win)
    pf, pf_st = _bitmap(np.diff(whp) > 0, np.diff(wwp) > 0, hout, wout)
    cov_h = np.zeros(hin, dtype=bool)
    cov_h[whi] = True
    cov_w = np.zeros(win, dtype=bool)
    cov_w[wwi] = True
    pb, pb_st = _bitmap(cov_h, cov_w, hin, win)
    return ("pool", whp, whi, wwp, wwi, pf, pf_st, pb, pb_st)


def _plan(net: Network) -> list[Any]:
    """Check the wiring once per network and precompute each node's kernel arguments."""
    plan = _PLANS.get(net)
    if plan is not None:
        return plan
    plan = []
    for n, node in enumerate(net.nodes):
        if node.id != n:
            raise _bad(node, f"nodes must be in topological order with node.id == position {n}")
        if any(not 0 <= i < n for i in node.inputs):
            raise _bad(node, f"inputs {node.inputs} must be earlier nodes")
        if len(node.shape) != 3 or min(node.shape) < 1:
            raise _bad(node, f"shape {node.shape} is not a (C, H, W) shape")
        shapes = [net.nodes[i].shape for i in node.inputs]
        op = node.op
        if op == "input":
            plan.append(("input",))
        elif op in ("layer", "pool", "reshape") and len(node.inputs) != 1:
            raise _bad(node, "expected exactly one input")
        elif op == "layer":
            if not 0 <= node.layer < len(net.layers):
                raise _bad(node, f"layer index {node.layer} out of range")
            plan.append(_conv_plan(net, node))
        elif op == "pool":
            plan.append(_pool_plan(net, node))
        elif op == "add":
            if not shapes or any(s != node.shape for s in shapes):
                raise _bad(node, f"add of shapes {shapes} into {node.shape}")
            plan.append(("add",))
        elif op == "cat":
            if not shapes or any(s[1:] != node.shape[1:] for s in shapes) or sum(
                s[0] for s in shapes
            ) != node.shape[0]:
                raise _bad(node, f"channel concatenation of {shapes} into {node.shape}")
            plan.append(("cat",))
        elif op == "reshape":
            if net.nodes[node.inputs[0]].numel != node.numel:
                raise _bad(node, f"reshape of {shapes[0]} into {node.shape}")
            plan.append(("reshape",))
        else:
            raise _bad(node, f"unknown op {op!r}")
    if any(not 0 <= o < len(net.nodes) for o in net.outputs):
        raise TraceError(f"network outputs {net.outputs} are not node ids")
    _PLANS[net] = plan
    return plan


# ----------------------------------------------------------------------------- passes


def _state(node: Node, fill: int | None) -> tuple[np.ndarray, np.ndarray]:
    c, h, w = node.shape
    st = np.empty(c, dtype=np.uint8) if fill is None else np.full(c, fill, dtype=np.uint8)
    return st, np.empty((c, h, (w + 63) >> 6), dtype=np.uint64)


def _propagate(net: Network, masks: dict[str, np.ndarray]) -> tuple[Any, Any, dict[str, Any]]:
    """Run both passes on checked masks; returns forward and backward (st, maps) per node and
    the effective masks."""
    plan = _plan(net)
    nodes = net.nodes
    m8 = {}
    words = {}
    for layer in net.layers:
        arr = aligned8(masks[layer.name])  # the kernels read the mask as 8-byte words too
        m8[layer.name] = arr.view(np.uint8).reshape(layer.shape[0], -1)
        words[layer.name] = (m8[layer.name].reshape(-1), word_view(arr))

    fwd: list[Any] = []
    for node, p in zip(nodes, plan, strict=True):
        kind = p[0]
        if kind == "input":
            fwd.append(_state(node, 1))
            continue
        st, mp = _state(node, None if kind in ("conv", "linear", "pool") else 0)
        if kind == "conv":
            s_in, m_in = fwd[node.inputs[0]]
            name = net.layers[p[1]].name
            K.conv_forward(m8[name], *words[name], p[2], p[3], s_in, m_in, st, mp, p[4], p[5],
                           p[7], p[12], p[10], p[11], p[8], p[9], node.shape[2])
        elif kind == "linear":
            K.linear_forward(m8[net.layers[p[1]].name], fwd[node.inputs[0]][0], st)
        elif kind == "pool":
            s_in, m_in = fwd[node.inputs[0]]
            K.pool_forward(s_in, m_in, st, mp, p[1], p[2], p[3], p[4], p[5], p[6], node.shape[2])
        elif kind == "add":
            for i in node.inputs:
                K.or_channels(st, mp, 0, fwd[i][0], fwd[i][1], 0, node.shape[0])
            K.normalize(st, mp, node.shape[2])
        elif kind == "cat":
            off = 0
            for i in node.inputs:
                c = nodes[i].shape[0]
                K.or_channels(st, mp, off, fwd[i][0], fwd[i][1], 0, c)
                off += c
        else:  # reshape
            _reshape_or(nodes[node.inputs[0]], fwd[node.inputs[0]], node, (st, mp))
        fwd.append((st, mp))

    bwd = [_state(node, 0) for node in nodes]
    for o in net.outputs:
        bwd[o][0][:] = 1
    eff: dict[str, Any] = {}
    for n in range(len(nodes) - 1, -1, -1):
        node, p = nodes[n], plan[n]
        kind = p[0]
        st, mp = bwd[n]
        if kind == "input":
            K.normalize(st, mp, node.shape[2])
            continue
        K.normalize(st, mp, node.shape[2])
        if kind in ("conv", "linear"):
            name = net.layers[p[1]].name
            src = node.inputs[0]
            out = empty_aligned8(m8[name].shape)  # the kernel writes every byte
            if kind == "conv":
                K.conv_backward(m8[name], words[name][1], out, word_view(out), p[2], p[3],
                                fwd[src][0], fwd[src][1], st, mp,
                                bwd[src][0], bwd[src][1], p[4], p[5], p[6], p[7], p[10], p[11],
                                p[8], p[9], nodes[src].shape[2])
            else:
                K.linear_backward(m8[name], out, fwd[src][0], st, bwd[src][0])
            if name in eff:  # a layer applied more than once: effective through any use
                np.bitwise_or(eff[name], out, out=eff[name])
            else:
                eff[name] = out
        elif kind == "pool":
            src = node.inputs[0]
            K.pool_backward(st, mp, bwd[src][0], bwd[src][1], p[1], p[2], p[3], p[4], p[7], p[8],
                            nodes[src].shape[2])
        elif kind == "add":
            for i in node.inputs:
                K.or_channels(bwd[i][0], bwd[i][1], 0, st, mp, 0, node.shape[0])
        elif kind == "cat":
            off = 0
            for i in node.inputs:
                c = nodes[i].shape[0]
                K.or_channels(bwd[i][0], bwd[i][1], 0, st, mp, off, c)
                off += c
        else:
            _reshape_or(node, (st, mp), nodes[node.inputs[0]], bwd[node.inputs[0]])

    result = {}
    for layer in net.layers:
        e = eff.get(layer.name)
        if e is None:  # a layer that is not on the wiring lies on no path
            result[layer.name] = np.zeros(layer.shape, dtype=bool)
        else:
            result[layer.name] = e.view(np.bool_).reshape(layer.shape)
    return fwd, bwd, result


def _reshape_or(src_node: Node, src: Any, dst_node: Node, dst: Any) -> None:
    """dst |= the elements of src relabelled in flat (C, H, W) order."""
    s_st, s_map = src
    d_st, d_map = dst
    if not np.any(s_st):
        return
    if np.all(s_st == 1):
        d_st[:] = 1
        return
    flat = K.expand(s_st, s_map, src_node.shape[2])
    K.or_flat(d_st, d_map, dst_node.shape[2], flat)


def _dense(node: Node, state: Any) -> np.ndarray:
    st, mp = state
    return K.expand(st, mp, node.shape[2]).view(np.bool_).reshape(node.shape)


# ----------------------------------------------------------------------------- public


def effective_masks(net: Network, masks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The effective part of a mask: kept weights on some input-to-output path.

    Parameters
    ----------
    net : Network
        The network, from :func:`sparsegraph.trace`.
    masks : mapping of str to array-like
        Masks keyed by parameter name (numpy arrays, torch tensors or nested lists of 0/1);
        layers without a key are dense.

    Returns
    -------
    dict of str to ndarray of bool
        For every prunable layer in network order, a new array of the weight's shape that is
        True exactly for the effective weights (a subset of the kept ones). A layer that is not
        on the network's wiring has no effective weight.

    Raises
    ------
    MaskError
        For an unknown key, a wrong shape, NaN or values other than 0 and 1.
    TraceError
        If ``net`` was built by hand and its wiring is inconsistent.

    Notes
    -----
    See the module docstring for the definition (DESIGN §3) and the algorithm. Cost: a
    forward pass that reads each mask row only until its output channel is known to be all
    alive, a backward pass that reads each row once while writing the result, and work
    proportional to the pixels of channels that are neither all alive nor all dead (rare at
    practical densities). ``effective_masks(net, effective_masks(net, m))``
    equals ``effective_masks(net, m)``, and the result is a subset of the kept weights.

    Examples
    --------
    A 3 -> 2 -> 1 network in which hidden unit 1 has no outgoing weight (a dead end) and input
    0 has no weight to a live unit:

    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc1.weight", "fc1", "linear", (2, 3), 3, 2),
    ...             Layer("fc2.weight", "fc2", "linear", (1, 2), 2, 1)),
    ...     nodes=(Node(0, "input", (), (3, 1, 1)),
    ...            Node(1, "layer", (0,), (2, 1, 1), layer=0),
    ...            Node(2, "layer", (1,), (1, 1, 1), layer=1)),
    ...     outputs=(2,),
    ... )
    >>> masks = {"fc1.weight": [[0, 1, 1], [1, 1, 0]], "fc2.weight": [[1, 0]]}
    >>> eff = effective_masks(net, masks)
    >>> eff["fc1.weight"].astype(int).tolist(), eff["fc2.weight"].astype(int).tolist()
    ([[0, 1, 1], [0, 0, 0]], [[1, 0]])
    """
    checked = check_masks(net, masks)
    return _propagate(net, checked)[2]


def reachability(net: Network, masks: Mapping[str, Any]) -> Reachability:
    """Forward- and backward-alive elements of every node, and the effective masks.

    Parameters
    ----------
    net : Network
        The network, from :func:`sparsegraph.trace`.
    masks : mapping of str to array-like
        As for :func:`effective_masks`.

    Returns
    -------
    Reachability
        ``forward[n]`` / ``backward[n]`` are bool arrays of ``net.nodes[n].shape``;
        ``effective`` is :func:`effective_masks`' result. The backward maps are pure backward
        reachability (an element can be backward-alive without being forward-alive); an
        element is on an input-to-output path iff both hold (:meth:`Reachability.alive`).

    Raises
    ------
    MaskError
        As for :func:`effective_masks`.

    Notes
    -----
    Materialising the per-node maps costs one byte per element of every tensor on top of
    :func:`effective_masks`.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3, 1, 1)), Node(1, "layer", (0,), (2, 1, 1), layer=0)),
    ...     outputs=(1,),
    ... )
    >>> r = reachability(net, {"fc.weight": [[1, 0, 0], [0, 0, 0]]})
    >>> r.forward[1].ravel().tolist(), r.backward[0].ravel().tolist()
    ([True, False], [True, False, False])
    """
    checked = check_masks(net, masks)
    fwd, bwd, eff = _propagate(net, checked)
    return Reachability(
        forward=tuple(_dense(node, s) for node, s in zip(net.nodes, fwd, strict=True)),
        backward=tuple(_dense(node, s) for node, s in zip(net.nodes, bwd, strict=True)),
        effective=eff,
    )
