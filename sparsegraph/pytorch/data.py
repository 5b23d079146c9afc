"""Labelled batches for the pruners that need data (SNIP, GraSP), from a name, a file or a factory.

:func:`load_data` turns one *source* into a list of ``(x, y)`` batches shaped for a model's
example input, which is what ``sparsegraph.prune(..., data=...)`` takes and what the command
line's ``--data`` gives it:

=====================  ===========================================================================
source                 batches
=====================  ===========================================================================
``"digits"``           scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes, bundled,
                       offline), shuffled with ``seed``, pixels scaled to [0, 1] and standardised,
                       resized (bilinear) to the example input's spatial size and repeated over
                       its channels; a flat input of ``F`` features gets the image resized to
                       ``sqrt(F) x sqrt(F)`` (``F == 64``: the raw pixels)
``"random"``           standard normal inputs of the example input's shape and labels uniform over
                       the model's classes, from ``torch.Generator().manual_seed(seed)``
``file.npz``           arrays ``x`` and ``y`` (or ``inputs``/``labels``, ``images``/``labels``,
                       ``data``/``targets``), read with ``numpy.load(allow_pickle=False)``
``file.pt``            a dict with those keys or an ``(x, y)`` pair of tensors, read with
                       ``torch.load(weights_only=True)``
``module:factory``     ``package.module:name`` or ``path/to/file.py:name``: a callable returning
                       (or an object that is) a Dataset of ``(x, y)`` items, an iterable of
                       ``(x, y)`` batches such as a DataLoader, or an ``(x, y)`` pair of tensors
=====================  ===========================================================================

Inputs must have the example input's shape without its batch axis, and labels must be integers
in ``[0, classes)`` (``classes`` is the size of the model's last output axis). Files are taken
in their stored order (the first ``batches * batch_size`` samples); a Dataset is shuffled with
``seed``; a DataLoader gives its own first ``batches`` batches. Loading a file never runs code
from it; a factory is the user's own code, imported like a MODEL factory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._args import check_count, check_seed
from .._imports import import_object, looks_like_import
from ..errors import ArgumentError

__all__ = ["DATA_SOURCES", "Batches", "load_data", "output_classes"]

#: The named sources (besides files and factories).
DATA_SOURCES = ("digits", "random")

_KEY_PAIRS = (("x", "y"), ("inputs", "labels"), ("images", "labels"), ("data", "targets"))


class Batches(list):
    """A list of ``(x, y)`` tensor pairs with a one-line :attr:`description` of where they came
    from (printed by the command line and recorded in mask-file metadata)."""

    description: str = ""

    @property
    def samples(self) -> int:
        """Total number of samples."""
        return sum(int(x.shape[0]) for x, _ in self)


def output_classes(model: nn.Module, example_input: torch.Tensor) -> int:
    """The size of the last axis of ``model(example_input)``: its number of classes.

    The model runs once in eval mode without gradients; its mode is restored.

    Raises
    ------
    ArgumentError
        If the output is not a ``(batch, classes)`` tensor.
    """
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(example_input)
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ArgumentError(
            f"data labels: cannot tell the number of classes from an output of shape {shape}; "
            "expected (batch, classes) logits, or pass {num_classes}",
            num_classes="num_classes=",
        )
    return int(out.shape[1])


def load_data(
    source: Any,
    example_input: torch.Tensor,
    *,
    model: nn.Module | None = None,
    num_classes: int | None = None,
    batches: int = 1,
    batch_size: int = 128,
    seed: int = 0,
) -> Batches:
    """``(x, y)`` batches for ``model`` from a named source, a file or a factory.

    Parameters
    ----------
    source : str or path
        ``"digits"``, ``"random"``, a ``.npz`` / ``.pt`` file, or ``module:factory`` (see the
        module docstring).
    example_input : torch.Tensor
        The model's example input: fixes the shape and dtype of ``x`` (batch axis excepted).
    model : nn.Module, optional
        Gives the number of classes (the last axis of its output) when ``num_classes`` is None.
    num_classes : int, optional
        Labels are in ``[0, num_classes)``.
    batches, batch_size : int, default 1 and 128
        How many batches of how many samples (a DataLoader's own batch size is kept).
    seed : int, default 0
        Shuffles ``digits`` and Datasets, draws ``random``.

    Returns
    -------
    Batches
        A list of ``(x, y)`` pairs (``x`` float, ``y`` int64) with ``.description``.

    Raises
    ------
    ArgumentError
        For an unknown source, a file that is missing or holds no ``x``/``y``, inputs of
        another shape, labels out of range, too few samples, or scikit-learn missing for
        ``digits``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    >>> data = load_data("random", torch.zeros(1, 3, 4), model=model, batches=2, batch_size=5)
    >>> [tuple(x.shape) for x, _ in data], int(max(y.max() for _, y in data)) < 3
    ([(5, 3, 4), (5, 3, 4)], True)
    >>> data.description
    'random: 2 batches of 5 (standard normal inputs, labels uniform over 3 classes; seed 0)'
    """
    batches = check_count(batches, "batches")
    batch_size = check_count(batch_size, "batch_size")
    seed = check_seed(seed)
    if not isinstance(example_input, torch.Tensor):
        raise ArgumentError("example_input: data is shaped after one example input tensor")
    if num_classes is None:
        if model is None:
            raise ArgumentError("data labels: pass model= or num_classes=")
        num_classes = output_classes(model, example_input)
    classes = check_count(num_classes, "num_classes", minimum=1)
    shape = tuple(example_input.shape[1:])
    dtype = example_input.dtype if example_input.is_floating_point() else torch.float32
    text = str(source) if isinstance(source, (str, Path)) else None
    if text == "digits":
        return _digits(shape, dtype, classes, batches, batch_size, seed)
    if text == "random":
        return _random(shape, dtype, classes, batches, batch_size, seed)
    if text is not None and Path(text).suffix.lower() in (".npz", ".pt", ".pth"):
        x, y = _read_file(Path(text))
        return _from_arrays(x, y, shape, dtype, classes, batches, batch_size, text)
    if text is not None and looks_like_import(text):
        return _from_factory(text, shape, dtype, classes, batches, batch_size, seed)
    raise ArgumentError(
        f"data: expected 'digits', 'random', a .npz or .pt file, or module:factory, got "
        f"{source!r}"
    )


# ------------------------------------------------------------------------------- named sources


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'es' if word.endswith('ch') and n != 1 else ('s' if n != 1 else '')}"


def _split(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[tuple[torch.Tensor, ...]]:
    return list(zip(x.split(batch_size), y.split(batch_size), strict=True))


def _digits_images(shape: tuple[int, ...], images: torch.Tensor) -> tuple[torch.Tensor, str]:
    """``(N, 8, 8)`` images shaped as ``(N, *shape)`` and a note on how."""
    n = images.shape[0]
    if len(shape) == 3:
        c, h, w = shape
        out = F.interpolate(images[:, None], size=(h, w), mode="bilinear", align_corners=False)
        return out.expand(n, c, h, w).contiguous(), (
            f"8x8 images resized to {h}x{w}, {_plural(c, 'channel')}")
    if len(shape) == 1:
        (f,) = shape
        if f == 64:
            return images.reshape(n, 64), "raw 8x8 pixels"
        side = math.isqrt(f)
        if side * side == f:
            out = F.interpolate(images[:, None], size=(side, side), mode="bilinear",
                                align_corners=False)
            return out.reshape(n, f), f"8x8 images resized to {side}x{side}, flattened"
    if len(shape) == 2:
        c, length = shape
        flat = F.interpolate(images.reshape(n, 1, 64), size=length, mode="linear",
                             align_corners=False)
        return flat.expand(n, c, length).contiguous(), (
            f"64 pixels resampled to length {length}, {_plural(c, 'channel')}")
    raise ArgumentError(
        f"data 'digits': cannot shape 8x8 images as inputs of shape {list(shape)} (images "
        "(C, H, W), sequences (C, L) or square numbers of features); give a file or a factory"
    )


def _digits(shape: tuple[int, ...], dtype: torch.dtype, classes: int, batches: int,
            batch_size: int, seed: int) -> Batches:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ArgumentError(
            "data 'digits' is scikit-learn's bundled dataset: pip install scikit-learn (or "
            "'sparsegraph-pai[examples]')"
        ) from None
    pixels, labels = load_digits(return_X_y=True)
    keep = labels < classes
    pixels, labels = pixels[keep] / 16.0, labels[keep]
    need = batches * batch_size
    if need > len(labels):
        raise ArgumentError(
            f"data 'digits': {batches} x {batch_size} = {need:,} samples asked for, but digits "
            f"has {len(labels):,} with labels below {classes}; use fewer or smaller batches"
        )
    order = np.random.default_rng(seed).permutation(len(labels))[:need]
    pixels = (pixels - pixels.mean()) / pixels.std()
    images = torch.from_numpy(pixels[order].reshape(-1, 8, 8)).to(torch.float64)
    x, how = _digits_images(shape, images)
    y = torch.from_numpy(labels[order].astype(np.int64))
    out = Batches(_split(x.to(dtype), y, batch_size))
    out.description = (f"digits: {_plural(batches, 'batch')} of {batch_size} ({how}; "
                       f"shuffled with seed {seed})")
    return out


def _random(shape: tuple[int, ...], dtype: torch.dtype, classes: int, batches: int,
            batch_size: int, seed: int) -> Batches:
    gen = torch.Generator().manual_seed(seed)
    out = Batches()
    for _ in range(batches):
        x = torch.randn((batch_size, *shape), generator=gen, dtype=torch.float32).to(dtype)
        y = torch.randint(classes, (batch_size,), generator=gen, dtype=torch.int64)
        out.append((x, y))
    out.description = (f"random: {_plural(batches, 'batch')} of {batch_size} (standard normal "
                       f"inputs, labels uniform over {classes} classes; seed {seed})")
    return out


# ------------------------------------------------------------------------ files and factories


def _pick(table: Any, where: str) -> tuple[Any, Any]:
    keys = set(table.keys() if hasattr(table, "keys") else table)
    for kx, ky in _KEY_PAIRS:
        if kx in keys and ky in keys:
            return table[kx], table[ky]
    raise ArgumentError(
        f"data {where}: expected arrays x and y (or inputs/labels, images/labels, data/targets), "
        f"found {sorted(map(str, keys))}"
    )


def _read_file(path: Path) -> tuple[Any, Any]:
    if not path.is_file():
        raise ArgumentError(f"data: file {str(path)!r} does not exist")
    where = repr(str(path))
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as table:
                return tuple(np.array(a) for a in _pick(table, where))  # type: ignore[return-value]
        except ArgumentError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt or pickled file is one clear error
            raise ArgumentError(f"data {where}: cannot read it as .npz ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything weights_only refuses or cannot parse
        raise ArgumentError(
            f"data {where}: cannot read it as plain tensors (torch.load(weights_only=True): "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return obj[0], obj[1]
    if isinstance(obj, dict):
        return _pick(obj, where)
    raise ArgumentError(f"data {where}: expected a dict with x and y or an (x, y) pair, got "
                        f"{type(obj).__name__}")


def _check_pair(x: Any, y: Any, shape: tuple[int, ...], dtype: torch.dtype, classes: int,
                where: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        xt = torch.as_tensor(x)
        yt = torch.as_tensor(y)
    except Exception as exc:  # noqa: BLE001
        raise ArgumentError(f"data {where}: inputs and labels must be arrays ({exc})") from None
    if tuple(xt.shape[1:]) != shape:
        raise ArgumentError(
            f"data {where}: inputs of shape {list(xt.shape[1:])} (after the batch axis), the "
            f"model takes {list(shape)}"
        )
    if not (xt.is_floating_point() or xt.dtype in (torch.uint8, torch.int64, torch.int32)):
        raise ArgumentError(f"data {where}: inputs must be numbers, got dtype {xt.dtype}")
    if not torch.isfinite(xt.to(torch.float64)).all():
        raise ArgumentError(f"data {where}: inputs contain NaN or infinity")
    if yt.dim() != 1 or yt.shape[0] != xt.shape[0]:
        raise ArgumentError(f"data {where}: expected one label per input ({xt.shape[0]}), got "
                            f"labels of shape {list(yt.shape)}")
    if yt.is_floating_point() or yt.dtype == torch.bool:
        if yt.is_floating_point() and bool((yt != yt.round()).any()):
            raise ArgumentError(f"data {where}: labels must be integer class indices")
        yt = yt.to(torch.int64)
    yt = yt.to(torch.int64)
    if yt.numel() and (int(yt.min()) < 0 or int(yt.max()) >= classes):
        raise ArgumentError(f"data {where}: labels must be in [0, {classes}) for a model with "
                            f"{classes} outputs, found {int(yt.min())}..{int(yt.max())}")
    return xt.to(dtype), yt


def _from_arrays(x: Any, y: Any, shape: tuple[int, ...], dtype: torch.dtype, classes: int,
                 batches: int, batch_size: int, where: str) -> Batches:
    xt, yt = _check_pair(x, y, shape, dtype, classes, repr(where))
    need = batches * batch_size
    if xt.shape[0] < need:
        raise ArgumentError(
            f"data {where!r}: {batches} x {batch_size} = {need:,} samples asked for, the file "
            f"holds {xt.shape[0]:,}; use fewer or smaller batches"
        )
    out = Batches(_split(xt[:need], yt[:need], batch_size))
    out.description = (f"{Path(where).name}: {_plural(batches, 'batch')} of {batch_size} "
                       f"(the first {need:,} of {xt.shape[0]:,} samples)")
    return out


def _from_factory(spec: str, shape: tuple[int, ...], dtype: torch.dtype, classes: int,
                  batches: int, batch_size: int, seed: int) -> Batches:
    obj = import_object(spec, "data")
    if callable(obj) and not isinstance(obj, (torch.Tensor, nn.Module)) and not (
            hasattr(obj, "__getitem__") and hasattr(obj, "__len__")):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - a user's factory can raise anything
            raise ArgumentError(f"data factory {spec!r} raised {type(exc).__name__}: {exc}"
                                ) from exc
    where = f"factory {spec!r}"
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and all(
            isinstance(t, (torch.Tensor, np.ndarray)) for t in obj):
        return _from_arrays(obj[0], obj[1], shape, dtype, classes, batches, batch_size, spec)
    out = Batches()
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not hasattr(obj, "batch_size"):
        n = len(obj)
        need = batches * batch_size
        if n < need:
            raise ArgumentError(f"data {where}: {need:,} samples asked for, the dataset has {n:,}")
        order = np.random.default_rng(seed).permutation(n)[:need].tolist()
        items = [obj[i] for i in order]
        if not all(isinstance(it, (tuple, list)) and len(it) >= 2 for it in items[:1]):
            raise ArgumentError(f"data {where}: expected (x, y) items, got "
                                f"{type(items[0]).__name__}")
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        y = torch.as_tensor([int(it[1]) for it in items])
        xt, yt = _check_pair(x, y, shape, dtype, classes, where)
        out.extend(_split(xt, yt, batch_size))
        out.description = (f"{spec}: {_plural(batches, 'batch')} of {batch_size} from a dataset "
                           f"of {n:,} (shuffled with seed {seed})")
        return out
    try:
        iterator = iter(obj)
    except TypeError:
        raise ArgumentError(f"data {where}: returned {type(obj).__name__}, expected a Dataset, "
                            "an iterable of (x, y) batches or an (x, y) pair") from None
    for i, item in enumerate(iterator):
        if i >= batches:
            break
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise ArgumentError(f"data {where}: batch {i} is a {type(item).__name__}, expected "
                                "an (x, y) pair")
        out.append(_check_pair(item[0], item[1], shape, dtype, classes, f"{where} batch {i}"))
    if len(out) < batches:
        raise ArgumentError(f"data {where}: {batches} batches asked for, it gave {len(out)}")
    out.description = (f"{spec}: the first {_plural(batches, 'batch')} of its loader "
                       f"({out.samples:,} samples)")
    return out
