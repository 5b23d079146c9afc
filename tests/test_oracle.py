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
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import autograd_effective, default_prunable, oracle_effective
from torch import nn
from zoo import HF_ZOO, ZOO, hf_available, random_network

import sparsegraph as sg


def _ones(model: nn.Module) -> dict[str, np.ndarray]:
    params = dict(model.named_parameters())
    return {n: np.ones(params[n].shape, bool) for n in default_prunable(model)}


def _int(eff: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: v.astype(int).squeeze().tolist() for k, v in eff.items()}


# ----------------------------------------------------------------------------- squeeze-excitation


class _SE(nn.Module):
    """c1 (1x1, 2 -> 3) -> squeeze-excitation (pool, fc1 3 -> 2, ReLU, fc2 2 -> 3, sigmoid,
    gate * x) -> c2 (1x1, 3 -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 1)
        self.fc1 = nn.Conv2d(3, 2, 1)
        self.fc2 = nn.Conv2d(2, 3, 1)
        self.c2 = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        x = self.c1(x)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return self.c2(x * gate)


def test_dead_se_branch_leaves_the_trunk_alive():
    # fc2 fully pruned: the gate is sigmoid(0) = 1/2, a nonzero constant, so the trunk c1 -> c2
    # carries signal (every c1/c2 weight effective); fc1's outputs reach the gate only through
    # fc2's (pruned) weights: not backward-live, all inactive.
    model = _SE()
    masks = _ones(model)
    masks["fc2.weight"][:] = False
    eff = oracle_effective(model, torch.zeros(1, 2, 4, 4), masks)
    assert _int(eff) == {"c1.weight": [[1, 1]] * 3, "fc1.weight": [[0, 0, 0]] * 2,
                         "fc2.weight": [[0, 0]] * 3, "c2.weight": [[1, 1, 1]] * 2}
    # fc1 fully pruned instead: fc2 reads relu(0) = 0, no signal: inactive too
    masks = _ones(model)
    masks["fc1.weight"][:] = False
    eff = oracle_effective(model, torch.zeros(1, 2, 4, 4), masks)
    assert not eff["fc2.weight"].any() and eff["c1.weight"].all() and eff["c2.weight"].all()


def test_se_gate_of_a_dead_channel():
    # c1's output channel 2 fully pruned: x_2 = 0 (not reached, zero). fc1 reads pooled x_2:
    # fc1[:, 2] inactive (no signal); fc1[:, 0:2] effective. The gate g_2 = sigmoid(fc2 ...) is
    # reached, but the product x_2 * g_2 is zero: g_2 is not backward-live (its factor x_2 is
    # zero), so fc2[2, :] is inactive; c2[:, 2] reads x_2 * g_2, which is not reached.
    model = _SE()
    masks = _ones(model)
    masks["c1.weight"][2] = False
    eff = oracle_effective(model, torch.zeros(1, 2, 4, 4), masks)
    assert _int(eff) == {
        "c1.weight": [[1, 1], [1, 1], [0, 0]],
        "fc1.weight": [[1, 1, 0], [1, 1, 0]],
        "fc2.weight": [[1, 1], [1, 1], [0, 0]],
        "c2.weight": [[1, 1, 0], [1, 1, 0]],
    }


# ----------------------------------------------------------------------------- GLU, SwiGLU


class _Gated(nn.Module):
    """a: Linear 4 -> 6 (rows 0-2 the first half, rows 3-5 the second), the gated unit, o:
    Linear 3 -> 2. ``glu``: first half * sigmoid(second); ``swiglu``: silu(first) * second."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.a = nn.Linear(4, 6)
        self.o = nn.Linear(3, 2)

    def forward(self, x):
        h = self.a(x)
        if self.kind == "glu":
            h = F.glu(h, dim=-1)
        else:
            first, second = h.chunk(2, dim=-1)
            h = F.silu(first) * second
        return self.o(h)


@pytest.mark.parametrize(("kind", "dead", "alive_rows", "out_alive"), [
    # GLU with a dead value half: the product is 0 everywhere, the whole unit is dead
    ("glu", "first", [0, 0, 0, 0, 0, 0], False),
    # GLU with a dead sigmoid gate: sigmoid(0) = 1/2, the value half passes (like a dead SE)
    ("glu", "second", [1, 1, 1, 0, 0, 0], True),
    # SwiGLU: silu(0) = 0, so either dead half kills the unit
    ("swiglu", "first", [0, 0, 0, 0, 0, 0], False),
    ("swiglu", "second", [0, 0, 0, 0, 0, 0], False),
])
def test_gated_unit_with_a_dead_half(kind, dead, alive_rows, out_alive):
    model = _Gated(kind)
    masks = _ones(model)
    masks["a.weight"][slice(0, 3) if dead == "first" else slice(3, 6)] = False
    eff = oracle_effective(model, torch.zeros(1, 4), masks)
    assert eff["a.weight"].any(axis=1).astype(int).tolist() == alive_rows
    assert eff["a.weight"][np.array(alive_rows, bool)].all()
    assert eff["o.weight"].all() == out_alive and eff["o.weight"].any() == out_alive


# ----------------------------------------------------------------------------- causal attention


class _Causal(nn.Module):
    """Tokens (1, 3, 2). ``later`` (Linear) transforms positions 1 and 2 only (after slicing);
    cat with position 0; causal single-head attention (q, k, v, o Linears); the output is read
    at position ``read``."""

    def __init__(self, read: int, sdpa: bool) -> None:
        super().__init__()
        self.read, self.sdpa = read, sdpa
        self.later = nn.Linear(2, 2)
        self.q, self.k, self.v, self.o = (nn.Linear(2, 2) for _ in range(4))

    def forward(self, x):
        h = torch.cat([x[:, :1], self.later(x[:, 1:])], dim=1)
        q, k, v = self.q(h), self.k(h), self.v(h)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)).masked_fill(
                torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
            y = scores.softmax(-1) @ v
        return self.o(y)[:, self.read]


@pytest.mark.parametrize("sdpa", [True, False])
def test_causal_attention_first_position(sdpa):
    # Read at position 0: its softmax fibre has one unmasked entry (itself), so it is the
    # constant 1: the scores, hence q and k, get no signal; y_0 = v(h_0) = v(x_0), so v and o are
    # effective; `later` feeds positions 1, 2 only, which position 0 never reads: inactive.
    model = _Causal(read=0, sdpa=sdpa)
    eff = oracle_effective(model, torch.zeros(1, 3, 2), _ones(model))
    assert {k: bool(v.any()) for k, v in eff.items()} == {
        "later.weight": False, "q.weight": False, "k.weight": False, "v.weight": True,
        "o.weight": True}
    assert eff["v.weight"].all() and eff["o.weight"].all()
    # Read at position 1: its fibre {0, 1} has two entries, q_1 . k_0 and q_1 . k_1 are
    # reached (h_1 = later(x_1)): everything is effective.
    model = _Causal(read=1, sdpa=sdpa)
    eff = oracle_effective(model, torch.zeros(1, 3, 2), _ones(model))
    assert all(v.all() for v in eff.values())


class _Padded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x, padding):
        return self.attn(x, x, x, key_padding_mask=padding, need_weights=False)[0]


def test_mha_padding_leaves_one_key():
    # Every key but token 0 is padding: each query's fibre has one unmasked entry, the softmax
    # is the constant 1, out_t = out_proj(v(x_0)): the q and k row blocks of the packed
    # in_proj_weight (rows 0-3, 4-7) are inactive, the v block (rows 8-11) and out_proj active.
    model = _Padded()
    padding = torch.tensor([[False, True, True]])
    eff = oracle_effective(model, (torch.zeros(1, 3, 4), padding), _ones(model))
    assert list(eff) == ["attn.in_proj_weight", "attn.out_proj.weight"]
    assert eff["attn.in_proj_weight"].any(axis=1).astype(int).tolist() == [0] * 8 + [1] * 4
    assert eff["attn.in_proj_weight"][8:].all() and eff["attn.out_proj.weight"].all()
    # with two live keys the q and k blocks carry signal again
    eff = oracle_effective(model, (torch.zeros(1, 3, 4), torch.tensor([[False, False, True]])),
                           _ones(model))
    assert eff["attn.in_proj_weight"].all()


# ----------------------------------------------------------------------------- tied parameters


class _Tied(nn.Module):
    """Embedding (vocab 3, dim 2) -> h (Linear 2 -> 2) -> head (Linear 2 -> 3), the head's
    weight tied to the embedding's."""

    def __init__(self, tie: bool = True) -> None:
        super().__init__()
        self.wte = nn.Embedding(3, 2)
        self.h = nn.Linear(2, 2, bias=False)
        self.head = nn.Linear(2, 3, bias=False)
        if tie:
            self.head.weight = self.wte.weight

    def forward(self, ids):
        return self.head(self.h(self.wte(ids)))


def test_tied_embedding_and_head_is_one_mask():
    # W (3, 2) keeps W[0, 0] and W[1, 1]; h keeps h[0, 1] only (feature 1 -> unit 0).
    # Embedding use (soft one-hot input: every vocabulary row is a source): W[v, j] is
    # effective iff embedding feature j is backward-live: h[0, 1] is kept and h's unit 0 is
    # read by the head through W[0, 0], so feature 1 is live and feature 0 is not: W[1, 1].
    # Head use: W[v, d] is effective iff h's unit d is reached: unit 0 is (h[0, 1] reads the
    # reached feature 1, from W[1, 1]), unit 1 is not: W[0, 0].
    # So each kept weight is effective through exactly one use; the one mask keeps both.
    model = _Tied()
    assert model.head.weight is model.wte.weight
    masks = {"wte.weight": np.array([[1, 0], [0, 1], [0, 0]]),
             "h.weight": np.array([[0, 1], [0, 0]])}
    eff = oracle_effective(model, torch.tensor([[0, 2]]), masks)
    assert list(eff) == ["wte.weight", "h.weight"]  # one key for the tied parameter
    assert _int(eff) == {"wte.weight": [[1, 0], [0, 1], [0, 0]], "h.weight": [[0, 1], [0, 0]]}
    # the alias name is accepted for the same parameter
    alias = {"head.weight": masks["wte.weight"], "h.weight": masks["h.weight"]}
    assert _int(oracle_effective(model, torch.tensor([[0, 2]]), alias)) == _int(eff)
    # untied, the embedding is not prunable by default and the head keeps only its own use
    untied = _Tied(tie=False)
    eff = oracle_effective(untied, torch.tensor([[0, 2]]),
                           {"head.weight": masks["wte.weight"], "h.weight": masks["h.weight"]})
    assert _int(eff) == {"h.weight": [[0, 1], [0, 0]], "head.weight": [[1, 0], [0, 0], [0, 0]]}


# ----------------------------------------------------------------------------- constants


class _Constants(nn.Module):
    """A class token and a position embedding (additive: 0) and a layer scale gamma * x
    (a factor: positive), around one Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.cls = nn.Parameter(torch.ones(1, 1, 2))
        self.pos = nn.Parameter(torch.ones(1, 3, 2))
        self.gamma = nn.Parameter(torch.zeros(2))  # zero-initialised layer scale
        self.fc = nn.Linear(2, 2)
        self.gate = nn.Linear(2, 2)

    def forward(self, x):
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        y = self.gamma[None, None, :] * self.fc(x)
        return y * self.gate(x)[:, :1]  # the class token's gate for every position


def test_constants_are_zero_added_and_positive_as_factors():
    # The class token is 0: gate(x)[:, 0] reads nothing, the product y * 0 is zero, so every
    # weight is inactive, whatever gamma's initial value (0 here, positive in the oracle).
    model = _Constants()
    eff = oracle_effective(model, torch.zeros(1, 2, 2), _ones(model))
    assert not any(v.any() for v in eff.values())

    class Read(_Constants):
        def forward(self, x):
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            return self.gamma * self.fc(x) * self.gate(x)

    # Reading every position: gamma is a positive factor, both Linears are effective.
    eff = oracle_effective(Read(), torch.zeros(1, 2, 2), _ones(model))
    assert all(v.all() for v in eff.values())


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
    model = _SE()
    with pytest.raises(ValueError, match="not a parameter"):
        oracle_effective(model, torch.zeros(1, 2, 4, 4), {"nope.weight": np.ones(3)})
    with pytest.raises(ValueError, match="expected 0/1 of shape"):
        oracle_effective(model, torch.zeros(1, 2, 4, 4), {"c1.weight": np.ones((3, 2))})
