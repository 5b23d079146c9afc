"""The layered bipartite graph of a network: prunable layers, the wiring between them, and masks.

A :class:`Network` is what :func:`sparsegraph.trace` returns and what every other function takes.
It holds plain data only (tuples, ints, numpy arrays), no torch objects, so it pickles cheaply
(for Dask workers) and the numba kernels can be fed from it directly.

The wiring is the *linearised* network of DESIGN §3 as a list of :class:`Node` in topological
order. Every tensor is canonicalised without its batch dimension to a ``(C, H, W)`` shape:
``(N, F)`` becomes ``(F, 1, 1)``, ``(N, C, L)`` becomes ``(C, 1, L)``, ``(N, C, H, W)`` stays.
Element-wise and per-channel operations (activations, normalisation, dropout, scaling, biases)
are identity maps and leave no node. The node kinds are:

``input``
    A network input. ``inputs`` is empty.
``layer``
    A prunable layer (``Network.layers[node.layer]``) applied to ``inputs[0]``. A Linear layer
    sees a ``(F, 1, 1)`` tensor; a Conv2d layer sees ``(C_in, H, W)``.
``pool``
    Any-input-in-the-window pooling of ``inputs[0]``, channel by channel. Output row ``y`` reads
    the input rows ``window_h[1][window_h[0][y]:window_h[0][y + 1]]`` and output column ``x``
    the input columns ``window_w[1][window_w[0][x]:window_w[0][x + 1]]`` (CSR index arrays,
    int64; padding positions are left out, so every index is in range). Max, average, adaptive
    and global pooling, and spatial means/sums, all take this form.
``add``
    Element-wise sum of ``inputs`` (all of this node's shape): residual connections.
``cat``
    Concatenation of ``inputs`` along the channel axis, in order.
``reshape``
    The elements of ``inputs[0]`` in their flat (C, H, W) order, relabelled to this node's shape:
    flatten, view and reshape.

``Network.outputs`` lists the node ids whose elements are network outputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .._args import suggest
from ..errors import MaskError

__all__ = ["Layer", "Node", "Network"]

NODE_OPS = ("input", "layer", "pool", "add", "cat", "reshape")


@dataclass(frozen=True)
class Layer:
    """One prunable weight and the geometry of the layer that owns it.

    Attributes
    ----------
    name : str
        The parameter name in ``model.named_parameters()``, e.g. ``"features.0.weight"``; masks
        are keyed by it.
    module : str
        The owning module's path, e.g. ``"features.0"``.
    kind : {"linear", "conv"}
        ``nn.Linear`` or ``nn.Conv2d``.
    shape : tuple of int
        The weight's shape: ``(out, in)`` or ``(out, in // groups, kh, kw)``.
    in_channels, out_channels, groups : int
        Input and output units (neurons or channels) and the convolution's groups (1 for Linear).
    kernel, stride, padding, dilation : tuple of (int, int)
        Convolution geometry (``(1, 1)``, ``(1, 1)``, ``(0, 0)``, ``(1, 1)`` for Linear).
        ``padding`` is the resolved top/left padding, also for ``padding="same"``.
    in_hw, out_hw : tuple of (int, int)
        Spatial size of the layer's input and output (``(1, 1)`` for Linear).
    """

    name: str
    module: str
    kind: str
    shape: tuple[int, ...]
    in_channels: int
    out_channels: int
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    in_hw: tuple[int, int] = (1, 1)
    out_hw: tuple[int, int] = (1, 1)

    @property
    def params(self) -> int:
        """Number of weights in the layer."""
        return int(np.prod(self.shape))

    @property
    def fan_in(self) -> int:
        """Inputs of one output unit: ``in_channels // groups * kh * kw``."""
        return self.in_channels // self.groups * self.kernel[0] * self.kernel[1]

    @property
    def unrolled_shape(self) -> tuple[int, int]:
        """The layer's bipartite graph in the unrolled (Ramanujan) convention:
        ``(left, right) = (in_channels // groups * kh * kw, out_channels)`` for one group."""
        return self.fan_in, self.out_channels


@dataclass(frozen=True, eq=False)
class Node:
    """One tensor of the linearised network; see the module docstring for the op kinds."""

    id: int
    op: str
    inputs: tuple[int, ...]
    shape: tuple[int, int, int]
    name: str = ""
    layer: int = -1
    window_h: tuple[np.ndarray, np.ndarray] | None = None
    window_w: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def numel(self) -> int:
        """Number of elements (units times pixels) of the tensor."""
        return int(self.shape[0] * self.shape[1] * self.shape[2])


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
    """

    layers: tuple[Layer, ...]
    nodes: tuple[Node, ...]
    outputs: tuple[int, ...]
    name: str = "network"
    input_shapes: tuple[tuple[int, ...], ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({layer.name: i for i, layer in enumerate(self.layers)})

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
