"""Tests of sparsegraph.sweep.compare and the ``sparsegraph compare`` command."""

from __future__ import annotations

import csv
import importlib
import itertools
import json
import math
import shlex
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsegraph as sg
from sparsegraph.errors import ModelSpecError, QuotaError, SparseGraphError
from sparsegraph.sweep.compare import (
    COLUMNS,
    NETWORK_ROW,
    CompareResult,
    compare,
    parse_density_grid,
    reproduce,
)

# the module itself (``sparsegraph.sweep.compare`` may be bound to the function of that name)
cmp = importlib.import_module("sparsegraph.sweep.compare")
# where the tasks run (the module whose _make_masks the failure tests replace)
run_mod = importlib.import_module("sparsegraph.sweep.run")

SCHEMES = ["uniform", "erk", "igq"]
DENSITIES = [0.1, 0.01, 0.001]
SEEDS = 2


@pytest.fixture(scope="module")
def lenet():
    from sparsegraph.graph.trace import trace
    from sparsegraph.pytorch.models import build_model

    model, x = build_model("lenet300")
    return model, x, trace(model, x)


@pytest.fixture(scope="module")
def serial(lenet):
    return compare("lenet300", schemes=SCHEMES, densities=DENSITIES, seeds=SEEDS,
                   client=False, progress=False)


# ---------------------------------------------------------------------------------------------
# the density grid
# ---------------------------------------------------------------------------------------------


def test_grid_is_log_spaced_with_exact_ends():
    grid = parse_density_grid("0.1:0.0001:20")
    assert len(grid) == 20
    assert grid[0] == 0.1 and grid[-1] == 0.0001
    ratios = np.diff(np.log(grid))
    np.testing.assert_allclose(ratios, math.log(0.0001 / 0.1) / 19, rtol=1e-9)


def test_grid_forms():
    assert parse_density_grid("0.5,0.05") == [0.5, 0.05]
    assert parse_density_grid(0.25) == [0.25]
    assert parse_density_grid([1, 0.5]) == [1.0, 0.5]
    assert parse_density_grid("0.01:0.1:2") == [0.01, 0.1]
    assert parse_density_grid("0.2:0.2:1") == [0.2]


@pytest.mark.parametrize("bad", ["0.1:0:5", "0.1:0.01", "0.1:0.01:x", "0.1:0.01:1", "1.5",
                                 "", "0.1,0.1", "nan", [], [0.1, -1], "0.1:0.01:0"])
def test_grid_rejects(bad):
    with pytest.raises(QuotaError, match="densit|grid"):
        parse_density_grid(bad)


@settings(max_examples=60)
@given(a=st.floats(1e-6, 1.0), b=st.floats(1e-6, 1.0), n=st.integers(2, 40))
def test_grid_property(a, b, n):
    if a == b:
        return
    grid = parse_density_grid(f"{a!r}:{b!r}:{n}")
    assert len(grid) == n and grid[0] == a and grid[-1] == b
    assert all(0 < d <= 1 for d in grid)
    steps = np.diff(grid)
    assert (steps < 0).all() if a > b else (steps > 0).all()


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


def test_one_row_per_combination(serial, lenet):
    _, _, net = lenet
    want = set(itertools.product(SCHEMES, DENSITIES, range(SEEDS)))
    nets = serial.network_rows()
    assert len(nets) == len(want)
    assert {(r["scheme"], r["density"], r["seed"]) for r in nets} == want
    layer_rows = [r for r in serial.rows if r["layer"] != NETWORK_ROW]
    assert len(layer_rows) == len(want) * len(net.layers)
    assert {(r["scheme"], r["density"], r["seed"], r["layer"]) for r in layer_rows} == {
        (*k, name) for k in want for name in net.names
    }
    assert all(list(r) == list(COLUMNS) for r in serial.rows)
    assert len(serial.tasks) == len(want) and not serial.failures
    # order: scheme, density, seed as requested, layers in network order, network row last
    keys = [(r["scheme"], r["density"], r["seed"]) for r in nets]
    assert keys == list(itertools.product(SCHEMES, DENSITIES, range(SEEDS)))
    assert [r["layer"] for r in serial.rows[: len(net.layers) + 1]] == [*net.names, NETWORK_ROW]


def test_totals_are_consistent(serial, lenet):
    _, _, net = lenet
    by_key: dict = {}
    for r in serial.rows:
        by_key.setdefault((r["scheme"], r["density"], r["seed"]), []).append(r)
    for (_, density, _), rows in by_key.items():
        *layers, total = rows
        assert total["layer"] == NETWORK_ROW
        for col in ("params", "kept", "effective", "in_units", "out_units", "dead_in_units",
                    "dead_out_units"):
            assert total[col] == sum(r[col] for r in layers), col
        assert total["params"] == net.params
        assert total["kept"] == round(density * net.params)  # quotas sum exactly
        for r in rows:
            assert 0 <= r["effective"] <= r["kept"] <= r["params"]
            assert r["direct_density"] == pytest.approx(r["kept"] / r["params"])
            assert r["effective_density"] == pytest.approx(r["effective"] / r["params"])
            assert r["direct_compression"] == pytest.approx(r["params"] / r["kept"])
            if r["effective"]:
                assert r["effective_compression"] == pytest.approx(r["params"] / r["effective"])
            else:
                assert r["effective_compression"] == math.inf
            assert r["collapsed"] == (r["effective"] == 0)


def test_rows_match_the_library_directly(serial, lenet):
    """A task's mask is exactly random_masks(net, quotas(net, s, d), seed=k)."""
    _, _, net = lenet
    for r in serial.network_rows():
        masks = sg.random_masks(net, sg.quotas(net, r["scheme"], r["density"]), seed=r["seed"])
        rep = sg.audit(net, masks)
        assert (rep.network.kept, rep.network.effective, rep.network.collapsed) == (
            r["kept"], r["effective"], r["collapsed"])


def test_seeds_differ_and_igq_beats_uniform_at_low_density(serial):
    low = {(r["scheme"], r["seed"]): r for r in serial.network_rows() if r["density"] == 0.001}
    # LeNet-300 at 0.1% (266 weights): uniform leaves ~0.1 weights in the 1000-weight last layer
    # and collapses; IGQ keeps small layers dense enough (Vysogorets & Kempe, Fig. 1)
    assert low[("uniform", 0)]["collapsed"] or low[("uniform", 0)]["effective_compression"] > (
        low[("igq", 0)]["effective_compression"])
    assert not low[("igq", 0)]["collapsed"]


def test_summary(serial):
    summ = serial.summary()
    assert len(summ) == len(SCHEMES) * len(DENSITIES)
    for s in summ:
        assert s["seeds"] == SEEDS and s["failed"] == 0
        finite = s["effective_compression"]
        if math.isfinite(finite):
            assert s["effective_compression_min"] <= finite <= s["effective_compression_max"]


def test_network_input_and_seed_list(lenet, serial):
    _, _, net = lenet
    res = compare(net, schemes=["erk"], densities=[0.01], seeds=[1], client=False,
                  progress=False)
    want = [r for r in serial.rows if r["scheme"] == "erk" and r["density"] == 0.01
            and r["seed"] == 1]
    assert res.rows == want


def test_model_object_needs_example_input(lenet):
    model, x, _ = lenet
    with pytest.raises(ModelSpecError, match="example_input"):
        compare(model, schemes="uniform", densities=0.1, client=False, progress=False)
    res = compare(model, example_input=x, schemes="uniform", densities=0.1, client=False,
                  progress=False)
    assert len(res.network_rows()) == 1
    with pytest.raises(ModelSpecError, match="model="):
        reproduce(res)
    assert reproduce(res, model=model, example_input=x, client=False, progress=False).equals(res)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"schemes": "uniform,ekr"}, QuotaError, "did you mean .*'erk'"),
        ({"schemes": "from_mask"}, QuotaError, "not a scheme to sweep"),
        ({"schemes": "uniform,uniform"}, QuotaError, "twice"),
        ({"schemes": ""}, QuotaError, "at least one"),
        ({"densities": 0.0}, QuotaError, r"\(0, 1\]"),
        ({"seeds": 0}, QuotaError, "seeds"),
        ({"seeds": [1, 1]}, QuotaError, "twice"),
        ({"retries": -1}, SparseGraphError, "retries"),
        ({"client": False, "scheduler": "tcp://x:1"}, SparseGraphError, "scheduler"),
    ],
)
def test_bad_arguments(lenet, kwargs, exc, match):
    args = {"schemes": "uniform", "densities": 0.1, "client": False, "progress": False,
            **kwargs}
    with pytest.raises(exc, match=match):
        compare(lenet[2], **args)


def test_pruner_needs_model(lenet):
    pruners = pytest.importorskip("sparsegraph.pytorch.pruners")
    name = next(iter(pruners.PRUNERS))
    with pytest.raises(ModelSpecError, match="pruner"):
        compare(lenet[2], schemes=name, densities=0.1, client=False, progress=False)


def test_pruner_schemes(lenet):
    pruners = pytest.importorskip("sparsegraph.pytorch.pruners")
    model, x, net = lenet
    before = {k: v.clone() for k, v in model.state_dict().items()}
    names = [p for p in ("magnitude", "random") if p in pruners.PRUNERS]
    res = compare(model, example_input=x, schemes=["uniform", *names], densities=[0.05],
                  seeds=2, client=False, progress=False)
    assert not res.failures, res.failures
    rows = res.network_rows()
    assert [r["kind"] for r in rows] == ["quota"] * 2 + ["pruner"] * 2 * len(names)
    assert all(r["kept"] == round(0.05 * net.params) for r in rows)
    # the caller's model is untouched (pruners score a re-initialised copy)
    after = model.state_dict()
    assert all((before[k] == after[k]).all() for k in before)
    # same arguments -> same table
    again = compare(model, example_input=x, schemes=names, densities=[0.05], seeds=2,
                    client=False, progress=False)
    assert again.rows == [r for r in res.rows if r["kind"] == "pruner"]
    # magnitude at seed k scores the model re-initialised from k
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(1)
        fresh = type(model)()
    masks = sg.prune(fresh, "magnitude", density=0.05, example_input=x)
    rep = sg.audit(net, masks)
    row = next(r for r in rows if r["scheme"] == "magnitude" and r["seed"] == 1)
    assert (row["kept"], row["effective"]) == (rep.network.kept, rep.network.effective)
    with pytest.raises(QuotaError, match="'snip' needs data: pass data="):
        compare(model, example_input=x, schemes="snip", densities=0.1, client=False,
                progress=False)


@pytest.mark.slow
def test_synflow_scheme():
    pruners = pytest.importorskip("sparsegraph.pytorch.pruners")
    if "synflow" not in pruners.PRUNERS:
        pytest.skip("synflow not registered")
    res = compare("lenet300", schemes="synflow", densities=[0.01], client=False,
                  progress=False)
    assert not res.failures, res.failures
    assert res.network_rows()[0]["kept"] == round(0.01 * 266200)


# ---------------------------------------------------------------------------------------------
# failures and retries
# ---------------------------------------------------------------------------------------------


def _breaking(original, bad_density, fail_times=None):
    calls = {"n": 0}

    def patched(payload, scheme, kind, density, seed):
        if density == bad_density:
            calls["n"] += 1
            if fail_times is None or calls["n"] <= fail_times:
                raise RuntimeError(f"boom at {density}")
        return original(payload, scheme, kind, density, seed)

    return patched, calls


def test_failed_task_is_reported_not_dropped(lenet, monkeypatch):
    patched, calls = _breaking(run_mod._make_masks, 0.01)
    monkeypatch.setattr(run_mod, "_make_masks", patched)
    res = compare(lenet[2], schemes="uniform", densities=[0.1, 0.01], seeds=1, retries=2,
                  client=False, progress=False)
    assert calls["n"] == 3  # first try + 2 retries
    assert [t["status"] for t in res.tasks] == ["ok", "failed"]
    (fail,) = res.failures
    assert fail["density"] == 0.01 and fail["attempts"] == 3
    assert "RuntimeError: boom at 0.01" in fail["error"] and "boom" in fail["traceback"]
    assert {r["density"] for r in res.rows} == {0.1}
    assert res.summary()[1]["failed"] == 1
    data = json.loads(res.to_json())
    assert data["tasks"][1]["status"] == "failed"
    assert CompareResult.from_dict(data).failures[0]["error"] == fail["error"]


def test_flaky_task_is_retried(lenet, monkeypatch):
    patched, calls = _breaking(run_mod._make_masks, 0.01, fail_times=1)
    monkeypatch.setattr(run_mod, "_make_masks", patched)
    res = compare(lenet[2], schemes="uniform", densities=[0.01], retries=1, client=False,
                  progress=False)
    assert calls["n"] == 2 and not res.failures and res.tasks[0]["attempts"] == 2


def test_dask_failures_are_reported(lenet, monkeypatch):
    distributed = pytest.importorskip("distributed")
    patched, calls = _breaking(run_mod._make_masks, 0.01)
    monkeypatch.setattr(run_mod, "_make_masks", patched)
    # threads in this process, so the patched function is what the workers run
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        res = compare(lenet[2], schemes="uniform", densities=[0.1, 0.01, 0.001], retries=1,
                      client=client, progress=False)
    assert calls["n"] == 2  # dask ran the broken task once more (retries=1)
    assert [t["status"] for t in res.tasks] == ["ok", "failed", "ok"]
    assert "boom at 0.01" in res.failures[0]["error"]
    assert res.provenance["execution"]["mode"] == "dask"


# ---------------------------------------------------------------------------------------------
# distributed == serial
# ---------------------------------------------------------------------------------------------


def test_two_worker_local_cluster_matches_serial(serial):
    pytest.importorskip("distributed")
    res = compare("lenet300", schemes=SCHEMES, densities=DENSITIES, seeds=SEEDS, workers=2,
                  progress=False)
    ex = res.provenance["execution"]
    assert ex["mode"] == "dask" and ex["workers"] == 2
    assert len({t["worker"] for t in res.tasks}) == 2  # both processes did work
    assert res.rows == serial.rows
    assert res.equals(serial)
    assert res.to_records() == serial.to_records()


# ---------------------------------------------------------------------------------------------
# files and provenance
# ---------------------------------------------------------------------------------------------


def test_json_round_trip_and_csv(serial, tmp_path):
    serial.to_json(tmp_path / "r.json")
    back = CompareResult.from_json(tmp_path / "r.json")
    assert back.equals(serial) and back.rows == serial.rows
    assert back.provenance["arguments"]["densities"] == DENSITIES
    text = (tmp_path / "r.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    serial.to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(serial.rows)
    assert list(table[0]) == list(COLUMNS)
    for got, want in zip(table, serial.rows, strict=True):
        assert int(got["kept"]) == want["kept"] and got["layer"] == want["layer"]
        assert float(got["effective_compression"]) == want["effective_compression"]
        assert float(got["density"]) == want["density"]  # full precision
    serial.to_csv(tmp_path / "n.csv", layers=False)
    assert len((tmp_path / "n.csv").read_text().splitlines()) == len(serial.network_rows()) + 1


def test_provenance(serial):
    prov = serial.provenance
    for key in ("sparsegraph", "python", "numpy", "numba", "torch", "scipy"):
        assert prov["versions"][key], key
    assert prov["arguments"]["densities"] == DENSITIES
    assert prov["model"]["spec"] == "lenet300" and prov["model"]["params"] == 266200
    assert prov["command"].startswith("sparsegraph.compare('lenet300'")


def test_reproducible_from_record(serial, tmp_path):
    serial.to_json(tmp_path / "r.json")
    again = reproduce(tmp_path / "r.json", client=False, progress=False)
    assert again.equals(serial)
    # the recorded Python call itself, evaluated
    call = serial.provenance["python_call"]
    assert call.startswith("sparsegraph.compare(") and call.endswith(")")
    res = eval("sg.compare(" + call[len("sparsegraph.compare("):-1]
               + ", client=False, progress=False)", {"sg": sg})
    assert res.equals(serial)


def test_public_name_is_the_function():
    # importing the submodule must not shadow the function of the same name
    importlib.import_module("sparsegraph.sweep.compare")
    assert sg.compare is compare


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def test_cli_writes_everything_and_reruns_from_its_record(tmp_path, capsys):
    from sparsegraph.cli import main

    out = tmp_path / "rep"
    argv = ["compare", "lenet300", "--schemes", "uniform,igq", "--densities", "0.1:0.001:3",
            "--seeds", "2", "-o", str(out), "--workers", "0", "--no-progress"]
    assert main(argv) == 0
    for name in ("results.csv", "results.json", "compression.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    printed = capsys.readouterr().out
    assert "igq" in printed and "wrote" in printed
    first = CompareResult.from_json(out / "results.json")
    assert len(first.network_rows()) == 2 * 3 * 2
    command = first.provenance["command"]
    words = shlex.split(command)
    assert words[:3] == ["sparsegraph", "compare", "lenet300"]
    words[words.index("-o") + 1] = str(tmp_path / "again")
    assert main(words[1:]) == 0
    second = CompareResult.from_json(tmp_path / "again" / "results.json")
    assert second.equals(first)
    assert shlex.split(second.provenance["command"])[1:] == words[1:]


def test_cli_json(tmp_path, capsys):
    from sparsegraph.cli import main

    argv = ["compare", "lenet300", "--schemes", "erk", "--densities", "0.05", "-o",
            str(tmp_path), "--workers", "0", "--no-progress", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "sparsegraph-compare"
    assert [r["layer"] for r in data["rows"]][-1] == NETWORK_ROW


def test_cli_errors(tmp_path, capsys):
    from sparsegraph.cli import main

    assert main(["compare", "lenet300", "--schemes", "igqq", "-o", str(tmp_path),
                 "--workers", "0", "--no-progress"]) == 2
    assert "did you mean 'igq'" in capsys.readouterr().err
    assert main(["compare", "lenet300", "--densities", "2", "-o", str(tmp_path),
                 "--workers", "0", "--no-progress"]) == 2


def test_spectral_columns(lenet):
    _, _, net = lenet
    res = compare(net, schemes="erk", densities=[0.1], spectral=True, client=False,
                  progress=False)
    *layers, total = res.rows
    extra = [c for c in res.columns if c.startswith("spectral_")]
    assert "spectral_mu_hat" in extra and "spectral_imdb" in extra
    assert all(set(extra) <= set(r) for r in res.rows)
    assert total["spectral_scored"] == sum(r["spectral_scored"] for r in layers)
    masks = sg.random_masks(net, sg.quotas(net, "erk", 0.1), seed=0)
    rep = sg.spectral(net, masks)
    for row, rec in zip(layers, rep.layers, strict=True):
        want = math.nan if rec.mu_hat is None else rec.mu_hat
        assert row["spectral_mu_hat"] == pytest.approx(want, nan_ok=True)
    mean = rep.mean["imdb"]
    assert total["spectral_imdb"] == pytest.approx(math.nan if mean is None else mean,
                                                   nan_ok=True)
    assert res.tasks[0]["spectral_s"] > 0
    back = CompareResult.from_dict(json.loads(res.to_json()))
    assert back.equals(res)


def test_without_dask_runs_serially(lenet, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    res = compare(lenet[2], schemes="igq", densities=[0.1, 0.01], progress=True)
    assert res.provenance["execution"]["mode"] == "serial" and not res.failures
    assert "compare" in capsys.readouterr().err  # the progress bar, on stderr
    with pytest.raises(SparseGraphError, match="not installed"):
        compare(lenet[2], schemes="igq", densities=0.1, workers=2, progress=False)


def test_one_task_does_not_start_a_cluster(lenet):
    res = compare(lenet[2], schemes="igq", densities=0.1, progress=False)
    assert res.provenance["execution"]["mode"] == "serial"


def test_scheduler_address(lenet, serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster:
        res = compare("lenet300", schemes=SCHEMES, densities=DENSITIES, seeds=SEEDS,
                      scheduler=cluster.scheduler_address, progress=False)
    assert res.provenance["execution"]["scheduler"] == cluster.scheduler_address
    assert res.equals(serial)
    with pytest.raises(SparseGraphError, match="workers"):
        compare(lenet[2], schemes="igq", densities=0.1, scheduler="tcp://127.0.0.1:1",
                workers=2, progress=False)


# ---------------------------------------------------------------------------------------------
# exclude, data, and where the tasks run (issues 10 and 15)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["name", "model", "network"])
def test_exclude_keeps_layers_dense_in_every_scheme(lenet, target):
    model, x, net = lenet
    schemes = ["uniform", "erk", "igq"] + (["magnitude", "lamp", "random"]
                                           if target != "network" else [])
    arg = {"name": "lenet300", "model": model, "network": net}[target]
    extra = {"example_input": x} if target == "model" else {}
    res = compare(arg, schemes=schemes, densities=[0.05, 0.02], exclude=["fc3.weight"],
                  client=False, progress=False, **extra)
    assert not res.failures, res.failures
    fc3 = [r for r in res.rows if r["layer"] == "fc3.weight"]
    assert len(fc3) == len(schemes) * 2 and all(r["kept"] == r["params"] == 1000 for r in fc3)
    for row in res.network_rows():  # dense layers count in the budget: overall density exact
        assert row["kept"] == round(row["density"] * net.params)
    assert res.provenance["model"]["dense"] == ["fc3.weight"]
    # a quota task is exactly random_masks with the excluded layers as dense=
    want = sg.random_masks(net, sg.quotas(net, "erk", 0.02, dense=["fc3.weight"]), seed=0)
    got = {r["layer"]: r["kept"] for r in res.rows
           if r["scheme"] == "erk" and r["density"] == 0.02 and r["layer"] != NETWORK_ROW}
    assert got == {k: int(m.sum()) for k, m in want.items()}


def test_exclude_patterns_and_errors_before_any_work(lenet):
    net = lenet[2]
    res = compare(net, schemes="igq", densities=0.2, exclude="fc[23].*", client=False,
                  progress=False)
    assert res.provenance["model"]["dense"] == ["fc2.weight", "fc3.weight"]
    with pytest.raises(sg.MaskError, match="matches no prunable layer"):
        compare(net, schemes="igq", densities=0.1, exclude=["conv9.weight"], client=False,
                progress=False)
    with pytest.raises(QuotaError, match=r"exclude: the excluded layers fc1.weight keep "
                       r"235,200 weights, more than density 0.1 allows"):  # before any task
        compare(net, schemes="igq", densities=[0.5, 0.1], exclude=["fc1.weight"], client=False,
                progress=False)


def test_pruners_that_need_data_sweep_with_it(lenet):
    import torch

    model, x, net = lenet
    data = (torch.randn(16, 1, 28, 28), torch.randint(10, (16,)))
    res = compare(model, example_input=x, schemes="snip,grasp", densities=[0.05], seeds=2,
                  data=data, client=False, progress=False)
    assert not res.failures, res.failures
    assert [r["kept"] for r in res.network_rows()] == [round(0.05 * net.params)] * 4
    assert res.provenance["arguments"]["data"] == "given"
    again = reproduce(res, model=model, example_input=x, data=data, client=False,
                      progress=False)
    assert again.equals(res)


def test_rounds_reach_the_iterative_pruner(lenet):
    model, x, net = lenet
    res = compare(model, example_input=x, schemes="synflow", densities=[0.05], rounds=2,
                  client=False, progress=False)
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = type(model)()
    masks = sg.prune(fresh, "synflow", density=0.05, example_input=x, rounds=2)
    row = res.network_rows()[0]
    assert row["effective"] == sg.audit(net, masks).network.effective
    assert "rounds=2" in res.provenance["python_call"]


def test_small_sweeps_run_serially_and_say_why(lenet):
    pytest.importorskip("distributed")
    res = compare(lenet[2], schemes="uniform,igq", densities=[0.1, 0.05, 0.01], progress=False)
    ex = res.provenance["execution"]
    if ex["mode"] == "serial" and "one core" not in ex["reason"]:
        assert "s of work left" in ex["reason"] and ex["estimated_s"] < 10
    assert res.equals(compare(lenet[2], schemes="uniform,igq", densities=[0.1, 0.05, 0.01],
                              client=False, progress=False))


def test_choose_compares_the_saving_with_the_cluster_start():
    from sparsegraph.sweep.run import CLUSTER_START_S, choose

    assert choose(0.5, 2)[0] == "serial"
    assert choose(2.5 * CLUSTER_START_S, 2)[0] == "local"  # saves 1.25 x the start-up
    assert choose(1.5 * CLUSTER_START_S, 2)[0] == "serial"  # saves only 0.75 x
    assert choose(1000.0, 1)[0] == "serial"
    mode, reason = choose(100.0, 4)
    assert mode == "local" and "4 worker processes" in reason
