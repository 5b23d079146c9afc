"""Slow, obviously correct references for effective sparsity (DESIGN §3).

Two oracles, independent of :mod:`sparsegraph.metrics.effective` and of each other:

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
"""

from __future__ import annotations

import copy
import itertools
import math
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
