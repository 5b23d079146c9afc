"""The kinds of node of a :class:`~sparsegraph.graph.network.Network`, each defined once.

A kind says how a node's tensor is computed from its inputs, and this package is the only place
that knows: for every kind it holds the checks of a node's arity, shapes and parameters, and its
rule for every walk of the network (:mod:`sparsegraph.graph.walker`):

*bits*
    forward, which elements are **reached** (carry signal from a network input) and which are
    **nonzero**; backward, from which elements some output is reachable, and, for a layer, which
    kept weights are effective (DESIGN §3);
*flow*
    the float64 path counts of the linearised network as a torch computation that is linear in
    the node's inputs (SynFlow scores, path counts);
*units*
    the node's edges in the channel-level graph of the whole network (exports, min cut).

Adding a kind is one class here (in the module of its family) plus its kernels; nothing in the
algorithms changes. The kinds (parameters in ``node.params``):

==============  ========================================================================  =========
kind            meaning                                                                    module
==============  ========================================================================  =========
``input``       a network input (a source: every element reached and nonzero)            layout
``const``       a constant tensor (never reached; counts as zero)                          layout
``layer``       one use of a prunable layer (``node.layer``): ``op`` = ``linear`` (last    layer
                axis, any rank), ``conv`` / ``conv_transpose`` (any spatial rank;
                ``stride``, ``padding``, ``dilation``), ``embedding``; ``view`` maps the
                parameter onto this use's weight
``index``       an index map: output axis ``k`` reads input axis ``perm[k]`` through       layout
                ``windows[k]`` (pooling, slicing, padding, roll, flip, expand, upsample,
                reductions, permute/transpose)
``reshape``     the same elements in C order, relabelled to another shape                  layout
``cat``         concatenation along ``axis``                                               layout
``add``         element-wise sum of equally shaped inputs (residuals)                      merge
``scale``       element-wise product with a constant whose zeros (``keep``) drop elements  merge
``mul``         element-wise product of two computed tensors (gates, squeeze-excitation)  merge
``gate``        a function nonzero everywhere (sigmoid, exp, reciprocal) of its input      merge
``matmul``      batched matrix product of two computed tensors (attention)                 attention
``softmax``     softmax along ``axis``, entries of ``masked`` forced to zero               attention
==============  ========================================================================  =========
"""

from __future__ import annotations

from typing import Any

from ...errors import NetworkError

__all__ = ["KINDS", "Kind", "bad", "check_network", "kind"]


def bad(node: Any, what: str) -> NetworkError:
    """The error for an inconsistent node."""
    return NetworkError(f"{node.label()}: {what}")


class Kind:
    """One kind of node: its checks and its rule for each walk (see the package docstring).

    The bits walk passes ``w`` (:class:`sparsegraph.graph.walker.BitsWalk`), the flow walk
    ``f`` (:class:`~sparsegraph.graph.walker.FlowWalk`) and the units walk ``u``
    (:class:`~sparsegraph.graph.walker.UnitsWalk`); ``plan`` is what :meth:`plan` returned for
    the node (computed once per network).
    """

    name = ""
    #: (fewest, most) inputs; ``None`` = any number.
    arity: tuple[int, int | None] = (1, 1)
    #: True for kinds under which an element can be nonzero without being reached (so the
    #: walks must track the two facts separately).
    nonlinear = False
    #: True for the kind that applies a layer's weight (``node.layer``).
    has_weight = False

    # -- checks ---------------------------------------------------------------------------
    def check(self, net: Any, node: Any, shapes: list[tuple[int, ...]]) -> None:
        """Raise :class:`NetworkError` (via :func:`bad`) if the node is inconsistent."""

    def plan(self, net: Any, node: Any) -> Any:
        """Precomputed kernel arguments for the node (cached per network)."""
        return None

    # -- bits -----------------------------------------------------------------------------
    def reach(self, w: Any, node: Any, plan: Any, ins: list[Any]) -> Any:
        """Forward rule of a kind that is linear in its inputs: the set elements of the
        output given those of the inputs (the same rule gives reached and nonzero)."""
        raise NotImplementedError

    def forward(self, w: Any, node: Any, plan: Any, ins_r: list[Any], ins_z: list[Any] | None
                ) -> tuple[Any, Any]:
        """``(reached, nonzero)`` of the output; ``ins_z`` is None when the network has no
        nonlinear kind (nonzero equals reached everywhere)."""
        r = self.reach(w, node, plan, ins_r)
        if ins_z is None or all(a is b for a, b in zip(ins_z, ins_r, strict=True)):
            return r, r
        return r, self.reach(w, node, plan, ins_z)

    def backward(self, w: Any, node: Any, plan: Any, out: Any, accs: list[Any]) -> None:
        """OR into ``accs[i]`` (the backward accumulator of ``node.inputs[i]``) the input
        elements from which the backward-alive output elements ``out`` are reachable."""
        raise NotImplementedError

    # -- flow -----------------------------------------------------------------------------
    def flow(self, f: Any, node: Any, plan: Any, ins: list[Any]) -> Any:
        """The output path counts (float64 torch tensor), linear in the input tensors ``ins``
        (all at one common scale)."""
        raise NotImplementedError

    def flow_explicit(self, node: Any) -> bool:
        """Whether the kind gives the backward of :meth:`flow` for this node itself
        (:meth:`flow_vjp`; its :meth:`flow` then returns a fresh tensor); otherwise the walker
        differentiates :meth:`flow` with autograd."""
        return False

    def flow_vjp(self, f: Any, node: Any, plan: Any, ins: list[Any], grad: Any,
                 need: list[bool], need_weight: bool) -> tuple[list[Any], Any]:
        """The backward of :meth:`flow` for the gradient ``grad`` at the output: per input the
        gradient (None where ``need`` is False or it is zero), and the weight's gradient (None
        unless ``need_weight``) in the layout :meth:`FlowWalk.support
        <sparsegraph.graph.walker.FlowWalk.support>` describes."""
        raise NotImplementedError

    # -- units ----------------------------------------------------------------------------
    def unit_axis(self, node: Any, in_axes: list[int]) -> int:
        """The axis of the node's tensor whose positions are its units (channels, features)."""
        return in_axes[0] if in_axes else 0

    def unit_edges(self, u: Any, node: Any, plan: Any, in_axes: list[int], axis: int
                   ) -> list[tuple[int, Any, Any, Any, bool]]:
        """Edges of the channel-level graph into this node: ``(input position, source units,
        target units, weights, from a layer)``."""
        return []


KINDS: dict[str, Kind] = {}


def _register(*kinds: Kind) -> None:
    for k in kinds:
        KINDS[k.name] = k


def kind(node: Any) -> Kind:
    """The :class:`Kind` of a node."""
    return KINDS[node.kind]


def check_network(net: Any) -> tuple[dict[int, tuple[int, ...]], tuple[int, ...]]:
    """Check a Network's wiring (see :mod:`sparsegraph.graph.network`); returns, per layer
    index, the ids of the nodes that use it, and the ids of the input nodes.

    Raises
    ------
    NetworkError
        Naming the first inconsistent node.
    """
    nodes = net.nodes
    if not nodes:
        raise NetworkError("the network has no nodes (it needs at least one input and one output)")
    uses: dict[int, list[int]] = {}
    inputs = []
    for pos, node in enumerate(nodes):
        if not hasattr(node, "kind") or not hasattr(node, "label"):
            raise NetworkError(f"nodes[{pos}] is a {type(node).__name__}, not a Node")
        if node.id != pos:
            raise bad(node, f"nodes must be in topological order with node.id == position {pos}")
        spec = KINDS.get(node.kind)
        if spec is None:
            raise bad(node, f"unknown kind {node.kind!r}; known: {', '.join(KINDS)}")
        lo, hi = spec.arity
        if len(node.inputs) < lo or (hi is not None and len(node.inputs) > hi):
            want = f"{lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo}-{hi}")
            raise bad(node, f"expected {want} inputs, got {len(node.inputs)}")
        if any(not 0 <= i < pos for i in node.inputs):
            raise bad(node, f"inputs {list(node.inputs)} must be earlier nodes")
        if any(s < 0 for s in node.shape):
            raise bad(node, f"shape {list(node.shape)} has a negative size")
        if node.kind == "input":
            inputs.append(node.id)
        if node.kind == "layer":
            if not 0 <= node.layer < len(net.layers):
                raise bad(node, f"layer index {node.layer} out of range")
            uses.setdefault(node.layer, []).append(node.id)
        spec.check(net, node, [nodes[i].shape for i in node.inputs])
    if not inputs:
        raise NetworkError("the network has no input node")
    if not net.outputs:
        raise NetworkError("the network has no output")
    for o in net.outputs:
        if not 0 <= o < len(nodes):
            raise NetworkError(f"network output {o} is not a node id (0..{len(nodes) - 1})")
    if len(set(net.outputs)) != len(net.outputs):
        raise NetworkError(f"network outputs {list(net.outputs)} repeat a node")
    return {k: tuple(v) for k, v in uses.items()}, tuple(inputs)


from . import attention, layer, layout, merge  # noqa: E402  (each registers its kinds)

_register(*layout.KINDS, *layer.KINDS, *merge.KINDS, *attention.KINDS)
