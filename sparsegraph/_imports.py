"""Import a user's object named ``package.module:attr`` or ``path/to/file.py:attr``.

The one loader of user-supplied code: MODEL arguments
(:func:`sparsegraph.pytorch.models.resolve_model`), data factories and identity module classes;
the standard library only. Importing runs the module's code, as ``python -c "import ..."`` would:
it is how users hand their own code to the command line, never a way data files are read.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ArgumentError, SparseGraphError

__all__ = ["import_object", "looks_like_file", "looks_like_import"]


def looks_like_import(text: str) -> bool:
    """Whether ``text`` has the ``module:attr`` form (a Windows drive letter is not one).

    Examples
    --------
    >>> looks_like_import("pkg.data:make"), looks_like_import("inputs.npz")
    (True, False)
    """
    head, sep, tail = text.rpartition(":")
    return bool(sep and head and tail and not (len(head) == 1 and head.isalpha()))


def looks_like_file(text: str) -> bool:
    """Whether the module part of a spec names a file (``.py``, a path, or an existing file)
    rather than a module to import by name."""
    return text.endswith(".py") or os.sep in text or "/" in text or Path(text).is_file()


def _from_file(path_text: str, what: str, error: type[SparseGraphError]) -> Any:
    path = Path(path_text).expanduser()
    if not path.is_file():  # a FIFO or device would block the import: refused, not opened
        state = "is not a regular file" if path.exists() else "does not exist"
        raise error(f"{what}: file {path_text!r} {state}")
    resolved = str(path.resolve())
    for module in list(sys.modules.values()):  # imported already (e.g. as the MODEL's file):
        where = getattr(module, "__file__", None)  # the same classes, not a second copy
        if where and os.path.realpath(where) == resolved:
            return module
    name = f"_sparsegraph_user_{abs(hash(resolved))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise error(f"{what}: {path_text!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any import failure is a bad spec
        sys.modules.pop(name, None)
        raise error(
            f"{what}: importing {path_text!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        try:
            sys.path.remove(str(path.resolve().parent))
        except ValueError:  # pragma: no cover - the module removed it itself
            pass
    return module


def _from_module(name: str, what: str, error: type[SparseGraphError]) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):  # the module itself is missing
            raise error(
                f"{what}: cannot import module {name!r}: no module named {exc.name!r} (is it "
                "installed or on PYTHONPATH? for a file, give path/to/file.py:name)"
            ) from exc
        raise error(f"{what}: importing module {name!r} failed: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any import-time failure is a bad spec
        raise error(
            f"{what}: importing module {name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def import_object(text: str, what: str, *, error: type[SparseGraphError] = ArgumentError
                  ) -> Any:
    """The object ``attr`` (a dotted path is allowed) of ``module:attr`` or ``file.py:attr``.

    A file is imported once per process (a second spec naming it gets the same module, so the
    same classes); it may import the modules beside it.

    Parameters
    ----------
    text : str
        ``package.module:attr`` or ``path/to/file.py:attr``.
    what : str
        The argument's name, first in every message (``"--identity-modules"``, ``"MODEL"``).
    error : SparseGraphError subclass, default ArgumentError
        The error raised (a MODEL argument raises :class:`~sparsegraph.errors.ModelSpecError`).

    Raises
    ------
    ArgumentError (or ``error``)
        For text without ``:``, a missing file or one that is not a regular file, an import
        error (the module's own exception named), or a missing attribute (with the closest
        names).

    Examples
    --------
    >>> import_object("collections:OrderedDict", "--x").__name__
    'OrderedDict'
    >>> import_object("collections:OrderDict", "--x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.ArgumentError: --x: 'collections' has no attribute 'OrderDict'; did ...
    """
    if not isinstance(text, str) or not looks_like_import(text.strip()):
        raise error(f"{what}: expected module:name or path/to/file.py:name, got {text!r}")
    where, _, attr_path = text.strip().rpartition(":")
    obj: Any = (_from_file(where, what, error) if looks_like_file(where)
                else _from_module(where, what, error))
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            close = difflib.get_close_matches(
                part, [n for n in dir(obj) if not n.startswith("_")], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise error(f"{what}: {where!r} has no attribute {attr_path!r}{hint}")
        obj = getattr(obj, part)
    return obj
