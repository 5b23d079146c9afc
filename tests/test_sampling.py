"""Random masks (sparsegraph.masks.sampling): exact counts, determinism, uniformity, granularity,
the effective-density search."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from sparsegraph.errors import ArgumentError, QuotaError
from sparsegraph.graph.network import Layer, Network, Node
from sparsegraph.masks import effective_target
from sparsegraph.masks.quotas import quota_counts, quotas
from sparsegraph.masks.sampling import (
    SparseMasks,
    layer_seeds,
    random_masks,
    random_masks_effective,
    sample_indices,
)

# ---------------------------------------------------------------------------------------------
# hand-made networks (no tracing needed)
# ---------------------------------------------------------------------------------------------


def mlp(widths, name="mlp") -> Network:
    layers, nodes = [], [Node(0, "input", (), (widths[0],))]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(Layer(f"fc{i}.weight", f"fc{i}", "linear", (b, a), a, b))
        nodes.append(Node(i + 1, "layer", (i,), (b,), layer=i, params={"op": "linear"}))
    return Network(tuple(layers), tuple(nodes), (len(nodes) - 1,), name=name)


def convnet() -> Network:
    # quotas and sampling only read the layers; nodes are not needed here
    layers = (
        Layer("c0.weight", "c0", "conv", (8, 3, 3, 3), 3, 8, 1),
        Layer("c1.weight", "c1", "conv", (16, 8, 3, 3), 8, 16, 1),
        Layer("c2.weight", "c2", "conv", (16, 16, 1, 1), 16, 16, 1),
        Layer("fc.weight", "fc", "linear", (10, 16), 16, 10),
    )
    return Network.from_layers(layers, name="conv")


def digest(masks) -> str:
    h = hashlib.sha256()
    for name, m in masks.items():
        h.update(name.encode())
        h.update(np.packbits(np.asarray(m, dtype=bool)).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# exact counts, dense == sparse
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["uniform", "erk", "igq", "er_graph"])
@pytest.mark.parametrize("density", [0.001, 0.05, 0.3, 0.7, 1.0])
def test_exact_counts(scheme, density):
    net = convnet()
    q = quotas(net, scheme, density)
    want = quota_counts(net, q)
    masks = random_masks(net, q, seed=3)
    assert list(masks) == net.names
    for layer in net.layers:
        m = masks[layer.name]
        assert m.dtype == np.bool_ and m.shape == layer.shape
        assert int(m.sum()) == want[layer.name]
    assert sum(int(m.sum()) for m in masks.values()) == round(density * net.params)
    # scheme name form gives the same masks
    assert digest(random_masks(net, scheme, density=density, seed=3)) == digest(masks)
    sm = random_masks(net, q, seed=3, sparse=True)
    assert isinstance(sm, SparseMasks) and sm.kept == sum(want.values())
    for idx in sm.values():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert digest(sm.to_dense()) == digest(masks)


@settings(max_examples=60)
@given(n=st.integers(1, 5000), frac=st.floats(0, 1), seed=st.integers(0, 2**32))
def test_property_sample_indices(n, frac, seed):
    k = round(frac * n)
    dense = sample_indices(n, k, np.random.default_rng(seed))
    sparse = sample_indices(n, k, np.random.default_rng(seed), sparse=True)
    assert dense.shape == (n,) and int(dense.sum()) == k
    assert sparse.size == k and np.all(np.diff(sparse) > 0)
    assert np.array_equal(np.flatnonzero(dense), sparse)


def test_billion_positions_sparse_is_cheap():
    idx = sample_indices(10**9, 20_000, np.random.default_rng(1), sparse=True)
    assert idx.size == 20_000 and idx.min() >= 0 and idx.max() < 10**9
    assert np.all(np.diff(idx) > 0)


def test_missing_layers_are_dense():
    net = convnet()
    masks = random_masks(net, {"c1.weight": 0.25}, seed=0)
    assert masks["c0.weight"].all() and masks["fc.weight"].all()
    assert int(masks["c1.weight"].sum()) == round(0.25 * 16 * 8 * 9)


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------


def test_determinism_in_process():
    net = convnet()
    a = random_masks(net, "erk", density=0.2, seed=11)
    b = random_masks(net, "erk", density=0.2, seed=11)
    c = random_masks(net, "erk", density=0.2, seed=12)
    assert digest(a) == digest(b) != digest(c)
    ss = np.random.SeedSequence(11)
    # a SeedSequence seed equals its integer, and reusing the object gives the same masks
    assert digest(random_masks(net, "erk", density=0.2, seed=ss)) == digest(a)
    assert digest(random_masks(net, "erk", density=0.2, seed=ss)) == digest(a)


def test_layer_streams_independent_of_other_layers():
    # a layer's mask depends on its own position, size, count and the seed only
    net = convnet()
    a = random_masks(net, {"c1.weight": 0.3, "fc.weight": 0.5}, seed=5)
    b = random_masks(net, {"c1.weight": 0.3, "fc.weight": 0.9}, seed=5)
    assert np.array_equal(a["c1.weight"], b["c1.weight"])
    assert [s.spawn_key for s in layer_seeds(5, 3)] == [(0,), (1,), (2,)]


def test_determinism_across_processes():
    code = textwrap.dedent(
        """
        import hashlib, numpy as np
        from sparsegraph.graph.network import Layer, Network
        from sparsegraph.masks.sampling import random_masks
        layers = (Layer("c.weight", "c", "conv", (16, 8, 3, 3), 8, 16, 1),
                  Layer("fc.weight", "fc", "linear", (10, 160), 160, 10))
        net = Network.from_layers(layers)
        h = hashlib.sha256()
        for g in ("weight", "kernel", "channel"):
            for name, m in random_masks(net, "erk", density=0.1, seed=42, granularity=g).items():
                h.update(name.encode()); h.update(np.packbits(m).tobytes())
        print(h.hexdigest())
        """
    )
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)}
    layers = (Layer("c.weight", "c", "conv", (16, 8, 3, 3), 8, 16, 1),
              Layer("fc.weight", "fc", "linear", (10, 160), 160, 10))
    net = Network.from_layers(layers)
    h = hashlib.sha256()
    for g in ("weight", "kernel", "channel"):
        for name, m in random_masks(net, "erk", density=0.1, seed=42, granularity=g).items():
            h.update(name.encode())
            h.update(np.packbits(m).tobytes())
    assert runs == {h.hexdigest()}


# ---------------------------------------------------------------------------------------------
# uniformity
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(("n", "k"), [(30, 4), (30, 22), (1000, 7)])
def test_chi_square_positions(n, k, sparse):
    trials = 3000 if n < 100 else 6000
    hits = np.zeros(n)
    for t in range(trials):
        rng = np.random.default_rng([t, n, k])
        idx = sample_indices(n, k, rng, sparse=True) if sparse else np.flatnonzero(
            sample_indices(n, k, rng))
        hits[idx] += 1
    assert hits.sum() == trials * k
    assert chisquare(hits).pvalue > 1e-4


def test_chi_square_pairs():
    # all C(6, 2) = 15 subsets of size 2 equally likely (not only the marginals)
    counts: dict[tuple[int, ...], int] = {}
    for t in range(6000):
        s = tuple(sample_indices(6, 2, np.random.default_rng(t), sparse=True).tolist())
        counts[s] = counts.get(s, 0) + 1
    assert len(counts) == 15
    assert chisquare(list(counts.values())).pvalue > 1e-4


def test_chi_square_through_random_masks():
    layer = Layer("fc.weight", "fc", "linear", (5, 8), 8, 5)
    net = Network.from_layers((layer,))
    hits = np.zeros((5, 8))
    for seed in range(2000):
        hits += random_masks(net, {"fc.weight": 0.25}, seed=seed)["fc.weight"]
    assert chisquare(hits.ravel()).pvalue > 1e-4


# ---------------------------------------------------------------------------------------------
# granularity and structure
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [0.05, 0.3, 0.8])
def test_kernel_granularity(density):
    net = convnet()
    q = quotas(net, "erk", density)
    masks = random_masks(net, q, seed=1, granularity="kernel")
    for layer in net.layers:
        m = masks[layer.name]
        if m.ndim == 4:
            per_kernel = m.reshape(m.shape[0], m.shape[1], -1).sum(-1)
            assert set(np.unique(per_kernel)) <= {0, m.shape[2] * m.shape[3]}
            units = m.shape[0] * m.shape[1]
            assert abs((per_kernel > 0).sum() - q[layer.name] * units) < 1 + 1e-9


@pytest.mark.parametrize("density", [0.05, 0.3, 0.8])
def test_channel_granularity(density):
    net = convnet()
    q = quotas(net, "uniform", density)
    masks = random_masks(net, q, seed=2, granularity="channel")
    for layer in net.layers:
        m = masks[layer.name].reshape(layer.shape[0], -1)
        rows = m.sum(1)
        assert set(np.unique(rows)) <= {0, m.shape[1]}
        assert abs((rows > 0).sum() - q[layer.name] * layer.shape[0]) < 1 + 1e-9
    sm = random_masks(net, q, seed=2, granularity="channel", sparse=True)
    assert digest(sm.to_dense()) == digest(masks)


def test_regular_structure():
    if importlib.util.find_spec("sparsegraph.masks.regular") is None:
        pytest.skip("sparsegraph.masks.regular not available")
    net = convnet()
    q = quotas(net, "uniform", 0.25)
    want = quota_counts(net, q)
    masks = random_masks(net, q, seed=0, structure="regular")
    for layer in net.layers:
        m = masks[layer.name].reshape(layer.shape[0], -1)
        assert int(m.sum()) == want[layer.name]
        assert m.sum(1).max() - m.sum(1).min() <= 1  # balanced output degrees
    again = random_masks(net, q, seed=0, structure="regular")
    assert digest(again) == digest(masks)
    sm = random_masks(net, q, seed=0, structure="regular", sparse=True)
    assert digest(sm.to_dense()) == digest(masks)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_errors():
    net = convnet()
    q = quotas(net, "erk", 0.1)
    # choices and seeds are checked at the argument door (ArgumentError, sparsegraph._args)
    with pytest.raises(ArgumentError,
                       match="granularity: expected one of 'weight', 'kernel', 'channel'"):
        random_masks(net, q, granularity="filter")
    with pytest.raises(ArgumentError, match="structure"):
        random_masks(net, q, structure="ramanujan")
    with pytest.raises(QuotaError, match="already fixes the layer densities"):
        random_masks(net, q, density=0.1)
    with pytest.raises(QuotaError, match="needs density="):
        random_masks(net, "erk")
    with pytest.raises(QuotaError, match="needs a scheme name"):
        random_masks(net, q, density=0.1, effective=True)
    with pytest.raises(ArgumentError, match="seed"):
        random_masks(net, q, seed=-1)
    with pytest.raises(ArgumentError, match="seed"):
        random_masks(net, q, seed=1.5)
    with pytest.raises(QuotaError, match="unknown quota scheme"):
        random_masks(net, "nope", density=0.1)
    with pytest.raises(QuotaError, match="unknown layer"):
        random_masks(net, {"c9.weight": 0.1})
    with pytest.raises(QuotaError, match="granularity='weight'"):
        random_masks(net, q, structure="regular", granularity="kernel")


# ---------------------------------------------------------------------------------------------
# effective-density target
# ---------------------------------------------------------------------------------------------


def reference_effective(net: Network, masks):
    """Effective weights of an MLP chain: kept, source forward- and target backward-reachable."""
    mats = [np.asarray(masks[layer.name], dtype=bool) for layer in net.layers]  # (out, in)
    fwd = [np.ones(mats[0].shape[1], dtype=bool)]
    for m in mats:
        fwd.append((m & fwd[-1][None, :]).any(1))
    bwd = [np.ones(mats[-1].shape[0], dtype=bool)]
    for m in reversed(mats):
        bwd.append((m & bwd[-1][:, None]).any(0))
    bwd = bwd[::-1]  # bwd[i] = units feeding layer i that reach the output
    return {layer.name: m & fwd[i][None, :] & bwd[i + 1][:, None]
            for i, (layer, m) in enumerate(zip(net.layers, mats, strict=True))}


@pytest.fixture
def recorded(monkeypatch):
    calls: list[tuple[dict, int]] = []

    def fake():
        def effective_masks(net, masks):
            eff = reference_effective(net, masks)
            calls.append(({k: v.copy() for k, v in masks.items()},
                          sum(int(v.sum()) for v in eff.values())))
            return eff
        return effective_masks

    monkeypatch.setattr(effective_target, "_effective_fn", fake)
    return calls


@pytest.mark.parametrize("scheme", ["uniform", "erk", "igq"])
@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_effective_search(recorded, scheme, target):
    net = mlp([200, 100, 60, 10])
    masks, info = random_masks_effective(net, scheme, target, seed=4)
    n = net.params
    eff = reference_effective(net, masks)
    effective = sum(int(v.sum()) for v in eff.values())
    kept = sum(int(v.sum()) for v in masks.values())
    assert info.kept == kept and info.effective == effective and info.params == n
    assert info.direct_density == kept / n and info.effective_density == effective / n
    assert info.effective_density <= target <= info.direct_density + 1e-12 or kept == n
    # every candidate is nested in every larger one (a chain)
    chain = sorted(recorded, key=lambda c: sum(int(v.sum()) for v in c[0].values()))
    for (small, _), (large, _) in zip(chain[:-1], chain[1:], strict=True):
        assert all(np.all(small[k] <= large[k]) for k in small)
    # effective counts grow along the chain
    effs = [e for _, e in chain]
    assert effs == sorted(effs)
    # the largest: the next candidate up (within a couple of weights) exceeds the target
    above = [(sum(int(v.sum()) for v in c.values()), e) for c, e in chain if e / n > target]
    assert above and min(k for k, _ in above) <= kept + 2
    # dead weights were left in: direct density above effective
    assert info.direct_density >= info.effective_density
    # the wrapper returns the same masks with the info attached
    wrapped = random_masks(net, scheme, density=target, seed=4, effective=True)
    assert digest(wrapped) == digest(masks) and wrapped.info == info
    sm = random_masks(net, scheme, density=target, seed=4, effective=True, sparse=True)
    assert digest(sm.to_dense()) == digest(masks) and sm.info == info


def test_effective_search_quota_follows_scheme(recorded):
    net = mlp([300, 100, 10])
    masks, info = random_masks_effective(net, "uniform", 0.1, seed=0)
    want = quota_counts(net, quotas(net, "uniform", info.direct_density))
    got = {k: int(v.sum()) for k, v in masks.items()}
    assert all(abs(got[k] - want[k]) <= 1 for k in got)


def test_effective_search_errors(recorded):
    net = mlp([50, 20, 5])
    with pytest.raises(QuotaError, match="density"):
        random_masks_effective(net, "erk", 0.0)
    with pytest.raises(QuotaError, match="needs density="):
        random_masks(net, "erk", effective=True)
    masks, info = random_masks_effective(net, "erk", 1.0)
    assert info.direct_density == 1.0 and info.effective_density == 1.0


@pytest.mark.skipif(importlib.util.find_spec("sparsegraph.metrics.effective") is None,
                    reason="sparsegraph.metrics.effective not available yet")
def test_effective_search_real_backend():
    from sparsegraph.metrics.effective import effective_masks

    net = mlp([200, 100, 60, 10])
    masks, info = random_masks_effective(net, "erk", 0.03, seed=1)
    eff = effective_masks(net, masks)
    ref = reference_effective(net, masks)
    assert all(np.array_equal(eff[k], ref[k]) for k in ref)
    assert info.effective == sum(int(v.sum()) for v in ref.values())
    assert info.effective_density <= 0.03


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------


def test_cli_generate(tmp_path, capsys):
    import json

    from sparsegraph.cli import main
    from sparsegraph.graph.trace import trace
    from sparsegraph.masks.files import load_masks
    from sparsegraph.pytorch.models import build_model

    out = tmp_path / "m.safetensors"
    args = ["generate", "lenet5", "--scheme", "igq", "--density", "0.1", "--seed", "3",
            "-o", str(out)]
    assert main(args) == 0
    assert "direct density" in capsys.readouterr().out
    net = trace(*build_model("lenet5"))
    masks = load_masks(out, net=net)
    want = random_masks(net, "igq", density=0.1, seed=3)
    assert digest({k: masks[k] for k in want}) == digest(want)
    assert main(args) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force", "--granularity", "channel", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["params"] == net.params and summary["kept"] == sum(
        int(m.sum()) for m in load_masks(out, net=net).values())
    from safetensors import safe_open

    with safe_open(str(out), framework="numpy") as fh:
        meta = fh.metadata()
    text = json.dumps(meta)
    for word in ("igq", "channel", "fingerprint", "sparsegraph"):
        assert word in text


def test_cli_generate_effective(tmp_path, capsys, recorded):
    from sparsegraph.cli import main

    out = tmp_path / "e.npz"
    assert main(["generate", "lenet300", "--scheme", "erk", "--density", "0.01", "--effective",
                 "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert "effective density" in line and "target 0.01" in line
