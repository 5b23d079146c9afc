"""Tracer rules of the ops that apply weights: linear maps, matrix products, einsum,
convolutions, embeddings and attention (private).

A parameter (or a view of one: a slice, a transpose) used as the weight of ``F.linear``,
``matmul``/``addmm``, ``F.conv*d``, ``F.conv_transpose*d`` or ``F.embedding`` is a prunable layer;
each call is one use. A product of two activations is a contraction (``matmul`` node).
``F.scaled_dot_product_attention`` and ``F.multi_head_attention_forward`` are read through
their definitions (projections, a scaled contraction, the masks, a softmax, a contraction), run
under the recorder so every step is one of the rules above.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from . import windows as W
from ._ops import arg, attach, index_map, no_neginf, op
from .trace import Ids, PView, Recorder, Sig

# ---------------------------------------------------------------------------- layer uses


def _view(shape: tuple[int, ...], idx: np.ndarray | None) -> Any:
    """The most compact description of a parameter view (see the ``layer`` kind)."""
    if idx is None:
        return None
    base = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    if idx.shape == shape and np.array_equal(idx, base):
        return None
    if len(shape) == 2 and idx.shape == shape[::-1] and np.array_equal(idx, base.T):
        return ("T",)
    row = math.prod(shape[1:])
    if idx.ndim == len(shape) and idx.shape[1:] == shape[1:] and idx.size:
        a = int(idx.flat[0]) // row if row else 0
        if np.array_equal(idx, base[a:a + idx.shape[0]]):
            return ("rows", a, a + idx.shape[0])
    return ("index", np.ascontiguousarray(idx.reshape(-1)), tuple(idx.shape))


def _use(rec: Recorder, pv: PView, op_: str, x: Sig, out_shape: tuple[int, ...],
         layer: dict[str, Any], **geometry: Any) -> Sig:
    """Record one use of parameter ``pv`` as the weight of ``op_`` on ``x``."""
    p = rec.params[pv.name]
    view = _view(tuple(p.shape), pv.idx)
    if op_ in ("conv", "conv_transpose", "embedding") and view is not None:
        raise rec.error(f"a view of parameter {pv.name!r} as a {op_} weight")
    rec.uses.setdefault(pv.name, []).append(layer)
    params = {"param": pv.name, "op": op_, "view": view, **geometry}
    n = rec.node("layer", (x.node,), out_shape, params=params)
    return Sig(n, x.batch, x.inner)


def _linear_layer(p_shape: tuple[int, ...], view: Any, rec: Recorder, name: str
                  ) -> dict[str, Any]:
    if len(p_shape) != 2:
        raise rec.error(f"parameter {name!r} of shape {list(p_shape)} used as a linear weight")
    if view == ("T",):
        return {"kind": "linear", "in": p_shape[0], "out": p_shape[1], "transposed": True}
    return {"kind": "linear", "in": p_shape[1], "out": p_shape[0]}


def _apply_linear(rec: Recorder, x: torch.Tensor, s: Sig, pv: PView, out: torch.Tensor) -> Any:
    """``out = x @ w.T`` for the weight view ``pv`` (its own layout ``(out, in)``)."""
    no_neginf(rec, s)
    if s.batch is not None and s.batch == x.dim() - 1 and (s.inner == 1 or rec.batch > 1):
        raise rec.error("applies a linear map to the batch axis")
    p = rec.params[pv.name]
    layer = _linear_layer(tuple(p.shape), _view(tuple(p.shape), pv.idx), rec, pv.name)
    shape = rec.unbatched(out.shape, s.batch, s.inner)
    return attach(rec, out, _use(rec, pv, "linear", s, shape, layer))


def _constant_map(rec: Recorder, s: Sig, x: torch.Tensor, c: torch.Tensor, out: torch.Tensor,
                  axis: int) -> Any:
    """A linear map by a constant matrix ``c`` (out, in) along torch dim ``axis``: output
    ``o`` reads the inputs where ``c[o]`` is nonzero (an index map; never prunable)."""
    nz = (c.detach() != 0).cpu().numpy()
    wins = {axis % x.dim(): W.csr([np.flatnonzero(row) for row in nz])}
    return attach(rec, out, index_map(rec, s, tuple(x.shape), out.shape, windows=wins))


@op("linear")
def _linear(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    out = func(*args, **kwargs)
    s, pv = rec.sig(x), rec.value(w)
    if isinstance(pv, Sig):
        raise rec.error("a linear map whose weight is computed from the input")
    if s is None:
        if isinstance(pv, PView):
            rec.const_uses.setdefault(pv.name, "linear of a constant")
        return out
    if isinstance(pv, PView):
        return _apply_linear(rec, x, s, pv, out)
    return _constant_map(rec, s, x, w, out, -1)


@op("matmul", "__matmul__", "__rmatmul__", "mm", "bmm")
def _matmul(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "other")
    if rec.op == "__rmatmul__":
        a, b = b, a
    out = func(*args, **kwargs)
    va, vb = rec.value(a), rec.value(b)
    sa, sb = (v if isinstance(v, Sig) else None for v in (va, vb))
    if sa is None and sb is None:
        for v in (va, vb):
            if isinstance(v, PView):
                rec.const_uses.setdefault(v.name, "matmul of constants")
        return out
    if sa is not None and sb is not None:
        return _contraction(rec, a, b, sa, sb, out)
    if sa is not None:
        if isinstance(vb, PView):  # x @ W: a linear map with weight W.T
            if b.dim() != 2:
                raise rec.error(f"matmul with a parameter of shape {list(b.shape)}")
            p = rec.params[vb.name]
            base = vb.idx if vb.idx is not None else np.arange(p.numel()).reshape(p.shape)
            return _apply_linear(rec, a, sa, PView(vb.name, np.ascontiguousarray(base.T)), out)
        if b.dim() != 2:
            raise rec.error("matmul of an activation with a constant that is not a matrix")
        return _constant_map(rec, sa, a, b.T, out, -1)
    # W @ x: a linear map of x's second-to-last axis
    if a.dim() != 2 or b.dim() < 2:
        raise rec.error(f"matmul of {list(a.shape)} and an activation {list(b.shape)}")
    with rec:
        return torch.matmul(b.transpose(-2, -1), a.T).transpose(-2, -1)


def _contraction(rec: Recorder, a: torch.Tensor, b: torch.Tensor, sa: Sig, sb: Sig,
                 out: torch.Tensor) -> Any:
    """``a @ b`` of two activations: a ``matmul`` node on equally shaped batch axes."""
    no_neginf(rec, sa, sb)
    if a.dim() == 1 or b.dim() == 1 or a.shape[:-2] != b.shape[:-2]:
        with rec:  # make the operands (..., n, k) and (..., k, m) with equal batch axes
            a2 = a.unsqueeze(0) if a.dim() == 1 else a
            b2 = b.unsqueeze(-1) if b.dim() == 1 else b
            batch = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
            a2 = a2.expand(*batch, *a2.shape[-2:])
            b2 = b2.expand(*batch, *b2.shape[-2:])
            y = torch.matmul(a2, b2)
            if a.dim() == 1:
                y = y.squeeze(-2)
            if b.dim() == 1:
                y = y.squeeze(-1)
            return y
    r = a.dim()
    for s in (sa, sb):
        if s.batch is not None and s.batch >= r - 2:
            raise rec.error("a matrix product over the batch axis")
    if (sa.batch, sa.inner) != (sb.batch, sb.inner):
        raise rec.error("a matrix product of operands whose batch axes differ")
    shape = rec.unbatched(out.shape, sa.batch, sa.inner)
    n = rec.node("matmul", (sa.node, sb.node), shape)
    return attach(rec, out, Sig(n, sa.batch, sa.inner))


@op("addmm", "baddbmm")
def _addmm(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    bias, m1, m2 = (arg(args, kwargs, i, n) for i, n in enumerate(("input", "mat1", "mat2")))
    if rec.op == "baddbmm":
        m1, m2 = arg(args, kwargs, 1, "batch1"), arg(args, kwargs, 2, "batch2")
    if rec.sig(m1) is None and rec.sig(m2) is None:
        if rec.sig(bias) is not None:
            raise rec.error(f"{rec.op} whose only activation is the added term")
        out = func(*args, **kwargs)
        for m in (m1, m2):
            if isinstance(rec.value(m), PView):
                rec.const_uses.setdefault(rec.value(m).name, rec.op)
        return out
    beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    if beta == 0 or alpha == 0:
        raise rec.error(f"{rec.op} with beta or alpha 0")
    with rec:
        y = torch.matmul(m1, m2)
        return y + bias if rec.sig(bias) is not None else y + bias.detach()


# --------------------------------------------------------------------------------- einsum


@op("einsum")
def _einsum(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    eq = args[0]
    ops = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(
        args[1:])
    if not any(isinstance(rec.value(t), (Sig, PView)) for t in ops):
        return func(*args, **kwargs)
    if len(ops) > 2:
        raise rec.error("einsum of more than two operands", "split it into pairwise einsums")
    ins, _, out_l = eq.replace(" ", "").partition("->")
    terms = ins.split(",")
    if not out_l and "->" not in eq:
        letters = [c for t in terms for c in t if c != "."]
        out_l = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    terms, out_l = _expand_ellipsis(terms, out_l, ops)
    if any(len(set(t)) != len(t) for t in terms):
        raise rec.error("einsum with a repeated index in one operand (a diagonal)")
    with rec:
        if len(ops) == 1:
            return _einsum1(terms[0], out_l, ops[0])
        return _einsum2(terms[0], terms[1], out_l, ops[0], ops[1])


def _expand_ellipsis(terms: list[str], out: str, ops: list[torch.Tensor]
                     ) -> tuple[list[str], str]:
    if not any("..." in t for t in terms):
        return terms, out
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in "".join(terms) + out]
    n = max(t.dim() - len(term.replace("...", "")) for term, t in zip(terms, ops, strict=True))
    fill = "".join(spare[:n])
    new = []
    for term, t in zip(terms, ops, strict=True):
        k = t.dim() - len(term.replace("...", ""))
        new.append(term.replace("...", fill[n - k:]))
    return new, out.replace("...", fill)


def _einsum1(term: str, out: str, x: torch.Tensor) -> torch.Tensor:
    summed = [i for i, c in enumerate(term) if c not in out]
    if summed:
        x = x.sum(dim=summed)
        term = "".join(c for c in term if c in out)
    return x.permute([term.index(c) for c in out])


def _einsum2(ta: str, tb: str, out: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    def presum(t: str, x: torch.Tensor, other: str) -> tuple[str, torch.Tensor]:
        summed = [i for i, c in enumerate(t) if c not in out and c not in other]
        if summed:
            x = x.sum(dim=summed)
            t = "".join(c for c in t if c in out or c in other)
        return t, x

    (ta, a), (tb, b) = presum(ta, a, tb), presum(tb, b, ta)
    batch = [c for c in ta if c in tb and c in out]
    contr = [c for c in ta if c in tb and c not in out]
    free_a = [c for c in ta if c not in tb]
    free_b = [c for c in tb if c not in ta]
    size = {c: n for t, x in ((ta, a), (tb, b)) for c, n in zip(t, x.shape, strict=True)}
    pa = a.permute([ta.index(c) for c in batch + free_a + contr])
    pb = b.permute([tb.index(c) for c in batch + contr + free_b])
    nb = [size[c] for c in batch]
    ma = pa.reshape(*nb, math.prod(size[c] for c in free_a), math.prod(size[c] for c in contr))
    mb = pb.reshape(*nb, math.prod(size[c] for c in contr), math.prod(size[c] for c in free_b))
    y = torch.matmul(ma, mb).reshape(*nb, *(size[c] for c in free_a), *(size[c] for c in free_b))
    order = batch + free_a + free_b
    return y.permute([order.index(c) for c in out])


# --------------------------------------------------------------------------- convolutions


def _spatial(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(u) for u in v) if len(v) == n else (int(v[0]),) * n
    return (int(v),) * n


@op("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    out = func(*args, **kwargs)
    s, pv = rec.sig(x), rec.value(w)
    if isinstance(pv, Sig):
        raise rec.error("a convolution whose weight is computed from the input")
    if s is None:
        if isinstance(pv, PView):
            rec.const_uses.setdefault(pv.name, "convolution of a constant")
        return out
    if not isinstance(pv, PView):
        raise rec.error("a convolution with a constant weight that is not a parameter")
    no_neginf(rec, s)
    if s.batch not in (None, 0) or s.inner != 1:
        raise rec.error("a convolution of a tensor whose batch axis is not first")
    transposed = rec.op.startswith("conv_transpose")
    n = w.dim() - 2
    if transposed:  # (input, weight, bias, stride, padding, output_padding, groups, dilation)
        stride, padding = (_spatial(arg(args, kwargs, i, k, d), n) for i, k, d in
                           ((3, "stride", 1), (4, "padding", 0)))
        groups = int(arg(args, kwargs, 6, "groups", 1))
        dilation = _spatial(arg(args, kwargs, 7, "dilation", 1), n)
    else:  # (input, weight, bias, stride, padding, dilation, groups)
        stride = _spatial(arg(args, kwargs, 3, "stride", 1), n)
        pad = arg(args, kwargs, 4, "padding", 0)
        dilation = _spatial(arg(args, kwargs, 5, "dilation", 1), n)
        groups = int(arg(args, kwargs, 6, "groups", 1))
        if isinstance(pad, str):
            padding = ((0,) * n if pad == "valid" else
                       tuple(dilation[a] * (w.shape[2 + a] - 1) // 2 for a in range(n)))
        else:
            padding = _spatial(pad, n)
    p = rec.params[pv.name]
    if transposed:
        layer = {"kind": "conv", "in": p.shape[0], "out": p.shape[1] * groups, "groups": groups,
                 "transposed": True}
    else:
        layer = {"kind": "conv", "in": p.shape[1] * groups, "out": p.shape[0], "groups": groups}
    shape = rec.unbatched(out.shape, s.batch, 1)
    sig = _use(rec, pv, "conv_transpose" if transposed else "conv", s, shape, layer,
               stride=stride, padding=padding, dilation=dilation, groups=groups)
    return attach(rec, out, sig)


# ------------------------------------------------------------------------------ embedding


@op("embedding")
def _embedding(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    ids, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    out = func(*args, **kwargs)
    vi, pv = rec.value(ids), rec.value(w)
    if isinstance(vi, Sig):
        raise rec.error("an embedding indexed by an activation (data-dependent)")
    if not isinstance(pv, PView) or pv.idx is not None:
        return out  # a constant table
    if not isinstance(vi, Ids):
        rec.const_uses.setdefault(pv.name, "embedding of constant indices")
        return out
    p = rec.params[pv.name]
    ids_shape = rec.unbatched(ids.shape, vi.batch)
    src = rec.node("input", (), ids_shape, params={"ids": True})
    layer = {"kind": "embedding", "in": p.shape[0], "out": p.shape[1]}
    sig = _use(rec, pv, "embedding", Sig(src, vi.batch), rec.unbatched(out.shape, vi.batch),
               layer)
    rec.lookups.append((sig.node, src, pv.name))
    return attach(rec, out, sig)


# ------------------------------------------------------------------------------ attention


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Any = None,
          dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
          enable_gqa: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` by its definition (run under the recorder)."""
    n_q, n_k = q.size(-2), k.size(-2)
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    if enable_gqa and k.size(-3) != q.size(-3):
        rep = q.size(-3) // k.size(-3)
        k = k.repeat_interleave(rep, -3)
        v = v.repeat_interleave(rep, -3)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if is_causal:
        keep = torch.ones(n_q, n_k, dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    return torch.matmul(torch.softmax(scores, -1), v)


@op("scaled_dot_product_attention")
def _attention(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    with rec:
        return _sdpa(*args, **kwargs)


@op("multi_head_attention_forward")
def _mha(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    names = ("query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight",
             "in_proj_bias", "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight",
             "out_proj_bias", "training", "key_padding_mask", "need_weights", "attn_mask",
             "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
             "static_k", "static_v", "average_attn_weights", "is_causal")
    a = dict(zip(names, args, strict=False))
    a.update(kwargs)
    if a.get("static_k") is not None or a.get("static_v") is not None:
        raise rec.error("multi-head attention with static_k / static_v")
    with rec:
        return _mha_forward(a)


def _mha_forward(a: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``F.multi_head_attention_forward`` by its definition, keeping the batch axis apart
    (run under the recorder)."""
    query, key, value = a["query"], a["key"], a["value"]
    batched = query.dim() == 3
    if not batched:
        query, key, value = (t.unsqueeze(1) for t in (query, key, value))
    t_len, bsz, e = query.shape
    heads = int(a["num_heads"])
    hd = e // heads
    if a.get("use_separate_proj_weight"):
        wq, wk, wv = a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"]
    else:
        w = a["in_proj_weight"]
        wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
    b = a.get("in_proj_bias")
    bq, bk, bv = (None, None, None) if b is None else (b[:e], b[e:2 * e], b[2 * e:])
    q, k, v = F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)
    mask = a.get("attn_mask")
    kpm = a.get("key_padding_mask")
    if a.get("bias_k") is not None:
        k = torch.cat([k, a["bias_k"].repeat(1, bsz, 1)])
        v = torch.cat([v, a["bias_v"].repeat(1, bsz, 1)])
        mask = None if mask is None else F.pad(mask, (0, 1))
        kpm = None if kpm is None else F.pad(kpm, (0, 1))
    if a.get("add_zero_attn"):
        k = torch.cat([k, torch.zeros((1,) + tuple(k.shape[1:]))], 0)
        v = torch.cat([v, torch.zeros((1,) + tuple(v.shape[1:]))], 0)
        mask = None if mask is None else F.pad(mask, (0, 1))
        kpm = None if kpm is None else F.pad(kpm, (0, 1))
    s_len = k.shape[0]
    # (T, B, E) -> (B, heads, T, hd)
    q, k, v = (t.reshape(t.shape[0], bsz, heads, hd).permute(1, 2, 0, 3) for t in (q, k, v))
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
    if mask is None and a.get("is_causal"):
        mask = ~torch.ones(t_len, s_len, dtype=torch.bool).tril()
    if mask is not None:
        mask = mask.reshape(bsz, heads, t_len, s_len) if mask.dim() == 3 else mask
        scores = (scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool
                  else scores + mask)
    if kpm is not None:
        kpm = kpm.reshape(bsz, 1, 1, s_len)
        scores = (scores.masked_fill(kpm, float("-inf")) if kpm.dtype == torch.bool
                  else scores + kpm)
    probs = torch.softmax(scores, -1)
    out = torch.matmul(probs, v)  # (B, heads, T, hd)
    out = out.permute(2, 0, 1, 3).reshape(t_len, bsz, e)
    out = F.linear(out, a["out_proj_weight"], a.get("out_proj_bias"))
    weights = None
    if a.get("need_weights", True):
        weights = probs.mean(1) if a.get("average_attn_weights", True) else probs
        if not batched:
            weights = weights.squeeze(0)
    if not batched:
        out = out.squeeze(1)
    return out, weights

