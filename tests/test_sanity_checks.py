"""The sanity checks of pruning at initialization (Frankle et al. 2021): layerwise shuffle,
re-initialisation and score inversion."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import sparsegraph as sg


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


X = torch.zeros(1, 1, 8, 8)

# ------------------------------------------------------------------------------- shuffle


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(1, 30), st.floats(0, 1)),
                                            min_size=1, max_size=4))
def test_shuffle_keeps_counts_and_is_deterministic(seed, layers):
    rng = np.random.default_rng(seed)
    masks = {f"l{i}.weight": rng.random((n, 3)) < d for i, (n, d) in enumerate(layers)}
    a = sg.shuffle_masks(masks, seed=seed)
    b = sg.shuffle_masks({k: torch.from_numpy(v) for k, v in masks.items()}, seed=seed)
    assert list(a) == list(masks)
    for k, m in masks.items():
        assert a[k].dtype == np.bool_ and a[k].shape == m.shape
        assert a[k].sum() == m.sum()
        assert np.array_equal(a[k], b[k])


def test_shuffle_redraws_positions_uniformly():
    mask = {"fc.weight": np.zeros((5, 8), bool)}
    mask["fc.weight"].flat[:10] = True  # 10 kept of 40, all in the first rows
    counts = np.zeros((5, 8))
    for seed in range(400):
        counts += sg.shuffle_masks(mask, seed=seed)["fc.weight"]
    freq = counts / 400  # each position kept with probability 10/40
    assert np.abs(freq - 0.25).max() < 0.1
    assert not np.array_equal(sg.shuffle_masks(mask, seed=1)["fc.weight"],
                              sg.shuffle_masks(mask, seed=2)["fc.weight"])


def test_shuffle_with_net_is_random_masks_from_mask_quotas():
    model = cnn()
    net = sg.trace(model, X)
    masks = sg.prune(model, "magnitude", density=0.2, example_input=X)
    shuffled = sg.shuffle_masks(masks, seed=7, net=net)
    expected = sg.random_masks(net, sg.quotas(net, "from_mask", masks=masks), seed=7)
    assert all(np.array_equal(shuffled[k], expected[k]) for k in expected)
    assert sum(int((shuffled[k] != masks[k]).sum()) for k in masks) > 0


def test_shuffle_errors():
    with pytest.raises(sg.MaskError, match="0 and 1"):
        sg.shuffle_masks({"a": np.array([0.5, 1.0])})
    with pytest.raises(sg.MaskError, match="mapping"):
        sg.shuffle_masks([np.ones(3)])
    with pytest.raises(sg.ArgumentError, match="seed"):
        sg.shuffle_masks({"a": np.ones(3)}, seed=-1)
    with pytest.raises(sg.MaskError, match="unknown layer"):
        sg.shuffle_masks({"nope": np.ones(3)}, net=sg.trace(cnn(), X))


# -------------------------------------------------------------------------------- reinit


def weights(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["prune", "parametrize"])
def test_reinit_keeps_masks_and_draws_fresh_weights(method):
    model = cnn()
    masks = sg.prune(model, "magnitude", density=0.3, example_input=X)
    sg.apply_masks(model, masks, method=method)
    model(torch.randn(2, 1, 8, 8))  # the pruned weights are non-leaf tensors now
    before = weights(model)
    state = torch.random.get_rng_state()
    fresh = sg.reinit(model, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # global stream untouched
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # original too
    for name, m in masks.items():
        module = fresh.get_submodule(name.rpartition(".")[0])
        w = module.weight.detach()
        assert (w[~torch.from_numpy(m)] == 0).all() and (w[torch.from_numpy(m)] != 0).all()
        assert not torch.equal(w, model.get_submodule(name.rpartition(".")[0]).weight)
    got = sg.extract_masks(fresh)
    assert all(np.array_equal(got[k], masks[k]) for k in masks)
    # the same seed: the same weights; as if an unmasked model had been re-initialised
    again = sg.reinit(model, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(fresh.parameters(), again.parameters(),
                                                  strict=True))
    plain = sg.reinit(cnn(5), seed=3)
    for name, m in masks.items():
        mod = name.rpartition(".")[0]
        expected = plain.get_submodule(mod).weight.detach() * torch.from_numpy(m)
        assert torch.equal(fresh.get_submodule(mod).weight.detach(), expected)
    assert torch.equal(fresh[6].bias, plain[6].bias)
    assert not torch.equal(sg.reinit(model, seed=4)[6].bias, fresh[6].bias)


def test_reinit_trains_with_its_masks_and_keeps_modes_and_flags():
    model = cnn()
    model.train()
    model[0].weight.requires_grad_(False)
    masks = sg.random_masks(sg.trace(model, X), "erk", density=0.2, seed=0)
    sg.apply_masks(model, masks)
    model(torch.randn(4, 1, 8, 8))  # BN statistics move away from their initial values
    fresh = sg.reinit(model, seed=1)
    assert (fresh[1].running_mean == 0).all() and (model[1].running_mean != 0).any()
    assert fresh.training and not fresh[0].weight_orig.requires_grad
    opt = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(3):
        opt.zero_grad()
        fresh(torch.randn(8, 1, 8, 8)).sum().backward()
        opt.step()
    fresh(X)
    assert (fresh[6].weight[~torch.from_numpy(masks["6.weight"])] == 0).all()


def test_reinit_masks_argument_and_errors():
    model = cnn()
    masks = sg.random_masks(sg.trace(model, X), "uniform", density=0.5, seed=0)
    sg.apply_masks(model, masks, method="inplace")  # leaves nothing a copy could keep
    fresh = sg.reinit(model, seed=0, masks=masks)
    assert all(np.array_equal(sg.extract_masks(fresh)[k], masks[k]) for k in masks)
    with pytest.raises(sg.ArgumentError, match="reset_parameters"):
        sg.reinit(nn.Sequential(nn.ReLU()))
    with pytest.raises(sg.ArgumentError, match="seed"):
        sg.reinit(model, seed=1.5)
    with pytest.raises(sg.ArgumentError, match="Module"):
        sg.reinit("model")


# ------------------------------------------------------------------------------- invert


DATA = (torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
        torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1)))
N = 6 * 9 + 8 * 6 * 9 + 10 * 288


@pytest.mark.parametrize("method", ["random", "magnitude", "snip", "grasp", "lamp"])
@pytest.mark.parametrize("quotas", [None, "erk"])
def test_invert_keeps_exact_counts_and_the_complement_order(method, quotas):
    model = cnn()
    kw = {"example_input": X, "data": DATA, "quotas": quotas, "seed": 2}
    d = 0.25  # N * d and N * (1 - d) are whole: complementary counts
    normal = sg.prune(model, method, density=d, **kw)
    inverted = sg.prune(model, method, density=d, invert=True, **kw)
    complement = sg.prune(model, method, density=1 - d, **kw)
    assert sum(int(v.sum()) for v in inverted.values()) == round(d * N)
    if quotas is None:  # one global ranking: keeping the lowest = dropping the highest
        for k in normal:
            assert np.array_equal(inverted[k], ~complement[k]), k
    else:
        for k in normal:
            assert inverted[k].sum() == normal[k].sum()


def test_inverted_magnitude_keeps_the_smallest_weights():
    model = cnn()
    masks = sg.prune(model, "magnitude", density=0.1, example_input=X, invert=True)
    w = np.concatenate([model.get_parameter(k).detach().abs().numpy().ravel() for k in masks])
    m = np.concatenate([v.ravel() for v in masks.values()])
    assert m.sum() == round(0.1 * N) and w[m].max() <= w[~m].min()


def test_inverted_synflow_counts():
    model = cnn()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        inv = sg.prune(model, "synflow", density=0.2, example_input=X, rounds=5, invert=True)
    normal = sg.prune(model, "synflow", density=0.2, example_input=X, rounds=5)
    assert sum(int(v.sum()) for v in inv.values()) == round(0.2 * N)
    assert any(not np.array_equal(inv[k], normal[k]) for k in inv)
    # one round: the inverted selection is the complement of the normal one at 1 - d
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        one_inv = sg.prune(model, "synflow", density=0.25, example_input=X, rounds=1,
                           invert=True)
    one = sg.prune(model, "synflow", density=0.75, example_input=X, rounds=1)
    assert all(np.array_equal(one_inv[k], ~one[k]) for k in one)


def test_cli_prune_invert(tmp_path, capsys):
    from sparsegraph.cli import main

    out = tmp_path / "inv.safetensors"
    assert main(["prune", "lenet5", "--method", "magnitude", "--density", "0.1", "--invert",
                 "-o", str(out)]) == 0
    model, x = sg.build_model("lenet5")
    expected = sg.prune(model, "magnitude", density=0.1, example_input=x, invert=True)
    got = sg.load_masks(out)
    assert all(np.array_equal(got[k], expected[k]) for k in expected)
    assert sg.read_metadata(out)["invert"] is True
    capsys.readouterr()
