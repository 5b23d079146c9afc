"""The CLI's cache of traced built-in networks: exact, safe, invalidated by code changes, and a
warm audit does not import torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sparsegraph as sg
from sparsegraph.cli import netcache


@pytest.mark.parametrize("name", ["lenet5", "resnet20"])
def test_round_trip_is_the_same_network(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEGRAPH_CACHE_DIR", str(tmp_path))
    model, x = sg.build_model(name)
    net = sg.trace(model, x, name=name)
    assert netcache.store(name, tuple(x.shape), net) is not None
    back = netcache.load(name, tuple(x.shape))
    assert back is not net and back.fingerprint() == net.fingerprint()
    assert back.layers == net.layers and back.outputs == net.outputs
    assert back.name == net.name and back.input_shapes == net.input_shapes
    for a, b in zip(net.nodes, back.nodes, strict=True):
        assert (a.id, a.kind, a.inputs, a.shape, a.name, a.layer, a.module) == (
            b.id, b.kind, b.inputs, b.shape, b.name, b.layer, b.module)
        assert sorted(a.params) == sorted(b.params)
        for k in a.params:
            _same_value(a.params[k], b.params[k])
    masks = sg.random_masks(net, sg.quotas(net, "erk", 0.01), seed=0)
    assert sg.audit(back, masks).to_dict() == sg.audit(net, masks).to_dict()


def _same_value(a, b):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same_value(x, y)
    else:
        assert a == b


def test_decoder_refuses_foreign_classes(tmp_path):
    with pytest.raises(ValueError, match="refusing"):
        netcache.decode({"class": "os:system", "fields": {}}, {})
    with pytest.raises(ValueError, match="refusing"):
        netcache.decode({"class": "sparsegraph.graph.network:np.ndarray", "fields": {}}, {})


def test_key_changes_with_the_input_and_the_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEGRAPH_CACHE_DIR", str(tmp_path))
    assert netcache._key("lenet5", (1, 1, 28, 28)) != netcache._key("lenet5", (2, 1, 28, 28))
    monkeypatch.setenv("SPARSEGRAPH_CACHE_DIR", "off")
    assert netcache.cache_dir() is None and netcache.load("lenet5", (1, 1, 28, 28)) is None


def test_damaged_entry_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSEGRAPH_CACHE_DIR", str(tmp_path))
    path = netcache._path("lenet5", (1, 1, 28, 28))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a zip")
    assert netcache.load("lenet5", (1, 1, 28, 28)) is None


@pytest.mark.slow
def test_warm_audit_does_not_import_torch(tmp_path):
    env = {**os.environ, "SPARSEGRAPH_CACHE_DIR": str(tmp_path / "cache")}
    code = ("import sys, json\n"
            "from sparsegraph.cli import main\n"
            "code = main(['audit', 'resnet20', '--json'])\n"
            "print('TORCH', 'torch' in sys.modules, file=sys.stderr)\n"
            "sys.exit(code)\n")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "TORCH True" in first.stderr and "TORCH False" in second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
