"""Say so while numba compiles: ``compiling kernels (first run only)`` with a spinner.

The kernels are compiled on their first call in a fresh environment (tens of seconds) and loaded
from numba's on-disk cache afterwards. numba announces every real compilation (not a cache
load) as a ``"numba:compile"`` event; while one runs, a spinner naming the kernel is shown on
stderr. Only on a terminal: piped or redirected output, JSON included, never sees it, and the
spinner is erased when compilation ends.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["MESSAGE", "compile_notice"]

MESSAGE = "compiling kernels (first run only)"


class _Spinner:
    """Starts a rich status on the first compile event, stops it when the last one ends."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.depth = 0
        self.status: Any = None
        self.compiled: list[tuple[str, float]] = []
        self._t0: list[float] = []

    def start(self, name: str) -> None:
        self.depth += 1
        self._t0.append(time.perf_counter())
        if self.status is None:
            from rich.console import Console

            console = Console(file=self.stream, force_terminal=True)
            self.status = console.status(f"{MESSAGE}: {name}", spinner="dots")
            self.status.start()
        else:
            self.status.update(f"{MESSAGE}: {name}")

    def end(self, name: str) -> None:
        self.depth = max(0, self.depth - 1)
        if self._t0:
            self.compiled.append((name, time.perf_counter() - self._t0.pop()))
        if self.depth == 0:
            self.stop()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def _listener(spinner: _Spinner) -> Any:
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            disp = (ev.data or {}).get("dispatcher")
            func = getattr(disp, "py_func", None)
            spinner.start(getattr(func, "__qualname__", "kernel"))

        def on_end(self, ev: Any) -> None:
            disp = (ev.data or {}).get("dispatcher")
            func = getattr(disp, "py_func", None)
            spinner.end(getattr(func, "__qualname__", "kernel"))

    return Listener()


@contextlib.contextmanager
def compile_notice(stream: IO[str] | None = None, *, enabled: bool | None = None
                   ) -> Iterator[_Spinner | None]:
    """Show the notice on ``stream`` (stderr) while numba compiles inside the block.

    ``enabled`` defaults to whether ``stream`` is a terminal; when it is False nothing is
    imported or registered. Yields the spinner (its ``compiled`` list holds ``(kernel,
    seconds)`` per compilation) or None.
    """
    stream = sys.stderr if stream is None else stream
    if enabled is None:
        enabled = bool(getattr(stream, "isatty", lambda: False)())
    if not enabled:
        yield None
        return
    from numba.core import event

    spinner = _Spinner(stream)
    listener = _listener(spinner)
    event.register("numba:compile", listener)
    try:
        yield spinner
    finally:
        event.unregister("numba:compile", listener)
        spinner.stop()
