"""Mask files: save and load masks safely, in sparsegraph's format and the ones users already have.

Formats (``format=`` of :func:`save_masks`; :func:`load_masks` recognises each by its content,
not by its name):

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
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from .._args import as_bool_mask, check_masks
from ..errors import MaskError, MaskFileError
from ..graph.network import Network

__all__ = [
    "FORMATS",
    "save_masks",
    "load_masks",
    "read_metadata",
    "from_prune_state_dict",
    "to_prune_state_dict",
    "from_sparsifier_state",
    "to_sparsifier_state",
]

FORMATS = ("safetensors", "npz", "torch", "torch_prune", "open_lth", "ao_sparsifier")

FORMAT_TAG = "sparsegraph.masks"
FORMAT_VERSION = 1
_META_KEY = "__metadata__"  # npz / torch entry holding the metadata JSON
_ST_META_KEY = "sparsegraph"  # safetensors header metadata key holding the metadata JSON
_SUFFIX_FORMAT = {".safetensors": "safetensors", "": "safetensors", ".npz": "npz",
                  ".pt": "torch", ".pth": "torch"}
_PREFIXES = ("module.", "_orig_mod.")
_PARAMETRIZED = re.compile(r"^(?P<module>(?:.*\.)?)parametrizations\.(?P<param>[^.]+)\.\d+\.mask$")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

PathLike = str | os.PathLike


def _q(path: Any) -> str:
    return repr(str(path))


# --------------------------------------------------------------------------------------- keys


def normalize_key(key: str) -> str:
    """The parameter name a stored mask key refers to.

    Strips leading ``module.`` / ``_orig_mod.`` prefixes (repeatedly), maps a
    ``torch.nn.utils.prune`` buffer ``<module>.<p>_mask`` and a parametrization buffer
    ``<module>.parametrizations.<p>.<i>.mask`` to ``<module>.<p>``.

    Examples
    --------
    >>> normalize_key("module._orig_mod.features.0.weight_mask")
    'features.0.weight'
    >>> normalize_key("fc.parametrizations.weight.0.mask")
    'fc.weight'
    """
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key = key[len(prefix):]
                changed = True
    match = _PARAMETRIZED.match(key)
    if match:
        return f"{match['module']}{match['param']}"
    if key.endswith("_mask"):
        return key[: -len("_mask")]
    return key


def _is_mask_key(key: str) -> bool:
    return key.endswith("_mask") or _PARAMETRIZED.match(key) is not None


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
        if not isinstance(key, str) or not key or key == _META_KEY:
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


# ---------------------------------------------------------------------------- atomic writes


def _atomic_write(path: Path, write: Callable[[IO[bytes]], None], overwrite: bool) -> None:
    """Write ``path`` through a temporary file in its directory, fsync, then rename."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise MaskFileError(f"cannot write {_q(path)}: directory {_q(directory)} does not exist")
    if path.is_dir():
        raise MaskFileError(f"cannot write {_q(path)}: it is a directory")
    if path.exists() and not overwrite:
        raise MaskFileError(f"{_q(path)} exists; pass overwrite=True (--force) to replace it")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:  # no-clobber rename: fails if another writer created path meanwhile
                os.link(tmp, path)
            except FileExistsError:
                raise MaskFileError(
                    f"{_q(path)} exists; pass overwrite=True (--force) to replace it"
                ) from None
            except OSError:  # file system without hard links
                if path.exists():
                    raise MaskFileError(
                        f"{_q(path)} exists; pass overwrite=True (--force) to replace it"
                    ) from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ---------------------------------------------------------------------------------- writers


def _write_safetensors(fh: IO[bytes], masks: Mapping[str, np.ndarray], meta: Mapping) -> None:
    from safetensors.numpy import save

    fh.write(save(dict(masks), metadata={_ST_META_KEY: _meta_json(meta)}))


def _write_npz(fh: IO[bytes], masks: Mapping[str, np.ndarray], meta: Mapping) -> None:
    # written by hand with a fixed timestamp, so the same masks give the same bytes
    arrays = dict(masks)
    arrays[_META_KEY] = np.frombuffer(_meta_json(meta).encode(), dtype=np.uint8)
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
    if not isinstance(state_dict, Mapping):
        raise MaskFileError(f"expected a state dict (mapping), got {type(state_dict).__name__}")
    keys = [k for k in state_dict if isinstance(k, str) and _is_mask_key(k)]
    if not keys:
        raise MaskFileError(
            "no '<module>.<param>_mask' entries: not a torch.nn.utils.prune state dict"
        )
    return _collect({k: state_dict[k] for k in keys})


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
    if not (isinstance(state_dict, Mapping) and isinstance(state_dict.get("state"), Mapping)):
        raise MaskFileError("not a torch.ao.pruning sparsifier state: expected a 'state' mapping")
    found = {}
    for fqn, entry in state_dict["state"].items():
        if not isinstance(entry, Mapping):
            raise MaskFileError(
                f"sparsifier state {fqn!r}: expected a mapping, got {type(entry).__name__}"
            )
        if entry.get("mask") is not None:
            found[fqn] = entry["mask"]
    return _collect(found)


def _collect(raw: Mapping[Any, Any]) -> dict[str, np.ndarray]:
    """Normalise keys, convert values to bool, refuse duplicates."""
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise MaskFileError(f"mask keys must be parameter names (str), got {key!r}")
        name = normalize_key(key)
        if name in out:
            raise MaskFileError(f"keys {origin[name]!r} and {key!r} both give the mask of {name!r}")
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise MaskFileError(f"entry {key!r}: expected a tensor, got {type(value).__name__}")
        out[name] = as_bool_mask(value, name)
        origin[name] = key
    return out


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
    _atomic_write(mask_path, lambda fh: _torch_save(fh, obj), overwrite)
    _atomic_write(
        report_path, lambda fh: fh.write(json.dumps(report, indent=4).encode()), overwrite
    )


def _resolve_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise MaskFileError(f"unknown mask file format {fmt!r}; known: {', '.join(FORMATS)}")
        return fmt
    if path.is_dir() or path.name == "mask.pth":
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
        torch; a directory or ``mask.pth``: open_lth).

    Returns
    -------
    pathlib.Path
        The file written (``<dir>/mask.pth`` for open_lth).

    Raises
    ------
    MaskFileError
        Existing target without ``overwrite``, missing directory, unknown format, metadata that is
        not JSON-like.
    MaskError
        Masks that do not fit ``net`` or hold values other than 0/1.

    Notes
    -----
    The file is written to a temporary file in the same directory, flushed and fsynced, then
    renamed onto ``path``; if anything fails midway the temporary file is removed and ``path`` is
    untouched. The same masks and metadata give the same bytes (no timestamps).

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
    path = Path(os.fspath(path))
    fmt = _resolve_format(path, format)
    canon = _canonical(masks, net)
    if fmt == "open_lth":
        directory = path.parent if path.name == "mask.pth" else path
        if not directory.exists():
            if not directory.parent.is_dir():
                raise MaskFileError(f"cannot write {_q(directory)}: parent does not exist")
            directory.mkdir()
        _write_open_lth(directory, canon, overwrite)
        return directory / "mask.pth"
    meta = _build_metadata(canon, net, metadata)
    if fmt == "safetensors":
        writer: Callable[[IO[bytes]], None] = lambda fh: _write_safetensors(fh, canon, meta)  # noqa: E731
    elif fmt == "npz":
        writer = lambda fh: _write_npz(fh, canon, meta)  # noqa: E731
    elif fmt == "torch":
        import torch

        obj: dict[str, Any] = {k: torch.from_numpy(v) for k, v in canon.items()}
        obj[_META_KEY] = _meta_json(meta)
        writer = lambda fh: _torch_save(fh, obj)  # noqa: E731
    elif fmt == "torch_prune":
        sd = to_prune_state_dict(canon)
        writer = lambda fh: _torch_save(fh, sd)  # noqa: E731
    else:  # ao_sparsifier
        st = to_sparsifier_state(canon)
        writer = lambda fh: _torch_save(fh, st)  # noqa: E731
    _atomic_write(path, writer, overwrite)
    return path


# ---------------------------------------------------------------------------------- readers


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _sniff(path: Path) -> str:
    """The format of a file from its first bytes: safetensors, npz, torch or open_lth."""
    if path.is_dir():
        if (path / "mask.pth").is_file():
            return "open_lth"
        raise MaskFileError(f"{_q(path)} is a directory without an open_lth mask.pth")
    if not path.exists():
        raise MaskFileError(f"mask file {_q(path)} does not exist")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as exc:
        raise MaskFileError(f"cannot read mask file {_q(path)}: {_one_line(exc)}") from None
    if size == 0:
        raise MaskFileError(f"mask file {_q(path)} is empty")
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise MaskFileError(
                f"mask file {_q(path)} is a corrupt or truncated zip archive ({_one_line(exc)})"
            ) from None
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise MaskFileError(f"mask file {_q(path)}: a zip archive that is neither .npz nor torch")
    if head[:1] == b"\x80":  # a pickle stream: torch's legacy format (or a bare pickle)
        return "torch"
    if len(head) == 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n and head[8:9] == b"{":
            if n > size - 8:
                raise MaskFileError(
                    f"mask file {_q(path)} is a truncated safetensors file (header of {n} bytes, "
                    f"file of {size})"
                )
            return "safetensors"
    raise MaskFileError(
        f"mask file {_q(path)}: unknown format (not safetensors, npz or a torch file)"
    )


def _torch_load(path: Path) -> Any:
    import pickle

    import torch

    try:
        # collections.OrderedDict is allowed by default; nothing else is added: a file holding
        # any other object is refused here, before anything in it runs.
        with warnings.catch_warnings():  # protocol-version chatter of the weights-only loader
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "defaultdict" in msg:
            raise MaskFileError(
                f"mask file {_q(path)} holds a collections.defaultdict (a raw torch.ao.pruning "
                "sparsifier.state_dict()?), which weights_only loading cannot read; save "
                "{'state': dict(sd['state']), 'groups': sd['groups']} instead"
            ) from None
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        what = f" (it references {found.group(1)})" if found else ""
        raise MaskFileError(
            f"refused to load {_q(path)}: it is a pickle holding objects other than tensors"
            f"{what}; sparsegraph reads torch files only with weights_only=True"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError,
            AttributeError, IndexError, struct.error, zipfile.BadZipFile) as exc:
        raise MaskFileError(
            f"cannot read torch mask file {_q(path)} (corrupt or truncated?): {_one_line(exc)}"
        ) from None


def _from_torch_object(obj: Any, path: Path) -> tuple[str, dict[str, np.ndarray], dict]:
    """(format, masks, metadata) from a weights-only unpickled object."""
    if not isinstance(obj, Mapping):
        raise MaskFileError(
            f"mask file {_q(path)}: expected a dict of tensors, got {type(obj).__name__}"
        )
    meta: dict[str, Any] = {}
    if "state" in obj and "groups" in obj:
        return "ao_sparsifier", from_sparsifier_state(obj), meta
    if isinstance(obj.get("state_dict"), Mapping):  # a training checkpoint holding a state dict
        obj = obj["state_dict"]
    raw = dict(obj)
    if _META_KEY in raw:
        text = raw.pop(_META_KEY)
        meta = _parse_meta(text, path)
    if any(isinstance(k, str) and _is_mask_key(k) for k in raw):
        return "torch_prune", from_prune_state_dict(raw), meta
    bad = [k for k, v in raw.items() if not (hasattr(v, "shape") and hasattr(v, "dtype"))]
    if bad:
        raise MaskFileError(
            f"mask file {_q(path)}: entry {bad[0]!r} is a {type(raw[bad[0]]).__name__}, not a "
            "tensor; expected {parameter name: 0/1 tensor}"
        )
    return "torch", _collect(raw), meta


def _parse_meta(text: Any, path: Path) -> dict[str, Any]:
    if isinstance(text, np.ndarray):
        text = text.tobytes().decode("utf-8", errors="replace")
    try:
        meta = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise MaskFileError(
            f"mask file {_q(path)}: unreadable metadata ({_one_line(exc)})"
        ) from None
    if not isinstance(meta, dict):
        raise MaskFileError(f"mask file {_q(path)}: metadata is not a JSON object")
    return meta


def _read_safetensors(path: Path, tensors: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            header = f.metadata() or {}
            raw = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, dtype errors, truncation
        if "bf16" in str(exc).lower() or "bfloat16" in str(exc).lower():
            return _read_safetensors_torch(path, tensors)
        raise MaskFileError(
            f"cannot read safetensors mask file {_q(path)} (corrupt or truncated?): "
            f"{_one_line(exc)}"
        ) from None
    if _ST_META_KEY in header:
        meta = _parse_meta(header[_ST_META_KEY], path)
    else:
        meta = dict(header)
    return raw, meta


def _read_safetensors_torch(path: Path, tensors: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            raw = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except Exception as exc:  # noqa: BLE001
        raise MaskFileError(
            f"cannot read safetensors mask file {_q(path)}: {_one_line(exc)}"
        ) from None
    meta = _parse_meta(header[_ST_META_KEY], path) if _ST_META_KEY in header else dict(header)
    return raw, meta


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {k: data[k] for k in data.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise MaskFileError(
                f"refused to load {_q(path)}: it holds pickled object arrays; "
                "sparsegraph reads .npz files only with allow_pickle=False"
            ) from None
        raise MaskFileError(f"cannot read npz mask file {_q(path)}: {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - zipfile, zlib, EOF errors of a truncated file
        raise MaskFileError(
            f"cannot read npz mask file {_q(path)} (corrupt or truncated?): {_one_line(exc)}"
        ) from None
    meta = _parse_meta(raw.pop(_META_KEY), path) if _META_KEY in raw else {}
    return raw, meta


def _read_open_lth(mask_path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    obj = _torch_load(mask_path)
    _, masks, meta = _from_torch_object(obj, mask_path)
    report_path = mask_path.parent / "sparsity_report.json"
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
            total, unpruned = float(report["total"]), float(report["unpruned"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MaskFileError(
                f"cannot read {_q(report_path)}: {_one_line(exc)}"
            ) from None
        params = sum(m.size for m in masks.values())
        kept = sum(int(np.count_nonzero(m)) for m in masks.values())
        if (total, unpruned) != (float(params), float(kept)):
            raise MaskFileError(
                f"{_q(report_path)} says total={total:g}, unpruned={unpruned:g} but "
                f"{_q(mask_path)} holds {params} weights, {kept} kept"
            )
        meta = {**meta, "sparsity_report": {"total": total, "unpruned": unpruned}}
    return masks, meta


def _read(path: PathLike, tensors: bool = True) -> tuple[str, dict[str, np.ndarray], dict]:
    p = Path(os.fspath(path))
    fmt = _sniff(p)
    if fmt == "open_lth" or (fmt == "torch" and p.name == "mask.pth"):
        mask_path = p / "mask.pth" if p.is_dir() else p
        masks, meta = _read_open_lth(mask_path)
        return "open_lth", masks, meta
    if fmt == "safetensors":
        raw, meta = _read_safetensors(p, tensors)
        return fmt, (_collect(raw) if tensors else {}), meta
    if fmt == "npz":
        raw, meta = _read_npz(p)
        return fmt, _collect(raw), meta
    fmt, masks, meta = _from_torch_object(_torch_load(p), p)
    return fmt, masks, meta


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
        ``granularity``, ... as given to :func:`save_masks`, plus ``format``,
        ``format_version``, ``sparsegraph_version``, ``params``, ``kept``, ``layer_names``,
        ``layer_shapes`` and, when saved with ``net``, ``fingerprint`` and ``network``), with
        ``"file_format"`` set to the detected format; the foreign formats (``torch_prune``,
        ``open_lth``, ``ao_sparsifier``) hold only ``"file_format"`` (and open_lth's
        ``sparsity_report``). A safetensors file's header is read without loading its tensors;
        the other formats are read whole.

    Raises
    ------
    MaskFileError
        As :func:`load_masks`.
    """
    fmt, _, meta = _read(path, tensors=False)
    return {**meta, "file_format": fmt}


def _layer_diff(stored: list[tuple[str, tuple]], net: Network) -> str:
    have = dict(stored)
    want = {layer.name: tuple(layer.shape) for layer in net.layers}
    parts = []
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    shaped = [f"{n} (file {list(have[n])}, network {list(want[n])})"
              for n in want if n in have and tuple(have[n]) != want[n]]
    if missing:
        parts.append(f"missing from the file: {', '.join(missing)}")
    if extra:
        parts.append(f"not in the network: {', '.join(extra)}")
    if shaped:
        parts.append(f"shape differs: {', '.join(shaped)}")
    if not parts and [n for n, _ in stored] != list(want):
        parts.append("same layers in a different order")
    return "; ".join(parts)


def _check_against(net: Network, masks: dict[str, np.ndarray], meta: Mapping, path: Path) -> None:
    stored = [(n, tuple(m.shape)) for n, m in masks.items()]
    fingerprint = meta.get("fingerprint")
    if fingerprint is not None and fingerprint != net.fingerprint():
        names, shapes = meta.get("layer_names"), meta.get("layer_shapes")
        if isinstance(names, list) and isinstance(shapes, list) and len(names) == len(shapes):
            stored = [(str(n), tuple(s)) for n, s in zip(names, shapes, strict=True)]
        diff = _layer_diff(stored, net) or "the layer tables hash differently"
        raise MaskFileError(
            f"mask file {_q(path)} was made for another model (fingerprint {fingerprint}, "
            f"this network {net.fingerprint()}): {diff}"
        )
    want = {layer.name: tuple(layer.shape) for layer in net.layers}
    extra = [n for n in masks if n not in want]
    shaped = [f"{n} (file {list(masks[n].shape)}, network {list(want[n])})"
              for n in masks if n in want and tuple(masks[n].shape) != want[n]]
    if extra or shaped:
        parts = []
        if extra:
            parts.append(f"not in the network: {', '.join(extra)}")
        if shaped:
            parts.append(f"shape differs: {', '.join(shaped)}")
        raise MaskFileError(f"mask file {_q(path)} does not fit {net.name!r}: {'; '.join(parts)}")


def load_masks(path: PathLike, *, net: Network | None = None) -> dict[str, np.ndarray]:
    """Read masks from a file in any supported format, safely.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors``, ``.npz`` or torch file (``torch_prune``, ``ao_sparsifier`` and plain
        layouts are recognised from the content), or an open_lth directory / ``mask.pth``.
    net : Network, optional
        Check the masks against it: a file whose stored fingerprint differs from
        ``net.fingerprint()`` is refused, naming the layers that are missing, unexpected or of
        another shape; keys not in the network or of the wrong shape are refused by name.
        Layers without a key are dense.

    Returns
    -------
    dict of str to ndarray of bool
        Keyed by parameter name; with ``net``, every layer in network order.

    Raises
    ------
    MaskFileError
        Missing, empty, corrupt or truncated file; unknown format; a pickle holding anything but
        tensors and plain containers (refused before it runs); a file for another model.
    MaskError
        Values other than 0 and 1.

    Notes
    -----
    Torch files are read with ``torch.load(weights_only=True)`` only; ``.npz`` with
    ``allow_pickle=False``; safetensors cannot hold code.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from sparsegraph.masks.files import save_masks, load_masks
    >>> p = save_masks(f"{tempfile.mkdtemp()}/m.npz", {"module.fc.weight": np.ones((2, 2))})
    >>> list(load_masks(p))
    ['fc.weight']
    """
    p = Path(os.fspath(path))
    _, masks, meta = _read(p)
    if net is None:
        return masks
    _check_against(net, masks, meta, p)
    return check_masks(net, masks)
