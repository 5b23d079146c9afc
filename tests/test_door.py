"""The bad-input table (issue 10): every public function and command-line command that takes
masks or a network, fed the same bad inputs, gives one documented error naming the layer.

The inputs: a mask holding 7, one holding NaN, a float mask of 0.5, a mask of the wrong shape, an
unknown layer name, and an empty or invalid Network (or something that is not a Network at all).
Each row states the exception type the function documents (:mod:`sparsegraph.errors`); the
message must name the layer (or the argument). The command-line rows run ``python -m
sparsegraph`` as a process: exit status 2, one line on stderr, no traceback, no file left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sparsegraph as sg
from sparsegraph.errors import (
    ArgumentError,
    MaskError,
    MaskFileError,
    NetworkError,
    QuotaError,
    SparseGraphError,
)
from sparsegraph.graph.export import node_table
from sparsegraph.graph.network import Layer, Network, Node
from sparsegraph.metrics.effective import reachability
from sparsegraph.pytorch.pruners import synflow_scores

FIRST, LAST, UNKNOWN = "0.weight", "2.weight", "9.weight"


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))


@pytest.fixture(scope="module")
def net() -> Network:
    return sg.trace(_model(), torch.zeros(1, 4))


def _good() -> dict[str, np.ndarray]:
    return {FIRST: np.ones((5, 4), np.uint8), LAST: np.ones((3, 5), np.uint8)}


def _bad(case: str) -> dict[str, np.ndarray]:
    m: dict[str, np.ndarray] = _good()
    if case == "seven":
        m[FIRST][0, 0] = 7
    elif case == "nan":
        m[FIRST] = m[FIRST].astype(np.float32)
        m[FIRST][1, 2] = np.nan
    elif case == "half":
        m[FIRST] = np.full((5, 4), 0.5)
    elif case == "shape":
        m[FIRST] = np.ones((4, 5), np.uint8)
    elif case == "unknown":
        m[UNKNOWN] = np.ones((3, 5), np.uint8)
    return m


#: case -> what the message must say (the layer, and what is wrong with it)
CASES = {
    "seven": rf"{FIRST}.*\b7\b",
    "nan": rf"{FIRST}.*NaN",
    "half": rf"{FIRST}.*0\.5",
    "shape": rf"{FIRST}.*\[4, 5\]",
    "unknown": rf"{UNKNOWN}",
}


def _weights() -> dict[str, torch.Tensor]:
    return {k: torch.ones(v.shape) for k, v in _good().items()}


def _save_then_load(net: Network, masks, tmp: Path):
    """load_masks reads a file the library did not write (np.savez of the bad arrays)."""
    path = tmp / "bad.npz"
    np.savez(path, **masks)
    return sg.load_masks(path, net=net)


#: function -> (call(net, masks, tmp), documented type for bad values, for shape/unknown)
FUNCTIONS = {
    "effective_masks": (lambda n, m, t: sg.effective_masks(n, m), MaskError, MaskError),
    "reachability": (lambda n, m, t: reachability(n, m), MaskError, MaskError),
    "audit": (lambda n, m, t: sg.audit(n, m), MaskError, MaskError),
    "audit(effective=)": (lambda n, m, t: sg.audit(n, _good(), effective=m),
                          MaskError, MaskError),
    "spectral": (lambda n, m, t: sg.spectral(n, m), MaskError, MaskError),
    "path_metrics": (lambda n, m, t: sg.path_metrics(n, m), MaskError, MaskError),
    "to_scipy": (lambda n, m, t: sg.to_scipy(n, m), MaskError, MaskError),
    "to_scipy(layer=)": (lambda n, m, t: sg.to_scipy(n, m, FIRST), MaskError, MaskError),
    "to_networkx": (lambda n, m, t: sg.to_networkx(n, m), MaskError, MaskError),
    "to_igraph": (lambda n, m, t: sg.to_igraph(n, m), MaskError, MaskError),
    "check_masks": (lambda n, m, t: sg.check_masks(n, m), MaskError, MaskError),
    # quotas documents every failure of a quota request as QuotaError (the mask's included)
    "quotas(from_mask)": (lambda n, m, t: sg.quotas(n, "from_mask", masks=m),
                          QuotaError, QuotaError),
    "random_masks(from_mask)": (lambda n, m, t: sg.random_masks(n, "from_mask", density=0.5,
                                                                masks=m),
                                QuotaError, QuotaError),
    "save_masks": (lambda n, m, t: sg.save_masks(t / "m.npz", m, net=n), MaskError, MaskError),
    "load_masks": (_save_then_load, MaskError, MaskFileError),  # a file for another model
    "apply_masks": (lambda n, m, t: sg.apply_masks(_model(), m), MaskError, MaskError),
    "reinit": (lambda n, m, t: sg.reinit(_model(), masks=m), MaskError, MaskError),
    "synflow_scores": (lambda n, m, t: synflow_scores(n, _weights(), m), MaskError, MaskError),
    "shuffle_masks": (lambda n, m, t: sg.shuffle_masks(m, net=n), MaskError, MaskError),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fname", list(FUNCTIONS))
def test_bad_masks(net, tmp_path, fname, case):
    call, value_error, fit_error = FUNCTIONS[fname]
    expected = fit_error if case in ("shape", "unknown") else value_error
    before = sorted(tmp_path.iterdir())
    with pytest.raises(expected, match=CASES[case]) as info:
        call(net, _bad(case), tmp_path)
    assert type(info.value) is expected or issubclass(type(info.value), expected)
    assert "\n" not in str(info.value)  # one line, as the command line prints it
    if fname != "load_masks":  # it wrote its own input file first
        assert sorted(tmp_path.iterdir()) == before, "a file was left behind"


@pytest.mark.parametrize("case", ["seven", "nan", "half"])
def test_bad_masks_as_torch_tensors(net, case):
    """The door reads torch tensors by the same rule (the table above uses numpy)."""
    masks = {k: torch.from_numpy(np.asarray(v)) for k, v in _bad(case).items()}
    for call in (lambda: sg.audit(net, masks), lambda: sg.apply_masks(_model(), masks),
                 lambda: synflow_scores(net, _weights(), masks)):
        with pytest.raises(MaskError, match=CASES[case]):
            call()


# ----------------------------------------------------------------------- other bad arguments


@pytest.mark.parametrize(("call", "expected", "match"), [
    (lambda n: sg.quotas(n, "erk", 0.5, dense=[UNKNOWN]), QuotaError, UNKNOWN),
    (lambda n: sg.quotas(n, {UNKNOWN: 0.5}), QuotaError, UNKNOWN),
    (lambda n: sg.quotas(n, "erk", 7), QuotaError, r"density.*\b7\b"),
    (lambda n: sg.quotas(n, "erk", float("nan")), QuotaError, "density.*NaN"),
    (lambda n: sg.quota_table(n, ["erk"], 0.5, dense=[UNKNOWN]), QuotaError, UNKNOWN),
    (lambda n: sg.random_masks(n, {FIRST: 7.0, LAST: 0.5}), QuotaError, rf"{FIRST}.*\b7"),
    (lambda n: sg.random_masks(n, {UNKNOWN: 0.5}), QuotaError, UNKNOWN),
    (lambda n: sg.random_masks(n, "erk", density=0.5, seed=-1), ArgumentError, "seed"),
    (lambda n: sg.random_masks(n, "erk", density=0.5, granularity="filter"), ArgumentError,
     "granularity"),
    (lambda n: sg.to_scipy(n, {}, UNKNOWN), MaskError, UNKNOWN),
    (lambda n: node_table(n, UNKNOWN), MaskError, UNKNOWN),
    (lambda n: sg.spectral(n, {}, weights={FIRST: np.full((5, 4), np.nan)}), MaskError,
     rf"weights '{FIRST}'.*NaN"),
    (lambda n: sg.spectral(n, {}, weights={FIRST: np.ones((4, 5))}), MaskError,
     rf"weights '{FIRST}'.*\[4, 5\]"),
    (lambda n: sg.compare(n, schemes="erk", densities=0.5, exclude=[UNKNOWN], progress=False,
                          client=False), MaskError, UNKNOWN),
    (lambda n: sg.compare(n, schemes="erk", densities=7, progress=False, client=False),
     QuotaError, r"densities.*\b7\b"),
    (lambda n: sg.compare(n, schemes="erk", densities=float("nan"), progress=False,
                          client=False), QuotaError, "densities.*NaN"),
    (lambda n: sg.prune(_model(), "magnitude", density=0.5, example_input=torch.zeros(1, 4),
                        exclude=[UNKNOWN]), MaskError, UNKNOWN),
    (lambda n: sg.prune(_model(), "magnitude", density=7, example_input=torch.zeros(1, 4)),
     QuotaError, r"density.*\b7\b"),
    (lambda n: sg.extract_masks(_model(), names=[UNKNOWN]), MaskError, UNKNOWN),
    (lambda n: sg.layer_similarity(_model(), _model(), torch.randn(20, 4), layers=["9"]),
     ArgumentError, "'9'"),
    (lambda n: sg.layer_similarity(_model(), _model(), torch.full((20, 4), float("nan"))),
     ArgumentError, "inputs.*NaN"),
], ids=["quotas(dense=)", "quotas(mapping)", "quotas(density=7)", "quotas(density=nan)",
        "quota_table(dense=)", "random_masks(quota 7)", "random_masks(quota unknown)",
        "random_masks(seed)", "random_masks(granularity)", "to_scipy(layer)",
        "node_table(layer)", "spectral(weights nan)", "spectral(weights shape)",
        "compare(exclude)", "compare(densities=7)", "compare(densities=nan)", "prune(exclude)",
        "prune(density=7)", "extract_masks(names)", "layer_similarity(layers)",
        "layer_similarity(inputs nan)"])
def test_bad_arguments(net, call, expected, match):
    with pytest.raises(expected, match=match) as info:
        call(net)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------- what is not a Network


def test_an_empty_network_cannot_be_built():
    with pytest.raises(NetworkError, match="no nodes"):
        Network(layers=(), nodes=(), outputs=())
    with pytest.raises(NetworkError, match="no nodes"):
        Network.from_layers([])
    with pytest.raises(NetworkError, match="no output"):
        Network(layers=(), nodes=(Node(0, "input", (), (3,)),), outputs=())
    layer = Layer("a.weight", "a", "linear", (2, 3), 3, 2)
    with pytest.raises(NetworkError, match=r"node 1 \(layer\).*'a.weight'"):  # names the node
        Network(layers=(layer,), outputs=(1,),
                nodes=(Node(0, "input", (), (4,)),
                       Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})))
    with pytest.raises(NetworkError, match="output 5"):
        Network(layers=(layer,), outputs=(5,),
                nodes=(Node(0, "input", (), (3,)),
                       Node(1, "layer", (0,), (2,), layer=0, params={"op": "linear"})))


#: function -> call(value in the place of the Network, tmp)
NETWORK_TAKERS = {
    "effective_masks": lambda v, t: sg.effective_masks(v, {}),
    "reachability": lambda v, t: reachability(v, {}),
    "audit": lambda v, t: sg.audit(v, {}),
    "spectral": lambda v, t: sg.spectral(v, {}),
    "path_metrics": lambda v, t: sg.path_metrics(v, {}),
    "to_scipy": lambda v, t: sg.to_scipy(v),
    "to_scipy(layer=)": lambda v, t: sg.to_scipy(v, None, FIRST),
    "node_table": lambda v, t: node_table(v),
    "to_networkx": lambda v, t: sg.to_networkx(v),
    "to_igraph": lambda v, t: sg.to_igraph(v),
    "check_masks": lambda v, t: sg.check_masks(v, {}),
    "quotas": lambda v, t: sg.quotas(v, "erk", 0.5),
    "quota_table": lambda v, t: sg.quota_table(v, ["erk"], 0.5),
    "random_masks": lambda v, t: sg.random_masks(v, "erk", density=0.5),
    "synflow_scores": lambda v, t: synflow_scores(v, {}),
    # net= is optional in these three: None is fine, anything else must be a Network
    "save_masks": lambda v, t: sg.save_masks(t / "m.npz", _good(), net=v),
    "load_masks": lambda v, t: sg.load_masks(sg.save_masks(t / "in.npz", _good()), net=v),
    "shuffle_masks": lambda v, t: sg.shuffle_masks(_good(), net=v),
}
NOT_NETWORKS = {"None": None, "dict": {"0.weight": 1}, "model name": "lenet300",
                "module": nn.Linear(4, 5)}


@pytest.mark.parametrize("value", list(NOT_NETWORKS))
@pytest.mark.parametrize("fname", list(NETWORK_TAKERS))
def test_something_that_is_not_a_network(tmp_path, fname, value):
    if value == "None" and fname in ("save_masks", "load_masks", "shuffle_masks"):
        pytest.skip("net=None means no network to check against")
    with pytest.raises(ArgumentError, match="net: expected a Network from sparsegraph.trace"):
        NETWORK_TAKERS[fname](NOT_NETWORKS[value], tmp_path)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("value", [None, {"0.weight": 1}, 3])
def test_compare_needs_a_model_or_a_network(value):
    with pytest.raises(ArgumentError, match="model_or_net: expected a model name, a torch.nn"):
        sg.compare(value, schemes="erk", densities=0.5, progress=False, client=False)


@pytest.mark.parametrize("fname", ["apply_masks", "extract_masks", "reinit",
                                   "layer_similarity"])
@pytest.mark.parametrize("value", ["None", "network", "model name"])
def test_something_that_is_not_a_module(net, fname, value):
    v = {"None": None, "network": net, "model name": "lenet300"}[value]
    call = {
        "apply_masks": lambda: sg.apply_masks(v, {}),
        "extract_masks": lambda: sg.extract_masks(v),
        "reinit": lambda: sg.reinit(v),
        "layer_similarity": lambda: sg.layer_similarity(v, _model(), torch.randn(20, 4)),
    }[fname]
    with pytest.raises(ArgumentError, match="expected a torch.nn.Module") as info:
        call()
    if value == "network":
        assert "holds no weights" in str(info.value)


def _input_only() -> Network:
    return Network(layers=(), nodes=(Node(0, "input", (), (3,)),), outputs=(0,))


def _zero_size() -> Network:
    return Network(layers=(Layer("a.weight", "a", "linear", (0, 3), 3, 0),), outputs=(1,),
                   nodes=(Node(0, "input", (), (3,)),
                          Node(1, "layer", (0,), (0,), layer=0, params={"op": "linear"})))


@pytest.mark.parametrize("make", [_input_only, _zero_size], ids=["no layer", "zero-size layer"])
@pytest.mark.parametrize("fname", list(NETWORK_TAKERS))
def test_networks_without_weights_fail_cleanly(tmp_path, make, fname):
    """A hand-built Network can be valid and still hold no prunable weight. Functions whose
    numbers are fractions of the weights refuse it (NetworkError); the others answer."""
    net = make()
    refusing = {"audit", "quota_table"}
    call = NETWORK_TAKERS[fname]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fname in refusing:
            with pytest.raises(NetworkError, match="has no prunable weights"):
                call(net, tmp_path)
            return
        try:
            call(net, tmp_path)
        except SparseGraphError as exc:  # a documented refusal is fine; nothing else is
            assert "\n" not in str(exc)
    with pytest.raises(NetworkError, match="has no prunable weights"):
        sg.compare(net, schemes="erk", densities=0.5, progress=False, client=False)


def test_a_zero_size_layer_beside_real_ones_is_audited():
    with warnings.catch_warnings():  # torch: zero-element tensors
        warnings.simplefilter("ignore", UserWarning)
        model = nn.Sequential(nn.Linear(16, 0), nn.ReLU(), nn.Linear(0, 4), nn.ReLU(),
                              nn.Linear(4, 3))
    net = sg.trace(model, torch.zeros(1, 16))
    rep = sg.audit(net, {})
    first = rep.layers[0]
    assert (first.params, first.kept, first.direct_density, first.dead_in_units) == (0, 0, 1.0,
                                                                                    16)
    assert rep.network.params == 12 and rep.network.collapsed  # no path through 0 features
    assert [r.scored for r in sg.spectral(net, {}).layers] == [False, False, True]


# ------------------------------------------------------------------------- the command line


def _run(tmp: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sparsegraph", *argv], cwd=tmp,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_COLOR": "1"})


def _one_line_error(proc: subprocess.CompletedProcess, match: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert ": error: " in lines[0]
    import re

    assert re.search(match, lines[0]), lines[0]


LENET = {"fc1.weight": (300, 784), "fc2.weight": (100, 300), "fc3.weight": (10, 100)}
CLI_CASES = {case: match.replace(FIRST, "fc1.weight").replace(UNKNOWN, "fc9.weight")
                   .replace(r"\[4, 5\]", r"\[784, 300\]") for case, match in CASES.items()}


def _write_bad_file(path: Path, case: str) -> None:
    m = {k: np.ones(s, np.uint8) for k, s in LENET.items()}
    if case == "seven":
        m["fc1.weight"][0, 0] = 7
    elif case == "nan":
        m["fc1.weight"] = m["fc1.weight"].astype(np.float32)
        m["fc1.weight"][3, 3] = np.nan
    elif case == "half":
        m["fc1.weight"] = np.full((300, 784), 0.5, np.float32)
    elif case == "shape":
        m["fc1.weight"] = np.ones((784, 300), np.uint8)
    elif case == "unknown":
        m["fc9.weight"] = np.ones((10, 100), np.uint8)
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in m.items()}, str(path))
    else:
        np.savez(path, **m)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """A.pt, B.pt (state dicts of lenet300) and x.npy (inputs) for ``similarity``."""
    d = tmp_path_factory.mktemp("ckpt")
    model, _ = sg.build_model("lenet300")
    torch.save(model.state_dict(), d / "A.pt")
    torch.save(model.state_dict(), d / "B.pt")
    np.save(d / "x.npy", np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32))
    return d


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("command", ["audit", "spectral", "similarity"])
def test_cli_bad_mask_file(tmp_path, checkpoints, command, case):
    suffix = ".safetensors" if command == "spectral" else ".npz"
    bad = tmp_path / f"bad{suffix}"
    _write_bad_file(bad, case)
    if command == "audit":
        argv = ["audit", "lenet300", bad.name, "--plot", "out.png"]
    elif command == "spectral":
        argv = ["spectral", "lenet300", bad.name, "--json"]
    else:
        argv = ["similarity", "lenet300", str(checkpoints / "A.pt"), str(checkpoints / "B.pt"),
                "--inputs", str(checkpoints / "x.npy"), "--masks-a", bad.name, "--plot",
                "out.png"]
    proc = _run(tmp_path, *argv)
    _one_line_error(proc, CLI_CASES[case])
    assert sorted(p.name for p in tmp_path.iterdir()) == [bad.name], "a file was left behind"
    assert proc.stdout == ""


@pytest.mark.parametrize(("argv", "match"), [
    (["generate", "lenet300", "--scheme", "erk", "--density", "7", "-o", "out.npz"],
     r"--density.*\b7"),
    (["generate", "lenet300", "--scheme", "erk", "--density", "nan", "-o", "out.npz"],
     "--density.*NaN"),
    (["generate", "lenet300", "--scheme", "erk", "--density", "0.1", "--dense", "fc9.weight",
      "-o", "out.npz"], "fc9.weight"),
    (["quotas", "lenet300", "--density", "7", "--plot", "out.png"], r"--density.*\b7"),
    (["quotas", "lenet300", "--density", "0.1", "--dense", "fc9.weight", "--plot", "out.png"],
     "fc9.weight"),
    (["prune", "lenet300", "--scheme", "magnitude", "--density", "nan", "-o", "out.npz"],
     "density.*NaN"),
    (["prune", "lenet300", "--scheme", "magnitude", "--density", "0.1", "--exclude",
      "fc9.weight", "-o", "out.npz"], "fc9.weight"),
    (["compare", "lenet300", "--densities", "7", "-o", "outdir"], r"\b7"),
    (["compare", "lenet300", "--densities", "0.1", "--exclude", "fc9.weight", "-o", "outdir"],
     "fc9.weight"),
], ids=["generate(density=7)", "generate(density=nan)", "generate(dense)", "quotas(density=7)",
        "quotas(dense)", "prune(density=nan)", "prune(exclude)", "compare(densities=7)",
        "compare(exclude)"])
def test_cli_bad_argument(tmp_path, argv, match):
    proc = _run(tmp_path, *argv)
    _one_line_error(proc, match)
    assert list(tmp_path.iterdir()) == [], "a file was left behind"
