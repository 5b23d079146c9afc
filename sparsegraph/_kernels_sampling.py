"""Numba kernels of :mod:`sparsegraph.sampling` (private; arrays and scalars only).

The random numbers are drawn by the caller with a numpy ``Generator`` and passed in, so the
kernels are deterministic and the results are the same bytes on every machine. Every kernel is
also valid Python (run with ``NUMBA_DISABLE_JIT=1`` for coverage).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fill_first_distinct", "first_occurrences"]


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
