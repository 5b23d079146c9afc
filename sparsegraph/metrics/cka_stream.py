"""Minibatch CKA (Nguyen, Raghu & Kornblith 2021): CKA over more samples than fit in memory.

The activations arrive in minibatches; each minibatch ``i`` of ``m_i`` samples contributes the
unbiased HSIC estimates (Song et al. 2012) ``HSIC_1(K_i, L_i)``, ``HSIC_1(K_i, K_i)`` and
``HSIC_1(L_i, L_i)`` of its Gram matrices, and

    CKA = mean_i HSIC_1(K_i, L_i) / sqrt(mean_i HSIC_1(K_i, K_i) * mean_i HSIC_1(L_i, L_i))

(means weighted by ``m_i``, which changes nothing when the minibatches have equal sizes). Each
``HSIC_1`` is computed as ``<U(K), U(L)> / (m (m - 3))`` with ``U`` the U-centring of Szekely &
Rizzo 2014 (:func:`~sparsegraph.metrics.similarity.centre_gram`), or for the linear kernel
with fewer features than rows in feature space (the same number, from ``X^T Y`` and the row
norms, O(m p^2) instead of O(m^2 p)). Memory is a few ``m x m`` matrices (or ``p x p`` ones)
per layer, independent of the number of samples; the estimate converges to the
population CKA as the number of minibatches grows, and with one minibatch it is exactly
``cka(x, y, debiased=True)``.

:class:`MinibatchCKA` compares one pair; :class:`CKAAccumulator` shares the Gram matrices of
many layers between every pair compared (the cross-layer matrices of
:func:`sparsegraph.layer_similarity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np

from .._args import check_choice, check_count
from ..errors import ArgumentError
from .cka import _ratio, centre_gram, rbf_gram
from .similarity_base import KERNELS, CKAResult, _live, activations

__all__ = ["CKAAccumulator", "MinibatchCKA"]

MIN_ROWS = 4  # the unbiased HSIC estimator needs 4 samples


class CKAAccumulator:
    """Streaming minibatch CKA between named activation streams that share their rows.

    Parameters
    ----------
    names : sequence of str
        The streams (e.g. layers of two models), each fed ``(rows, features)`` arrays.
    pairs : iterable of (str, str)
        The pairs whose CKA is wanted.
    kernel : {"linear", "rbf"}, default "linear"
        As :func:`~sparsegraph.metrics.similarity.cka`; the RBF bandwidth is ``width`` times
        the median distance within each minibatch.
    width : float, default 1.0
        RBF bandwidth factor.
    batch_size : int, optional
        Rows per minibatch: rows are buffered and cut into minibatches of this size (the last
        one holds the rest, between 4 and ``batch_size + 3`` rows). None: every
        :meth:`update` is one minibatch (one of fewer than 4 rows joins the one before).

    Notes
    -----
    Every minibatch costs one Gram matrix per stream (O(m^2 p)) and one inner product per pair
    (O(m^2)), or for the linear kernel in feature space, when cheaper, O(m p^2) per stream and
    O(m p_a p_b) per pair; memory O(m^2) (or O(p^2)) per stream plus the buffered rows.
    """

    def __init__(self, names: Sequence[str], pairs: Iterable[tuple[str, str]], *,
                 kernel: str = "linear", width: float = 1.0, batch_size: int | None = None):
        check_choice(kernel, KERNELS, "kernel")
        if isinstance(width, bool) or not isinstance(width, Real) or not float(width) > 0:
            raise ArgumentError(f"width: expected a positive number, got {width!r}")
        self.batch_size = None if batch_size is None else check_count(
            batch_size, "batch_size", minimum=MIN_ROWS)
        self.kernel, self.width = kernel, float(width)
        self.names = list(names)
        self.pairs = [tuple(p) for p in pairs]
        unknown = {n for p in self.pairs for n in p} - set(self.names)
        if unknown:
            raise ArgumentError(f"pairs name unknown streams: {', '.join(sorted(unknown))}")
        self._self = dict.fromkeys(self.names, 0.0)
        self._cross = dict.fromkeys(self.pairs, 0.0)
        self._pending: list[dict[str, np.ndarray]] = []
        self._pending_rows = 0
        self.samples = 0
        self.minibatches = 0
        self.features: dict[str, int] = {}

    # ------------------------------------------------------------------ feeding

    def update(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Feed the next rows of every stream (same row count for all, float arrays)."""
        if set(arrays) != set(self.names):
            raise ArgumentError(f"update: expected arrays for {sorted(self.names)}, got "
                                f"{sorted(arrays)}")
        rows = {int(np.shape(a)[0]) for a in arrays.values()}
        if len(rows) != 1:
            raise ArgumentError(f"update: every stream must hold the same rows, got row counts "
                                f"{sorted(rows)}")
        m = rows.pop()
        if m == 0:
            return
        for name, a in arrays.items():
            self.features.setdefault(name, int(np.shape(a)[1]))
        if self.batch_size is None:
            if m >= MIN_ROWS and self._pending_rows >= MIN_ROWS:
                self._flush(self._pending_rows)
            self._pending.append(dict(arrays))
            self._pending_rows += m
            return
        self._pending.append(dict(arrays))
        self._pending_rows += m
        while self._pending_rows >= self.batch_size + MIN_ROWS:
            self._flush(self.batch_size)
        # the leftover rows are views of the arrays just fed: copy them (fewer than
        # batch_size + 4 rows) so those arrays can be freed before the next update
        self._pending = [{n: np.array(a) for n, a in part.items()} for part in self._pending]

    def finish(self) -> None:
        """Process the buffered rows (call once after the last :meth:`update`)."""
        # the buffer never holds 1-3 rows after a minibatch was cut: small tails join the last
        if self._pending_rows:
            if self._pending_rows < MIN_ROWS:
                raise ArgumentError(
                    f"minibatch CKA needs at least {MIN_ROWS} samples, got {self._pending_rows}"
                )
            self._flush(self._pending_rows)

    def _take(self, rows: int) -> dict[str, np.ndarray]:
        parts: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        need = rows
        while need:
            head = self._pending[0]
            m = int(next(iter(head.values())).shape[0])
            if m <= need:
                self._pending.pop(0)
                for n in self.names:
                    parts[n].append(head[n])
                need -= m
            else:
                for n in self.names:
                    parts[n].append(head[n][:need])
                    head[n] = head[n][need:]
                need = 0
        self._pending_rows -= rows
        return {n: np.concatenate(p) if len(p) > 1 else p[0] for n, p in parts.items()}

    def _flush(self, rows: int) -> None:
        batch = {n: np.asarray(a, dtype=np.float64) for n, a in self._take(rows).items()}
        m = rows
        scale = m / (m * (m - 3.0))  # weight m_i times the HSIC_1 normalisation
        widths = {n: a.shape[1] for n, a in batch.items()}
        by_features = (sum(w * w for w in widths.values())
                       + sum(widths[a] * widths[b] for a, b in self.pairs))
        by_gram = m * (sum(widths.values()) + len(self.pairs))
        if self.kernel == "linear" and by_features < by_gram:
            inner = self._features(batch, m)
        else:
            inner = self._grams(batch)
        for n in self.names:
            self._self[n] += scale * inner(n, n)
        for a, b in self.pairs:
            self._cross[(a, b)] += scale * inner(a, b)
        self.samples += m
        self.minibatches += 1

    def _features(self, batch: dict[str, np.ndarray], m: int) -> Any:
        """``<U(K), U(L)>`` of linear kernels in feature space, O(m p^2) (Kornblith et al.'s
        debiased form: ``||X^T Y||^2 - m/(m-2) r_x.r_y + |r_x| |r_y| / ((m-1)(m-2))`` with
        ``r`` the squared row norms of the centred minibatch)."""
        centred = {n: a - a.mean(axis=0) for n, a in batch.items()}
        rows = {n: np.einsum("ij,ij->i", c, c) for n, c in centred.items()}

        def inner(a: str, b: str) -> float:
            xy = float(np.sum((centred[a].T @ centred[b]) ** 2))
            ra, rb = rows[a], rows[b]
            return (xy - m / (m - 2.0) * float(ra @ rb)
                    + float(ra.sum()) * float(rb.sum()) / ((m - 1.0) * (m - 2.0)))

        return inner

    def _grams(self, batch: dict[str, np.ndarray]) -> Any:
        """``<U(K), U(L)>`` from the U-centred Gram matrices, O(m^2 p)."""
        grams = {n: self._ucentred(a) for n, a in batch.items()}

        def inner(a: str, b: str) -> float:
            ga, gb = grams[a], grams[b]
            return 0.0 if ga is None or gb is None else float(np.vdot(ga, gb))

        return inner

    def _ucentred(self, x: np.ndarray) -> np.ndarray | None:
        # no per-minibatch rescaling: it would change the minibatches' relative weights
        if self.kernel == "linear":  # centring changes nothing after U-centring but rounding
            xc = x - x.mean(axis=0)
            k = xc @ xc.T
        else:  # dead units out, so that rounding noise cannot set the bandwidth
            xc = _live(x)[1]
            if not xc.shape[1]:
                return None  # constant in this minibatch: contributes nothing
            k = rbf_gram(xc, self.width)
        return centre_gram(k, unbiased=True, copy=False)

    # ------------------------------------------------------------------ results

    def value(self, a: str, b: str) -> float:
        """CKA of streams ``a`` and ``b`` so far (0.0 when either carried no signal)."""
        key = (a, b) if (a, b) in self._cross else (b, a)
        if key not in self._cross:
            raise ArgumentError(f"the pair ({a!r}, {b!r}) was not requested")
        return _ratio(self._cross[key], self._self[a], self._self[b])


class MinibatchCKA:
    """Streaming minibatch CKA of one pair of representations (Nguyen et al. 2021).

    Parameters
    ----------
    kernel : {"linear", "rbf"}, default "linear"
        The kernel.
    width : float, default 1.0
        RBF bandwidth as a fraction of each minibatch's median pairwise distance.
    batch_size : int, optional
        Re-cut the rows fed into minibatches of this many (see :class:`CKAAccumulator`);
        None: every :meth:`update` is one minibatch.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 8))
    >>> y = np.tanh(x @ rng.normal(size=(8, 16)))
    >>> stream = MinibatchCKA()
    >>> for i in range(0, 1000, 250):
    ...     stream.update(x[i:i + 250], y[i:i + 250])
    >>> r = stream.result()
    >>> r.minibatches, r.samples, round(r.value, 2)
    (4, 1000, 0.74)
    """

    def __init__(self, *, kernel: str = "linear", width: float = 1.0,
                 batch_size: int | None = None) -> None:
        self._acc = CKAAccumulator(("x", "y"), [("x", "y")], kernel=kernel, width=width,
                                   batch_size=batch_size)
        self._finished = False

    def update(self, x: Any, y: Any) -> None:
        """Add a minibatch: ``(rows, features)`` activations of both sides on the same inputs.

        Raises
        ------
        ArgumentError
            Bad input (see :func:`~sparsegraph.metrics.similarity.activations`), different
            row counts or widths from earlier minibatches, or an update after :meth:`result`.
        """
        if self._finished:
            raise ArgumentError("MinibatchCKA: result() was already taken; start a new stream")
        a, b = activations(x, "x"), activations(y, "y")
        if a.shape[0] != b.shape[0]:
            raise ArgumentError(f"x and y must hold the same samples: x has {a.shape[0]} rows, "
                                f"y has {b.shape[0]}")
        for name, arr in (("x", a), ("y", b)):
            width = self._acc.features.get(name)
            if width is not None and width != arr.shape[1]:
                raise ArgumentError(f"{name}: {arr.shape[1]} features, earlier minibatches had "
                                    f"{width}")
        self._acc.update({"x": a, "y": b})

    def result(self) -> CKAResult:
        """The estimate over every minibatch fed (ends the stream).

        Raises
        ------
        ArgumentError
            If fewer than 4 samples were fed.
        """
        if not self._finished:
            self._acc.finish()
            self._finished = True
        acc = self._acc
        if not acc.minibatches:
            raise ArgumentError("MinibatchCKA: no minibatch was fed")
        return CKAResult(acc.value("x", "y"), acc.kernel, True, acc.samples,
                         acc.features["x"], acc.features["y"], acc.minibatches,
                         acc.width if acc.kernel == "rbf" else 1.0)
