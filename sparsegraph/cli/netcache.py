"""A cache of traced built-in networks, so a command that needs only the graph skips torch.

Tracing a built-in model needs torch (about 1-2 s to import) and the tracer (about 1.5 s on a
first call); the Network it returns is plain data. For a built-in model name with its default
input and no tracer options, commands that need only the graph (``audit``, ``spectral``
without ``--weighted``, ``quotas``, ``generate``) read the Network from this cache when they
can and write it after tracing when they cannot.

Safety and staleness:

* the file is a ``.npz`` read with ``allow_pickle=False``: the structure is JSON, the arrays are
  plain numeric arrays, and only dataclasses defined in ``sparsegraph.graph`` are rebuilt, by
  their own constructors (so a Network checks itself again when it is read);
* the key is a hash of the model name, the input shape, the sparsegraph version, the torch
  version and the source files of the tracer, the graph model and the built-in models, so any
  change to them is a miss, never a stale graph;
* it lives in ``$SPARSEGRAPH_CACHE_DIR``, else ``$XDG_CACHE_HOME/sparsegraph``, else
  ``~/.cache/sparsegraph``; ``SPARSEGRAPH_CACHE_DIR=off`` switches it off. A directory that cannot
  be written, or a Network the encoder does not know, just means no caching.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "decode", "encode", "load", "store"]

_FORMAT = "sparsegraph-network-cache/1"
#: what a built-in Network is computed from
_SOURCES = ("graph", "pytorch/models.py", "pytorch/models_cnn.py", "pytorch/models_modern.py")


class _Unknown(TypeError):
    """A value the encoder does not know (no caching then)."""


def cache_dir() -> Path | None:
    """Where the cache lives, or None when it is switched off."""
    env = os.environ.get("SPARSEGRAPH_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sparsegraph"


def _key(name: str, input_shape: tuple[int, ...]) -> str:
    from importlib import metadata

    from .. import __version__

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:  # pragma: no cover - torch is a dependency
        torch_version = "none"
    h.update(f"{_FORMAT}|{name}|{input_shape}|{__version__}|{torch_version}".encode())
    for rel in _SOURCES:
        path = root / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:24]


# ------------------------------------------------------------------------------ the encoding


def encode(obj: Any, arrays: list[Any]) -> Any:
    """``obj`` as JSON-able data, its numpy arrays appended to ``arrays``.

    Raises
    ------
    TypeError
        For a value that is not plain data (then nothing is cached).
    """
    import numpy as np

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else {"float": repr(v)}
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise _Unknown(f"array of dtype {obj.dtype}")
        arrays.append(obj)
        return {"array": len(arrays) - 1}
    if isinstance(obj, tuple):
        return {"tuple": [encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [encode(v, arrays) for v in obj]
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return {"dict": {k: encode(v, arrays) for k, v in obj.items()}}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        if not cls.__module__.startswith("sparsegraph.graph."):
            raise _Unknown(f"class {cls.__module__}.{cls.__qualname__}")
        names = {f.name for f in dataclasses.fields(obj) if f.init and not f.name.startswith("_")}
        fields = {n: encode(getattr(obj, n), arrays) for n in sorted(names)}
        extra = {k: encode(v, arrays) for k, v in vars(obj).items()
                 if k not in names and not k.startswith("_")} if hasattr(obj, "__dict__") else {}
        return {"class": f"{cls.__module__}:{cls.__qualname__}", "fields": fields,
                "extra": extra}
    raise _Unknown(type(obj).__name__)


def decode(data: Any, arrays: Any) -> Any:
    """The inverse of :func:`encode` (only ``sparsegraph.graph`` dataclasses are rebuilt)."""
    if isinstance(data, list):
        return [decode(v, arrays) for v in data]
    if not isinstance(data, dict):
        return data
    if "array" in data:
        return arrays[f"a{int(data['array'])}"]
    if "float" in data:
        return float(data["float"])
    if "tuple" in data:
        return tuple(decode(v, arrays) for v in data["tuple"])
    if "dict" in data:
        return {k: decode(v, arrays) for k, v in data["dict"].items()}
    module, _, qualname = str(data["class"]).partition(":")
    if not module.startswith("sparsegraph.graph.") or "." in qualname:
        raise ValueError(f"refusing to rebuild {data['class']!r}")
    cls = getattr(importlib.import_module(module), qualname)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"refusing to rebuild {data['class']!r}")
    obj = cls(**{k: decode(v, arrays) for k, v in data["fields"].items()})
    for k, v in data.get("extra", {}).items():
        object.__setattr__(obj, k, decode(v, arrays))
    return obj


# --------------------------------------------------------------------------------- the files


def _path(name: str, input_shape: tuple[int, ...]) -> Path | None:
    where = cache_dir()
    return None if where is None else where / f"{name}-{_key(name, input_shape)}.npz"


def load(name: str, input_shape: tuple[int, ...]) -> Any:
    """The cached Network of built-in ``name`` at ``input_shape``, or None."""
    path = _path(name, input_shape)
    if path is None or not path.is_file():
        return None
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as table:
            arrays = {k: table[k] for k in table.files if k != "structure"}
            meta = json.loads(bytes(table["structure"]).decode("utf-8"))
        if meta.get("format") != _FORMAT:
            return None
        return decode(meta["network"], arrays)
    except Exception:  # noqa: BLE001 - a damaged cache entry is a miss, never an error
        return None


def store(name: str, input_shape: tuple[int, ...], net: Any) -> Path | None:
    """Write ``net`` for ``name``; returns the file, or None when not cached."""
    path = _path(name, input_shape)
    if path is None:
        return None
    import numpy as np

    arrays: list[Any] = []
    try:
        structure = {"format": _FORMAT, "network": encode(net, arrays)}
    except TypeError:
        return None
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload["structure"] = np.frombuffer(json.dumps(structure).encode("utf-8"), dtype=np.uint8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **payload)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except OSError:
        return None
    return path
