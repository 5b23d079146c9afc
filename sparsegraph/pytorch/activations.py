"""Layer-by-layer similarity of two PyTorch models on the same inputs.

:func:`layer_similarity` hooks the output of every prunable layer (each ``nn.Linear`` and
``nn.Conv1d/2d/3d`` / ``nn.ConvTranspose*d`` with a weight, masked or not) or of the modules
named in ``layers``, runs both models on the same inputs batch by batch, and compares the
activations of each pair of layers with SVCCA, PWCCA or minibatch CKA
(:mod:`sparsegraph.metrics.similarity`, :mod:`sparsegraph.metrics.cka_stream`).

How a layer's output becomes ``(samples, features)``
    The feature axis is the channel axis (axis 1) of convolutions and of every other module
    with outputs of rank 3 or more, and the last axis of ``nn.Linear`` (and of ``LayerNorm``,
    ``Embedding``, ``MultiheadAttention``), so a Linear acting on tokens has its features last.
    ``conv="mean"`` (the default) averages over the remaining axes (spatial positions,
    tokens): one sample per input. ``conv="positions"`` makes every position its own sample.
    The mean is the default because it keeps one sample per input in every layer, so layers of
    different spatial sizes can be compared (the cross-layer matrix), the samples stay
    independent, and SVCCA/PWCCA memory does not grow with the feature-map size; per position
    sees more of each layer (features of 64 channels from 32x32 maps get 1024 samples per
    input) at H*W times the memory, and its samples are correlated within an input.

Which outputs
    By default the outputs of the prunable modules themselves: pre-activations. The first
    layer's pre-activations are a linear function of the input (per position, or of the mean
    patch after ``conv="mean"``), so for two first layers at least as wide as their input patch
    CCA-based measures, which are invariant to invertible linear maps, are near 1 whatever the
    weights; name the activation modules (``layers=["act1", ...]``) to compare post-ReLU
    representations, as ``examples/pruning_similarity_digits.py`` does.

Memory
    SVCCA and PWCCA need all activations at once: ``4 * samples * (features_a + features_b)``
    bytes per layer (stored as float32 while recording), plus float64 copies of one pair while
    it is compared. CKA streams: each minibatch of ``batch_size`` rows is reduced to its
    U-centred Gram matrices and dropped, so memory is ``O(batch_size^2)`` per layer whatever the
    number of samples.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .._args import check_choice, check_count, check_module, check_seed, suggest
from ..errors import ArgumentError
from ..metrics.cka_stream import CKAAccumulator
from ..metrics.similarity import KERNELS, pwcca, svcca
from ..metrics.similarity_table import LayerSimilarity, SimilarityMatrix, SimilarityTable
from .apply import _unwrap

__all__ = ["CONV_MODES", "METHODS", "LayerSimilarity", "SimilarityMatrix", "SimilarityTable",
           "layer_similarity", "prunable_modules"]

METHODS = ("svcca", "pwcca", "cka")
CONV_MODES = ("mean", "positions")
_LAST_AXIS = (nn.Linear, nn.LayerNorm, nn.Embedding, nn.MultiheadAttention)


# ---------------------------------------------------------------------------------- layers


def _has_weight(module: nn.Module) -> bool:
    if parametrize.is_parametrized(module, "weight"):
        return True
    if isinstance(getattr(module, "weight_orig", None), nn.Parameter):
        return True
    return isinstance(getattr(module, "weight", None), nn.Parameter)


def prunable_modules(model: nn.Module) -> list[str]:
    """Names of the modules whose outputs :func:`layer_similarity` compares by default.

    Every ``nn.Linear``, ``nn.Conv1d/2d/3d`` and ``nn.ConvTranspose1d/2d/3d`` that has a weight
    (a parameter, or one masked with ``torch.nn.utils.prune`` / ``parametrize``), in
    ``model.named_modules()`` order.

    Examples
    --------
    >>> from torch import nn
    >>> prunable_modules(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
    ...                                nn.Linear(4, 2)))
    ['0', '3']
    """
    kinds = (nn.Linear, nn.modules.conv._ConvNd)
    return [name for name, m in _unwrap(model).named_modules()
            if isinstance(m, kinds) and _has_weight(m)]


def _resolve_layers(model: nn.Module, layers: Sequence[str] | str | None, what: str
                    ) -> list[tuple[str, nn.Module]]:
    root = _unwrap(model)
    modules = dict(root.named_modules())
    if layers is None:
        names = prunable_modules(root)
        if not names:
            raise ArgumentError(f"{what} has no Linear or Conv layer; name the modules to compare "
                                "with layers=")
        return [(n, modules[n]) for n in names]
    if isinstance(layers, str):
        layers = [layers]
    out = []
    for name in layers:
        if not isinstance(name, str):
            raise ArgumentError(f"layers: expected module names, got {name!r}")
        key = name[: -len(".weight")] if name not in modules and name.endswith(".weight") else name
        if key not in modules or key == "":
            known = [n for n in modules if n] + [f"{n}.weight" for n in prunable_modules(root)]
            raise ArgumentError(f"{what} has no module {name!r}{suggest(name, known)}")
        out.append((key, modules[key]))
    return out


def _rows(module: nn.Module, out: Any, conv: str, name: str) -> torch.Tensor:
    """A module output as a (samples, features) tensor."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ArgumentError(f"layer {name!r}: its output is a {type(out).__name__}, not a tensor")
    if not (out.is_floating_point() or out.is_complex()):
        out = out.float()
    if out.ndim < 2:
        return out.reshape(-1, 1)
    if out.ndim == 2:
        return out
    axis = -1 if isinstance(module, _LAST_AXIS) else 1
    moved = out.movedim(axis, -1)
    feats = moved.shape[-1]
    if conv == "mean":
        return moved.reshape(moved.shape[0], -1, feats).mean(dim=1)
    return moved.reshape(-1, feats)


class _Recorder:
    """Forward hooks that keep the latest output rows of each layer of one model."""

    def __init__(self, side: str, layers: list[tuple[str, nn.Module]], conv: str,
                 state: dict[str, Any]) -> None:
        self.side, self.conv, self.state = side, conv, state
        self.rows: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in layers]
        self.names = [n for n, _ in layers]

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if self.state["active"] != self.side:
                return
            if name in self.rows:
                raise ArgumentError(
                    f"layer {name!r} ran twice in one forward pass of model {self.side.upper()}; "
                    "its outputs cannot be paired (compare a module that runs once)"
                )
            self.rows[name] = _rows(module, out, self.conv, name).detach()
        return hook

    def take(self) -> dict[str, torch.Tensor]:
        missing = [n for n in self.names if n not in self.rows]
        if missing:
            raise ArgumentError(f"model {self.side.upper()}: layer {missing[0]!r} produced no "
                                "output (is it used in forward()?)")
        rows, self.rows = self.rows, {}
        return rows

    def close(self) -> None:
        for h in self.handles:
            h.remove()


# ---------------------------------------------------------------------------------- inputs


def _param_like(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _batches(inputs: Any, batch_size: int) -> tuple[Iterable[torch.Tensor], int | None]:
    """(batches, number of batches or None) for a tensor/array or an iterable of batches."""
    if isinstance(inputs, np.ndarray):
        if inputs.dtype.kind not in "biuf":
            raise ArgumentError(f"inputs: expected numbers, got dtype {inputs.dtype}")
        inputs = torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, torch.Tensor):
        if inputs.ndim == 0 or len(inputs) == 0:
            raise ArgumentError(f"inputs: expected a batch of samples, got shape "
                                f"{list(inputs.shape)}")
        if inputs.is_floating_point() and not torch.isfinite(inputs).all():
            raise ArgumentError("inputs: contains NaN or infinity")
        return inputs.split(batch_size), -(-len(inputs) // batch_size)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Iterable):
        raise ArgumentError(f"inputs: expected a tensor, an array or an iterable of batches "
                            f"(e.g. a DataLoader), got {type(inputs).__name__}")

    def gen() -> Iterator[torch.Tensor]:
        for i, item in enumerate(inputs):
            x = item[0] if isinstance(item, (tuple, list)) and item else item
            if isinstance(x, np.ndarray):
                x = torch.from_numpy(x)
            if not isinstance(x, torch.Tensor):
                raise ArgumentError(f"inputs batch {i}: expected a tensor or an (x, ...) tuple, "
                                    f"got {type(x).__name__}")
            yield x

    try:
        total = len(inputs)  # type: ignore[arg-type]
    except TypeError:
        total = None
    return gen(), total


def _progress(enabled: bool | None, total: int | None) -> Any:
    show = (sys.stderr.isatty() and (total is None or total > 20)) if enabled is None \
        else bool(enabled)
    if not show:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("layer similarity"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=True)


# ------------------------------------------------------------------------------ the entry


def layer_similarity(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: Any,
    *,
    method: str = "svcca",
    layers: Sequence[str] | str | None = None,
    batch_size: int = 256,
    conv: str = "mean",
    cross: bool = False,
    keep: int | float | None = 20,
    kernel: str = "linear",
    seed: int = 0,
    progress: bool | None = None,
) -> SimilarityTable | SimilarityMatrix:
    """Compare two models layer by layer on the same inputs.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The models (e.g. dense and pruned; masks applied with :func:`sparsegraph.apply_masks`
        or ``torch.nn.utils.prune`` are in effect). They may be the same object. Both run in
        eval mode under ``torch.no_grad()``; their train/eval modes, weights, buffers,
        ``requires_grad`` flags and gradients are as before afterwards, and the hooks removed.
    inputs : Tensor, ndarray or iterable of batches
        A batch ``(N, ...)`` cut into ``batch_size`` pieces, or batches (a ``DataLoader``;
        items may be ``(x, y)`` tuples, ``x`` is used), each fed to both models.
    method : {"svcca", "pwcca", "cka"}, default "svcca"
        :func:`~sparsegraph.metrics.similarity.svcca` (with ``keep``),
        :func:`~sparsegraph.metrics.similarity.pwcca`, or minibatch CKA
        (:class:`~sparsegraph.metrics.cka_stream.CKAAccumulator`, unbiased HSIC over
        minibatches of ``batch_size`` rows, Nguyen et al. 2021), which streams.
    layers : str or sequence of str, optional
        Module names to compare (``"features.3"``; a parameter name ``"features.3.weight"``
        means its module). Default: :func:`prunable_modules` of each model.
    batch_size : int, default 256
        Inputs per forward pass for a tensor input, and rows per CKA minibatch.
    conv : {"mean", "positions"}, default "mean"
        Average conv (and token) outputs over positions, or one sample per position (see the
        module docstring for why the mean is the default). For CKA the rows of each forward
        batch are shuffled (from ``seed``) before they are cut into minibatches, so that a
        minibatch mixes positions of every input in it.
    cross : bool, default False
        Compare every layer of A with every layer of B (the similarity matrix of Kornblith
        et al. and of the WACV 2020 figures) instead of equally named layers.
    keep : int, float or None, default 20
        SVCCA's directions (see :func:`~sparsegraph.metrics.similarity.svcca`).
    kernel : {"linear", "rbf"}, default "linear"
        CKA's kernel.
    seed : int, default 0
        Seed of the per-position shuffle (``conv="positions"`` with CKA).
    progress : bool, optional
        Show a progress bar on stderr; default: when stderr is a terminal and there are more
        than 20 batches.

    Returns
    -------
    SimilarityTable or SimilarityMatrix
        A table with one row per layer (``.to_dict()`` = ``{"method", "layers": [{"layer",
        "value", "features_a", "features_b", "samples"}]}``), or with ``cross=True`` the matrix.

    Raises
    ------
    ArgumentError
        Unknown method, conv mode or layer name (with the closest names); a layer of A missing
        in B; paired layers with different sample counts (``conv="positions"`` over different
        spatial sizes); a layer that does not run or runs twice per forward pass; too few
        samples for SVCCA/PWCCA (the message names the layer); bad inputs.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> a = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> b = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> x = torch.randn(500, 8)
    >>> same = layer_similarity(a, a, x, method="cka")
    >>> [round(r.value, 6) for r in same]
    [1.0, 1.0]
    >>> other = layer_similarity(a, b, x, method="svcca", keep=4)
    >>> other.layers, other.to_dict()["layers"][0]["samples"]
    (['0', '2'], 500)
    """
    check_choice(method, METHODS, "method")
    check_choice(conv, CONV_MODES, "conv")
    check_choice(kernel, KERNELS, "kernel")
    batch_size = check_count(batch_size, "batch_size", minimum=4 if method == "cka" else 1)
    seed = check_seed(seed)
    check_module(model_a, "model_a")
    check_module(model_b, "model_b")
    layers_a = _resolve_layers(model_a, layers, "model_a")
    if cross or layers is not None:
        layers_b = _resolve_layers(model_b, layers, "model_b")
    else:
        modules_b = dict(_unwrap(model_b).named_modules())
        missing = [n for n, _ in layers_a if n not in modules_b]
        if missing:
            raise ArgumentError(
                f"model_b has no module {missing[0]!r} (layer of model_a); compare models of "
                "one architecture, name the layers with layers=, or use cross=True"
            )
        layers_b = [(n, modules_b[n]) for n, _ in layers_a]
    pairs = ([(a, b) for a, _ in layers_a for b, _ in layers_b] if cross
             else [(a, a) for a, _ in layers_a])
    batches, total = _batches(inputs, batch_size)
    collect = _Collector(method, conv, pairs, batch_size, kernel, seed)
    state: dict[str, Any] = {"active": None}
    rec_a = _Recorder("a", layers_a, conv, state)
    rec_b = _Recorder("b", layers_b, conv, state)
    modes = {m: m.training for model in (model_a, model_b) for m in model.modules()}
    bar = _progress(progress, total)
    try:
        for model in (model_a, model_b):
            model.eval()
        task = bar.add_task("", total=total) if bar is not None else None
        if bar is not None:
            bar.start()
        with torch.no_grad():
            for x in batches:
                for side, model in (("a", model_a), ("b", model_b)):
                    dev, dtype = _param_like(model)
                    xb = x.to(dev, dtype) if x.is_floating_point() else x.to(dev)
                    state["active"] = side
                    model(xb)
                    state["active"] = None
                collect.add(rec_a.take(), rec_b.take(), len(x))
                if bar is not None:
                    bar.advance(task)
    finally:
        state["active"] = None
        if bar is not None:
            bar.stop()
        rec_a.close()
        rec_b.close()
        for m, training in modes.items():
            m.train(training)
    return collect.result(cross, keep, [n for n, _ in layers_a], [n for n, _ in layers_b])


class _Collector:
    """Keeps the activations (SVCCA/PWCCA) or streams them into CKA accumulators."""

    def __init__(self, method: str, conv: str, pairs: list[tuple[str, str]], batch_size: int,
                 kernel: str, seed: int) -> None:
        self.method, self.conv, self.pairs = method, conv, pairs
        self.batch_size, self.kernel = batch_size, kernel
        self.rng = np.random.default_rng(seed)
        self.kept: dict[str, list[np.ndarray]] = {}
        self.width: dict[str, int] = {}
        self.rows: dict[str, int] = {}  # rows per input of each stream
        self.samples: dict[str, int] = {}
        self.groups: dict[int, tuple[list[str], CKAAccumulator]] = {}

    def _check(self, streams: dict[str, torch.Tensor], inputs: int) -> None:
        for key, t in streams.items():
            per = t.shape[0] // max(inputs, 1)
            if key not in self.rows:
                self.rows[key], self.width[key] = per, int(t.shape[1])
            elif self.width[key] != t.shape[1] or self.rows[key] != per:
                raise ArgumentError(f"layer {key[2:]!r} of model {key[0].upper()} changed shape "
                                    "between batches")
        for a, b in self.pairs:
            if self.rows[f"a:{a}"] != self.rows[f"b:{b}"]:
                raise ArgumentError(
                    f"layers {a!r} (A) and {b!r} (B) give {self.rows[f'a:{a}']} and "
                    f"{self.rows[f'b:{b}']} samples per input with conv='positions': their "
                    "positions do not correspond; use conv='mean'"
                )

    def add(self, rows_a: dict[str, torch.Tensor], rows_b: dict[str, torch.Tensor],
            inputs: int) -> None:
        streams = {f"a:{k}": v for k, v in rows_a.items()}
        streams.update({f"b:{k}": v for k, v in rows_b.items()})
        self._check(streams, inputs)
        for key, t in streams.items():
            self.samples[key] = self.samples.get(key, 0) + int(t.shape[0])
        if self.method != "cka":
            for key, t in streams.items():
                self.kept.setdefault(key, []).append(t.float().cpu().numpy())
            return
        if not self.groups:
            used = {f"a:{a}" for a, _ in self.pairs} | {f"b:{b}" for _, b in self.pairs}
            by_rows: dict[int, list[str]] = {}
            for key in streams:
                if key in used:
                    by_rows.setdefault(self.rows[key], []).append(key)
            for per, names in by_rows.items():
                pairs = [(f"a:{a}", f"b:{b}") for a, b in self.pairs if f"a:{a}" in names]
                self.groups[per] = (names, CKAAccumulator(names, pairs, kernel=self.kernel,
                                                          batch_size=self.batch_size))
        for per, (names, acc) in self.groups.items():
            arrays = {n: streams[n].double().cpu().numpy() for n in names}
            if self.conv == "positions" and per > 1:
                order = self.rng.permutation(next(iter(arrays.values())).shape[0])
                arrays = {n: a[order] for n, a in arrays.items()}
            acc.update(arrays)

    def _value(self, a: str, b: str, keep: int | float | None) -> tuple[float, Any]:
        ka, kb = f"a:{a}", f"b:{b}"
        if self.method == "cka":
            acc = self.groups[self.rows[ka]][1]
            return acc.value(ka, kb), None
        x, y = np.concatenate(self.kept[ka]), np.concatenate(self.kept[kb])
        try:
            r = svcca(x, y, keep=keep) if self.method == "svcca" else pwcca(x, y)
        except ArgumentError as exc:
            raise ArgumentError(f"layers {a!r} (A) and {b!r} (B): {exc}") from None
        return r.value, r

    def result(self, cross: bool, keep: int | float | None, names_a: list[str],
               names_b: list[str]) -> SimilarityTable | SimilarityMatrix:
        if not self.samples:
            raise ArgumentError("inputs: no batch was given")
        for _, acc in self.groups.values():
            acc.finish()
        if cross:
            values = np.zeros((len(names_a), len(names_b)))
            for i, a in enumerate(names_a):
                for j, b in enumerate(names_b):
                    values[i, j] = self._value(a, b, keep)[0]
            values.setflags(write=False)
            return SimilarityMatrix(
                self.method, tuple(names_a), tuple(names_b), values,
                tuple(self.width[f"a:{a}"] for a in names_a),
                tuple(self.width[f"b:{b}"] for b in names_b),
                self.samples[f"a:{names_a[0]}"], self.conv)
        rows = []
        for a, b in self.pairs:
            value, detail = self._value(a, b, keep)
            samples = (self.groups[self.rows[f"a:{a}"]][1].samples if self.method == "cka"
                       else self.samples[f"a:{a}"])
            rows.append(LayerSimilarity(a, float(value), self.width[f"a:{a}"],
                                        self.width[f"b:{b}"], samples, detail))
        return SimilarityTable(self.method, tuple(rows), self.conv)
