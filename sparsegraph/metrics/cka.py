"""Centred kernel alignment (Kornblith et al. 2019) of two layers' activations: linear and RBF
kernels, biased and unbiased HSIC.

The rules every similarity follows are in :mod:`sparsegraph.metrics.similarity`, which is where
these functions are imported from; the streaming minibatch estimator is
:class:`~sparsegraph.metrics.cka_stream.MinibatchCKA`.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np

from .._args import check_choice
from ..errors import ArgumentError
from .similarity_base import KERNELS, CKAResult, _live, _pair

__all__ = ["centre_gram", "cka", "rbf_gram"]


def rbf_gram(x: np.ndarray, width: float = 1.0) -> np.ndarray:
    """RBF Gram matrix ``exp(-d_ij^2 / (2 (width * median d)^2))`` (Kornblith et al. 2019).

    The median is over every entry of the squared-distance matrix (diagonal zeros included),
    as in the authors' code; all-equal rows give the all-ones kernel.
    """
    sq = np.einsum("ij,ij->i", x, x)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0, None)
    med = float(np.median(d2))
    if med <= 0:
        return np.ones_like(d2)
    return np.exp(-d2 / (2.0 * width * width * med))


def centre_gram(k: np.ndarray, unbiased: bool, *, copy: bool = True) -> np.ndarray:
    """Double-centred Gram matrix, or its U-centred form (Szekely & Rizzo 2014) when
    ``unbiased``: then ``<U(K), U(L)> / (n (n - 3))`` is the unbiased HSIC estimator of Song et
    al. 2012. Needs ``n >= 4`` when unbiased. A new array, or ``k`` itself (float64) changed in
    place with ``copy=False``."""
    if copy or not isinstance(k, np.ndarray) or k.dtype != np.float64:
        k = np.array(k, dtype=np.float64)
    n = k.shape[0]
    if unbiased:
        np.fill_diagonal(k, 0.0)
        means = k.sum(axis=0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        k -= means[:, None]
        k -= means[None, :]
        np.fill_diagonal(k, 0.0)
    else:
        means = k.mean(axis=0)
        means -= means.mean() / 2
        k -= means[:, None]
        k -= means[None, :]
    return k


def _ratio(xy: float, xx: float, yy: float) -> float:
    den = math.sqrt(xx * yy) if xx > 0 and yy > 0 else 0.0
    if den == 0.0:
        return 0.0
    return float(min(1.0, max(-1.0, xy / den)))


def _linear_feature_space(xc: np.ndarray, yc: np.ndarray, debiased: bool) -> float:
    """Linear CKA from ``X^T Y``, ``X^T X``, ``Y^T Y`` (Kornblith's feature-space form)."""
    n = xc.shape[0]
    xy = float(np.sum((xc.T @ yc) ** 2))
    xx = float(np.sum((xc.T @ xc) ** 2))
    yy = float(np.sum((yc.T @ yc) ** 2))
    if debiased:
        rx, ry = np.einsum("ij,ij->i", xc, xc), np.einsum("ij,ij->i", yc, yc)
        nx, ny = rx.sum(), ry.sum()

        def unbias(v: float, a: np.ndarray, b: np.ndarray, sa: float, sb: float) -> float:
            return v - n / (n - 2.0) * float(a @ b) + sa * sb / ((n - 1) * (n - 2))

        xy, xx, yy = unbias(xy, rx, ry, nx, ny), unbias(xx, rx, rx, nx, nx), unbias(
            yy, ry, ry, ny, ny)
    return _ratio(xy, xx, yy)


def cka(x: Any, y: Any, *, kernel: str = "linear", debiased: bool = False,
        width: float = 1.0) -> CKAResult:
    """Centred kernel alignment (Kornblith et al. 2019).

    Parameters
    ----------
    x, y : array-like of shape (samples, features)
        Activations of two layers on the same inputs; widths may differ and may exceed the
        number of samples.
    kernel : {"linear", "rbf"}, default "linear"
        Linear: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred activations. RBF:
        ``exp(-||x_i - x_j||^2 / (2 sigma^2))`` with ``sigma = width * median distance``.
    debiased : bool, default False
        Estimate HSIC without bias (Song et al. 2012; Kornblith et al.'s ``debiased``); needs
        4 samples. The value can then be slightly negative for unrelated inputs.
    width : float, default 1.0
        RBF bandwidth as a fraction of the median pairwise distance (the authors' ``threshold``).

    Returns
    -------
    CKAResult
        ``.value`` in [0, 1] (biased), 0.0 when either side is constant.

    Raises
    ------
    ArgumentError
        Bad input, an unknown kernel, ``width <= 0``, fewer than 4 samples with ``debiased``.

    Notes
    -----
    Linear CKA is computed in feature space, O(n p^2) time and O(p^2) memory, or from the
    ``n x n`` Gram matrices when that is cheaper (more features than samples); RBF always
    builds the Gram matrices, O(n^2 p) time and O(n^2) memory. CKA is invariant to orthogonal
    maps and isotropic scaling of either side, not to general invertible maps. For more
    samples than fit in memory use the streaming
    :class:`~sparsegraph.metrics.cka_stream.MinibatchCKA`.

    References
    ----------
    Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations Revisited.
    ICML 2019.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 10))
    >>> q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    >>> round(cka(x, 3 * x @ q).value, 6)  # orthogonal map and scaling: identical
    1.0
    >>> abs(cka(x, rng.normal(size=(200, 10)), debiased=True).value) < 0.05  # unrelated
    True
    """
    check_choice(kernel, KERNELS, "kernel")
    if isinstance(width, bool) or not isinstance(width, Real) or not float(width) > 0:
        raise ArgumentError(f"width: expected a positive number, got {width!r}")
    a, b = _pair(x, y)
    n = a.shape[0]
    if debiased and n < 4:
        raise ArgumentError(f"debiased cka needs at least 4 samples, got {n}")
    # dead units carry no signal; dropping them keeps rounding noise out of the RBF bandwidth
    xc, yc = _live(a)[1], _live(b)[1]
    px, py = xc.shape[1], yc.shape[1]
    if not px or not py:  # a constant side: its kernel is constant and carries nothing
        return CKAResult(0.0, kernel, bool(debiased), n, a.shape[1], b.shape[1], 1,
                         float(width) if kernel == "rbf" else 1.0)
    if kernel == "linear" and n * (px * px + py * py + px * py) <= n * n * (px + py + 2):
        value = _linear_feature_space(xc, yc, bool(debiased))
    else:
        if kernel == "linear":
            kx, ky = xc @ xc.T, yc @ yc.T
        else:
            kx, ky = rbf_gram(xc, float(width)), rbf_gram(yc, float(width))
        kx, ky = centre_gram(kx, bool(debiased)), centre_gram(ky, bool(debiased))
        value = _ratio(float(np.vdot(kx, ky)), float(np.vdot(kx, kx)), float(np.vdot(ky, ky)))
    return CKAResult(value, kernel, bool(debiased), n, a.shape[1], b.shape[1], 1,
                     float(width) if kernel == "rbf" else 1.0)
