"""The float64 oracle of DESIGN §3 (``reference.oracle_effective``) checked on its own.

Hand cases worked out on paper (the expected arrays are derived in the comments), the older
all-ones oracle (``reference.autograd_effective``) on the built-in CNNs and on random networks
without gates or attention, independence of the oracle's random draws, and that it runs on every
zoo model. None of this uses the tracer, so it passes today; the comparisons of the oracle with
``sg.effective_masks`` are in ``test_modern.py``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import (
    assert_same_masks,
    autograd_effective,
    default_prunable,
    oracle_effective,
)
from zoo import HAND_CASES, HF_ZOO, ZOO, hf_available, random_network

import sparsegraph as sg


def _assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    assert_same_masks(got, want, ("oracle", "expected"))


# ----------------------------------------------------------------------------- hand cases


@pytest.mark.parametrize("case", list(HAND_CASES.values()), ids=list(HAND_CASES))
def test_hand_case(case):
    # the expected masks and their derivation: zoo_hand.HAND_CASES (``why``)
    model, masks, want = case.make()
    _assert_same(oracle_effective(model, case.args, masks), want)


def test_tied_parameter_is_one_layer_under_either_name():
    model, masks, want = HAND_CASES["tied"].make()
    assert model.head.weight is model.wte.weight and list(masks) == ["wte.weight", "h.weight"]
    alias = {"head.weight": masks["wte.weight"], "h.weight": masks["h.weight"]}
    _assert_same(oracle_effective(model, HAND_CASES["tied"].args, alias), want)


# ----------------------------------------------------------------------------- cross-checks


def _random_masks(model, names, density, seed):
    """round(density * size) kept weights per layer (at least one), uniformly at random."""
    rng = np.random.default_rng(seed)
    params = dict(model.named_parameters())
    masks = {}
    for n in names:
        size = params[n].numel()
        flat = np.zeros(size, bool)
        flat[rng.choice(size, max(1, round(density * size)), replace=False)] = True
        masks[n] = flat.reshape(params[n].shape)
    return masks


@functools.cache
def _builtin(name):
    return sg.build_model(name)


@pytest.mark.parametrize("name", ["lenet5", "resnet20",
                                  pytest.param("vgg11", marks=pytest.mark.slow)])
@pytest.mark.parametrize("density", [0.05, 0.01])
def test_agrees_with_the_cnn_oracle_on_builtins(name, density):
    model, x = _builtin(name)
    masks = _random_masks(model, default_prunable(model), density, seed=int(density * 1e3))
    want = autograd_effective(model, masks, x)
    got = oracle_effective(model, x, masks, seed=3)
    assert list(got) == list(want)
    for key in want:
        assert np.array_equal(got[key], want[key]), key


@settings(max_examples=25)
@given(random_network(linear_only=True), st.floats(0.2, 0.9), st.integers(0, 2**16))
def test_agrees_with_the_cnn_oracle_on_random_networks(net_x, density, seed):
    model, x = net_x
    masks = _random_masks(model, default_prunable(model), density, seed)
    want = autograd_effective(model, masks, x)
    got = oracle_effective(model, x, masks)
    for key in want:
        assert np.array_equal(got[key], want[key]), key


@settings(max_examples=25)
@given(random_network(), st.floats(0.2, 0.9), st.integers(0, 2**16))
def test_independent_of_its_random_draws(net_x, density, seed):
    # Weights, inputs and output weighting are random; the effective set must not depend on
    # them (a dependence would be a cancellation, not a path).
    model, x = net_x
    masks = _random_masks(model, default_prunable(model), density, seed)
    a = oracle_effective(model, x, masks, seed=0)
    b = oracle_effective(model, x, masks, seed=1)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
        assert not (a[key] & ~masks[key]).any()


def _zoo_params():
    for name in ZOO:
        yield pytest.param(ZOO[name], id=name)
    for name in HF_ZOO:
        yield pytest.param(HF_ZOO[name], id=name, marks=pytest.mark.skipif(
            not hf_available(), reason="transformers is not installed"))


@pytest.mark.parametrize("case", list(_zoo_params()))
def test_runs_on_every_zoo_model(case):
    model, args, kwargs = case.make()
    names = case.prunable(model)
    params = dict(model.named_parameters())
    dense = oracle_effective(model, args, {n: np.ones(params[n].shape, bool) for n in names},
                             kwargs=kwargs)
    assert list(dense) == names
    # at full density every weight of these models lies on a path
    assert all(v.all() for v in dense.values()), [n for n, v in dense.items() if not v.all()]
    masks = _random_masks(model, names, 0.5, seed=1)
    eff = oracle_effective(model, args, masks, kwargs=kwargs)
    assert all(not (eff[n] & ~masks[n]).any() for n in names)
    assert eff == {} or any(v.any() for v in eff.values())
    none = oracle_effective(model, args, {n: np.zeros(params[n].shape, bool) for n in names},
                            kwargs=kwargs)
    assert not any(v.any() for v in none.values())


def test_bad_masks_are_rejected():
    model = HAND_CASES["se_dead_fc1"].make()[0]
    with pytest.raises(ValueError, match="not a parameter"):
        oracle_effective(model, torch.zeros(1, 2, 4, 4), {"nope.weight": np.ones(3)})
    with pytest.raises(ValueError, match="expected 0/1 of shape"):
        oracle_effective(model, torch.zeros(1, 2, 4, 4), {"c1.weight": np.ones((3, 2))})
