"""The benchmark scripts stay runnable: each compiles, and the 1e9-weight child of
``benchmarks/generate.py`` (which builds a Network by hand) runs on a small MLP."""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_benchmark_compiles(script):
    py_compile.compile(str(BENCH / script), doraise=True)


def test_generate_child_runs_on_a_small_mlp():
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    r = mod.run_child(64, 3, 0.1)
    assert r["params"] == 3 * 64 * 64
    assert 0 < r["kept"] < r["params"]
