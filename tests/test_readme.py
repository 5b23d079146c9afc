"""The README does not lie: its commands parse and run, its generated blocks (options, scheme
tables) are current, its pictures exist, and it names what the registries hold."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

import sparsegraph as sg
from sparsegraph.cli import build_parser, main
from sparsegraph.cli.docs import blocks, update
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
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README" in ci
    assert '-m "not slow"' in commands[1] and "pytest -n 2 -m slow" in ci  # nothing unchecked


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


def command_lines() -> list[str]:
    section = README.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)[0]
    return [ln.split("  #")[0].strip() for ln in block.splitlines() if ln.startswith("sparsegraph")]


def test_generated_blocks_are_current():
    assert update(README) == README, "run: python -m sparsegraph.cli.docs README.md"
    for name, body in blocks().items():
        assert body in README, name


def test_every_subcommand_and_option_is_in_the_readme():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert f"`sparsegraph {name}" in README, name
        for action in p._actions:
            if action.option_strings and action.help != "==SUPPRESS==":
                flag = max(action.option_strings, key=len)
                if flag != "--help":
                    assert f"`{flag}" in README, (name, flag)


def test_pictures_exist():
    for ref in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README):
        path = ROOT / ref
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", ref


# Each README command, sized small: same sub-command and flags, a small model and grid.
SMALL = {"vgg16": "lenet5", "features.0.weight": "conv1.weight",
         "0.1:0.0001:20": "0.1:0.01:2", "--seeds 3": "--seeds 1"}


def _small(command: str) -> list[str]:
    for big, small in SMALL.items():
        command = command.replace(big, small)
    words = [w for w in shlex.split(command)[1:] if not (w.startswith("[") or w.endswith("]"))]
    if "synflow" in command:
        words += ["--rounds", "2"]
    if words[0] == "compare":
        words += ["--workers", "0", "--no-progress"]
    return words


def test_command_line_examples_run(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(tmp_path)
    for i, name in enumerate(("dense.pt", "pruned.pt")):  # the similarity example's checkpoints
        torch.manual_seed(i)
        torch.save(sg.build_model("lenet5")[0].state_dict(), tmp_path / name)
    commands = command_lines()
    assert len(commands) >= 8
    for command in commands:
        words = _small(command)
        code = main(words)
        out, err = capsys.readouterr()
        assert code == 0, (command, words, err)
        assert "Traceback" not in err


@pytest.mark.slow
def test_python_example_runs():
    """The README's Python block, as written, on its model (SynFlow with 3 rounds to keep it
    short)."""
    pytest.importorskip("sklearn")
    section = README.split("## Python", 1)[1]
    code = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)[0]
    code = code.replace('"synflow", density=0.01, example_input=x)',
                        '"synflow", density=0.01, example_input=x, rounds=3)')
    code = code.replace('data=data, exclude=["fc.weight"])', 'data=data, exclude=["fc.weight"], '
                        'client=False, progress=False)')
    scope: dict = {}
    import warnings

    with warnings.catch_warnings():  # 3 SynFlow rounds collapse layers; the README runs 100
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        exec(compile(code, "README.md", "exec"), scope)
    res = scope["res"]
    assert not res.failures
    fc = [r for r in res.rows if r["layer"] == "fc.weight"]
    assert fc and all(r["kept"] == r["params"] for r in fc)
