"""Similarity of two layers' activations: SVCCA, PWCCA and CKA.

Every function takes two activation matrices ``x`` and ``y`` of shape ``(samples, features)``
recorded on the same inputs (numpy arrays or torch tensors, any real dtype; computed in float64)
and returns a frozen result whose ``.value`` is one number.

======== ==============================================================================
method   definition
======== ==============================================================================
CCA      centre each feature; the canonical correlations are the singular values of
         ``Sxx^-1/2 Sxy Syy^-1/2``, computed stably as those of ``Qx^T Qy`` with ``Qx``,
         ``Qy`` orthonormal bases of the centred activations (``svcca(x, y, keep=None)``)
SVCCA    Raghu et al. 2017: centre, keep the top ``keep`` singular directions of each side,
         then CCA; the value is the mean canonical correlation (the google/svcca tutorial)
PWCCA    Morcos et al. 2018: the canonical correlations weighted by how much of the
         activations each canonical direction accounts for (google/svcca ``compute_pwcca``)
CKA      Kornblith et al. 2019: ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` with linear
         (``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on centred data) or RBF kernels, the
         biased or the unbiased (``debiased=True``, Song et al. 2012) HSIC estimator
======== ==============================================================================

Rules shared by every method (where the reference code of the authors fails, this module does
not):

- **Dead units** (features with zero or near-zero variance, which pruned networks have) are
  dropped before anything else, as google/svcca's ``epsilon=1e-10`` does: a feature is dead when
  its variance is below ``1e-10`` of the largest feature variance of its side, or it is constant
  up to rounding. They are counted in ``dead_x`` / ``dead_y``, never turned into NaN.
- **Directions** with variance below ``1e-10`` of the largest (rank deficiency: duplicated or
  collinear units, a first layer with fewer inputs than outputs) are not whitened into noise:
  CCA works on the column spaces of the centred activations, ``dims_x`` / ``dims_y`` wide.
- **Too few samples.** The centred activations of ``n`` samples span at most ``n - 1``
  directions; when ``dims_x + dims_y > n - 1`` the two subspaces must intersect and that many
  canonical correlations are 1 whatever the networks compute. CCA, SVCCA and PWCCA then raise
  :class:`~sparsegraph.errors.ArgumentError` (use more samples, a smaller ``keep``, or CKA,
  which has no such limit).
- **Constant activations** (a collapsed layer: no live unit at all) share no variance with
  anything: the value is 0.0 with no coefficients.
- Inputs are rescaled by their largest magnitude first (every method is invariant to that), so
  nothing overflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np

from .._args import check_choice, to_numpy
from ..errors import ArgumentError, MaskError

__all__ = ["CCAResult", "CKAResult", "KERNELS", "cka", "pwcca", "svcca"]

KERNELS = ("linear", "rbf")
DEAD_VARIANCE = 1e-10  # google/svcca's epsilon: relative variance below which a unit is dead
_CONSTANT = 1e-12  # a feature whose spread is below this fraction of its magnitude is constant
_GRAM_ACCURATE = 1e-4  # eigh of X^T X when every kept direction has s / s_max above this


# ------------------------------------------------------------------------------------ results


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class CCAResult:
    """The result of :func:`svcca` or :func:`pwcca`.

    Attributes
    ----------
    method : str
        ``"cca"`` (``svcca(keep=None)``), ``"svcca"`` or ``"pwcca"``.
    value : float
        Mean canonical correlation (CCA, SVCCA) or projection-weighted mean (PWCCA), in [0, 1].
    coefficients : ndarray of float64
        The canonical correlations, descending, ``min(dims_x, dims_y)`` of them (read-only).
    weights : ndarray of float64 or None
        PWCCA's weight of each coefficient (summing to 1), None for (SV)CCA.
    samples : int
        Number of samples (rows).
    features_x, features_y : int
        Columns of the inputs.
    dead_x, dead_y : int
        Features dropped for (near-)zero variance.
    dims_x, dims_y : int
        Directions compared on each side: SVCCA's kept singular directions, else the rank of
        the live centred activations.
    keep : int, float or None
        SVCCA's ``keep`` as given (None for CCA and PWCCA).
    """

    method: str
    value: float
    coefficients: np.ndarray = field(repr=False)
    weights: np.ndarray | None = field(repr=False)
    samples: int
    features_x: int
    features_y: int
    dead_x: int
    dead_y: int
    dims_x: int
    dims_y: int
    keep: int | float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every attribute (arrays as lists)."""
        out = {k: getattr(self, k) for k in ("method", "value", "samples", "features_x",
                                             "features_y", "dead_x", "dead_y", "dims_x",
                                             "dims_y", "keep")}
        out["coefficients"] = self.coefficients.tolist()
        if self.weights is not None:
            out["weights"] = self.weights.tolist()
        return out


@dataclass(frozen=True, eq=False)
class CKAResult:
    """The result of :func:`cka` (or of a :class:`~sparsegraph.metrics.cka_stream.MinibatchCKA`).

    Attributes
    ----------
    value : float
        CKA, in [0, 1] for the biased estimator; the unbiased estimator can be slightly
        negative for unrelated representations. 0.0 when either side is constant.
    kernel : str
        ``"linear"`` or ``"rbf"``.
    debiased : bool
        Whether HSIC was estimated without bias (always True for the minibatch estimator).
    samples : int
        Number of samples.
    features_x, features_y : int
        Columns of the inputs.
    minibatches : int
        1 for :func:`cka`; the number of minibatches averaged by the minibatch estimator.
    width : float
        The RBF bandwidth as a fraction of the median pairwise distance (1.0 for linear).
    """

    value: float
    kernel: str
    debiased: bool
    samples: int
    features_x: int
    features_y: int
    minibatches: int = 1
    width: float = 1.0
    method: str = "cka"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every attribute."""
        return {k: getattr(self, k) for k in ("method", "value", "kernel", "debiased", "samples",
                                              "features_x", "features_y", "minibatches",
                                              "width")}


# --------------------------------------------------------------------------------- the door


def activations(value: Any, what: str) -> np.ndarray:
    """``value`` as a finite float64 ``(samples, features)`` matrix, or an ArgumentError.

    Raises
    ------
    ArgumentError
        For something that is not a real numeric array, a rank other than 2, no features,
        fewer than 2 samples, NaN or infinity.
    """
    try:
        arr = to_numpy(value, what)
    except MaskError as exc:
        raise ArgumentError(str(exc)) from None
    if arr.dtype.kind not in "biuf":
        raise ArgumentError(f"{what}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        hint = (" (one feature? use x.reshape(-1, 1))" if arr.ndim == 1 else
                " (flatten the non-sample axes: x.reshape(len(x), -1))" if arr.ndim > 2 else "")
        raise ArgumentError(
            f"{what}: expected a (samples, features) matrix, got shape {list(arr.shape)}{hint}"
        )
    if arr.shape[1] == 0:
        raise ArgumentError(f"{what}: has no features (shape {list(arr.shape)})")
    if arr.shape[0] < 2:
        raise ArgumentError(f"{what}: needs at least 2 samples, got {arr.shape[0]}")
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        kind = "NaN" if np.isnan(arr).any() else "infinity"
        raise ArgumentError(f"{what}: contains {kind} ({int(bad.sum())} non-finite values)")
    return arr


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = activations(x, "x"), activations(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ArgumentError(
            f"x and y must hold the same samples: x has {a.shape[0]} rows, y has {b.shape[0]}"
        )
    return a, b


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


def _live(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(live mask, live features centred and divided by the largest magnitude) of ``x``."""
    top = np.maximum(x.max(axis=0), -x.min(axis=0))  # per-feature magnitude, no temporary
    scale = float(top.max()) if top.size else 0.0
    xc = x - x.mean(axis=0)
    if scale > 0:
        xc /= scale
        top = top / scale
    spread = np.sqrt(np.einsum("ij,ij->j", xc, xc) / len(xc))
    alive = spread > _CONSTANT * top
    if alive.any():
        var = spread * spread
        alive &= var >= DEAD_VARIANCE * var[alive].max()
    return alive, (xc if alive.all() else xc[:, alive])


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


# ----------------------------------------------------------------------------------- CKA


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
