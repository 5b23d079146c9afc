"""The kinds of attention: ``matmul`` (a contraction of two computed tensors) and ``softmax``.

DESIGN §3. ``c = a @ b`` applies the product rule over the contracted index: ``c[i, j]`` is
reached where some ``k`` has (reached ``a[i, k]`` and nonzero ``b[k, j]``) or (nonzero
``a[i, k]`` and reached ``b[k, j]``), nonzero where some ``k`` has both nonzero; backward,
``a[i, k]`` is alive where some alive ``c[i, j]`` has ``b[k, j]`` nonzero, and symmetrically.

``softmax`` along an axis passes signal only among the entries of its fibre that are not masked
(a constant of -inf, or so negative that exp underflows to 0 in float64, added before it):
masked entries are zero; in a fibre with at least two unmasked entries, every unmasked output
is nonzero and reached iff some unmasked input is; a fibre with a single unmasked entry is the
constant 1 (nonzero, not reached) and sends nothing back.
"""

from __future__ import annotations

import numpy as np

from .._bits import Bits
from . import Kind, bad

__all__ = ["KINDS"]


def _bool_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean batched matrix product (float32 counts are exact below 2**24 terms)."""
    return np.matmul(a.astype(np.float32), b.astype(np.float32)) > 0


class Matmul(Kind):
    """``a @ b`` for ``a`` of shape ``(..., n, k)`` and ``b`` ``(..., k, m)`` with equal batch
    axes (broadcasting is made explicit by index maps)."""

    name = "matmul"
    arity = (2, 2)
    nonlinear = True

    def check(self, net, node, shapes):
        a, b = shapes
        ok = (len(a) == len(b) == len(node.shape) >= 2 and a[:-2] == b[:-2] == node.shape[:-2]
              and a[-1] == b[-2] and node.shape[-2:] == (a[-2], b[-1]))
        if not ok:
            raise bad(node, f"matrix product of {list(a)} and {list(b)} into "
                            f"{list(node.shape)}")

    def forward(self, w, node, plan, ins_r, ins_z):
        (ra, rb), (za, zb) = ins_r, ins_z
        if (ra.is_empty and rb.is_empty) or za.is_empty or zb.is_empty:
            r = Bits.empty(node.shape)
        else:
            r = Bits.from_dense(_bool_mm(ra.nd(), zb.nd()) | _bool_mm(za.nd(), rb.nd()))
        if za.is_empty or zb.is_empty:
            return r, Bits.empty(node.shape)
        return r, Bits.from_dense(_bool_mm(za.nd(), zb.nd()))

    def backward(self, w, node, plan, out, accs):
        if out.is_empty:
            return
        za, zb = (w.fwd_z[i] for i in node.inputs)
        g = out.nd()
        if not zb.is_empty:
            accs[0].or_flat(np.ascontiguousarray(_bool_mm(g, np.swapaxes(zb.nd(), -1, -2))))
        if not za.is_empty:
            accs[1].or_flat(np.ascontiguousarray(_bool_mm(np.swapaxes(za.nd(), -1, -2), g)))

    def flow(self, f, node, plan, ins):
        za, zb = (f.z(i) for i in node.inputs)
        return ins[0] @ zb + za @ ins[1]

    def unit_axis(self, node, in_axes):
        return len(node.shape) - 1

    def unit_edges(self, u, node, plan, in_axes, axis):
        m = node.shape[-1]
        b_shape = u.shape_of(node.inputs[1])
        edges = []
        if in_axes[1] == len(b_shape) - 1:
            edges.append((1, np.arange(m), np.arange(m), 1.0, False))
        a_shape = u.shape_of(node.inputs[0])
        n_a = a_shape[in_axes[0]]
        src, dst = np.meshgrid(np.arange(n_a), np.arange(m), indexing="ij")
        edges.append((0, src.ravel(), dst.ravel(), 1.0, False))
        return edges


class Softmax(Kind):
    """Softmax along ``params["axis"]``; ``params["masked"]`` (bool array broadcastable to the
    shape, or None) marks the entries a constant sends to -inf."""

    name = "softmax"
    nonlinear = True

    def check(self, net, node, shapes):
        if shapes[0] != node.shape:
            raise bad(node, f"softmax of {list(shapes[0])} into {list(node.shape)}")
        axis = node.params.get("axis")
        if not isinstance(axis, int) or not 0 <= axis < len(node.shape):
            raise bad(node, f"softmax axis {axis!r} is not an axis of {list(node.shape)}")
        masked = node.params.get("masked")
        if masked is not None:
            if not isinstance(masked, np.ndarray) or masked.dtype != np.bool_:
                raise bad(node, "'masked' must be a bool numpy array or None")
            try:
                np.broadcast_to(masked, node.shape)
            except ValueError:
                raise bad(node, f"'masked' {list(masked.shape)} does not broadcast to "
                                f"{list(node.shape)}") from None

    def plan(self, net, node):
        masked = node.params.get("masked")
        unmasked = (np.ones(node.shape, dtype=bool) if masked is None
                    else ~np.broadcast_to(masked, node.shape))
        live = unmasked & (unmasked.sum(node.params["axis"], keepdims=True) >= 2)
        return unmasked, live

    def forward(self, w, node, plan, ins_r, ins_z):
        unmasked, live = plan
        r = ins_r[0]
        if r.is_empty or not live.any():
            out = Bits.empty(node.shape)
        else:
            hit = (r.nd() & unmasked).any(node.params["axis"], keepdims=True)
            out = Bits.from_dense(live & hit)
        return out, Bits.from_dense(unmasked)

    def backward(self, w, node, plan, out, accs):
        unmasked, live = plan
        if out.is_empty:
            return
        hit = (out.nd() & unmasked).any(node.params["axis"], keepdims=True)
        accs[0].or_flat(np.ascontiguousarray(live & hit))

    def flow(self, f, node, plan, ins):
        unmasked, live = (f.cached(("softmax", node.id, k), lambda a=a: f.torch.from_numpy(
            a.astype(np.float64))) for k, a in enumerate(plan))
        return live * (ins[0] * unmasked).sum(node.params["axis"], keepdim=True)

    def unit_edges(self, u, node, plan, in_axes, axis):
        n = node.shape[axis] if node.shape else 1
        if axis == node.params["axis"]:
            src, dst = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            return [(0, src.ravel(), dst.ravel(), 1.0, False)]
        return [(0, np.arange(n), np.arange(n), 1.0, False)]


KINDS = (Matmul(), Softmax())
