"""Numba kernels of :mod:`sparsegraph.masks.sampling` and :mod:`sparsegraph.masks.regular`
(private; arrays and scalars only).

Random numbers come from numpy's streams, never from numba's own generator: either drawn by the
caller with a numpy ``Generator`` and passed in, or -- for the per-layer streams of
:func:`sparsegraph.masks.sampling.random_masks` -- computed here with numpy's exact algorithms
(``SeedSequence`` children, ``PCG64`` and ``Generator.integers``' bounded draws; each pinned
against numpy in ``tests/test_sampling_digest.py``), so the results are the same bytes on every
machine. Every kernel is also valid Python (run with ``NUMBA_DISABLE_JIT=1`` for coverage;
uint64 arithmetic wraps there too, with numpy's overflow warnings).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "BUF_WORDS",
    "bounded_chunk",
    "draw_masks",
    "draw_sorted",
    "fill_first_distinct",
    "first_distinct_hashed",
    "pair_stubs",
    "pcg_words",
    "repair_stubs",
    "seed_pcg_states",
]

BUF_WORDS = 512  # raw PCG64 words generated at a time (4 KiB, stays in L1)

# ------------------------------------------------------------------- numpy's streams, exactly
# SeedSequence (numpy/random/bit_generator.pyx, after O'Neill's seed_seq_fe)
_INIT_A = 0x43B0D7E5
_MULT_A = 0x931E8875
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
_MIX_MULT_L = 0xCA01F9DD
_MIX_MULT_R = 0x4973F715
# PCG64 = PCG XSL-RR 128/64 (numpy/random/src/pcg64)
_PCG_MULT_HI = 0x2360ED051FC65DA4
_PCG_MULT_LO = 0x4385DF649FCCF645


@njit(cache=True)
def _mulhi64(a, b):  # pragma: no cover - compiled
    """High 64 bits of the 128-bit product of two uint64 (schoolbook on 32-bit halves)."""
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    a_lo = a & m32
    a_hi = a >> s32
    b_lo = b & m32
    b_hi = b >> s32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    cross = (lo_lo >> s32) + (hi_lo & m32) + lo_hi
    return (hi_lo >> s32) + (cross >> s32) + a_hi * b_hi


@njit(cache=True)
def _pcg_step(s_hi, s_lo, i_hi, i_lo):  # pragma: no cover - compiled
    """The 128-bit LCG step ``state * MULT + inc (mod 2**128)``, as (high, low) uint64."""
    m_hi = np.uint64(_PCG_MULT_HI)
    m_lo = np.uint64(_PCG_MULT_LO)
    p_lo = s_lo * m_lo
    p_hi = _mulhi64(s_lo, m_lo) + s_lo * m_hi + s_hi * m_lo
    lo = p_lo + i_lo
    carry = np.uint64(1) if lo < p_lo else np.uint64(0)
    return p_hi + i_hi + carry, lo


@njit(cache=True)
def pcg_words(st, out):  # pragma: no cover - compiled
    """The next ``out.size`` raw outputs of numpy's ``PCG64`` (``random_raw``).

    Parameters
    ----------
    st : uint64[4]
        ``(state_hi, state_lo, inc_hi, inc_lo)``; the state is advanced.
    out : uint64[:]
        Filled with the outputs: step the state, then XSL-RR of the new state.
    """
    s_hi, s_lo, i_hi, i_lo = st[0], st[1], st[2], st[3]
    s58 = np.uint64(58)
    m63 = np.uint64(63)
    for j in range(out.shape[0]):
        s_hi, s_lo = _pcg_step(s_hi, s_lo, i_hi, i_lo)
        x = s_hi ^ s_lo
        r = s_hi >> s58
        out[j] = (x >> r) | (x << ((np.uint64(64) - r) & m63))
    st[0] = s_hi
    st[1] = s_lo


@njit(cache=True)
def _hashmix(value, hash_const):  # pragma: no cover - compiled
    m32 = np.uint64(0xFFFFFFFF)
    value ^= hash_const
    hash_const = (hash_const * np.uint64(_MULT_A)) & m32
    value = (value * hash_const) & m32
    value ^= value >> np.uint64(16)
    return value, hash_const


@njit(cache=True)
def _mix(x, y):  # pragma: no cover - compiled
    r = (np.uint64(_MIX_MULT_L) * x - np.uint64(_MIX_MULT_R) * y) & np.uint64(0xFFFFFFFF)
    return r ^ (r >> np.uint64(16))


@njit(cache=True)
def seed_pcg_states(entropy, prefix, pool_size, out):  # pragma: no cover - compiled
    """PCG64 states of the children ``SeedSequence(entropy, spawn_key=prefix + (i,),
    pool_size=pool_size)``, ``i = 0 .. len(out) - 1``, as ``np.random.PCG64(child)`` seeds them
    (what ``SeedSequence(...).spawn(len(out))`` gives).

    Parameters
    ----------
    entropy : uint64[:]
        The root's run entropy as 32-bit words (numpy's ``_coerce_to_uint32_array``: an int
        little-endian, at least one word), one word per element.
    prefix : uint64[:]
        The root's spawn key as 32-bit words.
    pool_size : int64
        The root's pool size (numpy's default 4).
    out : uint64[:, 4]
        Row ``i``: ``(state_hi, state_lo, inc_hi, inc_lo)`` of child ``i``.

    Notes
    -----
    Child ``i`` mixes ``entropy`` (zero-padded to ``pool_size``, as numpy does whenever a spawn
    key is present), then ``prefix``, then the words of ``i``, into its pool; 8 words of
    ``generate_state`` give PCG64's ``initstate`` and ``initseq``. O(len(out) * (pool_size +
    len(entropy) + len(prefix)) * pool_size).
    """
    m32 = np.uint64(0xFFFFFFFF)
    n_run = max(entropy.shape[0], pool_size)
    for child in range(out.shape[0]):
        words = [np.uint64(child) & m32]
        rest = np.uint64(child) >> np.uint64(32)
        while rest > 0:
            words.append(rest & m32)
            rest >>= np.uint64(32)
        n_ent = n_run + prefix.shape[0] + len(words)
        ent = np.zeros(n_ent, dtype=np.uint64)
        ent[:entropy.shape[0]] = entropy
        ent[n_run:n_run + prefix.shape[0]] = prefix
        for j in range(len(words)):
            ent[n_run + prefix.shape[0] + j] = words[j]
        pool = np.zeros(pool_size, dtype=np.uint64)
        hc = np.uint64(_INIT_A)
        for i in range(pool_size):
            pool[i], hc = _hashmix(ent[i] if i < n_ent else np.uint64(0), hc)
        for i_src in range(pool_size):
            for i_dst in range(pool_size):
                if i_src != i_dst:
                    h, hc = _hashmix(pool[i_src], hc)
                    pool[i_dst] = _mix(pool[i_dst], h)
        for i_src in range(pool_size, n_ent):
            for i_dst in range(pool_size):
                h, hc = _hashmix(ent[i_src], hc)
                pool[i_dst] = _mix(pool[i_dst], h)
        # generate_state(4, np.uint64): 8 words, paired little-endian
        hb = np.uint64(_INIT_B)
        state = np.zeros(8, dtype=np.uint64)
        for i in range(8):
            v = pool[i % pool_size] ^ hb
            hb = (hb * np.uint64(_MULT_B)) & m32
            v = (v * hb) & m32
            state[i] = v ^ (v >> np.uint64(16))
        s32 = np.uint64(32)
        seed_hi = state[0] | (state[1] << s32)
        seed_lo = state[2] | (state[3] << s32)
        seq_hi = state[4] | (state[5] << s32)
        seq_lo = state[6] | (state[7] << s32)
        # pcg_setseq_128_srandom_r: inc = initseq << 1 | 1; step; state += initstate; step
        i_hi = (seq_hi << np.uint64(1)) | (seq_lo >> np.uint64(63))
        i_lo = (seq_lo << np.uint64(1)) | np.uint64(1)
        s_hi, s_lo = _pcg_step(np.uint64(0), np.uint64(0), i_hi, i_lo)
        lo = s_lo + seed_lo
        carry = np.uint64(1) if lo < s_lo else np.uint64(0)
        s_hi, s_lo = _pcg_step(s_hi + seed_hi + carry, lo, i_hi, i_lo)
        out[child, 0] = s_hi
        out[child, 1] = s_lo
        out[child, 2] = i_hi
        out[child, 3] = i_lo


# Generator.integers(0, n, dtype=np.int64): numpy's random_bounded_uint64_fill (numpy 1.17+)
# draws by Lemire's multiply-and-reject, for n <= 2**32 - 1 on 32-bit values (a PCG64 word
# gives its low half, then its high half: next_uint32's buffering), for n == 2**32 on the
# 32-bit values themselves, above on whole words with a 128-bit product.
_LEMIRE32 = 0
_FULL32 = 1
_LEMIRE64 = 2


@njit(cache=True)
def _bound_kind(n):  # pragma: no cover - compiled
    """(kind, rejection threshold) of ``integers(0, n)``, ``n >= 2`` uint64."""
    m32 = np.uint64(0xFFFFFFFF)
    one = np.uint64(1)
    if n <= m32:
        # numpy: threshold = (UINT32_MAX - rng) % rng_excl, rng = n - 1
        return _LEMIRE32, (m32 - (n - one)) % n
    if n == m32 + one:
        return _FULL32, np.uint64(0)
    return _LEMIRE64, (np.uint64(0xFFFFFFFFFFFFFFFF) - (n - one)) % n


@njit(cache=True)
def bounded_chunk(st, buf, pos, n, kind, threshold, out):  # pragma: no cover - compiled
    """The next ``out.size`` values of ``integers(0, n)`` of a PCG64 stream.

    Parameters
    ----------
    st : uint64[4]
        The PCG64 state (:func:`pcg_words`); advanced when ``buf`` is refilled.
    buf : uint64[BUF_WORDS]
        The current raw words.
    pos : int64
        The first unused 32-bit half of ``buf`` (half ``h`` is word ``h // 2``, low half
        first) or, for ``kind == _LEMIRE64``, the first unused word; ``2 * buf.size`` (or
        ``buf.size``) when a fresh stream starts.
    n : uint64
        The bound, ``n >= 2``.
    kind, threshold : int64, uint64
        From :func:`_bound_kind`.
    out : int64[:]
        Filled with the values, in stream order.

    Returns
    -------
    int64
        The new ``pos``.
    """
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    end = buf.shape[0] if kind == _LEMIRE64 else 2 * buf.shape[0]
    for j in range(out.shape[0]):
        if kind == _LEMIRE64:
            if pos == end:
                pcg_words(st, buf)
                pos = 0
            x = buf[pos]
            pos += 1
            while x * n < n and x * n < threshold:
                if pos == end:
                    pcg_words(st, buf)
                    pos = 0
                x = buf[pos]
                pos += 1
            out[j] = np.int64(_mulhi64(x, n))
            continue
        if pos == end:
            pcg_words(st, buf)
            pos = 0
        x = (buf[pos >> 1] >> (s32 * np.uint64(pos & 1))) & m32
        pos += 1
        if kind == _FULL32:
            out[j] = np.int64(x)
            continue
        m = x * n
        while (m & m32) < n and (m & m32) < threshold:
            if pos == end:
                pcg_words(st, buf)
                pos = 0
            x = (buf[pos >> 1] >> (s32 * np.uint64(pos & 1))) & m32
            pos += 1
            m = x * n
        out[j] = np.int64(m >> s32)
    return pos


@njit(cache=True)
def _stream_start(buf, kind):  # pragma: no cover - compiled
    return buf.shape[0] if kind == _LEMIRE64 else 2 * buf.shape[0]


@njit(cache=True)
def _draw_stream(st, buf, n, need, mask, table, out):  # pragma: no cover - compiled
    """The first ``need`` distinct values of ``integers(0, n)`` of the fresh stream ``st``: set
    in ``mask`` (all False), or -- when ``table`` is not empty -- appended to ``out`` in stream
    order with ``table`` as the set (:func:`first_distinct_hashed`)."""
    nn = np.uint64(n)
    kind, threshold = _bound_kind(nn)
    pos = _stream_start(buf, kind)
    chunk = np.empty(2 * buf.shape[0], dtype=np.int64)
    found = 0
    while found < need:
        pos = bounded_chunk(st, buf, pos, nn, kind, threshold, chunk)
        if table.shape[0]:
            found = first_distinct_hashed(chunk, table, out, found, need)
        else:
            found += fill_first_distinct(chunk, mask, need - found)


@njit(cache=True)
def draw_masks(block, offsets, units, unit_size, counts, states):  # pragma: no cover - compiled
    """Every layer's random mask, written into one flat bool block.

    Layer ``l`` owns ``block[offsets[l] : offsets[l] + units[l] * unit_size[l]]``; it keeps
    ``counts[l]`` of its ``units[l]`` units (runs of ``unit_size[l]`` weights): the first
    ``c = min(counts[l], units[l] - counts[l])`` distinct values of ``integers(0, units[l])`` of
    the PCG64 stream ``states[l]``, or all but those when ``2 counts[l] > units[l]``.

    Parameters
    ----------
    block : bool[:]
        Output; every layer's slice is overwritten (no need to clear it first).
    offsets, units, unit_size, counts : int64[:], (L,)
    states : uint64[:, 4], (L, 4)
        Per layer ``(state_hi, state_lo, inc_hi, inc_lo)`` (:func:`seed_pcg_states`); read only.

    Notes
    -----
    Each slice is cleared just before its draws, so the scattered writes hit cache. Expected
    O(sum of params + sum of c) time; O(max units) scratch for unit sizes above one.
    """
    buf = np.empty(BUF_WORDS, dtype=np.uint64)
    st = np.empty(4, dtype=np.uint64)
    scratch = np.empty(0, dtype=np.bool_)
    no_table = np.empty(0, dtype=np.int64)
    for lay in range(offsets.shape[0]):
        n = units[lay]
        k = counts[lay]
        size = unit_size[lay]
        view = block[offsets[lay]:offsets[lay] + n * size]
        if size == 1:
            m = view
        else:
            if scratch.shape[0] < n:
                scratch = np.empty(n, dtype=np.bool_)
            m = scratch[:n]
        m[:] = False
        c = min(k, n - k)
        if c > 0:
            st[:] = states[lay]
            _draw_stream(st, buf, n, c, m, no_table, no_table)
        if c != k:
            for j in range(n):
                m[j] = not m[j]
        if size > 1:
            view[:] = False
            for u in range(n):
                if m[u]:
                    for j in range(u * size, (u + 1) * size):
                        view[j] = True


@njit(cache=True)
def draw_sorted(state, n, need, table, out):  # pragma: no cover - compiled
    """The first ``need`` distinct values of ``integers(0, n)`` of one PCG64 stream, in stream
    order (the sparse twin of :func:`draw_masks`; the caller sorts).

    Parameters
    ----------
    state : uint64[4]
        ``(state_hi, state_lo, inc_hi, inc_lo)``; not modified.
    n : int64
        The range, ``n >= 2``.
    need : int64
        How many values, ``1 <= need <= n``.
    table : int64[:]
        All ``-1``; size a power of two at least ``2 * need`` (load <= 1/2). Used as the set.
    out : int64[:]
        Output, at least ``need`` long.

    Notes
    -----
    Expected O(need * n / (n - need)) draws, O(need) memory: never anything of size ``n``.
    """
    _draw_stream(state.copy(), np.empty(BUF_WORDS, dtype=np.uint64), n, need,
                 np.empty(0, dtype=np.bool_), table, out)


@njit(cache=True)
def fill_first_distinct(draws, mask, need):  # pragma: no cover - compiled
    """Set ``mask[v] = True`` for the values ``v`` of ``draws``, in order, skipping values already
    set, until ``need`` new values were set or the draws run out.

    Parameters
    ----------
    draws : int64[:]
        Random positions in ``[0, mask.size)``.
    mask : bool[:]
        Flat mask, modified in place.
    need : int64
        How many new positions to set.

    Returns
    -------
    int64
        How many new positions were set (``<= need``).

    Notes
    -----
    O(len(draws)) time; the set built is "the first ``need`` distinct values of the stream",
    which for i.i.d. uniform draws is a uniformly random subset.
    """
    found = 0
    for j in range(draws.shape[0]):
        if found >= need:
            break
        v = draws[j]
        if not mask[v]:
            mask[v] = True
            found += 1
    return found


@njit(cache=True)
def first_distinct_hashed(draws, table, out, found, need):  # pragma: no cover - compiled
    """Append to ``out`` the values of ``draws``, in order, not seen before, until ``need``
    values are in ``out``: the sparse twin of :func:`fill_first_distinct`.

    Parameters
    ----------
    draws : int64[:]
        Non-negative values.
    table : int64[:]
        Open-addressing set of the values seen so far: ``-1`` for an empty slot, size a power
        of two at least ``2 * need`` (load <= 1/2). Updated.
    out : int64[:]
        Distinct values in stream order; ``out[:found]`` on entry, ``out.size >= need``.
    found : int64
        How many values ``out`` holds on entry.
    need : int64
        How many values ``out`` must hold.

    Returns
    -------
    int64
        How many values ``out`` holds now (``<= need``).

    Notes
    -----
    Expected O(len(draws)) time, O(need) memory.
    """
    size = table.shape[0]
    bits = 0
    while (1 << bits) < size:
        bits += 1
    shift = np.uint64(64 - bits)  # Fibonacci hashing: the top bits of v * 2**64 / phi
    wrap = np.uint64(size - 1)
    for j in range(draws.shape[0]):
        if found >= need:
            break
        v = draws[j]
        slot = (np.uint64(v) * np.uint64(0x9E3779B97F4A7C15)) >> shift
        while table[slot] >= 0 and table[slot] != v:  # linear probing
            slot = (slot + np.uint64(1)) & wrap
        if table[slot] < 0:
            table[slot] = v
            out[found] = v
            found += 1
    return found


# ----------------------------------------------------------------------------- regular graphs
# (configuration-model stub pairing for :mod:`sparsegraph.masks.regular`)


@njit(cache=True)
def pair_stubs(adj, stub_out, stub_in, is_dup):  # pragma: no cover - compiled
    """Insert the edges ``(stub_out[k], stub_in[k])`` into ``adj`` and flag repeats.

    Parameters
    ----------
    adj : bool[:, ::1], (out, fan_in), all False on entry; set to the simple graph's edges
    stub_out, stub_in : int64[:], (E,)
    is_dup : bool[:], (E,), set True where the edge was already present

    Returns
    -------
    int64: number of repeated stubs.
    """
    n_dup = 0
    for k in range(stub_out.size):
        o = stub_out[k]
        i = stub_in[k]
        if adj[o, i]:
            is_dup[k] = True
            n_dup += 1
        else:
            adj[o, i] = True
    return n_dup


@njit(cache=True)
def repair_stubs(adj, stub_out, stub_in, is_dup, dup_pos, draws, start):  # pragma: no cover
    """Turn repeated stubs into simple edges by degree-preserving swaps.

    For the repeated stub ``p = (o, i)`` (another copy of ``(o, i)`` is in ``adj``) a partner
    stub ``q = (o2, i2)`` is taken from ``draws`` (uniform stub indices); the swap to
    ``(o, i2)`` and ``(o2, i)`` is made when ``q`` is not itself repeated, ``o2 != o``,
    ``i2 != i`` and neither new edge exists. Degrees of every node are unchanged.

    Parameters
    ----------
    adj : bool[:, ::1], (out, fan_in); updated
    stub_out, stub_in : int64[:], (E,); ``stub_in`` updated
    is_dup : bool[:], (E,); cleared as stubs are repaired
    dup_pos : int64[:], (n_dup,) positions of the repeated stubs, repaired in order
    draws : int64[:], candidate partner stubs, consumed in order
    start : int64, the first position of ``dup_pos`` still to repair

    Returns
    -------
    (int64, int64): the first unrepaired position of ``dup_pos`` (== n_dup when done) and the
    number of draws used; the caller passes more draws when not done.
    """
    t = 0
    k = start
    while k < dup_pos.size:
        p = dup_pos[k]
        o = stub_out[p]
        i = stub_in[p]
        done = False
        while t < draws.size:
            q = draws[t]
            t += 1
            if is_dup[q]:
                continue
            o2 = stub_out[q]
            i2 = stub_in[q]
            if o2 == o or i2 == i or adj[o, i2] or adj[o2, i]:
                continue
            adj[o2, i2] = False
            adj[o, i2] = True
            adj[o2, i] = True
            stub_in[p] = i2
            stub_in[q] = i
            is_dup[p] = False
            done = True
            break
        if not done:
            return k, t
        k += 1
    return k, t


def _warm() -> None:  # pragma: no cover - used by benchmarks to compile before timing
    adj = np.zeros((2, 2), dtype=np.bool_)
    so = np.array([0, 1], dtype=np.int64)
    si = np.array([0, 1], dtype=np.int64)
    dup = np.zeros(2, dtype=np.bool_)
    pair_stubs(adj, so, si, dup)
    repair_stubs(adj, so, si, dup, np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
