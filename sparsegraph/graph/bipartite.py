"""The bipartite graph of one prunable layer as a scipy CSR biadjacency.

Two conventions: *unrolled* (Hoang et al.'s: left = the ``fan_in`` unrolled inputs
``c_in // groups * kh * kw``, right = output units, an edge per kept weight) and *channel*
(left = input channels, right = output channels, an edge per channel pair with at least one
kept tap, weighted by the number of kept taps). :mod:`sparsegraph.metrics.spectral` scores the
first; :mod:`sparsegraph.graph.export` writes both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .._args import as_bool_mask
from ..errors import MaskError
from .network import Layer

__all__ = ["channel_graph", "unrolled_graph"]



def _layer_mask2d(layer: Layer, mask: Any) -> np.ndarray:
    """The mask through the argument door, as the unrolled ``(out_channels, fan_in)`` matrix."""
    shape = getattr(mask, "shape", None)
    if shape is not None and tuple(shape) != layer.shape:
        raise MaskError(
            f"mask {layer.name!r}: expected shape {list(layer.shape)}, got {list(shape)}"
        )
    arr = as_bool_mask(mask, layer.name)
    if arr.shape != layer.shape:
        raise MaskError(
            f"mask {layer.name!r}: expected shape {list(layer.shape)}, got {list(arr.shape)}"
        )
    return layer.as_matrix(arr)


def unrolled_graph(layer: Layer, mask: Any, *, dtype: Any = np.float64) -> sp.csr_array:
    """The layer's bipartite graph in the paper's (unrolled) convention as a CSR biadjacency.

    Parameters
    ----------
    layer : Layer
        The prunable layer (``net.layer(name)``).
    mask : array-like of bool
        The layer's mask, of the weight's shape.
    dtype : numpy dtype, default float64
        dtype of the stored ones.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(fan_in, out)``: row ``j`` is unrolled input ``j`` (``weight.reshape(out, -1)``
        column ``j``; for a convolution ``j = (c_local * kh + ky) * kw + kx``), column ``o`` is
        output unit ``o``; an entry 1 per kept weight. Zero-degree nodes are kept.

    Raises
    ------
    MaskError
        If the mask does not have the layer's shape or is not 0/1.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer
    >>> layer = Layer("fc.weight", "fc", "linear", (2, 3), 3, 2)
    >>> unrolled_graph(layer, np.array([[1, 0, 1], [0, 0, 1]], bool)).toarray()
    array([[1., 0.],
           [0., 0.],
           [1., 1.]])
    """
    m2 = _layer_mask2d(layer, mask)
    counts = np.count_nonzero(m2, axis=0)
    indptr = np.zeros(m2.shape[1] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    _, cols = np.nonzero(m2.T)
    data = np.ones(cols.size, dtype=dtype)
    return sp.csr_array((data, cols, indptr), shape=(m2.shape[1], m2.shape[0]))


def channel_graph(layer: Layer, mask: Any, *, dtype: Any = np.float64) -> sp.csr_array:
    """The layer's channel-level bipartite graph: edge weight = number of kept kernel taps.

    Parameters
    ----------
    layer : Layer
        The prunable layer.
    mask : array-like of bool
        The layer's mask, of the weight's shape.
    dtype : numpy dtype, default float64
        dtype of the stored tap counts.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(in_channels, out_channels)``; entry ``(i, o)`` is the number of kept weights
        from input channel ``i`` to output channel ``o`` (explicit entries only where it is
        positive). Grouped and depthwise convolutions connect only within a group.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer
    >>> conv = Layer("c.weight", "c", "conv", (2, 1, 2, 2), 2, 2, groups=2)
    >>> m = np.zeros((2, 1, 2, 2), bool); m[0, 0, 0, :] = True; m[1, 0, 1, 1] = True
    >>> channel_graph(conv, m).toarray()
    array([[2., 0.],
           [0., 1.]])
    """
    m2 = _layer_mask2d(layer, mask)
    out, cin, g = layer.out_channels, layer.in_channels, layer.groups
    per_group_in = cin // g
    counts = np.count_nonzero(m2.reshape(out, per_group_in, -1), axis=2)  # (out, cin/g)
    o_idx, j_idx = np.nonzero(counts)
    in_idx = (o_idx // (out // g)) * per_group_in + j_idx
    mat = sp.coo_array(
        (counts[o_idx, j_idx].astype(dtype), (in_idx, o_idx)), shape=(cin, out)
    ).tocsr()
    mat.sort_indices()
    return mat
