"""The command line as a new user meets it, run as a process (issue 15): data for SNIP and
GraSP, errors in the CLI's own words, what the graph leaves out, a first run that says it is
compiling, one --scheme vocabulary, and a fast --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import sparsegraph as sg
from sparsegraph.registry import SCHEMES
from sparsegraph.sweep.results import CompareResult


def sg_run(*argv: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300
           ) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "sparsegraph", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ": error: " in ln]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ---------------------------------------------------------------------------------- --help


def test_help_lists_every_scheme_and_imports_nothing_heavy():
    code = textwrap.dedent("""
        import sys, contextlib, io
        from sparsegraph.cli import main
        out = io.StringIO()
        for argv in (["--help"], ["compare", "--help"], ["prune", "--help"],
                     ["generate", "--help"], ["models"]):
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit:
                    pass
        heavy = [m for m in ("numpy", "numba", "torch", "scipy") if m in sys.modules]
        print("HEAVY", heavy)
        print(out.getvalue())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    for name, rec in SCHEMES.items():
        if rec.sweepable:
            assert f"{name}: {rec.summary}" in proc.stdout.replace("\n      ", " "), name
    assert "[needs data, gradients]" in proc.stdout  # snip / grasp in prune --help


def test_models_table_is_the_catalog():
    proc = sg_run("models", "--json")
    assert proc.returncode == 0
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["resnet18"]["params"] == 11_689_512 and set(rows) == set(sg.MODELS)


# ------------------------------------------------------------------------ 1. data on the CLI


def test_snip_and_grasp_with_data(tmp_path):
    proc = sg_run("prune", "lenet300", "--scheme", "snip", "--density", "0.05", "--data",
                  "random", "--batches", "2", "--batch-size", "8", "-o", "s.safetensors",
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "data: random: 2 batches of 8" in proc.stdout and "seed 0" in proc.stdout
    meta = sg.read_metadata(tmp_path / "s.safetensors")
    assert meta["scheme"] == "snip" and meta["data"].startswith("random: 2 batches")



def test_grasp_with_a_data_file(tmp_path, monkeypatch, capsys):
    from sparsegraph.cli import main

    monkeypatch.chdir(tmp_path)
    xs = np.random.default_rng(0).normal(size=(16, 1, 28, 28)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=xs, y=np.arange(16) % 10)
    assert main(["prune", "lenet300", "--scheme", "grasp", "--density", "0.05", "--data",
                 "d.npz", "--batch-size", "16", "-o", "g.safetensors", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kept"] == round(0.05 * 266200) and out["data"].startswith("d.npz: 1 batch of 16")


def test_compare_with_data_and_exclude(tmp_path):
    proc = sg_run("compare", "lenet300", "--scheme", "erk,snip,grasp", "--densities", "0.05",
                  "--data", "random", "--batch-size", "8", "--exclude", "fc3.*", "-o", "out",
                  "--workers", "0", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "taken as dense (--exclude): fc3.weight" in proc.stdout
    res = CompareResult.from_json(tmp_path / "out" / "results.json")
    fc3 = [r for r in res.rows if r["layer"] == "fc3.weight"]
    assert {r["scheme"] for r in fc3} == {"erk", "snip", "grasp"}
    assert all(r["kept"] == r["params"] for r in fc3)
    assert all(r["kept"] == round(r["density"] * 266200) for r in res.network_rows())


# ----------------------------------------------------------------- 2. errors name CLI flags


def test_cli_errors_name_flags_not_python_arguments(tmp_path, monkeypatch, capsys):
    err = one_line_error(sg_run("prune", "lenet300", "--scheme", "snip", "--density", "0.1",
                                "-o", "x.safetensors", cwd=tmp_path))
    assert "--data" in err and "data=" not in err
    # the same rendering for the other advice, in this process (the same main() as above)
    from sparsegraph.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.safetensors").write_bytes(b"")
    (tmp_path / "mine.py").write_text("import torch.nn as nn\n"
                                      "def make():\n    return nn.Linear(3, 2)\n")
    cases = [
        (["generate", "lenet300", "--scheme", "erk", "--density", "0.1", "-o",
          "m.safetensors"], "--force", "overwrite"),
        (["quotas", "lenet300", "--density", "0.001", "--scheme", "erk", "--dense",
          "fc1.weight"], "--dense-outside-budget", "dense_in_budget"),
        (["audit", "mine.py:make"], "--input-shape", "input_shape="),
        (["generate", "lenet300", "--scheme", "synflow", "--density", "0.1", "-o", "y.npz"],
         "sparsegraph prune --scheme synflow", "prune("),
    ]
    for argv, want, not_want in cases:
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "Traceback" not in err
        assert want in err and not_want not in err, (argv, err)


def test_python_errors_name_python_arguments():
    model, x = sg.build_model("lenet5")
    with pytest.raises(sg.MaskError, match=r"pass data=\(x, y\)") as info:
        sg.prune(model, "snip", density=0.1, example_input=x)
    assert "--data" not in str(info.value)
    net = sg.trace(model, x)
    with pytest.raises(sg.QuotaError, match="pass dense_in_budget=False"):
        sg.quotas(net, "erk", 0.001, dense=["fc1.weight"])


def test_old_spellings_still_work_with_a_note(tmp_path, monkeypatch, capsys):
    from sparsegraph.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["prune", "lenet300", "--method", "lamp", "--density", "0.1", "-o",
                 "l.safetensors"]) == 0
    assert "--method is deprecated; use --scheme" in capsys.readouterr().err
    assert sg.read_metadata(tmp_path / "l.safetensors")["scheme"] == "lamp"
    assert main(["compare", "lenet300", "--schemes", "igq", "--densities", "0.1", "-o", "c",
                 "--workers", "0", "--no-progress"]) == 0
    assert "--schemes is deprecated; use --scheme" in capsys.readouterr().err


# ------------------------------------------------------------ 3. what the graph leaves out


def test_layers_taken_as_dense_are_reported(tmp_path, monkeypatch, capsys):
    model, x = sg.build_model("lenet300")
    net = sg.trace(model, x)
    masks = {n: np.ones(net.layer(n).shape, bool) for n in net.names if n != "fc2.weight"}
    sg.save_masks(tmp_path / "m.safetensors", masks)  # without net=: the file lacks fc2
    want = [{"name": "fc2.weight", "reason": "no key in the mask file"}]
    proc = sg_run("audit", "lenet300", "m.safetensors", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["taken_dense"] == want and data["skipped"] == []
    from sparsegraph.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["spectral", "lenet300", "m.safetensors", "--json", "--no-imdb"]) == 0
    assert json.loads(capsys.readouterr().out)["taken_dense"] == want
    for command in ("audit", "spectral"):
        assert main([command, "lenet300", "m.safetensors"]) == 0
        text = capsys.readouterr().out
        assert "fc2.weight" in text and "taken as dense" in text


def test_skipped_weights_are_printed_and_recorded(monkeypatch, capsys):
    """A tracer that records ``net.skipped`` gets it printed and in the JSON."""
    from sparsegraph.cli import audit as audit_cli
    from sparsegraph.cli import main

    model, x = sg.build_model("lenet300")
    net = sg.trace(model, x, name="lenet300")
    object.__setattr__(net, "skipped", (("block.conv.weight", "inside identity module Block"),))
    monkeypatch.setattr(audit_cli, "load_net", lambda args: net)
    assert main(["audit", "lenet300", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["skipped"] == [{"name": "block.conv.weight",
                                "reason": "inside identity module Block"}]
    assert main(["audit", "lenet300"]) == 0
    out = capsys.readouterr().out
    assert "left out of the graph" in out and "block.conv.weight" in out


def test_identity_modules_leave_their_weights_out(tmp_path):
    (tmp_path / "act.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Smooth(nn.Module):  # an element-wise gate that hides a Linear layer
            def __init__(self):
                super().__init__()
                self.gate = nn.Linear(4, 4)
            def forward(self, x):
                return x * torch.sigmoid(self.gate(x))

        def make():
            return nn.Sequential(nn.Linear(8, 4), Smooth(), nn.Linear(4, 2))
    """))
    proc = sg_run("audit", "act.py:make", "--input-shape", "1,8", "--identity-modules",
                  "act.py:Smooth", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [r["name"] for r in data["layers"]] == ["0.weight", "2.weight"]
    assert [r["name"] for r in data["skipped"]] == ["1.gate.weight"]


# ----------------------------------------------------------------------- 4. the first run


def test_no_compile_notice_in_piped_output(tmp_path):
    proc = sg_run("audit", "lenet300", "--json", cwd=tmp_path)
    assert proc.returncode == 0
    assert "compiling" not in proc.stderr + proc.stdout
    json.loads(proc.stdout)


@pytest.mark.slow
def test_compile_notice_on_a_terminal(tmp_path):
    """A fresh numba cache and a pseudo-terminal on stderr: the notice shows while numba
    compiles, and stdout stays clean JSON."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "SPARSEGRAPH_CACHE_DIR": "off"}
    proc = subprocess.Popen([sys.executable, "-m", "sparsegraph", "generate", "lenet300",
                             "--scheme", "erk", "--density", "0.1", "-o", "m.npz", "--json"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=600)
    os.close(master)
    assert proc.returncode == 0
    assert b"compiling kernels (first run only)" in b"".join(chunks)
    assert json.loads(out)["kept"] == round(0.1 * 266200)
