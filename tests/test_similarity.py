"""SVCCA, PWCCA and CKA against independent oracles, their invariances and edge cases;
minibatch CKA; layer_similarity on real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import sparsegraph as sg
from sparsegraph.metrics.cka_stream import CKAAccumulator, MinibatchCKA
from sparsegraph.pytorch.activations import prunable_modules

# ------------------------------------------------------------------------------- oracles


def pair(seed, n, px, py, shared):
    """x (affine, uncentred) and y (tanh) sharing ``shared`` latent directions."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, shared))
    x = np.hstack([z, rng.normal(size=(n, px - shared))]) @ rng.normal(size=(px, px)) + 1.5
    y = np.tanh(np.hstack([z, rng.normal(size=(n, py - shared))]) @ rng.normal(size=(py, py)))
    return x, y


def cca_oracle(x, y):
    """Canonical correlations as the SVD of the whitened cross-covariance."""
    n = len(x)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)

    def inv_sqrt(s):
        w, v = np.linalg.eigh(s)
        return v @ np.diag(w ** -0.5) @ v.T

    return np.linalg.svd(inv_sqrt(sxx) @ sxy @ inv_sqrt(syy), compute_uv=False)


def linear_cka_oracle(x, y):
    xc, yc = x - x.mean(0), y - y.mean(0)
    return (np.linalg.norm(yc.T @ xc) ** 2
            / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)))


def hsic_biased(k, l):
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h)


def hsic_unbiased(k, l):
    """Song et al. 2012, eq. (5), written out."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    return (np.trace(kt @ lt) + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ kt @ lt @ one) / (n * (n - 3))


def rbf_oracle(x, width=1.0):
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / (2 * width ** 2 * np.median(d2)))


def ratio(f, k, l):
    return f(k, l) / np.sqrt(f(k, k) * f(l, l))


# ------------------------------------------------------- pinned google/svcca reference values

# Computed with google/svcca (github.com/google/svcca, commit 1f3fbf1, run from a fetched copy,
# not vendored) on pair(0, 1000, 40, 30, 8) above: the tutorial's SVCCA recipe (centre, SVD,
# s[:10] * V[:10], cca_core.get_cca_similarity(..., epsilon=1e-10)), plain get_cca_similarity,
# and pwcca.compute_pwcca(y_centred.T, x_centred.T, epsilon=1e-10) (with x first it raises
# IndexError: x is wider than y, google/svcca PR #9).
REF_SVCCA10 = 0.21571549755661126
REF_SVCCA10_TOP3 = [0.5049969832, 0.4738537313, 0.3805124359]
REF_CCA_MEAN, REF_CCA_FIRST, REF_CCA_LAST = 0.3270635079325334, 0.8942068138998946, \
    0.03368589520941586
REF_PWCCA = 0.3720601508900646


def test_pinned_reference_values():
    x, y = pair(0, 1000, 40, 30, 8)
    r = sg.svcca(x, y, keep=10)
    assert r.value == pytest.approx(REF_SVCCA10, abs=1e-6)
    np.testing.assert_allclose(r.coefficients[:3], REF_SVCCA10_TOP3, atol=1e-6)
    c = sg.svcca(x, y, keep=None)
    assert c.value == pytest.approx(REF_CCA_MEAN, abs=1e-6)
    assert c.coefficients[0] == pytest.approx(REF_CCA_FIRST, abs=1e-6)
    assert c.coefficients[-1] == pytest.approx(REF_CCA_LAST, abs=1e-6)
    # the reference's PWCCA on centred activations; ours is the same on raw ones and either order
    xc, yc = x - x.mean(0), y - y.mean(0)
    for a, b in ((yc, xc), (xc, yc), (x, y), (y, x)):
        assert sg.pwcca(a, b).value == pytest.approx(REF_PWCCA, abs=1e-6)


# --------------------------------------------------------------------------------- CCA


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cca_matches_whitened_svd_oracle(seed):
    x, y = pair(seed, 600, 12, 20, 5)
    r = sg.svcca(x, y, keep=None)
    np.testing.assert_allclose(r.coefficients, cca_oracle(x, y), atol=1e-9)
    assert r.method == "cca" and r.value == pytest.approx(r.coefficients.mean())
    assert (r.dims_x, r.dims_y, r.dead_x, r.dead_y) == (12, 20, 0, 0)


def test_svcca_is_cca_of_the_top_directions():
    x, y = pair(3, 800, 30, 25, 6)

    def top(a, k):
        u, s, _ = np.linalg.svd(a - a.mean(0), full_matrices=False)
        return u[:, :k] * s[:k]

    r = sg.svcca(x, y, keep=7)
    np.testing.assert_allclose(r.coefficients, cca_oracle(top(x, 7), top(y, 7)), atol=1e-9)
    assert (r.dims_x, r.dims_y) == (7, 7)


def test_keep_fraction_int_and_too_large():
    x, y = pair(4, 500, 20, 15, 4)
    s = np.linalg.svd(x - x.mean(0), compute_uv=False)
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    r = sg.svcca(x, y, keep=0.9)
    assert r.dims_x == int(np.argmax(share >= 0.9)) + 1
    big = sg.svcca(x, y, keep=1000)
    plain = sg.svcca(x, y, keep=None)
    np.testing.assert_allclose(big.coefficients, plain.coefficients, atol=1e-12)
    assert (big.dims_x, big.dims_y) == (20, 15) and big.method == "svcca"


def test_cca_invariant_to_invertible_affine_maps():
    x, y = pair(5, 700, 10, 14, 4)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 10)) + 3 * np.eye(10)
    b = rng.normal(size=(14, 14)) + 3 * np.eye(14)
    base = sg.svcca(x, y, keep=None).coefficients
    mapped = sg.svcca(x @ a + 7.0, y @ b - 2.0, keep=None).coefficients
    np.testing.assert_allclose(mapped, base, atol=1e-8)


@pytest.mark.parametrize("method", ["svcca", "cka", "cka_rbf", "cka_debiased"])
def test_orthogonal_maps_and_isotropic_scaling(method):
    x, y = pair(6, 400, 16, 12, 5)
    rng = np.random.default_rng(1)
    qx, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    qy, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    f = {"svcca": lambda a, b: sg.svcca(a, b, keep=8).value,
         "cka": lambda a, b: sg.cka(a, b).value,
         "cka_rbf": lambda a, b: sg.cka(a, b, kernel="rbf").value,
         "cka_debiased": lambda a, b: sg.cka(a, b, debiased=True).value}[method]
    assert f(3.5 * x @ qx, 0.01 * y @ qy) == pytest.approx(f(x, y), abs=1e-9)


def test_cka_is_not_invariant_to_general_linear_maps():
    x, y = pair(7, 400, 6, 6, 6)
    a = np.diag([1, 1, 1, 1, 1, 30.0])
    assert abs(sg.cka(x @ a, y).value - sg.cka(x, y).value) > 1e-3


@pytest.mark.parametrize("fn", [
    lambda x: sg.svcca(x, x, keep=None), lambda x: sg.svcca(x, x, keep=5),
    lambda x: sg.pwcca(x, x), lambda x: sg.cka(x, x), lambda x: sg.cka(x, x, kernel="rbf"),
    lambda x: sg.cka(x, x, debiased=True), lambda x: sg.cka(x, x, kernel="rbf", debiased=True),
])
def test_identical_inputs_give_one(fn):
    x = pair(8, 300, 12, 12, 3)[0]
    assert fn(x).value == pytest.approx(1.0, abs=1e-9)


def test_independent_noise_is_near_zero_and_shrinks_with_samples():
    rng = np.random.default_rng(9)

    def values(n):
        x, y = rng.normal(size=(n, 10)), rng.normal(size=(n, 10))
        return (sg.svcca(x, y, keep=None).value, sg.pwcca(x, y).value, sg.cka(x, y).value,
                sg.cka(x, y, kernel="rbf").value, abs(sg.cka(x, y, debiased=True).value))

    small, large = values(200), values(5000)
    for s, big in zip(small, large, strict=True):
        assert big < s and big < 0.05
    assert max(small) < 0.2


# --------------------------------------------------------------------------------- PWCCA


def test_pwcca_different_widths_is_symmetric_and_weighted_mean():
    x, y = pair(10, 900, 25, 9, 4)
    r, s = sg.pwcca(x, y), sg.pwcca(y, x)
    assert r.value == pytest.approx(s.value, abs=1e-12)
    assert len(r.coefficients) == len(r.weights) == 9
    assert r.weights.sum() == pytest.approx(1.0) and (r.weights >= 0).all()
    assert r.value == pytest.approx(float(r.weights @ r.coefficients))
    assert r.coefficients.min() <= r.value <= r.coefficients.max()


def test_pwcca_weights_oracle_on_centred_data():
    """Weights from the canonical variates of the oracle's whitening, orthonormalised."""
    x, y = pair(11, 700, 8, 12, 3)
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = len(x)
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    w, v = np.linalg.eigh(sxx)
    isx = v @ np.diag(w ** -0.5) @ v.T
    w, v = np.linalg.eigh(syy)
    isy = v @ np.diag(w ** -0.5) @ v.T
    u, rho, _ = np.linalg.svd(isx @ sxy @ isy)
    q, _ = np.linalg.qr(xc @ u)
    weights = np.abs(q.T @ xc).sum(1)
    weights /= weights.sum()
    r = sg.pwcca(x, y)
    np.testing.assert_allclose(r.weights, weights, atol=1e-8)
    assert r.value == pytest.approx(float(weights @ rho), abs=1e-9)


# ------------------------------------------------------------------------------ CKA forms


def test_linear_cka_closed_form_both_paths():
    x, y = pair(12, 300, 10, 7, 3)
    assert sg.cka(x, y).value == pytest.approx(linear_cka_oracle(x, y), abs=1e-12)
    rng = np.random.default_rng(2)
    wide_x, wide_y = rng.normal(size=(40, 300)), rng.normal(size=(40, 250))  # Gram path
    wide_y[:, :30] += wide_x[:, :30]
    assert sg.cka(wide_x, wide_y).value == pytest.approx(linear_cka_oracle(wide_x, wide_y),
                                                         abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_matches_hsic_oracles(kernel, debiased):
    x, y = pair(13, 120, 6, 9, 3)
    if kernel == "linear":
        xc, yc = x - x.mean(0), y - y.mean(0)
        k, l = xc @ xc.T, yc @ yc.T
    else:
        k, l = rbf_oracle(x, 0.8), rbf_oracle(y, 0.8)
    expected = ratio(hsic_unbiased if debiased else hsic_biased, k, l)
    got = sg.cka(x, y, kernel=kernel, debiased=debiased, width=0.8).value
    assert got == pytest.approx(expected, abs=1e-10)
    wide = np.hstack([x] * 30)  # more features than samples: the Gram path
    assert sg.cka(wide, y, kernel=kernel, debiased=debiased, width=0.8).value == pytest.approx(
        sg.cka(x * np.sqrt(30), y, kernel=kernel, debiased=debiased, width=0.8).value, abs=1e-9)


# ------------------------------------------------------------------------ minibatch CKA


@pytest.mark.parametrize("shape", [(400, 7), (60, 100)])  # feature-space and Gram routes
def test_minibatch_cka_one_batch_is_the_unbiased_hsic_oracle(shape):
    n, p = shape
    x, y = pair(14, n, p, p + 3, 4)
    one = MinibatchCKA()
    one.update(x, y)
    value = one.result().value
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert value == pytest.approx(ratio(hsic_unbiased, xc @ xc.T, yc @ yc.T), abs=1e-10)
    assert value == pytest.approx(sg.cka(x, y, debiased=True).value, abs=1e-10)


def test_minibatch_cka_many_batches_match_the_oracle():
    x, y = pair(14, 400, 7, 11, 4)
    stream = MinibatchCKA()
    sizes = [100, 100, 150, 50]
    parts, start = [], 0
    for m in sizes:
        stream.update(torch.from_numpy(x[start:start + m]), y[start:start + m])
        parts.append((x[start:start + m], y[start:start + m]))
        start += m
    r = stream.result()
    gram = [(a @ a.T, b @ b.T) for a, b in parts]
    num = sum(len(k) * hsic_unbiased(k, l) for k, l in gram)
    dx = sum(len(k) * hsic_unbiased(k, k) for k, _ in gram)
    dy = sum(len(l) * hsic_unbiased(l, l) for _, l in gram)
    assert r.value == pytest.approx(num / np.sqrt(dx * dy), abs=1e-10)
    assert (r.minibatches, r.samples, r.debiased) == (4, 400, True)


def test_minibatch_cka_rechunks_rows_and_merges_small_tails():
    x, y = pair(15, 103, 5, 5, 2)
    a = MinibatchCKA(batch_size=25)
    for i in range(0, 103, 7):
        a.update(x[i:i + 7], y[i:i + 7])
    b = MinibatchCKA()
    for start, stop in ((0, 25), (25, 50), (50, 75), (75, 103)):  # the tail of 3 joins the last
        b.update(x[start:stop], y[start:stop])
    ra, rb = a.result(), b.result()
    assert ra.value == pytest.approx(rb.value, abs=1e-12) and ra.minibatches == 4
    c = MinibatchCKA()
    c.update(x[:50], y[:50])
    c.update(x[50:52], y[50:52])  # 2 rows: joins the previous minibatch
    d = MinibatchCKA()
    d.update(x[:52], y[:52])
    assert c.result().value == pytest.approx(d.result().value, abs=1e-12)


def test_minibatch_cka_converges_to_the_population_value():
    rng = np.random.default_rng(16)
    w = rng.normal(size=(6, 6))

    def draw(n):
        x = rng.normal(size=(n, 6))
        return x, np.tanh(x @ w) + 0.5 * rng.normal(size=(n, 6))

    big_x, big_y = draw(20000)
    truth = sg.cka(big_x, big_y, debiased=True).value
    stream = MinibatchCKA()
    for _ in range(40):
        stream.update(*draw(128))
    assert stream.result().value == pytest.approx(truth, abs=0.03)


def test_minibatch_errors():
    s = MinibatchCKA()
    with pytest.raises(sg.ArgumentError, match="at least 4"):
        s.update(np.ones((3, 2)) + np.eye(3, 2), np.eye(3, 2))
        s.result()
    t = MinibatchCKA()
    t.update(np.eye(6, 3), np.eye(6, 2))
    with pytest.raises(sg.ArgumentError, match="features"):
        t.update(np.eye(6, 4), np.eye(6, 2))
    t.result()
    with pytest.raises(sg.ArgumentError, match="already"):
        t.update(np.eye(6, 3), np.eye(6, 2))
    with pytest.raises(sg.ArgumentError):
        CKAAccumulator(["a"], [("a", "b")])


# ------------------------------------------------------------ dead units, ranks, edge cases


def test_dead_units_are_dropped_not_nan():
    x, y = pair(17, 500, 12, 10, 4)
    xd = np.hstack([x, np.zeros((500, 3)), np.full((500, 2), 4.2)])
    yd = y.copy()
    yd[:, 0] = -1.0
    for fn in (lambda a, b: sg.svcca(a, b, keep=None), sg.pwcca, lambda a, b: sg.svcca(a, b)):
        r = fn(xd, yd)
        assert np.isfinite(r.value) and r.dead_x == 5 and r.dead_y == 1
        assert r.value == pytest.approx(fn(x, y[:, 1:]).value, abs=1e-9)
    assert sg.cka(xd, yd).value == pytest.approx(sg.cka(x, y[:, 1:]).value, abs=1e-12)


def test_rank_deficient_activations_use_their_span():
    x, y = pair(18, 600, 8, 10, 3)
    dup = np.hstack([x, x[:, :3] * 2.0 - x[:, 3:6]])  # 3 collinear extra units
    r = sg.svcca(dup, y, keep=None)
    assert r.dims_x == 8 and r.features_x == 11
    np.testing.assert_allclose(r.coefficients, sg.svcca(x, y, keep=None).coefficients,
                               atol=1e-8)
    p = sg.pwcca(dup, y)  # same correlations; the duplicated units weigh in the weights
    np.testing.assert_allclose(p.coefficients, r.coefficients, atol=1e-8)
    assert 0 < p.value < 1 and p.weights.size == 8


def test_constant_inputs_give_zero():
    y = pair(19, 50, 4, 4, 2)[1]
    const = np.full((50, 3), 2.0)
    for r in (sg.svcca(const, y), sg.svcca(y, const, keep=None), sg.pwcca(const, y),
              sg.cka(const, y), sg.cka(y, const, kernel="rbf"), sg.cka(const, const)):
        assert r.value == 0.0
    assert sg.svcca(const, y).coefficients.size == 0


def test_float32_and_torch_inputs():
    x, y = pair(20, 400, 9, 9, 3)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    r = sg.svcca(torch.from_numpy(x32), torch.from_numpy(y32), keep=None)
    assert r.value == pytest.approx(sg.svcca(x32.astype(np.float64), y32.astype(np.float64),
                                             keep=None).value, abs=1e-12)
    assert r.value == pytest.approx(sg.svcca(x, y, keep=None).value, abs=1e-5)
    assert sg.cka(torch.from_numpy(x).to(torch.bfloat16), y).value == pytest.approx(
        sg.cka(x, y).value, abs=0.02)
    ints = np.random.default_rng(0).integers(0, 5, size=(200, 4))
    assert np.isfinite(sg.svcca(ints, ints[:, ::-1], keep=None).value)


def test_huge_magnitudes_do_not_overflow():
    x, y = pair(21, 300, 6, 6, 3)
    assert sg.svcca(x * 1e200, y * 1e-200, keep=None).value == pytest.approx(
        sg.svcca(x, y, keep=None).value, abs=1e-9)
    assert sg.cka(x * 1e200, y).value == pytest.approx(sg.cka(x, y).value, abs=1e-9)


@pytest.mark.parametrize("call, message", [
    (lambda: sg.svcca(np.ones(10), np.ones((10, 2))), "reshape"),
    (lambda: sg.svcca(np.ones((10, 2, 2)), np.ones((10, 2))), "flatten"),
    (lambda: sg.cka(np.ones((10, 2)), np.ones((11, 2))), "same samples"),
    (lambda: sg.pwcca(np.full((10, 2), np.nan), np.ones((10, 2))), "NaN"),
    (lambda: sg.cka(np.full((10, 2), np.inf), np.ones((10, 2))), "infinity"),
    (lambda: sg.svcca(np.ones((1, 2)), np.ones((1, 2))), "at least 2"),
    (lambda: sg.svcca(np.ones((5, 0)), np.ones((5, 2))), "no features"),
    (lambda: sg.svcca(np.ones((5, 2)) * 1j, np.ones((5, 2))), "0/1|real|dtype"),
    (lambda: sg.svcca(np.array([["a", "b"]] * 5), np.ones((5, 2))), "real numbers"),
    (lambda: sg.svcca(np.eye(5, 2), np.eye(5, 2), keep=0), "keep"),
    (lambda: sg.svcca(np.eye(5, 2), np.eye(5, 2), keep=1.5), "keep"),
    (lambda: sg.svcca(np.eye(5, 2), np.eye(5, 2), keep=True), "keep"),
    (lambda: sg.cka(np.eye(5, 2), np.eye(5, 2), kernel="poly"), "kernel"),
    (lambda: sg.cka(np.eye(5, 2), np.eye(5, 2), kernel="rbf", width=0), "width"),
    (lambda: sg.cka(np.eye(3, 2), np.eye(3, 2), debiased=True), "4 samples"),
])
def test_bad_input_is_an_argument_error(call, message):
    with pytest.raises(sg.ArgumentError, match=message):
        call()


def test_fewer_samples_than_directions_is_a_clear_error():
    rng = np.random.default_rng(22)
    x, y = rng.normal(size=(50, 30)), rng.normal(size=(50, 30))
    for fn in (lambda: sg.svcca(x, y, keep=None), lambda: sg.pwcca(x, y)):
        with pytest.raises(sg.ArgumentError, match="50 samples span 49"):
            fn()
    assert sg.svcca(x, y, keep=10).dims_x == 10  # SVCCA with a small keep works
    assert 0 <= sg.cka(x, y).value <= 1  # and CKA has no such limit
    wide = rng.normal(size=(40, 200))
    assert sg.svcca(wide, wide @ rng.normal(size=(200, 50)), keep=8).dims_x == 8


@st.composite
def activation_pairs(draw):
    n = draw(st.integers(30, 120))
    px, py = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    rank_x = draw(st.integers(0, px))
    dead_y = draw(st.integers(0, py))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank_x)) @ rng.normal(size=(rank_x, px)) + rng.normal(size=px)
    y = np.tanh(rng.normal(size=(n, py)) + x.mean(1, keepdims=True))
    y[:, :dead_y] = draw(st.floats(-3, 3))
    scale = 100.0 if dtype is np.int64 else 1.0
    return (x * scale).astype(dtype), (y * scale).astype(dtype), rank_x, py - dead_y


@given(activation_pairs(), st.sampled_from([None, 1, 3, 0.5, 0.99]))
def test_property_shapes_ranks_dead_units_dtypes(data, keep):
    x, y, rank_x, live_y = data
    for r in (sg.svcca(x, y, keep=keep), sg.pwcca(x, y)):
        c = r.coefficients
        assert np.isfinite(r.value) and 0.0 <= r.value <= 1.0
        assert c.size == min(r.dims_x, r.dims_y)
        assert np.all(np.diff(c) <= 1e-12) and np.all((c >= 0) & (c <= 1))
        assert r.dims_y <= live_y
        if x.dtype.kind == "f":  # rounding to integers adds full-rank noise
            assert r.dims_x <= rank_x
        if r.method != "pwcca":
            assert r.value == pytest.approx(c.mean() if c.size else 0.0)
        else:
            assert r.weights.size == c.size
    for kw in ({}, {"kernel": "rbf"}, {"debiased": True}):
        v = sg.cka(x, y, **kw).value
        assert np.isfinite(v) and -1.0 <= v <= 1.0
        if not kw.get("debiased"):
            assert v >= 0.0


# ----------------------------------------------------------------- layer_similarity: models


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.used, self.unused = nn.Linear(64, 5), nn.Linear(3, 3)

    def forward(self, x):
        return self.used(x.flatten(1))


def cnn(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 5))


@pytest.fixture(scope="module")
def images():
    return torch.randn(300, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", ["svcca", "pwcca", "cka"])
def test_model_against_itself_is_one_and_another_init_is_less(method, images):
    a, b = cnn(0), cnn(1)
    same = sg.layer_similarity(a, a, images, method=method, batch_size=64, keep=5)
    assert same.layers == ["0", "3", "7", "9"] == prunable_modules(a)
    assert all(r.value == pytest.approx(1.0, abs=1e-9) for r in same)
    other = sg.layer_similarity(a, b, images, method=method, batch_size=64, keep=5)
    # the first layer's pre-activations are linear in the input for both models, so CCA
    # (invariant to invertible maps) can see them as the same; every later layer differs
    later = [r.value for r in other][1:]
    assert all(v < 0.99 for v in later)
    assert all(r.samples == 300 for r in other)
    data = other.to_dict()
    assert data["method"] == method and [d["layer"] for d in data["layers"]] == other.layers
    assert set(data["layers"][0]) == {"layer", "value", "features_a", "features_b", "samples"}
    assert (data["layers"][0]["features_a"], data["layers"][2]["features_b"]) == (6, 12)


def test_conv_modes_match_manual_activations(images):
    a, b = cnn(0).eval(), cnn(1).eval()
    with torch.no_grad():
        ya, yb = a[:4](images), b[:4](images)  # outputs of module "3" (Conv2d 6 -> 8)
    pos = sg.layer_similarity(a, b, images, method="svcca", layers=["3"], conv="positions",
                              keep=None, batch_size=77)
    x_pos = ya.permute(0, 2, 3, 1).reshape(-1, 8).double().numpy()
    y_pos = yb.permute(0, 2, 3, 1).reshape(-1, 8).double().numpy()
    assert pos["3"].samples == 300 * 64
    assert pos["3"].value == pytest.approx(sg.svcca(x_pos, y_pos, keep=None).value, abs=1e-6)
    mean = sg.layer_similarity(a, b, images, method="pwcca", layers="3.weight", batch_size=50)
    expected = sg.pwcca(ya.mean((2, 3)).double().numpy(), yb.mean((2, 3)).double().numpy())
    assert mean["3"].value == pytest.approx(expected.value, abs=1e-6)
    assert mean["3"].samples == 300


def test_streamed_cka_equals_the_minibatch_estimator_fed_by_hand(images):
    a, b = cnn(0).eval(), cnn(2).eval()
    got = sg.layer_similarity(a, b, images, method="cka", layers=["7"], batch_size=64)
    with torch.no_grad():
        xa, xb = a[:8](images).double().numpy(), b[:8](images).double().numpy()
    ref = MinibatchCKA(batch_size=64)
    ref.update(xa, xb)
    assert got["7"].value == pytest.approx(ref.result().value, abs=1e-10)
    # and a DataLoader-like iterable of (x, y) batches gives the same
    loader = [(images[i:i + 100], torch.zeros(100)) for i in range(0, 300, 100)]
    again = sg.layer_similarity(a, b, loader, method="cka", layers=["7"], batch_size=64)
    assert again["7"].value == pytest.approx(got["7"].value, abs=1e-12)


def test_cross_matrix_and_its_diagonal(images):
    a, b = cnn(0), cnn(1)
    for method in ("cka", "svcca"):
        m = sg.layer_similarity(a, b, images, method=method, cross=True, batch_size=64,
                                keep=4)
        table = sg.layer_similarity(a, b, images, method=method, batch_size=64, keep=4)
        assert m.values.shape == (4, 4) and m.layers_a == m.layers_b == tuple(table.layers)
        np.testing.assert_allclose(np.diag(m.values), [r.value for r in table], atol=1e-10)
        assert m.diagonal().values == pytest.approx(table.values)
        assert m.to_dict()["values"][1][2] == m.values[1, 2]
    self_m = sg.layer_similarity(a, a, images, method="cka", cross=True)
    np.testing.assert_allclose(np.diag(self_m.values), 1.0, atol=1e-9)


def test_models_are_left_as_they_were(images):
    a, b = cnn(0), cnn(1)
    a.train()
    b.eval()
    b[7].weight.requires_grad_(False)
    a(images[:4]).sum().backward()
    grads = {n: p.grad.clone() for n, p in a.named_parameters()}
    state = {k: v.clone() for k, v in a.state_dict().items()}
    sg.layer_similarity(a, b, images, method="cka", batch_size=64, progress=True)
    assert a.training and all(m.training for m in a.modules())
    assert not b.training and not b[7].weight.requires_grad
    assert all(torch.equal(p.grad, grads[n]) for n, p in a.named_parameters())
    assert all(torch.equal(v, state[k]) for k, v in a.state_dict().items())  # BN stats too
    assert not any(m._forward_hooks for m in a.modules())


def test_pruned_models_and_rich_rendering(images):
    from rich.console import Console

    a, b = cnn(0), cnn(0)
    net = sg.trace(b, images[:1])
    masks = sg.random_masks(net, "erk", density=0.3, seed=0)
    sg.apply_masks(b, masks)
    t = sg.layer_similarity(a, b, images, method="svcca", keep=4)
    assert t.layers == ["0", "3", "7", "9"] and all(0 < r.value <= 1 + 1e-12 for r in t)
    assert min(r.value for r in t) < 0.99
    console = Console(width=120, record=True)
    console.print(t)
    console.print(sg.layer_similarity(a, b, images, method="cka", cross=True))
    text = console.export_text()
    assert "SVCCA per layer" in text and "features A" in text and "layers of A" in text


def test_layer_similarity_errors(images):
    a = cnn(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    with pytest.raises(sg.ArgumentError, match="did you mean"):
        sg.layer_similarity(a, a, images, layers=["7.wieght"])
    with pytest.raises(sg.ArgumentError, match="model_b has no module '3'"):
        sg.layer_similarity(a, mlp, images)
    with pytest.raises(sg.ArgumentError, match="positions do not correspond"):
        sg.layer_similarity(a, a, images[:20], method="cka", conv="positions", cross=True)
    with pytest.raises(sg.ArgumentError, match="method"):
        sg.layer_similarity(a, a, images, method="cca")
    with pytest.raises(sg.ArgumentError, match="samples span"):
        sg.layer_similarity(a, a, images[:10], method="svcca", keep=None, layers=["7"])
    with pytest.raises(sg.ArgumentError, match="inputs"):
        sg.layer_similarity(a, a, "images")
    with pytest.raises(sg.ArgumentError, match="'unused' produced no output"):
        sg.layer_similarity(Skip(), Skip(), images[:8])
    cross_widths = sg.layer_similarity(a, mlp, images, method="cka", cross=True)
    assert cross_widths.values.shape == (4, 1)  # different architectures: cross works
