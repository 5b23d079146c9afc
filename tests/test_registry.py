"""The one registry of schemes: every record is real, and quotas, prune, compare and the CLI read
it (issue 10 item 5, issue 15 item 9)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sparsegraph as sg
from sparsegraph.errors import ArgumentError, MaskError, QuotaError
from sparsegraph.registry import KINDS, NEEDS, SCHEMES, get, markdown_table, names

ROOT = Path(__file__).resolve().parent.parent
X = torch.zeros(1, 1, 8, 8)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_every_record_is_a_real_function():
    for name, rec in SCHEMES.items():
        assert rec.name == name and rec.kind in KINDS and rec.needs <= set(NEEDS)
        fn = rec.function
        assert callable(fn) and fn.__name__ == rec.target.rsplit(":", 1)[1]
        assert rec.summary and rec.reference and re.search(r"\d{4}", rec.reference)


def test_views_are_the_registry():
    assert list(sg.QUOTA_SCHEMES) == names("quota")
    assert list(sg.PRUNERS) == names("pruner")
    assert set(sg.QUOTA_SCHEMES) | set(sg.PRUNERS) == set(sg.SCHEMES)
    # no placeholder: the synflow record is the iterative pruner prune() runs
    from sparsegraph.pytorch import pruners

    assert sg.PRUNERS["synflow"].function is pruners._synflow
    with pytest.raises(KeyError):
        sg.QUOTA_SCHEMES["snip"]


def test_no_parallel_capability_sets_in_the_package():
    pattern = re.compile(r"DATA_FREE|_NEED_DATA|_NOT_SWEEPABLE|_GIVEN\b|"
                         r"[\(\{\[]\s*['\"]snip['\"],\s*['\"]grasp['\"]")
    hits = []
    for path in (ROOT / "sparsegraph").rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, hits


def test_registry_imports_no_heavy_library():
    code = ("import sys, sparsegraph.registry as r; r.markdown_table('quota'); "
            "bad = [m for m in ('numpy', 'numba', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_needs_say_what_prune_requires():
    model = _cnn()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(3, (8,))
    for name in names("pruner"):
        rec = get(name)
        if "data" in rec.needs:
            with pytest.raises(MaskError, match="needs data"):
                sg.prune(model, name, density=0.2, example_input=X)
        masks = sg.prune(model, name, density=0.2, example_input=X, data=(x, y), rounds=3)
        net = sg.trace(model, X)
        assert sum(int(m.sum()) for m in masks.values()) == round(0.2 * net.params)
    # "weights": a Network holds none
    with pytest.raises(ArgumentError, match="holds no weights"):
        sg.prune(sg.trace(model, X), "magnitude", density=0.2, example_input=X)


def test_effective_target_and_mask_needs_are_true():
    net = sg.trace(_cnn(), X)
    for name in names("quota"):
        rec = get(name)
        if rec.effective_target:
            masks = sg.random_masks(net, name, density=0.3, seed=0, effective=True)
            assert masks.info.effective_density <= 0.3  # type: ignore[attr-defined]
        else:  # a given mask's densities: quotas need it, and there is no target to aim at
            assert "mask" in rec.needs
            masks = sg.random_masks(net, sg.quotas(net, "igq", 0.3), seed=1)
            q = sg.quotas(net, name, masks=masks)
            assert q == {k: m.mean() for k, m in masks.items()}


def test_kind_errors_name_the_other_kind():
    net = sg.trace(_cnn(), X)
    with pytest.raises(QuotaError, match="'synflow' is a pruner"):
        sg.quotas(net, "synflow", 0.1)
    with pytest.raises(MaskError, match="'erk' is a quota"):
        sg.prune(_cnn(), "erk", density=0.1, example_input=X)
    with pytest.raises(QuotaError, match="did you mean .*'igq'"):
        sg.quotas(net, "igqq", 0.1)


def test_prune_scheme_word_and_old_method_keyword():
    model = _cnn()
    a = sg.prune(model, "magnitude", density=0.3, example_input=X)
    with pytest.warns(DeprecationWarning, match="scheme="):
        b = sg.prune(model, method="magnitude", density=0.3, example_input=X)
    assert a.scheme == b.scheme == b.method == "magnitude"
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ArgumentError, match="once"):
        sg.prune(model, "magnitude", method="lamp", density=0.3, example_input=X)


def test_readme_tables_are_the_registry():
    readme = (ROOT / "README.md").read_text()
    for kind in KINDS:
        assert markdown_table(kind) in readme, kind
