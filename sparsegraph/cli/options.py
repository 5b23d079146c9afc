"""Options shared by several sub-commands: ``--scheme`` from the registry, ``--data``, old
spellings, and the report of what the graph left out or took as dense.

Registering these options imports only :mod:`sparsegraph.registry` (standard library), so
``sparsegraph --help`` needs no numpy, numba or torch.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Iterable
from typing import Any

from ..errors import ArgumentError, QuotaError
from ..registry import KINDS, SCHEMES, Scheme
from ..registry import get as get_scheme

__all__ = [
    "DeprecatedAlias",
    "add_data_args",
    "add_scheme_arg",
    "check_output_free",
    "coverage",
    "data_from_args",
    "load_mask_file",
    "print_coverage",
    "resolve_scheme",
    "scheme_epilog",
    "wrap",
]

#: The sub-command that makes masks of each kind.
_COMMAND_OF = {"quota": "generate", "pruner": "prune"}


def wrap(text: str) -> str:
    """A paragraph wrapped for ``--help`` pages that keep their layout as written."""
    return textwrap.fill(text, width=90)


def scheme_epilog(kinds: Iterable[str], *, sweepable_only: bool = False) -> str:
    """The list of schemes of these kinds, one per line, for a sub-command's ``--help``."""
    lines = []
    for kind in kinds:
        lines.append(f"{kind} schemes ({KINDS[kind]}):")
        for s in SCHEMES.values():
            if s.kind == kind and (s.sweepable or not sweepable_only):
                lines.extend(textwrap.wrap(f"{s.describe()} ({s.reference})", width=96,
                                           initial_indent="  ", subsequent_indent="      "))
    return "\n".join(lines)


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new option's destination and says so on
    stderr (``--method`` -> ``--scheme``)."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any
                 ) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"sparsegraph: warning: {option_string} is deprecated; use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_scheme_arg(parser: argparse.ArgumentParser, kinds: tuple[str, ...], *,
                   default: str | None = None, several: bool = False,
                   old: str | None = None) -> None:
    """``--scheme`` (and an old spelling) naming schemes of ``kinds`` from the registry."""
    names = [s.name for s in SCHEMES.values() if s.kind in kinds and s.sweepable]
    what = "comma-separated schemes" if several else "the scheme"
    parser.add_argument(
        "--scheme", dest="scheme", default=default, required=default is None,
        metavar="S[,S...]" if several else "SCHEME",
        help=f"{what}: {', '.join(names)} (listed below)"
        + (f"; default {default}" if default else ""),
    )
    if old:
        parser.add_argument(old, dest="scheme", action=DeprecatedAlias, new="--scheme",
                            help=argparse.SUPPRESS)


def resolve_scheme(name: str, kind: str, command: str) -> Scheme:
    """The record ``name`` of ``kind`` for ``--scheme``; a scheme of the other kind is named
    with the sub-command that makes it.

    Raises
    ------
    QuotaError
        For an unknown name (closest names suggested) or one of the other kind.
    """
    record = SCHEMES.get(name)
    if record is not None and record.kind != kind:
        raise QuotaError(
            f"--scheme {name!r} is a {record.kind} ({KINDS[record.kind].split(':')[0]}): use "
            f"sparsegraph {_COMMAND_OF[record.kind]} --scheme {name}; `sparsegraph {command}` "
            f"takes {', '.join(s.name for s in SCHEMES.values() if s.kind == kind and s.sweepable)}"
        )
    return get_scheme(name, kind, what="--scheme", error=QuotaError)


# ------------------------------------------------------------------------------------- data


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--batches``, ``--batch-size`` and ``--data-seed``."""
    g = parser.add_argument_group(
        "data (for the schemes that need it: snip, grasp)",
        wrap("SOURCE is 'digits' (scikit-learn's 8x8 digits, offline, resized to the input), "
        "'random' (standard normal inputs, labels uniform over the model's classes), a .npz "
        "file of arrays x and y (read with allow_pickle=False), a .pt file of a dict {x, y} or "
        "an (x, y) pair (read with weights_only=True), or pkg.module:factory / file.py:factory "
        "returning a Dataset, a DataLoader or an (x, y) pair."),
    )
    g.add_argument("--data", metavar="SOURCE", default=None, help="where the batches come from")
    g.add_argument("--batches", type=int, default=1, metavar="N", help="batches (default 1)")
    g.add_argument("--batch-size", type=int, default=128, metavar="B",
                   help="samples per batch (default 128; a DataLoader keeps its own)")
    g.add_argument("--data-seed", type=int, default=0, metavar="K",
                   help="seed of 'random' and of the shuffle of 'digits' and datasets "
                   "(default 0)")


def data_from_args(args: argparse.Namespace, model: Any, example: Any) -> Any:
    """The batches ``--data`` names (None without ``--data``)."""
    if args.data is None:
        return None
    from .._args import check_count, check_seed
    from ..pytorch.data import load_data

    return load_data(args.data, example, model=model,
                     batches=check_count(args.batches, "--batches"),
                     batch_size=check_count(args.batch_size, "--batch-size"),
                     seed=check_seed(args.data_seed, "--data-seed"))


# ------------------------------------------------------------------------ what was left out


def coverage(net: Any, dense: Iterable[str] = (), reason: str = "") -> dict[str, list]:
    """``{"skipped": [...], "taken_dense": [...]}`` for the JSON output of a command.

    ``skipped``: the weights of Linear/Conv-like modules that the tracer did not make prunable
    layers, with its reason (``net.skipped``; empty for a tracer that does not record them).
    ``taken_dense``: the layers ``dense`` (names) kept whole, each with ``reason``.
    """
    skipped = [{"name": str(n), "reason": str(r)} for n, r in getattr(net, "skipped", ())]
    return {"skipped": skipped,
            "taken_dense": [{"name": n, "reason": reason} for n in dense]}


def print_coverage(cov: dict[str, list], out: Any = None, *, dense: bool = True) -> None:
    """Print what :func:`coverage` found (nothing when there is nothing to say)."""
    from .common import console

    out = out or console()
    if cov["skipped"]:
        out.print(f"[yellow]left out of the graph ({len(cov['skipped'])} weights, not "
                  "prunable, not counted):[/yellow]", highlight=False)
        for rec in cov["skipped"]:
            out.print(f"  {rec['name']}: {rec['reason']}", highlight=False, soft_wrap=True)
    if dense and cov["taken_dense"]:
        names = [r["name"] for r in cov["taken_dense"]]
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        out.print(f"[yellow]taken as dense ({cov['taken_dense'][0]['reason']}):[/yellow] "
                  f"{shown}", highlight=False, soft_wrap=True)


def load_mask_file(path: str, net: Any) -> tuple[dict, list[str]]:
    """``(masks, layers without a key)`` of a mask file checked against ``net``.

    ``load_masks(path, net=net)`` checks the file against the network and fills layers without
    a key as dense; which layers those were is read from the file's own keys (a second read of
    the file: ``load_masks`` does not say which layers it filled).
    """
    from ..masks.files import load_masks

    masks = load_masks(path, net=net)
    keys = set(load_masks(path))
    return masks, [n for n in net.names if n not in keys]


def check_output_free(path: str, force: bool) -> None:
    """Refuse to overwrite an existing ``-o`` file without ``--force`` (before any work)."""
    from pathlib import Path

    if not force and Path(path).exists():
        raise ArgumentError(f"-o {path}: the file exists; pass --force to replace it")
