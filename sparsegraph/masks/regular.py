"""Near-Ramanujan layer masks: random (nearly) biregular bipartite graphs.

A random biregular bipartite graph is close to Ramanujan with high probability (Brito, Dumitriu
and Harris, *Spectral gap in random bipartite biregular graphs and applications*, 2022): its
second singular value is about ``sqrt(d_l - 1) + sqrt(d_r - 1)``, while a uniformly random
mask of the same density has spread-out degrees and a larger ``mu_hat``.
:func:`regular_layer_mask` draws such a graph in the layer's unrolled convention (left =
``fan_in`` unrolled inputs, right = output units, see :mod:`sparsegraph.metrics.spectral`);
the sampling
helper uses it for ``sg.random_masks(..., structure="regular")``.

Construction (configuration model with repair): the ``count`` edges get output degrees
``count // out`` (``+ 1`` for ``count % out`` outputs chosen at random) and input degrees
``count // fan_in`` (``+ 1`` for ``count % fan_in`` random inputs); input stubs are shuffled and
paired with the output stubs; each repeated edge is then replaced by a degree-preserving swap
with a random other edge (``(o, i), (o2, i2) -> (o, i2), (o2, i)``), so the result is simple
and the degrees are exactly the targets. Above half density the complement is drawn instead
(it has the complementary, equally balanced degrees), so repairs stay rare. Cost
``O(count + params / 8)``: a numba kernel over the stubs and the bool mask.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import QuotaError
from ..graph.network import Layer
from ._kernels_sampling import pair_stubs, repair_stubs

__all__ = ["regular_layer_mask", "balanced_degrees"]


def balanced_degrees(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` non-negative int64 degrees summing to ``total``, each ``total // n`` or one more
    (the extra ones at random positions).

    Examples
    --------
    >>> import numpy as np
    >>> d = balanced_degrees(10, 4, np.random.default_rng(0))
    >>> int(d.sum()), sorted(d.tolist())
    (10, [2, 2, 3, 3])
    """
    deg = np.full(n, total // n, dtype=np.int64)
    extra = total % n
    if extra:
        deg[rng.choice(n, size=extra, replace=False)] += 1
    return deg


def _draw(adj: np.ndarray, count: int, rng: np.random.Generator, name: str) -> None:
    out, fan_in = adj.shape
    if count == 0:
        return
    deg_r = balanced_degrees(count, out, rng)
    deg_l = balanced_degrees(count, fan_in, rng)
    stub_out = np.repeat(np.arange(out, dtype=np.int64), deg_r)
    stub_in = rng.permutation(np.repeat(np.arange(fan_in, dtype=np.int64), deg_l))
    is_dup = np.zeros(count, dtype=np.bool_)
    n_dup = int(pair_stubs(adj, stub_out, stub_in, is_dup))
    if n_dup == 0:
        return
    dup_pos = np.flatnonzero(is_dup).astype(np.int64)
    pos, used = 0, 0
    budget = 1000 * count + 1_000_000
    while pos < n_dup:
        draws = rng.integers(0, count, size=max(4096, 32 * (n_dup - pos)), dtype=np.int64)
        pos, t = repair_stubs(adj, stub_out, stub_in, is_dup, dup_pos, draws, pos)
        used += int(t)
        if used > budget:  # pragma: no cover - not seen for balanced degrees at <= 1/2 density
            raise QuotaError(
                f"layer {name!r}: could not draw a simple biregular graph with {count} edges "
                f"on {fan_in} x {out} nodes"
            )


def regular_layer_mask(
    layer: Layer, count: int, seed_sequence: np.random.SeedSequence
) -> np.ndarray:
    """A random mask with ``count`` kept weights whose unrolled bipartite graph is biregular.

    Parameters
    ----------
    layer : Layer
        The prunable layer (its ``shape``, ``out_channels`` and ``fan_in``).
    count : int
        Number of weights to keep, ``0 <= count <= layer.params``.
    seed_sequence : numpy.random.SeedSequence
        The layer's random stream (the sampling helper spawns one child per layer).

    Returns
    -------
    ndarray of bool
        Of the layer's weight shape, exactly ``count`` True. Every output unit keeps
        ``count // out`` or ``count // out + 1`` weights (exactly ``count / out`` when it
        divides), every unrolled input ``count // fan_in`` or one more.

    Raises
    ------
    QuotaError
        If ``count`` is not an integer in ``[0, layer.params]``.
    TypeError
        If ``seed_sequence`` is not a ``numpy.random.SeedSequence``.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer
    >>> conv = Layer("c.weight", "c", "conv", (8, 4, 3, 3), 4, 8)
    >>> m = regular_layer_mask(conv, 72, np.random.SeedSequence(0))
    >>> int(m.sum()), sorted(set(m.reshape(8, -1).sum(1).tolist()))
    (72, [9])
    >>> sorted(set(m.reshape(8, -1).sum(0).tolist()))
    [2]
    """
    if isinstance(count, bool) or not isinstance(count, numbers.Integral):
        raise QuotaError(f"layer {layer.name!r}: count must be an integer, got {count!r}")
    count = int(count)
    params = layer.params
    if not 0 <= count <= params:
        raise QuotaError(
            f"layer {layer.name!r}: count must be in [0, {params}] (the layer's weights), "
            f"got {count}"
        )
    if not isinstance(seed_sequence, np.random.SeedSequence):
        raise TypeError(
            f"seed_sequence: expected numpy.random.SeedSequence, got {type(seed_sequence).__name__}"
        )
    rng = np.random.default_rng(seed_sequence)
    out, fan_in = layer.out_channels, params // layer.out_channels
    complement = count > params // 2
    adj = np.zeros((out, fan_in), dtype=np.bool_)
    _draw(adj, params - count if complement else count, rng, layer.name)
    if complement:
        np.logical_not(adj, out=adj)
    return adj.reshape(layer.shape)
