"""Numba kernels on the row form of an element set, and scans of mask rows (private).

The row form (:mod:`sparsegraph.graph._bits`) of a tensor seen as ``(R, M, W)``:

``st`` : ndarray of uint8, shape (R,)
    0 = no element of the row set, 1 = every element set, 2 = mixed.
``maps`` : ndarray of uint64, shape (R, M, NW) with ``NW = ceil(W / 64)``
    A bitmap of the row (bit ``x % 64`` of word ``x // 64`` of line ``y``), meaningful **only**
    where ``st == 2``: other rows are never read, so they are never written either. Bits at
    ``x >= W`` are always zero.

Mask rows (uint8, one row per output unit) are read with **any nonzero byte = kept**, so a
kernel can read a bool mask whose bytes are not 0/1 (a crafted file, a ``.view(bool)``) without
a separate pass; every array a kernel returns holds only 0 and 1. Mask rows are scanned and
copied as 8-byte words where they are whole aligned words.

Every kernel is plain array code over C-contiguous arrays and scalars (no reshapes, slice
assignments, formatted errors or other Python-object work, which make compiling slow) and is
also valid Python (``NUMBA_DISABLE_JIT=1``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

ZERO = np.uint64(0)
ONE = np.uint64(1)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
LOW_BYTES = np.uint64(0x0101010101010101)
HIGH_BITS = np.uint64(0xFEFEFEFEFEFEFEFE)


# ---------------------------------------------------------------------------- bit helpers


@njit(cache=True)
def lowbits(lo, hi):  # pragma: no cover - compiled
    """uint64 with bits ``lo .. hi - 1`` set (``0 <= lo``, ``hi <= 64``)."""
    if hi <= lo:
        return ZERO
    n = hi - lo
    if n >= 64:
        return ALL
    return ((ONE << np.uint64(n)) - ONE) << np.uint64(lo)


@njit(cache=True)
def get64(row, s):  # pragma: no cover - compiled
    """The 64 bits of bitmap line ``row`` (uint64, (NW,)) from bit ``s`` on (``s`` may be
    negative; bits outside the line read as zero)."""
    n = row.shape[0]
    w0 = s >> 6
    r = s & 63
    lo = row[w0] if 0 <= w0 < n else ZERO
    if r == 0:
        return lo
    hi = row[w0 + 1] if 0 <= w0 + 1 < n else ZERO
    return (lo >> np.uint64(r)) | (hi << np.uint64(64 - r))


@njit(cache=True)
def getbit(row, x):  # pragma: no cover - compiled
    """Bit ``x`` of a bitmap line (0 or 1, uint64)."""
    return (row[x >> 6] >> np.uint64(x & 63)) & ONE


@njit(cache=True)
def setbit(row, x):  # pragma: no cover - compiled
    """Set bit ``x`` of a bitmap line."""
    row[x >> 6] |= ONE << np.uint64(x & 63)


@njit(cache=True)
def full_line(width, out):  # pragma: no cover - compiled
    """``out`` (uint64, (NW,)) = the words of a line with all ``width`` bits set."""
    for w in range(out.shape[0]):
        out[w] = lowbits(0, min(width - 64 * w, 64))


@njit(cache=True)
def classify(m, frow):  # pragma: no cover - compiled
    """0 / 1 / 2 for an all-clear / all-set / mixed bitmap ``m`` (uint64, (M, NW)); ``frow`` is
    :func:`full_line` of the width."""
    anyset = False
    allset = True
    for y in range(m.shape[0]):
        for w in range(m.shape[1]):
            v = m[y, w]
            if v != ZERO:
                anyset = True
            if v != frow[w]:
                allset = False
        if anyset and not allset:
            return 2
    if allset:
        return 1
    return 2 if anyset else 0


@njit(cache=True)
def is_full(m, frow):  # pragma: no cover - compiled
    """Whether bitmap ``m`` (uint64, (M, NW)) has every bit of the width set."""
    for y in range(m.shape[0]):
        for w in range(m.shape[1]):
            if m[y, w] != frow[w]:
                return False
    return True


@njit(cache=True)
def any_and(a, b):  # pragma: no cover - compiled
    """Whether two bitmaps of one shape share a set bit."""
    for y in range(a.shape[0]):
        for w in range(a.shape[1]):
            if a[y, w] & b[y, w]:
                return True
    return False


@njit(cache=True)
def or_into(dst, src):  # pragma: no cover - compiled
    """``dst |= src`` (bitmaps of one shape)."""
    for y in range(dst.shape[0]):
        for w in range(dst.shape[1]):
            dst[y, w] |= src[y, w]


@njit(cache=True)
def or_words(dst, src):  # pragma: no cover - compiled
    """``dst |= src`` (1-d word arrays of one length; slices of a row are vectorised, where
    indices like ``base + w`` into a whole buffer are not)."""
    for w in range(dst.shape[0]):
        dst[w] |= src[w]


@njit(cache=True)
def copy_into(dst, src):  # pragma: no cover - compiled
    """``dst = src`` (bitmaps of one shape)."""
    for y in range(dst.shape[0]):
        for w in range(dst.shape[1]):
            dst[y, w] = src[y, w]


@njit(cache=True)
def clear(m):  # pragma: no cover - compiled
    """Every bit of bitmap ``m`` cleared."""
    for y in range(m.shape[0]):
        for w in range(m.shape[1]):
            m[y, w] = ZERO


@njit(cache=True)
def prep(st, maps, c):  # pragma: no cover - compiled
    """Make row ``c`` writable as a bitmap (an all-clear row gets a cleared map)."""
    if st[c] == 0:
        clear(maps[c])
        st[c] = 2


@njit(cache=True)
def summary(st):  # pragma: no cover - compiled
    """0 if every row is clear, 1 if every row is set, else 2 (uint8 ``st``)."""
    n0 = 0
    n1 = 0
    for c in range(st.shape[0]):
        s = st[c]
        n0 += s == 0
        n1 += s == 1
    if n0 == st.shape[0]:
        return 0
    if n1 == st.shape[0]:
        return 1
    return 2


# ---------------------------------------------------------------------------- row-form ops


@njit(cache=True)
def normalize(st, maps, width, frow):  # pragma: no cover - compiled
    """Re-classify the status-2 rows of ``(st, maps)`` in place (a mixed map may have become
    all-set or stayed clear); ``frow`` is :func:`full_line` of ``width``. Returns
    :func:`summary` of the result."""
    for c in range(st.shape[0]):
        if st[c] == 2:
            st[c] = classify(maps[c], frow)
    return summary(st)


@njit(cache=True)
def or_rows(st_dst, map_dst, d0, st_src, map_src, s0, n):  # pragma: no cover - compiled
    """Rows ``d0 .. d0 + n`` of dst |= rows ``s0 .. s0 + n`` of src (same M, W); the result may
    need :func:`normalize`."""
    for k in range(n):
        s = st_src[s0 + k]
        d = d0 + k
        if s == 0 or st_dst[d] == 1:
            continue
        if s == 1:
            st_dst[d] = 1
            continue
        prep(st_dst, map_dst, d)
        or_into(map_dst[d], map_src[s0 + k])


@njit(cache=True)
def expand(st, maps, width, out):  # pragma: no cover - compiled
    """``out`` (uint8, (R * M * W,), C order) = the set elements as 0/1 bytes."""
    r_, m_ = maps.shape[0], maps.shape[1]
    per = m_ * width
    for c in range(r_):
        base = c * per
        s = st[c]
        if s != 2:
            for e in range(per):
                out[base + e] = s
            continue
        for y in range(m_):
            line = maps[c, y]
            b = base + y * width
            for x in range(width):
                out[b + x] = getbit(line, x)


@njit(cache=True)
def or_flat(st, maps, width, flat, frow):  # pragma: no cover - compiled
    """``(st, maps) |=`` the elements set in ``flat`` (uint8, (R * M * W,), C order, nonzero =
    set), in place; the result is normalised and its :func:`summary` returned."""
    r_, m_ = maps.shape[0], maps.shape[1]
    per = m_ * width
    for c in range(r_):
        if st[c] == 1:
            continue
        base = c * per
        cnt = 0
        for e in range(per):
            cnt += flat[base + e] != 0
        if cnt == 0:
            continue
        if cnt == per:
            st[c] = 1
            continue
        prep(st, maps, c)
        for y in range(m_):
            line = maps[c, y]
            b = base + y * width
            for x in range(width):
                if flat[b + x]:
                    setbit(line, x)
        st[c] = classify(maps[c], frow)
    return summary(st)


# ----------------------------------------------------------------------------- mask scans
#
# A mask of ``rows`` rows of ``n`` positions is given twice, flat: ``m8`` (uint8,
# (rows * n,)) and ``m64`` (uint64, (rows * n // 8,)), the same bytes as words when
# ``n % 8 == 0`` and the buffer is 8-byte aligned, else an empty array (the byte loops then do
# the work). Per-position tables (``sel``, ``keep``, ``acc``: one row per group) are uint64
# words holding one byte per position (position ``j`` in byte ``j % 8`` of word ``j // 8``).
# Rows are addressed by offset, never taken as views: a view per row costs more than scanning
# it. The copies of mask bytes keep their value (AND with a 0xFF / 0x00 table) and return the
# OR of what they copied, so that a kernel learns at no cost whether it has to turn other
# nonzero bytes into 1 afterwards (:func:`normalise`).


@njit(cache=True)
def tbyte(tab, g, j):  # pragma: no cover - compiled
    """Byte ``j`` of row ``g`` of a table of words."""
    return (tab[g, j >> 3] >> np.uint64((j & 7) << 3)) & np.uint64(0xFF)


@njit(cache=True)
def tset(tab, g, j, v):  # pragma: no cover - compiled
    """Byte ``j`` of row ``g`` of a table of words |= ``v``."""
    tab[g, j >> 3] |= np.uint64(v) << np.uint64((j & 7) << 3)


@njit(cache=True)
def row_hits(m8, m64, o, n, sel, g):  # pragma: no cover - compiled
    """Whether some kept position ``j`` of row ``o`` has byte ``j`` of ``sel[g]`` set (0xFF; 0
    elsewhere, so that a kept byte of any value survives the AND). Stops at the first hit, four
    words at a time."""
    if m64.shape[0] == 0:
        b = o * n
        for j in range(n):
            if m8[b + j] != 0 and tbyte(sel, g, j) != ZERO:
                return True
        return False
    nw = n >> 3
    b = o * nw
    w = 0
    while w + 4 <= nw:
        if ((m64[b + w] & sel[g, w]) | (m64[b + w + 1] & sel[g, w + 1])
                | (m64[b + w + 2] & sel[g, w + 2]) | (m64[b + w + 3] & sel[g, w + 3])) != ZERO:
            return True
        w += 4
    while w < nw:
        if m64[b + w] & sel[g, w]:
            return True
        w += 1
    return False


@njit(cache=True)
def next_kept(m8, m64, o, j, n):  # pragma: no cover - compiled
    """The first position ``j' >= j`` of row ``o`` that is kept, or ``n``; runs of zero words
    are skipped four at a time."""
    b = o * n
    if m64.shape[0] == 0:
        while j < n:
            if m8[b + j] != 0:
                return j
            j += 1
        return n
    while j < n and (j & 7) != 0:
        if m8[b + j] != 0:
            return j
        j += 1
    nw = n >> 3
    bw = o * nw
    w = j >> 3
    while w + 4 <= nw and (m64[bw + w] | m64[bw + w + 1] | m64[bw + w + 2]
                           | m64[bw + w + 3]) == ZERO:
        w += 4
    while w < nw and m64[bw + w] == ZERO:
        w += 1
    if w == nw:
        return n
    j = w << 3
    while m8[b + j] == 0:
        j += 1
    return j


@njit(cache=True)
def pass_rows(m8, m64, e8, e64, n, rows_g, keep, sel, acc, write, hits):  # pragma: no cover
    """One read of every row of a mask whose rows come in groups of ``rows_g``: ``hits[o]``
    (uint8, written) = whether a kept position ``j`` of row ``o`` has byte ``j`` of
    ``sel[g]`` set (0xFF); if ``write``, row ``o`` of ``e8`` = the mask bytes where byte ``j``
    of ``keep[g]`` is 0xFF, else 0, and ``acc[g] |=`` the row. Returns the OR of the bytes read
    (a word; see :func:`normalise`). One vectorised loop per row; the whole layer in one call,
    since a call per row costs as much as the row."""
    bad = ZERO
    groups = sel.shape[0]
    if m64.shape[0] == 0:
        for g in range(groups):
            for o in range(g * rows_g, (g + 1) * rows_g):
                b = o * n
                h = False
                for j in range(n):
                    v = m8[b + j]
                    if v != 0:
                        bad |= np.uint64(v)
                        if tbyte(sel, g, j) != ZERO:
                            h = True
                        if write:
                            e8[b + j] = v if tbyte(keep, g, j) != ZERO else 0
                            tset(acc, g, j, 1)
                    elif write:
                        e8[b + j] = 0
                hits[o] = h
        return bad
    nw = n >> 3
    for g in range(groups):
        kg = keep[g]
        sg = sel[g]
        ag = acc[g]
        for o in range(g * rows_g, (g + 1) * rows_g):
            b = o * nw
            src = m64[b:b + nw]
            h = ZERO
            if write:
                dst = e64[b:b + nw]
                for w in range(nw):
                    v = src[w]
                    dst[w] = v & kg[w]
                    h |= v & sg[w]
                    ag[w] |= v
                    bad |= v
            else:
                for w in range(nw):
                    h |= src[w] & sg[w]
            hits[o] = h != ZERO
    return bad


@njit(cache=True)
def copy_rows(e8, e64, m8, m64, o0, o1, n):  # pragma: no cover - compiled
    """Rows ``o0 .. o1 - 1`` of ``e8`` = those of ``m8`` (``e64``: ``e8`` as words, like
    ``m64``); returns the OR of the bytes copied (as a word)."""
    bad = ZERO
    if m64.shape[0] == 0:
        for q in range(o0 * n, o1 * n):
            v = m8[q]
            e8[q] = v
            bad |= np.uint64(v)
        return bad
    nw = n >> 3
    src = m64[o0 * nw:o1 * nw]
    dst = e64[o0 * nw:o1 * nw]
    for q in range(src.shape[0]):
        v = src[q]
        dst[q] = v
        bad |= v
    return bad


@njit(cache=True)
def keep_row(e8, e64, m8, m64, o, n, keep, g):  # pragma: no cover - compiled
    """Row ``o`` of ``e8`` = that of ``m8`` where byte ``j`` of ``keep[g]`` is 0xFF, else 0;
    returns the OR of the mask bytes read."""
    bad = ZERO
    if m64.shape[0] == 0:
        b = o * n
        for j in range(n):
            v = m8[b + j]
            e8[b + j] = v if tbyte(keep, g, j) != ZERO else 0
            bad |= np.uint64(v)
        return bad
    nw = n >> 3
    src = m64[o * nw:(o + 1) * nw]
    dst = e64[o * nw:(o + 1) * nw]
    kg = keep[g]
    for w in range(nw):
        v = src[w]
        dst[w] = v & kg[w]
        bad |= v
    return bad


@njit(cache=True)
def keep_row_gather(e8, e64, m8, m64, o, n, keep, g, acc):  # pragma: no cover - compiled
    """:func:`keep_row`, and ``acc[g] |=`` the row (bytes, nonzero = kept) in the same pass."""
    bad = ZERO
    if m64.shape[0] == 0:
        b = o * n
        for j in range(n):
            v = m8[b + j]
            if v != 0:
                e8[b + j] = v if tbyte(keep, g, j) != ZERO else 0
                tset(acc, g, j, 1)
                bad |= np.uint64(v)
            else:
                e8[b + j] = 0
        return bad
    nw = n >> 3
    src = m64[o * nw:(o + 1) * nw]
    dst = e64[o * nw:(o + 1) * nw]
    kg = keep[g]
    ag = acc[g]
    for w in range(nw):
        v = src[w]
        dst[w] = v & kg[w]
        ag[w] |= v
        bad |= v
    return bad


@njit(cache=True)
def zero_rows(e8, e64, o0, o1, n):  # pragma: no cover - compiled
    """Rows ``o0 .. o1 - 1`` of ``e8`` = 0."""
    if e64.shape[0] == 0:
        for q in range(o0 * n, o1 * n):
            e8[q] = 0
        return
    nw = n >> 3
    dst = e64[o0 * nw:o1 * nw]
    for q in range(dst.shape[0]):
        dst[q] = ZERO


@njit(cache=True)
def normalise(e8, e64, bad):  # pragma: no cover - compiled
    """Every nonzero byte of ``e8`` = 1, if ``bad`` (the OR of the bytes copied into it, as a
    word) says that some byte is neither 0 nor 1; returns whether it did."""
    if (bad & HIGH_BITS) == ZERO:
        return False
    if e64.shape[0] == 0:
        for q in range(e8.shape[0]):
            if e8[q] != 0:
                e8[q] = 1
        return True
    for q in range(e64.shape[0]):
        v = e64[q]
        v = v | (v >> np.uint64(4))
        v = v | (v >> np.uint64(2))
        v = v | (v >> np.uint64(1))
        e64[q] = v & LOW_BYTES
    return True
