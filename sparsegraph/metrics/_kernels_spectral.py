"""Numba kernels of :mod:`sparsegraph.metrics.spectral` (private): a layer's bipartite graph
read from its mask's bytes (left CSR and degrees) and the right-neighbour counts of groups of
its left nodes. The Lanczos solver's kernels are in :mod:`sparsegraph.metrics._kernels_lanczos`.

Array/scalar-only signatures, no validation. The masks they read are C-contiguous bool arrays
with 0/1 bytes (:func:`sparsegraph._args.as_bool_mask`): :func:`left_csr` sums bytes of 8-byte
words.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def group_right_counts(lp, li, n_right, members, offsets, out):  # pragma: no cover - compiled
    """Number of distinct right neighbours of each group of left nodes.

    Parameters
    ----------
    lp, li : int64[:]; CSR of the layer's left nodes (as :func:`top2_groups`)
    n_right : int64
    members, offsets : int64[:]; the groups (as :func:`top2_groups`)
    out : int64[:], (G,); set to the counts
    """
    mark = np.full(n_right, -1, dtype=np.int64)
    for g in range(offsets.size - 1):
        cnt = 0
        for a in range(offsets[g], offsets[g + 1]):
            node = members[a]
            for e in range(lp[node], lp[node + 1]):
                c = li[e]
                if mark[c] != g:
                    mark[c] = g
                    cnt += 1
        out[g] = cnt


_ZERO64 = np.uint64(0)
_ONE64 = np.uint64(1)
_BYTES_ONE = np.uint64(0x0101010101010101)
_LOW_BYTE = np.uint64(0xFF)
_SHIFT56 = np.uint64(56)
_SHIFT58 = np.uint64(58)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_POS = np.zeros(64, dtype=np.int64)  # bit index of 2**i from its de Bruijn product
for _i in range(64):
    _DEBRUIJN_POS[((1 << _i) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _i


@njit(cache=True)
def left_csr(m2, words, deg_r, deg_l):  # pragma: no cover - compiled
    """CSR of the left (column) nodes of a bool ``(out, fan_in)`` mask, and both degrees.

    Parameters
    ----------
    m2 : bool[:, ::1], (out, fan_in)
    words : uint64[:], the first ``m2.size // 8`` 8-byte words of ``m2``'s buffer (8-byte
        aligned), used to skip zero stretches 8 entries at a time
    deg_r : int64[:], (out,); set to the row (right node) degrees
    deg_l : int64[:], (fan_in,); set to the column (left node) degrees

    Returns
    -------
    (int64[:] (fan_in + 1,), int64[:] (E,)): indptr and the right nodes of each left node, in
    increasing order.
    """
    out, fan_in = m2.shape
    flat = m2.reshape(-1)
    n = flat.size
    nw = words.size
    # the flat positions of the kept entries, in increasing order: count them (bytes are 0/1,
    # so a multiply sums a word's bytes into its top byte), then list them, taking the set
    # bytes of a non-zero word lowest first (de Bruijn index of the lowest set bit)
    total = 0
    for w in range(nw):
        total += ((words[w] * _BYTES_ONE) >> _SHIFT56) & _LOW_BYTE
    for b in range(8 * nw, n):
        total += flat[b] != 0
    pos = np.empty(total, dtype=np.int64)
    k = 0
    for w in range(nw):
        v = words[w]
        while v != _ZERO64:
            low = v & (~v + _ONE64)
            pos[k] = 8 * w + (_DEBRUIJN_POS[(low * _DEBRUIJN) >> _SHIFT58] >> 3)
            k += 1
            v ^= low
    for b in range(8 * nw, n):
        if flat[b]:
            pos[k] = b
            k += 1
    for j in range(fan_in):
        deg_l[j] = 0
    o = 0
    row_end = fan_in
    cnt = 0
    for e in range(total):
        b = pos[e]
        while b >= row_end:
            deg_r[o] = cnt
            cnt = 0
            o += 1
            row_end += fan_in
        cnt += 1
        deg_l[b - (row_end - fan_in)] += 1
    while o < out:
        deg_r[o] = cnt
        cnt = 0
        o += 1
    lp = np.empty(fan_in + 1, dtype=np.int64)
    lp[0] = 0
    for j in range(fan_in):
        lp[j + 1] = lp[j] + deg_l[j]
    fill = lp[:fan_in].copy()
    li = np.empty(total, dtype=np.int64)
    o = 0
    row_end = fan_in
    for e in range(total):  # rows in increasing order: each left node's list is sorted
        b = pos[e]
        while b >= row_end:
            o += 1
            row_end += fan_in
        j = b - (row_end - fan_in)
        li[fill[j]] = o
        fill[j] += 1
    return lp, li
