"""The ``sparsegraph`` command line.

Each sub-command lives in its own module of this package with a ``register(subparsers)``
function; :func:`main` wires them together and turns every :class:`SparseGraphError` into one
line on stderr and exit status 2, worded with the command line's flags
(:mod:`sparsegraph.cli.flags`). Registering the sub-commands imports neither numpy, numba nor
torch, so ``sparsegraph --help`` and ``sparsegraph models`` start fast; a sub-command that runs
the numba kernels (``kernels=True`` in its defaults) shows ``compiling kernels (first run only)``
on a terminal while numba compiles (:mod:`sparsegraph.cli.notice`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import SparseGraphError

# sub-command modules, in the order --help lists them
COMMANDS = ("generate", "audit", "quotas", "spectral", "prune", "compare", "similarity",
            "models")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="sparsegraph",
        description="Topology of sparse neural networks: generate random masks from layerwise "
        "quotas, audit masks for dead connections (effective sparsity) and spectral quality.",
    )
    parser.add_argument("--version", action="version", version=f"sparsegraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # a sub-command that is not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from .flags import render
    from .notice import compile_notice

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with compile_notice(enabled=None if getattr(args, "kernels", False) else False):
            return int(args.func(args) or 0)
    except SparseGraphError as exc:  # one line, whatever a file or name put in the message
        message = " ".join(render(exc, args.command).splitlines())
        print(f"sparsegraph {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # sub-commands return their status: this came from user code
        print(f"sparsegraph {args.command}: error: sys.exit({exc.code!r}) was called while "
              "running the command (by the model's code?); it did not finish", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
