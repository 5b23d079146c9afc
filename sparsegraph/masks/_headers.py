"""What a mask file declares, parsed in full before any tensor data is read.

One parser per format turns a file's header into :class:`Contents`: the format, one
:class:`Entry` per tensor (stored key, dtype, shape, and a function that reads exactly its
declared bytes) and the metadata. Sizes are checked against the file while parsing:
safetensors byte ranges must tile the data section, each ``.npz`` member's size must equal its
``.npy`` header's shape times itemsize (read before anything is decompressed), a torch archive
holds only stored records and a pickle of bounded size (read memory-mapped by the weights-only
unpickler, so tensor shapes and strides are known before data is touched).

The format is decided from the suffix and a full parse, never from one byte (a safetensors
header length whose first byte is 0x80 is still a safetensors file): ``.safetensors``,
``.npz`` and ``.pt``/``.pth`` must hold that format, any other name is recognised by parsing
(safetensors first, then a zip archive, then a pickle).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MaskFileError, SparseGraphError
from ._keys import is_mask_key, prune_tensors, sparsifier_tensors
from ._limits import MAX_HEADER_BYTES, is_count, one_line, parse_json, q, short

__all__ = ["Contents", "Entry", "META_KEY", "ST_META_KEY", "contents_of", "regular_size"]

META_KEY = "__metadata__"  # npz / torch entry holding the metadata JSON
ST_META_KEY = "sparsegraph"  # safetensors header metadata key holding the metadata JSON
SUFFIX_FORMAT = {".safetensors": "safetensors", ".npz": "npz", ".pt": "torch", ".pth": "torch"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class Entry:
    """One tensor a file declares: its stored key, dtype and shape, and how to read it."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    load: Callable[[], Any]
    mapped: bool = False  # the values live in a memory map of the file: copy them out


@dataclass
class Contents:
    """What a header declares: the format, the tensor entries and the metadata. The entries
    read through file handles held here: :meth:`close` releases them."""

    fmt: str
    entries: list[Entry]
    meta: dict[str, Any]
    handles: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Close the file handles the entries read through."""
        for handle in self.handles:
            handle.close()
        self.handles.clear()


def _read_exact(fh: Any, nbytes: int, what: str) -> np.ndarray:
    buf = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(buf)
    got = 0
    while got < nbytes:
        n = fh.readinto(view[got:])
        if not n:
            raise MaskFileError(f"{what}: truncated ({got:,} of {nbytes:,} bytes)")
        got += n
    return buf


# ------------------------------------------------------------------------------ safetensors

# safetensors dtype -> (numpy dtype or None for a custom decode, bytes per element)
_ST_DTYPES: dict[str, tuple[str | None, int]] = {
    "BOOL": ("|b1", 1), "U8": ("|u1", 1), "I8": ("|i1", 1), "I16": ("<i2", 2),
    "U16": ("<u2", 2), "I32": ("<i4", 4), "U32": ("<u4", 4), "I64": ("<i8", 8),
    "U64": ("<u8", 8), "F16": ("<f2", 2), "F32": ("<f4", 4), "F64": ("<f8", 8),
    "BF16": (None, 2), "F8_E4M3": (None, 1), "F8_E5M2": (None, 1),
}


def _e4m3_table() -> np.ndarray:
    """The value of every byte as float8 e4m3fn (1 sign, 4 exponent bits with bias 7, 3
    mantissa bits, no infinities, NaN at S.1111.111), as float32."""
    b = np.arange(256, dtype=np.int64)
    sign = np.where(b >> 7, -1.0, 1.0)
    exp, man = (b >> 3) & 0xF, b & 0x7
    value = np.where(exp == 0, man / 8.0 * 2.0**-6, (1 + man / 8.0) * 2.0 ** (exp - 7))
    value = np.where((exp == 15) & (man == 7), np.nan, value)
    return (sign * value).astype(np.float32)


def _decode(raw: np.ndarray, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Raw little-endian bytes of one safetensors tensor as a numpy array of its values."""
    np_dtype, _ = _ST_DTYPES[dtype]
    if np_dtype is not None:
        return raw.view(np.dtype(np_dtype)).reshape(shape)
    if dtype == "BF16":
        bits = raw.view("<u2").astype(np.uint32) << np.uint32(16)
        return bits.view(np.float32).reshape(shape)
    if dtype == "F8_E5M2":  # the upper byte of a float16
        return (raw.astype(np.uint16) << np.uint16(8)).view(np.float16).reshape(shape)
    return _e4m3_table()[raw].reshape(shape)  # F8_E4M3


def _safetensors_header(path: Path, size: int) -> tuple[int, dict[str, Any]] | str:
    """``(header length, header object)`` of a safetensors file, or a string saying why the
    bytes are not one (the caller decides whether that is an error)."""
    if size < 8:
        return f"{size} bytes, shorter than the 8-byte header length"
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n < 2 or n > size - 8:
            return f"a header length of {n:,} bytes in a file of {size:,}"
        if n > MAX_HEADER_BYTES:
            return f"a header of {n:,} bytes, more than the {MAX_HEADER_BYTES:,} allowed"
        text = fh.read(n)
    if text[:1] != b"{":
        return "the header is not a JSON object"
    try:
        header = parse_json(text, "header")
    except MaskFileError as exc:
        return str(exc)
    if not isinstance(header, dict):
        return "the header is not a JSON object"
    return n, header


def _safetensors_contents(path: Path, size: int, header_len: int, header: dict) -> Contents:
    where = f"safetensors mask file {q(path)}"
    buffer = size - 8 - header_len
    meta_raw = header.pop("__metadata__", None) or {}
    if not (isinstance(meta_raw, dict) and all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in meta_raw.items())):
        raise MaskFileError(f"{where}: '__metadata__' must map strings to strings")
    if ST_META_KEY in meta_raw:
        meta = parse_json(meta_raw[ST_META_KEY], f"{where}: metadata {ST_META_KEY!r}")
    else:
        meta = dict(meta_raw)
    spans = []
    entries = []
    handles: list[Any] = []
    for key, info in header.items():
        if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "data_offsets"}):
            raise MaskFileError(f"{where}: entry {key!r} is not a tensor description "
                                "(dtype, shape, data_offsets)")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ST_DTYPES:
            raise MaskFileError(f"{where}: entry {key!r} has dtype {short(dtype)}; a mask must "
                                f"be one of {', '.join(_ST_DTYPES)}")
        if not (isinstance(shape, list) and all(is_count(d) for d in shape)):
            raise MaskFileError(f"{where}: entry {key!r} has shape {short(shape)}")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(is_count(o) for o in offsets) and offsets[0] <= offsets[1]):
            raise MaskFileError(f"{where}: entry {key!r} has data_offsets {short(offsets)}")
        begin, end = offsets
        nbytes = math.prod(shape) * _ST_DTYPES[dtype][1]
        if end - begin != nbytes:
            raise MaskFileError(f"{where}: entry {key!r} declares shape {shape} of {dtype} "
                                f"({nbytes:,} bytes) but holds {end - begin:,} bytes")
        if end > buffer:
            raise MaskFileError(f"{where}: entry {key!r} ends at byte {end:,} of a data section "
                                f"of {buffer:,} (truncated?)")
        spans.append((begin, end, key))
        start = 8 + header_len + begin

        def load(start: int = start, nbytes: int = nbytes, dtype: str = dtype,
                 shape: tuple[int, ...] = tuple(shape), key: str = key) -> np.ndarray:
            if not handles:
                handles.append(open(path, "rb"))  # noqa: SIM115 - closed by Contents.close
            handles[0].seek(start)
            return _decode(_read_exact(handles[0], nbytes, f"{where}: entry {key!r}"), dtype,
                           shape)

        entries.append(Entry(key, dtype, tuple(shape), load))
    spans.sort()
    cursor = 0
    for begin, end, key in spans:
        if begin != cursor:
            raise MaskFileError(f"{where}: entry {key!r} starts at byte {begin:,}, expected "
                                f"{cursor:,} (overlapping or gapped data)")
        cursor = end
    if cursor != buffer:
        raise MaskFileError(f"{where}: the tensors cover {cursor:,} of {buffer:,} data bytes")
    return Contents("safetensors", entries, meta, handles)


# --------------------------------------------------------------------------------------- npz


def _npy_header(fh: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            return fmt.read_array_header_1_0(fh, max_header_size=10000)
        if version == (2, 0):
            return fmt.read_array_header_2_0(fh, max_header_size=10000)
    except (ValueError, SyntaxError, TypeError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise MaskFileError(f"{where}: unreadable .npy header ({one_line(exc)})") from None
    raise MaskFileError(f"{where}: unsupported .npy format version {version}")


@contextlib.contextmanager
def _zip_errors(where: str) -> Iterator[None]:
    """Errors of a corrupt zip member (bad local header, CRC, deflate stream) as MaskFileError."""
    try:
        yield
    except SparseGraphError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, RuntimeError,
            NotImplementedError, struct.error, OverflowError, IndexError, KeyError) as exc:
        raise MaskFileError(f"{where}: corrupt or truncated ({one_line(exc)})") from None


def _npz_contents(path: Path, zf: zipfile.ZipFile) -> Contents:
    where = f"npz mask file {q(path)}"
    entries = []
    meta: dict[str, Any] = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            raise MaskFileError(f"{where}: member {info.filename!r} is not a .npy array")
        key = info.filename[: -len(".npy")]
        member = f"{where}: {info.filename!r}"
        with _zip_errors(member), zf.open(info) as fh:
            shape, fortran, dtype = _npy_header(fh, member)
            offset = fh.tell()
        if dtype.hasobject:
            raise MaskFileError(
                f"refused to load {q(path)}: it holds pickled object arrays; "
                "sparsegraph reads .npz files only with allow_pickle=False"
            )
        if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
            raise MaskFileError(f"{member} has dtype {dtype}; a mask is bool or numeric")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            raise MaskFileError(
                f"{member} declares shape {list(shape)} of {dtype} ({nbytes:,} bytes) but the "
                f"member holds {info.file_size - offset:,} bytes after its header"
            )

        def load(info: zipfile.ZipInfo = info, offset: int = offset, nbytes: int = nbytes,
                 shape: tuple[int, ...] = shape, fortran: bool = fortran,
                 dtype: np.dtype = dtype, member: str = member) -> np.ndarray:
            with _zip_errors(member), zf.open(info) as fh:
                fh.read(offset)
                raw = _read_exact(fh, nbytes, member)
                if fh.read(1):  # reaching the end also checks the member's CRC
                    raise MaskFileError(f"{member}: more data than its header declares")
            arr = raw.view(dtype)
            return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)

        if key == META_KEY:
            if dtype != np.uint8 or len(shape) != 1 or nbytes > MAX_HEADER_BYTES:
                raise MaskFileError(f"{member}: metadata must be a uint8 array of at most "
                                    f"{MAX_HEADER_BYTES:,} bytes")
            meta = parse_json(load(), f"{where}: metadata")
            continue
        entries.append(Entry(key, str(dtype), tuple(shape), load))
    return Contents("npz", entries, meta, [zf])


# ------------------------------------------------------------------------------------- torch


def _check_torch_zip(path: Path, zf: zipfile.ZipFile) -> None:
    """A torch zip archive must be what ``torch.save`` writes: stored (uncompressed) records,
    a pickle of bounded size. So no record can expand beyond the file's own size."""
    where = f"torch mask file {q(path)}"
    for info in zf.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise MaskFileError(f"{where}: record {info.filename!r} is compressed; torch.save "
                                "writes stored records only")
        if info.filename.endswith("data.pkl") and info.file_size > MAX_HEADER_BYTES:
            raise MaskFileError(f"{where}: a pickle of {info.file_size:,} bytes, more than the "
                                f"{MAX_HEADER_BYTES:,} allowed for masks")


def _torch_load(path: Path, mmap: bool) -> Any:
    import pickle

    import torch

    try:
        # collections.OrderedDict is allowed by default; nothing else is added: a file holding
        # any other object is refused here, before anything in it runs. mmap: tensors stay in
        # the file until read, so their shapes can be checked first.
        with warnings.catch_warnings():  # protocol-version chatter of the weights-only loader
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "defaultdict" in msg:
            raise MaskFileError(
                f"mask file {q(path)} holds a collections.defaultdict (a raw torch.ao.pruning "
                "sparsifier.state_dict()?), which weights_only loading cannot read; save "
                "{'state': dict(sd['state']), 'groups': sd['groups']} instead"
            ) from None
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        what = f" (it references {found.group(1)})" if found else ""
        raise MaskFileError(
            f"refused to load {q(path)}: it is a pickle holding objects other than tensors"
            f"{what}; sparsegraph reads torch files only with weights_only=True"
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever a corrupt file makes the loader raise
        raise MaskFileError(
            f"cannot read torch mask file {q(path)} (corrupt or truncated?): {one_line(exc)}"
        ) from None


def _torch_contents(path: Path, mmap: bool) -> Contents:
    obj = _torch_load(path, mmap)
    where = f"mask file {q(path)}"
    if not isinstance(obj, Mapping):
        raise MaskFileError(f"{where}: expected a dict of tensors, got {type(obj).__name__}")
    meta: dict[str, Any] = {}
    if "state" in obj and "groups" in obj:
        fmt, tensors = "ao_sparsifier", sparsifier_tensors(obj)
    else:
        if isinstance(obj.get("state_dict"), Mapping):  # a training checkpoint
            obj = obj["state_dict"]
        raw = dict(obj)
        if META_KEY in raw:
            text = raw.pop(META_KEY)
            if not isinstance(text, str):
                raise MaskFileError(f"{where}: {META_KEY!r} must be a JSON string")
            meta = parse_json(text, f"{where}: metadata")
        if any(isinstance(k, str) and is_mask_key(k) for k in raw):
            fmt, tensors = "torch_prune", prune_tensors(raw)
        else:
            fmt, tensors = "torch", raw
    entries = []
    for key, value in tensors.items():
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise MaskFileError(
                f"{where}: entry {key!r} is a {type(value).__name__}, not a tensor; expected "
                "{parameter name: 0/1 tensor}"
            )
        entries.append(Entry(key, str(value.dtype), tuple(int(s) for s in value.shape),
                             lambda v=value: v, mapped=mmap))
    return Contents(fmt, entries, meta)


# ----------------------------------------------------------------------------------- format


def _zip_kind(zf: zipfile.ZipFile) -> str | None:
    names = zf.namelist()
    if any(n.endswith("data.pkl") for n in names):
        return "torch"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return None


def _open_zip(path: Path) -> zipfile.ZipFile | None:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head not in _ZIP_MAGIC:
        return None
    try:
        return zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - a corrupt directory makes zipfile raise anything
        raise MaskFileError(
            f"mask file {q(path)} is a corrupt or truncated zip archive ({one_line(exc)})"
        ) from None


def _is_pickle(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"


def contents_of(path: Path, size: int) -> Contents:
    """Parse the header of a regular file, deciding its format from the suffix and the parse."""
    expected = SUFFIX_FORMAT.get(path.suffix.lower())
    parsed = _safetensors_header(path, size)
    if not isinstance(parsed, str):
        if expected not in (None, "safetensors"):
            raise MaskFileError(f"mask file {q(path)} is a safetensors file, not {expected}; "
                                "rename it to .safetensors")
        return _safetensors_contents(path, size, *parsed)
    zf = _open_zip(path)
    if zf is not None:
        with contextlib.ExitStack() as stack:
            stack.callback(zf.close)
            kind = _zip_kind(zf)
            if expected == "safetensors" or (kind and expected and kind != expected):
                what = {"torch": "a torch file", "npz": "an .npz archive"}.get(kind or "",
                                                                                "a zip archive")
                raise MaskFileError(f"mask file {q(path)} is {what}, not {expected}; name it "
                                    "by its format (.safetensors, .npz, .pt)")
            if kind is None:
                raise MaskFileError(
                    f"mask file {q(path)}: a zip archive that is neither .npz nor torch"
                )
            if kind == "npz":
                contents = _npz_contents(path, zf)
                stack.pop_all()  # the entries read through it: Contents.close closes it
                return contents
            _check_torch_zip(path, zf)
        return _torch_contents(path, mmap=True)
    if _is_pickle(path) and expected in (None, "torch"):
        return _torch_contents(path, mmap=False)  # torch's legacy format, or a bare pickle
    if expected == "safetensors":
        what = " (a pickle: a torch file?)" if _is_pickle(path) else ""
        raise MaskFileError(f"cannot read safetensors mask file {q(path)} (corrupt or "
                            f"truncated?){what}: {parsed}")
    if expected is not None:
        raise MaskFileError(f"mask file {q(path)} is not a {expected} file (corrupt or "
                            "truncated?)")
    raise MaskFileError(
        f"mask file {q(path)}: unknown format (not safetensors, npz or a torch file)"
    )


def regular_size(path: Path, what: str = "mask file") -> int:
    """The size of a regular file; refuses, before opening, anything else (a FIFO, a device)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise MaskFileError(f"{what} {q(path)} does not exist") from None
    except OSError as exc:
        raise MaskFileError(f"cannot read {what} {q(path)}: {one_line(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise MaskFileError(f"{what} {q(path)} is {kind}")
    return st.st_size
