"""Exact effective sparsity: which kept weights lie on an input-to-output path (DESIGN §3).

The definition. Linearise the network (activations are identity maps, normalisation and biases
are dropped, every pooling is "any input in the window") and keep only the mask's weights. A
kept weight is **effective** iff it lies on at least one directed path from some input element
to some output element; every other kept weight is *inactive*. This is per weight and per
element: padding, stride, dilation and the spatial size matter, so on a 2x2 map the corner taps
of a 3x3 ``padding=1`` kernel can be inactive while its centre tap is active. Products, gates,
softmax and attention follow DESIGN §3's rules: each element is *reached* (carries signal from an
input) and *nonzero*; a product is reached where one factor is reached and the other nonzero, so
a squeeze-excitation branch cut off by pruning still lets the trunk through (sigmoid(0) = 1/2),
while a GLU with one dead half is dead.

The algorithm. One forward reachability pass from all input elements and one backward pass from
all output elements over :attr:`Network.nodes`, each node crossed by its kind's rule
(:mod:`sparsegraph.graph.kinds`, walked by :class:`sparsegraph.graph.walker.BitsWalk`); weight
``w`` of a layer use is effective iff it is kept, its input element is reached and its output
element is backward-alive; a layer with several uses (a tied embedding and LM head) is effective
where any use makes it so. For a network without products, gates or softmax this equals
"SynFlow score != 0" in exact arithmetic; with them, "the gradient of a random positive
weighting of the outputs != 0" in the real model with positive random weights and inputs
(DESIGN §3). The tests check both against float64 autograd oracles (``tests/reference.py``) and
a brute-force walk over every element.

The kernels keep, per tensor row (channel), a status byte (all dead / all alive / mixed) and a
bitmap only for mixed rows, so that at practical densities the cost of a CNN is close to one read
and one write of the masks; see :mod:`sparsegraph.graph._kernels_conv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._args import check_masks, check_network
from ..graph.network import Network
from ..graph.walker import BitsWalk

__all__ = ["Reachability", "effective_masks", "reachability"]


@dataclass(frozen=True)
class Reachability:
    """Per-node alive elements of the linearised masked network.

    Attributes
    ----------
    forward : tuple of ndarray of bool
        ``forward[n]`` (shape ``net.nodes[n].shape``): elements of node ``n`` reached from some
        network input.
    nonzero : tuple of ndarray of bool
        ``nonzero[n]``: elements that are not identically zero (a superset of ``forward[n]``;
        larger only after gates, softmax and products).
    backward : tuple of ndarray of bool
        ``backward[n]``: elements from which some network output is reachable.
    effective : dict of str to ndarray of bool
        The effective masks, as :func:`effective_masks` returns them.
    """

    forward: tuple[np.ndarray, ...]
    nonzero: tuple[np.ndarray, ...]
    backward: tuple[np.ndarray, ...]
    effective: dict[str, np.ndarray]

    def alive(self, node: int) -> np.ndarray:
        """Elements of node ``node`` on some input-to-output path (forward and backward alive)."""
        return self.forward[node] & self.backward[node]


def _walk(net: Network, masks: Mapping[str, Any]) -> BitsWalk:
    net = check_network(net)
    # the walk's kernels read any nonzero byte of a bool mask as kept and write 0/1 only, so
    # the door need not scan bool masks for other bytes
    return BitsWalk(net, check_masks(net, masks, raw_bool=True)).forward().backward()


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
        For an unknown key, a wrong shape, NaN, infinity or values other than 0 and 1.
    ArgumentError
        If ``net`` is not a Network (a model name or module: trace it first).

    Notes
    -----
    See the module docstring for the definition (DESIGN §3) and the algorithm. Cost for a CNN:
    a forward pass that reads each mask row only until its output channel is known to be all
    alive, a backward pass that reads each row once while writing the result, and work
    proportional to the pixels of channels that are neither all alive nor all dead (rare at
    practical densities). ``effective_masks(net, effective_masks(net, m))`` equals
    ``effective_masks(net, m)``, and the result is a subset of the kept weights.

    Examples
    --------
    A 3 -> 2 -> 1 network in which hidden unit 1 has no outgoing weight (a dead end) and input
    0 has no weight to a live unit:

    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc1.weight", "fc1", "linear", (2, 3), 3, 2),
    ...             Layer("fc2.weight", "fc2", "linear", (1, 2), 2, 1)),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"}),
    ...            Node(2, "layer", (1,), (1,), layer=1, params={"op": "linear"})),
    ...     outputs=(2,),
    ... )
    >>> masks = {"fc1.weight": [[0, 1, 1], [1, 1, 0]], "fc2.weight": [[1, 0]]}
    >>> eff = effective_masks(net, masks)
    >>> eff["fc1.weight"].astype(int).tolist(), eff["fc2.weight"].astype(int).tolist()
    ([[0, 1, 1], [0, 0, 0]], [[1, 0]])
    """
    return _walk(net, masks).effective()


def reachability(net: Network, masks: Mapping[str, Any]) -> Reachability:
    """Reached, nonzero and backward-alive elements of every node, and the effective masks.

    Parameters
    ----------
    net : Network
        The network, from :func:`sparsegraph.trace`.
    masks : mapping of str to array-like
        As for :func:`effective_masks`.

    Returns
    -------
    Reachability
        ``forward[n]`` / ``nonzero[n]`` / ``backward[n]`` are bool arrays of
        ``net.nodes[n].shape``; ``effective`` is :func:`effective_masks`' result. The backward
        maps are pure backward reachability (an element can be backward-alive without being
        reached); an element is on an input-to-output path iff both hold
        (:meth:`Reachability.alive`).

    Raises
    ------
    MaskError, ArgumentError
        As for :func:`effective_masks`.

    Notes
    -----
    Materialising the per-node maps costs one byte per element of every tensor on top of
    :func:`effective_masks`.

    Examples
    --------
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> r = reachability(net, {"fc.weight": [[1, 0, 0], [0, 0, 0]]})
    >>> r.forward[1].tolist(), r.backward[0].tolist()
    ([True, False], [True, False, False])
    """
    walk = _walk(net, masks)
    return Reachability(
        forward=tuple(b.dense() for b in walk.fwd_r),
        nonzero=tuple(b.dense() for b in walk.fwd_z),
        backward=tuple(b.dense() for b in walk.bwd),
        effective=walk.effective(),
    )
