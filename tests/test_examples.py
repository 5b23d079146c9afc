"""The examples run end to end (reduced with --quick) and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("script", ["sparse_mlp_digits.py", "sparse_cnn_digits.py"])
def test_example_runs_quick(script):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=EXAMPLES)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line[:1].isalpha()}
    for scheme in ("dense", "uniform", "erk", "igq", "synflow"):
        direct, effective, acc = map(float, rows[scheme][1:4])
        assert 0 <= effective <= direct <= 1 and 0 <= acc <= 1
    assert float(rows["synflow"][1]) == pytest.approx(0.05, abs=1e-3)
    assert "exactly zero after training" in out.stdout
