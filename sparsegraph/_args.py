"""The one door for what users pass: masks, densities, seeds, counts, choices, layer selections.

Every public function and the command line convert and check their arguments here, so each
rule is written once and every kernel behind the door sees only canonical values: masks are
C-contiguous ``bool`` numpy arrays whose bytes are exactly 0 or 1, densities are floats in
(0, 1], seeds are non-negative Python ints. The errors name the argument (or the layer), what was
expected and what was received.
"""

from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ArgumentError, MaskError, NetworkError, QuotaError

if TYPE_CHECKING:  # pragma: no cover
    from .graph.network import Network

__all__ = [
    "as_bool_mask",
    "check_choice",
    "check_count",
    "check_density",
    "check_masks",
    "check_module",
    "check_network",
    "check_seed",
    "dense_layers",
    "select_layers",
    "suggest",
    "to_finite",
    "to_numpy",
]

def suggest(name: str, names: Iterable[str]) -> str:
    """``"; did you mean 'a', 'b'?"`` for the names closest to ``name``, or ``""``."""
    close = difflib.get_close_matches(str(name), list(names), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


# --------------------------------------------------------------------------------------- arrays


def to_numpy(value: Any, what: str) -> np.ndarray:
    """Any array-like (numpy, torch tensor, nested lists) as a numpy array.

    Torch tensors are detached and moved to the CPU; dtypes numpy lacks (bfloat16, float8) are
    widened to float32, quantized tensors dequantized and sparse tensors made dense. ``what``
    names the value in errors.

    Raises
    ------
    MaskError
        If the value cannot be read as an array (a meta tensor, an object that is not numeric).
    """
    if hasattr(value, "detach") and hasattr(value, "layout"):  # a torch tensor; torch not imported
        t = value.detach()
        if getattr(t, "is_meta", False) or str(t.device) == "meta":
            raise MaskError(f"{what}: a tensor on the meta device holds no values")
        if str(t.layout) != "torch.strided":
            try:
                t = t.to_dense()
            except Exception as exc:  # noqa: BLE001 - any layout torch cannot densify
                raise MaskError(f"{what}: cannot read a {t.layout} tensor ({exc})") from None
        if t.dtype.is_complex:
            raise MaskError(f"{what}: expected 0/1 values, got dtype {t.dtype}")
        if t.is_quantized:
            t = t.dequantize()
        t = t.cpu()
        if str(t.dtype) == "torch.bfloat16" or "float8" in str(t.dtype):
            t = t.float()
        try:
            return t.numpy()
        except Exception:  # noqa: BLE001 - a dtype numpy lacks: read its values as float32
            try:
                return t.float().numpy()
            except Exception as exc:  # noqa: BLE001
                raise MaskError(
                    f"{what}: cannot read a tensor of dtype {t.dtype} ({exc})"
                ) from None
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is a mask error
        raise MaskError(f"{what}: cannot be read as an array ({exc})") from None


def as_bool_mask(value: Any, name: str, *, raw_bool: bool = False) -> np.ndarray:
    """One mask value as a C-contiguous bool array with 0/1 bytes, whatever its shape.

    The single rule for mask values: numpy arrays, torch tensors or nested lists holding only
    0 and 1 (bool, integer or float dtype); ``name`` is the layer named in the error. A bool
    array whose bytes are not all 0 or 1 (bytes written through a ``uint8`` view, a crafted
    file) is normalised: any nonzero byte is True.

    With ``raw_bool=True`` a bool array is returned (C-contiguous) without that scan of its
    bytes, for a caller whose kernels read every nonzero byte as True and write only 0/1 (the
    reachability walk, :class:`sparsegraph.graph.walker.BitsWalk`): the scan would cost half a
    read of the masks that those kernels make anyway.

    Raises
    ------
    MaskError
        For NaN, infinity, values other than 0 and 1, or a non-numeric dtype.

    Examples
    --------
    >>> as_bool_mask([[1, 0], [0.0, 1.0]], "fc.weight").tolist()
    [[True, False], [False, True]]
    >>> as_bool_mask([2, 0], "fc.weight")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.MaskError: mask 'fc.weight': expected only 0 and 1, found 2 ...
    """
    arr = to_numpy(value, f"mask {name!r}")
    if arr.dtype == np.bool_:
        arr = np.ascontiguousarray(arr)
        if raw_bool:
            return arr
        raw = arr.view(np.uint8)
        if raw.size and raw.max() > 1:
            arr = raw != 0  # canonical bytes
        return arr
    if arr.dtype.kind not in "biuf":
        raise MaskError(f"mask {name!r}: expected 0/1 values, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise MaskError(f"mask {name!r}: contains NaN; a mask holds only 0 and 1")
        if np.isinf(arr).any():
            raise MaskError(f"mask {name!r}: contains infinity; a mask holds only 0 and 1")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        found = arr[bad].flat[0]
        raise MaskError(
            f"mask {name!r}: expected only 0 and 1, found {found.item()!r} "
            f"({int(bad.sum())} such values); threshold scores into a mask first"
        )
    return np.ascontiguousarray(arr != 0)


def check_network(net: Any, what: str = "net", *, weights: bool = False) -> Network:
    """``net`` when it is a :class:`~sparsegraph.Network`.

    A model name or an ``nn.Module`` is not resolved here: the network depends on the example
    input (spatial sizes decide which convolution taps are effective), so the caller says it
    explicitly with :func:`sparsegraph.trace`.

    Parameters
    ----------
    net : Network
        The value to check.
    what : str, default "net"
        The argument's name in error messages.
    weights : bool, default False
        Also refuse a Network without a single prunable weight (no layer, or only zero-size
        ones), for the functions whose numbers are fractions of the prunable weights
        (densities, compressions).

    Raises
    ------
    ArgumentError
        For anything that is not a Network, saying how to build one.
    NetworkError
        With ``weights=True``, for a Network without prunable weights.

    Examples
    --------
    >>> check_network("lenet300")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.ArgumentError: net: expected a Network from sparsegraph.trace(...), got ...
    """
    from .graph.network import Network

    if isinstance(net, Network):
        if weights and net.params == 0:
            held = (f"only zero-size layers ({', '.join(net.names)})" if net.layers
                    else "no prunable layer")
            raise NetworkError(
                f"{what}: network {net.name!r} has no prunable weights ({held}); densities and "
                "compressions are fractions of them"
            )
        return net
    if isinstance(net, str):
        how = (f"for a model name build and trace it: net = sg.trace(*sg.build_model({net!r})) "
               "(or sparsegraph.pytorch.models.resolve_model for path/to/file.py:factory)")
    elif hasattr(net, "named_parameters"):
        how = "trace the module first: net = sg.trace(model, example_input)"
    else:
        how = "build it with net = sg.trace(model, example_input)"
    raise ArgumentError(
        f"{what}: expected a Network from sparsegraph.trace(...), got "
        f"{type(net).__name__} {str(net)[:40]!r}; {how}"
    )


def check_module(model: Any, what: str = "model", *, expected: str = "a torch.nn.Module") -> Any:
    """``model`` when it is a ``torch.nn.Module``.

    ``expected`` names what the argument may be, for functions that also take something else
    (a model name, a Network) and have dispatched those already.

    Raises
    ------
    ArgumentError
        For anything else; a traced Network is told that it holds no weights.

    Examples
    --------
    >>> check_module(None)
    Traceback (most recent call last):
    ...
    sparsegraph.errors.ArgumentError: model: expected a torch.nn.Module, got NoneType
    """
    from torch import nn

    if isinstance(model, nn.Module):
        return model
    from .graph.network import Network

    hint = ("; a traced Network holds no weights: pass the nn.Module itself"
            if isinstance(model, Network) else "")
    raise ArgumentError(f"{what}: expected {expected}, got {type(model).__name__}{hint}")


def to_finite(value: Any, what: str) -> np.ndarray:
    """A real-valued array (weights, scores) as float64 numpy, every value finite.

    Raises
    ------
    MaskError
        For a value that is not a real numeric array, NaN or infinity (``what`` names it).

    Examples
    --------
    >>> to_finite([1, 2.5], "weights 'fc.weight'").dtype
    dtype('float64')
    >>> to_finite([1.0, float("nan")], "weights 'fc.weight'")
    Traceback (most recent call last):
    ...
    sparsegraph.errors.MaskError: weights 'fc.weight': contains NaN (1 non-finite values)
    """
    arr = to_numpy(value, what)
    if arr.dtype.kind not in "biuf":
        raise MaskError(f"{what}: expected real numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        kind = "NaN" if np.isnan(arr).any() else "infinity"
        raise MaskError(f"{what}: contains {kind} ({int(bad.sum())} non-finite values)")
    return arr


def check_masks(
    net: Network, masks: Mapping[str, Any], *, fill_missing: bool = True, what: str = "masks",
    raw_bool: bool = False,
) -> dict[str, np.ndarray]:
    """Validate masks against a network and return them in canonical form.

    Afterwards each value is a C-contiguous ``bool`` numpy array of its layer's weight shape
    with 0/1 bytes (with ``raw_bool``, bool inputs keep their bytes: see :func:`as_bool_mask`).

    Parameters
    ----------
    net : Network
        The network the masks are for.
    masks : mapping of str to array-like
        Keyed by parameter name; numpy arrays, torch tensors or nested lists with values 0/1
        (bool, integer or float dtype).
    fill_missing : bool, default True
        Give layers without a key a dense (all-True) mask. When False, missing layers are
        simply absent from the result.
    what : str, default "masks"
        The argument's name in error messages.
    raw_bool : bool, default False
        Leave the bytes of bool arrays unscanned (:func:`as_bool_mask`); only for callers whose
        kernels read any nonzero byte as True and write only 0/1.

    Returns
    -------
    dict of str to ndarray of bool
        In network layer order.

    Raises
    ------
    MaskError
        For a value that is not a mapping, an unknown key (with the closest layer names), a
        wrong shape, NaN, infinity or values other than 0 and 1.
    ArgumentError
        If ``net`` is not a Network (:func:`check_network`).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (2, 3), 3, 2),),
    ...     nodes=(Node(0, "input", (), (3,)),
    ...            Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> check_masks(net, {"fc.weight": [[1, 0, 1], [0, 0, 1]]})["fc.weight"].sum()
    np.int64(3)
    >>> check_masks(net, {"fc.wieght": np.ones((2, 3))})
    Traceback (most recent call last):
    ...
    sparsegraph.errors.MaskError: unknown layer 'fc.wieght'; did you mean 'fc.weight'?
    """
    check_network(net)
    if not isinstance(masks, Mapping):
        raise MaskError(
            f"{what} must be a mapping of layer name to array, got {type(masks).__name__}"
        )
    names = net.names
    known = set(names)
    unknown = [k for k in masks if k not in known]
    if unknown:
        key = unknown[0]
        more = f" (and {len(unknown) - 1} more unknown keys)" if len(unknown) > 1 else ""
        raise MaskError(f"unknown layer {key!r}{suggest(str(key), names)}{more}")
    out: dict[str, np.ndarray] = {}
    for layer in net.layers:
        if layer.name not in masks:
            if fill_missing:
                out[layer.name] = np.ones(layer.shape, dtype=bool)
            continue
        value = masks[layer.name]
        shape = getattr(value, "shape", None)  # checked before any conversion or copy
        if shape is not None and tuple(shape) != layer.shape:
            raise MaskError(
                f"mask {layer.name!r}: expected shape {list(layer.shape)}, got {list(shape)}"
            )
        arr = as_bool_mask(value, layer.name, raw_bool=raw_bool)
        if arr.shape != layer.shape:
            raise MaskError(
                f"mask {layer.name!r}: expected shape {list(layer.shape)}, got {list(arr.shape)}"
            )
        out[layer.name] = arr
    return out


def dense_layers(net: Network, masks: Mapping[str, Any]) -> list[str]:
    """Names of the layers that ``masks`` has no key for (they are taken as dense)."""
    return [name for name in net.names if name not in masks]


# ----------------------------------------------------------------------------------- scalars


def check_density(value: Any, what: str = "density") -> float:
    """A density (the fraction of weights kept) as a float in (0, 1].

    Raises
    ------
    QuotaError
        For a non-number, NaN, or a value outside (0, 1] (with a hint when it looks like a
        sparsity or a percentage).

    Examples
    --------
    >>> check_density(0.05)
    0.05
    >>> check_density(5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.QuotaError: density: expected a number in (0, 1], got 5 (a density is ...
    """
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise QuotaError(f"{what}: expected a number in (0, 1], got {value!r}")
    d = float(value)
    if math.isnan(d):
        raise QuotaError(f"{what}: expected a number in (0, 1], got NaN")
    if not 0.0 < d <= 1.0:
        hint = " (a density is the fraction kept; sparsity = 1 - density)" if d > 1 else ""
        raise QuotaError(f"{what}: expected a number in (0, 1], got {value!r}{hint}")
    return d


def check_seed(value: Any, what: str = "seed") -> int:
    """A seed as a non-negative Python int (numpy integers accepted).

    Raises
    ------
    ArgumentError
        For a bool, a non-integer or a negative value.
    """
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or value < 0:
        raise ArgumentError(f"{what}: expected a non-negative integer, got {value!r}")
    return int(value)


def check_count(value: Any, what: str, *, minimum: int = 1) -> int:
    """An integer count ``>= minimum`` as a Python int.

    Raises
    ------
    ArgumentError
        For a bool, a non-integer or a value below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)) or value < minimum:
        raise ArgumentError(f"{what}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, choices: Sequence[str], what: str) -> str:
    """``value`` when it is one of ``choices``.

    Raises
    ------
    ArgumentError
        Otherwise, naming the choices and the closest one.
    """
    if not isinstance(value, str) or value not in choices:
        hint = suggest(str(value), choices) if isinstance(value, str) else ""
        raise ArgumentError(
            f"{what}: expected one of {', '.join(map(repr, choices))}, got {value!r}{hint}"
        )
    return value


# ------------------------------------------------------------------------------ layer choice


def select_layers(net: Network, patterns: Iterable[str] | str | None, *, what: str) -> list[str]:
    """Names of the layers matched by exact names or glob patterns, in network order.

    Parameters
    ----------
    net : Network
        The network.
    patterns : str, iterable of str, or None
        Layer names (``"features.0.weight"``) or ``fnmatch`` globs (``"features.*"``).
    what : str
        What the list is for, named in the error message (e.g. ``"dense"``).

    Raises
    ------
    MaskError
        If a pattern matches no layer (with the closest names), or is not a string.
    """
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    names = net.names
    chosen: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise MaskError(f"{what} layers: expected names or patterns, got {pattern!r}")
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise MaskError(
                f"{what} layer {pattern!r} matches no prunable layer{suggest(pattern, names)}"
            )
        chosen.update(hits)
    return [n for n in names if n in chosen]
