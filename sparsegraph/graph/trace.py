"""Turn a PyTorch model into its layered bipartite graph (a
:class:`~sparsegraph.graph.network.Network`).

How it reads a model. The model runs once, eagerly, on the example input (eval mode, no
gradients) under a :class:`torch.overrides.TorchFunctionMode` that sees every call of the torch
API — ``F.linear``, ``torch.matmul``, ``Tensor.permute``, ``Tensor.__getitem__``,
``F.scaled_dot_product_attention``, attribute reads such as ``x.shape`` — with the real tensors.
Every tensor that depends on a network input is followed as a node of the linearised network of
DESIGN §2-3; everything else is a constant whose value is known (attention masks, position ids).
The op table (``_ops_*`` modules) maps each torch op onto the node kinds of
:mod:`sparsegraph.graph.kinds`:

- the weight operand of ``F.linear``, ``matmul``/``addmm`` (HF's ``Conv1D``), ``F.conv*d``,
  ``F.conv_transpose*d`` and, with ``embeddings=True``, ``F.embedding`` makes a parameter a
  prunable layer; a parameter used in several places (a tied embedding and LM head) is one layer
  with several uses; ``nn.MultiheadAttention`` is read through its q/k/v slices of
  ``in_proj_weight`` and ``out_proj``;
- element-wise maps that keep zero at zero (ReLU, GELU, SiLU, tanh, dropout) and adding a
  constant (a bias, a position embedding: constants are no sources, DESIGN §3) leave no node;
  multiplying by a constant leaves none either, or a ``scale`` node where the constant has
  zeros; normalisation modules (any ``*Norm*`` module, ``F.layer_norm``, ``F.batch_norm``, ...)
  are identities as a whole; sigmoid-like maps (and a divisor) are gates; sums of two computed
  tensors (residuals) are ``add`` nodes and their products ``mul`` nodes;
  ``matmul``/``einsum``/attention are contractions; softmax is softmax with the -inf constants
  added before it as its mask;
- layout ops (view/reshape/flatten, permute/transpose, slicing and indexing, chunk/split,
  pad, roll, flip, expand/repeat, interpolate, pooling, reductions) are index maps (``index``
  and ``reshape`` nodes); cat/stack are concatenations (``cat``).

Why eager recording rather than torch.fx or torch.export: torch.fx could not read 28 of 43
popular models (permutes, attribute reads, products, attention, HF modules); ``torch.export``
reads them all, but measured here (``python benchmarks/trace.py``: the 12 built-ins and the 20
models of the test zoo, HuggingFace BERT/GPT-2/ViT included) it is 8-70x slower than the
recorder on every one (ResNet-18@224: 0.12 s against 1.0 s warm; 1.8 s against 11.8 s for the
first call in a process, which imports ``torch._dynamo``), and its graph would still need the
same mapping onto node kinds. The recorder sees through attribute access, Python control flow
that does not depend on tensor values, HuggingFace's custom modules and keyword inputs with no
rewriting, at the cost of one forward pass.

Control flow that *does* depend on tensor values (``if x.sum() > 0``, ``x.item()``,
``x.nonzero()``) is detected and refused, since the graph would only hold for this input. An
op not in the table is a :class:`~sparsegraph.errors.TraceError` naming the op, the module path
and what to do; never a silent guess.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import TraceError
from .kinds import KINDS
from .network import Layer, Network, Node

__all__ = ["trace"]

#: An additive constant at or below this sends a softmax entry to exactly 0 in float64
#: (exp underflows): -inf, ``torch.finfo(dtype).min``, BERT's -10000. Swin's -100 does not.
NEG_INF = -745.0

_RMS_NORM = getattr(nn, "RMSNorm", None)  # torch >= 2.4
_NORM_CLASSES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    *((_RMS_NORM,) if _RMS_NORM is not None else ()),
)


def _is_norm(m: nn.Module) -> bool:
    """Normalisation modules are identities as a whole (DESIGN §3): torch's own and any module
    whose class name ends in ``Norm``/``Norm1d..3d``/``LayerNorm``/``RMSNorm`` (timm, HF)."""
    if isinstance(m, _NORM_CLASSES):
        return True
    cls = type(m).__name__.lower()
    return cls.endswith(("norm", "norm1d", "norm2d", "norm3d", "normact2d")) and \
        "conv" not in cls


class Refused(Exception):  # noqa: N818 - internal, becomes a TraceError at the door
    """What the recorder raises inside the model run. Not a TypeError: torch turns TypeErrors
    raised in binary operators (``x > 0``) into ``NotImplemented``; :func:`trace` re-raises it
    as a :class:`TraceError` (with the same placeholders for argument names)."""

    def __init__(self, message: str, **spellings: str) -> None:
        super().__init__(message)
        self.template, self.spellings = message, spellings


class Sig:
    """A tensor that carries signal: node ``node`` of the network being built; ``batch`` is the
    axis of the batched tensor holding the batch (None once removed, batch size 1 only) and
    ``inner`` how many positions of that axis belong to one batch item (a view that merged the
    batch with the next axis: ``(B, T, D) -> (B*T, D)``); ``neginf`` (bool, unbatched shape, or
    None) marks entries a constant has sent to -inf (attention masks, until the softmax)."""

    __slots__ = ("node", "batch", "inner", "neginf")

    def __init__(self, node: int, batch: int | None, inner: int = 1,
                 neginf: np.ndarray | None = None) -> None:
        self.node, self.batch, self.inner, self.neginf = node, batch, inner, neginf


class Ids:
    """An integer tensor derived from a network input (token ids), followed through layout
    ops until an embedding reads it; ``source`` is the index of the input."""

    __slots__ = ("source", "batch")

    def __init__(self, source: int, batch: int | None) -> None:
        self.source, self.batch = source, batch


class PView:
    """A parameter (``idx`` None) or a view of one (``idx``: int64 array of the parameter's
    flat positions, the view's shape)."""

    __slots__ = ("name", "idx")

    def __init__(self, name: str, idx: np.ndarray | None) -> None:
        self.name, self.idx = name, idx


class Recorder(TorchFunctionMode):
    """Records the ops of one forward pass into Network nodes (see the module docstring)."""

    def __init__(self, model: nn.Module, batch: int, identity: tuple[type, ...],
                 embeddings: bool) -> None:
        super().__init__()
        self.model = model
        self.batch = batch
        self.identity = identity
        self.embeddings = embeddings
        self.env: dict[int, Any] = {}
        self.keep: list[Any] = []  # tensors of env entries, alive so their ids stay unique
        self.nodes: list[Node] = []
        self.uses: dict[str, list[dict[str, Any]]] = {}  # parameter -> how each use reads it
        self.const_uses: dict[str, str] = {}  # parameter -> the op that used it as a constant
        self.ids_nodes: dict[int, int] = {}  # input index -> its ids input node
        self.stack: list[str] = []
        self.suspended = 0
        self.modules = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
        self.op = ""
        self.inside_identity: dict[str, str] = {}  # parameter -> identity module it was inside
        self.embedding_seen: set[str] = set()  # embeddings of the input tokens not made layers
        self.lookups: list[tuple[int, int, str]] = []  # (embedding node, its ids node, param)
        names: dict[int, str] = {}
        for n, p in model.named_parameters(remove_duplicate=False):
            names.setdefault(id(p), n)
        self.param_names = names
        self.params = {n: p for n, p in model.named_parameters()}
        for p in model.parameters():
            self.bind(p, PView(names[id(p)], None))

    # -- env ------------------------------------------------------------------------------
    def bind(self, t: Any, value: Any) -> Any:
        """Record what tensor ``t`` is; returns ``t``."""
        self.env[id(t)] = value
        self.keep.append(t)
        return t

    def value(self, t: Any) -> Any:
        """What a tensor is (Sig, Ids, PView), or None for a constant or a non-tensor."""
        return self.env.get(id(t)) if isinstance(t, torch.Tensor) else None

    def sig(self, t: Any) -> Sig | None:
        v = self.value(t)
        return v if isinstance(v, Sig) else None

    # -- nodes ----------------------------------------------------------------------------
    def where(self) -> str:
        mod = self.stack[-1] if self.stack else ""
        return f"op {self.op}" + (f" (module {mod!r})" if mod else "")

    def error(self, what: str, fix: str = "", **spellings: str) -> Refused:
        """The error naming the current op and module (a TraceError once out of the run);
        ``spellings`` as for :class:`~sparsegraph.errors.SparseGraphError`."""
        return Refused(f"{self.where()}: {what}" + (f"; {fix}" if fix else ""), **spellings)

    def node(self, kind: str, inputs: Sequence[int], shape: Sequence[int], *, layer: int = -1,
             params: dict[str, Any] | None = None) -> int:
        """Append a node; returns its id."""
        n = Node(len(self.nodes), kind, tuple(inputs), tuple(int(s) for s in shape), name=self.op,
                 layer=layer, module=self.stack[-1] if self.stack else "",
                 params=params or {})
        self.nodes.append(n)
        return n.id

    def shape(self, s: Sig) -> tuple[int, ...]:
        return self.nodes[s.node].shape

    def unbatched(self, shape: Sequence[int], batch: int | None, inner: int = 1
                  ) -> tuple[int, ...]:
        """A batched tensor shape without the batch."""
        shape = tuple(int(v) for v in shape)
        if batch is None:
            return shape
        return shape[:batch] + ((inner,) if inner > 1 else ()) + shape[batch + 1:]

    def axis(self, s: Sig, dim: int, rank: int, *, allow_batch: bool = False) -> int | None:
        """The node axis of torch dim ``dim`` of a rank-``rank`` tensor carried by ``s``
        (None for the batch axis itself when ``allow_batch``)."""
        if not -rank <= dim < rank:
            raise self.error(f"dim {dim} out of range for a rank-{rank} tensor")
        d = dim % rank
        if s.batch is None:
            return d
        if d == s.batch:
            if s.inner > 1 and self.batch == 1:
                return d
            if allow_batch:
                return None
            raise self.error(f"operates on the batch axis (dim {dim})",
                             "keep the batch axis first and out of the computation")
        return d if d < s.batch or s.inner > 1 else d - 1

    # -- the mode -------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if self.suspended or not _any_tracked(self.env, args, kwargs):
            return func(*args, **kwargs)
        from ._ops import OPS, op_name

        name = op_name(func)
        prev, self.op = self.op, name
        try:
            handler = OPS.get(name)
            if handler is None:
                return self.unknown(func, name, args, kwargs)
            return handler(self, func, args, kwargs)
        finally:
            self.op = prev

    def unknown(self, func: Any, name: str, args: tuple, kwargs: dict) -> Any:
        """An op without a rule: fine on constants, parameters and token ids (the result is a
        constant), an error on a signal."""
        from ._ops import RNN_OPS

        if any(isinstance(v, Sig) for v in _tracked_values(self.env, args, kwargs)):
            if name not in RNN_OPS:
                out = func(*args, **kwargs)
                if not _holds_tensor(out):  # a metadata query (x.is_nested, x.dim()): no signal
                    return out
            if name in RNN_OPS:
                raise self.error("recurrent layers (RNN, LSTM, GRU) are not supported",
                                 "sparsegraph reads feed-forward wiring only")
            raise self.error(
                f"{name} is not understood by sparsegraph",
                "rewrite the forward with supported ops, or, if the module containing it acts "
                "element-wise or per channel, treat that module as an identity with "
                "{identity_modules} (the README lists the supported ops and how to ask for more)",
                identity_modules="identity_modules=(ItsModuleClass,) in sparsegraph.trace")
        out = func(*args, **kwargs)
        for v in _tracked_values(self.env, args, kwargs):
            if isinstance(v, PView):
                self.const_uses.setdefault(v.name, name)
        return out

    # -- module hooks ---------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        name = self.modules.get(id(module), type(module).__name__)
        self.stack.append(name)
        if self.suspended:
            self.suspended += 1
            return
        if module is not self.model and (_is_norm(module) or isinstance(module, self.identity)):
            sigs = [self.sig(a) for a in args if isinstance(a, torch.Tensor)]
            if len(sigs) != 1 or sigs[0] is None:
                return  # not a plain signal-in-signal-out call: record its ops as usual
            self.suspended = 1
            self._identity_in = (args, sigs[0])
            for p in _params(module):
                self.inside_identity.setdefault(self.param_names[id(p)], name)

    def post_hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self.suspended:
            self.suspended -= 1
            if self.suspended == 0:
                (in_args, s) = self._identity_in
                x = next(a for a in in_args if isinstance(a, torch.Tensor))
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(x.shape):
                    raise Refused(
                        f"module {self.stack[-1]!r} ({type(module).__name__}) is treated as an "
                        "identity (a normalisation or one of identity_modules) but changes the "
                        "tensor's shape or returns several tensors")
                self.bind(out, Sig(s.node, s.batch, s.inner, s.neginf))
        self.stack.pop()


def _holds_tensor(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return True
    if isinstance(v, (list, tuple)):
        return any(_holds_tensor(x) for x in v)
    if isinstance(v, Mapping):
        return any(_holds_tensor(x) for x in v.values())
    return False


def _params(m: nn.Module) -> list[nn.Parameter]:
    return list(m.parameters())


def _any_tracked(env: dict[int, Any], args: Any, kwargs: Mapping[str, Any]) -> bool:
    for a in args:
        if isinstance(a, torch.Tensor):
            if id(a) in env:
                return True
        elif isinstance(a, (list, tuple)):
            if _any_tracked(env, a, {}):
                return True
    for a in kwargs.values():
        if isinstance(a, torch.Tensor) and id(a) in env:
            return True
        if isinstance(a, (list, tuple)) and _any_tracked(env, a, {}):
            return True
    return False


def _tracked_values(env: dict[int, Any], args: Any, kwargs: Mapping[str, Any]) -> list[Any]:
    out = []
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor) and id(a) in env:
            out.append(env[id(a)])
        elif isinstance(a, (list, tuple)):
            out.extend(_tracked_values(env, a, {}))
    return out


# ------------------------------------------------------------------------------ the entry


def _split_inputs(model: nn.Module, example_input: Any, example_kwargs: Mapping[str, Any] | None
                  ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(example_input, Mapping):
        args, kwargs = (), dict(example_input)
    elif isinstance(example_input, torch.Tensor):
        args, kwargs = (example_input,), {}
    elif isinstance(example_input, (tuple, list)):
        args, kwargs = tuple(example_input), {}
    elif example_input is None:
        args, kwargs = (), {}
    else:
        raise TraceError(f"example_input must be a tensor, a sequence of tensors or a mapping of "
                         f"keyword inputs, got {type(example_input).__name__}")
    kwargs.update(example_kwargs or {})
    if not any(isinstance(v, torch.Tensor) for v in (*args, *kwargs.values())):
        raise TraceError("example_input holds no tensor")
    try:
        inspect.signature(model.forward).bind(*args, **kwargs)
    except TypeError as exc:
        raise TraceError(
            f"{type(model).__name__}.forward{inspect.signature(model.forward)} does not take "
            f"these example inputs ({len(args)} positional, keywords {sorted(kwargs)}): {exc}"
        ) from None
    except ValueError:  # no signature (builtins): let the call decide
        pass
    return args, kwargs


def _batch_size(tensors: list[torch.Tensor], batch_axis: int) -> int:
    sizes = {int(t.shape[batch_axis]) for t in tensors if t.dim() > batch_axis}
    if len(sizes) != 1:
        raise TraceError(f"the example inputs disagree on the batch size (axis {batch_axis}): "
                         f"{sorted(sizes)}")
    return sizes.pop()


def _outputs(rec: Recorder, out: Any) -> list[int]:
    found: list[int] = []

    def visit(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            s = rec.sig(v)
            if s is not None:
                found.append(s.node)
        elif isinstance(v, Mapping):
            for item in v.values():
                visit(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                visit(item)
        elif hasattr(v, "to_tuple"):
            visit(v.to_tuple())

    visit(out)
    return list(dict.fromkeys(found))


def trace(
    model: nn.Module,
    example_input: Any = None,
    *,
    example_kwargs: Mapping[str, Any] | None = None,
    identity_modules: Sequence[type[nn.Module]] = (),
    embeddings: bool = False,
    batch_axis: int = 0,
    name: str | None = None,
) -> Network:
    """The layered bipartite graph of a PyTorch model.

    Parameters
    ----------
    model : torch.nn.Module
        Any model that runs eagerly on the example input: classic CNNs, ViTs, Swin, ConvNeXt,
        MobileNet-v3, HuggingFace BERT/GPT-2/ViT, ... (see the module docstring for what is
        read and how).
    example_input : Tensor, sequence of Tensor, mapping, or None
        The positional inputs (a tensor or a tuple), or a mapping of keyword inputs (e.g.
        ``{"input_ids": ids, "attention_mask": mask}``); None when ``example_kwargs`` holds
        every input. Float tensors are the network's
        inputs; integer tensors are token ids (followed into embeddings) or constants (masks).
        Its shape fixes the spatial sizes and sequence lengths, and its values fix constant
        masks (a padding ``attention_mask``): the graph is that of this input.
    example_kwargs : mapping, optional
        More keyword inputs.
    identity_modules : sequence of module classes, optional
        Extra module types to treat as element-wise (identity) maps as a whole, for custom
        activations or normalisations. Normalisation modules are identities already.
    embeddings : bool, default False
        Make ``nn.Embedding`` weights prunable layers (one-hot vocabulary -> features). By
        default an embedding lookup of the input tokens is a network input; a tied embedding that
        is also a linear layer's weight (an LM head) is a layer either way.
    batch_axis : int, default 0
        The batch axis of the example inputs.
    name : str, optional
        Label used in reports; defaults to the model's class name.

    Returns
    -------
    Network
        Layers in ``named_parameters()`` order, the linearised wiring, and ``net.skipped``:
        the Linear/Conv/attention/embedding weights that are not layers and why.

    Raises
    ------
    TraceError
        If ``model`` is not an ``nn.Module``, does not run on the example input or takes
        other inputs, uses an op with no linearised form or control flow that depends on
        tensor values (the message names the op, the module path and how to proceed), if its
        output does not depend on its input, or no prunable layer lies on a path from it.

    Notes
    -----
    The model runs once in eval mode without gradients; its training flags are restored.
    Modules that are never called in the forward pass are not layers.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                       nn.Flatten(), nn.Linear(8, 10))
    >>> net = trace(model, torch.zeros(1, 3, 16, 16))
    >>> [(layer.name, layer.shape) for layer in net.layers]
    [('0.weight', (8, 3, 3, 3)), ('4.weight', (10, 8))]
    >>> [node.kind for node in net.nodes]
    ['input', 'layer', 'index', 'reshape', 'layer']
    """
    if not isinstance(model, nn.Module):
        raise TraceError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    args, kwargs = _split_inputs(model, example_input, example_kwargs)
    inputs = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
    if any(t.dim() <= batch_axis for t in inputs):
        raise TraceError(f"every example input needs a batch axis {batch_axis}; got shapes "
                         f"{[list(t.shape) for t in inputs]}")
    batch = _batch_size(inputs, batch_axis)
    identity = tuple(identity_modules)
    rec = Recorder(model, batch, identity, embeddings)
    for pos, t in enumerate(inputs):
        if t.is_floating_point():
            rec.op = "input"
            n = rec.node("input", (), rec.unbatched(t.shape, batch_axis))
            rec.bind(t, Sig(n, batch_axis))
        elif not t.is_complex():
            rec.bind(t, Ids(pos, batch_axis))
    modes = {m: m.training for m in model.modules()}
    pre = nn.modules.module.register_module_forward_pre_hook(rec.pre_hook)
    post = nn.modules.module.register_module_forward_hook(rec.post_hook)
    try:
        model.eval()
        with torch.no_grad(), rec:
            out = model(*args, **kwargs)
    except Refused as exc:
        raise TraceError(exc.template, **exc.spellings) from None
    except TraceError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own failure, reported as one line
        raise TraceError(
            f"running {type(model).__name__} on the example input of shape "
            f"{[list(t.shape) for t in inputs]} failed"
            f"{' in ' + repr(rec.stack[-1]) if rec.stack else ''}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    finally:
        pre.remove()
        post.remove()
        for m, mode in modes.items():
            m.training = mode
    outputs = _outputs(rec, out)
    if not outputs:
        raise TraceError(f"the output of {type(model).__name__} does not depend on its input")
    layers, nodes, outs = _assemble(rec, outputs)
    return Network(
        layers=layers,
        nodes=nodes,
        outputs=outs,
        name=name or type(model).__name__,
        input_shapes=tuple(tuple(int(s) for s in t.shape) for t in inputs),
        skipped=_skipped(rec, {layer.name for layer in layers}),
    )


def _assemble(rec: Recorder, outputs: list[int]
              ) -> tuple[tuple[Layer, ...], tuple[Node, ...], tuple[int, ...]]:
    """The layers in ``named_parameters()`` order, the nodes (renumbered) and the outputs.

    An embedding lookup whose table is not a layer (``embeddings=False`` and no other use as a
    weight) becomes a network input, and its ids node is dropped."""
    as_input, drop = set(), set()
    for node, ids_node, pname in rec.lookups:
        if rec.embeddings or any(u["kind"] != "embedding" for u in rec.uses[pname]):
            continue
        as_input.add(node)
        drop.add(ids_node)
        rec.embedding_seen.add(pname)
    for pname in list(rec.uses):
        if pname in rec.embedding_seen:
            del rec.uses[pname]
    order = [n for n in rec.params if n in rec.uses]
    index = {n: i for i, n in enumerate(order)}
    layers = []
    for pname in order:
        first = rec.uses[pname][0]
        layers.append(Layer(pname, pname.rpartition(".")[0], first["kind"],
                            tuple(rec.params[pname].shape), first["in"], first["out"],
                            first.get("groups", 1), first.get("transposed", False)))
    new_id: dict[int, int] = {}
    nodes: list[Node] = []
    for nd in rec.nodes:
        if nd.id in drop:
            continue
        new_id[nd.id] = len(nodes)
        if nd.id in as_input:
            nd = Node(len(nodes), "input", (), nd.shape, nd.name, -1, nd.module, {})
        elif KINDS[nd.kind].has_weight:  # a use of a layer: index its Layer
            params = {k: v for k, v in nd.params.items() if k != "param"}
            nd = Node(len(nodes), nd.kind, tuple(new_id[i] for i in nd.inputs), nd.shape,
                      nd.name, index[nd.params["param"]], nd.module, params)
        else:
            nd = Node(len(nodes), nd.kind, tuple(new_id[i] for i in nd.inputs), nd.shape,
                      nd.name, -1, nd.module, nd.params)
        nodes.append(nd)
    if not layers:
        raise TraceError("the model uses no prunable layer (Linear, Conv, attention projection) "
                         "on a path from its input")
    return tuple(layers), tuple(nodes), tuple(new_id[o] for o in outputs)


_WEIGHT_MODULES = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag,
                   nn.Bilinear)


def _skipped(rec: Recorder, layers: set[str]) -> tuple[tuple[str, str], ...]:
    """The weights of Linear/Conv/attention/embedding-like modules that are not layers."""
    out = []
    for m in rec.model.modules():
        cands = []
        if isinstance(m, _WEIGHT_MODULES) or type(m).__name__ == "Conv1D":
            cands = ["weight"]
        elif isinstance(m, nn.MultiheadAttention):
            cands = ["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"]
        for attr in cands:
            p = getattr(m, attr, None)
            if not isinstance(p, nn.Parameter):
                continue
            pname = rec.param_names[id(p)]
            if pname in layers or pname in {n for n, _ in out}:
                continue
            if pname in rec.inside_identity:
                why = (f"inside module {rec.inside_identity[pname]!r}, which is treated as an "
                       "identity (a normalisation, or a class given as an identity module)")
            elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and pname in rec.const_uses:
                why = ("an embedding looked up with constant indices (e.g. position ids): a "
                       "constant added to the signal")
            elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and pname in rec.embedding_seen:
                why = "an embedding of the input tokens: pass embeddings=True to prune it"
            elif pname in rec.const_uses:
                why = f"used only as a constant (by {rec.const_uses[pname]})"
            else:
                why = "never used by the forward pass on the example input"
            out.append((pname, why))
    return tuple(out)
