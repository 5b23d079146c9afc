"""Numba kernels of reachability through 1-d and 2-d convolutions on row bitmaps (private).

Tensors are in the row form of :mod:`sparsegraph.graph._kernels_rows` with rows = channels and
each channel an ``(H, W)`` bitmap (a 1-d convolution is one with ``H = 1``). A mask is read as
uint8 ``(Cout, cin_g * K)`` rows, any nonzero byte = kept; position ``j`` of a row is input
channel ``j // K`` of the group and tap ``j % K`` (``t = ky * kw + kx``).

A tap ``t`` maps output pixel ``(y, x)`` to input pixel ``(y * sy + offy[t], x * sx + offx[t])``
with ``off = k * dilation - padding``; the output pixels whose input pixel lies inside the map
form the rectangle ``[ylo, yhi) x [xlo, xhi)`` (the tap's *valid region*). ``taps`` (int64,
(K, 6)) holds ``ylo, yhi, xlo, xhi, offy, offx`` per tap; ``fv`` (uint64, (K, Hout, NWout)) is the
valid region as a bitmap (the forward image of an all-set input channel), ``bi`` (uint64, (K,
Hin, NWin)) the input pixels the tap reads (the backward image of an all-set output channel) and
``flags`` (uint8, (K, 3)) says per tap "fv not empty", "fv full", "bi full".

At practical densities almost every channel is all-set or all-clear, so a row of the mask is
settled by a vectorised scan for one kept weight at a position that decides it (an all-set input
channel through a tap whose valid region is the whole map) and the backward pass is one
normalised copy of the mask per all-alive output channel; only channels that are neither cost
work on their pixels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_rows import (
    ZERO,
    any_and,
    classify,
    clear,
    copy_into,
    copy_rows,
    get64,
    getbit,
    is_full,
    keep_row,
    keep_row_gather,
    lowbits,
    next_kept,
    normalise,
    or_into,
    or_words,
    pass_rows,
    prep,
    setbit,
    tbyte,
    tset,
    zero_rows,
)

MAX_COVER_TAPS = 9  # kernels with at most this many taps get a cover table (2 ** K bytes)
FLUSH_ROWS = 16  # all-alive rows gathered before the first check of what is settled


# ------------------------------------------------------------------------------ tap tables


@njit(cache=True)
def conv_taps(taps, sy, sx, fv, bi, flags, frow_o, frow_i):  # pragma: no cover - compiled
    """Fill ``fv``, ``bi`` and ``flags`` (zeroed on entry) from ``taps`` (see the module
    docstring); ``frow_o`` / ``frow_i`` are full lines of the output / input width."""
    for t in range(taps.shape[0]):
        ylo, yhi, xlo, xhi = taps[t, 0], taps[t, 1], taps[t, 2], taps[t, 3]
        offy, offx = taps[t, 4], taps[t, 5]
        if yhi <= ylo or xhi <= xlo:
            continue
        flags[t, 0] = 1
        for y in range(ylo, yhi):
            for x in range(xlo, xhi):
                setbit(fv[t, y], x)
                setbit(bi[t, y * sy + offy], x * sx + offx)
        flags[t, 1] = is_full(fv[t], frow_o)
        flags[t, 2] = is_full(bi[t], frow_i)


@njit(cache=True)
def tap_cover(fv, flags, frow, u, out):  # pragma: no cover - compiled
    """``out[s]`` (uint8, (2 ** K,)) = whether the valid regions of the taps in bit set ``s``
    cover the output map (``K <= MAX_COVER_TAPS``); ``u`` is an ``(Hout, NWout)`` scratch
    bitmap. It settles a row from the set of its kept taps without OR-ing their regions. With
    the backward images ``bi`` (and ``frow``, ``u`` of the input width) instead of ``fv``:
    whether the taps together read every input pixel."""
    k = fv.shape[0]
    for sub in range(1, 1 << k):
        clear(u)
        for t in range(k):
            if (sub >> t) & 1 and flags[t, 0]:
                or_into(u, fv[t])
        out[sub] = is_full(u, frow)


# ------------------------------------------------------------------------ one tap, bitmaps


@njit(cache=True)
def tap_fwd_or(dst, src, taps, t, sy, sx):  # pragma: no cover - compiled
    """dst (output map) |= forward image of src (input map) under tap ``t``."""
    ylo, yhi, xlo, xhi = taps[t, 0], taps[t, 1], taps[t, 2], taps[t, 3]
    offy, offx = taps[t, 4], taps[t, 5]
    if yhi <= ylo or xhi <= xlo:
        return
    if sx == 1:
        w0 = xlo >> 6
        w1 = (xhi - 1) >> 6
        for y in range(ylo, yhi):
            srow = src[y * sy + offy]
            drow = dst[y]
            for w in range(w0, w1 + 1):
                base = w * 64
                mk = lowbits(max(xlo - base, 0), min(xhi - base, 64))
                drow[w] |= get64(srow, base + offx) & mk
    else:
        for y in range(ylo, yhi):
            srow = src[y * sy + offy]
            drow = dst[y]
            for x in range(xlo, xhi):
                if getbit(srow, x * sx + offx):
                    setbit(drow, x)


@njit(cache=True)
def tap_bwd_or(dst, src, taps, t, sy, sx):  # pragma: no cover - compiled
    """dst (input map) |= backward image of src (output map) under tap ``t``."""
    ylo, yhi, xlo, xhi = taps[t, 0], taps[t, 1], taps[t, 2], taps[t, 3]
    offy, offx = taps[t, 4], taps[t, 5]
    if yhi <= ylo or xhi <= xlo:
        return
    if sx == 1:
        q0 = xlo + offx
        q1 = xhi + offx
        w0 = q0 >> 6
        w1 = (q1 - 1) >> 6
        for y in range(ylo, yhi):
            srow = src[y]
            drow = dst[y * sy + offy]
            for w in range(w0, w1 + 1):
                base = w * 64
                mk = lowbits(max(q0 - base, 0), min(q1 - base, 64))
                drow[w] |= get64(srow, base - offx) & mk
    else:
        for y in range(ylo, yhi):
            srow = src[y]
            drow = dst[y * sy + offy]
            for x in range(xlo, xhi):
                if getbit(srow, x):
                    setbit(drow, x * sx + offx)


@njit(cache=True)
def tap_hit(a, b, taps, t, sy, sx):  # pragma: no cover - compiled
    """Whether some output pixel set in ``a`` (output map) reads, through tap ``t``, an input
    pixel set in ``b`` (input map)."""
    ylo, yhi, xlo, xhi = taps[t, 0], taps[t, 1], taps[t, 2], taps[t, 3]
    offy, offx = taps[t, 4], taps[t, 5]
    if yhi <= ylo or xhi <= xlo:
        return False
    if sx == 1:
        w0 = xlo >> 6
        w1 = (xhi - 1) >> 6
        for y in range(ylo, yhi):
            arow = a[y]
            brow = b[y * sy + offy]
            for w in range(w0, w1 + 1):
                base = w * 64
                mk = lowbits(max(xlo - base, 0), min(xhi - base, 64))
                if arow[w] & get64(brow, base + offx) & mk:
                    return True
    else:
        for y in range(ylo, yhi):
            arow = a[y]
            brow = b[y * sy + offy]
            for x in range(xlo, xhi):
                if getbit(arow, x) and getbit(brow, x * sx + offx):
                    return True
    return False


# ------------------------------------------------------------------------- per-group tables


@njit(cache=True)
def _tables(st_in, map_in, cin_g, k, groups, n, bi, flags):  # pragma: no cover - compiled
    """Per group, from the forward state of the input: ``sel`` (a kept weight there makes its
    output channel all-set: an all-set input channel through a tap whose valid region is the
    whole map; byte 0xFF) and ``keep`` (the weights that are effective when kept and their
    output channel is all-alive backward: a nonempty valid region reading some set input pixel;
    byte 0xFF), as tables of words (see :mod:`sparsegraph.graph._kernels_rows`); per group
    ``info`` = (has a sel position, can be reached otherwise, keep is everything); and the mixed
    input channels of each group (``mix``, ``nmix``)."""
    nwp = (n + 7) >> 3
    sel = np.zeros((groups, nwp), dtype=np.uint64)
    keep = np.zeros((groups, nwp), dtype=np.uint64)
    info = np.zeros((groups, 3), dtype=np.uint8)
    mix = np.empty(st_in.shape[0], dtype=np.int64)
    nmix = np.zeros(groups, dtype=np.int64)
    for g in range(groups):
        info[g, 2] = 1
        for il in range(cin_g):
            i = g * cin_g + il
            s = st_in[i]
            if s == 2:
                mix[g * cin_g + nmix[g]] = i
                nmix[g] += 1
                info[g, 1] = 1
            for t in range(k):
                j = il * k + t
                if flags[t, 0] and (s == 1 or (s == 2 and any_and(map_in[i], bi[t]))):
                    tset(keep, g, j, 255)
                else:
                    info[g, 2] = 0
                if s == 1 and flags[t, 0]:
                    if flags[t, 1]:
                        tset(sel, g, j, 255)
                        info[g, 0] = 1
                    else:
                        info[g, 1] = 1
    return sel, keep, info, mix, nmix


# ----------------------------------------------------------------------------------- forward


@njit(cache=True)
def conv_forward(m8, m64, e8, e64, acc, write, n, cin_g, cout_g, st_in, map_in, st_out, map_out,
                 taps, fv, bi, flags, cover, sy, sx, frow):  # pragma: no cover - compiled
    """Forward reachability through a masked convolution, and its effective mask for the case
    that every output pixel is alive backward.

    Parameters
    ----------
    m8, m64 : uint8 (Cout * n,), uint64 (Cout * n // 8,) or (0,)
        The layer's mask, flat (row ``o`` = weights ``(o, :, :, :)``; nonzero = kept), and the
        same buffer as words (see :mod:`sparsegraph.graph._kernels_rows`).
    e8, e64 : like ``m8``, ``m64``
        If ``write``, written with 0/1: weight ``(o, i, t)`` is kept, its tap's valid region is
        not empty and it reads some set pixel of input channel ``i`` (the effective mask when
        output channel ``o`` is all-alive backward; :func:`conv_backward` fixes the others).
    acc : uint64 (groups, ceil(n / 8))
        If ``write``, |= the OR of the group's rows (bytes, nonzero = kept; what the group sends
        back when all its output channels are alive backward), else unused.
    write : bool
    n : int
        ``cin_g * K``, the length of a row.
    cin_g, cout_g : int
        Input and output channels per group.
    st_in, map_in : uint8 (Cin,), uint64 (Cin, Hin, NWin)
        Forward state of the input (normalised).
    st_out, map_out : uint8 (Cout,), uint64 (Cout, Hout, NWout)
        Written: forward state of the output (normalised).
    taps, fv, bi, flags : see the module docstring.
    cover : uint8 (2 ** K,) or (0,)
        :func:`tap_cover` of ``fv`` when ``K <= MAX_COVER_TAPS``, else empty.
    sy, sx : int
        Strides.
    frow : uint64 (NWout,)
        A full line of the output width.

    Returns
    -------
    int
        0 / 1 / 2: every output channel clear / set / otherwise.

    Notes
    -----
    Each row is read once, in one vectorised pass (:func:`pass_rows`) that writes its effective
    weights, ORs it into ``acc`` and finds a kept weight from an all-set input channel through a
    tap whose valid region is the whole map (which settles the row). Only rows without one are
    read again weight by weight, settled by the cover table of their kept taps, and completed
    with their mixed input channels. Mask bytes other than 0/1 are copied as they are and
    turned into 1 at the end, only if there was one.
    """
    cout = st_out.shape[0]
    k = taps.shape[0]
    groups = cout // cout_g
    sel, keep, info, mix, nmix = _tables(st_in, map_in, cin_g, k, groups, n, bi, flags)
    use_cover = cover.shape[0] > 0
    seen = np.empty(k, dtype=np.int64)  # seen[t] == o: tap t already ORed into row o's map
    for t in range(k):
        seen[t] = -1
    n_full = 0
    n_clear = 0
    hits = np.empty(cout, dtype=np.uint8)
    bad = pass_rows(m8, m64, e8, e64, n, cout_g, keep, sel, acc, write, hits)
    for o in range(cout):
        g = o // cout_g if groups > 1 else 0
        if hits[o]:
            st_out[o] = 1
            n_full += 1
            continue
        if not info[g, 1]:
            st_out[o] = 0
            n_clear += 1
            continue
        ib = g * cin_g
        m = map_out[o]
        found = False
        started = False  # m holds the union of the valid regions seen so far
        tapset = 0  # with a cover table: the taps seen instead (m not written)
        mixed = False
        j = next_kept(m8, m64, o, 0, n)
        while j < n:
            il = j // k
            t = j - il * k
            s = st_in[ib + il]
            if s == 2:
                mixed = True
            elif s == 1 and flags[t, 0]:
                if use_cover:
                    tapset |= 1 << t
                    if cover[tapset]:
                        found = True
                        break
                elif seen[t] != o:
                    seen[t] = o
                    if started:
                        or_into(m, fv[t])
                    else:
                        copy_into(m, fv[t])
                        started = True
                    if is_full(m, frow):
                        found = True
                        break
            j = next_kept(m8, m64, o, j + 1, n)
        if found:
            st_out[o] = 1
            n_full += 1
            continue
        if tapset != 0:  # the union of the valid regions of the taps seen
            for t in range(k):
                if (tapset >> t) & 1:
                    if started:
                        or_into(m, fv[t])
                    else:
                        copy_into(m, fv[t])
                        started = True
        if not (mixed or started):
            st_out[o] = 0
            n_clear += 1
            continue
        if not started:
            clear(m)
        if mixed:
            for q in range(nmix[g]):
                i = mix[g * cin_g + q]
                j0 = (i - ib) * k
                for t in range(k):
                    if m8[o * n + j0 + t] != 0:
                        tap_fwd_or(m, map_in[i], taps, t, sy, sx)
        c = classify(m, frow)
        st_out[o] = c
        n_full += c == 1
        n_clear += c == 0
    if write:
        normalise(e8, e64, bad)
    if n_clear == cout:
        return 0
    return 1 if n_full == cout else 2


# ---------------------------------------------------------------------------------- backward


@njit(cache=True)
def _tapset(acc, g, j0, k):  # pragma: no cover - compiled
    """The taps ``t < k`` whose byte ``j0 + t`` of ``acc[g]`` is set, as bits."""
    ts = 0
    for t in range(k):
        if tbyte(acc, g, j0 + t) != ZERO:
            ts |= 1 << t
    return ts


@njit(cache=True)
def _sent_all(acc, g, j0, k, flags, bcover):  # pragma: no cover - compiled
    """Whether the kept taps recorded in ``acc[g]`` for the input channel at ``j0`` together
    read every pixel of it (``bcover``: :func:`tap_cover` of the backward images, or empty)."""
    if bcover.shape[0] > 0:
        return bcover[_tapset(acc, g, j0, k)] != 0
    for t in range(k):
        if flags[t, 2] and tbyte(acc, g, j0 + t) != ZERO:
            return True
    return False


@njit(cache=True)
def _settle(g, pend, npend, cin_g, acc, st_bi, flags, bcover, k):  # pragma: no cover - compiled
    """Drop from group ``g``'s pending input channels those that are all-alive backward now:
    already so, or wholly read by the kept taps in ``acc[g]`` (the OR of the group's all-alive
    output rows). Returns the new count."""
    p = 0
    base = g * cin_g
    while p < npend:
        i = pend[base + p]
        if st_bi[i] == 1 or _sent_all(acc, g, (i - base) * k, k, flags, bcover):
            st_bi[i] = 1
            npend -= 1
            pend[base + p] = pend[base + npend]
        else:
            p += 1
    return npend


@njit(cache=True)
def _send_back(st_bi, map_bi, i, acc, g, j0, k, bi, flags, bcover, frow_i):  # pragma: no cover
    """Input channel ``i`` |= the union of ``bi[t]`` over the taps ``t`` whose byte ``j0 + t``
    of ``acc[g]`` is set."""
    if st_bi[i] == 1:
        return
    if _sent_all(acc, g, j0, k, flags, bcover):
        st_bi[i] = 1
        return
    touched = False
    for t in range(k):
        if flags[t, 0] and tbyte(acc, g, j0 + t) != ZERO:
            prep(st_bi, map_bi, i)
            or_into(map_bi[i], bi[t])
            touched = True
    if touched and is_full(map_bi[i], frow_i):
        st_bi[i] = 1


@njit(cache=True)
def conv_backward(m8, m64, e8, e64, acc_fwd, written, n, cin_g, cout_g, st_fi, map_fi, st_bo,
                  map_bo, st_bi, map_bi, taps, fv, bi, flags, bcover, sy, sx,
                  frow_i):  # pragma: no cover - compiled
    """Backward reachability through a masked convolution, fused with its effective mask.

    Parameters
    ----------
    m8, m64 : uint8 (Cout * n,), uint64 (Cout * n // 8,) or (0,)
        The layer's mask, flat (nonzero = kept; read only), and the same buffer as words.
    e8, e64 : like ``m8``, ``m64``
        The effective mask, 0/1: weight ``(o, i, t)`` is effective iff it is kept and some
        output pixel of ``o`` alive in ``(st_bo, map_bo)`` reads through tap ``t`` an input
        pixel of ``i`` set in ``(st_fi, map_fi)``. With ``written``, it holds on entry what
        :func:`conv_forward` wrote, and only the rows of output channels that are not all-alive
        are rewritten; else every row is written.
    acc_fwd : uint64 (groups, ceil(n / 8))
        With ``written``: the OR of each group's rows, from :func:`conv_forward`.
    written : bool
    n : int
        ``cin_g * K``, the length of a row.
    cin_g, cout_g : int
        Input and output channels per group.
    st_fi, map_fi : uint8 (Cin,), uint64 (Cin, Hin, NWin)
        Forward state of the layer input (normalised).
    st_bo, map_bo : uint8 (Cout,), uint64 (Cout, Hout, NWout)
        Backward state of the layer output (normalised).
    st_bi, map_bi : uint8 (Cin,), uint64 (Cin, Hin, NWin)
        Backward state of the layer input, accumulated in place (|= every input pixel that a
        kept weight joins to a backward-alive output pixel).
    taps, fv, bi, flags : see the module docstring.
    bcover : uint8 (2 ** K,) or (0,)
        :func:`tap_cover` of the backward images ``bi`` when ``K <= MAX_COVER_TAPS``.
    sy, sx : int
        Strides.
    frow_i : uint64 (NWin,)
        A full line of the input width.

    Notes
    -----
    What the all-alive output rows send back is the OR of those rows: with ``written`` and
    every output channel of the group all-alive, ``acc_fwd`` without reading the mask again;
    otherwise those rows are read while some input channel of the group is not yet all-alive
    backward (checked after 16, 32, 64, ... such rows). Mixed output channels are handled weight
    by weight on the bitmaps.
    """
    cout = st_bo.shape[0]
    k = taps.shape[0]
    cin = st_fi.shape[0]
    groups = cout // cout_g
    if written:  # the effective weights of all-alive rows are written already
        keep = np.zeros((1, 1), dtype=np.uint64)
        info = np.zeros((1, 3), dtype=np.uint8)
    else:
        sel, keep, info, mix, nmix = _tables(st_fi, map_fi, cin_g, k, groups, n, bi, flags)
    pend = np.empty(cin, dtype=np.int64)  # per group: input channels not all-alive backward
    npend = np.zeros(groups, dtype=np.int64)
    for g in range(groups):
        for il in range(cin_g):
            i = g * cin_g + il
            if st_bi[i] != 1:
                pend[g * cin_g + npend[g]] = i
                npend[g] += 1
    nwp = (n + 7) >> 3
    acc = np.zeros((groups, nwp), dtype=np.uint64)  # per group: OR of its all-alive rows
    from_fwd = np.zeros(groups, dtype=np.uint8)  # acc[g] is the forward pass's: all alive
    if written:
        for g in range(groups):
            every = True
            for o in range(g * cout_g, (g + 1) * cout_g):
                if st_bo[o] != 1:
                    every = False
                    break
            if every:
                from_fwd[g] = 1
                for w in range(nwp):
                    acc[g, w] = acc_fwd[g, w]
    gathered = np.zeros(groups, dtype=np.int64)  # all-alive rows ORed into acc so far
    check = np.empty(groups, dtype=np.int64)  # when to look at pend next
    for g in range(groups):
        check[g] = FLUSH_ROWS
    hito = np.empty(k, dtype=np.int8)  # (all-set input, mixed output o) hits, per row
    hin, nwi = map_bi.shape[1], map_bi.shape[2]
    img = np.empty((k, hin, nwi), dtype=np.uint64)  # backward image of mixed row o per tap
    imgst = np.empty(k, dtype=np.int8)  # its status, -1 = not computed yet
    bad = ZERO  # OR of the mask bytes copied here
    o = 0
    while o < cout:
        so = st_bo[o]
        g = o // cout_g if groups > 1 else 0
        if so == 0:
            o1 = o + 1
            while o1 < cout and st_bo[o1] == 0:
                o1 += 1
            zero_rows(e8, e64, o, o1, n)
            o = o1
            continue
        if so == 1:
            if npend[g] != 0 and not from_fwd[g]:
                if not written:
                    bad |= keep_row_gather(e8, e64, m8, m64, o, n, keep, g, acc)
                elif m64.shape[0] == 0:
                    for j in range(n):
                        if m8[o * n + j] != 0:
                            tset(acc, g, j, 1)
                else:
                    or_words(acc[g], m64[o * (n >> 3):(o + 1) * (n >> 3)])
                gathered[g] += 1
                if gathered[g] == check[g]:
                    check[g] *= 2
                    npend[g] = _settle(g, pend, npend[g], cin_g, acc, st_bi, flags, bcover, k)
                o += 1
            elif written:
                o += 1
            elif info[g, 2]:  # a run of rows whose table keeps everything: one plain copy
                end = (g + 1) * cout_g
                o1 = o + 1
                while o1 < end and st_bo[o1] == 1:
                    o1 += 1
                bad |= copy_rows(e8, e64, m8, m64, o, o1, n)
                o = o1
            else:
                bad |= keep_row(e8, e64, m8, m64, o, n, keep, g)
                o += 1
            continue
        # mixed output channel: every kept (input channel, tap)
        ib = g * cin_g
        zero_rows(e8, e64, o, o + 1, n)
        for t in range(k):
            hito[t] = -1
            imgst[t] = -1
        mo = map_bo[o]
        j = next_kept(m8, m64, o, 0, n)
        while j < n:
            il = j // k
            t = j - il * k
            i = ib + il
            sf = st_fi[i]
            if sf == 1:
                h = hito[t]
                if h < 0:
                    h = 1 if any_and(mo, fv[t]) else 0
                    hito[t] = h
                e8[o * n + j] = h
            elif sf == 2:
                e8[o * n + j] = 1 if tap_hit(mo, map_fi[i], taps, t, sy, sx) else 0
            if st_bi[i] != 1:
                # what row o sends back through tap t is the same for every input channel
                if imgst[t] < 0:
                    clear(img[t])
                    tap_bwd_or(img[t], mo, taps, t, sy, sx)
                    imgst[t] = classify(img[t], frow_i)
                if imgst[t] == 1:
                    st_bi[i] = 1
                elif imgst[t] == 2:
                    if st_bi[i] == 0:
                        copy_into(map_bi[i], img[t])
                        st_bi[i] = 2
                    else:
                        or_into(map_bi[i], img[t])
            j = next_kept(m8, m64, o, j + 1, n)
        o += 1
    if not written:
        normalise(e8, e64, bad)
    # what the all-alive output rows send back, for the input channels still pending
    for g in range(groups):
        for p in range(npend[g]):
            i = pend[g * cin_g + p]
            _send_back(st_bi, map_bi, i, acc, g, (i - g * cin_g) * k, k, bi, flags, bcover,
                       frow_i)
