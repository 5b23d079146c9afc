"""``sparsegraph models``: list the built-in architectures (without importing torch)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import console, print_json


def register(subparsers: Any) -> None:
    """Add the ``models`` sub-command."""
    parser = subparsers.add_parser(
        "models",
        help="list the built-in architectures",
        description="List the built-in architectures a MODEL argument can name, with their "
        "parameter counts and default input shapes.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def model_table() -> list[dict[str, Any]]:
    """One record per built-in model: name, input shape, classes, parameters, prunable
    parameters (Conv2d/Linear weights) and description, from the static catalog
    (:mod:`sparsegraph.pytorch.catalog`, checked against the real models by the tests)."""
    from ..pytorch.catalog import CATALOG

    return [
        {
            "name": f.name,
            "input_shape": list(f.input_shape),
            "num_classes": f.num_classes,
            "params": f.params,
            "prunable_params": f.prunable_params,
            "description": f.description,
        }
        for f in CATALOG.values()
    ]


def run(args: argparse.Namespace) -> int:
    """Print the catalog as a rich table or JSON."""
    rows = model_table()
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title="Built-in models")
    for col, justify in (("name", "left"), ("input", "left"), ("classes", "right"),
                         ("params", "right"), ("prunable", "right")):
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("description", min_width=20)
    for r in rows:
        table.add_row(r["name"], "x".join(map(str, r["input_shape"])), str(r["num_classes"]),
                      f"{r['params']:,}", f"{r['prunable_params']:,}", r["description"])
    console().print(table)
    return 0
