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


def _conv_taps(layer: Any, hin: int, win: int, hout: int, wout: int):
    """Per tap (ky, kx): the valid output pixel index arrays and their input pixels."""
    (sy, sx), (py, px), (dy, dx) = layer.stride, layer.padding, layer.dilation
    ys, xs = np.arange(hout), np.arange(wout)
    res = {}
    for ky in range(layer.kernel[0]):
        qy = ys * sy - py + ky * dy
        vy = (qy >= 0) & (qy < hin)
        for kx in range(layer.kernel[1]):
            qx = xs * sx - px + kx * dx
            vx = (qx >= 0) & (qx < win)
            res[ky, kx] = (ys[vy], xs[vx], qy[vy], qx[vx])
    return res


def bruteforce_effective(net: Any, masks: Mapping[str, Any]):
    """Dense forward/backward propagation on a Network; returns (effective, fwd, bwd)."""
    masks = {
        layer.name: np.asarray(masks[layer.name], dtype=bool) if layer.name in masks
        else np.ones(layer.shape, bool) for layer in net.layers
    }
    nodes = net.nodes

    def conv_edges(node):
        layer = net.layers[node.layer]
        src = nodes[node.inputs[0]]
        if layer.kind == "linear":
            for o, i in zip(*np.nonzero(masks[layer.name]), strict=True):
                yield (o, i, 0, 0), ([0], [0], [0], [0])
            return
        taps = _conv_taps(layer, src.shape[1], src.shape[2], node.shape[1], node.shape[2])
        cin_g = layer.in_channels // layer.groups
        cout_g = layer.out_channels // layer.groups
        for o, il, ky, kx in zip(*np.nonzero(masks[layer.name]), strict=True):
            yield (o, (o // cout_g) * cin_g + il, ky, kx), taps[ky, kx]

    def pool_pairs(node):
        (hp, hi), (wp, wi) = node.window_h, node.window_w
        for yo in range(node.shape[1]):
            for xo in range(node.shape[2]):
                ys, xs = hi[hp[yo]:hp[yo + 1]], wi[wp[xo]:wp[xo + 1]]
                yield yo, xo, np.ix_(ys, xs)

    fwd = []
    for node in nodes:
        out = np.zeros(node.shape, bool)
        if node.op == "input":
            out[:] = True
        elif node.op == "layer":
            x = fwd[node.inputs[0]]
            for (o, i, _, _), (ys, xs, qy, qx) in conv_edges(node):
                out[o][np.ix_(ys, xs)] |= x[i][np.ix_(qy, qx)]
        elif node.op == "pool":
            x = fwd[node.inputs[0]]
            for yo, xo, win in pool_pairs(node):
                out[:, yo, xo] = x[:, win[0], win[1]].reshape(node.shape[0], -1).any(axis=1)
        elif node.op == "add":
            for i in node.inputs:
                out |= fwd[i]
        elif node.op == "cat":
            out = np.concatenate([fwd[i] for i in node.inputs], axis=0)
        elif node.op == "reshape":
            out = fwd[node.inputs[0]].reshape(node.shape).copy()
        fwd.append(out)

    bwd = [np.zeros(node.shape, bool) for node in nodes]
    for o in net.outputs:
        bwd[o][:] = True
    eff = {name: np.zeros_like(m) for name, m in masks.items()}
    for node in reversed(nodes):
        b = bwd[node.id]
        if node.op == "layer":
            layer = net.layers[node.layer]
            src = node.inputs[0]
            f_in = fwd[src]
            for (o, i, ky, kx), (ys, xs, qy, qx) in conv_edges(node):
                bo = b[o][np.ix_(ys, xs)]
                bwd[src][i][np.ix_(qy, qx)] |= bo
                if (bo & f_in[i][np.ix_(qy, qx)]).any():
                    idx = (o, i) if layer.kind == "linear" else (
                        o, i - (o // (layer.out_channels // layer.groups))
                        * (layer.in_channels // layer.groups), ky, kx)
                    eff[layer.name][idx] = True
        elif node.op == "pool":
            src = node.inputs[0]
            for yo, xo, win in pool_pairs(node):
                for c in range(node.shape[0]):
                    if b[c, yo, xo]:
                        bwd[src][c][win] = True
        elif node.op == "add":
            for i in node.inputs:
                bwd[i] |= b
        elif node.op == "cat":
            off = 0
            for i in node.inputs:
                c = nodes[i].shape[0]
                bwd[i] |= b[off:off + c]
                off += c
        elif node.op == "reshape":
            bwd[node.inputs[0]] |= b.reshape(nodes[node.inputs[0]].shape)
    return eff, fwd, bwd
