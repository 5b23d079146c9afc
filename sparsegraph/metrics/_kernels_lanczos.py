"""Numba kernels of :mod:`sparsegraph.metrics.singular` (private): Lanczos on the Gram operator
of sparse 0/1 biadjacencies, for their two largest singular values.

Array/scalar-only signatures, no validation, no randomness of their own: random draws are made
with numpy Generators by the caller and passed in.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# --------------------------------------------------------------------------------------------
# Lanczos on the Gram operator B B^T of a sparse 0/1 biadjacency (top two singular values)


@njit(cache=True)
def _dot(a, b, n):  # pragma: no cover - compiled
    """``sum(a[:n] * b[:n])`` with four independent accumulators (fixed order: deterministic)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    n4 = n - n % 4
    for i in range(0, n4, 4):
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
    for i in range(n4, n):
        s0 += a[i] * b[i]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _gather_sum(idx, start, stop, x):  # pragma: no cover - compiled
    """``sum(x[idx[start:stop]])`` with four independent accumulators (fixed order)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    k = start
    while k + 4 <= stop:
        s0 += x[idx[k]]
        s1 += x[idx[k + 1]]
        s2 += x[idx[k + 2]]
        s3 += x[idx[k + 3]]
        k += 4
    while k < stop:
        s0 += x[idx[k]]
        k += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _gram_apply(rp, ri, cp, ci, x, t, y):  # pragma: no cover - compiled
    """``t = B^T x`` and ``y = B t`` for the 0/1 matrix ``B`` (p x q) given as CSR ``(rp, ri)``
    and its transpose as CSR ``(cp, ci)``."""
    for c in range(cp.size - 1):
        t[c] = _gather_sum(ci, cp[c], cp[c + 1], x)
    for r in range(rp.size - 1):
        y[r] = _gather_sum(ri, rp[r], rp[r + 1], t)


@njit(cache=True)
def _reorth(v, vt, j, w, h, c):  # pragma: no cover - compiled
    """One classical Gram-Schmidt pass of ``w`` against the rows ``v[:j]`` (``vt`` is ``v``
    transposed, kept so that both halves are vectorisable loops, not reductions); the
    coefficients are added to ``h[:j]`` (``c`` is scratch)."""
    p = w.size
    for k in range(j):
        c[k] = 0.0
    for i in range(p):
        wi = w[i]
        row = vt[i]
        for k in range(j):
            c[k] += row[k] * wi
    for k in range(j):
        h[k] += c[k]
        ck = c[k]
        vk = v[k]
        for i in range(p):
            w[i] -= ck * vk[i]


@njit(cache=True)
def _sturm_count(alpha, beta, j, x, pivmin):  # pragma: no cover - compiled
    """Number of eigenvalues of the tridiagonal ``T_j`` (diagonal ``alpha``, off-diagonal
    ``beta``) that are smaller than ``x``."""
    cnt = 0
    d = alpha[0] - x
    if abs(d) < pivmin:
        d = -pivmin
    if d < 0.0:
        cnt += 1
    for i in range(1, j):
        d = (alpha[i] - x) - beta[i - 1] * beta[i - 1] / d
        if abs(d) < pivmin:
            d = -pivmin
        if d < 0.0:
            cnt += 1
    return cnt


@njit(cache=True)
def _tri_eigval(alpha, beta, j, m, glo, ghi, lo, hi, pivmin, tol_abs):  # pragma: no cover
    """The ``m``-th smallest eigenvalue (0-based) of ``T_j`` by bisection on Sturm counts.

    ``[glo, ghi]`` is a sure enclosure of the spectrum; ``[lo, hi]`` a guess of the bracket
    (checked with Sturm counts, widened when wrong). Stops at width ``tol_abs``.
    """
    lo = max(lo, glo)
    if _sturm_count(alpha, beta, j, lo, pivmin) > m:
        lo = glo
    hi = min(max(hi, lo), ghi)
    width = max(hi - lo, tol_abs)
    while hi < ghi and _sturm_count(alpha, beta, j, hi, pivmin) <= m:
        lo = hi
        width *= 4.0
        hi = min(hi + width, ghi)
    if _sturm_count(alpha, beta, j, hi, pivmin) <= m:
        hi = ghi
    for _ in range(200):
        if hi - lo <= tol_abs:
            break
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _sturm_count(alpha, beta, j, mid, pivmin) > m:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@njit(cache=True)
def _tri_inverse_iteration(alpha, beta, j, theta, y, scale):  # pragma: no cover - compiled
    """Unit eigenvector ``y[:j]`` of ``T_j`` for its eigenvalue ``theta`` by two steps of inverse
    iteration (Gaussian elimination with partial pivoting, as LAPACK ``dgttrf``/``dgttrs``)."""
    d = np.empty(j)
    du = np.empty(j)
    du2 = np.zeros(j)
    dl = np.empty(j)
    swap = np.zeros(j, dtype=np.bool_)
    for i in range(j):
        d[i] = alpha[i] - theta
    for i in range(j - 1):
        du[i] = beta[i]
        dl[i] = beta[i]
    tiny = 1e-300 + 1e-17 * scale
    for i in range(j - 1):
        if abs(d[i]) >= abs(dl[i]):
            if d[i] == 0.0:
                d[i] = tiny
            fact = dl[i] / d[i]
            dl[i] = fact
            d[i + 1] -= fact * du[i]
        else:
            fact = d[i] / dl[i]
            d[i] = dl[i]
            dl[i] = fact
            temp = du[i]
            du[i] = d[i + 1]
            d[i + 1] = temp - fact * d[i + 1]
            if i < j - 2:
                du2[i] = du[i + 1]
                du[i + 1] = -fact * du[i + 1]
            swap[i] = True
    if d[j - 1] == 0.0:
        d[j - 1] = tiny
    for i in range(j):
        if d[i] == 0.0:
            d[i] = tiny
    # start: a fixed, generic vector
    for i in range(j):
        y[i] = 1.0 + 0.5 * ((i * 7919) % 13) / 13.0
    for _ in range(2):
        for i in range(j - 1):  # forward: L
            if swap[i]:
                temp = y[i] - dl[i] * y[i + 1]
                y[i] = y[i + 1]
                y[i + 1] = temp
            else:
                y[i + 1] = y[i + 1] - dl[i] * y[i]
        y[j - 1] = y[j - 1] / d[j - 1]  # backward: U
        if j > 1:
            y[j - 2] = (y[j - 2] - du[j - 2] * y[j - 1]) / d[j - 2]
        for i in range(j - 3, -1, -1):
            y[i] = (y[i] - du[i] * y[i + 1] - du2[i] * y[i + 2]) / d[i]
        nrm = math.sqrt(_dot(y, y, j))
        for i in range(j):
            y[i] /= nrm


@njit(cache=True)
def _refine_ritz(rp, ri, cp, ci, x, t, w):  # pragma: no cover - compiled
    """Normalise ``x``; return ``(||B^T x||, ||G x - (x^T G x) x||)`` with ``G = B B^T``."""
    p = x.size
    nrm = math.sqrt(_dot(x, x, p))
    for i in range(p):
        x[i] /= nrm
    _gram_apply(rp, ri, cp, ci, x, t, w)
    rho = _dot(x, w, p)
    for i in range(p):
        w[i] -= rho * x[i]
    return math.sqrt(_dot(t, t, t.size)), math.sqrt(_dot(w, w, p))


@njit(cache=True)
def _lanczos(  # pragma: no cover - compiled
    rp, ri, cp, ci, gram, dense, v0, max_iter, tol, first_check, out, x1, x2
):
    """Two largest singular values of a 0/1 matrix by Lanczos on its Gram operator ``B B^T``.

    Lanczos with full reorthogonalisation (classical Gram-Schmidt, repeated when a pass removes
    more than 30% of the norm) from the start vector ``v0``. At step ``first_check`` and then at
    steps predicted from the observed convergence rate, the two largest Ritz values of the
    tridiagonal matrix are found by bisection (Sturm counts) and their residual estimates
    ``beta_j |y_j|`` by inverse iteration; it stops when both are at most ``tol * theta1``, or
    when the Krylov space is invariant. The Ritz vectors are then formed and the singular values
    refined as ``||B^T x||``, with their true residuals ``||B B^T x - (x^T B B^T x) x||``.

    Parameters
    ----------
    rp, ri : int64[:], int64[:]; CSR of ``B`` (p x q), no values (all ones)
    cp, ci : int64[:], int64[:]; CSR of ``B^T`` (q x p)
    gram : float64[:, ::1], ``B B^T`` (p x p) when ``dense``, else unused
    dense : bool, multiply by ``gram`` instead of ``B`` and ``B^T``
    v0 : float64[:], (p,), non-zero start vector
    max_iter : int64, at most this many Lanczos steps (capped at p)
    tol : float64, residual tolerance relative to ``theta1 = sigma1**2``
    first_check : int64 >= 2, the step of the first convergence test
    out : float64[:], (6,); set to ``sigma1, sigma2, res1, res2, theta1, theta2``: the refined
        singular values, the true Gram residuals relative to ``theta1`` and the Ritz values
    x1, x2 : float64[:], (p,); set to the two unit Ritz vectors

    Returns
    -------
    int64: the number of steps when converged, minus that number when not (``out`` is then
    still filled when at least two steps were made).
    """
    p = rp.size - 1
    q = cp.size - 1
    m = min(max_iter, p)
    v = np.empty((m + 1, p))
    vt = np.empty((p, m + 1))
    cs = np.empty(m + 1)
    alpha = np.zeros(m + 1)
    beta = np.zeros(m + 1)
    w = np.empty(p)
    t = np.empty(q)
    h = np.zeros(m + 1)
    y1 = np.zeros(m + 1)
    y2 = np.zeros(m + 1)
    nrm = math.sqrt(_dot(v0, v0, p))
    for i in range(p):
        v[0, i] = v0[i] / nrm
        vt[i, 0] = v[0, i]
    converged = False
    theta1 = 0.0
    theta2 = 0.0
    r1 = 0.0
    r2 = 0.0
    next_check = max(first_check, 2)
    last_j = 0
    last_r = 0.0
    scale = 0.0
    j = 0
    while j < m:
        if dense:  # symmetric: rows as columns, a vectorisable sum of scaled rows
            vj = v[j]
            for r in range(p):
                w[r] = 0.0
            for r in range(p):
                xr = vj[r]
                grow = gram[r]
                for i in range(p):
                    w[i] += xr * grow[i]
        else:
            _gram_apply(rp, ri, cp, ci, v[j], t, w)
        for k in range(j + 1):
            h[k] = 0.0
        a = _dot(v[j], w, p)
        vj = v[j]
        for i in range(p):
            w[i] -= a * vj[i]
        if j > 0:
            b = beta[j - 1]
            vp = v[j - 1]
            for i in range(p):
                w[i] -= b * vp[i]
        before = math.sqrt(_dot(w, w, p))
        _reorth(v, vt, j + 1, w, h, cs)
        after = math.sqrt(_dot(w, w, p))
        if after < 0.7 * before:
            _reorth(v, vt, j + 1, w, h, cs)
            after = math.sqrt(_dot(w, w, p))
        alpha[j] = a + h[j]
        beta[j] = after
        j += 1
        s_row = abs(alpha[j - 1]) + after + (beta[j - 2] if j > 1 else 0.0)
        if s_row > scale:
            scale = s_row
        invariant = after <= 1e-13 * scale
        if j >= 2 and (invariant or j >= next_check or j == m):
            glo = 1e300
            ghi = -1e300
            for k in range(j):
                r = beta[k - 1] if k > 0 else 0.0
                if k < j - 1:
                    r += beta[k]
                glo = min(glo, alpha[k] - r)
                ghi = max(ghi, alpha[k] + r)
            pivmin = 1e-300 + 1e-30 * scale * scale
            tol_abs = 1e-11 * scale
            # Ritz values only grow with j; the last residuals bound how far they move
            theta1 = _tri_eigval(alpha, beta, j, j - 1, glo, ghi, theta1 - tol_abs,
                                 theta1 + 2.0 * r1 + tol_abs, pivmin, tol_abs)
            theta2 = _tri_eigval(alpha, beta, j, j - 2, glo, theta1, theta2 - tol_abs,
                                 theta2 + 2.0 * r2 + tol_abs, pivmin, tol_abs)
            _tri_inverse_iteration(alpha, beta, j, theta1, y1, scale)
            _tri_inverse_iteration(alpha, beta, j, theta2, y2, scale)
            c = _dot(y1, y2, j)
            for k in range(j):
                y2[k] -= c * y1[k]
            c = math.sqrt(_dot(y2, y2, j))
            for k in range(j):
                y2[k] /= c
            r1 = after * abs(y1[j - 1])
            r2 = after * abs(y2[j - 1])
            worst = max(r1, r2) / theta1 if theta1 > 0.0 else 1.0
            if invariant or worst <= tol:
                converged = True
                break
            # next test where the observed (geometric) decrease should reach tol
            step = 8
            if last_j > 0 and 0.0 < worst < last_r:
                rate = math.log(worst / last_r) / (j - last_j)
                step = int(math.ceil(math.log(tol / worst) / rate))
            step = min(max(step, 2), 16)
            last_j = j
            last_r = worst
            next_check = j + step
        if invariant:
            break
        vn = v[j]
        for i in range(p):
            vn[i] = w[i] / after
            vt[i, j] = vn[i]
    if j < 2:
        return -j
    # Ritz vectors
    for i in range(p):
        x1[i] = 0.0
        x2[i] = 0.0
    for k in range(j):
        c1 = y1[k]
        c2 = y2[k]
        vk = v[k]
        for i in range(p):
            x1[i] += c1 * vk[i]
            x2[i] += c2 * vk[i]
    out[0], out[2] = _refine_ritz(rp, ri, cp, ci, x1, t, w)
    out[1], out[3] = _refine_ritz(rp, ri, cp, ci, x2, t, w)
    out[4] = theta1
    out[5] = theta2
    out[2] /= theta1 if theta1 > 0 else 1.0
    out[3] /= theta1 if theta1 > 0 else 1.0
    return j if converged else -j


@njit(cache=True)
def top2_groups(  # pragma: no cover - compiled
    lp, li, n_right, members, offsets, v0, tol, max_iter, first_check, out
):
    """Two largest singular values of many sub-biadjacencies of one 0/1 layer graph.

    Group ``g`` is the subgraph on the left nodes ``members[offsets[g]:offsets[g + 1]]`` and all
    right nodes, the right nodes left isolated dropped. For each group the kernel builds both
    CSR orientations (local labels), tests connectivity (breadth-first search), and runs
    :func:`_lanczos` on the Gram operator of the smaller side, with the Gram matrix formed
    densely when that is cheaper than the two sparse products per step.

    Parameters
    ----------
    lp : int64[:], (n_left + 1,); li : int64[:], (nnz,): CSR of the layer's left nodes (right
        neighbours); no duplicate entries
    n_right : int64, number of right nodes of the layer
    members : int64[:]; offsets : int64[:], (G + 1,): the groups' left nodes
    v0 : float64[:], random start entries, length >= every group's smaller side
    tol, max_iter, first_check : as :func:`_lanczos`
    out : float64[:, ::1], (G, 8); row ``g`` set to ``sigma1, sigma2, res1, res2, steps,
        status, n_right_sub, edges`` where status is 0 (converged), 1 (disconnected: not
        solved), 2 (not converged: values unreliable), 3 (smaller side below 2: not solved)
    """
    n_groups = offsets.size - 1
    relabel = np.full(n_right, -1, dtype=np.int64)
    used = np.empty(n_right, dtype=np.int64)
    res = np.zeros(6)
    for g in range(n_groups):
        lo = offsets[g]
        k = offsets[g + 1] - lo
        nr = 0
        nnz = 0
        for a in range(k):
            node = members[lo + a]
            for e in range(lp[node], lp[node + 1]):
                c = li[e]
                if relabel[c] < 0:
                    relabel[c] = nr
                    used[nr] = c
                    nr += 1
                nnz += 1
        lptr = np.empty(k + 1, dtype=np.int64)
        lidx = np.empty(nnz, dtype=np.int64)
        rcount = np.zeros(nr + 1, dtype=np.int64)
        pos = 0
        lptr[0] = 0
        for a in range(k):
            node = members[lo + a]
            for e in range(lp[node], lp[node + 1]):
                c = relabel[li[e]]
                lidx[pos] = c
                rcount[c + 1] += 1
                pos += 1
            lptr[a + 1] = pos
        for c in range(nr):
            relabel[used[c]] = -1
            rcount[c + 1] += rcount[c]
        rptr = rcount.copy()
        ridx = np.empty(nnz, dtype=np.int64)
        fill = rcount[:nr].copy()
        for a in range(k):
            for e in range(lptr[a], lptr[a + 1]):
                c = lidx[e]
                ridx[fill[c]] = a
                fill[c] += 1
        out[g, 6] = nr
        out[g, 7] = nnz
        for col in range(6):
            out[g, col] = 0.0
        # connectivity: breadth-first search over left (0..k-1) and right (k..k+nr-1) nodes
        seen = np.zeros(k + nr, dtype=np.bool_)
        queue = np.empty(k + nr, dtype=np.int64)
        seen[0] = True
        queue[0] = 0
        head = 0
        tail = 1
        while head < tail:
            u = queue[head]
            head += 1
            if u < k:
                for e in range(lptr[u], lptr[u + 1]):
                    z = k + lidx[e]
                    if not seen[z]:
                        seen[z] = True
                        queue[tail] = z
                        tail += 1
            else:
                for e in range(rptr[u - k], rptr[u - k + 1]):
                    z = ridx[e]
                    if not seen[z]:
                        seen[z] = True
                        queue[tail] = z
                        tail += 1
        if tail < k + nr:
            out[g, 5] = 1.0
            continue
        if k <= nr:
            rp, ri, cp, ci = lptr, lidx, rptr, ridx
            p = k
        else:
            rp, ri, cp, ci = rptr, ridx, lptr, lidx
            p = nr
        if p < 2:
            out[g, 5] = 3.0
            continue
        # dense Gram when forming it (sum of squared q-side degrees) and p^2 per step beat
        # two sparse products per step (measured: a gather-add of the sparse products costs
        # about as much as twelve multiply-adds of the vectorised dense product)
        sq = 0.0
        for c in range(cp.size - 1):
            dgc = cp[c + 1] - cp[c]
            sq += dgc * dgc
        dense = sq / 16.0 + p * p < 12.0 * nnz
        if dense:
            gram = np.zeros((p, p))
            for r1 in range(p):
                grow = gram[r1]
                for e in range(rp[r1], rp[r1 + 1]):
                    c = ri[e]
                    for f in range(cp[c], cp[c + 1]):
                        grow[ci[f]] += 1.0
        else:
            gram = np.zeros((0, 0))
        x1 = np.empty(p)
        x2 = np.empty(p)
        steps = _lanczos(rp, ri, cp, ci, gram, dense, v0[:p], max_iter, tol, first_check,
                         res, x1, x2)
        for col in range(4):
            out[g, col] = res[col]
        out[g, 4] = abs(steps)
        out[g, 5] = 0.0 if steps > 0 else 2.0
