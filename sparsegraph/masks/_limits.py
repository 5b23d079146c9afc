"""The limits of what a mask file may declare, and metadata JSON parsed within them.

Documented in the README's "Mask files" section: a safetensors JSON header, a torch file's
pickle and any metadata JSON hold at most :data:`MAX_HEADER_BYTES`; JSON nests at most
:data:`MAX_JSON_DEPTH` deep, its integers have at most :data:`MAX_INT_DIGITS` digits and it
holds no NaN or infinity; without a model a file declares at most :data:`MAX_ELEMENTS` mask
entries; an open_lth report is at most :data:`MAX_REPORT_BYTES`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskFileError

__all__ = ["MAX_ELEMENTS", "MAX_HEADER_BYTES", "MAX_INT_DIGITS", "MAX_JSON_DEPTH",
           "MAX_REPORT_BYTES", "check_meta", "is_count", "one_line", "parse_json", "q", "short"]

MAX_HEADER_BYTES = 8 << 20
"""Largest safetensors JSON header, torch pickle (``data.pkl``) or metadata JSON read (8 MiB)."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of lists/objects accepted in metadata JSON."""
MAX_INT_DIGITS = 24
"""Most digits of an integer in metadata JSON (a shape, a count)."""
MAX_ELEMENTS = 1 << 31
"""Most mask entries (weights) one file may declare when no ``net`` bounds it (2**31)."""
MAX_REPORT_BYTES = 1 << 16
"""Largest open_lth ``sparsity_report.json`` read."""

META_KEY = "__metadata__"  # npz / torch entry holding the metadata JSON
ST_META_KEY = "sparsegraph"  # safetensors header metadata key holding the metadata JSON
SUFFIX_FORMAT = {".safetensors": "safetensors", ".npz": "npz", ".pt": "torch", ".pth": "torch"}


def q(path: Any) -> str:
    """A path quoted for a message."""
    return repr(str(path))


def one_line(exc: BaseException) -> str:
    """``"Type: first line of the message"``."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------- JSON


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text, strings skipped; linear time."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    raw = np.frombuffer(bare.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    where = np.flatnonzero((raw == 0x5B) | (raw == 0x7B) | (raw == 0x5D) | (raw == 0x7D))
    if where.size == 0:
        return 0
    steps = np.where((raw[where] == 0x5B) | (raw[where] == 0x7B), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:30]} is out of range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def parse_json(text: Any, where: str) -> Any:
    """JSON text (str, bytes or a uint8 array) parsed within the limits of this module.

    Raises
    ------
    MaskFileError
        For text over :data:`MAX_HEADER_BYTES`, invalid UTF-8 or JSON, nesting deeper than
        :data:`MAX_JSON_DEPTH`, integers over :data:`MAX_INT_DIGITS` digits, NaN or infinity;
        ``where`` names the file and the field.
    """
    if isinstance(text, np.ndarray):
        text = text.tobytes()
    if isinstance(text, (bytes, bytearray, memoryview)):
        if len(text) > MAX_HEADER_BYTES:
            raise MaskFileError(f"{where}: {len(text):,} bytes of JSON, more than the "
                                f"{MAX_HEADER_BYTES:,} allowed")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MaskFileError(f"{where}: not UTF-8 text ({one_line(exc)})") from None
    if not isinstance(text, str):
        raise MaskFileError(f"{where}: expected JSON text, got {type(text).__name__}")
    if len(text) > MAX_HEADER_BYTES:
        raise MaskFileError(f"{where}: {len(text):,} characters of JSON, more than the "
                            f"{MAX_HEADER_BYTES:,} allowed")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise MaskFileError(
            f"{where}: JSON nested {depth} levels deep (at most {MAX_JSON_DEPTH})"
        )
    try:
        return json.loads(text, parse_int=_bounded_int, parse_float=_finite_float,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError, OverflowError) as exc:
        raise MaskFileError(f"{where}: unreadable JSON ({one_line(exc)})") from None


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """The metadata object, with the fields the library relies on checked for type."""
    if not isinstance(meta, dict):
        raise MaskFileError(f"mask file {q(path)}: metadata is not a JSON object")
    where = f"mask file {q(path)}: metadata"
    names, shapes = meta.get("layer_names"), meta.get("layer_shapes")
    if names is not None and not (isinstance(names, list)
                                  and all(isinstance(n, str) for n in names)):
        raise MaskFileError(f"{where} 'layer_names': expected a list of parameter names, got "
                            f"{short(names)}")
    if shapes is not None and not (
        isinstance(shapes, list)
        and all(isinstance(s, list) and all(is_count(d) for d in s) for s in shapes)
    ):
        raise MaskFileError(f"{where} 'layer_shapes': expected a list of shapes (lists of "
                            f"non-negative integers), got {short(shapes)}")
    if names is not None and shapes is not None and len(names) != len(shapes):
        raise MaskFileError(f"{where}: {len(names)} layer_names but {len(shapes)} layer_shapes")
    for key in ("fingerprint", "network", "format"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise MaskFileError(f"{where} {key!r}: expected a string, got {short(meta[key])}")
    for key in ("params", "kept", "format_version"):
        if meta.get(key) is not None and not is_count(meta[key]):
            raise MaskFileError(
                f"{where} {key!r}: expected a non-negative integer, got {short(meta[key])}"
            )
    return meta
