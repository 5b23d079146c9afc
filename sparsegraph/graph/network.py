"""The layered bipartite graph of a network: prunable layers and the wiring between them.

A :class:`Network` is what :func:`sparsegraph.trace` returns and what every other function takes.
It holds plain data only (tuples, ints, numpy arrays), no torch objects, so it pickles cheaply
(for Dask workers) and the numba kernels can be fed from it directly.

- :class:`Layer` is one prunable **parameter** (a Linear/Conv/attention/embedding weight), named
  by its parameter name; masks are keyed by it and have its shape.
- :class:`Node` is one **tensor** of the linearised network of DESIGN §3, with its true shape
  without the batch axis (any rank: ``(F,)`` for a Linear's features, ``(C, H, W)`` for an image,
  ``(T, D)`` for tokens, ``(heads, T, T)`` for attention scores), in topological order. Its
  ``kind`` says how it is computed from its ``inputs``; the kinds and their exact meaning are
  defined once, in :mod:`sparsegraph.graph.kinds`. A ``layer`` node is one *use* of a layer (a
  parameter used in several places, e.g. a tied embedding and LM head, has several).

A Network checks itself once, when it is built (:class:`~sparsegraph.errors.NetworkError` naming
the node otherwise): nodes in topological order with ``node.id`` equal to their position, every
node's arity, shapes and parameters valid for its kind, index maps in range, each layer use's
geometry fitting the weight's shape, at least one input and one output.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._args import suggest
from ..errors import MaskError, NetworkError

__all__ = ["LAYER_KINDS", "Layer", "Node", "Network"]

#: What a prunable parameter is, i.e. how its shape reads (see :class:`Layer`).
LAYER_KINDS = ("linear", "conv", "embedding")


@dataclass(frozen=True)
class Layer:
    """One prunable weight (a parameter) and how its shape reads.

    Attributes
    ----------
    name : str
        The parameter name in ``model.named_parameters()``, e.g. ``"features.0.weight"``; masks
        are keyed by it.
    module : str
        The owning module's path, e.g. ``"features.0"``.
    kind : {"linear", "conv", "embedding"}
        ``"linear"``: weight ``(out, in)`` (``nn.Linear``, attention projections; with
        ``transposed=True`` HF's ``Conv1D`` layout ``(in, out)``). ``"conv"``: weight
        ``(out, in // groups, *kernel)`` (``nn.Conv1d/2d/3d``; with ``transposed=True`` a
        transposed convolution's ``(in, out // groups, *kernel)``). ``"embedding"``: weight
        ``(vocabulary, dim)``, a linear map from a one-hot vocabulary to ``dim`` features.
    shape : tuple of int
        The weight's shape.
    in_channels, out_channels : int
        Input and output units: features, channels, or vocabulary and dimension.
    groups : int, default 1
        Convolution groups (1 otherwise).
    transposed : bool, default False
        The weight is stored input-major (see ``kind``).
    """

    name: str
    module: str
    kind: str
    shape: tuple[int, ...]
    in_channels: int
    out_channels: int
    groups: int = 1
    transposed: bool = False

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        cin, cout, g = int(self.in_channels), int(self.out_channels), int(self.groups)
        bad = f"layer {self.name!r} ({self.kind}, shape {list(shape)})"
        if self.kind not in LAYER_KINDS:
            raise NetworkError(f"{bad}: unknown layer kind; expected one of {LAYER_KINDS}")
        if min(shape, default=0) < 0 or g < 1:
            raise NetworkError(f"{bad}: negative size or groups < 1")
        if self.kind == "conv":
            if len(shape) < 3 or cin % g or cout % g:
                raise NetworkError(f"{bad}: expected (out, in // groups, *kernel) with channels "
                                   f"{cin} -> {cout} divisible by groups {g}")
            expect = (cin, cout // g) if self.transposed else (cout, cin // g)
        else:
            if g != 1:
                raise NetworkError(f"{bad}: only convolutions have groups")
            if self.kind == "embedding":
                expect = (cin, cout)
            else:
                expect = (cin, cout) if self.transposed else (cout, cin)
            if len(shape) != 2:
                raise NetworkError(f"{bad}: expected a 2-d weight")
        if shape[:2] != expect:
            raise NetworkError(f"{bad}: does not fit {cin} -> {cout} units (groups {g}); "
                               f"expected a shape starting {list(expect)}")

    @property
    def kernel(self) -> tuple[int, ...]:
        """The convolution kernel's spatial size (``()`` for linear and embedding layers)."""
        return self.shape[2:] if self.kind == "conv" else ()

    @property
    def params(self) -> int:
        """Number of weights in the layer."""
        return math.prod(self.shape)

    @property
    def fan_in(self) -> int:
        """Inputs of one output unit: ``in_channels // groups * prod(kernel)``."""
        return self.in_channels // self.groups * math.prod(self.kernel)

    @property
    def unrolled_shape(self) -> tuple[int, int]:
        """The layer's bipartite graph in the unrolled (Ramanujan) convention:
        ``(left, right) = (in_channels // groups * prod(kernel), out_channels)`` for one group."""
        return self.fan_in, self.out_channels

    def as_matrix(self, mask: np.ndarray) -> np.ndarray:
        """The mask (of :attr:`shape`) as the unrolled ``(out_channels, fan_in)`` matrix.

        Row ``o`` lists output unit ``o``'s inputs: for a convolution, the weights
        ``(o, c, *k)`` in C order of ``(c, *k)`` with ``c`` the input channel within ``o``'s group;
        for an embedding, row ``d`` holds the vocabulary entries feeding feature ``d``. A view when
        the weight is stored output-major, else a copy.
        """
        if self.kind == "embedding" or (self.kind == "linear" and self.transposed):
            return np.ascontiguousarray(mask.T)
        if self.kind == "conv" and self.transposed:
            g, cin_g, cout_g = self.groups, self.in_channels // self.groups, self.shape[1]
            m = mask.reshape(g, cin_g, cout_g, math.prod(self.kernel)).transpose(0, 2, 1, 3)
            return np.ascontiguousarray(m).reshape(self.out_channels, self.fan_in)
        return mask.reshape(self.out_channels, self.fan_in)  # explicit: a zero-size layer too

    def from_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`as_matrix`: an ``(out_channels, fan_in)`` array in the weight's
        layout (a new array)."""
        if self.kind == "embedding" or (self.kind == "linear" and self.transposed):
            return np.ascontiguousarray(matrix.T)
        if self.kind == "conv" and self.transposed:
            g, cin_g, cout_g = self.groups, self.in_channels // self.groups, self.shape[1]
            m = matrix.reshape(g, cout_g, cin_g, math.prod(self.kernel)).transpose(0, 2, 1, 3)
            return np.ascontiguousarray(m).reshape(self.shape)
        return np.array(matrix).reshape(self.shape)


@dataclass(frozen=True, eq=False)
class Node:
    """One tensor of the linearised network.

    Attributes
    ----------
    id : int
        Its position in :attr:`Network.nodes`.
    kind : str
        How it is computed (a key of :data:`sparsegraph.graph.kinds.KINDS`).
    inputs : tuple of int
        Ids of the nodes it is computed from (earlier nodes).
    shape : tuple of int
        The tensor's shape without the batch axis (any rank).
    name : str
        A label (the traced op's name).
    layer : int
        For a ``layer`` node: the index of its :class:`Layer` in :attr:`Network.layers`.
    module : str
        The path of the module whose forward produced it (for messages).
    params : mapping
        The kind's parameters (documented with each kind).
    """

    id: int
    kind: str
    inputs: tuple[int, ...]
    shape: tuple[int, ...]
    name: str = ""
    layer: int = -1
    module: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @property
    def numel(self) -> int:
        """Number of elements of the tensor."""
        return math.prod(self.shape)

    def label(self) -> str:
        """``"node 7 (add 'layer1.0.add', module 'layer1.0')"``, for messages."""
        mod = f", module {self.module!r}" if self.module else ""
        name = f" {self.name!r}" if self.name else ""
        return f"node {self.id} ({self.kind}{name}{mod})"


@dataclass(frozen=True, eq=False)
class Network:
    """The layered bipartite graph of a model; build it with :func:`sparsegraph.trace`.

    Attributes
    ----------
    layers : tuple of Layer
        Prunable layers in the order of ``model.named_parameters()``.
    nodes : tuple of Node
        The linearised network in topological order (``nodes[i].id == i``).
    outputs : tuple of int
        Ids of the output nodes.
    name : str
        A label for reports (the model's class name or built-in name).
    input_shapes : tuple of tuple of int
        Shapes of the example inputs, batch dimension included.
    skipped : tuple of (str, str)
        ``(parameter name, reason)`` for weights of Linear/Conv/attention-like modules that are
        not prunable layers of this graph (never used by the forward pass, used only as a
        constant, inside a module treated as an identity, an embedding not asked for).

    Raises
    ------
    NetworkError
        When built with inconsistent wiring (see the module docstring).
    """

    layers: tuple[Layer, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    name: str = "network"
    input_shapes: tuple[tuple[int, ...], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _uses: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)
    _inputs: list[int] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "outputs", tuple(int(o) for o in self.outputs))
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise NetworkError(f"layers[{i}] is a {type(layer).__name__}, not a Layer")
            if layer.name in self._index:
                raise NetworkError(f"layer {layer.name!r} is listed twice")
            self._index[layer.name] = i
        from .kinds import check_network  # the per-kind rules live there

        uses, inputs = check_network(self)
        self._uses.update(uses)
        self._inputs.extend(inputs)

    @classmethod
    def from_layers(cls, layers: Any, *, name: str = "layers") -> Network:
        """A Network of the given layers without wiring between them: each reads an input of
        its own and is an output. For quotas and random masks of a list of weights (no model
        to trace); every kept weight is effective in it.

        Examples
        --------
        >>> net = Network.from_layers([Layer("a.weight", "a", "linear", (4, 3), 3, 4),
        ...                            Layer("c.weight", "c", "conv", (8, 4, 3, 3), 4, 8)])
        >>> net.names, net.params
        (['a.weight', 'c.weight'], 300)
        """
        from .kinds.layer import bag_nodes

        layers = tuple(layers)
        nodes, outputs = bag_nodes(layers)
        return cls(layers=layers, nodes=tuple(nodes), outputs=tuple(outputs), name=name)

    @property
    def inputs(self) -> tuple[int, ...]:
        """Ids of the input nodes."""
        return tuple(self._inputs)

    @property
    def names(self) -> list[str]:
        """Layer (parameter) names in order."""
        return [layer.name for layer in self.layers]

    @property
    def params(self) -> int:
        """Total number of prunable weights."""
        return sum(layer.params for layer in self.layers)

    def layer(self, name: str) -> Layer:
        """The layer called ``name``.

        Raises
        ------
        MaskError
            If no prunable layer has that name; the message suggests the closest names.
        """
        try:
            return self.layers[self._index[name]]
        except KeyError:
            raise MaskError(f"unknown layer {name!r}{suggest(name, self.names)}") from None

    def index(self, name: str) -> int:
        """Position of the layer called ``name`` in :attr:`layers`."""
        self.layer(name)
        return self._index[name]

    def uses(self, name: str) -> tuple[int, ...]:
        """Ids of the ``layer`` nodes that use the layer called ``name`` (in node order)."""
        return self._uses.get(self.index(name), ())

    def fingerprint(self) -> str:
        """A short hash of the layer names and shapes, stored in mask files to recognise the
        model a mask was made for."""
        text = ";".join(f"{layer.name}:{'x'.join(map(str, layer.shape))}" for layer in self.layers)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"Network({self.name!r}, {len(self.layers)} prunable layers, "
            f"{self.params:,} weights, {len(self.nodes)} nodes)"
        )


# ----------------------------------------------------------------------------- word buffers
# Numba kernels that skip zero stretches of a mask 8 entries at a time read its buffer as
# uint64 words; these give them such a buffer.


def empty_aligned8(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised C-contiguous uint8 array whose buffer starts on an 8-byte boundary."""
    nbytes = int(np.prod(shape, dtype=np.int64))
    buf = np.empty(nbytes + 8, dtype=np.uint8)
    start = -buf.ctypes.data % 8
    return buf[start:start + nbytes].reshape(shape)


def aligned8(arr: np.ndarray) -> np.ndarray:
    """``arr`` itself when it is C-contiguous and starts on an 8-byte boundary, else such a
    copy (same dtype and values)."""
    if arr.flags.c_contiguous and arr.ctypes.data % 8 == 0:
        return arr
    out = empty_aligned8(arr.shape + (arr.itemsize,)).view(arr.dtype).reshape(arr.shape)
    out[...] = arr
    return out


def word_view(arr: np.ndarray) -> np.ndarray:
    """The first ``arr.nbytes // 8 * 8`` bytes of an :func:`aligned8` array as uint64 words."""
    flat = arr.reshape(-1).view(np.uint8)
    return flat[: flat.size // 8 * 8].view(np.uint64)
