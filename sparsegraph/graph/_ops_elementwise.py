"""Tracer rules of element-wise ops, softmax, normalisation and attribute reads (private).

DESIGN §3: maps whose value at 0 is 0 are identities; maps nonzero everywhere are gates; sums
of two computed tensors are ``add`` nodes, products ``mul`` nodes; a constant added is zero
(but -inf and values low enough to vanish in a softmax become its mask), a constant multiplied
drops the elements where it is zero.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from ._ops import (
    arg,
    broadcast,
    no_neginf,
    op,
    out_batch,
    param_view,
    same,
    unbatched_const,
)
from .trace import NEG_INF, Ids, PView, Recorder, Sig

IDENTITY = (
    "relu", "relu_", "relu6", "gelu", "silu", "silu_", "elu", "elu_", "selu", "selu_", "celu",
    "celu_", "leaky_relu", "leaky_relu_", "prelu", "rrelu", "rrelu_", "hardtanh", "hardtanh_",
    "mish", "hardswish", "hardswish_", "tanh", "tanh_", "softsign", "tanhshrink", "softshrink",
    "hardshrink", "threshold", "threshold_", "erf", "erf_", "sin", "sin_", "asinh", "atan",
    "sqrt", "sqrt_", "clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_min_", "clamp_max",
    "clamp_max_", "abs", "abs_", "absolute", "__abs__", "neg", "neg_", "negative", "__neg__",
    "positive", "__pos__", "nan_to_num", "nan_to_num_", "square", "square_",
    "dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
    "feature_alpha_dropout", "clone", "contiguous", "detach", "detach_", "requires_grad_",
    "float", "double", "half", "bfloat16", "to", "type", "type_as", "cpu", "cuda",
    "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm", "local_response_norm",
    "normalize", "attr:data", "attr:real", "stochastic_depth",
)
GATES = (
    "sigmoid", "sigmoid_", "hardsigmoid", "hardsigmoid_", "exp", "exp_", "exp2", "softplus",
    "logsigmoid", "log_sigmoid", "reciprocal", "reciprocal_", "rsqrt", "rsqrt_", "cos", "cos_",
    "cosh", "erfc",
)
PASSTHROUGH = (
    "size", "dim", "numel", "nelement", "stride", "is_contiguous", "element_size", "__len__",
    "storage_offset", "data_ptr", "is_floating_point", "is_complex", "get_device", "__format__",
    "attr:shape", "attr:dtype", "attr:device", "attr:ndim", "attr:is_cuda", "attr:layout",
    "attr:requires_grad", "attr:is_leaf", "attr:grad", "attr:names", "attr:is_sparse",
    "attr:is_quantized", "attr:is_meta", "attr:itemsize", "attr:nbytes", "attr:grad_fn",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like",
    "randint_like", "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor",
    "__reduce_ex__",
)
DATA_DEPENDENT = (
    "__bool__", "item", "tolist", "__int__", "__float__", "__index__", "nonzero", "argwhere",
    "numpy", "__array__", "unique", "masked_select", "argmax", "argmin", "argsort", "sort",
    "topk", "eq", "ne", "gt", "lt", "ge", "le", "__eq__", "__ne__", "__gt__", "__lt__", "__ge__",
    "__le__", "isnan", "isinf", "isfinite", "any", "all", "equal", "allclose", "isclose",
    "sign", "round", "floor", "ceil", "trunc", "bucketize", "searchsorted", "multinomial",
)


@op(*IDENTITY)
def _identity(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    x = args[0] if args else next(iter(kwargs.values()))
    s = rec.sig(x)
    if s is None:
        return _not_signal(rec, func, args, kwargs, out)
    if isinstance(out, tuple):  # native_dropout and friends: (output, mask)
        out = out[0]
    if not isinstance(out, torch.Tensor):
        return out
    if not out.is_floating_point():
        raise rec.error("turns an activation into integers (data-dependent values)")
    if rec.op not in ("clone", "contiguous", "detach", "to", "float", "double", "half",
                      "bfloat16", "type", "type_as", "cpu", "cuda", "dropout", "attr:data"):
        no_neginf(rec, s)
    return same(rec, out, s)


def _not_signal(rec: Recorder, func: Any, args: tuple, kwargs: dict, out: Any) -> Any:
    """An op whose first operand is a parameter or token ids (no signal)."""
    v = rec.value(args[0]) if args else None
    if isinstance(v, PView) and rec.op in ("to", "float", "double", "half", "contiguous",
                                           "clone", "detach", "type", "type_as", "attr:data"):
        return param_view(rec, func, args, kwargs, out)
    if isinstance(v, Ids) and isinstance(out, torch.Tensor) and not out.is_floating_point():
        rec.bind(out, Ids(v.source, v.batch))
    elif isinstance(v, PView):
        rec.const_uses.setdefault(v.name, rec.op)
    return out


@op(*GATES)
def _gate(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    s = rec.sig(args[0])
    if s is None:
        return _not_signal(rec, func, args, kwargs, out)
    no_neginf(rec, s)
    n = rec.node("gate", (s.node,), rec.shape(s))
    rec.bind(out, Sig(n, s.batch, s.inner))
    return out


@op(*PASSTHROUGH)
def _passthrough(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    return func(*args, **kwargs)


@op(*DATA_DEPENDENT)
def _data_dependent(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    if any(isinstance(rec.value(a), Sig) for a in (*args, *kwargs.values())):
        raise rec.error(
            "reads the values of an activation (data-dependent control flow or indexing); the "
            "graph would only hold for this input",
            "make the computation independent of activation values")
    out = func(*args, **kwargs)
    return _not_signal(rec, func, args, kwargs, out) if args else out


# ------------------------------------------------------------------------------ arithmetic


def _operands(rec: Recorder, a: Any, b: Any) -> tuple[Sig | None, Sig | None]:
    return rec.sig(a), rec.sig(b)


def _shape_of(x: Any) -> tuple[int, ...]:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else ()


def _mask_of_const(rec: Recorder, c: Any, out: torch.Tensor, batch: int | None, inner: int,
                   negate: bool = False) -> np.ndarray | None:
    """Where an added constant sends entries to -inf for a softmax (None: nowhere)."""
    if isinstance(c, numbers.Number):
        v = -float(c) if negate else float(c)
        return np.ones(rec.unbatched(out.shape, batch, inner), dtype=bool) if v <= NEG_INF else None
    if not isinstance(c, torch.Tensor) or not c.is_floating_point() or c.numel() == 0:
        return None
    lo = (c.detach().max() if negate else c.detach().min())
    if (-float(lo) if negate else float(lo)) > NEG_INF:
        return None
    arr = unbatched_const(rec, -c if negate else c, out.shape, batch, inner)
    return arr <= NEG_INF


def _or_masks(*masks: np.ndarray | None) -> np.ndarray | None:
    live = [m for m in masks if m is not None]
    if not live:
        return None
    out = live[0]
    for m in live[1:]:
        out = out | m
    return out


@op("add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__",
    "__isub__", "rsub", "subtract", "maximum", "minimum", "fmax", "fmin", "logaddexp")
def _sum(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "other")
    sa, sb = _operands(rec, a, b)
    if sa is None and sb is None:
        return _const_result(rec, (a, b), out)
    batch, inner = out_batch(rec, out, [(s, _shape_of(x)) for s, x in ((sa, a), (sb, b)) if s])
    if sa is not None and sb is not None:
        xa = broadcast(rec, sa, a.shape, out.shape)
        xb = broadcast(rec, sb, b.shape, out.shape)
        n = rec.node("add", (xa.node, xb.node), rec.unbatched(out.shape, batch, inner))
        rec.bind(out, Sig(n, batch, inner, _or_masks(xa.neginf, xb.neginf)))
        return out
    s, x, c = (sa, a, b) if sa is not None else (sb, b, a)
    negate = rec.op in ("sub", "sub_", "__sub__", "__isub__", "subtract") and sa is not None
    if rec.op in ("__rsub__", "rsub") and sa is not None:
        negate = False  # c - x: the constant is c
    xs = broadcast(rec, s, x.shape, out.shape)
    extra = _mask_of_const(rec, c, out, batch, inner, negate) if rec.op not in (
        "maximum", "minimum", "fmax", "fmin", "logaddexp") else None
    rec.bind(out, Sig(xs.node, batch, inner, _or_masks(xs.neginf, extra)))
    return out


@op("mul", "mul_", "__mul__", "__rmul__", "__imul__", "multiply", "div", "div_", "divide",
    "__truediv__", "__rtruediv__", "__itruediv__", "true_divide", "true_divide_")
def _product(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    if kwargs.get("rounding_mode") is not None:
        raise rec.error("a rounding division of an activation has no linearised form")
    out = func(*args, **kwargs)
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "other")
    sa, sb = _operands(rec, a, b)
    if sa is None and sb is None:
        return _const_result(rec, (a, b), out)
    divide = "div" in rec.op
    reverse = rec.op == "__rtruediv__"  # c / x with x = args[0]
    batch, inner = out_batch(rec, out, [(s, _shape_of(x)) for s, x in ((sa, a), (sb, b)) if s])
    shape = rec.unbatched(out.shape, batch, inner)
    if sa is not None and sb is not None:
        no_neginf(rec, sa, sb)
        xa = broadcast(rec, sa, a.shape, out.shape)
        xb = broadcast(rec, sb, b.shape, out.shape)
        if divide:  # a / b = a * gate(b)
            xb = Sig(rec.node("gate", (xb.node,), shape), batch, inner)
        n = rec.node("mul", (xa.node, xb.node), shape)
        return _bind(rec, out, n, batch, inner)
    s, x, c = (sa, a, b) if sa is not None else (sb, b, a)
    xs = broadcast(rec, s, x.shape, out.shape)
    node = xs.node
    if reverse:  # c / x: a gate of x, times the constant
        no_neginf(rec, xs)
        node = rec.node("gate", (node,), shape)
    if not divide or reverse:
        keep = _nonzero_const(rec, c, out, batch, inner)
        if keep is not None:
            node = rec.node("scale", (node,), shape, params={"keep": keep})
    mask = None if reverse else xs.neginf
    return _bind(rec, out, node, batch, inner, mask)


def _nonzero_const(rec: Recorder, c: Any, out: torch.Tensor, batch: int | None, inner: int
                   ) -> np.ndarray | None:
    """Where a constant factor is zero, as the ``keep`` of a ``scale`` node (None: nowhere)."""
    if isinstance(c, numbers.Number):
        if c == 0:
            return np.zeros(rec.unbatched(out.shape, batch, inner), dtype=bool)
        return None
    if isinstance(rec.value(c), PView):  # a trained factor (layer scale): its value at
        rec.const_uses.setdefault(rec.value(c).name, rec.op)  # initialisation (even 0) is
        return None  # no topology, so it drops nothing
    if not isinstance(c, torch.Tensor) or bool((c != 0).all()):
        return None
    return unbatched_const(rec, c != 0, out.shape, batch, inner).astype(bool)


def _bind(rec: Recorder, out: torch.Tensor, node: int, batch: int | None, inner: int,
          mask: np.ndarray | None = None) -> torch.Tensor:
    rec.bind(out, Sig(node, batch, inner, mask))
    return out


def _const_result(rec: Recorder, operands: tuple, out: Any) -> Any:
    for x in operands:
        v = rec.value(x)
        if isinstance(v, PView):
            rec.const_uses.setdefault(v.name, rec.op)
    return out


@op("pow", "pow_", "__pow__", "__rpow__", "__ipow__", "float_power")
def _pow(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "exponent")
    sa, sb = _operands(rec, a, b)
    if rec.op == "__rpow__":  # c ** x with x = args[0]
        sa, sb = None, sa
    if sa is None and sb is None:
        return _const_result(rec, (a, b), out)
    if sa is not None and sb is not None:
        raise rec.error("an activation raised to the power of an activation")
    if sb is not None:  # c ** x: nonzero everywhere
        n = rec.node("gate", (sb.node,), rec.shape(sb))
        return _bind(rec, out, n, sb.batch, sb.inner)
    e = float(b) if isinstance(b, numbers.Number) else None
    if e is None:
        raise rec.error("an activation raised to a tensor of exponents")
    if e == 0:
        return out  # the constant 1
    no_neginf(rec, sa)
    if e > 0:
        return same(rec, out, sa)
    n = rec.node("gate", (sa.node,), rec.shape(sa))
    return _bind(rec, out, n, sa.batch, sa.inner)


@op("where")
def _where(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    cond, a, b = (arg(args, kwargs, i, n) for i, n in enumerate(("condition", "input", "other")))
    if b is None:  # where(cond) = nonzero(cond)
        if rec.sig(cond) is not None:
            raise rec.error("reads the values of an activation (torch.where(cond))")
        return out
    return _select(rec, out, cond, a, b)


@op("masked_fill", "masked_fill_")
def _masked_fill(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x, mask, value = (arg(args, kwargs, i, n) for i, n in enumerate(("input", "mask", "value")))
    out = func(*args, **kwargs)
    return _select(rec, out, mask, value, x)


def _select(rec: Recorder, out: Any, cond: Any, a: Any, b: Any) -> Any:
    """``where(cond, a, b)`` with a constant condition."""
    if rec.sig(cond) is not None:
        raise rec.error("selects by the values of an activation (data-dependent)")
    sa, sb = rec.sig(a), rec.sig(b)
    if sa is None and sb is None:
        return _const_result(rec, (a, b), out)
    batch, inner = out_batch(rec, out, [(s, _shape_of(x)) for s, x in ((sa, a), (sb, b)) if s])
    shape = rec.unbatched(out.shape, batch, inner)
    c = unbatched_const(rec, torch.as_tensor(cond).bool(), out.shape, batch, inner).astype(bool)
    parts, masks = [], []
    for s, x, keep, other in ((sa, a, c, b), (sb, b, ~c, a)):
        if s is None:
            continue
        xs = broadcast(rec, s, x.shape, out.shape)
        node = xs.node
        if not keep.all():
            node = rec.node("scale", (node,), shape, params={"keep": keep})
        parts.append(node)
        if xs.neginf is not None:
            masks.append(xs.neginf & keep)
        if rec.sig(other) is None:  # the constant branch: -inf entries mask
            m = _fill_mask(rec, other, out, batch, inner)
            if m is not None:
                masks.append(m & ~keep)
    node = parts[0] if len(parts) == 1 else rec.node("add", tuple(parts), shape)
    return _bind(rec, out, node, batch, inner, _or_masks(*masks))


def _fill_mask(rec: Recorder, value: Any, out: torch.Tensor, batch: int | None, inner: int
               ) -> np.ndarray | None:
    if isinstance(value, numbers.Number) or (isinstance(value, torch.Tensor)
                                             and value.is_floating_point()):
        return _mask_of_const(rec, value, out, batch, inner)
    return None


# --------------------------------------------------------------------------------- softmax


@op("softmax", "_softmax", "log_softmax", "_log_softmax", "special_softmax")
def _softmax(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    out = func(*args, **kwargs)
    s = rec.sig(args[0])
    if s is None:
        return _not_signal(rec, func, args, kwargs, out)
    dim = arg(args, kwargs, 1, "dim")
    if dim is None:
        raise rec.error("softmax without dim", "pass dim explicitly")
    axis = rec.axis(s, int(dim), out.dim())
    n = rec.node("softmax", (s.node,), rec.shape(s), params={"axis": axis, "masked": s.neginf})
    return _bind(rec, out, n, s.batch, s.inner)


@op("glu")
def _glu(rec: Recorder, func: Any, args: tuple, kwargs: dict) -> Any:
    x = args[0]
    if rec.sig(x) is None:
        return func(*args, **kwargs)
    dim = arg(args, kwargs, 1, "dim", -1)
    with rec:
        a, b = x.chunk(2, dim)
        return a * torch.sigmoid(b)

