"""The tracer's op table: one rule per torch op (private; see :mod:`sparsegraph.graph.trace`).

``OPS[name](rec, func, args, kwargs)`` runs the op on the real tensors, records the nodes it
makes and returns the real output. The rules live in ``_ops_elementwise``, ``_ops_layout`` and
``_ops_layers``; this module holds the registry and what they share: broadcasting, the batch
axis, constants seen without their batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from . import windows as W
from .kinds.layout import index_params
from .trace import Ids, PView, Recorder, Sig

__all__ = ["OPS", "RNN_OPS", "op", "op_name", "attach", "broadcast", "index_map", "reshape"]

OPS: dict[str, Callable[..., Any]] = {}
RNN_OPS = {"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell",
           "rnn_relu_cell", "_VF.lstm"}


def op(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a rule under one or more op names."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for n in names:
            OPS[n] = fn
        return fn

    return register


def op_name(func: Any) -> str:
    """The name of a torch function, method or attribute read (``"attr:shape"``)."""
    name = getattr(func, "__name__", "") or repr(func)
    if name == "__get__":
        owner = getattr(func, "__self__", None)
        return "attr:" + str(getattr(owner, "__name__", "?"))
    return name


def arg(args: Sequence[Any], kwargs: dict[str, Any], i: int, name: str, default: Any = None
        ) -> Any:
    """Positional argument ``i`` or keyword ``name``."""
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


# ------------------------------------------------------------------------ shapes and batch


def node_axes(rec: Recorder, s: Sig, rank: int) -> list[int | None]:
    """The node axis of each torch dim of a tensor carried by ``s`` (None: the batch)."""
    out: list[int | None] = []
    k = 0
    for d in range(rank):
        if s.batch is not None and d == s.batch and s.inner == 1:
            out.append(None)
        else:
            out.append(k)
            k += 1
    return out


def same(rec: Recorder, t: torch.Tensor, s: Sig, *, keep_neginf: bool = True) -> torch.Tensor:
    """``t`` is ``s`` element for element (an identity op)."""
    if tuple(t.shape) != _torch_shape(rec, s):
        raise rec.error(f"an element-wise op changed the shape to {list(t.shape)}")
    rec.bind(t, Sig(s.node, s.batch, s.inner, s.neginf if keep_neginf else None))
    return t


def _torch_shape(rec: Recorder, s: Sig) -> tuple[int, ...]:
    shape = list(rec.shape(s))
    if s.batch is None:
        return tuple(shape)
    if s.inner > 1:
        shape[s.batch] *= rec.batch
        return tuple(shape)
    return tuple(shape[:s.batch] + [rec.batch] + shape[s.batch:])


def no_neginf(rec: Recorder, *sigs: Sig | None) -> None:
    """Refuse a -inf mask reaching an op that is not a softmax."""
    if any(s is not None and s.neginf is not None and s.neginf.any() for s in sigs):
        raise rec.error("a -inf constant (an attention mask) reaches an op other than softmax",
                        "add the mask right before the softmax")


def unbatched_const(rec: Recorder, c: Any, out_shape: Sequence[int], batch: int | None,
                    inner: int = 1) -> np.ndarray:
    """A constant broadcast to a batched output shape, seen without its batch axis (it must be
    the same for every batch item)."""
    arr = torch.as_tensor(c).detach().to("cpu")
    arr = torch.broadcast_to(arr, tuple(out_shape)).numpy()
    if batch is None:
        return np.array(arr)
    if inner > 1:
        parts = np.split(arr, rec.batch, axis=batch)
    else:
        parts = [np.take(arr, i, axis=batch) for i in range(arr.shape[batch])]
    first = parts[0]
    if any(not np.array_equal(first, p, equal_nan=True) for p in parts[1:]):
        raise rec.error("a constant (e.g. a padding mask) differs between the items of the batch",
                        "trace with a batch of one example")
    return np.array(first)


def attach(rec: Recorder, t: torch.Tensor, s: Sig) -> torch.Tensor:
    """Bind a real output tensor to ``s`` (checking the shapes agree); returns ``t``."""
    shape = rec.unbatched(t.shape, s.batch, s.inner)
    if shape != rec.shape(s):
        raise rec.error(f"the tracer's shape {list(rec.shape(s))} disagrees with the op's "
                        f"output {list(t.shape)}")
    rec.bind(t, s)
    return t


def reshape(rec: Recorder, s: Sig, in_shape: Sequence[int], out_shape: Sequence[int]) -> Sig:
    """The tensor of ``in_shape`` carried by ``s``, its elements in the same C order relabelled
    to ``out_shape`` (view, reshape, flatten, squeeze, unsqueeze)."""
    S, So = tuple(int(v) for v in in_shape), tuple(int(v) for v in out_shape)
    if s.batch is None:
        batch, inner = None, 1
    else:
        b, B = s.batch, rec.batch
        prefix = math.prod(S[:b])
        per_item = math.prod(S[b + 1:]) * s.inner
        batch = inner = None
        run = 1
        for j, size in enumerate(So):
            if run == prefix and size % B == 0 and (size // B) * math.prod(So[j + 1:]) == per_item:
                batch, inner = j, size // B
                break
            run *= size
        if batch is None and B != 1:
            raise rec.error(f"reshapes {list(S)} to {list(So)}, mixing the batch with other axes",
                            "keep the batch axis separate, e.g. torch.flatten(x, 1)")
        inner = inner or 1  # batch size 1: the batch axis may simply disappear
    shape = rec.unbatched(So, batch, inner)
    mask = None if s.neginf is None else s.neginf.reshape(shape)
    if shape == rec.shape(s):
        return Sig(s.node, batch, inner, mask)
    return Sig(rec.node("reshape", (s.node,), shape), batch, inner, mask)


def index_map(rec: Recorder, s: Sig, t_in: Sequence[int], out_shape: Sequence[int],
              perm: Sequence[int] | None = None,
              windows: dict[int, tuple[np.ndarray, np.ndarray]] | None = None) -> Sig:
    """An index map of the tensor of shape ``t_in`` carried by ``s`` into ``out_shape``: torch
    output dim ``j`` reads input dim ``perm[j]`` through ``windows[j]`` (None: identity). The
    batch axis must be read through the identity."""
    r = len(t_in)
    perm = tuple(range(r)) if perm is None else tuple(perm)
    windows = windows or {}
    axes = node_axes(rec, s, r)
    node_perm, node_wins = [], {}
    batch = None
    inner = s.inner if s.batch is not None else 1
    for j, d in enumerate(perm):
        if s.batch is not None and d == s.batch:
            batch = j
        if axes[d] is None:
            if j in windows:
                raise rec.error("indexes or pools the batch axis",
                                "keep the batch axis out of the computation")
            continue
        if s.batch is not None and d == s.batch and j in windows and rec.batch > 1:
            raise rec.error("indexes an axis that holds several batch items")
        k = len(node_perm)
        node_perm.append(axes[d])
        if j in windows:
            node_wins[k] = windows[j]
    shape = rec.unbatched(out_shape, batch, inner)
    mask = None
    if s.neginf is not None:
        mask = _move_mask(rec, s.neginf, node_perm, node_wins)
    identity = node_perm == list(range(len(node_perm))) and all(
        _is_identity(w, rec.shape(s)[node_perm[k]]) for k, w in node_wins.items())
    if identity and shape == rec.shape(s):
        return Sig(s.node, batch, inner, mask)
    node = rec.node("index", (s.node,), shape,
                    params=index_params(len(shape), tuple(node_perm), node_wins))
    return Sig(node, batch, inner, mask)


def _is_identity(win: tuple[np.ndarray, np.ndarray], n: int) -> bool:
    ptr, idx = win
    return ptr.shape[0] == n + 1 and idx.shape[0] == n and bool(
        np.array_equal(idx, np.arange(n))) and bool(np.array_equal(ptr, np.arange(n + 1)))


def _move_mask(rec: Recorder, mask: np.ndarray, perm: list[int],
               wins: dict[int, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    m = mask.transpose(perm)
    for k, (ptr, idx) in wins.items():
        if np.any(np.diff(ptr) > 1):
            raise rec.error("a -inf constant (an attention mask) is pooled or reduced before "
                            "the softmax")
        pos = np.full(ptr.shape[0] - 1, -1, dtype=np.int64)
        have = np.diff(ptr) == 1
        pos[have] = idx[ptr[:-1][have]]
        taken = np.take(m, np.maximum(pos, 0), axis=k)
        shape = [1] * m.ndim
        shape[k] = pos.size
        m = taken & (pos >= 0).reshape(shape)
    return np.ascontiguousarray(m)


def broadcast(rec: Recorder, s: Sig, t_shape: Sequence[int], out_shape: Sequence[int]) -> Sig:
    """``s`` (a tensor of ``t_shape``) broadcast to ``out_shape`` (torch rules)."""
    t_shape, out_shape = tuple(int(v) for v in t_shape), tuple(int(v) for v in out_shape)
    if t_shape == out_shape:
        return s
    lead = len(out_shape) - len(t_shape)
    cur = s
    if lead:
        shape = (1,) * lead + rec.shape(s)
        node = rec.node("reshape", (s.node,), shape)
        mask = None if s.neginf is None else s.neginf.reshape(shape)
        cur = Sig(node, None if s.batch is None else s.batch + lead, s.inner, mask)
        t_shape = (1,) * lead + t_shape
    axes = node_axes(rec, cur, len(t_shape))
    wins = {}
    for d, (a, b) in enumerate(zip(t_shape, out_shape, strict=True)):
        if a != b:
            if a != 1 or axes[d] is None:
                raise rec.error(f"cannot broadcast {list(t_shape)} to {list(out_shape)}")
            wins[axes[d]] = W.pick(np.zeros(b, dtype=np.int64))
    if not wins:
        return cur
    shape = rec.unbatched(out_shape, cur.batch, cur.inner)
    node = rec.node("index", (cur.node,), shape, params=index_params(len(shape), None, wins))
    mask = None if cur.neginf is None else np.ascontiguousarray(
        np.broadcast_to(cur.neginf, shape))
    return Sig(node, cur.batch, cur.inner, mask)


def out_batch(rec: Recorder, out: torch.Tensor, operands: Sequence[tuple[Sig, Sequence[int]]]
              ) -> tuple[int | None, int]:
    """The batch axis (and inner size) of an element-wise op's output."""
    found = set()
    for s, shape in operands:
        lead = out.dim() - len(shape)
        found.add((None if s.batch is None else s.batch + lead, s.inner))
    with_batch = {f for f in found if f[0] is not None}
    if len(with_batch) > 1:
        raise rec.error("combines tensors whose batch axes do not line up")
    return next(iter(with_batch)) if with_batch else (None, 1)


def tracked(rec: Recorder, *values: Any) -> list[Any]:
    """The recorder's view of each value (Sig, Ids, PView or None)."""
    return [rec.value(v) for v in values]


def param_view(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> Any:
    """A layout op applied to parameters only: the outputs are views of the parameter (their
    flat positions found by applying the same op to the positions themselves)."""
    views = [(i, rec.value(a)) for i, a in enumerate(args) if isinstance(rec.value(a), PView)]
    if len(views) != 1:
        return out
    i, pv = views[0]
    p = rec.params.get(pv.name)
    if p is None:
        return out
    base = torch.arange(p.numel(), dtype=torch.int64).reshape(p.shape)
    if pv.idx is not None:
        base = torch.from_numpy(pv.idx)
    pos_args = list(args)
    pos_args[i] = base
    pos = func(*pos_args, **kwargs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    poss = pos if isinstance(pos, (tuple, list)) else (pos,)
    for o, q in zip(outs, poss, strict=True):
        if isinstance(o, torch.Tensor) and isinstance(q, torch.Tensor):
            rec.bind(o, PView(pv.name, np.ascontiguousarray(q.numpy(), dtype=np.int64)))
    return out


def ids_view(rec: Recorder, args: tuple, out: Any) -> Any:
    """A layout op on token ids keeps them ids (the batch axis is assumed to stay first)."""
    ids = [rec.value(a) for a in args if isinstance(rec.value(a), Ids)]
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if isinstance(o, torch.Tensor) and not o.is_floating_point():
            rec.bind(o, Ids(ids[0].source, ids[0].batch))
    return out


from . import _ops_elementwise, _ops_layers, _ops_layout  # noqa: E402,F401  (register rules)

