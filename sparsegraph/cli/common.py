"""Arguments and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, ModelSpecError


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Add MODEL and ``--input-shape`` to a sub-command."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a built-in name (see `sparsegraph models`), path/to/file.py:factory or "
        "package.module:factory",
    )
    parser.add_argument(
        "--input-shape",
        metavar="SHAPE",
        default=None,
        action=_ShapesAction,
        help="example input shape with batch, e.g. 1,3,32,32 (built-in models know theirs); "
        "repeat it for a model whose forward takes several inputs",
    )
    parser.add_argument(
        "--identity-modules",
        metavar="MODULE:CLASS[,...]",
        default=None,
        help="module classes the tracer treats as element-wise maps (custom activations or "
        "norms); the weights inside them are left out of the graph, and the output says so",
    )


class _ShapesAction(argparse.Action):
    """A repeatable ``--input-shape``: the occurrences are kept as one string joined by ``;``
    (``"1,8;1,3"``), so the value stays a plain string for sub-commands that pass it on."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        previous = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, values if previous is None else f"{previous};{values}")


_MAX_DIGITS = 12  # no dimension of a real example input has more


def _one_shape(text: str, whole: str) -> tuple[int, ...]:
    parts = re.split(r"[,x]", text.strip().strip("()[]"))
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ModelSpecError(
            f"--input-shape: expected positive integers like 1,3,32,32, got {whole!r}"
        )
    if any(len(p.strip()) > _MAX_DIGITS for p in parts):
        raise ModelSpecError(f"--input-shape: a dimension of more than {_MAX_DIGITS} digits in "
                             f"{whole[:60]!r}; give the model's real input size")
    return tuple(int(p) for p in parts)


def parse_shape(text: str | None) -> tuple[int, ...] | tuple[tuple[int, ...], ...] | None:
    """``"1,3,32,32"`` (or ``1x3x32x32``) -> ``(1, 3, 32, 32)``; several shapes (the option
    repeated, or joined by ``;``) -> a tuple of shapes, one per model input.

    Raises
    ------
    ModelSpecError
        For anything but positive integers, a dimension of more than 12 digits, or (from
        :func:`~sparsegraph.pytorch.models.resolve_model`, which the shape is passed to) more
        than :data:`~sparsegraph.pytorch.models.MAX_INPUT_ELEMENTS` elements.
    """
    if text is None:
        return None
    shapes = tuple(_one_shape(part, text) for part in text.split(";"))
    return shapes[0] if len(shapes) == 1 else shapes


def split_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None stays None."""
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def load_network(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Build the model named by ``args.model`` and trace it: ``(model, example_input, net)``."""
    from ..graph.trace import trace
    from ..pytorch.models import resolve_model

    model, example = resolve_model(args.model, parse_shape(getattr(args, "input_shape", None)))
    net = trace(model, example, name=args.model, **identity_modules(args))
    return model, example, net


def load_net(args: argparse.Namespace) -> Any:
    """The Network of ``args.model`` for commands that need only the graph: a built-in model
    without ``--input-shape`` or ``--identity-modules`` comes from the trace cache
    (:mod:`sparsegraph.cli.netcache`, no torch import) when it is there, and is put there when
    it is not."""
    from ..pytorch.catalog import CATALOG
    from . import netcache

    facts = CATALOG.get(args.model)
    if facts is None or getattr(args, "input_shape", None) or getattr(args, "identity_modules",
                                                                       None):
        return load_network(args)[2]
    net = netcache.load(args.model, facts.input_shape)
    if net is None:
        net = load_network(args)[2]
        netcache.store(args.model, facts.input_shape, net)
    return net


def identity_modules(args: argparse.Namespace) -> dict[str, Any]:
    """``{"identity_modules": (classes...)}`` from ``--identity-modules`` (empty without it)."""
    text = getattr(args, "identity_modules", None)
    if not text:
        return {}
    from .._imports import import_object

    classes = tuple(import_object(spec, "--identity-modules") for spec in split_list(text) or [])
    for spec, cls in zip(split_list(text) or [], classes, strict=True):
        if not isinstance(cls, type):
            raise ModelSpecError(f"--identity-modules: {spec!r} is not a class")
    return {"identity_modules": classes}


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (infinities as the string "inf")."""
    json.dump(data, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def console() -> Any:
    """A rich console for tables: the terminal's width, or 160 columns when not a terminal
    (so piped output is not truncated)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


# ------------------------------------------------------------------------- output locations
# Checked when the arguments are read, before any work: a run never computes for minutes and
# then fails on where it was asked to write.


def _probe_directory(directory: Path, option: str, target: str) -> None:
    """``directory`` exists, is a directory and a file can be created in it."""
    if not directory.exists():
        raise ArgumentError(f"{option} {target}: directory {str(directory)!r} does not exist")
    if not directory.is_dir():
        raise ArgumentError(f"{option} {target}: {str(directory)!r} is not a directory")
    try:  # a real probe (os.access is wrong for root, ACLs, read-only mounts)
        fd, probe = tempfile.mkstemp(prefix=".sparsegraph-probe.", suffix=".sgtmp",
                                     dir=directory)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ArgumentError(
            f"{option} {target}: cannot write in directory {str(directory)!r} ({why})"
        ) from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(text: str | None, option: str, *, overwrite: bool = True,
                      example: str = "masks.safetensors") -> None:
    """Refuse, before computing, a file output that cannot be written.

    ``text`` must name a file (not an existing directory, not end in ``/``) in an existing,
    writable directory; an existing target must be a regular file (a FIFO or device would
    block or vanish) and, without ``overwrite``, is refused naming ``--force``.

    Raises
    ------
    ArgumentError
        Naming the option, the path and the problem.
    """
    if text is None:
        return
    if not text.strip():
        raise ArgumentError(f"{option}: expected a file name, got an empty string")
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise ArgumentError(f"{option} {text}: names a directory; give a file name "
                            f"(e.g. {str(path / example)!r})")
    if path.exists() or path.is_symlink():
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = None
        if mode is None or not stat.S_ISREG(mode):
            raise ArgumentError(f"{option} {text}: exists and is not a regular file")
        if not overwrite:
            raise ArgumentError(f"{option} {text}: exists; pass --force to replace it")
    _probe_directory(path.parent if str(path.parent) else Path("."), option, text)


def check_output_directory(text: str, option: str) -> None:
    """Refuse, before computing, a directory output (open_lth's layout) whose parent does not
    exist or cannot be written, or that is a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ArgumentError(f"{option} {text}: exists and is not a directory")
    _probe_directory(path if path.is_dir() else (path.parent if str(path.parent) else
                                                  Path(".")), option, text)


def check_plot(text: str | None, option: str = "--plot") -> None:
    """Refuse, before computing, a plot that cannot be made: matplotlib missing (the
    ``plot`` extra) or an output file that cannot be written."""
    if text is None:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ArgumentError(f"{option} needs matplotlib, which is not installed: "
                            "pip install 'sparsegraph-pai[plot]'") from None
    check_output_file(text, option, overwrite=True, example="plot.png")


def check_mask_output(args: argparse.Namespace) -> None:
    """``-o``/``--format``/``--force`` of a sub-command that writes masks, checked before any
    work: the format the path will be written in, and that it can be written there. An
    existing directory (or a path ending in ``/``) is written to only with ``--format
    open_lth``."""
    from ..masks.files import resolve_format

    fmt = resolve_format(args.output, getattr(args, "format", None))  # MaskFileError if not
    force = bool(getattr(args, "force", False))
    if fmt == "open_lth" and not Path(args.output).name == "mask.pth":
        check_output_directory(args.output, "-o")
        for name in ("mask.pth", "sparsity_report.json"):
            target = Path(args.output) / name
            if target.exists() and not force:
                raise ArgumentError(f"-o {args.output}: {str(target)!r} exists; pass --force "
                                    "to replace it")
    else:
        check_output_file(args.output, "-o", overwrite=force)
