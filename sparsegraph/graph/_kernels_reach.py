"""Numba kernels of exact effective sparsity (forward/backward reachability on pixel bitmaps).

Private: :mod:`sparsegraph.metrics.effective` validates everything and calls these; they never see a
Python object or unchecked input.

The alive elements of a ``(C, H, W)`` tensor are held per channel as

``st`` : ndarray of uint8, shape (C,)
    0 = no element of the channel alive, 1 = every element alive, 2 = mixed.
``maps`` : ndarray of uint64, shape (C, H, NW) with ``NW = ceil(W / 64)``
    A pixel bitmap (bit ``x % 64`` of word ``x // 64`` of row ``y``), meaningful **only** for
    channels with status 2 (other channels are never read, so they are never written either:
    at practical densities almost every channel is all-alive or all-dead, and this is what keeps
    the passes close to one read of the masks). Bits at ``x >= W`` are always zero.

A convolution tap ``t = ky * kw + kx`` maps output pixel ``(y, x)`` to input pixel
``(y * sy + offy[t], x * sx + offx[t])`` with ``off = k * dilation - padding``; the output pixels
whose input pixel is inside the map form the rectangle ``[ylo, yhi) x [xlo, xhi)`` (the tap's
"valid region"). ``taps`` (int64, shape (K, 6)) holds ``ylo, yhi, xlo, xhi, offy, offx`` per tap;
``fv`` (uint64, (K, Hout, NWout)) is the valid region as a bitmap (the forward image of an
all-alive input channel), ``bi`` (uint64, (K, Hin, NWin)) the input pixels the tap reads (the
backward image of an all-alive output channel), and ``flags`` (uint8, (K, 3)) holds per tap
"fv non-empty", "fv full", "bi full".
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ZERO = np.uint64(0)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


# ----------------------------------------------------------------------------- bit helpers


@njit(cache=True, inline="always")
def _bits(lo, hi):
    """uint64 with bits ``lo .. hi - 1`` set (``0 <= lo``, ``hi <= 64``)."""
    if hi <= lo:
        return _ZERO
    n = hi - lo
    if n >= 64:
        return _ALL
    return ((_ONE << np.uint64(n)) - _ONE) << np.uint64(lo)


@njit(cache=True, inline="always")
def _word(row, k):
    if k < 0 or k >= row.shape[0]:
        return _ZERO
    return row[k]


@njit(cache=True, inline="always")
def _get64(row, s):
    """The 64 bits of bitmap row ``row`` starting at bit ``s`` (may be negative; bits outside
    the row read as zero)."""
    w0 = s >> 6
    r = s & 63
    lo = _word(row, w0)
    if r == 0:
        return lo
    hi = _word(row, w0 + 1)
    return (lo >> np.uint64(r)) | (hi << np.uint64(64 - r))


@njit(cache=True, inline="always")
def _getbit(row, x):
    return (row[x >> 6] >> np.uint64(x & 63)) & _ONE


@njit(cache=True, inline="always")
def _setbit(row, x):
    row[x >> 6] |= _ONE << np.uint64(x & 63)


@njit(cache=True, inline="always")
def _next_kept(m8, m64, b, end):
    """The first position ``>= b`` and ``< end`` of a nonzero byte of the flat mask ``m8``
    (uint8), or ``end``; zero stretches are skipped 8 bytes at a time through ``m64``, the same
    buffer viewed as uint64 (8-byte aligned)."""
    while b < end and (b & 7) != 0:
        if m8[b]:
            return b
        b += 1
    while b + 8 <= end and m64[b >> 3] == _ZERO:
        b += 8
    while b < end:
        if m8[b]:
            return b
        b += 1
    return end


@njit(cache=True, inline="always")
def _next_kept_row(mask, m64, o, j):
    """The first ``j' >= j`` with ``mask[o, j'] != 0``, or ``mask.shape[1]``; like
    :func:`_next_kept` on a row of a 2-D mask whose buffer ``m64`` views as words."""
    n = mask.shape[1]
    b = o * n + j
    end = o * n + n
    while b < end and (b & 7) != 0:
        if mask[o, b - o * n]:
            return b - o * n
        b += 1
    while b + 8 <= end and m64[b >> 3] == _ZERO:
        b += 8
    while b < end:
        if mask[o, b - o * n]:
            return b - o * n
        b += 1
    return n


@njit(cache=True)
def full_row(width, nw):
    """The words of a bitmap row with all ``width`` bits set: uint64, shape (nw,)."""
    out = np.zeros(nw, dtype=np.uint64)
    for w in range(nw):
        out[w] = _bits(0, min(width - 64 * w, 64))
    return out


@njit(cache=True)
def _classify(m, frow):
    """0 / 1 / 2 for an all-zero / all-set / mixed bitmap ``m`` (uint64, (H, NW))."""
    anyset = False
    allset = True
    for y in range(m.shape[0]):
        for w in range(m.shape[1]):
            v = m[y, w]
            if v != _ZERO:
                anyset = True
            if v != frow[w]:
                allset = False
        if anyset and not allset:
            return 2
    if allset:
        return 1
    return 2 if anyset else 0


@njit(cache=True)
def _is_full(m, frow):
    for y in range(m.shape[0]):
        for w in range(m.shape[1]):
            if m[y, w] != frow[w]:
                return False
    return True


@njit(cache=True, inline="always")
def _any_and(a, b):
    for y in range(a.shape[0]):
        for w in range(a.shape[1]):
            if a[y, w] & b[y, w]:
                return True
    return False


@njit(cache=True, inline="always")
def _or_into(dst, src):
    for y in range(dst.shape[0]):
        for w in range(dst.shape[1]):
            dst[y, w] |= src[y, w]


@njit(cache=True, inline="always")
def _zero(m):
    for y in range(m.shape[0]):
        for w in range(m.shape[1]):
            m[y, w] = _ZERO


@njit(cache=True, inline="always")
def _prep(st, maps, c):
    """Make channel ``c`` writable as a bitmap (an all-dead channel gets a zeroed map)."""
    if st[c] == 0:
        _zero(maps[c])
        st[c] = 2


@njit(cache=True)
def normalize(st, maps, width):
    """Re-classify the status-2 channels of ``(st, maps)`` in place (a mixed map may have become
    all-set or stayed empty). ``st`` uint8 (C,), ``maps`` uint64 (C, H, NW), ``width`` = W."""
    frow = full_row(width, maps.shape[2])
    for c in range(st.shape[0]):
        if st[c] == 2:
            st[c] = _classify(maps[c], frow)


@njit(cache=True)
def or_channels(st_dst, map_dst, d0, st_src, map_src, s0, n):
    """Channels ``d0 .. d0 + n`` of dst |= channels ``s0 .. s0 + n`` of src (same H, W).

    All arrays as in the module docstring; ``d0``, ``s0``, ``n`` int. The result may need
    :func:`normalize`.
    """
    for k in range(n):
        s = st_src[s0 + k]
        d = d0 + k
        if s == 0 or st_dst[d] == 1:
            continue
        if s == 1:
            st_dst[d] = 1
            continue
        _prep(st_dst, map_dst, d)
        _or_into(map_dst[d], map_src[s0 + k])


# ----------------------------------------------------------------------------- conv taps


@njit(cache=True)
def conv_taps(taps, hout, wout, hin, win, sy, sx):
    """Valid-region bitmaps of every tap: returns ``(fv, bi, flags)`` (see module docstring).

    ``taps`` int64 (K, 6) with ``ylo, yhi, xlo, xhi, offy, offx``; the other arguments int.
    """
    k = taps.shape[0]
    nwo = (wout + 63) >> 6
    nwi = (win + 63) >> 6
    fv = np.zeros((k, hout, nwo), dtype=np.uint64)
    bi = np.zeros((k, hin, nwi), dtype=np.uint64)
    flags = np.zeros((k, 3), dtype=np.uint8)
    frow_o = full_row(wout, nwo)
    frow_i = full_row(win, nwi)
    for t in range(k):
        ylo, yhi, xlo, xhi, offy, offx = (
            taps[t, 0], taps[t, 1], taps[t, 2], taps[t, 3], taps[t, 4], taps[t, 5]
        )
        if yhi <= ylo or xhi <= xlo:
            continue
        flags[t, 0] = 1
        for y in range(ylo, yhi):
            for x in range(xlo, xhi):
                _setbit(fv[t, y], x)
                _setbit(bi[t, y * sy + offy], x * sx + offx)
        flags[t, 1] = _is_full(fv[t], frow_o)
        flags[t, 2] = _is_full(bi[t], frow_i)
    return fv, bi, flags


MAX_COVER_TAPS = 9


@njit(cache=True)
def tap_cover(fv, flags, wout):
    """For every set of taps (a bit per tap), whether their valid regions cover the output map.

    ``fv`` and ``flags`` as in the module docstring (``K <= MAX_COVER_TAPS`` taps); returns
    uint8 ``(2 ** K,)``. It lets :func:`conv_forward` settle a row from the set of its kept taps
    instead of OR-ing their regions.
    """
    k, hout, nwo = fv.shape
    frow = full_row(wout, nwo)
    out = np.zeros(1 << k, dtype=np.uint8)
    u = np.empty((hout, nwo), dtype=np.uint64)
    for sub in range(1, 1 << k):
        u[:, :] = _ZERO
        for t in range(k):
            if (sub >> t) & 1 and flags[t, 0]:
                _or_into(u, fv[t])
        out[sub] = _is_full(u, frow)
    return out


@njit(cache=True)
def _tap_fwd_or(dst, src, tp, sy, sx):
    """dst (out map) |= forward image of src (in map) under one tap; ``tp`` = taps[t]."""
    ylo, yhi, xlo, xhi, offy, offx = tp[0], tp[1], tp[2], tp[3], tp[4], tp[5]
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
                mk = _bits(max(xlo - base, 0), min(xhi - base, 64))
                drow[w] |= _get64(srow, base + offx) & mk
    else:
        for y in range(ylo, yhi):
            srow = src[y * sy + offy]
            drow = dst[y]
            for x in range(xlo, xhi):
                if _getbit(srow, x * sx + offx):
                    _setbit(drow, x)


@njit(cache=True)
def _tap_bwd_or(dst, src, tp, sy, sx):
    """dst (in map) |= backward image of src (out map) under one tap."""
    ylo, yhi, xlo, xhi, offy, offx = tp[0], tp[1], tp[2], tp[3], tp[4], tp[5]
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
                mk = _bits(max(q0 - base, 0), min(q1 - base, 64))
                drow[w] |= _get64(srow, base - offx) & mk
    else:
        for y in range(ylo, yhi):
            srow = src[y]
            drow = dst[y * sy + offy]
            for x in range(xlo, xhi):
                if _getbit(srow, x):
                    _setbit(drow, x * sx + offx)


@njit(cache=True)
def _tap_hit(a, b, tp, sy, sx):
    """Whether some output pixel alive in ``a`` (out map) reads, through the tap, an input
    pixel alive in ``b`` (in map)."""
    ylo, yhi, xlo, xhi, offy, offx = tp[0], tp[1], tp[2], tp[3], tp[4], tp[5]
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
                mk = _bits(max(xlo - base, 0), min(xhi - base, 64))
                if arow[w] & _get64(brow, base + offx) & mk:
                    return True
    else:
        for y in range(ylo, yhi):
            arow = a[y]
            brow = b[y * sy + offy]
            for x in range(xlo, xhi):
                if _getbit(arow, x) and _getbit(brow, x * sx + offx):
                    return True
    return False


# ----------------------------------------------------------------------------- conv layers


@njit(cache=True)
def conv_forward(mask, m8, m64, cin_g, cout_g, st_in, map_in, st_out, map_out, taps, fv, flags,
                 cover, chan_of, tap_of, sy, sx, wout):
    """Forward reachability through a masked Conv2d.

    Parameters
    ----------
    mask : uint8 (Cout, cin_g * K)
        The layer's mask, row ``o`` = weights ``(o, :, :, :)`` in C order.
    m8, m64 : uint8 (Cout * cin_g * K,), uint64 (Cout * cin_g * K // 8,)
        The same buffer, flat and as 8-byte words (the buffer must be 8-byte aligned).
    cin_g, cout_g : int
        Input and output channels per group.
    st_in, map_in : uint8 (Cin,), uint64 (Cin, Hin, NWin)
        Forward state of the input (normalised).
    st_out, map_out : uint8 (Cout,), uint64 (Cout, Hout, NWout)
        Written: forward state of the output (normalised).
    taps, fv, flags : see module docstring.
    cover : uint8 (2 ** K,) or (0,)
        From :func:`tap_cover` when ``K <= MAX_COVER_TAPS``, else empty.
    chan_of, tap_of : int32 (cin_g * K,)
        ``j // K`` and ``j % K`` for every position ``j`` of a row (no divisions in the loops).
    sy, sx, wout : int
        Strides and the output width.

    Notes
    -----
    A row stops being read as soon as the valid regions of its kept taps from all-alive input
    channels cover the output map (usually at the first kept tap of a full region); only rows
    that never get there are completed with their mixed input channels.
    """
    k = taps.shape[0]
    frow = full_row(wout, map_out.shape[2])
    seen = np.full(k, -1, dtype=np.int64)  # seen[t] == o: tap t already ORed into row o's map
    use_cover = cover.shape[0] > 0
    n = mask.shape[1]
    hout, nwo = map_out.shape[1], map_out.shape[2]
    grouped = cout_g != mask.shape[0]
    for o in range(mask.shape[0]):
        ib = (o // cout_g) * cin_g if grouped else 0
        found = False
        started = False  # map_out[o] holds the union of the valid regions seen so far
        tapset = 0  # with a cover table: the taps seen instead (map_out[o] not written)
        mixed = False
        base = o * n
        j = _next_kept(m8, m64, base, base + n) - base
        while j < n:
            il = chan_of[j]
            t = tap_of[j]
            s = st_in[ib + il]
            if s == 2:
                mixed = True
            elif s == 1:
                if flags[t, 1]:
                    found = True
                    break
                if use_cover:
                    if flags[t, 0]:
                        tapset |= 1 << t
                        if cover[tapset]:
                            found = True
                            break
                elif flags[t, 0] and seen[t] != o:
                    seen[t] = o
                    full = True
                    for y in range(hout):  # map_out[o] |= fv[t], is it full now?
                        for w in range(nwo):
                            v = fv[t, y, w]
                            if started:
                                v |= map_out[o, y, w]
                            map_out[o, y, w] = v
                            if v != frow[w]:
                                full = False
                    started = True
                    if full:
                        found = True
                        break
            j = _next_kept(m8, m64, base + j + 1, base + n) - base
        if found:
            st_out[o] = 1
            continue
        if tapset != 0:  # the union of the valid regions of the taps seen
            for t in range(k):
                if (tapset >> t) & 1:
                    if started:
                        _or_into(map_out[o], fv[t])
                    else:
                        map_out[o, :, :] = fv[t]
                        started = True
        if not (mixed or started):
            st_out[o] = 0
            continue
        m = map_out[o]
        if not started:
            _zero(m)
        if mixed:
            for il in range(cin_g):
                i = ib + il
                if st_in[i] != 2:
                    continue
                j0 = il * k
                for t in range(k):
                    if mask[o, j0 + t]:
                        _tap_fwd_or(m, map_in[i], taps[t], sy, sx)
        st_out[o] = _classify(m, frow)


@njit(cache=True)
def _send_back_taps(st_bi, map_bi, i, acc, j0, k, bi, flags, frow_i):
    """Input channel ``i`` |= the union of ``bi[t]`` over the taps ``t`` with ``acc[j0 + t]``."""
    if st_bi[i] == 1:
        return
    touched = False
    for t in range(k):
        if acc[j0 + t] and flags[t, 0]:
            if flags[t, 2]:
                st_bi[i] = 1
                return
            _prep(st_bi, map_bi, i)
            _or_into(map_bi[i], bi[t])
            touched = True
    if touched and _is_full(map_bi[i], frow_i):
        st_bi[i] = 1


@njit(cache=True)
def conv_backward(mask, m64, eff, e64, cin_g, cout_g, st_fi, map_fi, st_bo, map_bo, st_bi, map_bi,
                  taps, fv, bi, flags, chan_of, tap_of, sy, sx, win):
    """Backward reachability through a masked Conv2d, fused with writing its effective mask.

    Parameters
    ----------
    mask : uint8 (Cout, cin_g * K)
        The layer's mask (read only).
    m64 : uint64 (Cout * cin_g * K // 8,)
        The mask buffer as 8-byte words (8-byte aligned).
    eff, e64 : uint8 (Cout, cin_g * K), uint64 (Cout * cin_g * K // 8,)
        Written (every byte; the content on entry does not matter): the effective mask
        (``e64``: the same buffer as 8-byte words, 8-byte aligned). Weight
        ``(o, i, t)`` is effective iff it is kept and some output pixel of ``o`` alive in
        ``(st_bo, map_bo)`` reads through tap ``t`` an input pixel of ``i`` alive in
        ``(st_fi, map_fi)``.
    cin_g, cout_g : int
        Input and output channels per group.
    st_fi, map_fi : uint8 (Cin,), uint64 (Cin, Hin, NWin)
        Forward state of the layer input (normalised).
    st_bo, map_bo : uint8 (Cout,), uint64 (Cout, Hout, NWout)
        Backward state of the layer output (normalised).
    st_bi, map_bi : uint8 (Cin,), uint64 (Cin, Hin, NWin)
        Backward state of the layer input, accumulated in place (|= what this layer sends back:
        every input pixel that a kept weight connects to a backward-alive output pixel).
    taps, fv, bi, flags : see module docstring.
    chan_of, tap_of : int32 (cin_g * K,)
        ``j // K`` and ``j % K`` for every position ``j`` of a row.
    sy, sx, win : int
        Strides and the input width.

    Notes
    -----
    Every row is copied to ``eff`` while it is in cache. Rows of all-alive output channels
    are then fixed only at the input channels that are not all-alive forward (and at taps with
    an empty valid region); what they send back is the OR of those rows (accumulated in the
    same streaming pass as the copy, while some input channel of the group is not yet
    all-alive backward), turned into input pixels per pending channel at the end. Rows of
    mixed output channels are handled weight by weight on the bitmaps.
    """
    k = taps.shape[0]
    cout = mask.shape[0]
    cin = st_fi.shape[0]
    n = mask.shape[1]
    groups = cout // cout_g
    frow_i = full_row(win, map_bi.shape[2])
    all_nonempty = True
    for t in range(k):
        if not flags[t, 0]:
            all_nonempty = False
    # per group: input channels not all-alive forward (spec) and not yet all-alive backward (pend)
    spec = np.empty(cin, dtype=np.int64)
    nspec = np.zeros(groups, dtype=np.int64)
    pend = np.empty(cin, dtype=np.int64)
    npend = np.zeros(groups, dtype=np.int64)
    for g in range(groups):
        for il in range(cin_g):
            i = g * cin_g + il
            if st_fi[i] != 1:
                spec[g * cin_g + nspec[g]] = i
                nspec[g] += 1
            if st_bi[i] != 1:
                pend[g * cin_g + npend[g]] = i
                npend[g] += 1
    remaining = npend.copy()  # input channels per group not yet all-alive backward
    words = n % 8 == 0  # rows start on word boundaries: copy and OR them 8 bytes at a time
    nw = n // 8
    # per group, the OR of its all-alive output rows (while some input channel is pending)
    acc64 = np.zeros((groups, (n + 7) // 8), dtype=np.uint64)
    acc = acc64.view(np.uint8)
    hitc = np.full((cin, k), -1, dtype=np.int8)  # (fwd-mixed input, all-alive output) hits
    hito = np.empty(k, dtype=np.int8)  # (all-alive input, mixed output o) hits, per row
    hin, nwi = map_bi.shape[1], map_bi.shape[2]
    img = np.empty((k, hin, nwi), dtype=np.uint64)  # backward image of mixed row o per tap
    imgst = np.empty(k, dtype=np.int8)  # its status, -1 = not computed yet
    for o in range(cout):
        so = st_bo[o]
        g = o // cout_g if groups > 1 else 0
        ib = g * cin_g
        if so == 0:
            if words:
                for w in range(o * nw, (o + 1) * nw):
                    e64[w] = _ZERO
            else:
                for j in range(n):
                    eff[o, j] = 0
            continue
        # the row is copied, then fixed where needed; an all-alive row is also ORed into
        # acc while some input channel of its group is pending
        gather = so == 1 and remaining[g] != 0
        if words:
            b = o * nw
            if gather:
                for w in range(nw):
                    v = m64[b + w]
                    e64[b + w] = v
                    acc64[g, w] |= v
            else:
                for w in range(nw):
                    e64[b + w] = m64[b + w]
        else:
            for j in range(n):
                eff[o, j] = mask[o, j]
            if gather:
                for j in range(n):
                    acc[g, j] |= mask[o, j]
        if so == 1:
            if not all_nonempty:
                for il in range(cin_g):
                    for t in range(k):
                        if not flags[t, 0]:
                            eff[o, il * k + t] = 0
            for s in range(nspec[g]):
                i = spec[g * cin_g + s]
                j0 = (i - ib) * k
                if st_fi[i] == 0:
                    for t in range(k):
                        eff[o, j0 + t] = 0
                    continue
                for t in range(k):
                    if mask[o, j0 + t]:
                        h = hitc[i, t]
                        if h < 0:
                            h = 1 if _any_and(map_fi[i], bi[t]) else 0
                            hitc[i, t] = h
                        if h == 0:
                            eff[o, j0 + t] = 0
            continue
        # mixed output channel: every (input channel, tap)
        hito[:] = -1
        imgst[:] = -1
        mo = map_bo[o]
        j = _next_kept_row(mask, m64, o, 0)
        while j < n:
            il = chan_of[j]
            t = tap_of[j]
            j0 = il * k
            i = ib + il
            sf = st_fi[i]
            j = _next_kept_row(mask, m64, o, j + 1)
            if sf == 0:
                e = False
            elif sf == 1:
                h = hito[t]
                if h < 0:
                    h = 1 if _any_and(mo, fv[t]) else 0
                    hito[t] = h
                e = h == 1
            else:
                e = _tap_hit(mo, map_fi[i], taps[t], sy, sx)
            if not e:
                eff[o, j0 + t] = 0
            if st_bi[i] == 1:
                continue
            # what row o sends back through tap t is the same for every input channel
            if imgst[t] < 0:
                _zero(img[t])
                _tap_bwd_or(img[t], mo, taps[t], sy, sx)
                imgst[t] = _classify(img[t], frow_i)
            if imgst[t] == 1:
                st_bi[i] = 1
                remaining[g] -= 1
            elif imgst[t] == 2:
                if st_bi[i] == 0:
                    for y in range(hin):
                        for w in range(nwi):
                            map_bi[i, y, w] = img[t, y, w]
                    st_bi[i] = 2
                else:
                    for y in range(hin):
                        for w in range(nwi):
                            map_bi[i, y, w] |= img[t, y, w]
    # what the all-alive output rows send back, for the input channels still pending
    for g in range(groups):
        for s in range(npend[g]):
            i = pend[g * cin_g + s]
            _send_back_taps(st_bi, map_bi, i, acc[g], (i - g * cin_g) * k, k, bi, flags, frow_i)


# ----------------------------------------------------------------------------- linear layers


@njit(cache=True)
def linear_forward(mask, st_in, st_out):
    """Forward reachability through a masked Linear layer.

    ``mask`` uint8 (out, in); ``st_in`` uint8 (in,) (nonzero = alive); ``st_out`` uint8 (out,)
    written with 0/1.
    """
    n = mask.shape[1]
    for o in range(mask.shape[0]):
        alive = 0
        for i in range(n):
            if mask[o, i] and st_in[i]:
                alive = 1
                break
        st_out[o] = alive


@njit(cache=True)
def linear_backward(mask, eff, st_fi, st_bo, st_bi):
    """Backward reachability through a masked Linear layer, fused with its effective mask.

    ``mask`` uint8 (out, in); ``eff`` uint8 (out, in), written with the effective mask (kept
    and input forward-alive and output backward-alive); ``st_fi`` uint8 (in,), ``st_bo``
    uint8 (out,); ``st_bi`` uint8 (in,) accumulated in place (set to 1 for every input with a
    kept weight to a backward-alive output).
    """
    n = mask.shape[1]
    dead = np.empty(n, dtype=np.int64)
    ndead = 0
    pend = np.empty(n, dtype=np.int64)
    npend = 0
    for i in range(n):
        if st_fi[i] == 0:
            dead[ndead] = i
            ndead += 1
        if st_bi[i] != 1:
            pend[npend] = i
            npend += 1
    for o in range(mask.shape[0]):
        if st_bo[o] == 0:
            for i in range(n):
                eff[o, i] = 0
            continue
        for i in range(n):
            eff[o, i] = mask[o, i]
        for s in range(ndead):
            eff[o, dead[s]] = 0
        p = 0
        while p < npend:
            i = pend[p]
            if mask[o, i]:
                st_bi[i] = 1
                npend -= 1
                pend[p] = pend[npend]
            else:
                p += 1


# ----------------------------------------------------------------------------- pooling


@njit(cache=True)
def pool_forward(st_in, map_in, st_out, map_out, wh_ptr, wh_idx, ww_ptr, ww_idx, pf, pf_st,
                 wout):
    """Any-in-the-window pooling, forward.

    ``st_in``/``map_in`` and ``st_out``/``map_out`` as in the module docstring (the output is
    written, normalised); ``wh_ptr``/``wh_idx``, ``ww_ptr``/``ww_idx`` int64 CSR windows per
    output row / column; ``pf`` uint64 (Hout, NWout) the output pixels with a non-empty window
    and ``pf_st`` its status (0/1/2); ``wout`` int.
    """
    hin = map_in.shape[1]
    hout = map_out.shape[1]
    frow = full_row(wout, map_out.shape[2])
    tmp = np.zeros((hin, wout), dtype=np.uint8)
    for c in range(st_in.shape[0]):
        s = st_in[c]
        if s == 0:
            st_out[c] = 0
            continue
        if s == 1:
            st_out[c] = pf_st
            if pf_st == 2:
                map_out[c, :, :] = pf
            continue
        src = map_in[c]
        for yi in range(hin):
            srow = src[yi]
            for xo in range(wout):
                v = 0
                for a in range(ww_ptr[xo], ww_ptr[xo + 1]):
                    if _getbit(srow, ww_idx[a]):
                        v = 1
                        break
                tmp[yi, xo] = v
        m = map_out[c]
        _zero(m)
        for yo in range(hout):
            for xo in range(wout):
                for a in range(wh_ptr[yo], wh_ptr[yo + 1]):
                    if tmp[wh_idx[a], xo]:
                        _setbit(m[yo], xo)
                        break
        st_out[c] = _classify(m, frow)


@njit(cache=True)
def pool_backward(st_bo, map_bo, st_bi, map_bi, wh_ptr, wh_idx, ww_ptr, ww_idx, pb, pb_st, win):
    """Any-in-the-window pooling, backward: every input pixel in the window of a
    backward-alive output pixel becomes backward-alive (accumulated into ``st_bi``/``map_bi``).
    ``pb`` uint64 (Hin, NWin) is the set of input pixels in some window, ``pb_st`` its status.
    """
    hout = map_bo.shape[1]
    wout = ww_ptr.shape[0] - 1
    tmp = np.zeros((hout, win), dtype=np.uint8)
    for c in range(st_bo.shape[0]):
        s = st_bo[c]
        if s == 0 or st_bi[c] == 1:
            continue
        if s == 1:
            if pb_st == 1:
                st_bi[c] = 1
            elif pb_st == 2:
                _prep(st_bi, map_bi, c)
                _or_into(map_bi[c], pb)
            continue
        src = map_bo[c]
        tmp[:, :] = 0
        for yo in range(hout):
            for xo in range(wout):
                if _getbit(src[yo], xo):
                    for a in range(ww_ptr[xo], ww_ptr[xo + 1]):
                        tmp[yo, ww_idx[a]] = 1
        _prep(st_bi, map_bi, c)
        m = map_bi[c]
        for yo in range(hout):
            for xi in range(win):
                if tmp[yo, xi]:
                    for a in range(wh_ptr[yo], wh_ptr[yo + 1]):
                        _setbit(m[wh_idx[a]], xi)


# ----------------------------------------------------------------------------- dense views


@njit(cache=True)
def expand(st, maps, width):
    """The alive elements as a flat uint8 array of length C * H * W in (C, H, W) order."""
    c_, h_ = maps.shape[0], maps.shape[1]
    out = np.zeros(c_ * h_ * width, dtype=np.uint8)
    for c in range(c_):
        base = c * h_ * width
        if st[c] == 1:
            out[base:base + h_ * width] = 1
        elif st[c] == 2:
            for y in range(h_):
                for x in range(width):
                    out[base + y * width + x] = _getbit(maps[c, y], x)
    return out


@njit(cache=True)
def or_flat(st, maps, width, flat):
    """``(st, maps)`` |= the alive elements given as a flat uint8 array (C * H * W,), in place;
    the result is normalised."""
    c_, h_ = maps.shape[0], maps.shape[1]
    hw = h_ * width
    frow = full_row(width, maps.shape[2])
    for c in range(c_):
        if st[c] == 1:
            continue
        base = c * hw
        cnt = 0
        for e in range(hw):
            cnt += flat[base + e] != 0
        if cnt == 0:
            continue
        if cnt == hw:
            st[c] = 1
            continue
        _prep(st, maps, c)
        for y in range(h_):
            for x in range(width):
                if flat[base + y * width + x]:
                    _setbit(maps[c, y], x)
        st[c] = _classify(maps[c], frow)
