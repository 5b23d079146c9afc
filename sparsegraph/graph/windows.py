"""Window lists of index maps along one axis (the ``index`` kind's ``windows``).

Each function returns ``(ptr, idx)``, int64 CSR: output position ``i`` reads input positions
``idx[ptr[i]:ptr[i + 1]]`` (an empty window reads nothing: padding, inserted zeros). These are
the per-axis maps of pooling, slicing, padding, roll, flip, expand, upsampling and reductions.
Plain numpy, called by the tracer once per op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "csr", "pick", "pool", "adaptive", "pad", "upsample_nearest", "upsample_linear", "reduce",
    "cumulative",
]


def csr(windows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The CSR form of a list of windows."""
    ptr = np.zeros(len(windows) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(w) for w in windows])
    idx = np.fromiter((i for w in windows for i in w), dtype=np.int64, count=int(ptr[-1]))
    return ptr, idx


def pick(positions: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Output position ``i`` reads input position ``positions[i]`` (``-1``: nothing).
    Slicing, index_select, roll, flip, expand and nearest upsampling take this form."""
    pos = np.asarray(positions, dtype=np.int64).reshape(-1)
    keep = pos >= 0
    ptr = np.zeros(pos.size + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(keep)
    return ptr, pos[keep]


def pool(n_in: int, n_out: int, kernel: int, stride: int, padding: int, dilation: int
         ) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows (max/average pooling), padding positions left out."""
    return csr([
        [j for j in range(o * stride - padding, o * stride - padding + (kernel - 1) * dilation + 1,
                          dilation) if 0 <= j < n_in]
        for o in range(n_out)
    ])


def adaptive(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Adaptive pooling windows ``[floor(o * n / m), ceil((o + 1) * n / m))``."""
    return csr([list(range((o * n_in) // n_out, -(-((o + 1) * n_in) // n_out)))
                for o in range(n_out)])


def pad(n_in: int, before: int, after: int, mode: str = "constant"
        ) -> tuple[np.ndarray, np.ndarray]:
    """Padding (negative widths crop). ``constant`` pads read nothing; ``reflect``,
    ``replicate`` and ``circular`` read the input positions they copy."""
    n_out = n_in + before + after
    src = np.arange(n_out) - before
    if mode == "constant":
        src = np.where((src >= 0) & (src < n_in), src, -1)
    elif mode == "reflect":
        period = 2 * (n_in - 1) if n_in > 1 else 1
        s = np.mod(src, period) if n_in > 1 else np.zeros_like(src)
        src = np.where(s < n_in, s, period - s)
    elif mode == "replicate":
        src = np.clip(src, 0, n_in - 1)
    elif mode == "circular":
        src = np.mod(src, n_in)
    else:
        raise ValueError(f"padding mode {mode!r}")
    return pick(src)


def upsample_nearest(n_in: int, n_out: int, scale: float | None, exact: bool = False
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest (``exact``: nearest-exact) interpolation as PyTorch computes its source
    positions (``scale`` is ``1 / scale_factor`` when a factor was given, else ``n_in / n_out``)."""
    s = np.float32(n_in / n_out if scale is None else scale)  # PyTorch computes in float
    dst = np.arange(n_out, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if exact else np.floor(dst * s)
    return pick(np.minimum(src.astype(np.int64), n_in - 1))


def upsample_linear(n_in: int, n_out: int, align_corners: bool, scale: float | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation (one axis of bilinear/trilinear): the one or two input positions
    with a nonzero weight, as PyTorch computes them."""
    if align_corners:
        s = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        src = np.arange(n_out, dtype=np.float64) * s
    else:
        s = n_in / n_out if scale is None else scale
        src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * s - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    wins = []
    for a, b, f in zip(lo, hi, frac, strict=True):
        w = [int(a)] if f < 1.0 else []
        if f > 0.0 and b != a:
            w.append(int(b))
        wins.append(w or [int(a)])
    return csr(wins)


def reduce(n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """One output position reading the whole axis (sum, mean, max over an axis)."""
    return np.array([0, n_in], dtype=np.int64), np.arange(n_in, dtype=np.int64)


def cumulative(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Output ``i`` reads inputs ``0..i`` (cumulative sums)."""
    return csr([list(range(i + 1)) for i in range(n)])


def slice_positions(n: int, start: int | None, stop: int | None, step: int | None) -> np.ndarray:
    """The input positions a Python slice picks from an axis of size ``n``."""
    return np.arange(n, dtype=np.int64)[slice(start, stop, step)]


def output_size(n: int, kernel: int, stride: int, padding: int, dilation: int,
                ceil_mode: bool) -> int:
    """Pooling output size (PyTorch's rule, including the ceil_mode cut)."""
    span = n + 2 * padding - dilation * (kernel - 1) - 1
    o = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (o - 1) * stride >= n + padding:
        o -= 1
    return o
