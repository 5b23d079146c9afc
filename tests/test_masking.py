"""apply_masks / extract_masks: pruned weights stay exactly zero through training, masks come
back out unchanged, bad input is refused by name before anything is modified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from sparsegraph.errors import MaskError
from sparsegraph.graph.trace import trace
from sparsegraph.pytorch.apply import APPLY_METHODS, apply_masks, extract_masks


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(24, 10), nn.ReLU(), nn.Linear(10, 3),
    )


X = torch.zeros(1, 1, 8, 8)


def _masks(model: nn.Module, density: float = 0.3, seed: int = 0) -> dict[str, np.ndarray]:
    net = trace(model, X)
    rng = np.random.default_rng(seed)
    return {layer.name: rng.random(layer.shape) < density for layer in net.layers}


def _weight(model: nn.Module, name: str) -> torch.Tensor:
    mod, _, p = name.rpartition(".")
    return getattr(model.get_submodule(mod), p).detach()


OPTIMIZERS = {
    "sgd_momentum_wd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4,
                                                  nesterov=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=1e-4),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=1e-2),
}


@pytest.mark.parametrize("method", APPLY_METHODS)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_pruned_weights_stay_exactly_zero_through_training(method, opt):
    model = _cnn()
    masks = _masks(model)
    before = {n: _weight(model, n).clone() for n in masks}
    apply_masks(model, masks, method=method)
    model.train()
    optimizer = OPTIMIZERS[opt](model.parameters())
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        x = torch.randn(16, 1, 8, 8, generator=gen)
        y = torch.randint(0, 3, (16,), generator=gen)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model(X)  # torch.nn.utils.prune recomputes .weight in a forward pre-hook
    for name, m in masks.items():
        w = _weight(model, name)
        assert torch.all(w[torch.from_numpy(~m)] == 0), name
        assert not torch.equal(w[torch.from_numpy(m)], before[name][torch.from_numpy(m)]), name
        assert np.array_equal(extract_masks(model)[name], m)


@pytest.mark.parametrize("method", APPLY_METHODS)
def test_extract_returns_the_applied_masks(method):
    model = _cnn()
    masks = _masks(model, 0.5, seed=3)
    apply_masks(model, masks, method=method)
    out = extract_masks(model)
    assert list(out) == list(masks)
    for name in masks:
        assert out[name].dtype == np.bool_ and np.array_equal(out[name], masks[name])
    assert set(extract_masks(model, names="8.*")) == {"8.weight", "8.bias"}


@pytest.mark.parametrize("method", APPLY_METHODS)
def test_masking_an_already_masked_model_keeps_the_names(method):
    """Re-applying (the same mask on reinitialised weights, or a sparser one) masks the
    parameter the model reads, not the ``weight_orig`` behind it: the keys stay put and the
    masks compose."""
    model = _cnn()
    dense = _masks(model, 0.6, seed=1)
    sparser = {n: m & _masks(model, 0.5, seed=2)[n] for n, m in dense.items()}
    apply_masks(model, dense, method=method)
    apply_masks(model, sparser, method=method)
    out = extract_masks(model)
    assert list(out) == list(dense)
    for name in dense:
        assert np.array_equal(out[name], sparser[name]), name
    model(X)
    for name, m in sparser.items():
        assert torch.all(_weight(model, name)[torch.from_numpy(~m)] == 0), name


def test_prune_convention_and_finalise():
    model = _cnn()
    masks = _masks(model)
    apply_masks(model, masks)
    assert hasattr(model[0], "weight_orig") and hasattr(model[0], "weight_mask")
    assert "0.weight_mask" in model.state_dict()
    prune.remove(model[0], "weight")
    assert np.array_equal(model[0].weight.detach().numpy() != 0, masks["0.weight"])
    model2 = _cnn()
    apply_masks(model2, masks, method="parametrize")
    assert "0.parametrizations.weight.0.mask" in model2.state_dict()
    parametrize.remove_parametrizations(model2[0], "weight")
    assert np.array_equal(model2[0].weight.detach().numpy() != 0, masks["0.weight"])


@pytest.mark.parametrize("method", APPLY_METHODS)
def test_rescale_by_inverse_sqrt_density(method):
    model = _cnn()
    masks = _masks(model, 0.25, seed=5)
    original = {n: _weight(model, n).clone() for n in masks}
    apply_masks(model, masks, method=method, rescale=True)
    model(X)
    for name, m in masks.items():
        d = m.sum() / m.size
        expect = original[name] * torch.from_numpy(m) / np.sqrt(d)
        torch.testing.assert_close(_weight(model, name), expect.float(), rtol=1e-6, atol=0)


def test_extract_reads_exact_zeros_and_ao_fake_sparsity():
    from torch.ao.pruning import WeightNormSparsifier

    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    with torch.no_grad():
        model[0].weight[0, :3] = 0
    zeros = extract_masks(model)
    assert zeros["0.weight"].sum() == 48 - 3 and zeros["2.weight"].all()
    sp = WeightNormSparsifier(sparsity_level=0.5, sparse_block_shape=(1, 2), zeros_per_block=2)
    sp.prepare(model, config=None)
    sp.step()
    out = extract_masks(model)
    for i in (0, 2):
        fake = model[i].parametrizations.weight[0].mask.numpy() != 0
        assert np.array_equal(out[f"{i}.weight"], fake)


def test_keys_follow_trace_on_a_builtin_and_wrappers():
    from sparsegraph.pytorch.models import build_model

    model, x = build_model("lenet5")
    net = trace(model, x)
    rng = np.random.default_rng(0)
    masks = {layer.name: rng.random(layer.shape) < 0.1 for layer in net.layers}
    wrapped = nn.DataParallel(model)
    apply_masks(wrapped, {"module." + k: v for k, v in masks.items()})
    out = extract_masks(wrapped)
    assert list(out) == net.names
    assert all(np.array_equal(out[k], masks[k]) for k in masks)


def test_bad_input_is_refused_before_anything_changes():
    model = _cnn()
    masks = _masks(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    bad_name = dict(masks)
    bad_name["8.wieght"] = bad_name.pop("8.weight")
    with pytest.raises(MaskError, match=r"8\.wieght.*did you mean '8\.weight'"):
        apply_masks(model, bad_name)
    bad_shape = dict(masks, **{"4.weight": np.ones((6, 4, 3, 2))})
    with pytest.raises(MaskError, match=r"4\.weight.*\[6, 4, 3, 3\].*\[6, 4, 3, 2\]"):
        apply_masks(model, bad_shape)
    with pytest.raises(MaskError, match=r"0\.weight.*0\.5"):
        apply_masks(model, dict(masks, **{"0.weight": np.full((4, 1, 3, 3), 0.5)}))
    with pytest.raises(MaskError, match="NaN"):
        apply_masks(model, dict(masks, **{"0.weight": np.full((4, 1, 3, 3), np.nan)}))
    with pytest.raises(MaskError, match="method"):
        apply_masks(model, masks, method="magic")
    with pytest.raises(MaskError, match="same parameter"):
        apply_masks(model, {"0.weight": masks["0.weight"], "module.0.weight": masks["0.weight"]})
    assert not hasattr(model[0], "weight_orig")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    with pytest.raises(MaskError, match="matches no parameter"):
        extract_masks(model, names=["nothing.*"])


def test_partial_masks_leave_other_layers_dense():
    model = _cnn()
    apply_masks(model, {"8.weight": np.zeros((10, 24), dtype=bool)})
    out = extract_masks(model)
    assert not out["8.weight"].any() and out["0.weight"].all() and out["10.weight"].all()
    assert not hasattr(model[0], "weight_orig")
