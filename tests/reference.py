"""Slow, obviously correct references for effective sparsity (DESIGN §3).

Three oracles, independent of :mod:`sparsegraph.metrics.effective` and of each other:

``autograd_effective(model, masks, example_input)``
    The SynFlow view on the real ``nn.Module``, independent of the tracer too: every kept weight
    is 1, every pruned weight 0, unmasked Conv2d/Linear weights 1, biases 0; normalisation,
    activations and dropout are identity maps; max pooling is replaced by a *sum* over the same
    window (max pooling would send the gradient to a single arg-max); subtraction is addition
    (no cancellation); the input is all ones. Everything is then nonnegative, so an activation
    is nonzero iff it is reachable from the input, the gradient of the summed output at a tensor
    is nonzero iff the output is reachable from it, and ``weight.grad`` is nonzero iff some
    output pixel behind the weight is backward-reachable while the pixel it reads is
    forward-reachable: exactly the definition of an effective weight. In float64, with every
    conv/linear output divided by its (detached) maximum in the forward pass and every gradient
    arriving at such an output divided by its maximum in the backward pass (positive constants:
    the zero pattern is unchanged), so nothing under- or overflows.

``bruteforce_effective(net, masks)``
    Dense boolean numpy propagation over a :class:`~sparsegraph.graph.network.Network`, one kept
    weight at a time (tiny hand-made graphs only).

``oracle_effective(model, inputs, masks, kwargs=...)``
    DESIGN §3's float64 oracle for models with gates, products, softmax and attention, tokens,
    several inputs and outputs: the real module with random positive weights and inputs, zero
    additive constants, positive multiplicative ones, normalisation as identity, max-pool as a
    window sum, per-layer rescaling, a random positive weighting of the outputs, and each
    layer's weight gradient taken from its input minus the same input at zero network input
    (the full rules are in its docstring). ``default_prunable(model)`` lists DESIGN §2's
    default prunable weights.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import types
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

# ----------------------------------------------------------------------------- autograd oracle

_IDENTITY_NAMES = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "gelu",
    "silu", "elu", "elu_", "selu", "celu", "mish", "sigmoid", "tanh", "hardswish", "hardsigmoid",
    "softplus", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
    "feature_alpha_dropout", "batch_norm", "layer_norm", "group_norm", "instance_norm",
    "clone", "contiguous",
}
_MAX_POOL_NAMES = {"max_pool2d", "max_pool2d_with_indices", "_max_pool2d"}


def _arg(args: tuple, kwargs: dict, i: int, name: str, default: Any) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _window_sum(x: torch.Tensor, kernel: Any, stride: Any, padding: Any, dilation: Any,
                ceil_mode: bool) -> torch.Tensor:
    """Sum of each max-pool window (zero padding; windows that torch would start in the right
    padding under ceil_mode are cut the same way as torch does)."""
    (kh, kw), (ph, pw), (dh, dw) = _pair(kernel), _pair(padding), _pair(dilation)
    sh, sw = _pair(stride if stride not in (None, []) else kernel)
    h, w = x.shape[-2:]

    def out_size(n: int, k: int, s: int, p: int, d: int) -> int:
        span = n + 2 * p - d * (k - 1) - 1
        o = (math.ceil(span / s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o -= 1
        return o

    oh, ow = out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)
    extra_h = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
    extra_w = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
    xp = F.pad(x, (pw, pw + extra_w, ph, ph + extra_h))
    c = x.shape[-3]
    ones = torch.ones(c, 1, kh, kw, dtype=x.dtype)
    out = F.conv2d(xp, ones, None, (sh, sw), 0, (dh, dw), c)
    return out[..., :oh, :ow]


class _Linearise(TorchFunctionMode):
    """Identity activations/normalisation, sum pooling, add for subtract, and per-tensor
    rescaling of conv/linear outputs and of the gradients that reach them."""

    def __init__(self, rescale: bool) -> None:
        super().__init__()
        self.rescale = rescale

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _IDENTITY_NAMES:
            return _arg(args, kwargs, 0, "input", None)
        if name in _MAX_POOL_NAMES:
            if _arg(args, kwargs, 6, "return_indices", False):
                raise NotImplementedError("max_pool2d(return_indices=True) in the oracle")
            return _window_sum(
                args[0], _arg(args, kwargs, 1, "kernel_size", None),
                _arg(args, kwargs, 2, "stride", None), _arg(args, kwargs, 3, "padding", 0),
                _arg(args, kwargs, 4, "dilation", 1), _arg(args, kwargs, 5, "ceil_mode", False),
            )
        if name in ("adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"):
            return F.adaptive_avg_pool2d(args[0], _arg(args, kwargs, 1, "output_size", None))
        if name == "amax":
            return torch.sum(*args, **kwargs)
        if name in ("sub", "__sub__"):
            return torch.add(*args, **kwargs)
        if name == "__rsub__":
            return torch.add(args[1], args[0])
        out = func(*args, **kwargs)
        if self.rescale and name in ("conv2d", "linear") and isinstance(out, torch.Tensor):
            scale = out.detach().max()
            if scale > 0:
                out = out / scale
            if out.requires_grad:
                out.register_hook(_normalise_grad)
        return out


def _normalise_grad(g: torch.Tensor) -> torch.Tensor:
    scale = g.detach().abs().max()
    return g / scale if scale > 0 else g


def prunable(model: nn.Module) -> dict[str, torch.Tensor]:
    """Conv2d/Linear weights by parameter name (the default prunable layers)."""
    out = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            out[f"{mod_name}.weight" if mod_name else "weight"] = mod.weight
    return out


def prepare(model: nn.Module, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A deep copy in ``dtype`` and eval mode with every bias zero (done once)."""
    model = copy.deepcopy(model).to(dtype).eval()
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is not None:
            with torch.no_grad():
                mod.bias.zero_()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def synflow_grads(model: nn.Module, masks: Mapping[str, Any], example_input: torch.Tensor,
                  *, rescale: bool = True) -> dict[str, torch.Tensor]:
    """``weight.grad`` of the summed output of a prepared model with 0/1 weights.

    ``model`` must come from :func:`prepare` (its dtype is used).
    """
    weights = prunable(model)
    dtype = next(iter(weights.values())).dtype
    with torch.no_grad():
        for name, w in weights.items():
            if name in masks:
                w.copy_(torch.as_tensor(np.asarray(masks[name]), dtype=dtype))
            else:
                w.fill_(1.0)
            w.grad = None
            w.requires_grad_(True)
    x = torch.ones(example_input.shape, dtype=dtype)
    with _Linearise(rescale):
        out = model(x)
        outs = out.values() if isinstance(out, dict) else (
            out if isinstance(out, (tuple, list)) else (out,))
        total = sum(o.sum() for o in outs)
    total.backward()
    return {n: w.grad if w.grad is not None else torch.zeros_like(w) for n, w in weights.items()}


def autograd_effective(model: nn.Module, masks: Mapping[str, Any],
                       example_input: torch.Tensor) -> dict[str, np.ndarray]:
    """The effective masks of ``masks`` on ``model`` by float64 autograd (module docstring)."""
    work = prepare(model, torch.float64)
    grads = synflow_grads(work, masks, example_input, rescale=True)
    out = {}
    for name, g in grads.items():
        kept = np.asarray(masks[name], dtype=bool) if name in masks else np.ones(g.shape, bool)
        out[name] = kept & (g.detach().numpy() != 0)
    return out


# ----------------------------------------------------------------------------- brute force


def _use_weight(net: Any, node: Any, mask: np.ndarray) -> np.ndarray:
    """A use's weight in the op's own layout, from the parameter's mask (independent code)."""
    view = node.params.get("view")
    if view is None:
        return mask
    if view[0] == "T":
        return mask.T
    if view[0] == "rows":
        return mask[view[1]:view[2]]
    return mask.reshape(-1)[view[1]].reshape(view[2])


def _put_weight(node: Any, dst: np.ndarray, native_idx: tuple) -> None:
    """Mark one weight of a use (an index of its own layout) on the parameter."""
    view = node.params.get("view")
    if view is None:
        dst[native_idx] = True
    elif view[0] == "T":
        dst[tuple(reversed(native_idx))] = True
    elif view[0] == "rows":
        dst[(native_idx[0] + view[1],) + tuple(native_idx[1:])] = True
    else:
        flat = np.ravel_multi_index(native_idx, view[2])
        dst.reshape(-1)[view[1][flat]] = True


def _edges(net: Any, node: Any, w: np.ndarray):
    """Every (weight index, output element, input element) of a layer use, by definition."""
    p = node.params
    op = p["op"]
    src = net.nodes[node.inputs[0]].shape
    out = node.shape
    if op == "linear":
        lead = list(np.ndindex(*out[:-1])) if len(out) > 1 else [()]
        for o, i in zip(*np.nonzero(w), strict=True):
            for pos in lead:
                yield (o, i), pos + (o,), pos + (i,)
        return
    if op == "embedding":
        for v, d in zip(*np.nonzero(w), strict=True):
            for pos in np.ndindex(*src) if src else [()]:
                yield (v, d), tuple(pos) + (d,), tuple(pos)
        return
    g = p.get("groups", 1)
    n = len(out) - 1
    s_, pad, dil = p["stride"], p["padding"], p["dilation"]
    transposed = op == "conv_transpose"
    for widx in zip(*np.nonzero(w), strict=True):
        if transposed:
            i, ol, k = widx[0], widx[1], widx[2:]
            cin_g, cout_g = src[0] // g, w.shape[1]
            o = (i // cin_g) * cout_g + ol
            for q in np.ndindex(*src[1:]):
                y = tuple(q[a] * s_[a] - pad[a] + k[a] * dil[a] for a in range(n))
                if all(0 <= y[a] < out[1 + a] for a in range(n)):
                    yield widx, (o,) + y, (i,) + tuple(q)
        else:
            o, il, k = widx[0], widx[1], widx[2:]
            cin_g, cout_g = w.shape[1], out[0] // g
            i = (o // cout_g) * cin_g + il
            for y in np.ndindex(*out[1:]):
                q = tuple(y[a] * s_[a] - pad[a] + k[a] * dil[a] for a in range(n))
                if all(0 <= q[a] < src[1 + a] for a in range(n)):
                    yield widx, (o,) + tuple(y), (i,) + q


def _index_reads(node: Any, src_shape: tuple):
    """For an index node: every (output element, input element) pair."""
    perm, wins = node.params["perm"], node.params["windows"]
    for pos in np.ndindex(*node.shape) if node.shape else [()]:
        per_axis = []
        for k, i in enumerate(pos):
            win = wins[k]
            per_axis.append([i] if win is None else list(win[1][win[0][i]:win[0][i + 1]]))
        for combo in itertools.product(*per_axis):
            q = [0] * len(src_shape)
            for k, j in enumerate(combo):
                q[perm[k]] = j
            yield pos, tuple(q)


def _forward_facts(net: Any, masks: Mapping[str, Any]) -> tuple[list[np.ndarray],
                                                                list[np.ndarray]]:
    """Reached and nonzero elements of every node, element by element (DESIGN §3)."""
    masks = {
        layer.name: np.asarray(masks[layer.name], dtype=bool) if layer.name in masks
        else np.ones(layer.shape, bool) for layer in net.layers
    }
    nodes = net.nodes
    R, Z = [], []
    for node in nodes:
        shape, k = node.shape, node.kind
        ins_r = [R[i] for i in node.inputs]
        ins_z = [Z[i] for i in node.inputs]
        if k == "input":
            r = np.ones(shape, bool)
            z = r.copy()
        elif k == "const":
            r = np.zeros(shape, bool)
            z = r.copy()
        elif k == "layer":
            w = _use_weight(net, node, masks[net.layers[node.layer].name])
            r, z = np.zeros(shape, bool), np.zeros(shape, bool)
            for _, po, pi in _edges(net, node, w):
                r[po] |= ins_r[0][pi]
                z[po] |= ins_z[0][pi]
        elif k == "index":
            r, z = np.zeros(shape, bool), np.zeros(shape, bool)
            for po, pi in _index_reads(node, nodes[node.inputs[0]].shape):
                r[po] |= ins_r[0][pi]
                z[po] |= ins_z[0][pi]
        elif k == "reshape":
            r, z = ins_r[0].reshape(shape).copy(), ins_z[0].reshape(shape).copy()
        elif k == "cat":
            ax = node.params["axis"]
            r, z = np.concatenate(ins_r, ax), np.concatenate(ins_z, ax)
        elif k == "add":
            r, z = np.logical_or.reduce(ins_r), np.logical_or.reduce(ins_z)
        elif k == "scale":
            keep = np.broadcast_to(node.params["keep"], shape)
            r, z = ins_r[0] & keep, ins_z[0] & keep
        elif k == "mul":
            (ra, rb), (za, zb) = ins_r, ins_z
            r, z = (ra & zb) | (rb & za), za & zb
        elif k == "gate":
            r, z = ins_r[0].copy(), np.ones(shape, bool)
        elif k == "matmul":
            (ra, rb), (za, zb) = ins_r, ins_z
            r, z = np.zeros(shape, bool), np.zeros(shape, bool)
            for pos in np.ndindex(*shape):
                *b, i, j = pos
                b = tuple(b)
                for c in range(ra.shape[-1]):
                    r[pos] |= (ra[b + (i, c)] and zb[b + (c, j)]) or (za[b + (i, c)]
                                                                     and rb[b + (c, j)])
                    z[pos] |= za[b + (i, c)] and zb[b + (c, j)]
        elif k == "softmax":
            ax = node.params["axis"]
            m = node.params.get("masked")
            un = np.ones(shape, bool) if m is None else ~np.broadcast_to(m, shape)
            live = un & (un.sum(ax, keepdims=True) >= 2)
            r = live & (ins_r[0] & un).any(ax, keepdims=True)
            z = un.copy()
        else:  # pragma: no cover
            raise AssertionError(k)
        R.append(r)
        Z.append(z)
    return R, Z


def bruteforce_effective(net: Any, masks: Mapping[str, Any]):
    """Dense forward/backward propagation on a Network, element by element, straight from the
    definitions of DESIGN §3 (reached and nonzero facts, products, softmax); returns
    ``(effective, reached, backward)`` (tiny hand-made graphs only)."""
    masks = {
        layer.name: np.asarray(masks[layer.name], dtype=bool) if layer.name in masks
        else np.ones(layer.shape, bool) for layer in net.layers
    }
    nodes = net.nodes
    R, Z = _forward_facts(net, masks)

    B = [np.zeros(node.shape, bool) for node in nodes]
    for o in net.outputs:
        B[o][:] = True
    eff = {name: np.zeros_like(m) for name, m in masks.items()}
    for node in reversed(nodes):
        b = B[node.id]
        k = node.kind
        ins = node.inputs
        if k == "layer":
            layer = net.layers[node.layer]
            w = _use_weight(net, node, masks[layer.name])
            for widx, po, pi in _edges(net, node, w):
                if b[po]:
                    B[ins[0]][pi] = True
                    if R[ins[0]][pi]:
                        _put_weight(node, eff[layer.name], tuple(int(v) for v in widx))
        elif k == "index":
            for po, pi in _index_reads(node, nodes[ins[0]].shape):
                if b[po]:
                    B[ins[0]][pi] = True
        elif k == "reshape":
            B[ins[0]] |= b.reshape(nodes[ins[0]].shape)
        elif k == "cat":
            ax = node.params["axis"]
            parts = np.split(b, np.cumsum([nodes[i].shape[ax] for i in ins])[:-1], axis=ax)
            for i, part in zip(ins, parts, strict=True):
                B[i] |= part
        elif k in ("add", "gate"):
            for i in ins:
                B[i] |= b
        elif k == "scale":
            B[ins[0]] |= b & np.broadcast_to(node.params["keep"], node.shape)
        elif k == "mul":
            B[ins[0]] |= b & Z[ins[1]]
            B[ins[1]] |= b & Z[ins[0]]
        elif k == "matmul":
            za, zb = Z[ins[0]], Z[ins[1]]
            for pos in np.ndindex(*node.shape):
                if not b[pos]:
                    continue
                *bb, i, j = pos
                bb = tuple(bb)
                for c in range(za.shape[-1]):
                    if zb[bb + (c, j)]:
                        B[ins[0]][bb + (i, c)] = True
                    if za[bb + (i, c)]:
                        B[ins[1]][bb + (c, j)] = True
        elif k == "softmax":
            ax = node.params["axis"]
            m = node.params.get("masked")
            un = np.ones(node.shape, bool) if m is None else ~np.broadcast_to(m, node.shape)
            live = un & (un.sum(ax, keepdims=True) >= 2)
            B[ins[0]] |= live & (b & un).any(ax, keepdims=True)
    for name in eff:
        eff[name] &= masks[name]
    return eff, R, B


def element_preds(net: Any, masks: Mapping[str, Any]) -> list[list[list[tuple[int, int]]]]:
    """``preds[node][flat element]``: the (source node, source flat element) pairs a path can
    come from, in the linearised masked network read as a path DAG (DESIGN §3: a product passes
    a factor's paths where the other factor is nonzero; a softmax fibre joins every unmasked
    entry to every unmasked entry when it has at least two). Independent element-level code."""
    masks = {
        layer.name: np.asarray(masks[layer.name], dtype=bool) if layer.name in masks
        else np.ones(layer.shape, bool) for layer in net.layers
    }
    Z = bruteforce_nonzero(net, masks)
    preds = []
    for node in net.nodes:
        shape, k, ins = node.shape, node.kind, node.inputs
        p: list[list[tuple[int, int]]] = [[] for _ in range(node.numel)]

        def flat(shp, pos):
            return int(np.ravel_multi_index(pos, shp)) if shp else 0

        if k == "layer":
            w = _use_weight(net, node, masks[net.layers[node.layer].name])
            src = net.nodes[ins[0]].shape
            for _, po, pi in _edges(net, node, w):
                p[flat(shape, po)].append((ins[0], flat(src, pi)))
        elif k == "index":
            src = net.nodes[ins[0]].shape
            for po, pi in _index_reads(node, src):
                p[flat(shape, po)].append((ins[0], flat(src, pi)))
        elif k in ("reshape", "gate"):
            for e in range(node.numel):
                p[e].append((ins[0], e))
        elif k == "add":
            for i in ins:
                for e in range(node.numel):
                    p[e].append((i, e))
        elif k == "scale":
            keep = np.broadcast_to(node.params["keep"], shape).reshape(-1)
            for e in np.flatnonzero(keep):
                p[e].append((ins[0], int(e)))
        elif k == "cat":
            ax = node.params["axis"]
            pos = np.arange(node.numel).reshape(shape)
            parts = np.split(pos, np.cumsum([net.nodes[i].shape[ax] for i in ins])[:-1], axis=ax)
            for i, part in zip(ins, parts, strict=True):
                for e, o in enumerate(part.reshape(-1)):
                    p[int(o)].append((i, e))
        elif k == "mul":
            za, zb = Z[ins[0]].reshape(-1), Z[ins[1]].reshape(-1)
            for e in range(node.numel):
                if zb[e]:
                    p[e].append((ins[0], e))
                if za[e]:
                    p[e].append((ins[1], e))
        elif k == "matmul":
            za, zb = Z[ins[0]], Z[ins[1]]
            sa, sb = za.shape, zb.shape
            for pos in np.ndindex(*shape):
                *b, i, j = pos
                b = tuple(b)
                for c in range(sa[-1]):
                    if zb[b + (c, j)]:
                        p[flat(shape, pos)].append((ins[0], flat(sa, b + (i, c))))
                    if za[b + (i, c)]:
                        p[flat(shape, pos)].append((ins[1], flat(sb, b + (c, j))))
        elif k == "softmax":
            ax = node.params["axis"]
            m = node.params.get("masked")
            un = np.ones(shape, bool) if m is None else ~np.broadcast_to(m, shape)
            for pos in np.ndindex(*shape):
                if not un[pos] or un.sum(ax, keepdims=True)[
                        tuple(0 if a == ax else v for a, v in enumerate(pos))] < 2:
                    continue
                for c in range(shape[ax]):
                    q = list(pos)
                    q[ax] = c
                    if un[tuple(q)]:
                        p[flat(shape, pos)].append((ins[0], flat(shape, tuple(q))))
        preds.append(p)
    return preds


def bruteforce_nonzero(net: Any, masks: Mapping[str, Any]) -> list[np.ndarray]:
    """The nonzero elements of every node (the second fact of DESIGN §3), by the same dense
    propagation as :func:`bruteforce_effective`."""
    return _forward_facts(net, masks)[1]


def count_paths(net: Any, masks: Mapping[str, Any]) -> int:
    """The number of input->output paths, with Python integers (no overflow)."""
    preds = element_preds(net, masks)
    f: list[list[int]] = []
    for node, pe in zip(net.nodes, preds, strict=True):
        if node.kind == "input":
            f.append([1] * node.numel)
        else:
            f.append([sum(f[s][e] for s, e in q) for q in pe])
    return sum(sum(f[o]) for o in net.outputs)


# ----------------------------------------------------------------------------- float64 oracle
# The oracle of DESIGN §3 for models with gates, products, softmax and attention (any rank, any
# input kind). Independent of sparsegraph: it runs the real module.

# element-wise maps that are the identity in the linearised network (all are 0 at 0)
_ORACLE_IDENTITY = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "gelu",
    "silu", "silu_", "elu", "elu_", "selu", "selu_", "celu", "celu_", "mish", "hardswish",
    "hardswish_", "prelu", "rrelu", "rrelu_", "softplus", "tanh", "tanh_", "softsign",
    "dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
    "feature_alpha_dropout", "batch_norm", "layer_norm", "group_norm", "instance_norm",
    "rms_norm", "local_response_norm",
}
_LAYER_FUNCS = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d"}
_MATMUL_FUNCS = {"matmul", "mm", "bmm"}
# products: a non-prunable parameter that is a factor here is a positive multiplicative constant
_MUL_FUNCS = {"mul", "mul_", "__mul__", "__rmul__", "__imul__", "multiply", "div", "div_",
              "__truediv__", "__itruediv__", "__rdiv__", "__rtruediv__", "true_divide", "addcmul",
              "einsum", "matmul", "mm", "bmm", "__matmul__", "baddbmm", "addmm"}
# layout ops a prunable weight may pass through on its way to a layer op
_WEIGHT_VIEWS = {"__getitem__", "view", "reshape", "t", "transpose", "permute", "chunk", "split",
                 "unbind", "narrow", "unflatten", "flatten", "squeeze", "unsqueeze", "contiguous",
                 "to", "__get__", "expand", "clone", "movedim"}
_DOWNCASTS = {"to", "float", "half", "bfloat16", "type", "type_as"}
_NORM_CLASS = re.compile(r"Norm(Act)?(\dd)?$")


def _tensors(tree: Any) -> list[torch.Tensor]:
    """Every tensor in a nest of tuples/lists/dicts (HF ModelOutputs are dicts)."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, Mapping):
        return [t for v in tree.values() for t in _tensors(v)]
    if isinstance(tree, (tuple, list)):
        return [t for v in tree for t in _tensors(v)]
    return []


def _map(tree: Any, fn: Any) -> Any:
    """``tree`` with every tensor ``t`` replaced by ``fn(t)`` (tuples, lists, dicts)."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: _map(v, fn) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_map(v, fn) for v in tree)
    return tree


def _identity_forward(self: nn.Module, x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def _mha_forward(self: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                 value: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                 need_weights: bool = True, attn_mask: torch.Tensor | None = None,
                 average_attn_weights: bool = True, is_causal: bool = False) -> tuple:
    """``nn.MultiheadAttention`` through explicit q/k/v/out projections (biases are zero in the
    oracle), so each projection is one layer call on its row block of ``in_proj_weight``."""
    if self.bias_k is not None or self.add_zero_attn:
        raise NotImplementedError("oracle: MultiheadAttention with bias_k/add_zero_attn")
    unbatched = query.dim() == 2
    q_in, k_in, v_in = ((t.unsqueeze(0) if unbatched else t if self.batch_first
                         else t.transpose(0, 1)) for t in (query, key, value))
    e, h = self.embed_dim, self.num_heads
    if self._qkv_same_embed_dim:
        w = self.in_proj_weight
        wq, wk, wv = w[:e], w[e:2 * e], w[2 * e:]
    else:
        wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
    b, n, s = q_in.shape[0], q_in.shape[1], k_in.shape[1]
    q = F.linear(q_in, wq).view(b, n, h, e // h).transpose(1, 2)
    k = F.linear(k_in, wk).view(b, s, h, e // h).transpose(1, 2)
    v = F.linear(v_in, wv).view(b, s, h, e // h).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(e // h)
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(n, s, dtype=torch.bool).triu(1)
    if attn_mask is not None and attn_mask.dim() == 3:  # (batch * heads, n, s)
        attn_mask = attn_mask.reshape(b, h, n, s)
    if key_padding_mask is not None:  # (batch, s)
        key_padding_mask = key_padding_mask.reshape(b, 1, 1, s)
    for mask in (attn_mask, key_padding_mask):
        if mask is not None:
            scores = (scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool
                      else scores + mask)
    p = torch.softmax(scores, dim=-1)
    out = F.linear((p @ v).transpose(1, 2).reshape(b, n, e), self.out_proj.weight)
    out = out.squeeze(0) if unbatched else out if self.batch_first else out.transpose(0, 1)
    weights = None
    if need_weights:
        weights = p.mean(1) if average_attn_weights else p
        weights = weights.squeeze(0) if unbatched else weights
    return out, weights


def default_prunable(model: nn.Module) -> list[str]:
    """DESIGN §2's default prunable weights, by ``named_parameters()`` name: Linear,
    Conv1d/2d/3d and transposed-convolution weights, ``nn.MultiheadAttention``'s
    ``in_proj_weight`` (or ``q/k/v_proj_weight``), HF ``Conv1D`` weights. A parameter tied to
    several modules is listed once, under its first name."""
    found: set[int] = set()
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                            nn.ConvTranspose2d, nn.ConvTranspose3d)) or (
                type(mod).__name__ == "Conv1D" and isinstance(getattr(mod, "weight", None),
                                                            nn.Parameter)):
            found.add(id(mod.weight))
        elif isinstance(mod, nn.MultiheadAttention):
            for attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                if getattr(mod, attr, None) is not None:
                    found.add(id(getattr(mod, attr)))
    return [n for n, p in model.named_parameters() if id(p) in found]


class _Oracle(TorchFunctionMode):
    """The linearised float64 model of :func:`oracle_effective` (see its docstring)."""

    def __init__(self, prunable: dict[int, tuple], consts: dict[int, tuple],
                 gen: torch.Generator) -> None:
        super().__init__()
        self.prunable, self.consts, self.gen = prunable, consts, gen
        self.scales: list[torch.Tensor] = []
        self.a0: list[torch.Tensor] = []
        self.sources: dict[int, torch.Tensor] = {}
        self.phase = "scale"

    def start(self, phase: str, inputs: Any) -> None:
        """Begin a pass: ``phase`` is "scale", "zero" or "grad"; ``inputs`` its inputs."""
        self.phase, self.n_layer, self.n_source = phase, 0, 0
        self.weights = dict(self.prunable)  # id -> (tensor, name): prunable weights, views
        self.twins = dict(self.consts)  # id -> (tensor, positive twin): constants
        # integer tensors that derive from an input (token ids), for embedding lookups
        self.from_input = {id(t): t for t in _tensors(inputs) if not t.is_floating_point()}

    def _source(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """The n-th positive random source of this pass (the same values in every real pass,
        zeros in the zero pass)."""
        n = self.n_source
        self.n_source += 1
        if n not in self.sources:
            self.sources[n] = torch.rand(shape, generator=self.gen, dtype=dtype) + 0.5
        return torch.zeros(shape, dtype=dtype) if self.phase == "zero" else self.sources[n]

    def _layer(self, x: torch.Tensor, w: torch.Tensor, op: Any) -> torch.Tensor:
        n = self.n_layer
        self.n_layer += 1
        if self.phase == "scale":
            out = op(x, w.detach())
            scale = out.detach().abs().max()
            self.scales.append(scale if scale > 0 else torch.ones((), dtype=out.dtype))
            return out / self.scales[n]
        if self.phase == "zero":
            self.a0.append(x.detach().clone())
            return op(x, w.detach()) / self.scales[n]
        # same value as op(x, w); the weight's gradient comes from the signal x - a0 only
        d = (x - self.a0[n]).detach()
        signal = op(d, w)
        out = (op(x, w.detach()) + (signal - signal.detach())) / self.scales[n]
        if out.requires_grad:
            out.register_hook(_normalise_grad)
        return out

    def _twin(self, t: Any) -> Any:
        return self.twins[id(t)][1] if isinstance(t, torch.Tensor) and id(t) in self.twins else t

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, C901
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        x = _arg(args, kwargs, 0, "input", None)
        if name in _ORACLE_IDENTITY:
            return x
        if name in ("hardsigmoid", "hardsigmoid_"):  # a gate like sigmoid, never saturated
            return torch.sigmoid(x)
        if name in ("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
                    "max_pool2d_with_indices", "max_pool3d_with_indices", "_max_pool1d",
                    "_max_pool2d", "_max_pool3d"):
            return self._avg_pool(name, args, kwargs)
        if name.startswith("adaptive_max_pool"):
            if _arg(args, kwargs, 2, "return_indices", False):
                raise NotImplementedError("oracle: adaptive max pooling with return_indices")
            dim = name[len("adaptive_max_pool")]
            return getattr(F, f"adaptive_avg_pool{dim}d")(x, _arg(args, kwargs, 1,
                                                                  "output_size", None))
        if name == "embedding":
            return self._embedding(func, args, kwargs)
        if name in _LAYER_FUNCS:
            w = _arg(args, kwargs, 1, "weight", None)
            if id(w) in self.weights:
                rest = args[3:]
                kw = {k: v for k, v in kwargs.items() if k not in ("input", "weight", "bias")}
                return self._layer(x, w, lambda a, wt: func(a, wt, None, *rest, **kw))
            if id(w) in self.twins:  # a dense, non-prunable weight: positive; its bias stays 0
                args = (args[0], self._twin(args[1]), *args[2:]) if len(args) > 1 else args
                kwargs = {k: self._twin(v) if k == "weight" else v for k, v in kwargs.items()}
                return func(*args, **kwargs)
        if name == "addmm" and len(args) >= 3 and id(args[2]) in self.weights:  # HF Conv1D
            return self._layer(args[1], args[2], lambda a, wt: torch.mm(a, wt))
        if name in _MATMUL_FUNCS | {"__matmul__"} and len(args) == 2:
            if id(args[1]) in self.weights:
                return self._layer(args[0], args[1], lambda a, wt: func(a, wt))
            if id(args[0]) in self.weights:
                return self._layer(args[1], args[0], lambda a, wt: func(wt, a))
        if name in ("softmax", "log_softmax", "_softmax"):  # never down-cast a softmax
            out = func(*args, **kwargs)
            if out.dtype != x.dtype:
                out = getattr(torch, name.lstrip("_"))(x, _arg(args, kwargs, 1, "dim", -1))
            return out
        if (name in _DOWNCASTS and isinstance(x, torch.Tensor) and x.dtype == torch.float64
                and id(x) not in self.weights and id(x) not in self.twins):
            out = func(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.is_floating_point() and (
                    out.dtype != torch.float64):
                return x
            return out
        return self._generic(func, name, args, kwargs)

    def _generic(self, func: Any, name: str, args: tuple, kwargs: dict) -> Any:
        tensors = _tensors((args, kwargs))
        weights = [t for t in tensors if id(t) in self.weights]
        if weights:
            others = [t for t in tensors if id(t) not in self.weights and t.is_floating_point()]
            out = func(*args, **kwargs)
            if not _tensors(out):
                return out
            if name not in _WEIGHT_VIEWS or others:
                raise NotImplementedError(
                    f"oracle: prunable weight {self.weights[id(weights[0])][1]!r} is used by "
                    f"{name!r}; it may reach a layer op (linear, conv, embedding, addmm, matmul) "
                    "only through layout ops")
            for t in _tensors(out):
                self.weights[id(t)] = (t, self.weights[id(weights[0])][1])
            return out
        consts = [t for t in tensors if id(t) in self.twins]
        if consts:
            signal = [t for t in tensors if id(t) not in self.twins and t.is_floating_point()]
            if not signal:  # a computation on constants alone: carry the positive twin along
                out = func(*args, **kwargs)
                twin = func(*_map(args, self._twin), **_map(kwargs, self._twin))
                for t, tw in zip(_tensors(out), _tensors(twin), strict=True):
                    self.twins[id(t)] = (t, tw)
                return out
            if name in _MUL_FUNCS:  # a multiplicative constant: positive
                return func(*_map(args, self._twin), **_map(kwargs, self._twin))
        out = func(*args, **kwargs)
        if any(id(t) in self.from_input for t in tensors):
            for t in _tensors(out):
                if not t.is_floating_point():
                    self.from_input[id(t)] = t
        return out

    def _embedding(self, func: Any, args: tuple, kwargs: dict) -> torch.Tensor:
        ids = _arg(args, kwargs, 0, "input", None)
        w = _arg(args, kwargs, 1, "weight", None)
        if id(w) in self.weights:  # a linear map from a soft one-hot (tokens, vocab) input
            vocab = w.shape[0]
            soft = self._source((*ids.shape, vocab), w.dtype)
            if id(ids) not in self.from_input:  # constant indices (positions): no signal
                soft = torch.zeros_like(soft)
            return self._layer(soft, w, lambda a, wt: a @ wt)
        if id(ids) in self.from_input:  # the lookup of an input: a source
            return self._source((*ids.shape, w.shape[1]), w.dtype)
        return torch.zeros((*ids.shape, w.shape[1]), dtype=w.dtype)  # an additive constant

    def _avg_pool(self, name: str, args: tuple, kwargs: dict) -> torch.Tensor:
        x = _arg(args, kwargs, 0, "input", None)
        kernel = _arg(args, kwargs, 1, "kernel_size", None)
        stride = _arg(args, kwargs, 2, "stride", None)
        padding = _arg(args, kwargs, 3, "padding", 0)
        dilation = _arg(args, kwargs, 4, "dilation", 1)
        ceil_mode = _arg(args, kwargs, 5, "ceil_mode", False)
        if _arg(args, kwargs, 6, "return_indices", False) or "with_indices" in name:
            raise NotImplementedError(f"oracle: {name} with return_indices")
        if "2d" in name:
            return _window_sum(x, kernel, stride, padding, dilation, ceil_mode)
        if any(d != 1 for d in ((dilation,) if isinstance(dilation, int) else dilation)):
            raise NotImplementedError(f"oracle: dilated {name}")
        pool = F.avg_pool1d if "1d" in name else F.avg_pool3d
        return pool(x, kernel, stride if stride not in (None, []) else kernel, padding,
                    ceil_mode, True)


def oracle_effective(model: nn.Module, inputs: Any = (), masks: Mapping[str, Any] | None = None,
                     *, kwargs: Mapping[str, Any] | None = None, seed: int = 0,
                     threads: int | None = 1) -> dict[str, np.ndarray]:
    """Effective weights by the float64 oracle of DESIGN §3, without any sparsegraph code.

    ``inputs`` is a tensor or a tuple of positional inputs, ``kwargs`` keyword inputs; ``masks``
    maps parameter names to 0/1 arrays of the weight's shape. The prunable weights are
    :func:`default_prunable`'s plus every key of ``masks`` (an ``nn.Embedding`` weight, say);
    those without a key are dense. Returns ``{name: bool array}`` for every prunable weight, in
    ``named_parameters()`` order: kept and on a path from an input to an output. ``seed`` fixes
    the random draws (the result does not depend on it); ``threads`` is the number of torch
    intra-op threads while it runs (restored after; None leaves it): 1 by default, as the
    zoo's tensors are small and on a loaded machine more threads only wait for each other.

    The rules (on a float64 deep copy in eval mode; the model is untouched):

    - kept weights of prunable layers are drawn from U(0.5, 1.5), pruned ones are 0;
    - every other parameter (biases, position embeddings, class/register tokens, relative
      position bias tables, ...) is 0 where it is added, and positive, U(0.5, 1.5), where it
      is a factor of a product (layer scale ``gamma * x``, ``x / p``, a matmul or einsum with a
      non-prunable parameter, the weight of a functional linear/conv that is not prunable):
      each parameter carries a positive twin through computations on parameters alone (views,
      ``exp``, ...), which a product uses; python-float scales are left as they are;
    - normalisation is the identity: ``F.layer_norm/batch_norm/group_norm/instance_norm/
      rms_norm/local_response_norm``, and the forward of every module whose class name ends in
      ``Norm``/``Norm1d``.../``NormAct2d`` and that holds no prunable weight (HF's
      ``T5LayerNorm``, ``LlamaRMSNorm``...); element-wise activations that are 0 at 0 (ReLU,
      GELU, SiLU, hard-swish, tanh, softplus, dropout, ...) are the identity too;
    - gates stay real: sigmoid, softmax (never down-cast), exp, GLU, and hard-sigmoid, which
      becomes sigmoid (both are nonzero everywhere; sigmoid never saturates to a zero gradient);
    - max pooling becomes a window sum/average (max would route the gradient to one arg-max);
    - ``nn.MultiheadAttention`` runs through explicit q/k/v/out projections (one layer call per
      row block of ``in_proj_weight``; boolean masks send scores to -inf);
    - inputs: floating tensors are drawn from U(0.5, 1.5); integer and boolean tensors (token
      ids, padding masks) stay. A lookup in a non-prunable embedding whose indices derive from
      an input is a source of positive random values of its output shape; with constant
      indices (positions, token types) it is an additive constant, 0. A prunable embedding is a
      linear map from a positive random soft one-hot ``(tokens, vocab)`` input (no signal for
      constant indices);
    - the output of each prunable layer call is divided by its (detached) largest magnitude and
      the gradient arriving there by its own, so nothing over- or underflows (positive factors
      that leave every zero pattern as it is);
    - every floating tensor of the output (tuples, lists, dicts, HF ModelOutputs) is weighted
      by random positive weights and summed (a plain sum would cancel through a final softmax);
      a kept weight is effective iff its gradient is nonzero. A tied parameter is one layer: its
      gradient sums over its uses, so it is effective through any of them.

    The refinement that makes "gradient nonzero" the path definition exactly: a layer's input
    can hold a constant that is not signal, such as sigmoid(0) = 1/2 read from a pruned-away
    branch, or a softmax over constant scores. Three passes use the same rescaling factors: a
    first real pass records them, a second with every floating input (and every embedding
    source) zero records each layer call's input ``a0``, and in the third, real pass each layer
    returns ``W.detach()·a + (s − s.detach())`` with ``s = W·d`` and ``d = a − a0`` detached:
    the same value as ``W·a`` (``s − s.detach()`` is exactly 0) and the gradient for ``a`` as
    usual, but the weight's gradient comes from ``a − a0``, the part of its input that an input
    reaches. It is ``W·a + W.detach()·a0 − W·a0`` with the subtraction done on the input, so
    that a constant part cancels exactly, not up to rounding.

    A parameter that is used as an addend and as a factor is 0 in the first use and positive
    in the second. Float buffers (attention masks, -100 or -inf) are left as they are.
    Data-dependent control flow and a model that divides by its input are not supported.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _oracle(model, inputs, {} if masks is None else dict(masks), kwargs, seed)
    finally:
        torch.set_num_threads(before)


def _oracle(model: nn.Module, inputs: Any, masks: dict[str, Any],
            kwargs: Mapping[str, Any] | None, seed: int) -> dict[str, np.ndarray]:
    work = copy.deepcopy(model).to(torch.float64).eval()
    canonical = {id(p): n for n, p in work.named_parameters()}
    alias = {n: canonical[id(p)] for n, p in work.named_parameters(remove_duplicate=False)}
    for key in masks:
        if key not in alias:
            raise ValueError(f"masks: {key!r} is not a parameter of {type(model).__name__}")
    masks = {alias[k]: v for k, v in masks.items()}
    names = set(default_prunable(work)) | set(masks)
    params = dict(work.named_parameters())
    gen = torch.Generator().manual_seed(int(seed))
    kept: dict[str, np.ndarray] = {}
    prunable: dict[int, tuple] = {}
    consts: dict[int, tuple] = {}
    with torch.no_grad():
        for name, p in params.items():
            if name in names:
                m = np.asarray(masks.get(name, np.ones(p.shape, bool)))
                if m.shape != tuple(p.shape) or not np.isin(m, (0, 1)).all():
                    raise ValueError(f"masks[{name!r}]: expected 0/1 of shape {tuple(p.shape)}")
                kept[name] = m.astype(bool)
                p.copy_((torch.rand(p.shape, generator=gen, dtype=p.dtype) + 0.5)
                        * torch.as_tensor(kept[name]))
                p.requires_grad_(True)
                prunable[id(p)] = (p, name)
            elif p.is_floating_point():
                twin = torch.rand(p.shape, generator=gen, dtype=p.dtype) + 0.5
                p.zero_()
                p.requires_grad_(False)
                consts[id(p)] = (p, twin)
    for mod in work.modules():
        if isinstance(mod, nn.MultiheadAttention):
            mod.forward = types.MethodType(_mha_forward, mod)
        elif _NORM_CLASS.search(type(mod).__name__) and not any(
                id(p) in prunable for p in mod.parameters()):
            mod.forward = types.MethodType(_identity_forward, mod)

    args = inputs if isinstance(inputs, tuple) else (inputs,)
    kwargs = dict(kwargs or {})
    real = _map((args, kwargs), lambda t: torch.rand(t.shape, generator=gen, dtype=torch.float64)
                + 0.5 if t.is_floating_point() else t)
    zero = _map(real, lambda t: torch.zeros_like(t) if t.is_floating_point() else t)
    mode = _Oracle(prunable, consts, gen)
    outs = []
    for phase, (a, kw) in (("scale", real), ("zero", zero), ("grad", real)):
        fresh = _map((a, kw), lambda t: t.clone())
        mode.start(phase, fresh)
        with torch.set_grad_enabled(phase == "grad"), mode:
            out = work(*fresh[0], **fresh[1])
        if phase == "zero" and any(not torch.isfinite(t).all() for t in mode.a0):
            raise RuntimeError("oracle: a layer input is not finite at zero input")
        outs = [o for o in _tensors(out) if o.is_floating_point()]
    total = sum(((torch.rand(o.shape, generator=gen, dtype=o.dtype) + 0.5) * o).sum()
                for o in outs)
    if not isinstance(total, torch.Tensor) or not torch.isfinite(total):
        raise RuntimeError(f"oracle: the weighted output is {total} (a fully masked softmax?)")
    if total.requires_grad:
        total.backward()
    result = {}
    for name, p in params.items():
        if name in names:
            grad = p.grad
            live = np.zeros(p.shape, bool) if grad is None else grad.detach().numpy() != 0
            result[name] = kept[name] & live
    return result


def assert_same_masks(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray],
                      labels: tuple[str, str] = ("got", "want")) -> None:
    """Assert two mask dicts have the same keys and equal bool arrays; the message names the
    first layer and weight that differ."""
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for name in want:
        assert got[name].dtype == np.bool_ and got[name].shape == want[name].shape, name
        diff = np.argwhere(got[name] != want[name])
        assert diff.size == 0, (
            f"{name}: {len(diff)} of {want[name].size} weights differ, first at "
            f"{diff[0].tolist()}: {labels[0]} {got[name][tuple(diff[0])]}, "
            f"{labels[1]} {want[name][tuple(diff[0])]}")
