"""Reading a mask file: its header checked against the model, then its tensors.

:func:`read_file` parses the header (:mod:`._headers`), refuses a file for another model, with
entries the model does not have or of another shape, or (without a model) declaring more than
:data:`~._limits.MAX_ELEMENTS` entries, all before any tensor data is read; then reads each
tensor in exactly its declared bytes and canonicalises it through
:func:`~sparsegraph._args.as_bool_mask` (bytes 0/1 only). So a file's claimed sizes never turn
into an allocation larger than the model it is loaded for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._args import as_bool_mask
from ..errors import MaskFileError, SparseGraphError
from ._headers import Entry, contents_of, regular_size
from ._keys import names_of
from ._limits import MAX_ELEMENTS, MAX_REPORT_BYTES, check_meta, one_line, parse_json, q, short

__all__ = ["read_file"]


def _show(name: str) -> str:
    """A stored name for a one-line message: as is when printable, else its repr."""
    return name if name.isprintable() else repr(name)


def _layer_diff(stored: list[tuple[str, tuple]], net: Any) -> str:
    have = dict(stored)
    want = {layer.name: tuple(layer.shape) for layer in net.layers}
    parts = []
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    shaped = [f"{_show(n)} (file {list(have[n])}, network {list(want[n])})"
              for n in want if n in have and tuple(have[n]) != want[n]]
    if missing:
        parts.append(f"missing from the file: {', '.join(map(_show, missing))}")
    if extra:
        parts.append(f"not in the network: {', '.join(map(_show, extra))}")
    if shaped:
        parts.append(f"shape differs: {', '.join(shaped)}")
    if not parts and [n for n, _ in stored] != list(want):
        parts.append("same layers in a different order")
    return "; ".join(parts)


def _check_declared(net: Any, declared: list[tuple[str, tuple]], meta: Mapping,
                    path: Path) -> None:
    """Refuse, from the header alone, a file for another model or with entries the model does
    not have or of another shape."""
    fingerprint = meta.get("fingerprint")
    if fingerprint is not None and fingerprint != net.fingerprint():
        stored = declared
        names, shapes = meta.get("layer_names"), meta.get("layer_shapes")
        if names is not None and shapes is not None:
            stored = [(n, tuple(s)) for n, s in zip(names, shapes, strict=True)]
        diff = _layer_diff(stored, net) or "the layer tables hash differently"
        raise MaskFileError(
            f"mask file {q(path)} was made for another model (fingerprint {fingerprint}, "
            f"this network {net.fingerprint()}): {diff}"
        )
    want = {layer.name: tuple(layer.shape) for layer in net.layers}
    extra = [n for n, _ in declared if n not in want]
    shaped = [f"{_show(n)} (file {list(s)}, network {list(want[n])})"
              for n, s in declared if n in want and s != want[n]]
    if extra or shaped:
        parts = []
        if extra:
            parts.append(f"not in the network: {', '.join(map(_show, extra))}")
        if shaped:
            parts.append(f"shape differs: {', '.join(shaped)}")
        raise MaskFileError(f"mask file {q(path)} does not fit {net.name!r}: {'; '.join(parts)}")


def _materialise(entry: Entry, name: str, path: Path) -> np.ndarray:
    try:
        arr = as_bool_mask(entry.load(), name)
    except SparseGraphError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt tensor record, whatever it raises
        raise MaskFileError(
            f"mask file {q(path)}: cannot read entry {entry.key!r} ({one_line(exc)})"
        ) from None
    if entry.mapped and not arr.flags.owndata:  # never hand out a view of the mapped file
        arr = arr.copy()
    if arr.shape != entry.shape:  # pragma: no cover - the readers keep the declared shape
        raise MaskFileError(f"mask file {q(path)}: entry {entry.key!r} does not have its "
                            f"declared shape {list(entry.shape)}")
    return arr


def _open_lth_report(report_path: Path, masks: Mapping[str, np.ndarray]) -> dict[str, float]:
    where = q(report_path)
    size = regular_size(report_path, "open_lth report")
    if size > MAX_REPORT_BYTES:
        raise MaskFileError(f"{where}: {size:,} bytes, more than the {MAX_REPORT_BYTES:,} "
                            "allowed for a sparsity report")
    report = parse_json(report_path.read_bytes(), where)
    if not isinstance(report, dict) or not {"total", "unpruned"} <= set(report):
        raise MaskFileError(f"{where}: expected an object with 'total' and 'unpruned'")
    values = {}
    for key in ("total", "unpruned"):
        v = report[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise MaskFileError(f"{where}: {key!r} must be a non-negative number, got "
                                f"{short(v)}")
        values[key] = float(v)
    params = sum(m.size for m in masks.values())
    kept = sum(int(np.count_nonzero(m)) for m in masks.values())
    if (values["total"], values["unpruned"]) != (float(params), float(kept)):
        raise MaskFileError(
            f"{where} says total={values['total']:g}, unpruned={values['unpruned']:g} but the "
            f"mask.pth beside it holds {params} weights, {kept} kept"
        )
    return values


def read_file(path: Path, *, net: Any = None, max_elements: int | None = None,
              tensors: bool = True) -> tuple[str, dict[str, np.ndarray], dict[str, Any]]:
    """``(format, masks, metadata)`` of a mask file, header checked before data is read.

    ``net`` bounds the file by the model (every entry one of its layers, of its shape; the
    stored fingerprint must match); without it the entries may hold at most ``max_elements``
    (default :data:`MAX_ELEMENTS`) weights. ``tensors=False`` reads the header only.
    """
    open_lth = False
    try:
        is_dir = path.is_dir()
    except OSError:
        is_dir = False
    if is_dir:
        mask_path = path / "mask.pth"
        if not mask_path.exists():
            raise MaskFileError(f"{q(path)} is a directory without an open_lth mask.pth")
        path, open_lth = mask_path, True
    size = regular_size(path)
    if size == 0:
        raise MaskFileError(f"mask file {q(path)} is empty")
    contents = contents_of(path, size)
    try:
        return _read_contents(contents, path, net, max_elements, tensors, open_lth)
    finally:
        contents.close()


def _read_contents(contents: Any, path: Path, net: Any, max_elements: int | None,
                   tensors: bool, open_lth: bool) -> tuple[str, dict[str, np.ndarray],
                                                          dict[str, Any]]:
    meta = check_meta(contents.meta, path)
    fmt = contents.fmt
    if fmt == "torch" and (open_lth or path.name == "mask.pth"):
        fmt, open_lth = "open_lth", True
    if not tensors and not open_lth:
        return fmt, {}, meta
    names = names_of([e.key for e in contents.entries], f"mask file {q(path)}: ")
    declared = [(names[e.key], e.shape) for e in contents.entries]
    if net is not None:
        _check_declared(net, declared, meta, path)
    else:
        limit = MAX_ELEMENTS if max_elements is None else max_elements
        total = sum(math.prod(s) for _, s in declared)
        if total > limit:
            raise MaskFileError(
                f"mask file {q(path)} declares {total:,} mask entries, more than the "
                f"{limit:,} allowed without a model; pass net= (or max_elements=) to read it"
            )
    masks = {names[e.key]: _materialise(e, names[e.key], path) for e in contents.entries}
    if open_lth:
        report_path = path.parent / "sparsity_report.json"
        if report_path.exists():
            meta = {**meta, "sparsity_report": _open_lth_report(report_path, masks)}
    if not tensors:
        masks = {}
    return fmt, masks, meta
