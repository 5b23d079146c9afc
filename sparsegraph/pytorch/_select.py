"""Exact top-k selection of scores in one pass over them (private).

Every pruner keeps the ``k`` highest scores, ties broken by the lowest position: the set of the
first ``k`` of a stable sort of ``-score``. That set is fixed by the k-th largest value ``t``
and the number ``need`` of the scores equal to ``t`` that are kept (the first ones by
position). :func:`threshold` finds both without a partition of the whole array: a strided
sample brackets ``t`` between two of its order statistics, one compiled pass counts the scores
below the bracket and gathers the few inside it, and a partition of those gives ``t``. When
the bracket misses (the count below it or inside it is not what the sample promised) it falls
back to a partition of the whole array, so the answer never depends on the sample; only the
time does. NaN ranks below every number (as ``-inf``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["compact", "keep_mask", "threshold"]

_SAMPLE = 1 << 15  # sample size: the bracket holds about 8 / sqrt(_SAMPLE) of the scores
_DIRECT = 1 << 14  # below this many scores a plain partition is as fast


@njit(cache=True)
def _bracket(flat, lo, hi, out):  # pragma: no cover - compiled
    """Count the scores ``< lo``, gather those in ``[lo, hi]`` into ``out`` (as many as fit)
    and report whether any is NaN: ``(below, inside, nan)``."""
    below = 0
    inside = 0
    nan = False
    cap = out.size
    for i in range(flat.size):
        x = flat[i]
        if x < lo:
            below += 1
        elif x <= hi:
            if inside < cap:
                out[inside] = x
            inside += 1
        elif x != x:
            nan = True
    return below, inside, nan


@njit(cache=True)
def _keep(flat, t, need, keep):  # pragma: no cover - compiled
    """``keep[i]``: ``flat[i] > t``, or ``flat[i] == t`` among the first ``need`` of those."""
    for i in range(flat.size):
        x = flat[i]
        if x > t:
            keep[i] = True
        elif x == t and need > 0:
            keep[i] = True
            need -= 1
        else:
            keep[i] = False


@njit(cache=True)
def compact(scores, idx, w, zero, t, need):  # pragma: no cover - compiled
    """In place: the entries of ``idx`` (int64) and ``w`` (float64) whose score (``scores``,
    float64, aligned with them) is above ``t``, or equal to it among the first ``need`` such
    (as in :func:`_keep`), move to the front in their order; ``zero`` (float64, indexed by
    ``idx``) is set to 0 at the others. Returns ``(kept, ties still to keep)``."""
    j = 0
    for p in range(scores.size):
        x = scores[p]
        if x > t or (x == t and need > 0):
            if not x > t:
                need -= 1
            idx[j] = idx[p]
            w[j] = w[p]
            j += 1
        else:
            zero[idx[p]] = 0.0
    return j, need


def threshold(flat: np.ndarray, k: int) -> tuple[float, int, np.ndarray]:
    """The k-th largest score and how many of the scores equal to it are kept.

    Parameters
    ----------
    flat : ndarray of float64
        The scores, 1-d and C-contiguous.
    k : int
        How many to keep.

    Returns
    -------
    t : float
        The k-th largest score (``-inf`` when every score is kept, ``inf`` when none is).
    need : int
        How many of the scores equal to ``t`` are kept: the first ``need`` by position.
    flat : ndarray of float64
        The scores the answer refers to: the input, or a copy with NaN replaced by ``-inf``.
    """
    n = flat.size
    if k <= 0:
        return math.inf, 0, flat
    if k >= n:
        return -math.inf, n, _nan_lowest(flat)
    r = n - k  # rank of t from below (0-based)
    if n > _DIRECT:
        stride = max(1, n // _SAMPLE)
        sample = np.array(flat[::stride])
        m = sample.size
        rank = r * m / n
        margin = 4.0 * math.sqrt(m) + 8.0
        lo_r, hi_r = max(0, int(rank - margin)), min(m - 1, int(rank + margin) + 1)
        sample.partition((lo_r, hi_r))
        lo = -math.inf if lo_r == 0 else float(sample[lo_r])
        hi = math.inf if hi_r == m - 1 else float(sample[hi_r])
        cap = int((hi_r - lo_r + 1) * (n / m) * 4) + 1024
        buf = np.empty(min(cap, n), dtype=np.float64)
        below, inside, nan = _bracket(flat, lo, hi, buf)
        if nan:
            return threshold(_nan_lowest(flat), k)
        if inside <= buf.size and below <= r < below + inside:
            mid = buf[:inside]
            mid.partition(r - below)
            t = float(mid[r - below])
            above = n - below - int(np.count_nonzero(mid <= t))
            return t, k - above, flat
    else:
        flat = _nan_lowest(flat)
    t = float(np.partition(flat, r)[r])
    return t, k - int(np.count_nonzero(flat > t)), flat


def _nan_lowest(flat: np.ndarray) -> np.ndarray:
    """``flat`` with NaN replaced by ``-inf`` (a copy), or ``flat`` itself when it holds none."""
    nan = np.isnan(flat)
    return np.where(nan, -np.inf, flat) if nan.any() else flat


def keep_mask(flat: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of the ``k`` highest scores of ``flat`` (float64, 1-d), ties broken by the
    lowest position; NaN ranks below every number."""
    flat = np.ascontiguousarray(flat, dtype=np.float64)
    t, need, flat = threshold(flat, k)
    keep = np.empty(flat.size, dtype=bool)
    _keep(flat, t, need, keep)
    return keep

