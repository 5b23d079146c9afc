"""Atomic file writes: a temporary file beside the target, fsynced, then renamed over it.

An interrupted write never leaves a partial target. Ctrl-C (``KeyboardInterrupt``) and SIGTERM
/ SIGHUP arriving during the write remove the temporary file first (SIGTERM and SIGHUP are then
re-delivered, so the process still ends as the signal asks); a process killed outright
(SIGKILL, power loss) can leave one, named ``.<target name>.<8 random characters>.sgtmp``:
every write sweeps such files older than :data:`STALE_SECONDS` (and owned by the current user)
from the directory it writes into.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .errors import SparseGraphError

__all__ = ["STALE_SECONDS", "TEMP_SUFFIX", "atomic_write", "sweep_stale_temporaries"]

TEMP_SUFFIX = ".sgtmp"
STALE_SECONDS = 600
"""Age (seconds since the last change) after which a leftover temporary file of ours is
removed by the next write into its directory."""
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _q(path: object) -> str:
    return repr(str(path))


class _Terminated(BaseException):
    """Raised by the temporary signal handler so that cleanup code runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP (where they have their default action and this is
    the main thread) raise :class:`_Terminated` instead of killing the process outright."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def sweep_stale_temporaries(directory: Path, *, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove this library's leftover temporary files (``.<name>.<random>.sgtmp``, regular
    files owned by the current user, unchanged for ``older_than`` seconds) from
    ``directory``; returns those removed. Errors (a file vanishing, no permission) are
    ignored."""
    removed = []
    now = time.time()
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (uid is not None and st.st_uid != uid):
                continue
            if now - st.st_mtime < older_than:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def atomic_write(
    path: Path,
    write: Callable[[IO[bytes]], None],
    *,
    overwrite: bool,
    error: type[SparseGraphError],
) -> None:
    """Write ``path`` through a temporary file in its directory, fsync, then rename.

    ``write(fh)`` writes the content. Without ``overwrite``, an existing ``path`` is refused,
    also when another writer creates it meanwhile (a no-clobber hard link). Failures of the
    file system (no space, no permission) raise ``error`` naming the path; the temporary file
    is removed on every failure and interruption.
    """
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise error(f"cannot write {_q(path)}: directory {_q(directory)} does not exist")
    if path.is_dir():
        raise error(f"cannot write {_q(path)}: it is a directory")
    if path.exists() and not overwrite:
        raise error(f"{_q(path)} exists; pass overwrite=True (--force) to replace it")
    sweep_stale_temporaries(directory)
    terminated: _Terminated | None = None
    with _signals_raise():
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX,
                                       dir=directory)
            umask = os.umask(0o022)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            _rename(tmp, path, overwrite, error)
            tmp = None
        except _Terminated as exc:
            terminated = exc
        except SparseGraphError:
            raise
        except OSError as exc:
            why = f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else str(exc)
            raise error(f"cannot write {_q(path)}: {why}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
    if terminated is not None:  # cleaned up: now end as the signal asked
        signal.raise_signal(terminated.signum)
        raise KeyboardInterrupt  # pragma: no cover - only if the default action returned
    _fsync_dir(directory)


def _rename(tmp: str, path: Path, overwrite: bool, error: type[SparseGraphError]) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:  # no-clobber rename: fails if another writer created path meanwhile
        os.link(tmp, path)
    except FileExistsError:
        raise error(f"{_q(path)} exists; pass overwrite=True (--force) to replace it") from None
    except OSError:  # file system without hard links
        if path.exists():
            raise error(
                f"{_q(path)} exists; pass overwrite=True (--force) to replace it"
            ) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
