"""Numba kernels of reachability through a Linear layer on a vector and through pooling
windows on row bitmaps (private).

Arrays as in :mod:`sparsegraph.graph._kernels_rows`: a vector of ``F`` features is ``F`` rows of
one element (``st`` only, 0/1); a mask is uint8 ``(out, in)``, any nonzero byte = kept; every
array written holds 0/1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_rows import (
    ZERO,
    classify,
    copy_into,
    copy_rows,
    getbit,
    keep_row,
    keep_row_gather,
    normalise,
    or_into,
    or_words,
    pass_rows,
    prep,
    setbit,
    summary,
    tbyte,
    tset,
    zero_rows,
)

FLUSH_ROWS = 16  # alive rows gathered before the first check of what is settled


# ------------------------------------------------------------------------------------ linear


@njit(cache=True)
def _table(st_in, n):  # pragma: no cover - compiled
    """The inputs that are set (byte 0xFF; table of words), and whether all are."""
    sel = np.zeros((1, (n + 7) >> 3), dtype=np.uint64)
    every = True
    for i in range(n):
        if st_in[i] != 0:
            tset(sel, 0, i, 255)
        else:
            every = False
    return sel, every


@njit(cache=True)
def linear_forward(m8, m64, e8, e64, acc, write, n, st_in, st_out):  # pragma: no cover
    """Forward reachability through a masked Linear layer, and its effective mask for the case
    that every output is alive backward.

    ``m8`` uint8 (out * n,) is the mask, flat (nonzero = kept), ``m64`` the same as words or
    empty (see :mod:`sparsegraph.graph._kernels_rows`), ``n`` = in; ``st_in`` uint8 (in,);
    ``st_out`` uint8 (out,), written: 1 iff some kept weight ``(o, i)`` has ``st_in[i] != 0``.
    With ``write``, ``e8``/``e64`` (like ``m8``/``m64``) are written with the kept weights from
    set inputs (0/1) and ``acc`` (uint64 (1, ceil(n / 8))) |= the OR of the rows. One read of
    every row. Returns :func:`summary` of ``st_out``.
    """
    sel, every = _table(st_in, n)
    bad = pass_rows(m8, m64, e8, e64, n, st_out.shape[0], sel, sel, acc, write, st_out)
    if write:
        normalise(e8, e64, bad)
    return summary(st_out)


@njit(cache=True)
def linear_backward(m8, m64, e8, e64, acc_fwd, written, n, st_fi, st_bo,
                    st_bi):  # pragma: no cover - compiled
    """Backward reachability through a masked Linear layer, fused with its effective mask.

    ``m8``/``m64`` the mask as for :func:`linear_forward`; ``e8``/``e64`` the effective mask
    (kept, input forward-set, output backward-alive; 0/1): with ``written`` it holds what
    :func:`linear_forward` wrote (and ``acc_fwd`` the OR of the rows) and only the rows of dead
    outputs are rewritten, else every row is written. ``st_fi`` uint8 (in,), ``st_bo`` uint8
    (out,); ``st_bi`` uint8 (in,) accumulated in place (1 for every input with a kept weight to
    a backward-alive output): with every output alive and ``written`` that is ``acc_fwd``,
    otherwise the alive rows are ORed together while some input is not yet alive (checked after
    16, 32, 64, ... rows).
    """
    keep, every = _table(st_fi, n)
    nwp = (n + 7) >> 3
    pend = np.empty(n, dtype=np.int64)
    npend = 0
    for i in range(n):
        if st_bi[i] != 1:
            pend[npend] = i
            npend += 1
    acc = np.zeros((1, nwp), dtype=np.uint64)
    cout = st_bo.shape[0]
    from_fwd = False
    if written:
        from_fwd = True
        for o in range(cout):
            if st_bo[o] != 1:
                from_fwd = False
                break
        if from_fwd:
            for w in range(nwp):
                acc[0, w] = acc_fwd[0, w]
    gathered = 0
    check = FLUSH_ROWS
    bad = ZERO
    for o in range(cout):
        if st_bo[o] == 0:
            zero_rows(e8, e64, o, o + 1, n)
            continue
        if npend == 0 or from_fwd:
            if not written:
                if every:
                    bad |= copy_rows(e8, e64, m8, m64, o, o + 1, n)
                else:
                    bad |= keep_row(e8, e64, m8, m64, o, n, keep, 0)
            continue
        if not written:
            bad |= keep_row_gather(e8, e64, m8, m64, o, n, keep, 0, acc)
        elif m64.shape[0] == 0:
            for j in range(n):
                if m8[o * n + j] != 0:
                    tset(acc, 0, j, 1)
        else:
            or_words(acc[0], m64[o * (n >> 3):(o + 1) * (n >> 3)])
        gathered += 1
        if gathered == check:
            check *= 2
            p = 0
            while p < npend:
                i = pend[p]
                if tbyte(acc, 0, i) != ZERO:
                    st_bi[i] = 1
                    npend -= 1
                    pend[p] = pend[npend]
                else:
                    p += 1
    if not written:
        normalise(e8, e64, bad)
    for p in range(npend):
        i = pend[p]
        if tbyte(acc, 0, i) != ZERO:
            st_bi[i] = 1


# ----------------------------------------------------------------------------------- pooling


@njit(cache=True)
def pool_forward(st_in, map_in, st_out, map_out, wh_ptr, wh_idx, ww_ptr, ww_idx, pf, pf_st,
                 frow, line):  # pragma: no cover - compiled
    """Any-in-the-window pooling, forward.

    ``st_in``/``map_in`` and ``st_out``/``map_out`` in the row form (the output is written,
    normalised); ``wh_ptr``/``wh_idx``, ``ww_ptr``/``ww_idx`` int64 CSR windows per output line /
    column; ``pf`` uint64 (Hout, NWout) the output pixels with a non-empty window and ``pf_st``
    its status (0/1/2); ``frow`` a full output line; ``line`` a uint64 (NWin,) scratch line.
    Returns :func:`summary` of the output. A mixed channel costs, per output line, the OR of
    the input lines of its window and one test per output pixel of that line.
    """
    hout, nwi = map_out.shape[1], map_in.shape[2]
    wout = ww_ptr.shape[0] - 1
    for c in range(st_in.shape[0]):
        s = st_in[c]
        if s == 0:
            st_out[c] = 0
            continue
        if s == 1:
            st_out[c] = pf_st
            if pf_st == 2:
                copy_into(map_out[c], pf)
            continue
        src = map_in[c]
        m = map_out[c]
        for yo in range(hout):
            for w in range(nwi):
                line[w] = ZERO
            for a in range(wh_ptr[yo], wh_ptr[yo + 1]):
                srow = src[wh_idx[a]]
                for w in range(nwi):
                    line[w] |= srow[w]
            drow = m[yo]
            for w in range(drow.shape[0]):
                drow[w] = ZERO
            hit = False
            for w in range(nwi):
                if line[w] != ZERO:
                    hit = True
            if not hit:
                continue
            for xo in range(wout):
                for a in range(ww_ptr[xo], ww_ptr[xo + 1]):
                    if getbit(line, ww_idx[a]):
                        setbit(drow, xo)
                        break
        st_out[c] = classify(m, frow)
    return summary(st_out)


@njit(cache=True)
def pool_backward(st_bo, map_bo, st_bi, map_bi, wh_ptr, wh_idx, ww_ptr, ww_idx, pb, pb_st,
                  line):  # pragma: no cover - compiled
    """Any-in-the-window pooling, backward: every input pixel in the window of a
    backward-alive output pixel becomes backward-alive (accumulated into ``st_bi``/``map_bi``;
    may need normalising). ``pb`` uint64 (Hin, NWin) is the set of input pixels in some window,
    ``pb_st`` its status; ``line`` a uint64 (NWin,) scratch line.
    """
    hout, nwi = map_bo.shape[1], map_bi.shape[2]
    wout = ww_ptr.shape[0] - 1
    for c in range(st_bo.shape[0]):
        s = st_bo[c]
        if s == 0 or st_bi[c] == 1:
            continue
        if s == 1:
            if pb_st == 1:
                st_bi[c] = 1
            elif pb_st == 2:
                prep(st_bi, map_bi, c)
                or_into(map_bi[c], pb)
            continue
        src = map_bo[c]
        prep(st_bi, map_bi, c)
        m = map_bi[c]
        for yo in range(hout):
            srow = src[yo]
            for w in range(nwi):
                line[w] = ZERO
            hit = False
            for xo in range(wout):
                if getbit(srow, xo):
                    hit = True
                    for a in range(ww_ptr[xo], ww_ptr[xo + 1]):
                        setbit(line, ww_idx[a])
            if not hit:
                continue
            for a in range(wh_ptr[yo], wh_ptr[yo + 1]):
                drow = m[wh_idx[a]]
                for w in range(nwi):
                    drow[w] |= line[w]
