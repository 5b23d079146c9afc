"""Numba kernels of the flow walk's live blocks (private).

A layer's weight is read as an ``(out, L)`` matrix, ``L = in * K`` (``K`` taps per input
channel), and its support as ascending flat positions. These kernels find the rows and input
channels that keep a weight and the supported positions' flat places in the block those span
(:class:`sparsegraph.graph.kinds.layer_flow.Block`), in passes over the support alone: the row
of a position is followed as the positions ascend and its column is looked up in a table of
``L`` entries, so no division and nothing of the weight's size is touched. Every kernel is also
valid Python; the caller validates the arrays.
"""

from __future__ import annotations

from numba import njit

__all__ = ["block_positions", "support_lines"]


@njit(cache=True, inline="always")
def _row_of(s, start, r, row_len):  # pragma: no cover - compiled
    """Follow the row as positions ascend: ``(start, r)`` of the row holding position ``s``,
    from those of the row holding the previous position."""
    while s >= start + row_len:
        start += row_len
        r += 1
    return start, r


@njit(cache=True)
def support_lines(support, row_len, chan_of, row_hit, chan_hit):  # pragma: no cover - compiled
    """Mark ``row_hit[r]`` and ``chan_hit[chan_of[c]]`` (uint8, zeroed on entry) for every
    supported position ``r * row_len + c`` (``support``: int64, ascending)."""
    start, r = 0, 0
    for p in range(support.size):
        start, r = _row_of(support[p], start, r, row_len)
        row_hit[r] = 1
        chan_hit[chan_of[support[p] - start]] = 1


@njit(cache=True)
def block_positions(support, row_len, row_rank, col_of, block_len, pos):  # pragma: no cover
    """``pos[p] = row_rank[r] * block_len + col_of[c]`` for the supported position
    ``support[p] = r * row_len + c`` (int64, ascending): its flat place in the block."""
    start, r = 0, 0
    for p in range(support.size):
        start, r = _row_of(support[p], start, r, row_len)
        pos[p] = row_rank[r] * block_len + col_of[support[p] - start]
