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

import difflib
import fnmatch
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MaskError

__all__ = [
    "Layer", "Node", "Network", "as_bool_mask", "check_masks", "dense_layers", "select_layers",
]

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
            raise MaskError(f"unknown layer {name!r}{_suggest(name, self.names)}") from None

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


def _suggest(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def select_layers(net: Network, patterns: Iterable[str] | None, *, what: str) -> list[str]:
    """Names of the layers matched by exact names or glob patterns, in network order.

    Parameters
    ----------
    net : Network
        The network.
    patterns : iterable of str or None
        Layer names (``"features.0.weight"``) or ``fnmatch`` globs (``"features.*"``).
    what : str
        What the list is for, named in the error message (e.g. ``"dense"``).

    Raises
    ------
    MaskError
        If a pattern matches no layer (with the closest names).
    """
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [n for n in net.names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise MaskError(
                f"{what} layer {pattern!r} matches no prunable layer{_suggest(pattern, net.names)}"
            )
        chosen.update(hits)
    return [n for n in net.names if n in chosen]


def _as_numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor; torch not imported
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is a mask error
        raise MaskError(f"mask {name!r}: cannot be read as an array ({exc})") from None


def as_bool_mask(value: Any, name: str) -> np.ndarray:
    """One mask value as a C-contiguous bool array, whatever its shape.

    The single rule for mask values: numpy arrays, torch tensors or nested lists holding only
    0 and 1 (bool, integer or float dtype); ``name`` is the layer named in the error.

    Raises
    ------
    MaskError
        For NaN, values other than 0 and 1, or a non-numeric dtype.

    Examples
    --------
    >>> as_bool_mask([[1, 0], [0.0, 1.0]], "fc.weight").tolist()
    [[True, False], [False, True]]
    >>> as_bool_mask([2, 0], "fc.weight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.MaskError: mask 'fc.weight': expected only 0 and 1, found 2 ...
    """
    arr = _as_numpy(value, name)
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "biuf":
            raise MaskError(f"mask {name!r}: expected 0/1 values, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise MaskError(f"mask {name!r}: contains NaN; a mask holds only 0 and 1")
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            value = arr[bad].flat[0]
            raise MaskError(
                f"mask {name!r}: expected only 0 and 1, found {value.item()!r} "
                f"({int(bad.sum())} such values); threshold scores into a mask first"
            )
        arr = arr != 0
    return np.ascontiguousarray(arr)


def check_masks(
    net: Network, masks: Mapping[str, Any], *, fill_missing: bool = True
) -> dict[str, np.ndarray]:
    """Validate masks against a network and return them in canonical form.

    The one door every public function passes masks through: afterwards each value is a
    C-contiguous ``bool`` numpy array of its layer's weight shape.

    Parameters
    ----------
    net : Network
        The network the masks are for.
    masks : mapping of str to array-like
        Keyed by parameter name; numpy arrays, torch tensors or nested lists with values 0/1
        (bool, integer or float dtype).
    fill_missing : bool, default True
        Give layers without a key a dense (all-True) mask. When False, missing layers are
        simply absent from the result.

    Returns
    -------
    dict of str to ndarray of bool
        In network layer order.

    Raises
    ------
    MaskError
        For an unknown key (with the closest layer names), a wrong shape, NaN, or values other
        than 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.network import Layer, Network, Node, check_masks
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3, 1, 1)), Node(1, "layer", (0,), (2, 1, 1), layer=0)),
    ...     outputs=(1,),
    ... )
    >>> check_masks(net, {"fc.weight": [[1, 0, 1], [0, 0, 1]]})["fc.weight"].sum()
    np.int64(3)
    >>> check_masks(net, {"fc.wieght": np.ones((2, 3))})
    Traceback (most recent call last):
    ...
    sparsegraph.errors.MaskError: unknown layer 'fc.wieght'; did you mean 'fc.weight'?
    """
    if not isinstance(masks, Mapping):
        raise MaskError(
            f"masks must be a mapping of layer name to array, got {type(masks).__name__}"
        )
    unknown = [k for k in masks if k not in net._index]
    if unknown:
        key = unknown[0]
        more = f" (and {len(unknown) - 1} more unknown keys)" if len(unknown) > 1 else ""
        raise MaskError(f"unknown layer {key!r}{_suggest(str(key), net.names)}{more}")
    out: dict[str, np.ndarray] = {}
    for layer in net.layers:
        if layer.name not in masks:
            if fill_missing:
                out[layer.name] = np.ones(layer.shape, dtype=bool)
            continue
        arr = _as_numpy(masks[layer.name], layer.name)
        if arr.shape != layer.shape:
            raise MaskError(
                f"mask {layer.name!r}: expected shape {list(layer.shape)}, got {list(arr.shape)}"
            )
        out[layer.name] = as_bool_mask(arr, layer.name)
    return out


def dense_layers(net: Network, masks: Mapping[str, Any]) -> list[str]:
    """Names of the layers that ``masks`` has no key for (they are taken as dense)."""
    return [name for name in net.names if name not in masks]


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
