"""The README's generated parts: the sub-commands with their options (from the argument parser)
and the scheme tables (from :mod:`sparsegraph.registry`).

``python -m sparsegraph.cli.docs README.md`` rewrites the blocks between
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in place; the README test checks
that they are current, so the README cannot list an option or a scheme the code lacks, nor miss
one it has.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..registry import markdown_table

__all__ = ["blocks", "options_markdown", "update"]


def _option(action: argparse.Action) -> str:
    flag = max(action.option_strings, key=len)
    if action.nargs == 0:
        return f"`{flag}`"
    if action.choices is not None:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        metavar = action.metavar or action.dest.upper()
    return f"`{flag} {metavar}`"


def _positional(action: argparse.Action) -> str:
    name = action.metavar or action.dest.upper()
    return f"[{name}]" if action.nargs == "?" else name


def options_markdown() -> str:
    """One line per sub-command: its positional arguments, what it does and every option."""
    from . import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = []
    for name, p in sub.choices.items():
        positional = " ".join(_positional(a) for a in p._actions if not a.option_strings)
        options = [_option(a) for a in p._actions
                   if a.option_strings and a.help != argparse.SUPPRESS
                   and not isinstance(a, argparse._HelpAction)]
        head = f"sparsegraph {name}" + (f" {positional}" if positional else "")
        lines.append(f"- `{head}`: {helps.get(name, '')}. Options: {', '.join(options)}.")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    """The generated blocks by name."""
    return {
        "cli": options_markdown(),
        "quota-schemes": markdown_table("quota"),
        "pruners": markdown_table("pruner"),
    }


def update(text: str) -> str:
    """``text`` with every generated block replaced by its current content."""
    for name, body in blocks().items():
        pattern = re.compile(rf"(<!-- generated:{re.escape(name)} -->\n)(?:.*?\n)?"
                             rf"(<!-- /generated:{re.escape(name)} -->)", re.S)
        text, n = pattern.subn(lambda m, b=body: m.group(1) + b + "\n" + m.group(2), text)
        if n != 1:
            raise ValueError(f"README: expected one generated:{name} block, found {n}")
    return text


if __name__ == "__main__":  # pragma: no cover - a maintenance script
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    path.write_text(update(path.read_text(encoding="utf-8")), encoding="utf-8")
