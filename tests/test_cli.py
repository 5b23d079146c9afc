"""The command line: audit, the shared MODEL handling and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import sparsegraph as sg
from sparsegraph.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_dense_builtin_json(capsys):
    code, out, _ = run(capsys, "audit", "lenet300", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["network"]["params"] == 784 * 300 + 300 * 100 + 100 * 10
    assert data["network"]["effective"] == data["network"]["params"]
    assert data["dense_layers"] == ["fc1.weight", "fc2.weight", "fc3.weight"] or len(
        data["dense_layers"]) == 3


def test_audit_mask_file_table_and_json(tmp_path, capsys):
    model, x = sg.build_model("lenet5")
    net = sg.trace(model, x)
    rng = np.random.default_rng(1)
    masks = {name: rng.random(net.layer(name).shape) < 0.05 for name in net.names}
    path = tmp_path / "m.safetensors"
    sg.save_masks(path, masks, net=net)
    code, out, _ = run(capsys, "audit", "lenet5", str(path), "--json")
    assert code == 0
    expected = sg.audit(net, masks).to_dict()
    assert json.loads(out)["network"] == json.loads(json.dumps(expected))["network"]
    code, out, _ = run(capsys, "audit", "lenet5", str(path))
    assert code == 0 and "sparsegraph audit" in out and "effective compression" in out


def test_user_model_file(tmp_path, capsys):
    source = tmp_path / "mine.py"
    source.write_text(
        "import torch.nn as nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 2))\n"
    )
    code, out, _ = run(capsys, "audit", f"{source}:make", "--input-shape", "1,3,4", "--json")
    assert code == 0 and json.loads(out)["network"]["params"] == 70


@pytest.mark.parametrize(
    "argv, message",
    [
        (["audit", "resnet21"], "resnet2"),
        (["audit", "lenet300", "/nonexistent/masks.safetensors"], "masks.safetensors"),
        (["audit", "lenet300", "--input-shape", "1,x"], "--input-shape"),
    ],
)
def test_errors_are_one_line_with_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_mask_for_another_model_is_refused(tmp_path, capsys):
    model, x = sg.build_model("lenet300")
    net = sg.trace(model, x)
    path = tmp_path / "lenet300.safetensors"
    sg.save_masks(path, {n: np.ones(net.layer(n).shape, bool) for n in net.names}, net=net)
    code, _, err = run(capsys, "audit", "lenet5", str(path))
    assert code == 2 and "Traceback" not in err


def test_console_script_help():
    proc = subprocess.run(
        [sys.executable, "-m", "sparsegraph.cli", "--help"], capture_output=True, text=True,
        check=False,
    )
    assert proc.returncode == 0
    for command in ("generate", "audit", "quotas", "spectral", "prune", "compare"):
        assert command in proc.stdout
