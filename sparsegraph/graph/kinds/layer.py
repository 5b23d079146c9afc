"""The ``layer`` kind: one use of a prunable layer (DESIGN §2-3).

``node.params``:

``op``
    ``"linear"`` (weight ``(out, in)`` applied to the last axis of a tensor of any rank),
    ``"conv"`` (weight ``(out, in // groups, *kernel)`` over a ``(C, *spatial)`` tensor, any
    spatial rank), ``"conv_transpose"`` (weight ``(in, out // groups, *kernel)``), or
    ``"embedding"`` (weight ``(vocabulary, dim)``: token ids ``(...)`` to ``(..., dim)``, every
    vocabulary entry a possible input at every reached position).
``stride``, ``padding``, ``dilation``, ``groups``
    Convolution geometry, one entry per spatial axis; ``padding`` is the padding *before* each
    axis (the output shape fixes the rest, so ``padding="same"`` with even kernels is exact).
``view``
    How the parameter becomes this use's weight: ``None`` (itself), ``("T",)`` (transposed, HF's
    ``Conv1D``), ``("rows", start, stop)`` (a block of rows: the q, k or v part of a packed
    ``in_proj_weight``), or ``("index", flat_positions, shape)`` (any other gather).

Weight ``w`` of a use is **effective** iff it is kept and joins some reached input element to
some backward-alive output element; a layer's effective mask is the union over its uses.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _kernels_conv as KC
from .. import _kernels_flat as KF
from .. import _kernels_linear as KL
from .._bits import Bits, full_line
from . import Kind, bad
from .layer_flow import gemm_form, gemm_forward, gemm_vjp

__all__ = ["KINDS", "bag_nodes", "flat", "from_native", "native_shape", "new_rows",
           "scatter_effective", "to_native", "use_mask"]

OPS = ("linear", "conv", "conv_transpose", "embedding")


# ------------------------------------------------------------------------------------ views


def native_shape(layer: Any, view: Any) -> tuple[int, ...]:
    """The shape of a use's weight given the parameter's layer and the use's ``view``."""
    shape = layer.shape
    if view is None:
        return shape
    if view[0] == "T":
        return shape[::-1]
    if view[0] == "rows":
        return (view[2] - view[1],) + shape[1:]
    return tuple(view[2])


def _view_ok(layer: Any, view: Any) -> bool:
    if view is None:
        return True
    if not isinstance(view, tuple) or not view:
        return False
    if view[0] == "T":
        return len(view) == 1 and len(layer.shape) == 2
    if view[0] == "rows":
        return (len(view) == 3 and isinstance(view[1], int) and isinstance(view[2], int)
                and 0 <= view[1] < view[2] <= layer.shape[0])
    if view[0] == "index":
        idx = view[1]
        return (len(view) == 3 and isinstance(idx, np.ndarray) and idx.dtype == np.int64
                and idx.size == math.prod(view[2])
                and bool(np.all((idx >= 0) & (idx < layer.params))))
    return False


def to_native(arr: Any, view: Any) -> Any:
    """The use's weight (numpy array or torch tensor) from the parameter's."""
    if view is None:
        return arr
    if view[0] == "T":
        return arr.T
    if view[0] == "rows":
        return arr[view[1]:view[2]]
    return arr.reshape(-1)[view[1]].reshape(view[2])


def from_native(dst: np.ndarray, native: np.ndarray, view: Any) -> None:
    """``dst |=`` the use's 0/1 array ``native`` mapped back onto the parameter (uint8)."""
    if view is None:
        np.bitwise_or(dst, native, out=dst)
    elif view[0] == "T":
        np.bitwise_or(dst, native.T, out=dst)
    elif view[0] == "rows":
        part = dst[view[1]:view[2]]
        np.bitwise_or(part, native, out=part)
    else:
        flat = dst.reshape(-1)
        hit = view[1][native.reshape(-1) != 0]
        flat[hit] = 1


def use_mask(layer: Any, node: Any, mask: np.ndarray) -> np.ndarray:
    """A use's mask as the kernels read it, from the layer's mask (bool, the parameter's
    shape; its bytes may be any nonzero value for True): uint8 ``(out, in // groups * K)`` rows
    (``(vocabulary, dim)`` for an embedding), C-contiguous (a view of ``mask`` when it already
    is), nonzero = kept."""
    p = node.params
    native = to_native(mask, p.get("view"))
    m = np.ascontiguousarray(_kernel_layout(p["op"], native, p.get("groups", 1))).view(np.uint8)
    if m.ndim == 2 and m.shape[1] % 8 == 0 and not m.view(np.uint64).flags.aligned:
        out = new_rows(m.shape)
        out[...] = m
        return out
    return m


def new_rows(shape: tuple[int, int]) -> np.ndarray:
    """An uninitialised uint8 ``(rows, n)`` array whose rows are aligned 8-byte words when
    ``n % 8 == 0`` (see :func:`flat`)."""
    if shape[1] % 8 == 0:
        return np.empty((shape[0], shape[1] // 8), dtype=np.uint64).view(np.uint8)
    return np.empty(shape, dtype=np.uint8)


_NO_WORDS = np.empty(0, dtype=np.uint64)


def flat(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A kernel mask (from :func:`use_mask` or :func:`new_rows`) as the kernels take it: its
    bytes, flat, and the same buffer as uint64 words, or an empty array when rows are not
    whole words (the kernels then read bytes); see :mod:`sparsegraph.graph._kernels_rows`."""
    m8 = m.reshape(-1)
    return m8, (m8.view(np.uint64) if m.shape[1] % 8 == 0 else _NO_WORDS)


def scatter_effective(layer: Any, node: Any, eff: np.ndarray, dst: np.ndarray | None
                      ) -> np.ndarray:
    """OR a use's effective weights (kernel layout, uint8) into ``dst`` (uint8, the
    parameter's shape; None: a new array, or ``eff`` itself reshaped when the use is the
    parameter unchanged). Returns the array that holds the result."""
    p = node.params
    view = p.get("view")
    native = _native_layout(p["op"], eff, native_shape(layer, view), p.get("groups", 1))
    if dst is None:
        if view is None:
            return native.reshape(layer.shape)
        dst = np.zeros(layer.shape, dtype=np.uint8)
    from_native(dst, native, view)
    return dst


# -------------------------------------------------------------------------------- the kind


def _kernel_layout(op: str, native: np.ndarray, groups: int) -> np.ndarray:
    """The native weight as the kernels' ``(out, in // groups * K)`` rows (a view if possible)."""
    if op == "conv_transpose":
        cin, cout_g = native.shape[0], native.shape[1]
        cin_g = cin // groups
        m = native.reshape(groups, cin_g, cout_g, -1).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(m).reshape(groups * cout_g, -1)
    if op == "conv":
        return native.reshape(native.shape[0], -1)
    return native


def _native_layout(op: str, kmat: np.ndarray, shape: tuple[int, ...], groups: int) -> np.ndarray:
    """Inverse of :func:`_kernel_layout`."""
    if op == "conv_transpose":
        cin, cout_g = shape[0], shape[1]
        m = kmat.reshape(groups, cout_g, cin // groups, -1).transpose(0, 2, 1, 3)
        return np.ascontiguousarray(m).reshape(shape)
    return kmat.reshape(shape)


class LayerUse(Kind):
    """One use of a prunable layer (see the module docstring)."""

    name = "layer"
    has_weight = True

    # -- checks ---------------------------------------------------------------------------
    def check(self, net, node, shapes):
        layer = net.layers[node.layer]
        p = node.params
        op, view = p.get("op"), p.get("view")
        if op not in OPS:
            raise bad(node, f"layer op {op!r}; expected one of {OPS}")
        if not _view_ok(layer, view):
            raise bad(node, f"weight view {view!r} does not fit layer {layer.name!r} "
                            f"{list(layer.shape)}")
        w = native_shape(layer, view)
        src, out = shapes[0], node.shape
        where = f"layer {layer.name!r} (weight {list(w)})"
        if op == "linear":
            if len(w) != 2 or not src or src[-1] != w[1] or out != src[:-1] + (w[0],):
                raise bad(node, f"{where}: a linear map of the last axis of {list(src)} cannot "
                                f"give {list(out)}")
        elif op == "embedding":
            if len(w) != 2 or out != src + (w[1],):
                raise bad(node, f"{where}: an embedding of token ids {list(src)} cannot give "
                                f"{list(out)}")
        else:
            n = len(w) - 2
            g = p.get("groups", 1)
            geo = [p.get(k) for k in ("stride", "padding", "dilation")]
            if n < 1 or not isinstance(g, int) or g < 1 or any(
                    not isinstance(v, tuple) or len(v) != n for v in geo):
                raise bad(node, f"{where}: needs groups and stride/padding/dilation tuples of "
                                f"{max(n, 0)} entries, got {p!r}")
            stride, padding, dilation = geo
            if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
                raise bad(node, f"{where}: stride and dilation must be >= 1, padding >= 0")
            cin, cout = (w[0], w[1] * g) if op == "conv_transpose" else (w[1] * g, w[0])
            if cout % g or len(src) != n + 1 or src[0] != cin or len(out) != n + 1 or (
                    out[0] != cout) or min(out[1:], default=1) < 1:
                raise bad(node, f"{where}, groups {g}: cannot map {list(src)} to {list(out)}")

    # -- plan -----------------------------------------------------------------------------
    def plan(self, net, node):
        layer = net.layers[node.layer]
        p = node.params
        op, view = p["op"], p.get("view")
        w = native_shape(layer, view)
        if op in ("linear", "embedding"):
            vector = op == "linear" and len(net.nodes[node.inputs[0]].shape) == 1
            return (op, view, w, ("vector", 1, w[1]) if vector else None)
        g = p.get("groups", 1)
        src = net.nodes[node.inputs[0]].shape
        kernel = w[2:]
        if op == "conv" and len(kernel) <= 2:
            return (op, view, w, ("fast", g, math.prod(w[1:])) + _conv2d_plan(src, node.shape,
                                                                               kernel, p, g))
        pairs = KF.tap_pairs(src[1:], node.shape[1:], kernel, p["stride"], p["padding"],
                             p["dilation"], op == "conv_transpose")
        cin = src[0]
        return (op, view, w, ("pairs", g, cin // g, node.shape[0] // g) + pairs)

    # -- bits -----------------------------------------------------------------------------
    def forward(self, w, node, plan, ins_r, ins_z):
        r = self.reach(w, node, plan, ins_r, record=True)
        if ins_z is None or ins_z[0] is ins_r[0]:
            return r, r
        return r, self.reach(w, node, plan, ins_z)

    def reach(self, w, node, plan, ins, record=False):
        """The output's set elements; with ``record`` (the reached elements), the row kernels
        also write the use's effective mask for the case that every output is alive backward
        (``w.carry[node.id]``; :meth:`backward` fixes the rest)."""
        x = ins[0]
        if x.is_empty:
            return Bits.empty(node.shape)
        op, cp = plan[0], plan[3]
        if cp is not None and cp[0] != "pairs":
            return _rows_forward(w, node, cp, x, record)
        m = w.kernel_mask(node)
        if op == "linear":
            return _linear_forward(node, m, x, w.rowany(node))
        if op == "embedding":
            return Bits.from_dense(x.nd()[..., None] & w.colany(node))
        _, g, cin_g, cout_g, ptr, tpo, tpi = cp
        out = np.empty((node.shape[0], math.prod(node.shape[1:])), dtype=np.uint8)
        xin = x.flat().reshape(w.shape_of(node.inputs[0])[0], -1)
        KF.nd_conv_forward(m, xin, out, ptr, tpo, tpi, cin_g, cout_g)
        return Bits.from_flat(node.shape, out)

    def backward(self, w, node, plan, out, accs):
        op, cp = plan[0], plan[3]
        src = node.inputs[0]
        fwd = w.fwd_r[src]
        if out.is_empty:  # nothing alive downstream: no effective weight, nothing sent back
            w.add_effective(node, None)
            return
        if cp is not None and cp[0] != "pairs":
            w.add_effective(node, _rows_backward(w, node, cp, fwd, out, accs[0]))
            return
        m = w.kernel_mask(node)
        if op == "linear":
            eff = _linear_backward(node, m, fwd, out, accs[0], w.colany(node))
        elif op == "embedding":
            d = m.shape[1]
            vec = (out.nd() & fwd.nd()[..., None]).reshape(-1, d).any(0)
            eff = np.logical_and(m, vec).view(np.uint8)
            accs[0].or_flat(np.ascontiguousarray((out.nd() & w.colany(node)).any(-1)))
        else:
            _, g, cin_g, cout_g, ptr, tpo, tpi = cp
            cin = w.shape_of(src)[0]
            eff = np.empty(m.shape, dtype=np.uint8)
            bin_ = np.zeros((cin, math.prod(w.shape_of(src)[1:])), dtype=np.uint8)
            KF.nd_conv_backward(m, eff, fwd.flat().reshape(cin, -1),
                                out.flat().reshape(node.shape[0], -1), bin_, ptr, tpo, tpi,
                                cin_g, cout_g)
            accs[0].or_flat(bin_)
        w.add_effective(node, eff)

    # -- flow -----------------------------------------------------------------------------
    def flow_explicit(self, node):
        return gemm_form(node)

    def flow_vjp(self, f, node, plan, ins, grad, need, need_weight):
        dx, dw = gemm_vjp(f, node, ins[0], grad, need[0], need_weight)
        return [dx], dw

    def flow(self, f, node, plan, ins):
        if gemm_form(node):
            return gemm_forward(f, node, ins[0])
        torch = f.torch
        F = torch.nn.functional
        op = plan[0]
        wt = f.weight(node)
        x = ins[0]
        if op == "linear":
            return x @ wt.T
        if op == "embedding":
            return x[..., None] * wt.sum(0)
        p = node.params
        g, stride, padding, dilation = p.get("groups", 1), p["stride"], p["padding"], p["dilation"]
        n = len(stride)
        src = tuple(x.shape[1:])
        out = node.shape[1:]
        kernel = tuple(wt.shape[2:])
        if op == "conv_transpose":
            extra = tuple(out[a] - ((src[a] - 1) * stride[a] - 2 * padding[a]
                                    + dilation[a] * (kernel[a] - 1) + 1) for a in range(n))
            fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
            if min(extra) >= 0 and all(e < max(s, d) for e, s, d in zip(extra, stride, dilation,
                                                                        strict=True)):
                return fn(x[None], wt, stride=stride, padding=padding, output_padding=extra,
                          groups=g, dilation=dilation)[0]
            y = fn(x[None], wt, stride=stride, padding=0, groups=g, dilation=dilation)[0]
            crop = tuple(slice(padding[a], padding[a] + out[a]) for a in range(n))
            y = y[(slice(None),) + crop]
            pad = []
            for a in reversed(range(n)):
                pad += [0, out[a] - y.shape[a + 1]]
            return F.pad(y, pad)
        # regular convolution: pad explicitly (the padding after each axis follows from the
        # output size), then a padding-free convolution
        pad = []
        for a in reversed(range(n)):
            need = (out[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1
            pad += [padding[a], need - src[a] - padding[a]]
        xp = F.pad(x, pad)
        if n == 2:
            return _conv2d_gemm(torch, F, xp, wt, stride, dilation, g, out)
        fn = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
        return fn(xp[None], wt, stride=stride, dilation=dilation, groups=g)[0]

    # -- units ----------------------------------------------------------------------------
    def unit_axis(self, node, in_axes):
        return 0 if node.params["op"] in ("conv", "conv_transpose") else len(node.shape) - 1

    def unit_edges(self, u, node, plan, in_axes, axis):
        op = plan[0]
        m = u.kernel_mask(node)
        if op == "linear":
            o, i = np.nonzero(m)
            return [(0, i, o, 1.0, True)]
        if op == "embedding":
            cols = np.flatnonzero(m.any(0))
            src_shape = u.shape_of(node.inputs[0])
            n_src = src_shape[in_axes[0]] if src_shape else 1
            s, d = np.meshgrid(np.arange(n_src), cols, indexing="ij")
            counts = m.sum(0)[d.ravel()].astype(np.float64)
            return [(0, s.ravel(), d.ravel(), counts, True)]
        g = node.params.get("groups", 1)
        cout = m.shape[0]
        cin_g = u.shape_of(node.inputs[0])[0] // g
        counts = np.count_nonzero(m.reshape(cout, cin_g, -1), axis=2)
        o, j = np.nonzero(counts)
        i = (o // (cout // g)) * cin_g + j
        return [(0, i, o, counts[o, j].astype(np.float64), True)]


# ------------------------------------------------------------------------ linear (token) rules


def _row_classes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a 2-d bool array that are all set, and rows that are mixed."""
    full = x.all(1)
    return full, ~full & x.any(1)


def _linear_forward(node, m: np.ndarray, x: Bits, rowany: np.ndarray) -> Bits:
    d_in = m.shape[1]
    if x.is_full:
        if rowany.all():
            return Bits.full(node.shape)
        return Bits.from_dense(np.broadcast_to(rowany, node.shape))
    xs = x.nd().reshape(-1, d_in)
    full, mixed = _row_classes(xs)
    out = np.zeros((xs.shape[0], m.shape[0]), dtype=bool)
    out[full] = rowany
    if mixed.any():
        out[mixed] = (xs[mixed].astype(np.float32) @ m.T.astype(np.float32)) > 0
    return Bits.from_dense(out.reshape(node.shape))


def _linear_backward(node, m: np.ndarray, fwd: Bits, out: Bits, acc: Any,
                     colany: np.ndarray) -> np.ndarray:
    d_out, d_in = m.shape
    xs = fwd.nd().reshape(-1, d_in)
    bs = out.nd().reshape(-1, d_out)
    xf, xm = _row_classes(xs)
    bf, bm = _row_classes(bs)
    reach = np.zeros((d_out, d_in), dtype=bool)  # some row joins input i to output o
    if (xf & bf).any():
        reach[:] = True
    else:
        rows = xf & bm  # input row all reached: outputs alive there, every input
        if rows.any():
            reach |= bs[rows].any(0)[:, None]
        rows = bf & xm
        if rows.any():
            reach |= xs[rows].any(0)[None, :]
        rows = bm & xm
        if rows.any():
            reach |= (bs[rows].T.astype(np.float32) @ xs[rows].astype(np.float32)) > 0
    eff = np.logical_and(m, reach).view(np.uint8)  # m: nonzero = kept
    # what is sent back: every input feature with a kept weight to an alive output
    back = np.zeros_like(xs)
    back[bf] = colany
    if bm.any():
        back[bm] = (bs[bm].astype(np.float32) @ m.astype(np.float32)) > 0
    acc.or_flat(back)
    return eff


# ----------------------------------------------------------------------- 1-d / 2-d conv rules


def _conv2d_plan(src, out, kernel, p, g):
    """Tap tables of the row-bitmap conv kernels for a 1-d or 2-d convolution."""
    if len(kernel) == 1:  # (C, L) seen as (C, 1, L)
        kh, kw = 1, kernel[0]
        (sy, sx), (py, px), (dy, dx) = (1, p["stride"][0]), (0, p["padding"][0]), (
            1, p["dilation"][0])
        hin, win, hout, wout = 1, src[1], 1, out[1]
    else:
        kh, kw = kernel
        (sy, sx), (py, px), (dy, dx) = p["stride"], p["padding"], p["dilation"]
        hin, win, hout, wout = src[1], src[2], out[1], out[2]
    k = kh * kw
    taps = np.zeros((k, 6), dtype=np.int64)
    for ky in range(kh):
        offy = ky * dy - py
        ylo, yhi = max(0, -(offy // sy)), min(hout, (hin - 1 - offy) // sy + 1)
        for kx in range(kw):
            offx = kx * dx - px
            xlo, xhi = max(0, -(offx // sx)), min(wout, (win - 1 - offx) // sx + 1)
            taps[ky * kw + kx] = (ylo, yhi, xlo, xhi, offy, offx)
    nwo, nwi = (wout + 63) >> 6, (win + 63) >> 6
    fv = np.zeros((k, hout, nwo), dtype=np.uint64)
    bi = np.zeros((k, hin, nwi), dtype=np.uint64)
    flags = np.zeros((k, 3), dtype=np.uint8)
    frow_o, frow_i = full_line(wout), full_line(win)
    KC.conv_taps(taps, sy, sx, fv, bi, flags, frow_o, frow_i)
    size = 1 << k if k <= KC.MAX_COVER_TAPS else 0
    cover, bcover = np.zeros(size, dtype=np.uint8), np.zeros(size, dtype=np.uint8)
    if size:
        KC.tap_cover(fv, flags, frow_o, np.empty((hout, nwo), dtype=np.uint64), cover)
        KC.tap_cover(bi, flags, frow_i, np.empty((hin, nwi), dtype=np.uint64), bcover)
    cin = src[0]
    return (cin // g, out[0] // g, taps, fv, bi, flags, sy, sx, cover, bcover, frow_o, frow_i,
            (out[0], hout, nwo))


_NO_BYTES = np.zeros(0, dtype=np.uint8)
_NO_ACC = np.zeros((1, 1), dtype=np.uint64)


def _new_flat(size: int, words: bool) -> tuple[np.ndarray, np.ndarray]:
    """A new flat uint8 buffer of ``size`` bytes and its words (see :func:`flat`)."""
    if words:
        e64 = np.empty(size >> 3, dtype=np.uint64)
        return e64.view(np.uint8), e64
    return np.empty(size, dtype=np.uint8), _NO_WORDS


def _rows_forward(w, node, cp, x, record):
    """Forward rule of the uses that the row kernels serve (a Linear layer on a vector, 1-d and
    2-d convolutions); with ``record``, the kernel also writes the effective mask for the case
    that every output is alive backward, and per group the OR of the mask rows, into
    ``w.carry`` for :func:`_rows_backward`."""
    m8, m64 = w.kernel_flat(node)
    groups, n = cp[1], cp[2]
    if record:
        e8, e64 = _new_flat(m8.shape[0], m64.shape[0] > 0)
        acc = np.zeros((groups, (n + 7) >> 3), dtype=np.uint64)
        w.carry[node.id] = (e8, e64, acc)
    else:
        e8, e64, acc = _NO_BYTES, _NO_WORDS, _NO_ACC
    if cp[0] == "vector":
        st = np.empty(node.shape[0], dtype=np.uint8)
        code = KL.linear_forward(m8, m64, e8, e64, acc, record, n, x.rows()[0], st)
        return Bits(node.shape, const=code, st=st, maps=np.empty((st.shape[0], 1, 1), np.uint64))
    (_, g, n, cin_g, cout_g, taps, fv, bi, flags, sy, sx, cover, bcover, frow_o, frow_i,
     mshape) = cp
    st_in, map_in = x.rows()
    st = np.empty(mshape[0], dtype=np.uint8)
    maps = np.empty(mshape, dtype=np.uint64)
    code = KC.conv_forward(m8, m64, e8, e64, acc, record, n, cin_g, cout_g, st_in, map_in, st,
                           maps, taps, fv, bi, flags, cover, sy, sx, frow_o)
    return Bits(node.shape, const=code, st=st, maps=maps)


def _rows_backward(w, node, cp, fwd, out, acc_in):
    """Backward rule of the uses of :func:`_rows_forward`: returns the effective mask (flat
    uint8, kernel layout)."""
    m8, m64 = w.kernel_flat(node)
    got = w.carry.pop(node.id, None)
    written = got is not None
    if written:
        e8, e64, acc = got
    else:
        (e8, e64), acc = _new_flat(m8.shape[0], m64.shape[0] > 0), _NO_ACC
    if cp[0] == "vector":
        KL.linear_backward(m8, m64, e8, e64, acc, written, cp[2], fwd.rows()[0], out.rows()[0],
                           acc_in.st)
        return e8
    (_, g, n, cin_g, cout_g, taps, fv, bi, flags, sy, sx, cover, bcover, frow_o, frow_i,
     mshape) = cp
    st_fi, map_fi = fwd.rows()
    st_bo, map_bo = out.rows()
    KC.conv_backward(m8, m64, e8, e64, acc, written, n, cin_g, cout_g, st_fi, map_fi, st_bo,
                     map_bo, acc_in.st, acc_in.maps, taps, fv, bi, flags, bcover, sy, sx, frow_i)
    return e8


def _conv2d_gemm(torch, F, xp, wt, stride, dilation, g, out):
    """A padding-free 2-d convolution as im2col + one matrix product (float64 GEMM is far
    faster than torch's float64 convolution)."""
    kh, kw = wt.shape[2], wt.shape[3]
    if (kh, kw, stride[0], stride[1]) == (1, 1, 1, 1):
        cols = xp.reshape(xp.shape[0], -1)
    else:
        cols = F.unfold(xp[None], (kh, kw), dilation=dilation, stride=stride)[0]
    out_c = wt.shape[0]
    if g == 1:
        y = wt.reshape(out_c, -1) @ cols
    else:
        y = torch.bmm(wt.reshape(g, out_c // g, -1), cols.reshape(g, -1, cols.shape[-1]))
    return y.reshape(out_c, *out)


KINDS = (LayerUse(),)


def bag_nodes(layers: Any) -> tuple[list[Any], list[int]]:
    """Nodes in which every layer reads an input of its own (the smallest that fits its
    weight) and is an output; and the output ids. See ``Network.from_layers``."""
    from ..network import Node

    nodes, outputs = [], []
    for li, layer in enumerate(layers):
        src = len(nodes)
        if layer.kind == "embedding":
            nodes.append(Node(src, "input", (), (1,), name=f"{layer.name} ids"))
            nodes.append(Node(src + 1, "layer", (src,), (1, layer.out_channels), layer=li,
                              params={"op": "embedding"}))
        elif layer.kind == "linear":
            nodes.append(Node(src, "input", (), (layer.in_channels,), name=f"{layer.name} input"))
            nodes.append(Node(src + 1, "layer", (src,), (layer.out_channels,), layer=li,
                              params={"op": "linear",
                                      "view": ("T",) if layer.transposed else None}))
        else:
            k = layer.kernel
            n = len(k)
            nodes.append(Node(src, "input", (), (layer.in_channels,) + tuple(k),
                              name=f"{layer.name} input"))
            nodes.append(Node(src + 1, "layer", (src,), (layer.out_channels,) + (1,) * n,
                              layer=li, params={
                                  "op": "conv_transpose" if layer.transposed else "conv",
                                  "stride": (1,) * n, "padding": (0,) * n, "dilation": (1,) * n,
                                  "groups": layer.groups}))
            if layer.transposed:  # a transposed conv of a 1-pixel input writes the kernel's size
                nodes[-2] = Node(src, "input", (), (layer.in_channels,) + (1,) * n,
                                 name=f"{layer.name} input")
                nodes[-1] = Node(src + 1, "layer", (src,), (layer.out_channels,) + tuple(k),
                                 layer=li, params=nodes[-1].params)
        outputs.append(src + 1)
    return nodes, outputs
