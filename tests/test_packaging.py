"""What installing and importing sparsegraph asks of the environment (issue 15, item 5; issue 13,
item 5): a torch range that admits later releases, no API newer than its lower bound, and an
import that loads neither torch nor numba."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# torch APIs added after 2.2 (the lower bound of the requirement), with the release that added
# them; the package must not use any of them without a version check.
NEWER_THAN_2_2 = {
    r"add_safe_globals": "2.4",
    r"serialization\.safe_globals": "2.5",
    r"nn\.RMSNorm": "2.4",
    r"nn\.attention\.flex_attention": "2.5",
    r"library\.custom_op": "2.4",
    r"export_for_training": "2.5",
    r"torch\.accelerator": "2.6",
    r"compiler\.set_stance": "2.6",
    r"float8_e8m0fnu": "2.7",
    r"nn\.Module\.set_submodule|\.set_submodule\(": "2.4",
    r"torch\.amp\.GradScaler": "2.3",
}


def test_torch_requirement_has_a_floor_and_no_ceiling():
    text = (ROOT / "pyproject.toml").read_text()
    reqs = re.findall(r'"torch([^"]*)"', text)
    assert reqs == [">=2.2"], reqs
    import torch

    major, minor = (int(p) for p in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 2)


def test_no_torch_api_newer_than_the_floor():
    hits = []
    for path in (ROOT / "sparsegraph").rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, version in NEWER_THAN_2_2.items():
                if re.search(pattern, line) and "requires torch" not in line:
                    hits.append(f"{path.relative_to(ROOT)}:{i}: {pattern} (torch {version})")
    assert not hits, hits


def test_import_and_cli_parser_load_neither_torch_nor_numba():
    code = ("import sys, sparsegraph, sparsegraph.errors, sparsegraph.registry\n"
            "from sparsegraph.cli import build_parser\n"
            "build_parser()\n"
            "bad = [m for m in ('torch', 'numba') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
