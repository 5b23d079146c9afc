"""Pruning-at-initialization scorers: exact counts, deterministic ties, scores against
independent autograd/naive oracles, the model left untouched, layer collapse reported, and
SynFlow's effective density on the built-in architectures."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from sparsegraph.errors import ArgumentError, MaskError, QuotaError
from sparsegraph.graph.trace import trace
from sparsegraph.pytorch.pruners import (
    PRUNERS,
    LayerCollapseWarning,
    _lamp,
    _score_grasp,
    _top_k,
    prune,
    synflow_scores,
)

X = torch.zeros(1, 1, 8, 8)


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(24, 10), nn.ReLU(), nn.Dropout(0.5), nn.Linear(10, 3),
    )


def _data(n: int = 2, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, 8, 8, generator=gen), torch.randint(0, 3, (8,), generator=gen))
            for _ in range(n)]


def _kept(masks) -> int:
    return sum(int(m.sum()) for m in masks.values())


# ----------------------------------------------------------------------------- exact counts


@pytest.mark.parametrize("method", list(PRUNERS))
@settings(max_examples=6)
@given(density=st.floats(0.002, 1.0))
def test_each_scorer_keeps_exactly_the_requested_count(method, density):
    model = _cnn()
    net = trace(model, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerCollapseWarning)
        masks = prune(model, method, density=density, example_input=X, data=_data(1), rounds=5)
    assert list(masks) == net.names
    assert all(m.dtype == np.bool_ and m.shape == layer.shape
               for m, layer in zip(masks.values(), net.layers, strict=True))
    assert _kept(masks) == round(density * net.params)


@pytest.mark.parametrize("method", ["random", "magnitude", "synflow", "lamp", "snip"])
@pytest.mark.parametrize("scheme", ["uniform", "erk", "igq"])
def test_per_layer_quotas_are_met_exactly(method, scheme):
    from sparsegraph.masks.quotas import quota_counts, quotas

    model = _cnn()
    net = trace(model, X)
    counts = quota_counts(net, quotas(net, scheme, 0.2))
    masks = prune(model, method, density=0.2, example_input=X, quotas=scheme, data=_data(1),
                  rounds=7)
    assert {n: int(m.sum()) for n, m in masks.items()} == counts


def test_ties_are_broken_by_position_never_by_a_threshold():
    model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 4))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)  # every magnitude ties
    with pytest.warns(LayerCollapseWarning):  # the second layer comes last in position order
        masks = prune(model, "magnitude", density=0.3, example_input=torch.zeros(1, 10))
    assert _kept(masks) == 42
    flat = np.concatenate([m.ravel() for m in masks.values()])
    assert flat[:42].all() and not flat[42:].any()  # the first positions, in layer order
    # the selection rule itself: the same as a stable sort of -score, NaN last
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.integers(0, 4, size=rng.integers(1, 40)).astype(float)
        s[rng.random(s.size) < 0.1] = np.nan
        k = int(rng.integers(0, s.size + 1))
        expect = np.zeros(s.size, bool)
        expect[np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")[:k]] = True
        assert np.array_equal(_top_k(s, None, k), expect)


def test_deterministic_and_seeded():
    model = _cnn()
    a = prune(model, "random", density=0.1, example_input=X, seed=3)
    b = prune(model, "random", density=0.1, example_input=X, seed=3)
    c = prune(model, "random", density=0.1, example_input=X, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    s1 = prune(model, "synflow", density=0.05, example_input=X, rounds=10)
    s2 = prune(model, "synflow", density=0.05, example_input=X, rounds=10)
    assert all(np.array_equal(s1[k], s2[k]) for k in s1)


# ---------------------------------------------------------------------- model left untouched


@pytest.mark.parametrize("method", list(PRUNERS))
@pytest.mark.parametrize("training", [True, False])
def test_model_state_modes_and_flags_are_restored(method, training):
    model = _cnn()
    model.train(training)
    model[4].weight.requires_grad_(False)
    model(torch.randn(4, 1, 8, 8)).sum().backward()  # a pending .grad must survive too
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerCollapseWarning)
        prune(model, method, density=0.1, example_input=X, data=_data(), rounds=3)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == modes
    assert not model[4].weight.requires_grad and model[0].weight.requires_grad
    for n, p in model.named_parameters():
        assert (p.grad is None and grads[n] is None) or torch.equal(p.grad, grads[n]), n


def test_data_is_required_and_validated():
    model = _cnn()
    for method in ("snip", "grasp"):
        with pytest.raises(MaskError, match="needs data"):
            prune(model, method, density=0.1, example_input=X)
    with pytest.raises(MaskError, match=r"batch 0"):
        prune(model, "snip", density=0.1, example_input=X, data=[torch.zeros(2, 1, 8, 8)])
    x, y = _data(1)[0]
    one = prune(model, "snip", density=0.1, example_input=X, data=(x, y))
    listed = prune(model, "snip", density=0.1, example_input=X, data=[(x, y)])
    assert all(np.array_equal(one[k], listed[k]) for k in one)


def test_bad_arguments():
    model = _cnn()
    with pytest.raises(MaskError, match="Known schemes: random"):
        prune(model, "obd", density=0.1, example_input=X)
    for d in (0, 1.5, float("nan"), -0.1):
        with pytest.raises(QuotaError, match="density"):
            prune(model, "magnitude", density=d, example_input=X)
    with pytest.raises(ArgumentError, match="rounds"):
        prune(model, "synflow", density=0.1, example_input=X, rounds=0)
    with pytest.raises(MaskError, match="nothing"):
        prune(model, "magnitude", density=0.1, example_input=X, exclude=["nothing.weight"])
    with pytest.raises(QuotaError, match="excluded"):
        prune(model, "magnitude", density=0.001, example_input=X, exclude=["8.weight"])


def test_exclude_keeps_layers_dense_within_the_budget():
    model = _cnn()
    net = trace(model, X)
    masks = prune(model, "synflow", density=0.5, example_input=X, exclude=["0.weight"],
                  rounds=5)
    assert masks["0.weight"].all()
    assert _kept(masks) == round(0.5 * net.params)


# ---------------------------------------------------------------------------- score oracles


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def test_snip_matches_autograd_oracle():
    model = _mlp()
    xs = torch.randn(6, 5, dtype=torch.float64)
    ys = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = nn.functional.cross_entropy(model(xs), ys)
    loss.backward()
    score = torch.cat([(p.grad * p).abs().flatten() for p in (model[0].weight, model[2].weight)])
    model.zero_grad(set_to_none=True)
    k = 11
    expect = np.zeros(score.numel(), bool)
    expect[np.argsort(-score.detach().numpy(), kind="stable")[:k]] = True
    masks = prune(model, "snip", density=k / 32, example_input=xs[:1], data=(xs, ys))
    assert np.array_equal(np.concatenate([m.ravel() for m in masks.values()]), expect)


def test_grasp_matches_full_hessian_oracle():
    model = _mlp(1)
    xs = torch.randn(7, 5, dtype=torch.float64)
    ys = torch.tensor([0, 1, 2, 0, 1, 2, 1])
    names = ["0.weight", "2.weight"]
    shapes = [model.get_parameter(n).shape for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    base = {n: p.detach() for n, p in model.named_parameters()}

    def loss_of(flat):
        params = dict(base)
        for n, part, s in zip(names, flat.split(sizes), shapes, strict=True):
            params[n] = part.reshape(s)
        return nn.functional.cross_entropy(functional_call(model, params, (xs,)) / 200.0, ys)

    w = torch.cat([base[n].flatten() for n in names])
    g = torch.autograd.functional.jacobian(loss_of, w)
    h = torch.autograd.functional.hessian(loss_of, w)
    oracle = (w * (h @ g)).numpy()
    net = trace(model, xs[:1])
    weights = [model.get_parameter(n) for n in names]
    ours = np.concatenate([s.ravel() for s in _score_grasp(model, net, weights, data=(xs, ys))])
    np.testing.assert_allclose(ours, oracle, rtol=1e-8, atol=1e-14)


def test_lamp_matches_naive_formula():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(7, 5))
    flat = np.abs(w).ravel()
    naive = np.array([flat[i] ** 2 / sum(flat[j] ** 2 for j in range(flat.size)
                                         if flat[j] >= flat[i]) for i in range(flat.size)])
    np.testing.assert_allclose(_lamp(w).ravel(), naive, rtol=1e-12)
    assert _lamp(w).max() == 1.0  # each layer's largest weight scores 1: LAMP never collapses


def test_synflow_scores_match_tanaka_autograd_oracle():
    # A chain with average pooling: SynFlow by plain autograd on the |w|-linearised model
    # (biases 0, BN off, all-ones input, float64) is proportional to ours (pool = sum there).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Conv2d(3, 4, 2), nn.Flatten(), nn.Linear(4, 5), nn.ReLU(),
                          nn.Linear(5, 2))
    x = torch.zeros(1, 2, 8, 8)
    net = trace(model, x)
    rng = np.random.default_rng(1)
    masks = {layer.name: rng.random(layer.shape) < 0.7 for layer in net.layers}
    lin = nn.Sequential(*[nn.Identity() if isinstance(m, nn.ReLU) else copy.deepcopy(m)
                          for m in model]).double()
    with torch.no_grad():
        for m in lin:
            if hasattr(m, "bias") and m.bias is not None:
                m.bias.zero_()
    oracle = {}
    params = {}
    for layer in net.layers:
        p = lin.get_parameter(layer.name)
        with torch.no_grad():
            p.copy_(p.abs() * torch.from_numpy(masks[layer.name]))
        params[layer.name] = p
    lin(torch.ones(1, 2, 8, 8, dtype=torch.float64)).sum().backward()
    for name, p in params.items():
        oracle[name] = (p * p.grad).detach().numpy()
    weights = {n: model.get_parameter(n) for n in net.names}
    ours = synflow_scores(net, weights, masks)
    ratio = oracle["7.weight"].sum() / ours["7.weight"].sum()
    for name in net.names:
        np.testing.assert_allclose(ours[name] * ratio, oracle[name], rtol=1e-10, atol=1e-300)
        # conservation (Tanaka et al. Thm 1): every layer's scores sum to the same R
        assert ours[name].sum() == pytest.approx(ours["7.weight"].sum(), rel=1e-10)


def test_synflow_rescaling_survives_deep_chains():
    # 120 layers of tiny weights: (1e-4 * 4)^120 underflows float64 without rescaling
    layers = []
    for _ in range(120):
        lin = nn.Linear(4, 4, bias=False)
        nn.init.uniform_(lin.weight, 0.5e-4, 1.5e-4)
        layers += [lin, nn.ReLU()]
    model = nn.Sequential(*layers)
    net = trace(model, torch.zeros(1, 4))
    scores = synflow_scores(net, {n: model.get_parameter(n) for n in net.names})
    assert all(np.isfinite(s).all() and (s > 0).all() for s in scores.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayerCollapseWarning)
        masks = prune(model, "synflow", density=0.5, example_input=torch.zeros(1, 4), rounds=3)
    assert _kept(masks) == round(0.5 * net.params)


# --------------------------------------------------------------------------- layer collapse


def test_layer_collapse_is_reported():
    model = nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(),
                          nn.Linear(20, 2))
    with torch.no_grad():
        model[2].weight.mul_(1e-6)
    with pytest.warns(LayerCollapseWarning, match=r"2\.weight"):
        masks = prune(model, "magnitude", density=0.05, example_input=torch.zeros(1, 20))
    assert masks.collapsed_layers == ["2.weight"] and not masks["2.weight"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LayerCollapseWarning)
        lamp = prune(model, "lamp", density=0.05, example_input=torch.zeros(1, 20))
    assert lamp.collapsed_layers == []


# ---------------------------------------------------------------- effective density, built-ins


def _effective_ratio(net, masks) -> float:
    from sparsegraph.metrics.audit import audit

    rep = audit(net, masks).network
    return rep.effective / rep.kept


def test_synflow_stays_effective_while_random_loses_it_lenet5():
    from sparsegraph.pytorch.models import build_model

    model, x = build_model("lenet5")
    net = trace(model, x)
    syn = prune(model, "synflow", density=0.002, example_input=x)
    with pytest.warns(LayerCollapseWarning, match="conv1"):  # 150 weights * 0.002 -> 0 kept
        rnd = prune(model, "random", density=0.002, example_input=x, quotas="uniform")
    assert _kept(syn) == _kept(rnd) == round(0.002 * net.params)
    assert _effective_ratio(net, syn) >= 0.99
    assert _effective_ratio(net, rnd) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "resnet20", "resnet18_cifar"])
def test_synflow_effective_density_on_builtins_at_density_0_001(name):
    from sparsegraph.pytorch.models import build_model

    model, x = build_model(name)
    net = trace(model, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LayerCollapseWarning)  # ResNets drop whole blocks
        syn = prune(model, "synflow", density=0.001, example_input=x)
        rnd = prune(model, "random", density=0.001, example_input=x, quotas="uniform")
    assert _kept(syn) == _kept(rnd) == round(0.001 * net.params)
    # within 1% of the direct density
    assert _effective_ratio(net, syn) >= 0.99
    # random uniform masks at the same density lose most or all of it
    assert _effective_ratio(net, rnd) < 0.5


# ------------------------------------------------------------------------------------- CLI


def test_cli_prune_writes_a_mask_file(tmp_path, capsys):
    from sparsegraph.cli import main
    from sparsegraph.masks.files import load_masks, read_metadata
    from sparsegraph.pytorch.models import build_model

    out = tmp_path / "m.safetensors"
    argv = ["prune", "lenet300", "--method", "synflow", "--density", "0.01", "--rounds", "5",
            "-o", str(out)]
    assert main(argv) == 0
    model, x = build_model("lenet300")
    net = trace(model, x)
    masks = load_masks(out, net=net)
    assert _kept(masks) == round(0.01 * net.params)
    meta = read_metadata(out)
    assert (meta["method"], meta["density"], meta["seed"], meta["rounds"]) == ("synflow", 0.01,
                                                                                0, 5)
    assert meta["fingerprint"] == net.fingerprint()
    direct = prune(model, "synflow", density=0.01, example_input=x, rounds=5)
    assert all(np.array_equal(direct[k], masks[k]) for k in masks)
    assert main(argv) == 2  # exists, no --force
    assert "exists" in capsys.readouterr().err
    assert main([*argv, "--force", "--method", "lamp"]) == 0
    assert read_metadata(out)["method"] == "lamp"
