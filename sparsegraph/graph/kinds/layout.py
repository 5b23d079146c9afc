"""Kinds that create or move elements: ``input``, ``const``, ``index``, ``reshape``, ``cat``.

``index`` is the one index map of DESIGN §2: output element ``(i_0, .., i_{r-1})`` reads every
input element whose coordinate on input axis ``perm[k]`` lies in window ``windows[k][i_k]`` for
every output axis ``k`` (a window is a CSR list of input positions; ``None`` is the identity).
Pooling, reductions (a window over the whole axis), slicing, padding (empty windows), roll and
flip, expand/broadcast (an input axis of size 1 read by every output position), nearest and
linear upsampling, channel/pixel shuffle (with ``reshape``) and permute/transpose (``perm``) all
take this form. An element is reached iff some element it reads is; backward the reverse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _kernels_flat as KF
from .. import _kernels_linear as KL
from .. import _kernels_rows as KR
from .._bits import Bits, full_line, row_view
from . import Kind, bad

__all__ = ["KINDS", "identity_window", "index_params"]


def identity_window(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The CSR window list in which output position ``i`` reads input position ``i``."""
    return np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64)


def index_params(rank: int, perm: tuple[int, ...] | None = None,
                 windows: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
                 ) -> dict[str, Any]:
    """``node.params`` of an ``index`` node: ``perm`` (identity by default) and one window list
    per output axis (``windows`` maps an output axis to its CSR pair; other axes are identity)."""
    wins = [None] * rank
    for axis, w in (windows or {}).items():
        ptr, idx = w
        wins[axis] = (np.ascontiguousarray(ptr, dtype=np.int64),
                      np.ascontiguousarray(idx, dtype=np.int64))
    return {"perm": tuple(range(rank)) if perm is None else tuple(int(p) for p in perm),
            "windows": tuple(wins)}


# --------------------------------------------------------------------------------- sources


class Input(Kind):
    """A network input: every element reached and nonzero. Shape: the input's, no batch axis."""

    name = "input"
    arity = (0, 0)

    def forward(self, w, node, plan, ins_r, ins_z):
        full = Bits.full(node.shape)
        return full, full

    def backward(self, w, node, plan, out, accs):
        pass

    def flow(self, f, node, plan, ins):
        return f.torch.ones(node.shape, dtype=f.torch.float64)


class Const(Kind):
    """A constant tensor (a class token being concatenated): never reached and, in sums and
    concatenations, zero."""

    name = "const"
    arity = (0, 0)

    def forward(self, w, node, plan, ins_r, ins_z):
        empty = Bits.empty(node.shape)
        return empty, empty

    def backward(self, w, node, plan, out, accs):
        pass

    def flow(self, f, node, plan, ins):
        return f.torch.zeros(node.shape, dtype=f.torch.float64)


# ----------------------------------------------------------------------------------- index


def _window_ok(win: Any, n_out: int, n_in: int) -> bool:
    if not (isinstance(win, tuple) and len(win) == 2):
        return False
    ptr, idx = win
    return (
        isinstance(ptr, np.ndarray) and isinstance(idx, np.ndarray)
        and ptr.dtype == np.int64 and idx.dtype == np.int64
        and ptr.ndim == 1 and idx.ndim == 1 and ptr.shape[0] == n_out + 1 and ptr[0] == 0
        and ptr[-1] == idx.shape[0] and bool(np.all(np.diff(ptr) >= 0))
        and bool(np.all((idx >= 0) & (idx < n_in)))
    )


class Index(Kind):
    """An index map (see the module docstring). ``params``: ``perm`` (tuple, a permutation of
    the axes) and ``windows`` (tuple, per output axis None or an int64 CSR ``(ptr, idx)``)."""

    name = "index"

    def check(self, net, node, shapes):
        src = shapes[0]
        perm, wins = node.params.get("perm"), node.params.get("windows")
        rank = len(node.shape)
        if len(src) != rank or perm is None or sorted(perm) != list(range(rank)):
            raise bad(node, f"index map of a {list(src)} tensor into {list(node.shape)} needs a "
                            f"permutation 'perm' of its {rank} axes, got {perm!r}")
        if wins is None or len(wins) != rank:
            raise bad(node, f"index map needs one window list per axis, got {wins!r}")
        for k in range(rank):
            n_in, n_out = src[perm[k]], node.shape[k]
            if wins[k] is None:
                if n_in != n_out:
                    raise bad(node, f"axis {k}: identity window from size {n_in} to {n_out}")
            elif not _window_ok(wins[k], n_out, n_in):
                raise bad(node, f"axis {k}: window list is not an int64 CSR of {n_out} rows "
                                f"over input positions 0..{n_in - 1}")

    def plan(self, net, node):
        src = net.nodes[node.inputs[0]].shape
        perm, wins = node.params["perm"], node.params["windows"]
        rank = len(node.shape)
        identity_perm = perm == tuple(range(rank))
        if identity_perm and rank in (2, 3) and wins[0] is None and rank >= 2:
            # pooling-like: rows untouched, windows over the last one or two axes
            if rank == 2:
                wh, ww = identity_window(1), wins[1] or identity_window(src[1])
                h_in = h_out = 1
            else:
                wh = wins[1] or identity_window(src[1])
                ww = wins[2] or identity_window(src[2])
                h_in, h_out = src[1], node.shape[1]
            w_in, w_out = src[-1], node.shape[-1]
            pf, pf_st = _bitmap(np.diff(wh[0]) > 0, np.diff(ww[0]) > 0, h_out, w_out)
            cov_h = np.zeros(h_in, dtype=bool)
            cov_h[wh[1]] = True
            cov_w = np.zeros(w_in, dtype=bool)
            cov_w[ww[1]] = True
            pb, pb_st = _bitmap(cov_h, cov_w, h_in, w_in)
            r, m, wd = row_view(node.shape)
            return ("pool", wh[0], wh[1], ww[0], ww[1], pf, pf_st, pb, pb_st, full_line(w_out),
                    (r, m, (wd + 63) >> 6), (w_in + 63) >> 6)
        steps = [(k, wins[k][0], wins[k][1]) for k in range(rank) if wins[k] is not None]
        return ("flat", None if identity_perm else perm, steps)

    def reach(self, w, node, plan, ins):
        x = ins[0]
        if x.is_empty:
            return Bits.empty(node.shape)
        if plan[0] == "pool":
            st_in, map_in = x.rows()
            mshape = plan[10]
            st = np.empty(mshape[0], dtype=np.uint8)
            maps = np.empty(mshape, dtype=np.uint64)
            code = KL.pool_forward(st_in, map_in, st, maps, *plan[1:7], plan[9],
                                   np.empty(plan[11], dtype=np.uint64))
            return Bits(node.shape, const=code, st=st, maps=maps)
        _, perm, steps = plan
        a = x.flat().reshape(w.shape_of(node.inputs[0]))
        if perm is not None:
            a = a.transpose(perm)
        for k, ptr, idx in steps:
            a = np.ascontiguousarray(a)
            pre, n_in, post = math.prod(a.shape[:k]), a.shape[k], math.prod(a.shape[k + 1:])
            out = np.empty(a.shape[:k] + (ptr.shape[0] - 1,) + a.shape[k + 1:], dtype=np.uint8)
            KF.axis_or(a.reshape(pre, n_in, post), ptr, idx, out.reshape(pre, -1, post))
            a = out
        return Bits.from_flat(node.shape, a)

    def backward(self, w, node, plan, out, accs):
        if plan[0] == "pool":
            st, maps = out.rows()
            acc = accs[0]
            KL.pool_backward(st, maps, acc.st, acc.maps, plan[1], plan[2], plan[3], plan[4],
                             plan[7], plan[8], np.empty(plan[11], dtype=np.uint64))
            return
        _, perm, steps = plan
        src_shape = w.shape_of(node.inputs[0])
        shapes = [tuple(src_shape[p] for p in perm) if perm is not None else src_shape]
        for k, ptr, _ in steps:  # the shapes before each step
            shapes.append(shapes[-1][:k] + (ptr.shape[0] - 1,) + shapes[-1][k + 1:])
        g = np.ascontiguousarray(out.flat().reshape(node.shape))
        for (k, ptr, idx), before in zip(reversed(steps), reversed(shapes[:-1]), strict=True):
            pre, post = math.prod(before[:k]), math.prod(before[k + 1:])
            dst = np.zeros(before, dtype=np.uint8)
            KF.axis_or_back(g.reshape(pre, -1, post), ptr, idx, dst.reshape(pre, before[k], post))
            g = dst
        if perm is not None:
            g = g.transpose(np.argsort(perm))
        accs[0].or_flat(np.ascontiguousarray(g))

    # The flow sums each output's window: along an axis whose windows are strided runs
    # (pooling, padding, slicing: window ``i`` reads ``i * s + off + j * d``, ``j < k``, within
    # the input) by ``k <= 16`` strided adds, and the same adds transposed for its backward;
    # along any other (global reductions, cumulative sums, nearest upsampling) by the window
    # matrix, whose backward is its transpose.
    def flow_explicit(self, node):
        return any(win is not None for win in node.params["windows"])

    def flow(self, f, node, plan, ins):
        x = ins[0]
        perm, wins = node.params["perm"], node.params["windows"]
        if perm != tuple(range(len(perm))):
            x = x.permute(perm)
        for k, win in enumerate(wins):
            if win is not None:
                x = _window_sum(f, node, k, win, x.shape[k], x, False)
        return x

    def flow_vjp(self, f, node, plan, ins, grad, need, need_weight):
        if not need[0]:
            return [None], None
        perm, wins = node.params["perm"], node.params["windows"]
        g = grad
        sizes = [f.shape_of(node.inputs[0])[p] for p in perm]  # the input's axes, permuted
        for k in reversed(range(len(wins))):
            if wins[k] is not None:
                g = _window_sum(f, node, k, wins[k], sizes[k], g, True)
        if perm != tuple(range(len(perm))):
            g = g.permute(tuple(np.argsort(perm)))
        return [g], None

    def unit_axis(self, node, in_axes):
        return node.params["perm"].index(in_axes[0])

    def unit_edges(self, u, node, plan, in_axes, axis):
        win = node.params["windows"][axis]
        if win is None:
            n = node.shape[axis]
            return [(0, np.arange(n), np.arange(n), 1.0, False)]
        ptr, idx = win
        dst = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
        return [(0, idx, dst, 1.0, False)]


_MAX_TAPS = 16  # longer strided windows (global reductions) take the window matrix


def _window_sum(f: Any, node: Any, k: int, win: tuple[np.ndarray, np.ndarray], n_in: int,
                x: Any, back: bool) -> Any:
    """Along axis ``k``: every output position the sum of its window of ``x`` (``back``: the
    transpose, the gradient at the output ``x`` sent to the ``n_in`` input positions). The
    result is a fresh tensor (or a view of one)."""
    torch = f.torch
    geo = f.cached(("strided", node.id, k), lambda: _strided(win, n_in))
    if geo is None or geo[3] > _MAX_TAPS:
        mat = f.cached(("win", node.id, k), lambda: _window_matrix(torch, win, n_in))
        return torch.movedim(torch.movedim(x, k, -1) @ (mat if back else mat.T), -1, k)
    s, off, d, taps = geo
    n_out = win[0].shape[0] - 1
    before = max(0, -off)
    size = max(n_in + before, (n_out - 1) * s + off + (taps - 1) * d + 1 + before)
    lead = (slice(None),) * k

    def tap(j: int) -> tuple:
        start = before + off + j * d
        return lead + (slice(start, start + (n_out - 1) * s + 1, s),)

    shape = list(x.shape)
    shape[k] = size
    if back:
        dxp = x.new_zeros(shape)
        for j in range(taps):
            dxp[tap(j)] += x
        return dxp.narrow(k, before, n_in)
    xp = x
    if size != n_in:
        xp = x.new_zeros(shape)
        xp.narrow(k, before, n_in).copy_(x)
    y = xp[tap(0)].clone()
    for j in range(1, taps):
        y += xp[tap(j)]
    return y


def _strided(win: tuple[np.ndarray, np.ndarray], n_in: int) -> tuple[int, int, int, int] | None:
    """``(s, off, d, k)`` when window ``i`` of the CSR ``win`` is exactly the positions
    ``i * s + off + j * d`` (``j < k``) that lie in ``[0, n_in)``, in that order; else None."""
    ptr, idx = win
    n_out = ptr.shape[0] - 1
    sizes = np.diff(ptr)
    if n_out == 0 or sizes.max() == 0:
        return None
    k = int(sizes.max())
    full = np.flatnonzero(sizes == k)
    i0, first = int(full[0]), int(idx[ptr[full[0]]])
    d = int(idx[ptr[i0] + 1]) - first if k > 1 else 1
    s = 1
    if full.size > 1:
        step, rest = divmod(int(idx[ptr[full[1]]]) - first, int(full[1]) - i0)
        if rest:
            return None
        s = step
    if d < 1 or s < 1:
        return None
    pos = (np.arange(n_out, dtype=np.int64)[:, None] * s + (first - i0 * s)
           + np.arange(k, dtype=np.int64)[None, :] * d)
    inside = (pos >= 0) & (pos < n_in)
    if not (np.array_equal(np.cumsum(inside.sum(1)), ptr[1:]) and
            np.array_equal(pos[inside], idx)):
        return None
    return s, first - i0 * s, d, k


def _window_matrix(torch: Any, win: tuple[np.ndarray, np.ndarray], n_in: int) -> Any:
    ptr, idx = win
    mat = torch.zeros((ptr.shape[0] - 1, n_in), dtype=torch.float64)
    rows = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
    mat[torch.from_numpy(rows), torch.from_numpy(idx)] = 1.0
    return mat


def _bitmap(rows: np.ndarray, cols: np.ndarray, h: int, w: int) -> tuple[np.ndarray, int]:
    """Bitmap (h, ceil(w/64)) of the pixels rows x cols (bool vectors) and its status."""
    dense = np.ascontiguousarray(np.outer(rows, cols), dtype=np.uint8)
    st = np.zeros(1, dtype=np.uint8)
    maps = np.empty((1, h, (w + 63) >> 6), dtype=np.uint64)
    KR.or_flat(st, maps, w, dense.ravel(), full_line(w))
    if st[0] != 2:
        maps[0] = 0
    return maps[0], int(st[0])


# --------------------------------------------------------------------------------- reshape


class Reshape(Kind):
    """The input's elements in C order, relabelled to this node's shape (flatten, view,
    reshape, squeeze, unsqueeze, unflatten)."""

    name = "reshape"

    def check(self, net, node, shapes):
        if math.prod(shapes[0]) != node.numel:
            raise bad(node, f"reshape of {list(shapes[0])} ({math.prod(shapes[0])} elements) "
                            f"into {list(node.shape)} ({node.numel} elements)")

    def reach(self, w, node, plan, ins):
        x = ins[0]
        if x.is_empty:
            return Bits.empty(node.shape)
        if x.is_full:
            return Bits.full(node.shape)
        return Bits.from_flat(node.shape, x.flat())

    def backward(self, w, node, plan, out, accs):
        if out.is_empty:
            return
        if out.is_full:
            accs[0].fill()
        else:
            accs[0].or_flat(out.flat())

    def flow(self, f, node, plan, ins):
        return ins[0].reshape(node.shape)

    def unit_axis(self, node, in_axes):
        return len(node.shape) - 1 if in_axes[0] != 0 and len(node.shape) > 1 else 0

    def unit_edges(self, u, node, plan, in_axes, axis):
        src = u.shape_of(node.inputs[0])
        e = np.arange(node.numel, dtype=np.int64)
        a, b = _unit_of(e, src, in_axes[0]), _unit_of(e, node.shape, axis)
        n_b = node.shape[axis] if node.shape else 1
        pairs = np.unique(a * n_b + b)
        return [(0, pairs // n_b, pairs % n_b, 1.0, False)]


def _unit_of(flat: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    if not shape:
        return np.zeros_like(flat)
    stride = math.prod(shape[axis + 1:])
    return (flat // stride) % shape[axis]


# ------------------------------------------------------------------------------------- cat


class Cat(Kind):
    """Concatenation of the inputs along ``params["axis"]`` (in input order)."""

    name = "cat"
    arity = (1, None)

    def check(self, net, node, shapes):
        axis = node.params.get("axis")
        rank = len(node.shape)
        if not isinstance(axis, int) or not 0 <= axis < rank:
            raise bad(node, f"concatenation axis {axis!r} is not an axis of {list(node.shape)}")
        rest = node.shape[:axis] + node.shape[axis + 1:]
        if any(len(s) != rank or s[:axis] + s[axis + 1:] != rest for s in shapes) or sum(
                s[axis] for s in shapes) != node.shape[axis]:
            raise bad(node, f"concatenation of {[list(s) for s in shapes]} along axis {axis} "
                            f"into {list(node.shape)}")

    def reach(self, w, node, plan, ins):
        if all(b.is_empty for b in ins):
            return Bits.empty(node.shape)
        if all(b.is_full for b in ins):
            return Bits.full(node.shape)
        axis = node.params["axis"]
        if axis == 0:
            rows = [b.rows() for b in ins]
            return Bits(node.shape, st=np.concatenate([r[0] for r in rows]),
                        maps=np.concatenate([r[1] for r in rows]))
        return Bits.from_flat(node.shape, np.concatenate([b.nd() for b in ins], axis))

    def backward(self, w, node, plan, out, accs):
        if out.is_empty:
            return
        axis = node.params["axis"]
        sizes = [w.shape_of(i)[axis] for i in node.inputs]
        if out.is_full:
            for acc in accs:
                acc.fill()
            return
        if axis == 0:
            st, maps = out.rows()
            off = 0
            for acc, c in zip(accs, sizes, strict=True):
                KR.or_rows(acc.st, acc.maps, 0, st, maps, off, c)
                off += c
            return
        parts = np.split(out.nd(), np.cumsum(sizes)[:-1], axis=axis)
        for acc, part in zip(accs, parts, strict=True):
            acc.or_flat(np.ascontiguousarray(part))

    def flow(self, f, node, plan, ins):
        return f.torch.cat(ins, node.params["axis"])

    def unit_edges(self, u, node, plan, in_axes, axis):
        cat_axis = node.params["axis"]
        edges, off = [], 0
        for pos, i in enumerate(node.inputs):
            shape = u.shape_of(i)
            n = shape[in_axes[pos]] if shape else 1
            src = np.arange(n)
            edges.append((pos, src, src + off if axis == cat_axis else src, 1.0, False))
            if axis == cat_axis:
                off += shape[cat_axis]
        return edges


KINDS = (Input(), Const(), Index(), Reshape(), Cat())
