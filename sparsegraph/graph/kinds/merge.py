"""Element-wise kinds: ``add``, ``scale``, ``mul``, ``gate``.

DESIGN §3: each element carries two facts, *reached* (it carries signal from an input) and
*nonzero*. A sum is reached / nonzero where any term is. A product ``a * b`` of two computed
tensors is reached where (reached a and nonzero b) or (reached b and nonzero a), nonzero where
both are; backward, each factor is alive where the product is and the other factor is nonzero.
A gate (sigmoid, exp, reciprocal, hard-sigmoid) is nonzero everywhere and reached where its
input is. A product with a constant only drops the elements where the constant is zero
(``scale``); everywhere else a constant factor is an identity. A factor that is a parameter
(a layer scale) is trained, so its value at initialisation, zero included, drops nothing.
"""

from __future__ import annotations

import numpy as np

from .. import _kernels_rows as KR
from .._bits import Bits, bits_and, bits_or, full_line
from . import Kind, bad

__all__ = ["KINDS"]


def _same_shapes(node, shapes):
    if any(s != node.shape for s in shapes):
        raise bad(node, f"element-wise {node.kind} of shapes {[list(s) for s in shapes]} into "
                        f"{list(node.shape)} (broadcasting must be explicit, as an index map)")


def _identity_edges(u, node):
    edges = []
    for pos, i in enumerate(node.inputs):
        shape = u.shape_of(i)
        n = shape[u.axis[i]] if shape else 1
        edges.append((pos, np.arange(n), np.arange(n), 1.0, False))
    return edges


class Add(Kind):
    """Element-wise sum of equally shaped inputs (residual connections, ``x - y``)."""

    name = "add"
    arity = (1, None)

    def check(self, net, node, shapes):
        _same_shapes(node, shapes)

    def reach(self, w, node, plan, ins):
        if any(b.is_full for b in ins):
            return Bits.full(node.shape)
        live = [b for b in ins if not b.is_empty]
        if not live:
            return Bits.empty(node.shape)
        if len(live) == 1:
            return live[0]
        if all(b.has_rows for b in live):  # row form: OR the rows
            r, m, wd = live[0].view
            st = np.zeros(r, dtype=np.uint8)
            maps = np.empty((r, m, (wd + 63) >> 6), dtype=np.uint64)
            for b in live:
                s, mp = b.rows()
                KR.or_rows(st, maps, 0, s, mp, 0, r)
            code = KR.normalize(st, maps, wd, full_line(wd))
            return Bits(node.shape, const=code, st=st, maps=maps)
        out = live[0]
        for b in live[1:]:
            out = bits_or(out, b)
        return out

    def backward(self, w, node, plan, out, accs):
        for acc in accs:
            acc.or_bits(out)

    def flow(self, f, node, plan, ins):
        total = ins[0]
        for x in ins[1:]:
            total = total + x
        return total

    def unit_edges(self, u, node, plan, in_axes, axis):
        return _identity_edges(u, node)


class Scale(Kind):
    """Element-wise product with a constant: ``params["keep"]`` (bool, broadcastable to the
    shape) marks where the constant is nonzero; elsewhere the element is dropped (a
    ``masked_fill`` with a finite value, a product with a constant mask)."""

    name = "scale"

    def check(self, net, node, shapes):
        _same_shapes(node, shapes)
        keep = node.params.get("keep")
        try:
            np.broadcast_to(keep, node.shape)
        except Exception:  # noqa: BLE001 - anything that is not broadcastable
            raise bad(node, f"'keep' must be a bool array broadcastable to {list(node.shape)}"
                      ) from None
        if not isinstance(keep, np.ndarray) or keep.dtype != np.bool_:
            raise bad(node, "'keep' must be a bool numpy array")

    def _keep(self, node):
        return np.broadcast_to(node.params["keep"], node.shape)

    def reach(self, w, node, plan, ins):
        x = ins[0]
        if x.is_empty:
            return x
        return Bits.from_flat(node.shape, x.nd() & self._keep(node))

    def backward(self, w, node, plan, out, accs):
        if not out.is_empty:
            accs[0].or_flat(np.ascontiguousarray(out.nd() & self._keep(node)))

    def flow(self, f, node, plan, ins):
        keep = f.cached(("keep", node.id), lambda: f.torch.from_numpy(
            np.ascontiguousarray(self._keep(node), dtype=np.float64)))
        return ins[0] * keep

    def unit_edges(self, u, node, plan, in_axes, axis):
        return _identity_edges(u, node)


class Mul(Kind):
    """Element-wise product of two computed, equally shaped tensors (squeeze-excitation,
    GLU/SwiGLU gates; ``a / b`` is ``a * gate(b)``)."""

    name = "mul"
    arity = (2, 2)
    nonlinear = True

    def check(self, net, node, shapes):
        _same_shapes(node, shapes)

    def forward(self, w, node, plan, ins_r, ins_z):
        (ra, rb), (za, zb) = ins_r, ins_z
        return bits_or(bits_and(ra, zb), bits_and(rb, za)), bits_and(za, zb)

    def backward(self, w, node, plan, out, accs):
        za, zb = (w.fwd_z[i] for i in node.inputs)
        accs[0].or_bits(bits_and(out, zb))
        accs[1].or_bits(bits_and(out, za))

    def flow(self, f, node, plan, ins):
        za, zb = (f.z(i) for i in node.inputs)
        return ins[0] * zb + za * ins[1]

    def unit_edges(self, u, node, plan, in_axes, axis):
        return _identity_edges(u, node)


class Gate(Kind):
    """A function of its input that is nonzero everywhere (sigmoid, hard-sigmoid, exp,
    softplus, reciprocal, cosine): reached where its input is, nonzero everywhere."""

    name = "gate"
    nonlinear = True

    def check(self, net, node, shapes):
        _same_shapes(node, shapes)

    def forward(self, w, node, plan, ins_r, ins_z):
        return ins_r[0], Bits.full(node.shape)

    def backward(self, w, node, plan, out, accs):
        accs[0].or_bits(out)

    def flow(self, f, node, plan, ins):
        return ins[0]

    def unit_edges(self, u, node, plan, in_axes, axis):
        return _identity_edges(u, node)


KINDS = (Add(), Scale(), Mul(), Gate())
