"""Numba kernels of reachability on flat 0/1 byte arrays (private).

The row-bitmap kernels of :mod:`sparsegraph.graph._kernels_conv` serve the CNN hot path; these
serve the kinds that move elements between axes (index maps of any rank) and convolutions that
are not 1-d/2-d (3-d and transposed convolutions). Every array is C-contiguous uint8 holding 0/1
(or int64 index arrays); the callers validate everything. Every kernel is also valid Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["axis_or", "axis_or_back", "nd_conv_backward", "nd_conv_forward", "tap_pairs"]


@njit(cache=True)
def axis_or(src, ptr, idx, dst):  # pragma: no cover - compiled
    """``dst[a, i, b] = OR over j in window i of src[a, j, b]``.

    ``src`` uint8 (A, n_in, B); ``ptr`` int64 (n_out + 1,) and ``idx`` int64 (nnz,) the CSR
    windows (input positions read by each output position); ``dst`` uint8 (A, n_out, B),
    written entirely.
    """
    a_, n_out, b_ = dst.shape
    for a in range(a_):
        for i in range(n_out):
            for b in range(b_):
                dst[a, i, b] = 0
            for p in range(ptr[i], ptr[i + 1]):
                j = idx[p]
                for b in range(b_):
                    if src[a, j, b]:
                        dst[a, i, b] = 1


@njit(cache=True)
def axis_or_back(src, ptr, idx, dst):  # pragma: no cover - compiled
    """``dst[a, j, b] |= src[a, i, b]`` for every ``j`` in window ``i`` (the transpose of
    :func:`axis_or`). ``src`` uint8 (A, n_out, B), ``dst`` uint8 (A, n_in, B) accumulated."""
    a_, n_out, b_ = src.shape
    for a in range(a_):
        for i in range(n_out):
            for p in range(ptr[i], ptr[i + 1]):
                j = idx[p]
                for b in range(b_):
                    if src[a, i, b]:
                        dst[a, j, b] = 1


def tap_pairs(in_sizes, out_sizes, kernel, stride, padding, dilation, transposed):
    """Per kernel tap, the (output position, input position) pairs it connects (flat C-order
    positions over the spatial axes), as CSR over taps: ``(ptr, out_pos, in_pos)`` int64.

    Regular convolution: output ``y`` reads input ``q = y * s - p + k * d`` (per axis).
    Transposed convolution: input ``q`` writes output ``y = q * s - p + k * d``. Plain numpy (called
    once per layer use when the plan is built).
    """
    n = len(kernel)
    ktaps = int(np.prod(kernel)) if n else 1
    outs, ins, counts = [], [], []
    in_sizes = tuple(int(v) for v in in_sizes)
    out_sizes = tuple(int(v) for v in out_sizes)
    for t in range(ktaps):
        ks = np.unravel_index(t, kernel) if n else ()
        axes_out, axes_in = [], []
        for a in range(n):
            s, p, d, k = stride[a], padding[a], dilation[a], int(ks[a])
            if transposed:
                q = np.arange(in_sizes[a])
                y = q * s - p + k * d
                ok = (y >= 0) & (y < out_sizes[a])
                axes_out.append(y[ok])
                axes_in.append(q[ok])
            else:
                y = np.arange(out_sizes[a])
                q = y * s - p + k * d
                ok = (q >= 0) & (q < in_sizes[a])
                axes_out.append(y[ok])
                axes_in.append(q[ok])
        grid_o = np.meshgrid(*axes_out, indexing="ij")
        grid_i = np.meshgrid(*axes_in, indexing="ij")
        po = np.ravel_multi_index([g.ravel() for g in grid_o], out_sizes) if n else np.zeros(1)
        pi = np.ravel_multi_index([g.ravel() for g in grid_i], in_sizes) if n else np.zeros(1)
        outs.append(np.asarray(po, dtype=np.int64))
        ins.append(np.asarray(pi, dtype=np.int64))
        counts.append(outs[-1].size)
    ptr = np.zeros(ktaps + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, np.concatenate(outs), np.concatenate(ins)


@njit(cache=True)
def _status(x):  # pragma: no cover - compiled
    """Per row of a 2-d 0/1 array: 0 none set, 1 all set, 2 mixed (uint8)."""
    st = np.zeros(x.shape[0], dtype=np.uint8)
    for r in range(x.shape[0]):
        cnt = 0
        for c in range(x.shape[1]):
            cnt += x[r, c] != 0
        st[r] = 0 if cnt == 0 else (1 if cnt == x.shape[1] else 2)
    return st


@njit(cache=True)
def nd_conv_forward(mask, xin, out, ptr, tpo, tpi, cin_g, cout_g):  # pragma: no cover
    """Forward reachability through a masked convolution given by its tap pairs.

    ``mask`` uint8 (Cout, cin_g * K) (row ``o``: weights ``(o, i_local, t)``); ``xin`` uint8
    (Cin, P_in) the input's set elements per channel; ``out`` uint8 (Cout, P_out), written;
    ``ptr``/``tpo``/``tpi`` from :func:`tap_pairs`.
    """
    k = ptr.shape[0] - 1
    st = _status(xin)
    pout = out.shape[1]
    for o in range(out.shape[0]):
        for p in range(pout):
            out[o, p] = 0
        ib = (o // cout_g) * cin_g
        for il in range(cin_g):
            i = ib + il
            if st[i] == 0:
                continue
            for t in range(k):
                if mask[o, il * k + t] == 0:
                    continue
                if st[i] == 1:
                    for e in range(ptr[t], ptr[t + 1]):
                        out[o, tpo[e]] = 1
                else:
                    for e in range(ptr[t], ptr[t + 1]):
                        if xin[i, tpi[e]]:
                            out[o, tpo[e]] = 1


@njit(cache=True)
def nd_conv_backward(mask, eff, xin, bout, bin_, ptr, tpo, tpi, cin_g, cout_g):  # pragma: no cover
    """Backward reachability through a masked convolution given by its tap pairs, with its
    effective mask.

    ``eff`` uint8 like ``mask``, written: kept and some pair (output ``p`` alive backward in
    ``bout``, input ``q`` set in ``xin``). ``bout`` uint8 (Cout, P_out); ``bin_`` uint8
    (Cin, P_in) accumulated (every input position a kept tap joins to a backward-alive output).
    """
    k = ptr.shape[0] - 1
    sto = _status(bout)
    for o in range(mask.shape[0]):
        ib = (o // cout_g) * cin_g
        for j in range(mask.shape[1]):
            eff[o, j] = 0
        if sto[o] == 0:
            continue
        for il in range(cin_g):
            i = ib + il
            for t in range(k):
                if mask[o, il * k + t] == 0:
                    continue
                e = 0
                for q in range(ptr[t], ptr[t + 1]):
                    if bout[o, tpo[q]]:
                        bin_[i, tpi[q]] = 1
                        if xin[i, tpi[q]]:
                            e = 1
                eff[o, il * k + t] = e
