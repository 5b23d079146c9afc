"""The README does not lie: its commands parse, and it names what the registries hold."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from sparsegraph.cli import build_parser
from sparsegraph.masks.quotas import QUOTA_SCHEMES
from sparsegraph.pytorch.models import MODELS
from sparsegraph.pytorch.pruners import PRUNERS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def setup_commands() -> list[str]:
    section = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_exactly_two_setup_commands_and_ci_runs_the_second():
    commands = setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    extracted = subprocess.run(
        ["bash", "-c", "sed -n '/<!-- ci:test -->/,/<!-- \\/ci:test -->/p' README.md"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    assert commands[1] in extracted
    assert "README" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", setup_commands()[:1] + re.findall(
    r"^(sparsegraph [^\n#]+)", README, flags=re.M))
def test_sparsegraph_invocations_parse(command):
    parser = build_parser()
    for part in command.split("&&"):
        words = shlex.split(part.strip())
        if words and words[0] == "sparsegraph":
            args = [w for w in words[1:] if not (w.startswith("[") or w.endswith("]"))]
            parser.parse_args(args)


def test_readme_names_every_scheme_pruner_and_model():
    for name in [*QUOTA_SCHEMES, *PRUNERS, *MODELS]:
        assert f"`{name}`" in README, name
