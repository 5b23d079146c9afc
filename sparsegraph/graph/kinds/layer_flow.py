"""The flow rule of the ``layer`` kind as one matrix product, with its explicit backward.

A use of a linear layer, or of an ungrouped 1-d/2-d convolution, whose weight is the parameter
itself (no ``view``) is a product ``Y = W C`` of the weight as an ``(out, in * K)`` matrix and
the input's columns ``C`` (the input itself for a linear layer; its im2col for a convolution,
``K`` taps per input channel). On the flow walk (:class:`sparsegraph.graph.walker.FlowWalk`)
that product is restricted to the **live block** of the weight: the output units that keep a
weight and the input channels (features) that feed one. Outside the block every product is an
exact zero, so the block gives the same numbers, at a cost proportional to the block; SynFlow's
masks concentrate on few channels as they thin (in ResNet-18 at density 0.01 the block of the
last stage is about 6% x 10% of the weight matrix), so each round costs less than the last.

The backward is explicit (no autograd graph): the gradient reaching ``Y`` gives the input's
gradient ``W^T G`` folded back onto the input (col2im) only where a layer lies upstream, and
the weight's gradient ``G C^T`` over the block only, read at the weight's support (the kept
positions; scores elsewhere are zero).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _kernels_flow as KW

__all__ = ["Block", "Columns", "gemm_form", "gemm_forward", "gemm_vjp"]


def gemm_form(node: Any) -> bool:
    """Whether a layer use takes the matrix-product path (else the walker uses autograd on
    the kind's torch op)."""
    p = node.params
    if p.get("view") is not None:
        return False
    if p["op"] == "linear":
        return True
    return p["op"] == "conv" and p.get("groups", 1) == 1 and len(p["stride"]) <= 2


class Block:
    """The live block of one use's weight, ``(out, in * K)``, built once per walk.

    Attributes
    ----------
    rows, chans : torch.LongTensor or None
        Output units / input channels with a kept weight (None: all of them).
    wb : torch.Tensor
        The weight restricted to the block, ``(len(rows), len(chans) * K)`` (a view of the
        weight when nothing is dropped).
    pos : torch.LongTensor or None
        For every supported position (in ascending flat order), its flat position in ``wb``;
        None when the support is the whole weight.
    """

    __slots__ = ("chans", "n_in", "n_out", "pos", "rows", "taps", "wb")

    def __init__(self, torch: Any, weight: Any, support: np.ndarray | None,
                 positions: int) -> None:
        n_out = weight.shape[0]
        n_in = weight.shape[1] if weight.dim() > 1 else 1
        taps = math.prod(weight.shape[2:])
        size = n_out * n_in * taps
        w2 = weight.detach().reshape(n_out, n_in * taps)
        self.n_out, self.n_in, self.taps = n_out, n_in, taps
        self.rows = self.chans = self.pos = None
        self.wb = w2
        if support is None:
            return
        self.pos = torch.from_numpy(support)
        if positions <= 2:  # a matrix-vector product: copying a block costs more than it saves
            return
        row_len = n_in * taps
        chan_of = np.arange(row_len, dtype=np.int64) // taps
        row_hit = np.zeros(n_out, dtype=np.uint8)
        chan_hit = np.zeros(n_in, dtype=np.uint8)
        KW.support_lines(support, row_len, chan_of, row_hit, chan_hit)
        rows, chans = np.flatnonzero(row_hit), np.flatnonzero(chan_hit)
        # a product over the block saves (size - block) * positions multiply-adds three times
        # (forward, input and weight gradients) for copying the block out: worth it unless the
        # block is nearly everything
        if positions * (size - rows.size * chans.size * taps) <= 2 * size:
            return
        wb = w2
        if rows.size < n_out:
            self.rows = torch.from_numpy(rows)
            wb = wb.index_select(0, self.rows)
        if chans.size < n_in:
            self.chans = torch.from_numpy(chans)
            wb = wb.view(rows.size, n_in, taps).index_select(1, self.chans).reshape(
                rows.size, chans.size * taps)
        self.wb = wb
        # rows and channels keep their order, so the block's row-major order of the supported
        # positions is their ascending flat order
        row_rank = np.cumsum(row_hit, dtype=np.int64) - 1
        col_of = (np.cumsum(chan_hit, dtype=np.int64) - 1)[chan_of] * taps + np.arange(
            row_len, dtype=np.int64) % taps
        pos = np.empty(support.size, dtype=np.int64)
        KW.block_positions(support, row_len, row_rank, col_of, chans.size * taps, pos)
        self.pos = torch.from_numpy(pos)

    def scatter_rows(self, torch: Any, yb: Any, axis: int) -> Any:
        """``yb`` (the block's outputs along ``axis``) placed into zeros of all outputs."""
        if self.rows is None:
            return yb
        shape = list(yb.shape)
        shape[axis] = self.n_out
        return yb.new_zeros(shape).index_copy_(axis, self.rows, yb)

    def weight_grad(self, dwb: Any) -> Any:
        """The weight gradient at the supported positions (flat, ascending order), or the
        whole ``(out, in * K)`` gradient when the support is the whole weight."""
        return dwb if self.pos is None else dwb.reshape(-1).index_select(0, self.pos)


# --------------------------------------------------------------------------------- geometry


def _geometry(node: Any, src: tuple[int, ...], kernel: tuple[int, ...]) -> tuple:
    """2-d geometry of a 1-d or 2-d convolution: (stride, dilation, kernel, out, pad) with
    ``pad`` the F.pad list of the input (after-padding from the output size; negative crops)."""
    p = node.params
    stride, padding, dilation = p["stride"], p["padding"], p["dilation"]
    out = tuple(node.shape[1:])
    pad: list[int] = []
    for a in reversed(range(len(stride))):
        need = (out[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1
        pad += [padding[a], need - src[a] - padding[a]]
    if len(stride) == 1:
        return ((1, stride[0]), (1, dilation[0]), (1, kernel[0]), (1, out[0]), pad + [0, 0])
    return (tuple(stride), tuple(dilation), tuple(kernel), out, pad)


def _runs(eq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes of consecutive equal positions (``eq[i]``: position ``i + 1`` equals ``i``):
    the class of every position and the first position of every class (int64)."""
    cls = np.zeros(eq.size + 1, dtype=np.int64)
    np.cumsum(~eq, out=cls[1:])
    return cls, np.flatnonzero(np.concatenate(([True], ~eq)))


def _axis_classes(xp: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal rows (``axis=1``) or columns (``axis=2``) of a ``(C, H, W)`` array."""
    if axis == 1:
        return _runs((xp[:, 1:, :] == xp[:, :-1, :]).all(axis=(0, 2)))
    return _runs((xp[:, :, 1:] == xp[:, :, :-1]).all(axis=(0, 1)))


def _windows(cls: np.ndarray, n_out: int, s: int, d: int, k: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Output positions along one axis whose windows read the same input classes: each
    output's class, the classes' first outputs, and the window (``(n_out, k)`` positions)."""
    win = np.arange(n_out)[:, None] * s + np.arange(k)[None, :] * d
    sig = cls[win]
    ocls, reps = _runs((sig[1:] == sig[:-1]).all(1))
    return ocls, reps, win


class Columns:
    """What a 1-d/2-d convolution's flow keeps of its padded input ``xp`` (``(C, H, W)``).

    On the flow walk the input is all ones, so away from the borders whole rows and columns of
    a tensor are equal (exactly: the same numbers computed the same way). Runs of equal rows
    and of equal columns of ``xp`` are *classes*; output positions whose windows read the same
    classes have the same output, so the forward product runs over one output position per
    class, and the weight gradient ``sum_p G[o, p] xp[c, p + t]`` over the input classes
    (the gradient summed within each class first). In ResNet-18@224 this shrinks the stem
    and the first stage (56x56) to at most 12x12 positions. Where classes do not pay, the
    im2col ``(C * kh * kw, out_h * out_w)`` is used.
    """

    def __init__(self, torch: Any, xp: Any, k2: tuple, stride: tuple, dilation: tuple,
                 out: tuple) -> None:
        self.torch, self.xp = torch, xp
        self.k2, self.stride, self.dilation, self.out = k2, stride, dilation, out
        a = xp.numpy()
        (self.cy, self.ry), (self.cx, self.rx) = _axis_classes(a, 1), _axis_classes(a, 2)
        (kh, kw), (sy, sx), (dy, dx) = k2, stride, dilation
        self.oy, self.oyr, self.wy = _windows(self.cy, out[0], sy, dy, kh)
        self.ox, self.oxr, self.wx = _windows(self.cx, out[1], sx, dx, kw)
        c, n_y, n_x, p = xp.shape[0], self.ry.size, self.rx.size, out[0] * out[1]
        self.compress_fwd = self.oyr.size * self.oxr.size * 2 <= p
        full = c * kh * kw * p
        classes = kh * n_y * p + kh * n_y * out[1] * kw * n_x + kh * kw * n_y * n_x * c
        self.compress_grad = classes * 2 <= full
        self._cols = None

    def cols(self) -> Any:
        """The im2col of the input."""
        if self._cols is None:
            xp, F = self.xp, self.torch.nn.functional
            if self.k2 == (1, 1) and self.stride == (1, 1):
                self._cols = xp.reshape(xp.shape[0], -1)
            else:
                self._cols = F.unfold(xp[None], self.k2, dilation=self.dilation,
                                      stride=self.stride)[0]
        return self._cols

    def forward(self, wb: Any) -> Any:
        """``wb @ im2col``, ``(rows, out_h * out_w)``."""
        if not self.compress_fwd:
            return wb @ self.cols()
        torch = self.torch
        (kh, kw), c = self.k2, self.xp.shape[0]
        ry = torch.from_numpy(self.wy[self.oyr].reshape(-1))
        rx = torch.from_numpy(self.wx[self.oxr].reshape(-1))
        n_y, n_x = self.oyr.size, self.oxr.size
        sub = self.xp.index_select(1, ry).index_select(2, rx).view(c, n_y, kh, n_x, kw)
        cols = sub.permute(0, 2, 4, 1, 3).reshape(c * kh * kw, n_y * n_x)
        y = (wb @ cols).view(-1, n_y, n_x)
        y = y.index_select(1, torch.from_numpy(self.oy)).index_select(
            2, torch.from_numpy(self.ox))
        return y.reshape(y.shape[0], -1)

    def weight_grad(self, gb: Any) -> Any:
        """``gb @ im2col^T``, ``(rows, C * kh * kw)``, for the output gradient ``gb``
        ``(rows, out_h * out_w)``."""
        if not self.compress_grad:
            return gb @ self.cols().T
        torch = self.torch
        (kh, kw), c = self.k2, self.xp.shape[0]
        n_y, n_x = self.ry.size, self.rx.size
        rows = gb.shape[0]
        # the gradient summed over the output positions whose window tap reads each class
        g3 = gb.view(rows, *self.out)
        t = g3.new_zeros((rows, kh * n_y, self.out[1]))
        for ty in range(kh):
            t.index_add_(1, torch.from_numpy(ty * n_y + self.cy[self.wy[:, ty]]), g3)
        t2 = t.new_zeros((rows, kh * n_y, kw * n_x))
        for tx in range(kw):
            t2.index_add_(2, torch.from_numpy(tx * n_x + self.cx[self.wx[:, tx]]), t)
        t = t2.view(rows, kh, n_y, kw, n_x).permute(0, 1, 3, 2, 4)
        reps = self.xp.index_select(1, torch.from_numpy(self.ry)).index_select(
            2, torch.from_numpy(self.rx)).reshape(c, n_y * n_x)
        dw = t.reshape(rows * kh * kw, n_y * n_x) @ reps.T  # (rows * kh * kw, C)
        return dw.view(rows, kh * kw, c).transpose(1, 2).reshape(rows, c * kh * kw)


def _fold(dcols: Any, size: tuple[int, int], k2: tuple, stride: tuple, dilation: tuple,
          out: tuple) -> Any:
    """col2im: the ``(C * kh * kw, out_h * out_w)`` columns summed back onto the padded
    input ``(C, *size)``, as one strided add per tap (several times faster than
    ``F.fold`` in float64)."""
    (kh, kw), (sy, sx), (dy, dx), (oh, ow) = k2, stride, dilation, out
    c = dcols.shape[0] // (kh * kw)
    dxp = dcols.new_zeros((c, *size))
    taps = dcols.view(c, kh, kw, oh, ow)
    for ty in range(kh):
        y0 = ty * dy
        for tx in range(kw):
            x0 = tx * dx
            dxp[:, y0:y0 + sy * (oh - 1) + 1:sy, x0:x0 + sx * (ow - 1) + 1:sx] += taps[:, ty, tx]
    return dxp


# ---------------------------------------------------------------------------------- the rule


def _block(f: Any, node: Any) -> Block:
    positions = math.prod(node.shape[:-1] if node.params["op"] == "linear" else node.shape[1:])
    return f.per_walk(("block", node.id), lambda: Block(f.torch, f.weight(node),
                                                        f.support(node.layer), positions))


def gemm_forward(f: Any, node: Any, x: Any) -> Any:
    """The use's output for input ``x`` (float64), keeping what :func:`gemm_vjp` needs."""
    torch = f.torch
    F = torch.nn.functional
    blk = _block(f, node)
    if blk.wb.numel() == 0:  # no kept weight: the output is zero
        return x.new_zeros(node.shape)
    if node.params["op"] == "linear":
        d = x.shape[-1]
        cols = x.reshape(-1, d)
        if blk.chans is not None:
            cols = cols.index_select(1, blk.chans)
        y = blk.scatter_rows(torch, cols @ blk.wb.T, 1)
        f.keep(node, cols)
        return y.reshape(node.shape)
    src = tuple(x.shape[1:])
    kernel = tuple(f.weight(node).shape[2:])
    stride, dilation, k2, out, pad = _geometry(node, src, kernel)
    xc = x if blk.chans is None else x.index_select(0, blk.chans)
    if len(src) == 1:
        xc = xc[:, None]
    cols = Columns(torch, F.pad(xc, pad), k2, stride, dilation, out)
    y = blk.scatter_rows(torch, cols.forward(blk.wb), 0)
    f.keep(node, cols)
    return y.reshape(node.shape)


def gemm_vjp(f: Any, node: Any, x: Any, g: Any, need_input: bool, need_weight: bool
             ) -> tuple[Any, Any]:
    """``(input gradient or None, weight gradient or None)`` for the gradient ``g`` at the
    output (see :meth:`Block.weight_grad` for the weight gradient's layout)."""
    torch = f.torch
    F = torch.nn.functional
    blk = _block(f, node)
    if blk.wb.numel() == 0:
        return None, (x.new_zeros(0) if need_weight else None)
    cols = f.kept(node)
    n_out = blk.n_out
    if node.params["op"] == "linear":
        gb = g.reshape(-1, n_out)
        if blk.rows is not None:
            gb = gb.index_select(1, blk.rows)
        dw = blk.weight_grad(gb.T @ cols) if need_weight else None
        dx = None
        if need_input:
            dxb = gb @ blk.wb
            d = x.shape[-1]
            if blk.chans is not None:
                dxb = dxb.new_zeros((dxb.shape[0], d)).index_copy_(1, blk.chans, dxb)
            dx = dxb.reshape(x.shape)
        return dx, dw
    gb = g.reshape(n_out, -1)
    if blk.rows is not None:
        gb = gb.index_select(0, blk.rows)
    dw = blk.weight_grad(cols.weight_grad(gb)) if need_weight else None
    if not need_input:
        return None, dw
    src = tuple(x.shape[1:])
    kernel = tuple(f.weight(node).shape[2:])
    stride, dilation, k2, out, pad = _geometry(node, src, kernel)
    dcols = blk.wb.T @ gb
    n_c = dcols.shape[0] // blk.taps
    hp = (src[0] + pad[2] + pad[3]) if len(src) == 2 else 1
    wp = src[-1] + pad[0] + pad[1]
    if k2 == (1, 1) and stride == (1, 1):
        dxp = dcols.reshape(n_c, hp, wp)
    else:
        dxp = _fold(dcols, (hp, wp), k2, stride, dilation, out)
    dxc = F.pad(dxp, [-v for v in pad])  # undo the padding (re-pads rows it cropped)
    if len(src) == 1:
        dxc = dxc[:, 0]
    if blk.chans is not None:
        dxc = dxc.new_zeros((blk.n_in,) + src).index_copy_(0, blk.chans, dxc)
    return dxc, dw
