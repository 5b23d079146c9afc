"""The exact selection of :mod:`sparsegraph.pytorch._select` and the flow walk's array helpers
(col2im by strided adds, strided window sums, live-block positions), each against a plain
oracle: a stable sort, ``F.fold``, the window matrix, a boolean mask of the support."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsegraph.graph import windows as W
from sparsegraph.graph.kinds import layer_flow
from sparsegraph.graph.kinds.layout import _strided, _window_matrix, _window_sum
from sparsegraph.pytorch import _select


def _stable(flat: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` of a stable sort of ``-score``, NaN last: the selection rule."""
    keep = np.zeros(flat.size, dtype=bool)
    keep[np.argsort(-np.nan_to_num(flat, nan=-np.inf), kind="stable")[:max(k, 0)]] = True
    return keep


# ------------------------------------------------------------------------------ selection


@settings(max_examples=40)
@given(n=st.integers(1, 70_000), levels=st.sampled_from([0, 3, 1000]),
       nan=st.sampled_from([0.0, 0.2]), order=st.sampled_from(["random", "up", "down"]),
       frac=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_keep_mask_is_the_stable_sort_rule(n, levels, nan, order, frac, seed):
    # above 2**14 scores the bracket of a strided sample is used: sorted and reversed inputs,
    # heavy ties (a few levels) and NaN are the cases a sample could misjudge
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, levels, n).astype(float) if levels else rng.lognormal(size=n)
    if order != "random":
        flat.sort()
        if order == "down":
            flat = flat[::-1].copy()
    flat[rng.random(n) < nan] = np.nan
    for k in {0, 1, int(frac * n), n - 1, n, n + 2}:
        assert np.array_equal(_select.keep_mask(flat, k), _stable(flat, k)), k


def test_a_sample_that_misjudges_falls_back_to_the_whole_partition():
    n = 1 << 17
    stride = n // _select._SAMPLE
    flat = np.ones(n)
    flat[::stride] = 0.0  # the strided sample sees only zeros: its bracket is [0, 0]
    flat[5] = 0.5
    k = n - 3 * (n // stride) // 2  # the threshold is 1, outside the bracket
    t, need, same = _select.threshold(flat, k)
    assert same is flat and t == 1.0
    assert np.array_equal(_select.keep_mask(flat, k), _stable(flat, k))


@settings(max_examples=30)
@given(n=st.integers(0, 300), t=st.sampled_from([0.0, 1.0, 2.0]), need=st.integers(0, 400),
       seed=st.integers(0, 2**16))
def test_compact_keeps_the_passing_entries_in_order(n, t, need, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, n).astype(float)
    idx = np.sort(rng.choice(10 * n + 1, n, replace=False)).astype(np.int64)
    w = rng.random(n)
    zero = np.full(10 * n + 1, 7.0)
    ties = np.flatnonzero(scores == t)[:need]
    passing = scores > t
    passing[ties] = True
    want_idx, want_w, gone = idx[passing], w[passing], idx[~passing]
    kept, left = _select.compact(scores, idx, w, zero, t, need)
    assert kept == passing.sum() and left == need - ties.size
    assert np.array_equal(idx[:kept], want_idx) and np.array_equal(w[:kept], want_w)
    expect = np.full(10 * n + 1, 7.0)
    expect[gone] = 0.0
    assert np.array_equal(zero, expect)


# ------------------------------------------------------------------------------ col2im


@settings(max_examples=25)
@given(c=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 4),
       kw=st.integers(1, 4), sy=st.integers(1, 3), sx=st.integers(1, 3), dy=st.integers(1, 2),
       dx=st.integers(1, 2))
def test_fold_by_strided_adds_is_col2im(c, h, w, kh, kw, sy, sx, dy, dx):
    oh, ow = (h - dy * (kh - 1) - 1) // sy + 1, (w - dx * (kw - 1) - 1) // sx + 1
    if oh < 1 or ow < 1:
        return
    cols = torch.rand(c * kh * kw, oh * ow, dtype=torch.float64)
    want = F.fold(cols[None], (h, w), (kh, kw), dilation=(dy, dx), stride=(sy, sx))[0]
    got = layer_flow._fold(cols, (h, w), (kh, kw), (sy, sx), (dy, dx), (oh, ow))
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)


# ------------------------------------------------------------------------------ windows


class _Consts:
    """What :func:`_window_sum` reads of a flow walk."""

    torch = torch

    def __init__(self) -> None:
        self.store: dict = {}

    def cached(self, key, make):
        if key not in self.store:
            self.store[key] = make()
        return self.store[key]


class _Node:
    id = 0


_WINDOWS = st.one_of(
    st.builds(lambda n, k, s, p, d: (W.pool(n, W.output_size(n, k, s, p, d, False), k, s, p, d),
                                     n),
              st.integers(4, 20), st.integers(1, 4), st.integers(1, 3), st.integers(0, 1),
              st.integers(1, 2)),
    st.builds(lambda n, m: (W.adaptive(n, m), n), st.integers(1, 20), st.integers(1, 6)),
    st.builds(lambda n, b, a: (W.pad(n, b, a), n), st.integers(3, 12), st.integers(-2, 3),
              st.integers(-2, 3)),
    st.builds(lambda n: (W.cumulative(n), n), st.integers(1, 30)),
    st.builds(lambda n: (W.reduce(n), n), st.integers(1, 40)),
    st.builds(lambda n, m: (W.upsample_nearest(n, m, None), n), st.integers(1, 8),
              st.integers(1, 20)),
)


@settings(max_examples=60)
@given(case=_WINDOWS, axis=st.integers(0, 2))
def test_window_sums_and_their_transpose_match_the_window_matrix(case, axis):
    win, n_in = case
    if win[0].shape[0] < 2 or n_in < 1:
        return
    shape = [3, 2, 4]
    shape[axis] = n_in
    x = torch.rand(shape, dtype=torch.float64)
    mat = _window_matrix(torch, win, n_in)
    want = torch.movedim(torch.movedim(x, axis, -1) @ mat.T, -1, axis)
    got = _window_sum(_Consts(), _Node, axis, win, n_in, x, False)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=0)
    g = torch.rand(want.shape, dtype=torch.float64)
    back = _window_sum(_Consts(), _Node, axis, win, n_in, g, True)
    torch.testing.assert_close(back, torch.movedim(torch.movedim(g, axis, -1) @ mat, -1, axis),
                               rtol=1e-14, atol=0)


@pytest.mark.parametrize("win, n_in, geo", [
    (W.pool(112, 56, 3, 2, 1, 1), 112, (2, -1, 1, 3)),
    (W.adaptive(10, 3), 10, (3, 0, 1, 4)),
    (W.pad(8, 2, 3), 8, (1, -2, 1, 1)),
    (W.upsample_nearest(3, 7, None), 3, None),
])
def test_strided_windows_are_recognised(win, n_in, geo):
    assert _strided(win, n_in) == geo


# ------------------------------------------------------------------------------ blocks


@settings(max_examples=30)
@given(o=st.integers(1, 9), i=st.integers(1, 9), taps=st.sampled_from([1, 3, 9]),
       density=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_block_positions_match_the_masked_block(o, i, taps, density, seed):
    rng = np.random.default_rng(seed)
    w = torch.from_numpy(rng.random((o, i, taps)))
    mask = rng.random(w.shape) < density
    mask[rng.random(o) < 0.3] = False
    mask[:, rng.random(i) < 0.3] = False
    support = np.flatnonzero(mask)
    blk = layer_flow.Block(torch, w, support, positions=1000)
    rows = np.flatnonzero(mask.any((1, 2)))
    chans = np.flatnonzero(mask.any((0, 2)))
    if blk.rows is not None:
        assert blk.rows.tolist() == rows.tolist()
    if blk.chans is not None:
        assert blk.chans.tolist() == chans.tolist()
    rr = rows if blk.rows is not None else np.arange(o)
    cc = chans if blk.chans is not None else np.arange(i)
    assert blk.pos.tolist() == np.flatnonzero(mask[np.ix_(rr, cc)]).tolist()
    np.testing.assert_array_equal(blk.wb.reshape(-1)[blk.pos].numpy(),
                                  w.reshape(-1).numpy()[support])
