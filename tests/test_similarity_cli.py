"""``sparsegraph similarity``: two checkpoints layer by layer, masks, JSON, plots, errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import sparsegraph as sg
from sparsegraph.cli import main
from sparsegraph.pytorch.checkpoints import load_inputs

pytest.importorskip("sklearn")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    a, x = sg.build_model("lenet5", seed=0)
    b, _ = sg.build_model("lenet5", seed=1)
    net = sg.trace(b, x)
    masks = sg.random_masks(net, "erk", density=0.2, seed=0)
    sg.save_masks(d / "m.safetensors", masks, net=net)
    torch.save(a.state_dict(), d / "a.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in b.state_dict().items()}}, d / "b.pt")
    pruned, _ = sg.build_model("lenet5", seed=1)
    sg.apply_masks(pruned, masks)
    torch.save(pruned.state_dict(), d / "pruned.pt")  # weight_orig / weight_mask keys
    xs = np.random.default_rng(0).normal(size=(120, 1, 28, 28)).astype(np.float32)
    np.save(d / "x.npy", xs)
    return d, a, b, masks, xs


def test_json_equals_the_library(files, capsys):
    d, a, b, masks, xs = files
    code, out, _ = run(capsys, "similarity", "lenet5", d / "a.pt", d / "b.pt", "--inputs",
                       d / "x.npy", "--method", "svcca", "--keep", "5", "--json")
    assert code == 0
    expected = sg.layer_similarity(a, b, torch.from_numpy(xs), method="svcca", keep=5)
    assert json.loads(out) == json.loads(json.dumps(expected.to_dict()))


def test_masks_and_pruned_checkpoints_agree(files, capsys):
    d, a, b, masks, xs = files
    argv = ["similarity", "lenet5", d / "a.pt", "--inputs", "digits", "--method", "cka",
            "--json", "--max-samples", "300"]
    code, via_masks, _ = run(capsys, *argv[:3], d / "b.pt", *argv[3:], "--masks-b",
                             d / "m.safetensors")
    assert code == 0
    code, via_ckpt, _ = run(capsys, *argv[:3], d / "pruned.pt", *argv[3:])
    assert code == 0 and json.loads(via_masks) == json.loads(via_ckpt)
    rows = json.loads(via_masks)["layers"]
    assert [r["samples"] for r in rows] == [300] * 5 and rows[0]["features_a"] == 6
    code, unmasked, _ = run(capsys, *argv[:3], d / "b.pt", *argv[3:])
    assert json.loads(unmasked) != json.loads(via_masks)


def test_table_plot_and_cross(files, capsys, tmp_path):
    d = files[0]
    png = tmp_path / "s.png"
    code, out, _ = run(capsys, "similarity", "lenet5", d / "a.pt", d / "a.pt", "--inputs",
                       "digits", "--method", "pwcca", "--plot", png, "--max-samples", "400")
    assert code == 0 and "PWCCA per layer" in out and "fc3" in out and "1.0000" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heat = tmp_path / "m.png"
    code, out, _ = run(capsys, "similarity", "lenet5", d / "a.pt", d / "b.pt", "--inputs",
                       "digits", "--method", "cka", "--cross", "--json", "--plot", heat,
                       "--layers", "conv1,fc1,fc3", "--max-samples", "400")
    data = json.loads(out)
    assert code == 0 and data["layers_a"] == ["conv1", "fc1", "fc3"]
    assert np.array(data["values"]).shape == (3, 3) and heat.stat().st_size > 1000


def test_digits_inputs_fit_any_builtin_shape():
    for model in ("lenet300", "resnet20", "lenet5"):
        _, x = sg.build_model(model)
        got = load_inputs("digits", x, limit=7)
        assert tuple(got.shape) == (7, *x.shape[1:]) and got.dtype == torch.float32


def test_errors_are_one_line_exit_2(files, capsys, tmp_path):
    d = files[0]
    hostile = tmp_path / "evil.pt"
    with open(hostile, "wb") as fh:
        pickle.dump({"w": print}, fh)
    np.save(tmp_path / "bad.npy", np.zeros((4, 3)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    base = ["similarity", "lenet5", d / "a.pt"]
    cases = [
        ([*base, tmp_path / "none.pt", "--inputs", "digits"], "does not exist"),
        (["similarity", "lenet300", d / "a.pt", d / "a.pt", "--inputs", "digits"],
         "does not fit"),
        ([*base, hostile, "--inputs", "digits"], "weights_only"),
        ([*base, d / "a.pt", "--inputs", tmp_path / "bad.npy"], "the model takes"),
        ([*base, d / "a.pt", "--inputs", tmp_path / "obj.npy"], "without pickles"),
        ([*base, d / "a.pt", "--inputs", "nope.npy"], "does not exist"),
        ([*base, d / "a.pt", "--inputs", "digits", "--layers", "fc9"], "fc9"),
        ([*base, d / "a.pt", "--inputs", "digits", "--keep", "2.5"], "keep"),
        ([*base, d / "a.pt", "--inputs", "digits", "--max-samples", "0"], "max-samples"),
        ([*base, d / "a.pt", "--inputs", "digits", "--masks-a", tmp_path / "m.npz"], "m.npz"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)
        assert message in err and "Traceback" not in err, (message, err)


def test_as_a_process(files):
    d = files[0]
    ok = subprocess.run([sys.executable, "-m", "sparsegraph", "similarity", "lenet5",
                         str(d / "a.pt"), str(d / "missing.pt"), "--inputs", str(d / "x.npy")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 2 and ok.stderr.count("\n") == 1 and "missing.pt" in ok.stderr
    assert ok.stdout == ""
