"""CCA, SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018) of two layers' activations.

The definitions and the rules every method follows (dead units, rank deficiency, too few
samples, constant activations) are in :mod:`sparsegraph.metrics.similarity`, which is where
these functions are imported from.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from ..errors import ArgumentError
from .similarity_base import DEAD_VARIANCE, CCAResult, _frozen, _live, _pair

__all__ = ["pwcca", "svcca"]

_GRAM_ACCURATE = 1e-4  # eigh of X^T X when every kept direction has s / s_max above this


def _check_keep(keep: Any) -> int | float | None:
    if keep is None:
        return None
    if isinstance(keep, bool):
        raise ArgumentError(f"keep: expected an int >= 1, a fraction in (0, 1) or None, got {keep}")
    if isinstance(keep, Integral):
        if keep < 1:
            raise ArgumentError(f"keep: expected an int >= 1, got {keep!r}")
        return int(keep)
    if isinstance(keep, Real) and 0.0 < float(keep) < 1.0:
        return float(keep)
    raise ArgumentError(
        f"keep: expected an int >= 1 (directions), a fraction of variance in (0, 1), or None "
        f"(plain CCA), got {keep!r}"
    )


# ------------------------------------------------------------------------------ one side


@dataclass
class _Side:
    """One side after centring and dropping dead units: its kept directions ``centred @ v``
    (``v`` orthonormal, ``(p, r)``) with norms ``s``, and their orthonormal basis ``u``."""

    centred: np.ndarray  # live features, scaled and centred (n, p)
    v: np.ndarray  # (p, r)
    s: np.ndarray  # (r,) descending
    dead: int
    u: np.ndarray | None = None  # (n, r) = centred @ v / s, computed when needed
    from_svd: bool = False  # u came from an SVD of ``centred`` (ill-conditioned side)

    @property
    def dims(self) -> int:
        return int(self.s.size)

    def basis(self) -> np.ndarray:
        if self.u is None:
            self.u = self.centred @ self.v
            self.u /= self.s
        return self.u


def _side(x: np.ndarray, keep: int | float | None) -> _Side:
    alive, xc = _live(x)
    n, p = xc.shape
    dead = int(x.shape[1] - p)
    if p == 0:
        return _Side(xc, np.zeros((0, 0)), np.zeros(0), dead, np.zeros((n, 0)))
    if p <= n:  # eigh of the p x p Gram matrix: several times faster than an SVD of (n, p)
        lam, vec = np.linalg.eigh(xc.T @ xc)
        s, v = np.sqrt(np.clip(lam[::-1], 0.0, None)), vec[:, ::-1]
        r = _kept_directions(s, keep)
        if not r or s[r - 1] >= _GRAM_ACCURATE * s[0]:
            return _Side(xc, np.ascontiguousarray(v[:, :r]), s[:r], dead)
    # more features than samples, or small kept directions that lose digits through X^T X
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    r = _kept_directions(s, keep)
    return _Side(xc, vt[:r].T, s[:r], dead, u[:, :r], True)


def _kept_directions(s: np.ndarray, keep: int | float | None) -> int:
    """Directions kept: above the dead-variance floor, then SVCCA's ``keep``."""
    if s.size == 0 or s[0] <= 0:
        return 0
    var = s * s
    rank = int(np.count_nonzero(var >= DEAD_VARIANCE * var[0]))
    if keep is None:
        return rank
    if isinstance(keep, int):
        return min(keep, rank)
    share = np.cumsum(var) / var.sum()
    k = int(np.searchsorted(share, keep * (1.0 - 1e-12))) + 1  # smallest k with share >= keep
    return min(k, rank)


def _check_samples(sx: _Side, sy: _Side, n: int, what: str) -> None:
    dims = sx.dims + sy.dims
    if sx.dims and sy.dims and dims > n - 1:
        raise ArgumentError(
            f"{what}: {n} samples span {n - 1} centred directions, fewer than the "
            f"{sx.dims} + {sy.dims} directions compared, so {dims - n + 1} "
            "canonical correlations would be 1 whatever the activations; use more samples "
            f"(ideally several times {dims}), a smaller svcca keep, or cka"
        )


def _cca(sx: _Side, sy: _Side) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correlations, left vectors, right vectors) of ``Ux^T Uy``, descending."""
    n, (px, rx), (py, ry) = len(sx.centred), sx.v.shape, sy.v.shape
    by_cross = n * px * py + px * py * ry + px * rx * ry  # flops of the two routes
    by_basis = n * (px * rx + py * ry + rx * ry)
    if not sx.from_svd and not sy.from_svd and sx.u is None and sy.u is None \
            and by_cross < by_basis:
        # all directions kept: Ux^T Uy = S^-1 Vx^T (Xc^T Yc) Vy S^-1, one product of the data
        m = (sx.v.T @ (sx.centred.T @ sy.centred) @ sy.v) / np.outer(sx.s, sy.s)
    else:
        m = sx.basis().T @ sy.basis()
    a, rho, bt = np.linalg.svd(m, full_matrices=False)
    return np.clip(rho, 0.0, 1.0), a, bt.T


# --------------------------------------------------------------------------------- SVCCA


def svcca(x: Any, y: Any, keep: int | float | None = 20) -> CCAResult:
    """SVCCA similarity (Raghu et al. 2017): SVD reduction, then CCA.

    Parameters
    ----------
    x, y : array-like of shape (samples, features)
        Activations of two layers on the same inputs (numpy or torch, any real dtype; widths
        may differ).
    keep : int, float or None, default 20
        Singular directions kept on each side: an int (a larger one keeps all), a fraction in
        (0, 1) of the variance (the fewest top directions whose squared singular values reach
        it), or None for plain CCA on the live features.

    Returns
    -------
    CCAResult
        ``.value`` is the mean canonical correlation, ``.coefficients`` the correlations in
        descending order.

    Raises
    ------
    ArgumentError
        Bad input (not a 2-D finite real matrix, different sample counts, bad ``keep``), or
        fewer samples than the directions compared need (see the module docstring).

    Notes
    -----
    The recipe of the google/svcca tutorial: centre each feature, keep the top ``keep``
    singular directions ``s_i v_i`` of each side, then ``cca_core.get_cca_similarity`` with
    ``epsilon=1e-10``; this function agrees with it to 1e-6 wherever that code works (pinned in
    the tests). The CCA step uses orthonormal bases instead of inverted covariance matrices, so
    it is exact where theirs needs the epsilon ridge. Cost: O(n p^2) for an ``(n, p)`` side
    (one ``p x p`` eigendecomposition, or an SVD when small directions are kept), memory a few
    copies of the inputs in float64.

    References
    ----------
    Raghu, Gilmer, Yosinski, Sohl-Dickstein. SVCCA: Singular Vector Canonical Correlation
    Analysis for Deep Learning Dynamics and Interpretability. NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 30))
    >>> r = svcca(x, x @ rng.normal(size=(30, 30)), keep=None)  # an invertible map of x
    >>> round(r.value, 6), r.coefficients.shape
    (1.0, (30,))
    >>> round(svcca(x, rng.normal(size=(500, 40)), keep=10).value, 2)  # unrelated: small
    0.12
    """
    k = _check_keep(keep)
    a, b = _pair(x, y)
    sx, sy = _side(a, k), _side(b, k)
    method = "cca" if k is None else "svcca"
    _check_samples(sx, sy, a.shape[0], method)
    rho = _cca(sx, sy)[0] if sx.dims and sy.dims else np.zeros(0)
    return CCAResult(method, float(rho.mean()) if rho.size else 0.0, _frozen(rho), None,
                     a.shape[0], a.shape[1], b.shape[1], sx.dead, sy.dead, sx.dims, sy.dims, k)


# --------------------------------------------------------------------------------- PWCCA


def pwcca(x: Any, y: Any) -> CCAResult:
    """Projection-weighted CCA (Morcos et al. 2018).

    Parameters
    ----------
    x, y : array-like of shape (samples, features)
        Activations of two layers on the same inputs; widths may differ.

    Returns
    -------
    CCAResult
        ``.value`` the weighted mean ``sum_i w_i rho_i``, ``.coefficients`` the canonical
        correlations (descending), ``.weights`` the ``w_i``.

    Raises
    ------
    ArgumentError
        As :func:`svcca` with ``keep=None``.

    Notes
    -----
    As google/svcca's ``pwcca.compute_pwcca``: on the side with fewer directions (x on a tie),
    the canonical variates ``h_i = (x - mean) u_i`` over the samples (``u_i`` the left singular
    vectors of ``Sxx^-1/2 Sxy Syy^-1/2``), orthonormalised in order (QR) into ``p_i``;
    ``w_i`` is proportional to ``sum_j |<p_i, x_j>|`` over that side's live units ``x_j``.
    Two differences, both where the reference fails:

    - it works when the layers have different widths (the reference indexes ``x`` with
      ``y``'s units, google/svcca PR #9);
    - the reference adds each unit's mean back to the variate (``u_i^T (x - mean) + mean_i``),
      which makes its answer depend on the sign LAPACK happens to give each singular vector:
      on uncentred (e.g. post-ReLU) activations two equally valid sign choices give values
      several hundredths apart. The centred variates of Morcos et al.'s definition are used
      here, so the value is well defined and the same on every machine; on centred activations
      the two agree to 1e-6 (pinned in the tests).

    Rank-deficient activations (fewer directions than live units) are handled as in
    :func:`svcca`.

    References
    ----------
    Morcos, Raghu, Bengio. Insights on representational similarity in neural networks with
    canonical correlation. NeurIPS 2018.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(400, 20))
    >>> y = np.hstack([x @ rng.normal(size=(20, 20)), rng.normal(size=(400, 30))])
    >>> r = pwcca(x, y)  # x lies inside y's span: every correlation is 1
    >>> round(r.value, 6), len(r.coefficients), round(float(r.weights.sum()), 6)
    (1.0, 20, 1.0)
    """
    a, b = _pair(x, y)
    sx, sy = _side(a, None), _side(b, None)
    _check_samples(sx, sy, a.shape[0], "pwcca")
    rx, ry = sx.dims, sy.dims
    dims = (a.shape[0], a.shape[1], b.shape[1], sx.dead, sy.dead, rx, ry)
    if not rx or not ry:
        return CCAResult("pwcca", 0.0, _frozen(np.zeros(0)), _frozen(np.zeros(0)), *dims)
    rho, left, right = _cca(sx, sy)
    side, vecs = (sx, left) if rx <= ry else (sy, right)
    # the canonical variates (x - mean) u_i with u = V A: U diag(s) A, one column each
    q, _ = np.linalg.qr(side.centred @ (side.v @ vecs))
    w = np.abs(q.T @ side.centred).sum(axis=1)
    r = q.shape[1]
    w = w / w.sum() if w.sum() > 0 else np.full(r, 1.0 / r)
    return CCAResult("pwcca", float(np.dot(w, rho)), _frozen(rho), _frozen(w), *dims)
