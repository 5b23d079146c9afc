"""Numba kernels of :mod:`sparsegraph.masks.sampling` and :mod:`sparsegraph.masks.regular`
(private; arrays and scalars only).

The random numbers are drawn by the caller with a numpy ``Generator`` and passed in, so the
kernels are deterministic and the results are the same bytes on every machine. Every kernel is
also valid Python (run with ``NUMBA_DISABLE_JIT=1`` for coverage).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fill_first_distinct", "first_occurrences", "pair_stubs", "repair_stubs"]


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
def first_occurrences(values, positions, taken):  # pragma: no cover - compiled
    """First occurrence of each distinct value of a stream, skipping values in ``taken``.

    Parameters
    ----------
    values : int64[:]
        The stream's values sorted ascending; equal values ordered by stream position.
    positions : int64[:]
        The stream position of each entry of ``values``.
    taken : int64[:]
        Sorted values to skip.

    Returns
    -------
    (int64[:], int64[:])
        The distinct values (ascending) and the stream position of their first occurrence.

    Notes
    -----
    One merge pass, O(len(values) + len(taken)).
    """
    m = values.shape[0]
    out_val = np.empty(m, dtype=np.int64)
    out_pos = np.empty(m, dtype=np.int64)
    u = 0
    t = 0
    nt = taken.shape[0]
    for j in range(m):
        v = values[j]
        if j > 0 and values[j - 1] == v:
            continue
        while t < nt and taken[t] < v:
            t += 1
        if t < nt and taken[t] == v:
            continue
        out_val[u] = v
        out_pos[u] = positions[j]
        u += 1
    return out_val[:u].copy(), out_pos[:u].copy()


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
