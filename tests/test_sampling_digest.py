"""Pinned bytes of random masks (sparsegraph.masks.sampling).

The digests below were computed with the sampler as it was at commit 3058b37 (before the
issue-13 speed work), so they pin "the same bytes for the same seed" across any rewrite of the
sampler: a mask is the first ``k`` distinct values of the layer's ``Generator.integers(0, n)``
stream (or the complement for ``2k > n``), and that set must never change.

Digest: sha256 over the concatenated mask bytes in layer order -- for bool masks
``np.ascontiguousarray(m, dtype=bool).tobytes()`` (one byte per weight, C order), for the sparse
form the little-endian int64 bytes of each layer's sorted flat indices.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsegraph as sg
from sparsegraph.masks import _kernels_sampling as K
from sparsegraph.masks.sampling import (
    SparseMasks,
    _layer_states,
    _sparse_layer,
    layer_seeds,
    sample_indices,
)


def mask_digest(masks) -> str:
    """sha256 of the concatenated bytes of the masks, in their (layer) order."""
    h = hashlib.sha256()
    for m in masks.values():
        if isinstance(masks, SparseMasks):
            h.update(np.asarray(m, dtype="<i8").tobytes())
        else:
            h.update(np.ascontiguousarray(m, dtype=np.bool_).tobytes())
    return h.hexdigest()


_NETS: dict[str, sg.Network] = {}


def traced(model: str):
    if model not in _NETS:
        _NETS[model] = sg.trace(*sg.build_model(model))
    return _NETS[model]


# (model, scheme, density, seed, granularity, structure, sparse) -> sha256 of today's masks.
# uniform 0.6 exercises the complement path (2k > n) in every layer; ERK puts small layers near
# or at density 1 and large ones far below the overall density.
CASES = [
    ("lenet300", "erk", 0.1, 0, "weight", "random", False,
     "c769c13ff47285b6bd6307e6797a2bf059a4a33197d97bb67ef549168a3c0fa8"),
    ("lenet300", "erk", 0.01, 1, "weight", "random", False,
     "63d21e3224751d3c611baead1b7550b4a32db8c31c5f2170f39aa0b57e63f0dc"),
    ("lenet300", "uniform", 0.6, 0, "weight", "random", False,
     "1ed9ef06179804230ca7f9a3718cb8abe078f6e704246a5cb6aa6189682202d5"),
    ("lenet300", "uniform", 0.6, 1, "weight", "random", True,
     "241b7d932cbb563f446aa32df0e9f699ecfc2cdf1bfc2a4334002c4833bd1ab7"),
    ("lenet300", "erk", 0.01, 0, "weight", "random", True,
     "59363a52ebc7fc4cf9b27e6d9a873a1db2c79b57f86a7d4c26860580b04bc54e"),
    ("lenet300", "igq", 0.1, 1, "channel", "random", False,
     "75c1be7680029ed8bdbe59f294555914b65d1ea412f16437fbb90942d2acd7d2"),
    ("resnet20", "erk", 0.1, 0, "weight", "random", False,
     "70211dd115d0b25f87f96cbfa0b2e439ededc2d5f0f174c10d4800aa5808e50c"),
    ("resnet20", "erk", 0.01, 1, "weight", "random", False,
     "3fa96a0f6a383c32fefe3b12e926dcae23f846c71b1a5e2c27b5fe1dea15ed12"),
    ("resnet20", "erk", 0.01, 1, "kernel", "random", False,
     "b2acc7bc47fbd7b3d538f7c5522349ace8ec43ca9922a4a9f56eae0168630718"),
    ("resnet20", "erk", 0.1, 0, "kernel", "random", True,
     "9c4d71b4dd3d9ac470716839da01f9213765f40defbe694d31edd8e14335877e"),
    ("resnet20", "uniform", 0.1, 0, "channel", "random", False,
     "a3072c43651f32a2afea650629d2c4d96d37feb638aa7b449276ce8accba4b1c"),
    ("resnet20", "uniform", 0.6, 1, "channel", "random", True,
     "071a839b47ece1ad2770343a77a552df192db17f9201ab14a1da9ae3c45fa64c"),
    ("resnet20", "erk", 0.01, 0, "weight", "random", True,
     "b4c4c43b3967acbba18602693e64b6778d9534896a6ce910c2da0925d8eb57fb"),
    ("resnet20", "uniform", 0.1, 0, "weight", "regular", False,
     "3e2893059545bb9bb8b03f67f1cd2f3e0d9da5515f89eee4cdfe2c2890566952"),
    ("vgg16", "erk", 0.01, 0, "weight", "random", False,
     "deaabb3523603814b6431801d8d907559740e0fd307bd36e5ebfec82da23242d"),
    ("vgg16", "erk", 0.1, 1, "weight", "random", False,
     "e70c6554d3232f72831e1e9395132f3bc77ceb391a26fa8b6d51c9a12f621c38"),
    ("vgg16", "igq", 0.01, 1, "kernel", "random", False,
     "7149ea1960a3a03c7c8b38236028e3376da220995cad7a9633fca48882e56093"),
    ("vgg16", "erk", 0.1, 0, "weight", "random", True,
     "76021f5ba6c05044aa710184642ece944232885b0d78f1065958673faed62e09"),
    ("vgg16", "erk", 0.01, 1, "channel", "random", True,
     "9357ba86774a6ea44ff81191e55a3416aa0e38c47335fb0710cf3304e8dd2ccf"),
]


@pytest.mark.parametrize(("model", "scheme", "density", "seed", "granularity", "structure",
                          "sparse", "want"), CASES)
def test_random_masks_bytes_pinned(model, scheme, density, seed, granularity, structure, sparse,
                                   want):
    masks = sg.random_masks(traced(model), scheme, density=density, seed=seed,
                            granularity=granularity, structure=structure, sparse=sparse)
    assert mask_digest(masks) == want


# sample_indices on its own: the 64-bit bounded path (n > 2**32), n = 2**32 exactly (the
# unbounded 32-bit draw), a tiny n, and the complement path; sparse and bool forms.
INDEX_CASES = [
    (10**10, 1000, 0, True,
     "e0b760a4f60705108bd1aabae6d4c737703e556587513ba3c26d8d18f342b535"),
    (2**32, 777, 3, True,
     "dd897d159abbac945bab6ee80653476364585cf071f2a4acb79ee02298e3be66"),
    (2**32 + 1, 50, 4, True,
     "3d66848e6857e1f3bfe114469c48e8ebefa84aa25566bdca0ea3e0338932de08"),
    (7, 3, 5, False,
     "52211d8922ec60febc4c6af540c806c1f580a6b3eae3a0c44ff9ab90c779007a"),
    (1000, 900, 6, False,
     "c0b94d9e50fc36c4ae221507b8d47367e7b2cfc6c319da66844c22daeb9ac7d1"),
    (1000, 900, 6, True,
     "c85b36132da9c82947d1bdc7e59e2997fd908ec44d7578c44d994498c1801e44"),
    (123_457, 4321, 7, False,
     "dd917fa8333b30b40e039f4b06733299f217ddf100a299dde2555d93bec95398"),
]


@pytest.mark.parametrize(("n", "k", "seed", "sparse", "want"), INDEX_CASES)
def test_sample_indices_bytes_pinned(n, k, seed, sparse, want):
    out = sample_indices(n, k, np.random.default_rng(seed), sparse=sparse)
    data = np.asarray(out, dtype="<i8" if sparse else np.bool_).tobytes()
    assert hashlib.sha256(data).hexdigest() == want


@pytest.mark.slow
@pytest.mark.parametrize(("density", "want"), [
    (0.1, "009080061d3c58c4bf4fef8202b88d0c2482c543f74794d508abd25453f27490"),
    (0.01, "3c3fe40bf1c3d1b8e90b4a6879daa48177ae4a4681a1dec252f2157ef2d6b411"),
])
def test_resnet50_erk_bytes_pinned(density, want):
    # the benchmark's case (benchmarks/generate.py), both forms
    net = traced("resnet50")
    dense = sg.random_masks(net, "erk", density=density, seed=0)
    sparse = sg.random_masks(net, "erk", density=density, seed=0, sparse=True)
    assert mask_digest(dense) == want
    assert all(np.array_equal(np.flatnonzero(dense[k]), sparse[k]) for k in dense)


# ---------------------------------------------------------------------------------------------
# the kernels reproduce numpy's streams exactly (what keeps the pinned bytes above)
# ---------------------------------------------------------------------------------------------

_M64 = (1 << 64) - 1


def _row(bitgen: np.random.PCG64) -> np.ndarray:
    st = bitgen.state["state"]
    return np.array([st["state"] >> 64, st["state"] & _M64, st["inc"] >> 64, st["inc"] & _M64],
                    dtype=np.uint64)


@pytest.mark.parametrize("seed", [0, 1, 2**64 + 3])
def test_pcg_words_equal_random_raw(seed):
    bg = np.random.PCG64(seed)
    st = _row(bg)
    got = np.concatenate([np.empty(0, np.uint64)] + [
        _words(st, size) for size in (1, 7, K.BUF_WORDS, 1000)])
    assert np.array_equal(got, bg.random_raw(got.size))
    assert np.array_equal(st, _row(bg))  # the state advanced exactly as numpy's


def _words(st: np.ndarray, size: int) -> np.ndarray:
    out = np.empty(size, dtype=np.uint64)
    K.pcg_words(st, out)
    return out


# bounds around every branch of numpy's bounded draws: tiny, the 32-bit Lemire path with heavy
# rejection (2**31 + 1 rejects about half its draws), 2**32 - 1, 2**32 (no multiply), the
# 64-bit path just above, with heavy rejection, and near the top of int64
BOUNDS = [2, 3, 7, 1000, 2_359_296, 2**31 - 1, 2**31 + 1, 2**32 - 1, 2**32, 2**32 + 1, 10**10,
          2**62 + 1, 3 * 2**61 + 5, 2**63 - 1]


@pytest.mark.parametrize("n", BOUNDS)
def test_bounded_chunk_equals_generator_integers(n):
    seed = 12345 + n % 1000
    want = np.random.Generator(np.random.PCG64(seed)).integers(0, n, size=5000, dtype=np.int64)
    st = _row(np.random.PCG64(seed))
    buf = np.empty(K.BUF_WORDS, dtype=np.uint64)
    kind, threshold = K._bound_kind(np.uint64(n))
    pos = K._stream_start(buf, kind)
    got = []
    for size in (1, 3, 100, 997, 2 * K.BUF_WORDS, 5000):  # chunks across refills
        out = np.empty(size, dtype=np.int64)
        pos = K.bounded_chunk(st, buf, pos, np.uint64(n), kind, threshold, out)
        got.append(out)
    got = np.concatenate(got)[:5000]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", [
    0, 7, 2**32, 2**130 + 5,  # ints, one to five 32-bit words
    np.random.SeedSequence(5, spawn_key=(3, 2**40)),  # a child's child
    np.random.SeedSequence([1, 2, 2**33], pool_size=8),  # entropy a sequence, a larger pool
])
def test_layer_states_equal_numpy_seeding(seed):
    want = np.array([_row(np.random.PCG64(s)) for s in layer_seeds(seed, 9)])
    assert np.array_equal(_layer_states(seed, 9), want)


def test_layer_states_fall_back_to_numpy(monkeypatch):
    # were the kernel ever to disagree with numpy, numpy's own seeding is used
    from sparsegraph.masks import sampling

    want = np.array([_row(np.random.PCG64(s)) for s in layer_seeds(3, 4)])
    monkeypatch.setattr(sampling, "seed_pcg_states", lambda *a: a[-1].fill(1))
    assert np.array_equal(_layer_states(3, 4), want)


@settings(max_examples=80)
@given(n=st.integers(1, 3000), frac=st.floats(0, 1), seed=st.integers(0, 2**40),
       size=st.sampled_from([1, 1, 2, 9]))
def test_kernels_equal_numpy_integers_path(n, frac, seed, size):
    # random_masks' kernels (numpy's streams recomputed) against sample_indices, which draws
    # with numpy's own Generator.integers, on the same child streams: two layers in one block,
    # the first of n units of `size` weights keeping k, the second of 3 units keeping 2
    k = round(frac * n)
    states = _layer_states(seed, 2)
    seqs = layer_seeds(seed, 2)
    block = np.ones(n * size + 3 * size, dtype=np.bool_)  # the kernel clears what it writes
    K.draw_masks(block, np.array([0, n * size]), np.array([n, 3]), np.array([size, size]),
                 np.array([k, 2]), states)
    for i, (units, kept, lo) in enumerate([(n, k, 0), (3, 2, n * size)]):
        want = sample_indices(units, kept, np.random.Generator(np.random.PCG64(seqs[i])))
        assert np.array_equal(block[lo:lo + units * size], np.repeat(want, size))
        assert np.array_equal(_sparse_layer(units, kept, states[i]), np.flatnonzero(want))
