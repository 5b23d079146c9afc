"""The two largest singular values of a layer's bipartite graph (``lambda1`` and ``mu_hat``).

The solvers behind :mod:`sparsegraph.metrics.spectral` (its module docstring, *Numerics*, says
how they are chosen and how exact they are):

- :func:`top_singular_values`, public, for any non-negative (0/1 or weighted) biadjacency: the
  dense Gram ``eigh`` of the smaller side up to :data:`DENSE_SIDE_MAX` nodes, else ``eigsh`` on
  the Gram operator of each connected component;
- :func:`_top2_groups`, for many 0/1 subgraphs of one layer given by its left CSR
  (:func:`_left_csr`): Lanczos with full reorthogonalisation in numba
  (:mod:`sparsegraph.metrics._kernels_lanczos`), components solved apart, a dense fallback.

Every value is refined as ``||B^T x||`` for unit vectors ``x``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components

from ..graph.network import aligned8, word_view
from ._kernels_lanczos import top2_groups
from ._kernels_spectral import left_csr

__all__ = ["DENSE_SIDE_MAX", "top_singular_values"]

#: Largest Gram-matrix side solved with a dense ``eigh`` (larger sides use ``eigsh``).
DENSE_SIDE_MAX = 2048
# dense float64 copies of a graph are made up to this many elements
_DENSE_ELEMS_MAX = 1 << 23


def _refine(x: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """``||x^T v||`` for unit columns ``v`` of ``vecs`` (x: p x q dense or sparse, vecs p x k)."""
    prod = x.T @ vecs
    return np.sqrt(np.einsum("ij,ij->j", prod, prod))


def _top2_gram(x: np.ndarray | sp.csr_array) -> tuple[float, float]:
    """Two largest singular values of a float64 matrix (dense, or sparse CSR) from the dense
    Gram matrix of its smaller side (for a sparse matrix formed by a sparse product)."""
    if x.shape[0] > x.shape[1]:
        x = x.T.tocsr() if sp.issparse(x) else x.T
    p = x.shape[0]
    if p == 0:
        return 0.0, 0.0
    gram = x @ x.T
    if sp.issparse(gram):
        gram = gram.toarray()
    if p == 1:
        return math.sqrt(gram[0, 0]), 0.0
    _, vecs = scipy.linalg.eigh(gram, subset_by_index=[p - 2, p - 1], check_finite=False)
    s = np.sort(_refine(x, vecs))[::-1]
    return float(s[0]), float(s[1])


def _top2_eigsh(x: sp.csr_array) -> tuple[float, float]:
    """Two largest singular values of a connected sparse graph by Lanczos on the Gram operator."""
    if x.shape[0] > x.shape[1]:
        x = x.T.tocsr()
    p = x.shape[0]
    xt = x.T.tocsr()
    op = spla.LinearOperator((p, p), matvec=lambda v: x @ (xt @ v), dtype=np.float64)
    v0 = np.random.default_rng(0x5EED).standard_normal(p)
    k = min(2, p - 1)
    _, vecs = spla.eigsh(op, k=k, which="LA", tol=1e-14, v0=v0, ncv=min(p, 32))
    s = np.sort(_refine(x, vecs))[::-1]
    return float(s[0]), float(s[1]) if s.size > 1 else 0.0


def _use_dense(n_small: int, n_big: int, edges: int) -> bool:
    if n_small * n_big > _DENSE_ELEMS_MAX:
        return False
    # dense BLAS Gram ~ n_small^2 n_big flops; the sparse product ~ sum(deg_big^2), ~20x slower
    mean_big = edges / max(n_big, 1)
    return n_small * n_small * n_big <= 20 * n_big * mean_big * mean_big + 4096 * n_small


def top_singular_values(biadjacency: Any) -> tuple[float, float]:
    """The two largest singular values of a (0/1 or weighted) biadjacency matrix.

    For a bipartite graph these are ``lambda1`` and ``mu_hat``, the largest and the largest
    non-trivial eigenvalue of its adjacency matrix.

    Parameters
    ----------
    biadjacency : ndarray or scipy sparse matrix
        ``(n_left, n_right)``, non-negative; zero rows and columns are allowed (dropped).

    Returns
    -------
    (float, float)
        ``(sigma1, sigma2)`` in float64; ``sigma2 = 0`` when the matrix has rank at most one.

    Notes
    -----
    Gram matrix of the smaller side with a dense two-eigenpair ``eigh`` when that side has at
    most :data:`DENSE_SIDE_MAX` nodes, else ``eigsh`` on the Gram operator of each connected
    component (so degenerate top values of disconnected graphs are found); singular values are
    refined as ``||B^T v||``. Agrees with ``numpy.linalg.svd`` to about 1e-12 relative.

    Examples
    --------
    >>> import numpy as np
    >>> s1, s2 = top_singular_values(np.ones((3, 4)))      # K_{3,4}
    >>> round(s1 ** 2, 9), round(s2, 9)
    (12.0, 0.0)
    >>> two = np.kron(np.eye(2), np.ones((3, 3)))          # two disjoint K_{3,3}
    >>> [round(v, 9) for v in top_singular_values(two)]
    [3.0, 3.0]
    """
    if sp.issparse(biadjacency):
        x = sp.csr_array(biadjacency, dtype=np.float64)
        x.eliminate_zeros()
        rows = np.flatnonzero(np.diff(x.indptr))
        cols = np.flatnonzero(np.bincount(x.indices, minlength=x.shape[1]))
        x = x[rows][:, cols].tocsr()
        return _top2_sparse_any(x)
    arr = np.asarray(biadjacency, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"biadjacency: expected a 2-d matrix, got shape {arr.shape}")
    nz = arr != 0
    arr = arr[np.ix_(nz.any(axis=1), nz.any(axis=0))]
    if min(arr.shape) <= DENSE_SIDE_MAX:
        return _top2_gram(np.ascontiguousarray(arr))
    return _top2_sparse_any(sp.csr_array(arr))


def _top2_sparse_any(x: sp.csr_array, *, lanczos: bool = False) -> tuple[float, float]:
    """Two largest singular values of a sparse matrix without zero rows/columns
    (``lanczos=True``: the per-component ``eigsh`` path at any size)."""
    n_small, n_big = sorted(x.shape)
    if n_small == 0:
        return 0.0, 0.0
    if n_small <= DENSE_SIDE_MAX and not lanczos:
        if _use_dense(n_small, n_big, x.nnz):
            return _top2_gram(x.toarray())
        return _top2_gram(x)
    # large: per connected component (Lanczos finds one copy of a repeated eigenvalue only;
    # the top singular value of a connected bipartite graph is simple)
    nl, nr = x.shape
    adj = sp.bmat([[None, x], [x.T, None]], format="csr")
    ncomp, labels = connected_components(adj, directed=False)
    if ncomp == 1:
        return _top2_eigsh(x)
    lab_l, lab_r = labels[:nl], labels[nl:]
    vals: list[float] = []
    order_l, order_r = np.argsort(lab_l, kind="stable"), np.argsort(lab_r, kind="stable")
    cut_l = np.searchsorted(lab_l[order_l], np.arange(ncomp + 1))
    cut_r = np.searchsorted(lab_r[order_r], np.arange(ncomp + 1))
    for c in range(ncomp):
        rl, rr = order_l[cut_l[c] : cut_l[c + 1]], order_r[cut_r[c] : cut_r[c + 1]]
        sub = x[rl][:, rr].tocsr()
        a, b = sorted(sub.shape)
        if a <= (64 if lanczos else DENSE_SIDE_MAX):
            if _use_dense(a, b, sub.nnz):
                vals.extend(_top2_gram(sub.toarray()))
            else:
                vals.extend(_top2_gram(sub))
        else:
            vals.extend(_top2_eigsh(sub))
    vals.sort(reverse=True)
    return vals[0], vals[1]


# Lanczos settings of the layer solver (see :func:`_top2_groups`)
_LANCZOS_TOL = 1e-10
_LANCZOS_MAX_ITER = 400
_LANCZOS_FIRST_CHECK = 16
# start vectors: one fixed stream of standard normals, the first p entries for a side of p
_START = np.random.default_rng(0x5EED).standard_normal(1 << 12)


def _start_vector(p: int) -> np.ndarray:
    """Deterministic random start entries (at least ``p``)."""
    return _START if p <= _START.size else np.random.default_rng(0x5EED).standard_normal(p)


def _left_csr(m2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Left CSR (int64 indptr, int64 right indices) of an (out, fan_in) bool mask, with the
    right and left degrees."""
    deg_r = np.empty(m2.shape[0], dtype=np.int64)
    deg_l = np.empty(m2.shape[1], dtype=np.int64)
    m2 = aligned8(np.asarray(m2, dtype=np.bool_))
    lp, li = left_csr(m2, word_view(m2), deg_r, deg_l)
    return lp, li, deg_r, deg_l


def _pack(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([g.size for g in groups], out=offsets[1:])
    members = np.concatenate(groups).astype(np.int64) if groups else np.zeros(0, np.int64)
    return members, offsets


def _sub_csr(lp: np.ndarray, li: np.ndarray, n_right: int, left: np.ndarray) -> sp.csr_array:
    """The sub-biadjacency of the left nodes ``left`` (all right nodes kept) as float CSR."""
    starts, stops = lp[left], lp[left + 1]
    counts = stops - starts
    idx = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    cols = li[idx + np.arange(idx.size)]
    indptr = np.zeros(left.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_array((np.ones(cols.size), cols, indptr), shape=(left.size, n_right))


def _top2_groups(
    lp: np.ndarray, li: np.ndarray, n_right: int, groups: list[np.ndarray]
) -> list[tuple[float, float]]:
    """``(sigma1, sigma2)`` of the subgraph of each group of left nodes (all right nodes, the
    isolated ones dropped) of a 0/1 layer graph given by its left CSR ``(lp, li)``.

    Connected subgraphs: Lanczos on the Gram operator of the smaller side with full
    reorthogonalisation (numba, :func:`~sparsegraph.metrics._kernels_lanczos.top2_groups`), stopped
    when both Ritz residuals are below ``_LANCZOS_TOL`` times ``sigma1**2``, the values refined
    as ``||B^T x||`` and the true residuals checked again. Disconnected subgraphs (the only
    ones whose top value can repeat) are split into their components, solved one by one.
    Anything that does not converge falls back to the dense Gram ``eigh``.
    """
    out = np.zeros((len(groups), 8))
    if not groups:
        return []
    members, offsets = _pack(groups)
    p_max = max(int(g.size) for g in groups)
    top2_groups(lp, li, n_right, members, offsets, _start_vector(p_max), _LANCZOS_TOL,
                _LANCZOS_MAX_ITER, _LANCZOS_FIRST_CHECK, out)
    vals: list[tuple[float, float]] = []
    for g, left in enumerate(groups):
        status = int(out[g, 5])
        ok = status == 0 and max(out[g, 2], out[g, 3]) <= 10 * _LANCZOS_TOL
        if ok:
            s1, s2 = float(out[g, 0]), float(out[g, 1])
            vals.append((s1, s2) if s1 >= s2 else (s2, s1))
            continue
        sub = _sub_csr(lp, li, n_right, left)
        sub = sub[:, np.flatnonzero(np.bincount(sub.indices, minlength=n_right))].tocsr()
        if status == 1:
            vals.append(_top2_components(sub))
        elif status == 3:  # a star: rank one
            vals.append((math.sqrt(float(sub.nnz)), 0.0))
        else:
            vals.append(_top2_gram(sub.toarray()) if sub.shape[0] * sub.shape[1]
                        <= _DENSE_ELEMS_MAX else _top2_gram(sub))
    return vals


def _top2_components(x: sp.csr_array) -> tuple[float, float]:
    """Top two singular values of a disconnected 0/1 graph without isolated nodes: the two
    largest over its components' top two (each component solved by :func:`_top2_groups`)."""
    nl, nr = x.shape
    adj = sp.bmat([[None, x], [x.T, None]], format="csr")
    ncomp, labels = connected_components(adj, directed=False)
    lab_l = labels[:nl]
    order = np.argsort(lab_l, kind="stable")
    cuts = np.searchsorted(lab_l[order], np.arange(ncomp + 1))
    comps = [order[cuts[c] : cuts[c + 1]] for c in range(ncomp) if cuts[c + 1] > cuts[c]]
    xs = x.astype(np.float64).tocsr()
    xs.sort_indices()
    lp = xs.indptr.astype(np.int64)
    li = xs.indices.astype(np.int64)
    vals: list[float] = []
    for s1, s2 in _top2_groups(lp, li, nr, comps):
        vals.extend((s1, s2))
    vals.sort(reverse=True)
    return vals[0], (vals[1] if len(vals) > 1 else 0.0)
