"""A writable cache for numba's compiled kernels, found before any kernel module is imported.

Every kernel is ``@njit(cache=True)``. numba looks for a cache directory when the decorator
runs, in this order: ``NUMBA_CACHE_DIR``; the ``__pycache__`` beside the kernel's source file;
the user-wide cache (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba`` on Linux). When none is
writable (a read-only or root-owned install used by another user, with ``HOME`` unwritable or
``NUMBA_CACHE_DIR`` pointing somewhere unwritable) it raises "cannot cache function ...: no
locator available" at import, which made every command, ``--help`` included, fail.

:func:`ensure_kernel_cache` (called by ``sparsegraph/__init__.py``, so before any kernel
module loads, and without importing numba) checks those places the way numba does and, when
none is usable, points ``NUMBA_CACHE_DIR`` at a private directory under the system's temporary
directory (``<tmp>/sparsegraph-numba-<uid>``, mode 0700, owned by the current user: numba's
cache files are pickles, so a directory others can write to is never used; a fresh
``mkdtemp`` directory is used instead), with one :class:`RuntimeWarning`.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
import warnings
from pathlib import Path

__all__ = ["ensure_kernel_cache"]

_PACKAGE = Path(__file__).resolve().parent
_done = False


def _usable(path: str | os.PathLike) -> bool:
    """What numba's locators check: the directory can be created and written to."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except (OSError, ValueError):
        return False
    return True


def _user_cache_dir() -> str:
    """numba's user-wide cache directory (``appdirs.user_cache_dir("numba")``)."""
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/numba")
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
        return os.path.join(base, "numba", "numba", "Cache")
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "numba")


def _configured() -> str:
    numba = sys.modules.get("numba")
    if numba is not None:  # already imported: its config is what counts
        return str(getattr(numba.core.config, "CACHE_DIR", "") or "")
    return os.environ.get("NUMBA_CACHE_DIR", "")


def _private_dir(path: Path) -> bool:
    """``path`` exists (created 0700 if missing), is a real directory owned by us and not
    writable by group or others."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
        return False
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return False
    return _usable(path)


def _fallback() -> str | None:
    try:
        base = Path(tempfile.gettempdir())
    except (OSError, FileNotFoundError):
        return None
    uid = os.geteuid() if hasattr(os, "geteuid") else os.environ.get("USERNAME", "user")
    shared = base / f"sparsegraph-numba-{uid}"
    if _private_dir(shared):
        return str(shared)
    try:
        return tempfile.mkdtemp(prefix="sparsegraph-numba-")
    except OSError:
        return None


def ensure_kernel_cache() -> str | None:
    """Make sure numba can cache the kernels; returns the fallback directory when one was set.

    Runs once per process; cheap (a few ``stat`` calls and temporary files) and without
    importing numba. Sets ``os.environ["NUMBA_CACHE_DIR"]`` (inherited by subprocesses such
    as Dask workers) and, when numba is already imported, ``numba.core.config.CACHE_DIR``.
    """
    global _done
    if _done:
        return None
    _done = True
    configured = _configured()
    if configured and _usable(configured):
        return None
    kernel_dirs = sorted({p.parent for p in _PACKAGE.glob("*/_kernels*.py")}
                         | {p.parent for p in _PACKAGE.glob("_kernels*.py")})
    if all(_usable(d / "__pycache__") for d in kernel_dirs) or _usable(_user_cache_dir()):
        return None
    fallback = _fallback()
    where = (f"NUMBA_CACHE_DIR={configured!r}, " if configured else "") + (
        f"the package's __pycache__ or {_user_cache_dir()!r}")
    if fallback is None:
        warnings.warn(f"sparsegraph: numba cannot cache compiled kernels ({where} are not "
                      "writable and there is no temporary directory); set NUMBA_CACHE_DIR to a "
                      "writable directory", RuntimeWarning, stacklevel=3)
        return None
    os.environ["NUMBA_CACHE_DIR"] = fallback
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.core.config.CACHE_DIR = fallback
    warnings.warn(f"sparsegraph: numba cannot cache compiled kernels in {where} (not "
                  f"writable); caching them in {fallback} instead (set NUMBA_CACHE_DIR to "
                  "choose)", RuntimeWarning, stacklevel=3)
    return fallback
