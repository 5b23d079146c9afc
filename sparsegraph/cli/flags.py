"""The one table of how library arguments are spelled on the command line.

Library errors that give advice name the Python argument through a placeholder
(:class:`sparsegraph.errors.SparseGraphError` with keywords); :func:`render` words them with the
flags below, so a message printed by ``sparsegraph`` names flags and the same error raised in
Python names arguments. A new piece of advice in the library needs one entry here.
"""

from __future__ import annotations

from ..errors import SparseGraphError

__all__ = ["COMMAND_FLAGS", "FLAGS", "render"]

#: Placeholder (the Python argument) -> its command-line spelling.
FLAGS: dict[str, str] = {
    "overwrite": "--force",
    "identity_modules": "--identity-modules MODULE:CLASS[,MODULE:CLASS...]",
    "data": "--data digits|random|FILE.npz|FILE.pt|MODULE:FACTORY",
    "dense_in_budget": "--dense-outside-budget",
    "input_shape": "--input-shape (e.g. 1,3,32,32)",
    "num_classes": "a --data source whose labels fit the model",
    "density": "--density",
    "exclude": "--exclude",
    "rounds": "--rounds",
    "seed": "--seed",
}

#: Spellings that differ between sub-commands.
COMMAND_FLAGS: dict[str, dict[str, str]] = {
    "compare": {"density": "--densities", "seed": "--seeds"},
    "generate": {"exclude": "--dense"},
    "quotas": {"exclude": "--dense"},
}


def render(exc: SparseGraphError, command: str | None = None) -> str:
    """The message of ``exc`` worded for the command line (for sub-command ``command``).

    Examples
    --------
    >>> from sparsegraph.errors import QuotaError
    >>> render(QuotaError("pass {dense_in_budget}", dense_in_budget="dense_in_budget=False"))
    'pass --dense-outside-budget'
    """
    return exc.render({**FLAGS, **COMMAND_FLAGS.get(command or "", {})})
