"""Turn a PyTorch model into its layered bipartite graph (a
:class:`~sparsegraph.graph.network.Network`).

The model is traced symbolically with :mod:`torch.fx` and run once on the example input with
shape propagation, so every tensor's shape is known. Each fx node is then mapped onto the
linearised network of DESIGN §3:

* ``nn.Linear`` and ``nn.Conv2d`` weights are the prunable layers;
* element-wise and per-channel operations (activations, normalisation, dropout, scaling by a
  constant, adding a constant or a bias) are identity maps;
* max/average/adaptive pooling and spatial means/sums become "any input in the window" pools;
* ``flatten``/``view``/``reshape``/``squeeze``/``unsqueeze`` relabel elements in their flat order;
* a sum of two activations (``+``, ``torch.add``, ``-``) is a residual merge, ``torch.cat`` along
  channels a concatenation.

Anything else (a product of two activations, slicing, padding, interpolation, recurrent or
attention modules, weight sharing) is a :class:`~sparsegraph.errors.TraceError` naming the op and
the module path, never a silent guess.
"""

from __future__ import annotations

import contextlib
import io
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import TraceError
from .network import Layer, Network, Node

__all__ = ["trace"]

# Modules that act element-wise or per channel: identity maps in the linearised network.
_IDENTITY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
    nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
    nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.LogSigmoid,
    nn.Threshold, nn.Softmax, nn.LogSoftmax, nn.Softmax2d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.LocalResponseNorm,
)

_IDENTITY_FUNCTIONS = {
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.leaky_relu_, F.prelu, F.rrelu, F.elu, F.elu_,
    F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardtanh, F.hardtanh_, F.hardswish,
    F.hardsigmoid, F.softplus, F.softsign, F.tanhshrink, F.softshrink, F.hardshrink,
    F.logsigmoid, F.threshold, F.softmax, F.log_softmax, F.sigmoid, F.tanh,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
    F.batch_norm, F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm,
    torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.softmax, torch.log_softmax,
    torch.dropout, torch.clone, torch.clamp, torch.clip, torch.abs, torch.neg, torch.exp,
    operator.neg, operator.pos, operator.abs,
}

_IDENTITY_METHODS = {
    "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softmax", "log_softmax",
    "contiguous", "clone", "float", "double", "half", "bfloat16", "to", "type", "type_as",
    "clamp", "clamp_", "clip", "clip_", "abs", "neg", "exp", "detach", "requires_grad_",
}

# Binary arithmetic: with a constant (scalar, parameter, buffer) it is a per-element map.
_SUM_OPS = {operator.add, operator.iadd, torch.add, operator.sub, operator.isub, torch.sub}
_PRODUCT_OPS = {
    operator.mul, operator.imul, torch.mul, operator.truediv, operator.itruediv, torch.div,
    operator.pow, torch.pow,
}
_SUM_METHODS = {"add", "add_", "sub", "sub_"}
_PRODUCT_METHODS = {"mul", "mul_", "div", "div_", "pow"}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
_RESHAPE_METHODS = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_REDUCE_FUNCTIONS = {torch.mean, torch.sum, torch.amax}
_REDUCE_METHODS = {"mean", "sum", "amax"}
_METADATA_METHODS = {"size", "dim", "numel"}

_PROPOSAL = (
    "rewrite the forward with supported ops, or, if it acts element-wise or per channel, "
    "pass identity_modules=(ItsModuleClass,) to sparsegraph.trace"
)


class _Signal:
    """An fx value that carries signal from a network input: a node of the linearised net."""

    __slots__ = ("id",)

    def __init__(self, node_id: int) -> None:
        self.id = node_id


class _Tracer(torch.fx.Tracer):
    def __init__(self, leaves: tuple[type[nn.Module], ...]) -> None:
        super().__init__()
        self._leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Linear, nn.Conv2d) + self._leaves):
            return True
        return super().is_leaf_module(m, qualname)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) > 1 else (int(value[0]),) * 2
    return (int(value), int(value))


def _canonical(shape: Sequence[int], where: str) -> tuple[int, int, int]:
    """Batched tensor shape -> (C, H, W) without the batch dimension."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        return (shape[1], 1, 1)
    if len(shape) == 3:
        return (shape[1], 1, shape[2])
    if len(shape) == 4:
        return (shape[1], shape[2], shape[3])
    raise TraceError(
        f"{where}: a tensor of shape {list(shape)} cannot be followed; sparsegraph handles "
        "(N, features), (N, C, L) and (N, C, H, W) activations with the batch dimension first"
    )


def _csr(windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(windows) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(w) for w in windows])
    idx = np.array([i for w in windows for i in w], dtype=np.int64)
    return ptr, idx


def _pool_windows(n_in: int, n_out: int, k: int, s: int, p: int, d: int) -> list[list[int]]:
    return [
        [j for j in range(o * s - p, o * s - p + (k - 1) * d + 1, d) if 0 <= j < n_in]
        for o in range(n_out)
    ]


def _adaptive_windows(n_in: int, n_out: int) -> list[list[int]]:
    return [
        list(range((o * n_in) // n_out, -(-((o + 1) * n_in) // n_out))) for o in range(n_out)
    ]


class _Builder:
    """Walks the fx graph and accumulates the nodes and layers of the Network."""

    def __init__(self, gm: torch.fx.GraphModule, identity_modules: tuple[type, ...]) -> None:
        self.gm = gm
        self.identity_modules = identity_modules
        self.nodes: list[Node] = []
        self.layers: dict[str, Layer] = {}
        self.layer_nodes: dict[str, int] = {}
        self.env: dict[torch.fx.Node, Any] = {}

    # -- helpers ----------------------------------------------------------------------------
    def add(self, op: str, inputs: Sequence[int], shape: tuple[int, int, int], name: str,
            **extra: Any) -> _Signal:
        node = Node(len(self.nodes), op, tuple(inputs), shape, name=name, **extra)
        self.nodes.append(node)
        return _Signal(node.id)

    def shape_of(self, n: torch.fx.Node) -> tuple[int, ...]:
        meta = n.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise TraceError(f"{self.where(n)}: produces no single tensor; cannot follow it")
        return tuple(int(s) for s in meta.shape)

    def where(self, n: torch.fx.Node) -> str:
        stack = n.meta.get("nn_module_stack")
        path = next(reversed(stack.values()))[0] if stack else ""
        if n.op == "call_module":
            path = str(n.target)
        label = n.target if n.op == "call_method" else getattr(n.target, "__name__", n.target)
        return f"op {label!s} ({n.op}{', module ' + repr(path) if path else ''})"

    def signals(self, values: Any) -> list[_Signal]:
        out: list[_Signal] = []

        def visit(v: Any) -> None:
            if isinstance(v, _Signal):
                out.append(v)
            elif isinstance(v, (list, tuple)):
                for item in v:
                    visit(item)
            elif isinstance(v, dict):
                for item in v.values():
                    visit(item)

        visit(values)
        return out

    def load(self, arg: Any) -> Any:
        return torch.fx.node.map_arg(arg, lambda a: self.env[a])

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> tuple[int, ...]:
        outputs: tuple[int, ...] = ()
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                shape = _canonical(self.shape_of(n), f"input {n.name!r}")
                self.env[n] = self.add("input", (), shape, n.name)
            elif n.op == "get_attr":
                self.env[n] = None  # a parameter or buffer: constant, carries no signal
            elif n.op == "output":
                sigs = self.signals(self.load(n.args[0]))
                if not sigs:
                    raise TraceError("the model's output does not depend on its input")
                outputs = tuple(dict.fromkeys(s.id for s in sigs))
            else:
                args, kwargs = self.load(n.args), self.load(n.kwargs)
                if not self.signals((args, kwargs)):
                    self.env[n] = None  # computed from constants and sizes only
                    continue
                if n.op == "call_module":
                    self.env[n] = self.module(n, self.gm.get_submodule(n.target), args)
                else:
                    self.env[n] = self.function(n, args, kwargs)
        return outputs

    def module(self, n: torch.fx.Node, m: nn.Module, args: tuple) -> Any:
        x = args[0]
        if isinstance(m, nn.Conv2d):
            return self.layer(n, m, x, "conv")
        if isinstance(m, nn.Linear):
            return self.layer(n, m, x, "linear")
        if isinstance(m, _IDENTITY_MODULES + self.identity_modules):
            return self.single(n, args)
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            return self.reshape(n, x)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            dilation = m.dilation if isinstance(m, nn.MaxPool2d) else 1
            stride = m.stride if m.stride is not None else m.kernel_size
            return self.pool(n, x, m.kernel_size, stride, m.padding, dilation)
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return self.pool(n, x, adaptive=True)
        if isinstance(m, nn.Sequential) and len(m) == 0:
            return self.single(n, args)
        raise TraceError(
            f"{self.where(n)}: module type {type(m).__name__} is not understood by sparsegraph; "
            + _PROPOSAL
        )

    def function(self, n: torch.fx.Node, args: tuple, kwargs: dict) -> Any:
        f = n.target
        method = n.op == "call_method"
        if (method and f in _IDENTITY_METHODS) or (not method and f in _IDENTITY_FUNCTIONS):
            return self.single(n, args)
        if (method and f in _SUM_METHODS) or (not method and f in _SUM_OPS):
            sigs = self.signals(args[:2])
            if len(sigs) == 1:
                return sigs[0]
            shape = _canonical(self.shape_of(n), self.where(n))
            for s in sigs:
                if self.nodes[s.id].shape != shape:
                    raise TraceError(
                        f"{self.where(n)}: adds activations of shapes "
                        f"{[list(self.nodes[t.id].shape) for t in sigs]} by broadcasting; only "
                        "sums of equally shaped activations are supported"
                    )
            return self.add("add", [s.id for s in sigs], shape, n.name)
        if (method and f in _PRODUCT_METHODS) or (not method and f in _PRODUCT_OPS):
            sigs = self.signals(args[:2])
            if len(sigs) == 1 and self.signals(args[0]):
                return sigs[0]
            raise TraceError(
                f"{self.where(n)}: a product or quotient involving two activations (gating, "
                "attention, squeeze-excitation) has no linearised form; " + _PROPOSAL
            )
        if (method and f in _RESHAPE_METHODS) or (not method and f in _RESHAPE_FUNCTIONS):
            return self.reshape(n, args[0])
        if f in (torch.cat, torch.concat) and not method:
            return self.cat(n, args, kwargs)
        if (method and f in _REDUCE_METHODS) or (not method and f in _REDUCE_FUNCTIONS):
            return self.reduce(n, args, kwargs)
        if not method and f in (F.max_pool2d, F.avg_pool2d):
            params = dict(zip(("kernel_size", "stride", "padding"), args[1:4], strict=False))
            params.update({k: v for k, v in kwargs.items() if k in ("kernel_size", "stride",
                                                                   "padding", "dilation")})
            if f is F.max_pool2d and len(args) > 4:
                params["dilation"] = args[4]
            kernel = params["kernel_size"]
            stride = params.get("stride") or kernel
            return self.pool(n, args[0], kernel, stride, params.get("padding", 0),
                             params.get("dilation", 1))
        if not method and f in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            return self.pool(n, args[0], adaptive=True)
        if method and f in _METADATA_METHODS or f is getattr and args[1] in ("shape", "dtype"):
            return None
        if f is operator.getitem:
            container, index = args[0], args[1]
            if isinstance(container, (tuple, list)):
                return container[index]
            raise TraceError(
                f"{self.where(n)}: indexing or slicing an activation is not supported; " + _PROPOSAL
            )
        label = f if method else getattr(f, "__qualname__", repr(f))
        raise TraceError(f"{self.where(n)}: {label} is not understood by sparsegraph; " + _PROPOSAL)

    # -- node kinds --------------------------------------------------------------------------
    def single(self, n: torch.fx.Node, args: tuple) -> _Signal:
        sigs = self.signals(args)
        if len(sigs) != 1 or not isinstance(args[0], _Signal):
            raise TraceError(f"{self.where(n)}: expected one activation input, got {len(sigs)}")
        if _canonical(self.shape_of(n), self.where(n)) != self.nodes[sigs[0].id].shape:
            raise TraceError(f"{self.where(n)}: changes the tensor's shape; " + _PROPOSAL)
        return sigs[0]

    def layer(self, n: torch.fx.Node, m: nn.Module, x: Any, kind: str) -> _Signal:
        if not isinstance(x, _Signal):
            raise TraceError(f"{self.where(n)}: expected one activation input")
        name = f"{n.target}.weight"
        if name in self.layers:
            raise TraceError(
                f"{self.where(n)}: module {str(n.target)!r} is called more than once (weight "
                "sharing); give each call its own module"
            )
        src = self.nodes[x.id]
        in_shape = self.shape_of(n.args[0])
        out = _canonical(self.shape_of(n), self.where(n))
        if kind == "linear":
            if len(in_shape) != 2:
                raise TraceError(
                    f"{self.where(n)}: nn.Linear on a tensor of shape {list(in_shape)}; "
                    "sparsegraph follows Linear layers on (N, features) inputs only (flatten first)"
                )
            layer = Layer(name, str(n.target), "linear", tuple(m.weight.shape),
                          m.in_features, m.out_features)
        else:
            if len(in_shape) != 4:
                raise TraceError(
                    f"{self.where(n)}: nn.Conv2d on a tensor of shape {list(in_shape)}"
                )
            if m.padding_mode != "zeros":
                raise TraceError(
                    f"{self.where(n)}: padding_mode={m.padding_mode!r} reads real pixels at the "
                    "border; only zero padding is supported"
                )
            kernel, stride, dilation = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
            if isinstance(m.padding, str):  # "same" pads (total // 2) before, "valid" none
                padding = (0, 0) if m.padding == "valid" else tuple(
                    dilation[a] * (kernel[a] - 1) // 2 for a in range(2))
            else:
                padding = _pair(m.padding)
            layer = Layer(name, str(n.target), "conv", tuple(m.weight.shape), m.in_channels,
                          m.out_channels, m.groups, kernel, stride, padding, dilation,
                          in_hw=src.shape[1:], out_hw=out[1:])
        self.layers[name] = layer
        sig = self.add("layer", (x.id,), out, str(n.target), layer=-1)
        self.layer_nodes[name] = sig.id
        return sig

    def reshape(self, n: torch.fx.Node, x: Any) -> _Signal:
        out_shape = self.shape_of(n)
        src = self.nodes[x.id]
        if out_shape[0] != self.batch:
            raise TraceError(
                f"{self.where(n)}: reshapes across the batch dimension ({list(out_shape)}); keep "
                "the batch dimension first, e.g. torch.flatten(x, 1)"
            )
        out = _canonical(out_shape, self.where(n))
        return x if out == src.shape else self.add("reshape", (x.id,), out, n.name)

    def cat(self, n: torch.fx.Node, args: tuple, kwargs: dict) -> _Signal:
        tensors = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        rank = len(self.shape_of(n))
        if dim % rank != 1:
            raise TraceError(
                f"{self.where(n)}: torch.cat along dim {dim}; only concatenation along the "
                "channel/feature dimension (dim=1) is supported"
            )
        if any(not isinstance(t, _Signal) for t in tensors):
            raise TraceError(f"{self.where(n)}: concatenates a constant tensor with activations")
        out = _canonical(self.shape_of(n), self.where(n))
        return self.add("cat", [t.id for t in tensors], out, n.name)

    def reduce(self, n: torch.fx.Node, args: tuple, kwargs: dict) -> _Signal:
        in_shape = self.shape_of(n.args[0])
        dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if len(in_shape) != 4 or dims[0] is None or sorted(d % 4 for d in dims) != [2, 3]:
            raise TraceError(
                f"{self.where(n)}: reduction over dims {dims} of a {list(in_shape)} tensor; only "
                "spatial reductions (dims 2 and 3 of an (N, C, H, W) tensor) are supported"
            )
        c, h, w = self.nodes[args[0].id].shape
        pooled = self.add("pool", (args[0].id,), (c, 1, 1), n.name,
                          window_h=_csr([list(range(h))]), window_w=_csr([list(range(w))]))
        out = _canonical(self.shape_of(n), self.where(n))
        return pooled if out == (c, 1, 1) else self.add("reshape", (pooled.id,), out, n.name)

    def pool(self, n: torch.fx.Node, x: Any, kernel: Any = None, stride: Any = None,
             padding: Any = 0, dilation: Any = 1, *, adaptive: bool = False) -> _Signal:
        if len(self.shape_of(n.args[0])) != 4:
            raise TraceError(f"{self.where(n)}: 2-d pooling of a non-image tensor")
        c, h, w = self.nodes[x.id].shape
        out = _canonical(self.shape_of(n), self.where(n))
        ho, wo = out[1:]
        if adaptive:
            wh, ww = _adaptive_windows(h, ho), _adaptive_windows(w, wo)
        else:
            k, s, p, d = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
            wh = _pool_windows(h, ho, k[0], s[0], p[0], d[0])
            ww = _pool_windows(w, wo, k[1], s[1], p[1], d[1])
        return self.add("pool", (x.id,), out, n.name, window_h=_csr(wh), window_w=_csr(ww))


def trace(
    model: nn.Module,
    example_input: torch.Tensor | Sequence[torch.Tensor],
    *,
    identity_modules: Sequence[type[nn.Module]] = (),
    name: str | None = None,
) -> Network:
    """The layered bipartite graph of a PyTorch model.

    Parameters
    ----------
    model : torch.nn.Module
        Any model torch.fx can trace symbolically. Every ``nn.Linear`` and ``nn.Conv2d``
        weight that the forward pass uses is a prunable layer.
    example_input : Tensor or sequence of Tensor
        An input batch (any batch size, usually 1); its shape fixes the spatial sizes, so the
        per-pixel connectivity is that of this input size.
    identity_modules : sequence of module classes, optional
        Extra module types to treat as element-wise (identity) maps, for custom activations
        or normalisations the tracer does not know.
    name : str, optional
        Label used in reports; defaults to the model's class name.

    Returns
    -------
    Network
        Layers in ``named_parameters()`` order and the linearised wiring.

    Raises
    ------
    TraceError
        If torch.fx cannot trace the model, the example input does not run, or an op has no
        linearised form (the message names the op, the module path and how to proceed).

    Notes
    -----
    The model runs once in eval mode without gradients (its training flag is restored).
    Modules that are never called in the forward pass are not layers. A prunable module
    called twice (weight sharing) is an error.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                       nn.Flatten(), nn.Linear(8, 10))
    >>> net = trace(model, torch.zeros(1, 3, 16, 16))
    >>> [(layer.name, layer.shape, layer.in_hw) for layer in net.layers]
    [('0.weight', (8, 3, 3, 3), (16, 16)), ('4.weight', (10, 8), (1, 1))]
    >>> [node.op for node in net.nodes]
    ['input', 'layer', 'pool', 'layer']
    """
    if not isinstance(model, nn.Module):
        raise TraceError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = (example_input,) if isinstance(example_input, torch.Tensor) else tuple(example_input)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TraceError("example_input must be a tensor or a sequence of tensors")
    identity = tuple(identity_modules)
    try:
        graph = _Tracer(identity).trace(model)
    except Exception as exc:  # noqa: BLE001 - any fx failure is reported as one TraceError
        raise TraceError(
            f"torch.fx could not trace {type(model).__name__}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''} (control flow that depends on "
            "tensor values cannot be traced; make it static or mark the module as a leaf)"
        ) from None
    gm = torch.fx.GraphModule(model, graph)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        # ShapeProp prints a traceback of its own before re-raising: keep it off the terminal
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(*inputs)
    except Exception as exc:  # noqa: BLE001
        while exc.__cause__ is not None:  # ShapeProp wraps the model's own error
            exc = exc.__cause__
        raise TraceError(
            f"running {type(model).__name__} on the example input of shape "
            f"{[list(t.shape) for t in inputs]} failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    finally:
        for m, mode in modes.items():
            m.training = mode
    builder = _Builder(gm, identity)
    builder.batch = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    outputs = builder.run()

    order = [pname for pname, _ in model.named_parameters() if pname in builder.layers]
    index = {pname: i for i, pname in enumerate(order)}
    nodes = tuple(
        Node(nd.id, nd.op, nd.inputs, nd.shape, nd.name, index[f"{nd.name}.weight"],
             nd.window_h, nd.window_w) if nd.op == "layer" else nd
        for nd in builder.nodes
    )
    if not order:
        raise TraceError(f"{type(model).__name__} uses no nn.Linear or nn.Conv2d layer")
    return Network(
        layers=tuple(builder.layers[p] for p in order),
        nodes=nodes,
        outputs=outputs,
        name=name or type(model).__name__,
        input_shapes=tuple(tuple(int(s) for s in t.shape) for t in inputs),
    )
