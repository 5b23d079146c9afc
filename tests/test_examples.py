"""The examples run end to end (reduced with --quick) and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.slow
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


@pytest.mark.slow
def test_pruning_similarity_example_quick(tmp_path):
    png = tmp_path / "similarity.png"
    out = subprocess.run([sys.executable, str(EXAMPLES / "pruning_similarity_digits.py"),
                          "--quick", "--out", str(png)],
                         capture_output=True, text=True, timeout=300, cwd=EXAMPLES)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {}
    for line in out.stdout.splitlines():
        parts = line.rsplit(None, 11)
        if len(parts) == 12 and parts[1].replace(".", "").isdigit():
            rows.setdefault(parts[0].strip(), []).append([float(v) for v in parts[1:]])
    assert rows["dense (the reference)"][0][3:] == [1.0] * 8
    assert len(rows["magnitude + fine-tune"]) == len(rows["random ERK"]) == 3
    for name in ("SNIP", "SNIP, layerwise shuffle", "SNIP, re-initialised",
                 "SNIP, inverted score", "same mask, re-initialised", "dense, another seed"):
        assert name in rows, name
    for values in (v for group in rows.values() for v in group):
        density, effective, acc, *sims = values
        assert 0 <= effective <= density + 1e-9 and 0 <= acc <= 1
        assert all(-0.05 <= s <= 1.0 for s in sims)
    assert png.read_bytes()[:4] == b"\x89PNG"
