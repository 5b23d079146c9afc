"""Numba kernels of the spectral helpers (private; called by :mod:`sparsegraph.regular`).

Array/scalar-only signatures, no validation, no randomness of their own: random draws are made
with numpy Generators by the caller and passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
