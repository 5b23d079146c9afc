"""The walks of a :class:`~sparsegraph.graph.network.Network`, one per value type.

Every algorithm that follows the wiring is one of these walks; each node's rule comes from its
kind (:mod:`sparsegraph.graph.kinds`), so this module never looks at what a node is.

:class:`BitsWalk`
    Boolean reachability: forward, the reached (and, when the network has gates, products or
    softmax, the nonzero) elements of every node; backward, the elements from which an output is
    reachable, fused with the effective masks of the layers (DESIGN §3).
:class:`FlowWalk`
    Float64 path counts of the linearised network with every tensor carried as
    ``h * exp(s)`` (``max h = 1``), so counts far beyond 1e308 neither overflow nor underflow;
    forward and an explicitly rescaled backward, and the gradient of the total with respect to
    every layer's weights (SynFlow).
:class:`UnitsWalk`
    The channel-level graph of the whole network: one vertex per unit (channel, feature) of
    every tensor, layer edges and wiring edges.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._bits import Acc, Bits
from .kinds import KINDS
from .kinds.layer import flat, scatter_effective, to_native, use_mask
from .network import Network

__all__ = ["BitsWalk", "FlowWalk", "Scaled", "UnitsWalk", "plans"]

_PLANS: weakref.WeakKeyDictionary[Network, tuple[list[Any], bool]] = weakref.WeakKeyDictionary()


def plans(net: Network) -> tuple[list[Any], bool]:
    """Every node's precomputed kernel arguments, and whether the network has a nonlinear
    kind (computed once per network)."""
    cached = _PLANS.get(net)
    if cached is None:
        kinds = [KINDS[node.kind] for node in net.nodes]
        cached = ([k.plan(net, node) for k, node in zip(kinds, net.nodes, strict=True)],
                  any(k.nonlinear for k in kinds))
        _PLANS[net] = cached
    return cached


class _Uses:
    """What every walk offers the kinds."""

    def __init__(self, net: Network) -> None:
        self.net = net

    def shape_of(self, i: int) -> tuple[int, ...]:
        """The shape of node ``i``."""
        return self.net.nodes[i].shape


# ------------------------------------------------------------------------------------ bits


class BitsWalk(_Uses):
    """Reachability through a masked network (see the module docstring).

    Parameters
    ----------
    net : Network
    masks : mapping of str to ndarray of bool
        A C-contiguous bool mask for **every** layer, as :func:`sparsegraph._args.check_masks`
        returns them. Their bytes need not be 0/1 (``check_masks(..., raw_bool=True)``): every
        bits rule reads a nonzero byte as kept, and every array the walk writes (the effective
        masks included) holds only 0 and 1.
    """

    def __init__(self, net: Network, masks: Mapping[str, np.ndarray]) -> None:
        super().__init__(net)
        self.masks = masks
        self.plans, self.track_z = plans(net)
        self.fwd_r: list[Bits] = []
        self.fwd_z: list[Bits] = []
        self.bwd: list[Bits] = []
        self._kmask: dict[int, np.ndarray] = {}
        self._kflat: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._vec: dict[tuple[int, int], np.ndarray] = {}
        self._eff: dict[int, np.ndarray] = {}
        #: what a kind's forward rule leaves for its backward rule, by node id
        self.carry: dict[int, Any] = {}

    # layer uses ------------------------------------------------------------------------
    def kernel_mask(self, node: Any) -> np.ndarray:
        """This use's mask as the kernels read it: uint8 ``(out, in // groups * K)`` rows
        (``(vocabulary, dim)`` for an embedding), C-contiguous, nonzero = kept."""
        m = self._kmask.get(node.id)
        if m is None:
            layer = self.net.layers[node.layer]
            m = use_mask(layer, node, self.masks[layer.name])
            self._kmask[node.id] = m
        return m

    def kernel_flat(self, node: Any) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`kernel_mask` flat, and the same bytes as uint64 words (or an empty array when
        rows are not whole words), as the row kernels take it."""
        m = self._kflat.get(node.id)
        if m is None:
            m = self._kflat[node.id] = flat(self.kernel_mask(node))
        return m

    def rowany(self, node: Any) -> np.ndarray:
        """Per output unit, whether it keeps any weight (bool)."""
        return self._any(node, 1)

    def colany(self, node: Any) -> np.ndarray:
        """Per input unit, whether any weight from it is kept (bool)."""
        return self._any(node, 0)

    def _any(self, node: Any, axis: int) -> np.ndarray:
        key = (node.id, axis)
        if key not in self._vec:
            self._vec[key] = self.kernel_mask(node).any(axis)  # uint8: nonzero = kept
        return self._vec[key]

    def add_effective(self, node: Any, eff: np.ndarray | None) -> None:
        """Record the effective weights of one use (kernel layout, uint8 0/1; None: none)."""
        if eff is not None:
            li = node.layer
            self._eff[li] = scatter_effective(self.net.layers[li], node, eff, self._eff.get(li))

    # the walk ---------------------------------------------------------------------------
    def forward(self) -> BitsWalk:
        """Reached (and nonzero) elements of every node."""
        fwd_r, fwd_z, track_z = self.fwd_r, self.fwd_z, self.track_z
        for node, plan in zip(self.net.nodes, self.plans, strict=True):
            ins = node.inputs
            r, z = KINDS[node.kind].forward(self, node, plan, [fwd_r[i] for i in ins],
                                            [fwd_z[i] for i in ins] if track_z else None)
            fwd_r.append(r)
            fwd_z.append(z)
        return self

    def backward(self) -> BitsWalk:
        """Backward-alive elements of every node and the effective weights of every layer."""
        nodes = self.net.nodes
        accs: list[Acc | None] = [None] * len(nodes)
        for o in self.net.outputs:
            accs[o] = Acc(nodes[o].shape)
            accs[o].fill()
        bwd: list[Bits | None] = [None] * len(nodes)
        for n in range(len(nodes) - 1, -1, -1):
            node = nodes[n]
            acc = accs[n]
            out = acc.freeze() if acc is not None else Bits.empty(node.shape)
            bwd[n] = out
            if not node.inputs or out.is_empty:
                continue  # nothing alive downstream: nothing to send back, nothing effective
            ins = []
            for i in node.inputs:
                a = accs[i]
                if a is None:
                    a = accs[i] = Acc(nodes[i].shape)
                ins.append(a)
            KINDS[node.kind].backward(self, node, self.plans[n], out, ins)
        self.bwd = bwd  # type: ignore[assignment]
        return self

    def effective(self) -> dict[str, np.ndarray]:
        """The effective mask of every layer (bool with 0/1 bytes, the weight's shape), in
        layer order."""
        out = {}
        for li, layer in enumerate(self.net.layers):
            e = self._eff.get(li)
            out[layer.name] = (np.zeros(layer.shape, dtype=bool) if e is None
                               else e.view(np.bool_).reshape(layer.shape))
        return out


# ------------------------------------------------------------------------------------ flow


class Scaled:
    """A non-negative tensor as ``h * exp(s)`` with ``h.max() == 1`` (``s = -inf`` when all
    zero). With ``owned``, ``h`` is a fresh tensor that may be divided in place."""

    __slots__ = ("h", "s")

    def __init__(self, h: Any, s: float = 0.0, *, owned: bool = False) -> None:
        m = float(h.max()) if h.numel() else 0.0
        if m > 0.0 and math.isfinite(s):
            if m != 1.0:
                h = h.div_(m) if owned else h / m
            self.h, self.s = h, s + math.log(m)
        else:
            self.h, self.s = h, -math.inf

    @property
    def log10(self) -> float:
        """log10 of the scale."""
        return self.s / math.log(10.0)


def _common(parts: list[Scaled]) -> tuple[list[Any], float]:
    """The tensors brought to one common scale (the largest), and that scale."""
    live = [p.s for p in parts if p.s != -math.inf]
    if not live:
        return [p.h for p in parts], 0.0
    top = max(live)
    return [p.h * math.exp(p.s - top) if p.s not in (top, -math.inf) else p.h
            for p in parts], top


def _merged(parts: list[Scaled]) -> Scaled:
    """The sum of scaled tensors, rescaled."""
    if len(parts) == 1:
        return parts[0]
    hs, t = _common(parts)
    return Scaled(sum(hs[1:], hs[0]), t, owned=True)


_CONSTS: weakref.WeakKeyDictionary[Network, dict[Any, Any]] = weakref.WeakKeyDictionary()
_UPSTREAM: weakref.WeakKeyDictionary[Network, list[bool]] = weakref.WeakKeyDictionary()


def _upstream(net: Network) -> list[bool]:
    """Per node, whether a layer use is the node or lies upstream of it."""
    up = _UPSTREAM.get(net)
    if up is None:
        up = []
        for node in net.nodes:
            up.append(KINDS[node.kind].has_weight or any(up[i] for i in node.inputs))
        _UPSTREAM[net] = up
    return up


class FlowWalk(_Uses):
    """Float64 path counts of the linearised network (see the module docstring).

    Parameters
    ----------
    net : Network
    weights : sequence of torch.Tensor
        Per layer (network order), non-negative float64 tensors of the weight's shape (masked
        weights: zero where pruned). For path counts these are the 0/1 masks; for SynFlow
        ``|w|`` times the mask.
    kept : sequence of ndarray of int64, optional
        Per layer, ascending flat positions outside which the weight is zero (SynFlow's kept
        weights). Weight gradients are then reported at these positions only, as flat
        tensors in this order; without it, the support is read off the weights (their
        nonzero positions) and the gradients are full tensors of the weight's shape, zero
        outside the support.

    Notes
    -----
    Each kind's :meth:`~sparsegraph.graph.kinds.Kind.flow` is its local torch op; the backward
    of a node is the kind's explicit rule where it has one (layer uses as restricted matrix
    products, :mod:`sparsegraph.graph.kinds.layer_flow`), else autograd on that local op. Every
    gradient is rescaled per node as the forward values are. Constants of the network (window
    matrices, keep masks) are built once per network and reused by every walk.
    """

    def __init__(self, net: Network, weights: list[Any], *,
                 kept: list[np.ndarray] | None = None) -> None:
        import torch

        super().__init__(net)
        self.torch = torch
        self.weights = [w.detach() for w in weights]
        self.plans, nonlinear = plans(net)
        self._kept = kept
        self._walk: dict[Any, Any] = {}
        self._leaves: dict[int, Any] = {}
        self._zbits: list[Bits] | None = None
        if nonlinear:  # products and gates need each factor's nonzero elements
            masks = {layer.name: np.ascontiguousarray(w.cpu().numpy() != 0)
                     for layer, w in zip(net.layers, self.weights, strict=True)}
            self._zbits = BitsWalk(net, masks).forward().fwd_z
        self.fwd: list[Scaled] = []
        self._local: list[tuple[Any, list[Any], float] | None] = []

    # what the kinds use ----------------------------------------------------------------
    def weight(self, node: Any) -> Any:
        """This use's weight (float64 tensor, the op's own layout)."""
        li = node.layer
        return to_native(self._leaves.get(li, self.weights[li]), node.params.get("view"))

    def support(self, li: int) -> np.ndarray | None:
        """Ascending flat positions outside which layer ``li``'s weight is zero (None: the
        whole weight)."""
        def make() -> np.ndarray | None:
            if self._kept is not None:
                pos = self._kept[li]
            else:
                pos = np.flatnonzero(self.weights[li].cpu().numpy().reshape(-1))
            return None if pos.size == self.net.layers[li].params else pos
        return self.per_walk(("support", li), make)

    def z(self, i: int) -> Any:
        """Node ``i``'s nonzero elements as a float64 0/1 tensor."""
        return self.per_walk(("z", i), lambda: self.torch.from_numpy(
            self._zbits[i].dense().astype(np.float64)))

    def cached(self, key: Any, make: Callable[[], Any]) -> Any:
        """A constant of the network (a function of its nodes only, never of the weights),
        computed once per network and shared by every walk."""
        store = _CONSTS.setdefault(self.net, {})
        if key not in store:
            store[key] = make()
        return store[key]

    def per_walk(self, key: Any, make: Callable[[], Any]) -> Any:
        """A value computed once per walk (it may depend on the weights)."""
        if key not in self._walk:
            self._walk[key] = make()
        return self._walk[key]

    def keep(self, node: Any, value: Any) -> None:
        """Keep what the explicit backward of ``node`` needs."""
        self._walk[("saved", node.id)] = value

    def kept(self, node: Any) -> Any:
        """What :meth:`keep` kept for ``node``."""
        return self._walk[("saved", node.id)]

    # the walk ---------------------------------------------------------------------------
    def forward(self, *, grad: bool = False) -> FlowWalk:
        """Forward path counts of every node; with ``grad``, keep what :meth:`backward`
        needs."""
        torch = self.torch
        for node, plan in zip(self.net.nodes, self.plans, strict=True):
            kind = KINDS[node.kind]
            xs, s = _common([self.fwd[i] for i in node.inputs])
            if grad and not kind.flow_explicit(node):
                xs = [x.detach().requires_grad_(True) for x in xs]
                if kind.has_weight and node.layer not in self._leaves:
                    self._leaves[node.layer] = self.weights[node.layer].requires_grad_(True)
                with torch.enable_grad():
                    raw = kind.flow(self, node, plan, xs)
                self.fwd.append(Scaled(raw.detach(), s))
                self._local.append((raw, xs, s))
                continue
            explicit = kind.flow_explicit(node)
            with torch.no_grad():
                raw = kind.flow(self, node, plan, xs)
            self.fwd.append(Scaled(raw, s, owned=explicit))  # explicit rules return fresh tensors
            self._local.append((None, xs, s) if grad else None)
        return self

    def backward(self, *, weights: bool = False) -> tuple[list[Scaled], list[list[Scaled]]]:
        """Backward path counts of every node (paths from each element to the outputs) and,
        with ``weights``, the gradient of the total path count with respect to every layer's
        weight, per use (see ``kept``). Needs :meth:`forward` with ``grad=True``. With
        ``weights``, only the gradients that lead to a weight are computed: the backward
        counts of nodes with no layer upstream are left at zero."""
        torch = self.torch
        nodes = self.net.nodes
        need = _upstream(self.net) if weights else [True] * len(nodes)
        pending: list[list[Scaled]] = [[] for _ in nodes]
        for o in self.net.outputs:
            pending[o].append(Scaled(torch.ones(nodes[o].shape, dtype=torch.float64)))
        bwd: list[Scaled] = [None] * len(nodes)  # type: ignore[list-item]
        wgrads: list[list[Scaled]] = [[] for _ in self.net.layers]
        for n in range(len(nodes) - 1, -1, -1):
            node = nodes[n]
            parts = pending[n]
            pending[n] = []
            g = _merged(parts) if parts else Scaled(torch.zeros(node.shape, dtype=torch.float64))
            bwd[n] = g
            local = self._local[n]
            if g.s == -math.inf or local is None or not need[n]:
                continue
            raw, xs, s = local
            kind = KINDS[node.kind]
            want = [need[i] for i in node.inputs]
            want_w = weights and kind.has_weight
            if raw is None:
                res_in, res_w = kind.flow_vjp(self, node, self.plans[n], xs, g.h, want, want_w)
                fresh = True
            else:
                res_in, res_w = self._autograd(node, raw, xs, g.h, want, want_w)
                fresh = False
            for i, r in zip(node.inputs, res_in, strict=True):
                if r is not None:
                    pending[i].append(Scaled(r, g.s, owned=fresh))
            if res_w is not None:
                gw = self._at_support(node.layer, res_w, fresh)
                wgrads[node.layer].append(Scaled(gw, g.s + s, owned=fresh))
        self._local = [None] * len(nodes)
        self._walk.clear()
        return bwd, wgrads

    def _autograd(self, node: Any, raw: Any, xs: list[Any], g: Any, want: list[bool],
                  want_w: bool) -> tuple[list[Any], Any]:
        """The local vector-Jacobian products of a node by autograd."""
        targets = [x for x, w in zip(xs, want, strict=True) if w]
        if want_w:
            targets.append(self._leaves[node.layer])
        if not targets or not raw.requires_grad:
            return [None] * len(xs), None
        res = list(self.torch.autograd.grad(raw, targets, grad_outputs=g, allow_unused=True))
        gw = res.pop() if want_w else None
        it = iter(res)
        return [next(it) if w else None for w in want], gw

    def _at_support(self, li: int, grad: Any, explicit: bool) -> Any:
        """A weight gradient in the layout promised by ``kept``. ``grad`` is a full tensor
        (autograd, or an explicit rule on a weight supported everywhere) or, from an explicit
        rule, flat at the support (:meth:`support`)."""
        layer = self.net.layers[li]
        sup = self.support(li)
        if explicit and sup is not None:  # flat at the support
            if self._kept is not None:
                return grad
            out = grad.new_zeros(layer.params)
            out[self.torch.from_numpy(sup)] = grad
            return out.reshape(layer.shape)
        if self._kept is None:
            return grad.reshape(layer.shape)
        flat = grad.reshape(-1)
        return flat if sup is None else flat.index_select(0, self.torch.from_numpy(sup))


# ----------------------------------------------------------------------------------- units


class UnitsWalk(_Uses):
    """The channel-level graph of the whole network (see :mod:`sparsegraph.graph.export`).

    Parameters
    ----------
    net : Network
    masks : mapping of str to ndarray of bool
        A canonical mask for every layer.
    """

    def __init__(self, net: Network, masks: Mapping[str, np.ndarray]) -> None:
        super().__init__(net)
        self._bits = BitsWalk(net, masks)
        self.plans = self._bits.plans
        self.axis: list[int] = []
        for node in net.nodes:
            self.axis.append(KINDS[node.kind].unit_axis(node, [self.axis[i] for i in node.inputs]))
        self.sizes = np.array([node.shape[a] if node.shape else 1
                               for node, a in zip(net.nodes, self.axis, strict=True)],
                              dtype=np.int64)
        self.offset = np.zeros(len(net.nodes) + 1, dtype=np.int64)
        np.cumsum(self.sizes, out=self.offset[1:])

    def kernel_mask(self, node: Any) -> np.ndarray:
        return self._bits.kernel_mask(node).view(np.bool_)

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(src, dst, weight, layer)``: global vertex ids (int64), weights (float64) and the
        layer name of layer edges (``""`` for wiring edges; object array)."""
        srcs, dsts, ws, labs = [], [], [], []
        for node, plan in zip(self.net.nodes, self.plans, strict=True):
            in_axes = [self.axis[i] for i in node.inputs]
            found = KINDS[node.kind].unit_edges(self, node, plan, in_axes, self.axis[node.id])
            for pos, s, d, w, is_layer in found:
                s = np.asarray(s, dtype=np.int64)
                srcs.append(self.offset[node.inputs[pos]] + s)
                dsts.append(self.offset[node.id] + np.asarray(d, dtype=np.int64))
                ws.append(np.broadcast_to(np.asarray(w, dtype=np.float64), s.shape))
                label = self.net.layers[node.layer].name if is_layer else ""
                labs.append(np.full(s.size, label, dtype=object))
        if not srcs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), np.zeros(0, dtype=object)
        return (np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ws),
                np.concatenate(labs))
