"""Arguments and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from ..errors import ModelSpecError


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
        help="example input shape with batch, e.g. 1,3,32,32 (built-in models know theirs)",
    )
    parser.add_argument(
        "--identity-modules",
        metavar="MODULE:CLASS[,...]",
        default=None,
        help="module classes the tracer treats as element-wise maps (custom activations or "
        "norms); the weights inside them are left out of the graph, and the output says so",
    )


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"1,3,32,32"`` (or ``1x3x32x32``) -> ``(1, 3, 32, 32)``."""
    if text is None:
        return None
    parts = re.split(r"[,x]", text.strip().strip("()[]"))
    if not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ModelSpecError(
            f"--input-shape: expected positive integers like 1,3,32,32, got {text!r}"
        )
    shape = tuple(int(p) for p in parts)
    return shape


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
