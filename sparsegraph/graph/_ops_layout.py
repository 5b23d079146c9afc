"""Tracer rules of layout ops: reshapes, permutes, indexing, splitting, concatenation, padding,
roll/flip, expand/repeat, interpolation, pooling and reductions (private).

Each becomes a ``reshape`` or an ``index`` node (DESIGN §2: an index map reads a fixed set of
input elements per output element); the same ops on parameters give parameter views (the q/k/v
slices of a packed projection) and on token ids keep them ids.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from . import windows as W
from ._ops import (
    arg,
    attach,
    broadcast,
    ids_view,
    index_map,
    no_neginf,
    op,
    param_view,
    reshape,
    unbatched_const,
)
from .trace import Ids, PView, Recorder, Sig


def _tracked_non_signal(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any | None:
    """Run an op whose tensor operand is a parameter or token ids (no signal): parameter
    views and ids follow it. Returns None when the operand is a signal."""
    x = args[0] if args else next(iter(kwargs.values()), None)
    v = rec.value(x)
    if isinstance(v, Sig):
        return None
    out = func(*args, **kwargs)
    if isinstance(v, PView):
        return param_view(rec, func, args, kwargs, out)
    if isinstance(v, Ids):
        return ids_view(rec, args, out)
    return out


# -------------------------------------------------------------------------------- reshapes


@op("view", "reshape", "flatten", "unflatten", "squeeze", "squeeze_", "unsqueeze", "unsqueeze_",
    "view_as", "reshape_as", "ravel", "atleast_1d", "atleast_2d", "atleast_3d")
def _reshape(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    if rec.op == "view" and len(args) == 2 and isinstance(args[1], torch.dtype):
        raise rec.error("reinterprets an activation's bytes as another dtype")
    in_shape = tuple(x.shape)
    out = func(*args, **kwargs)
    return attach(rec, out, reshape(rec, rec.sig(x), in_shape, out.shape))


# --------------------------------------------------------------------------------- permutes


def _perm_of(func: Any, args: tuple, kwargs: dict, rank: int) -> tuple[int, ...]:
    """The permutation a pure axis-permuting op applies, found by applying it to a tensor
    whose sizes name the axes."""
    probe = torch.empty(tuple(range(2, rank + 2)), device="meta")
    out = func(probe, *args[1:], **kwargs)
    return tuple(int(n) - 2 for n in out.shape)


@op("permute", "transpose", "transpose_", "swapaxes", "swapdims", "movedim", "moveaxis", "t",
    "t_", "attr:T", "attr:mT", "attr:H", "attr:mH", "adjoint")
def _permute(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    in_shape = tuple(x.shape)
    perm = _perm_of(func, args, kwargs, x.dim())
    out = func(*args, **kwargs)
    return attach(rec, out, index_map(rec, rec.sig(x), in_shape, out.shape, perm=perm))


# --------------------------------------------------------------------------------- indexing


def _positions(rec: Recorder, key: Any, n: int) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Input positions picked on one axis by an index entry, and the output axes it leaves
    (None: the axis is removed)."""
    if isinstance(key, slice):
        return W.slice_positions(n, key.start, key.stop, key.step), (0,)
    if isinstance(key, (numbers.Integral, np.integer)) or (
            isinstance(key, torch.Tensor) and key.dim() == 0 and not key.is_floating_point()
            and key.dtype != torch.bool):
        i = int(key)
        if not -n <= i < n:
            raise rec.error(f"index {i} out of range for an axis of size {n}")
        return np.array([i % n], dtype=np.int64), None
    if rec.sig(key) is not None:
        raise rec.error("indexes with an activation (data-dependent)")
    t = torch.as_tensor(key)
    if t.dtype == torch.bool:
        if t.dim() != 1 or t.shape[0] != n:
            raise rec.error("boolean indexing with a mask of several axes")
        return np.flatnonzero(t.numpy()).astype(np.int64), (0,)
    arr = t.detach().cpu().numpy().astype(np.int64)
    return np.where(arr < 0, arr + n, arr).reshape(-1), tuple(arr.shape)


@op("__getitem__")
def _getitem(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x, key = args[0], args[1]
    s = rec.sig(x)
    if s is None:
        return _tracked_non_signal(rec, func, args, kwargs)
    out = func(*args, **kwargs)
    keys = list(key) if isinstance(key, tuple) else [key]
    n_real = sum(1 for k in keys if k is not None and k is not Ellipsis)
    if Ellipsis in keys:
        i = keys.index(Ellipsis)
        keys[i:i + 1] = [slice(None)] * (x.dim() - n_real)
    keys += [slice(None)] * (x.dim() - sum(1 for k in keys if k is not None))
    advanced = [k for k in keys if k is not None and not isinstance(k, (slice, numbers.Integral,
                                                                         np.integer))]
    if len(advanced) > 1:
        raise rec.error("advanced indexing with several index tensors")
    wins, kept_shape = {}, []
    d = 0
    for k in keys:
        if k is None:
            continue
        n = x.shape[d]
        pos, _ = _positions(rec, k, n)
        if not (isinstance(k, slice) and pos.size == n and np.array_equal(pos, np.arange(n))):
            wins[d] = W.pick(pos)
        kept_shape.append(pos.size)
        d += 1
    # the picks keep every axis; a reshape drops integer-indexed axes, inserts None axes and
    # lays out a multi-axis index tensor, in the same C order
    picked = index_map(rec, s, tuple(x.shape), tuple(kept_shape), windows=wins)
    return attach(rec, out, reshape(rec, picked, kept_shape, out.shape))


@op("select")
def _select(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x, dim, index = args[0], int(arg(args, kwargs, 1, "dim")), int(arg(args, kwargs, 2, "index"))
    out = func(*args, **kwargs)
    key = [slice(None)] * x.dim()
    key[dim] = index
    return _index_keys(rec, x, key, out)


@op("narrow")
def _narrow(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    dim, start, length = (int(arg(args, kwargs, i, n)) for i, n in
                          ((1, "dim"), (2, "start"), (3, "length")))
    out = func(*args, **kwargs)
    key = [slice(None)] * x.dim()
    key[dim] = slice(start, start + length)
    return _index_keys(rec, x, key, out)


@op("index_select")
def _index_select(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x, dim, index = args[0], int(arg(args, kwargs, 1, "dim")), arg(args, kwargs, 2, "index")
    out = func(*args, **kwargs)
    key: list[Any] = [slice(None)] * x.dim()
    key[dim] = index
    return _index_keys(rec, x, key, out)


def _index_keys(rec: Recorder, x: torch.Tensor, key: list[Any], out: torch.Tensor) -> Any:
    s = rec.sig(x)
    wins, kept = {}, []
    for d, k in enumerate(key):
        pos, _ = _positions(rec, k, x.shape[d])
        if not isinstance(k, slice) or pos.size != x.shape[d]:
            wins[d] = W.pick(pos)
        kept.append(pos.size)
    picked = index_map(rec, s, tuple(x.shape), tuple(kept), windows=wins)
    return attach(rec, out, reshape(rec, picked, kept, out.shape))


@op("chunk", "split", "split_with_sizes", "tensor_split", "unbind", "hsplit", "vsplit")
def _split(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    outs = func(*args, **kwargs)
    if rec.op == "unbind":
        dim = int(arg(args, kwargs, 1, "dim", 0))
    else:
        dim = _split_dim(rec, func, args, kwargs, x)
    start = 0
    for o in outs:
        key: list[Any] = [slice(None)] * x.dim()
        if rec.op == "unbind":
            key[dim] = start
            start += 1
        else:
            n = o.shape[dim]
            key[dim] = slice(start, start + n)
            start += n
        _index_keys(rec, x, key, o)
    return outs


def _split_dim(rec: Recorder, func: Any, args: tuple, kwargs: dict, x: torch.Tensor) -> int:
    """The dim a split op cuts, found by running it on a tensor whose sizes name the axes."""
    if "dim" in kwargs:
        return int(kwargs["dim"]) % x.dim()
    if rec.op in ("hsplit",):
        return 1 if x.dim() > 1 else 0
    if rec.op in ("vsplit",):
        return 0
    return int(args[2]) % x.dim() if len(args) > 2 else 0


# ---------------------------------------------------------------------------- concatenation


def _part(rec: Recorder, t: Any, out_rank: int, batch: int | None, inner: int) -> Sig:
    """A cat operand as a Sig; a constant becomes a ``const`` node (zero, never reached)."""
    s = rec.sig(t)
    if s is not None:
        no_neginf(rec, s)
        return s
    v = rec.value(t)
    if isinstance(v, PView):
        rec.const_uses.setdefault(v.name, rec.op)
    shape = rec.unbatched(t.shape, batch, inner) if batch is not None else tuple(t.shape)
    return Sig(rec.node("const", (), shape), batch, inner)


@op("cat", "concat", "concatenate")
def _cat(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    tensors = list(arg(args, kwargs, 0, "tensors"))
    out = func(*args, **kwargs)
    sigs = [rec.sig(t) for t in tensors]
    if all(s is None for s in sigs):
        for t in tensors:
            v = rec.value(t)
            if isinstance(v, PView):
                rec.const_uses.setdefault(v.name, rec.op)
        return out
    dim = int(arg(args, kwargs, 1, "dim", 0)) % out.dim()
    live = [s for s in sigs if s is not None]
    batches = {(s.batch, s.inner) for s in live}
    if len(batches) != 1:
        raise rec.error("concatenates tensors whose batch axes differ")
    batch, inner = batches.pop()
    parts = [_part(rec, t, out.dim(), batch, inner) for t in tensors if t.numel() or rec.sig(t)]
    axis = rec.axis(live[0], dim, out.dim())
    shape = rec.unbatched(out.shape, batch, inner)
    n = rec.node("cat", tuple(p.node for p in parts), shape, params={"axis": axis})
    return attach(rec, out, Sig(n, batch, inner))


@op("stack", "hstack", "vstack", "dstack")
def _stack(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    tensors = list(arg(args, kwargs, 0, "tensors"))
    if all(rec.sig(t) is None for t in tensors):
        return func(*args, **kwargs)
    if rec.op != "stack":
        raise rec.error(f"{rec.op} of activations", "use torch.cat or torch.stack")
    dim = int(arg(args, kwargs, 1, "dim", 0))
    with rec:
        return torch.cat([t.unsqueeze(dim) for t in tensors], dim)


# ------------------------------------------------------------------------ pad, roll, flip


@op("pad", "constant_pad_nd")
def _pad(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    pads = list(arg(args, kwargs, 1, "pad"))
    mode = arg(args, kwargs, 2, "mode", "constant") if rec.op == "pad" else "constant"
    out = func(*args, **kwargs)
    wins = {}
    for i in range(len(pads) // 2):
        d = x.dim() - 1 - i
        wins[d] = W.pad(x.shape[d], int(pads[2 * i]), int(pads[2 * i + 1]), mode)
    return attach(rec, out, index_map(rec, rec.sig(x), tuple(x.shape), out.shape, windows=wins))


@op("roll")
def _roll(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    shifts, dims = arg(args, kwargs, 1, "shifts"), arg(args, kwargs, 2, "dims")
    out = func(*args, **kwargs)
    if dims is None or (isinstance(dims, (tuple, list)) and not dims):
        raise rec.error("torch.roll without dims (a roll of the flattened tensor)")
    shifts = [shifts] if isinstance(shifts, numbers.Integral) else list(shifts)
    dims = [dims] if isinstance(dims, numbers.Integral) else list(dims)
    wins: dict[int, Any] = {}
    pos = {d % x.dim(): np.arange(x.shape[d]) for d in dims}
    for sh, d in zip(shifts, dims, strict=True):
        d %= x.dim()
        pos[d] = np.roll(pos[d], int(sh))
    for d, p in pos.items():
        wins[d] = W.pick(p)
    return attach(rec, out, index_map(rec, rec.sig(x), tuple(x.shape), out.shape, windows=wins))


@op("flip", "fliplr", "flipud")
def _flip(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    if rec.op == "flip":
        dims = arg(args, kwargs, 1, "dims")
        dims = [dims] if isinstance(dims, numbers.Integral) else list(dims)
    else:
        dims = [1] if rec.op == "fliplr" else [0]
    out = func(*args, **kwargs)
    wins = {d % x.dim(): W.pick(np.arange(x.shape[d])[::-1]) for d in dims}
    return attach(rec, out, index_map(rec, rec.sig(x), tuple(x.shape), out.shape, windows=wins))


# -------------------------------------------------------------------- expand and repeat


@op("expand", "expand_as", "broadcast_to")
def _expand(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    out = func(*args, **kwargs)
    return attach(rec, out, broadcast(rec, rec.sig(x), x.shape, out.shape))


@op("repeat", "tile", "repeat_interleave")
def _repeat(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    out = func(*args, **kwargs)
    s = rec.sig(x)
    lead = out.dim() - x.dim()
    in_shape = (1,) * lead + tuple(x.shape)
    if lead:
        s = reshape(rec, s, x.shape, in_shape)
    wins = {}
    if rec.op == "repeat_interleave":
        reps, dim = arg(args, kwargs, 1, "repeats"), arg(args, kwargs, 2, "dim")
        if dim is None:
            raise rec.error("repeat_interleave without dim (of the flattened tensor)")
        dim = int(dim) % x.dim()
        counts = (np.full(x.shape[dim], int(reps)) if isinstance(reps, numbers.Integral)
                  else torch.as_tensor(reps).numpy())
        wins[dim] = W.pick(np.repeat(np.arange(x.shape[dim]), counts))
    else:
        for d, (a, b) in enumerate(zip(in_shape, out.shape, strict=True)):
            if a != b:
                wins[d] = W.pick(np.arange(b) % a)
    return attach(rec, out, index_map(rec, s, in_shape, out.shape, windows=wins))


# --------------------------------------------------------------------------- interpolation


@op("interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
def _interpolate(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    out = func(*args, **kwargs)
    mode = {"upsample_nearest": "nearest", "upsample_bilinear": "bilinear"}.get(
        rec.op, arg(args, kwargs, 3, "mode", "nearest"))
    align = arg(args, kwargs, 4, "align_corners", None)
    if rec.op == "upsample_bilinear":
        align = True
    if kwargs.get("antialias"):
        raise rec.error("antialiased interpolation")
    factor = arg(args, kwargs, 2, "scale_factor", None)
    recompute = kwargs.get("recompute_scale_factor")
    n = x.dim() - 2
    factors = [None] * n
    if factor is not None and not recompute:
        f = factor if isinstance(factor, (tuple, list)) else [factor] * n
        factors = [1.0 / float(v) for v in f]
    wins = {}
    for a in range(n):
        d = 2 + a
        n_in, n_out = x.shape[d], out.shape[d]
        if mode in ("nearest", "nearest-exact"):
            wins[d] = W.upsample_nearest(n_in, n_out, factors[a], mode == "nearest-exact")
        elif mode in ("linear", "bilinear", "trilinear"):
            wins[d] = W.upsample_linear(n_in, n_out, bool(align), factors[a])
        else:
            raise rec.error(f"interpolation mode {mode!r}", "use nearest or (bi/tri)linear")
    return attach(rec, out, index_map(rec, rec.sig(x), tuple(x.shape), out.shape, windows=wins))


# -------------------------------------------------------------------------------- pooling


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(u) for u in v) if len(v) == n else tuple(int(v[0]) for _ in range(n))
    return tuple(int(v) for _ in range(n))


_POOLS = {f"{k}_pool{n}d": n for k in ("max", "avg", "lp") for n in (1, 2, 3)}
_POOLS.update({f"max_pool{n}d_with_indices": n for n in (1, 2, 3)})
_ADAPTIVE = {f"adaptive_{k}_pool{n}d": n for k in ("max", "avg") for n in (1, 2, 3)}
_ADAPTIVE.update({f"adaptive_max_pool{n}d_with_indices": n for n in (1, 2, 3)})


@op(*_POOLS)
def _pool(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    res = func(*args, **kwargs)
    out = res[0] if isinstance(res, tuple) else res
    n = _POOLS[rec.op]
    lp = rec.op.startswith("lp")
    off = 1 if lp else 0  # lp_pool(input, norm_type, kernel_size, stride, ceil_mode)
    kernel = _tuple(arg(args, kwargs, 1 + off, "kernel_size"), n)
    stride = arg(args, kwargs, 2 + off, "stride", None)
    stride = kernel if stride in (None, [], ()) else _tuple(stride, n)
    padding = (0,) * n if lp else _tuple(arg(args, kwargs, 3, "padding", 0), n)
    dilation = (_tuple(arg(args, kwargs, 4, "dilation", 1), n)
                if rec.op.startswith("max") else (1,) * n)
    wins = {}
    for a in range(n):
        d = x.dim() - n + a
        wins[d] = W.pool(x.shape[d], out.shape[d], kernel[a], stride[a], padding[a], dilation[a])
    attach(rec, out, index_map(rec, rec.sig(x), tuple(x.shape), out.shape, windows=wins))
    return res


@op(*_ADAPTIVE)
def _adaptive(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    res = func(*args, **kwargs)
    out = res[0] if isinstance(res, tuple) else res
    n = _ADAPTIVE[rec.op]
    wins = {x.dim() - n + a: W.adaptive(x.shape[x.dim() - n + a], out.shape[x.dim() - n + a])
            for a in range(n)}
    attach(rec, out, index_map(rec, rec.sig(x), tuple(x.shape), out.shape, windows=wins))
    return res


# ----------------------------------------------------------------------------- reductions


@op("mean", "sum", "nansum", "nanmean", "amax", "amin", "max", "min", "norm", "std", "var",
    "logsumexp", "cumsum", "cumsum_", "cummax", "cummin", "aminmax", "linalg_vector_norm")
def _reduce(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    done = _tracked_non_signal(rec, func, args, kwargs)
    if done is not None:
        return done
    x = args[0]
    if rec.op in ("max", "min") and len(args) > 1 and isinstance(args[1], torch.Tensor):
        return _pair_max(rec, func, args, kwargs)
    res = func(*args, **kwargs)
    out = res[0] if isinstance(res, tuple) else res
    s = rec.sig(x)
    no_neginf(rec, s)
    if rec.op.startswith("cum"):
        d = int(arg(args, kwargs, 1, "dim")) % x.dim()
        sig = index_map(rec, s, tuple(x.shape), out.shape, windows={d: W.cumulative(x.shape[d])})
        attach(rec, out, sig)
        return res
    dim = arg(args, kwargs, 2 if rec.op in ("norm", "linalg_vector_norm") else 1, "dim", None)
    if dim is None:
        dims = list(range(x.dim()))
        if s.batch is not None and s.inner == 1:
            if rec.batch != 1:
                raise rec.error("reduces over every axis, the batch included")
            dims.remove(s.batch)
    else:
        dims = [int(dim) % x.dim()] if isinstance(dim, numbers.Integral) else [
            int(v) % x.dim() for v in dim]
    kept = tuple(1 if d in dims else x.shape[d] for d in range(x.dim()))
    sig = index_map(rec, s, tuple(x.shape), kept, windows={d: W.reduce(x.shape[d]) for d in dims})
    sig = reshape(rec, sig, kept, out.shape)
    if rec.op == "logsumexp":  # log of a sum of exponentials: nonzero everywhere
        sig = Sig(rec.node("gate", (sig.node,), rec.shape(sig)), sig.batch, sig.inner)
    attach(rec, out, sig)
    return res


def _pair_max(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    from ._ops_elementwise import _sum

    return _sum(rec, func, args, kwargs)


# ------------------------------------------------------------------------ in-place writes


@op("__setitem__")
def _setitem(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x, key, value = args
    sx, sv = rec.sig(x), rec.sig(value)
    if sx is None and sv is None:
        return func(*args, **kwargs)
    keys = list(key) if isinstance(key, tuple) else [key]
    if any(k is None or k is Ellipsis or not isinstance(k, (slice, numbers.Integral, np.integer))
           for k in keys):
        raise rec.error("writes into an activation through advanced indexing or None/...")
    keys += [slice(None)] * (x.dim() - len(keys))
    shape = tuple(x.shape)
    region = tuple(torch.empty(shape, device="meta")[tuple(keys)].shape)
    full = tuple(np.arange(n)[k].size if isinstance(k, slice) else 1
                 for n, k in zip(shape, keys, strict=True))  # the region, every axis kept
    func(*args, **kwargs)
    parts, batch, inner = [], None, 1
    if sv is not None:
        vs = reshape(rec, broadcast(rec, sv, value.shape, region), region, full)
        wins = {}
        for d, k in enumerate(keys):
            pos = np.full(shape[d], -1, dtype=np.int64)
            picked = np.arange(shape[d])[k] if isinstance(k, slice) else np.array([int(k)])
            pos[picked] = np.arange(picked.size)
            if not np.array_equal(pos, np.arange(shape[d])):
                wins[d] = W.pick(pos)
        placed = index_map(rec, vs, full, shape, windows=wins)
        parts.append(placed.node)
        batch, inner = placed.batch, placed.inner
    if sx is not None:
        batch, inner = sx.batch, sx.inner
        sel = np.zeros(shape, dtype=bool)
        sel[tuple(keys)] = True
        keep = ~unbatched_const(rec, torch.from_numpy(sel), shape, batch, inner)
        if keep.all():
            parts.insert(0, sx.node)
        elif keep.any():
            parts.insert(0, rec.node("scale", (sx.node,), rec.shape(sx), params={"keep": keep}))
    ushape = rec.unbatched(shape, batch, inner)
    node = parts[0] if len(parts) == 1 else rec.node("add", tuple(parts), ushape)
    rec.bind(x, Sig(node, batch, inner))
    return None


@op("copy_")
def _copy(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x, src = args[0], args[1]
    out = func(*args, **kwargs)
    s = rec.sig(src)
    if s is None:
        rec.env.pop(id(x), None)
        return out
    return attach(rec, out, broadcast(rec, s, src.shape, x.shape))


@op("zero_", "fill_", "normal_", "uniform_", "random_")
def _overwrite(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    if isinstance(rec.value(args[0]), Sig):
        rec.env.pop(id(args[0]), None)  # the tensor now holds a constant
    return out
