"""Mask files: save and load masks safely, in sparsegraph's format and the ones users already have.

Formats (``format=`` of :func:`save_masks`; :func:`load_masks` decides from the suffix and a
full parse of the header, never from one byte: a ``.safetensors``, ``.npz`` or ``.pt``/``.pth``
file must hold that format, any other name is recognised by parsing):

``"safetensors"`` (the default; ``.safetensors`` or no suffix)
    One ``bool`` tensor per prunable weight, keyed by its parameter name, and the metadata as
    JSON under the header key ``"sparsegraph"``. Reading it runs no code.
``"npz"`` (``.npz``)
    One ``bool`` array per weight, plus the metadata as a ``uint8`` array of UTF-8 JSON under
    ``"__metadata__"``; written without pickles and read with ``allow_pickle=False``.
``"torch"`` (``.pt`` / ``.pth``)
    ``torch.save`` of ``{name: bool tensor, ..., "__metadata__": json_string}``.
``"torch_prune"``
    A ``torch.nn.utils.prune`` style state dict: ``{"<module>.weight_mask": float32 tensor}``,
    what ``model.state_dict()`` holds for the masks of a model pruned with ``torch.nn.utils.prune``
    (the ``weight_orig``, bias and other entries of such a state dict are ignored on reading).
``"open_lth"``
    open_lth's ``mask.pth`` (``{name: int32 tensor}``) and ``sparsity_report.json``
    (``{"total": float, "unpruned": float}``) in one directory; ``path`` is that directory or
    the ``mask.pth`` inside it. On reading, a report beside ``mask.pth`` must agree with it.
``"ao_sparsifier"``
    The state of a ``torch.ao.pruning`` sparsifier: ``{"state": {fqn: {"mask": float32 tensor}},
    "groups": [{"tensor_fqn": fqn, "sparsity_level": s}, ...]}``, loadable with
    ``sparsifier.load_state_dict`` after ``sparsifier.prepare(model, config)``.

Torch files are only ever read with ``torch.load(weights_only=True)``: a pickle that holds
anything other than tensors and plain containers (a hostile file) is refused with
:class:`~sparsegraph.errors.MaskFileError`, never executed. ``torch.ao.pruning``'s own
``sparsifier.state_dict()`` holds a ``collections.defaultdict``, which ``weights_only`` loading
cannot rebuild; save ``{"state": dict(sd["state"]), "groups": sd["groups"]}`` instead, or convert
the live object with :func:`from_sparsifier_state`.

Keys are the exact ``model.named_parameters()`` names; the prefixes ``module.``
(``DataParallel``/``DistributedDataParallel``) and ``_orig_mod.`` (``torch.compile``) are stripped
on reading, as are the ``_mask`` suffix of ``torch.nn.utils.prune`` buffers and the
``parametrizations.<p>.<i>.mask`` path of parametrized weights. Writes are atomic: a temporary
file in the target directory, flushed and fsynced, then renamed over the target, so an
interrupted save leaves no partial file; an existing file is kept unless ``overwrite=True``.

Reading is header first (:mod:`._readers`): names, dtypes, shapes and byte ranges are checked
against the file and against the model (``net=``) or a documented maximum before any tensor
data is read or decompressed, within the limits of :mod:`._limits`; values come back with
bytes 0 and 1 only. What a file may hold and what is refused is listed in the README's
"Mask files" section.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._args import as_bool_mask, check_masks, check_network
from .._atomic import atomic_write
from ..errors import MaskError, MaskFileError
from ..graph.network import Network
from ..registry import MASK_FORMATS
from ._headers import META_KEY, ST_META_KEY
from ._keys import collect, normalize_key, prune_tensors, sparsifier_tensors
from ._limits import MAX_ELEMENTS, q
from ._readers import read_file

__all__ = [
    "FORMATS",
    "MAX_ELEMENTS",
    "normalize_key",
    "save_masks",
    "load_masks",
    "read_metadata",
    "resolve_format",
    "from_prune_state_dict",
    "to_prune_state_dict",
    "from_sparsifier_state",
    "to_sparsifier_state",
]

FORMATS = MASK_FORMATS

FORMAT_TAG = "sparsegraph.masks"
FORMAT_VERSION = 1
_SUFFIX_FORMAT = {".safetensors": "safetensors", "": "safetensors", ".npz": "npz",
                  ".pt": "torch", ".pth": "torch"}
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

PathLike = str | os.PathLike


_q = q


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None], overwrite: bool) -> None:
    atomic_write(path, write, overwrite=overwrite, error=MaskFileError)


# ----------------------------------------------------------------------------------- values


def _canonical(masks: Mapping[str, Any], net: Network | None) -> dict[str, np.ndarray]:
    if not isinstance(masks, Mapping):
        raise MaskError(
            f"masks must be a mapping of layer name to array, got {type(masks).__name__}"
        )
    if net is not None:
        return check_masks(net, masks)
    out = {}
    for key, value in masks.items():
        if not isinstance(key, str) or not key or key == META_KEY:
            raise MaskError(f"mask keys must be parameter names, got {key!r}")
        out[key] = as_bool_mask(value, key)
    return out


# --------------------------------------------------------------------------------- metadata


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    raise MaskFileError(
        f"metadata {where!r}: expected JSON-like values (str, number, bool, list, dict), "
        f"got {type(value).__name__}"
    )


def _build_metadata(
    masks: Mapping[str, np.ndarray], net: Network | None, metadata: Mapping[str, Any] | None
) -> dict[str, Any]:
    from .. import __version__

    meta: dict[str, Any] = {}
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise MaskFileError(f"metadata must be a mapping, got {type(metadata).__name__}")
        for key, value in metadata.items():
            meta[str(key)] = _jsonable(value, str(key))
    params = int(sum(m.size for m in masks.values()))
    kept = int(sum(int(np.count_nonzero(m)) for m in masks.values()))
    meta.update(
        {
            "format": FORMAT_TAG,
            "format_version": FORMAT_VERSION,
            "sparsegraph_version": __version__,
            "params": params,
            "kept": kept,
            "layer_names": list(masks),
            "layer_shapes": [list(m.shape) for m in masks.values()],
        }
    )
    if net is not None:
        meta["fingerprint"] = net.fingerprint()
        meta["network"] = net.name
    return meta


def _meta_json(meta: Mapping[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)


# ---------------------------------------------------------------------------------- writers


def _write_safetensors(fh: IO[bytes], masks: Mapping[str, np.ndarray], meta: Mapping) -> None:
    from safetensors.numpy import save

    fh.write(save(dict(masks), metadata={ST_META_KEY: _meta_json(meta)}))


def _write_npz(fh: IO[bytes], masks: Mapping[str, np.ndarray], meta: Mapping) -> None:
    # written by hand with a fixed timestamp, so the same masks give the same bytes
    arrays = dict(masks)
    arrays[META_KEY] = np.frombuffer(_meta_json(meta).encode(), dtype=np.uint8)
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, buf.getvalue())


def _torch_save(fh: IO[bytes], obj: Any) -> None:
    import torch

    torch.save(obj, fh)


def to_prune_state_dict(masks: Mapping[str, Any]) -> dict[str, Any]:
    """Masks as a ``torch.nn.utils.prune`` state dict: ``{"<module>.weight_mask": float32}``.

    Parameters
    ----------
    masks : mapping of str to array-like
        Keyed by parameter name (``"fc.weight"``).

    Returns
    -------
    dict of str to torch.Tensor
        ``torch.nn.utils.prune.custom_from_mask(module, "weight", sd[f"{name}_mask"])`` re-applies
        one.

    Examples
    --------
    >>> sd = to_prune_state_dict({"fc.weight": [[1, 0], [0, 1]]})
    >>> list(sd), sd["fc.weight_mask"].dtype
    (['fc.weight_mask'], torch.float32)
    """
    import torch

    return {
        f"{name}_mask": torch.from_numpy(arr.astype(np.float32))
        for name, arr in _canonical(masks, None).items()
    }


def from_prune_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Masks from a ``torch.nn.utils.prune`` state dict (its ``*_mask`` entries).

    Parameters
    ----------
    state_dict : mapping
        E.g. ``model.state_dict()`` of a model pruned with ``torch.nn.utils.prune``; entries
        other than ``<module>.<param>_mask`` (``weight_orig``, biases, ...) are ignored.

    Returns
    -------
    dict of str to ndarray of bool
        Keyed by parameter name (``"fc.weight"``).

    Raises
    ------
    MaskFileError
        If there is no ``*_mask`` entry, or two entries name the same parameter.
    MaskError
        If a mask holds values other than 0 and 1.
    """
    return collect(prune_tensors(state_dict))


def to_sparsifier_state(masks: Mapping[str, Any]) -> dict[str, Any]:
    """Masks as a ``torch.nn.utils.ao.pruning`` sparsifier state.

    Parameters
    ----------
    masks : mapping of str to array-like
        Keyed by parameter name.

    Returns
    -------
    dict
        ``{"state": {fqn: {"mask": float32 tensor}}, "groups": [{"tensor_fqn": fqn,
        "sparsity_level": s}, ...]}``, for ``sparsifier.load_state_dict`` after
        ``sparsifier.prepare(model, config)`` (``sparsity_level`` is the mask's own sparsity).
        The groups carry no sparsifier-specific settings (block shapes, ...): to keep calling
        ``sparsifier.step()`` afterwards, merge your sparsifier's own group settings back in.
    """
    import torch

    canon = _canonical(masks, None)
    state = {n: {"mask": torch.from_numpy(arr.astype(np.float32))} for n, arr in canon.items()}
    groups = [
        {"tensor_fqn": name, "sparsity_level": 1.0 - float(arr.mean()) if arr.size else 0.0}
        for name, arr in canon.items()
    ]
    return {"state": state, "groups": groups}


def from_sparsifier_state(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Masks from a ``torch.ao.pruning`` sparsifier's ``state_dict()``.

    Parameters
    ----------
    state_dict : mapping
        ``{"state": {tensor_fqn: {"mask": tensor, ...}}, "groups": [...]}``; fqns without a
        ``"mask"`` (not yet stepped) are left out.

    Returns
    -------
    dict of str to ndarray of bool
        Keyed by parameter name (the ``tensor_fqn``).

    Raises
    ------
    MaskFileError
        If the layout is not a sparsifier state.
    """
    return collect(sparsifier_tensors(state_dict))


def _write_open_lth(directory: Path, masks: Mapping[str, np.ndarray], overwrite: bool) -> None:
    import torch

    mask_path, report_path = directory / "mask.pth", directory / "sparsity_report.json"
    if not overwrite:
        for p in (mask_path, report_path):
            if p.exists():
                raise MaskFileError(f"{_q(p)} exists; pass overwrite=True (--force) to replace it")
    obj = {k: torch.from_numpy(v.astype(np.int32)) for k, v in masks.items()}
    report = {
        "total": float(sum(v.size for v in masks.values())),
        "unpruned": float(sum(int(np.count_nonzero(v)) for v in masks.values())),
    }
    existed = mask_path.exists()
    _atomic_write(mask_path, lambda fh: _torch_save(fh, obj), overwrite)
    try:  # the pair is written together: a mask.pth without its report is removed again
        _atomic_write(
            report_path, lambda fh: fh.write(json.dumps(report, indent=4).encode()), overwrite
        )
    except BaseException:
        if not existed:
            mask_path.unlink(missing_ok=True)
        raise


def resolve_format(path: PathLike, fmt: str | None = None) -> str:
    """The format :func:`save_masks` writes ``path`` in (``fmt`` when given), or the
    :class:`~sparsegraph.errors.MaskFileError` it would raise; nothing is written. A path
    ending in ``/`` or naming an existing directory is written to only as ``"open_lth"``.

    Examples
    --------
    >>> resolve_format("m.npz"), resolve_format("runs/level_0/", "open_lth")
    ('npz', 'open_lth')
    """
    text = os.fspath(path)
    return _resolve_format(Path(text), fmt, str(text).endswith(("/", os.sep)))


def _resolve_format(path: Path, fmt: str | None, as_directory: bool) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise MaskFileError(f"unknown mask file format {fmt!r}; known: {', '.join(FORMATS)}")
        if fmt != "open_lth" and (as_directory or path.is_dir()):
            raise MaskFileError(f"cannot write {_q(path)}: it names a directory; give a file "
                                f"name for the {fmt} format")
        return fmt
    if as_directory or path.is_dir():
        raise MaskFileError(
            f"cannot write {_q(path)}: it names a directory; give a file name (e.g. "
            f"{_q(path / 'masks.safetensors')}), or ask for open_lth's mask.pth + "
            "sparsity_report.json layout explicitly with format='open_lth' (--format open_lth)"
        )
    if path.name == "mask.pth":
        return "open_lth"
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_FORMAT:
        raise MaskFileError(
            f"cannot tell the format of {_q(path)} from its suffix {suffix!r}: use .safetensors, "
            f".npz, .pt or .pth, or pass format= (one of {', '.join(FORMATS)})"
        )
    return _SUFFIX_FORMAT[suffix]


def save_masks(
    path: PathLike,
    masks: Mapping[str, Any],
    *,
    net: Network | None = None,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    format: str | None = None,  # noqa: A002 - the natural name
) -> Path:
    """Write masks to a file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (``.safetensors``, ``.npz``, ``.pt``/``.pth``), or for ``format="open_lth"``
        the directory to hold ``mask.pth`` and ``sparsity_report.json``.
    masks : mapping of str to array-like
        Keyed by parameter name, 0/1 values (bool, int or float; numpy or torch).
    net : Network, optional
        Validate against it (unknown keys and wrong shapes are errors; layers without a key are
        stored dense) and record its :meth:`~sparsegraph.Network.fingerprint`, so that loading
        against another model is refused.
    metadata : mapping, optional
        JSON-like extra fields, e.g. ``{"scheme": "igq", "density": 0.01, "seed": 0,
        "granularity": "weight"}``. The library adds ``format``, ``format_version``,
        ``sparsegraph_version``, ``params``, ``kept``, ``layer_names``, ``layer_shapes`` and,
        with ``net``, ``fingerprint`` and ``network``. Stored by ``safetensors``, ``npz`` and
        ``torch``; the foreign formats have no place for it.
    overwrite : bool, default False
        Replace an existing file; otherwise an existing file is an error.
    format : {"safetensors", "npz", "torch", "torch_prune", "open_lth", "ao_sparsifier"}, optional
        Default: from the suffix (``.safetensors`` or none: safetensors; ``.npz``; ``.pt``/``.pth``:
        torch; a file named ``mask.pth``: open_lth). A directory (an existing one, or a path
        ending in ``/``) is written to only with ``format="open_lth"``, which creates it when
        its parent exists; otherwise it is an error, never a file named like the directory.

    Returns
    -------
    pathlib.Path
        The file written (``<dir>/mask.pth`` for open_lth).

    Raises
    ------
    MaskFileError
        Existing target without ``overwrite``, missing directory, a directory without
        ``format="open_lth"``, unknown format, metadata that is not JSON-like, and a write the
        file system refuses (no permission, no space left: the message names the path).
    MaskError
        Masks that do not fit ``net`` or hold values other than 0/1.
    ArgumentError
        If ``net`` is given and is not a :class:`~sparsegraph.Network`.

    Notes
    -----
    The file is written to a temporary file in the same directory, flushed and fsynced, then
    renamed onto ``path``; if anything fails midway (including Ctrl-C, SIGTERM and SIGHUP) the
    temporary file is removed and ``path`` is untouched (see :mod:`sparsegraph._atomic`). The
    same masks and metadata give the same bytes (no timestamps). Mask values are canonicalised
    on the way in, so the file holds only the bytes 0 and 1 whatever the input's bytes were.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from sparsegraph.masks.files import save_masks, load_masks, read_metadata
    >>> d = tempfile.mkdtemp()
    >>> p = save_masks(f"{d}/m.safetensors", {"fc.weight": np.eye(3, dtype=bool)},
    ...                metadata={"scheme": "uniform"})
    >>> load_masks(p)["fc.weight"].sum(), read_metadata(p)["scheme"]
    (np.int64(3), 'uniform')
    """
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise MaskFileError(f"path: expected a file name, got {text!r}")
    path = Path(text)
    fmt = _resolve_format(path, format, text.endswith(("/", os.sep)))
    if net is not None:
        check_network(net)
    canon = _canonical(masks, net)
    if fmt == "open_lth":
        directory = path.parent if path.name == "mask.pth" else path
        created = False
        if not directory.exists():
            if not directory.parent.is_dir():
                raise MaskFileError(f"cannot write {_q(directory)}: parent does not exist")
            try:
                directory.mkdir()
            except OSError as exc:
                raise MaskFileError(f"cannot create {_q(directory)}: {exc.strerror or exc}"
                                    ) from None
            created = True
        try:
            _write_open_lth(directory, canon, overwrite)
        except BaseException:
            if created:  # leave nothing behind: the directory was made for this write
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise
        return directory / "mask.pth"
    meta = _build_metadata(canon, net, metadata)
    if fmt == "safetensors":
        writer: Callable[[IO[bytes]], None] = lambda fh: _write_safetensors(fh, canon, meta)  # noqa: E731
    elif fmt == "npz":
        writer = lambda fh: _write_npz(fh, canon, meta)  # noqa: E731
    elif fmt == "torch":
        import torch

        obj: dict[str, Any] = {k: torch.from_numpy(v) for k, v in canon.items()}
        obj[META_KEY] = _meta_json(meta)
        writer = lambda fh: _torch_save(fh, obj)  # noqa: E731
    elif fmt == "torch_prune":
        sd = to_prune_state_dict(canon)
        writer = lambda fh: _torch_save(fh, sd)  # noqa: E731
    else:  # ao_sparsifier
        st = to_sparsifier_state(canon)
        writer = lambda fh: _torch_save(fh, st)  # noqa: E731
    _atomic_write(path, writer, overwrite)
    return path


def read_metadata(path: PathLike) -> dict[str, Any]:
    """The metadata stored with a mask file.

    Parameters
    ----------
    path : str or os.PathLike
        A mask file in any format :func:`load_masks` reads.

    Returns
    -------
    dict
        The stored metadata (for sparsegraph's files: ``scheme``, ``density``, ``seed``,
        ``granularity``, ... as given to :func:`save_masks`, plus ``format``, ``format_version``,
        ``sparsegraph_version``, ``params``, ``kept``, ``layer_names``, ``layer_shapes`` and, when
        saved with ``net``, ``fingerprint`` and ``network``), with ``"file_format"`` set to the
        detected format; the foreign formats (``torch_prune``, ``open_lth``, ``ao_sparsifier``)
        hold only ``"file_format"`` (and open_lth's ``sparsity_report``). Only the header is read
        (open_lth: the report is checked against the masks).

    Raises
    ------
    MaskFileError
        As :func:`load_masks`.
    """
    fmt, _, meta = read_file(_path(path), tensors=False)
    return {**meta, "file_format": fmt}


def _path(path: Any) -> Path:
    try:
        return Path(os.fspath(path))
    except TypeError:
        raise MaskFileError(f"path: expected a file name, got {type(path).__name__}") from None


def load_masks(
    path: PathLike, *, net: Network | None = None, max_elements: int | None = None
) -> dict[str, np.ndarray]:
    """Read masks from a file in any supported format, safely.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors``, ``.npz`` or torch file (``torch_prune``, ``ao_sparsifier`` and plain
        layouts are recognised from the content), or an open_lth directory / ``mask.pth``.
    net : Network, optional
        Check the masks against it, from the file's header before any data is read: a file
        whose stored fingerprint differs from ``net.fingerprint()`` is refused, naming the
        layers that are missing, unexpected or of another shape; keys not in the network or of
        the wrong shape are refused by name. Layers without a key are dense.
    max_elements : int, optional
        Without ``net``: the most mask entries the file may declare (default
        :data:`~sparsegraph.masks._limits.MAX_ELEMENTS`, 2**31). With ``net`` the model bounds
        the file and this is not used.

    Returns
    -------
    dict of str to ndarray of bool
        Keyed by parameter name; with ``net``, every layer in network order. Values are
        C-contiguous with bytes 0 and 1 only, whatever bytes the file held.

    Raises
    ------
    MaskFileError
        Missing, empty, corrupt or truncated file; not a regular file (a FIFO, a device: refused
        before it is opened); unknown format, or content that is not the format its suffix
        names; a header over the limits (size, JSON depth, integer digits) or inconsistent
        with the file (byte ranges, sizes); a pickle holding anything but tensors and plain
        containers (refused before it runs); a file for another model or larger than it.
    MaskError
        Values other than 0 and 1.
    ArgumentError
        If ``net`` is not a :class:`~sparsegraph.Network` (e.g. a model name).

    Notes
    -----
    Torch files are read with ``torch.load(weights_only=True)`` only (memory-mapped when in
    torch's zip format, so shapes and strides are checked before data is touched; the legacy
    non-zip format is loaded whole); ``.npz`` members' ``.npy`` headers are
    read before anything is decompressed, never with pickles; the safetensors header is
    parsed here, its byte ranges checked against the file size. See
    :mod:`sparsegraph.masks._limits` for the limits.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from sparsegraph.masks.files import save_masks, load_masks
    >>> p = save_masks(f"{tempfile.mkdtemp()}/m.npz", {"module.fc.weight": np.ones((2, 2))})
    >>> list(load_masks(p))
    ['fc.weight']
    """
    p = _path(path)
    if net is not None:
        check_network(net)
    _, masks, _ = read_file(p, net=net, max_elements=max_elements)
    if net is None:
        return masks
    return check_masks(net, masks)
