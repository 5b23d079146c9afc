"""The first-run notice: shown on a terminal while numba compiles, never elsewhere."""

from __future__ import annotations

import io

from numba.core import event

from sparsegraph.cli.notice import MESSAGE, compile_notice


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Dispatcher:
    def py_func(self) -> None:  # pragma: no cover - only its name is read
        """A kernel."""


def _compile_event() -> None:
    with event.trigger_event("numba:compile", data={"dispatcher": _Dispatcher()}):
        pass


def test_notice_shows_on_a_terminal_while_compiling():
    term = _Terminal()
    with compile_notice(term) as spinner:
        assert term.getvalue() == ""  # nothing until numba compiles
        _compile_event()
        _compile_event()
    assert MESSAGE in term.getvalue()
    assert [name for name, _ in spinner.compiled] == ["_Dispatcher.py_func"] * 2
    assert spinner.status is None  # stopped (and, being transient, erased)


def test_no_notice_when_not_a_terminal_or_not_compiling():
    piped = io.StringIO()
    with compile_notice(piped) as spinner:
        _compile_event()
    assert spinner is None and piped.getvalue() == ""
    term = _Terminal()
    with compile_notice(term):
        pass  # kernels loaded from the cache: no compile event
    assert term.getvalue() == ""
    with compile_notice(term, enabled=False) as spinner:
        _compile_event()
    assert spinner is None and term.getvalue() == ""
