"""Random masks from layerwise quotas, reproducible from one integer seed.

Every layer keeps exactly its quota's count (:func:`sparsegraph.masks.quotas.quota_counts`), chosen
uniformly without replacement from one child stream of ``numpy.random.SeedSequence(seed)``
(``.spawn(len(net.layers))``, in layer order), so a layer's mask depends only on the seed, its
position, its size and its count, and is the same bytes on every machine.

The sampler
-----------
For ``k`` of ``n`` positions with ``2k <= n`` the mask is the set of the first ``k`` *distinct*
values of the layer's stream ``numpy.random.Generator(PCG64(child)).integers(0, n)``: by
exchangeability of i.i.d. draws a uniformly random ``k``-subset. For ``2k > n`` the ``n - k``
positions to drop are drawn that way instead. Expected O(min(k, n - k)) draws.

:func:`random_masks` computes these streams itself, in numba kernels
(:mod:`sparsegraph.masks._kernels_sampling`), with numpy's exact algorithms: the children's
PCG64 states from ``SeedSequence`` (checked against numpy's own seeding), PCG64's raw words,
and ``integers``' bounded draws (Lemire's multiply-and-reject on 32-bit halves, as numpy does),
so the values and hence the masks are numpy's, byte for byte (``tests/test_sampling_digest.py``
pins them), without numpy's per-object and per-draw overhead: one kernel call draws every layer
into one bool block whose views are the masks, clearing each layer's slice just before its
draws so the scattered writes hit cache. :func:`sample_indices` draws the same sets through
``Generator.integers`` of any generator, in batches of an upper bound on the expected draws.
The sparse form (:class:`SparseMasks`, sorted flat int64 indices) collects the values in a hash
set and sorts them, O(k log k) time and O(k) memory, never touching ``n``; same set.

Granularity ``kernel`` and ``channel`` sample whole ``kh x kw`` kernels or whole output filters
(rows of a Linear weight) the same way, over units instead of weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from numbers import Integral
from typing import Any

import numpy as np

from .._args import check_choice, check_network, check_seed
from ..errors import QuotaError
from ..graph.network import Layer, Network
from ..registry import GRANULARITIES, STRUCTURES
from ._kernels_sampling import (
    draw_masks,
    draw_sorted,
    fill_first_distinct,
    first_distinct_hashed,
    seed_pcg_states,
)
from .quotas import quota_counts
from .quotas import quotas as make_quotas
from .rounding import round_counts

__all__ = [
    "GRANULARITIES",
    "STRUCTURES",
    "SparseMasks",
    "layer_seeds",
    "random_masks",
    "sample_indices",
]

# ---------------------------------------------------------------------------------------------
# The compact form
# ---------------------------------------------------------------------------------------------


class SparseMasks(Mapping):
    """Masks as sorted flat int64 indices of the kept weights, per layer.

    A read-only mapping ``layer name -> ndarray[int64]`` (indices into the flattened weight, C
    order, strictly increasing) with the weight shapes in :attr:`shapes`. Memory is 8 bytes per
    kept weight, so a billion-weight model at density 0.001 takes 8 MB.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.masks.sampling import SparseMasks
    >>> sm = SparseMasks({"w": np.array([0, 5])}, {"w": (2, 3)})
    >>> sm.to_dense()["w"].astype(int).tolist()
    [[1, 0, 0], [0, 0, 1]]
    >>> sm.kept, sm.params
    (2, 6)
    """

    def __init__(self, indices: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]]):
        self._indices = {k: np.asarray(v, dtype=np.int64) for k, v in indices.items()}
        self.shapes = {k: tuple(int(s) for s in shapes[k]) for k in self._indices}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._indices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def kept(self) -> int:
        """Kept weights over all layers."""
        return int(sum(v.size for v in self._indices.values()))

    @property
    def params(self) -> int:
        """Weights over all layers."""
        return int(sum(math.prod(s) for s in self.shapes.values()))

    def counts(self) -> dict[str, int]:
        """Kept weights per layer."""
        return {k: int(v.size) for k, v in self._indices.items()}

    def layer_dense(self, name: str) -> np.ndarray:
        """The bool mask of one layer, of its weight shape."""
        shape = self.shapes[name]
        out = np.zeros(math.prod(shape), dtype=np.bool_)
        out[self._indices[name]] = True
        return out.reshape(shape)

    def to_dense(self) -> dict[str, np.ndarray]:
        """Bool masks of the weight shapes, in layer order."""
        return {name: self.layer_dense(name) for name in self._indices}

    @classmethod
    def from_dense(cls, masks: Mapping[str, Any]) -> SparseMasks:
        """The compact form of bool masks."""
        arrays = {k: np.asarray(v) for k, v in masks.items()}
        return cls({k: np.flatnonzero(v) for k, v in arrays.items()},
                   {k: v.shape for k, v in arrays.items()})

    def __repr__(self) -> str:
        return f"SparseMasks({len(self)} layers, {self.kept:,} of {self.params:,} kept)"


# ---------------------------------------------------------------------------------------------
# The sampler
# ---------------------------------------------------------------------------------------------


def _batch_size(n: int, need: int, k_total: int) -> int:
    """Draws per batch: an integer upper bound on the expected draws plus a margin."""
    free = n - k_total  # positions never chosen, even at the end: success prob >= free / n
    m = -(-need * n // free)
    return m + 2 * math.isqrt(m) + 8


def _draw(n: int, k: int, rng: np.random.Generator, sparse: bool) -> np.ndarray:
    """The first ``k`` distinct values of ``rng.integers(0, n)`` (``1 <= k``, ``2k <= n``), in
    batches of :func:`_batch_size`: sorted int64 when ``sparse``, else a flat bool mask."""
    if sparse:
        table = np.full(1 << (2 * k - 1).bit_length(), -1, dtype=np.int64)
        out = np.empty(k, dtype=np.int64)
        found = 0
        while found < k:
            batch = rng.integers(0, n, size=_batch_size(n, k - found, k), dtype=np.int64)
            found = int(first_distinct_hashed(batch, table, out, np.int64(found), np.int64(k)))
        out.sort()
        return out
    mask = np.zeros(n, dtype=np.bool_)
    found = 0
    while found < k:
        batch = rng.integers(0, n, size=_batch_size(n, k - found, k), dtype=np.int64)
        found += int(fill_first_distinct(batch, mask, np.int64(k - found)))
    return mask


def sample_indices(n: int, k: int, rng: np.random.Generator, *, sparse: bool = False
                   ) -> np.ndarray:
    """``k`` of ``n`` positions, uniformly without replacement.

    Parameters
    ----------
    n : int
        Number of positions.
    k : int
        How many to choose, ``0 <= k <= n``.
    rng : numpy.random.Generator
        The random stream (consumed).
    sparse : bool, default False
        Return sorted int64 indices instead of a bool mask of length ``n``. Both forms hold the
        same set for the same stream.

    Returns
    -------
    ndarray
        Bool mask of length ``n`` with ``k`` True, or ``k`` sorted int64 indices.

    Notes
    -----
    The set is the first ``min(k, n - k)`` distinct values of ``rng.integers(0, n)`` (its
    complement when ``2k > n``), drawn in batches as the module docstring says, so ``rng``
    advances by whole batches. Expected O(min(k, n - k)) draws; O(n) memory for the bool
    form, O(k) memory (a hash set) and O(k log k) time for the sparse form when ``2k <= n``.
    :func:`random_masks` draws the same sets from its per-layer streams without numpy's
    per-draw overhead (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.masks.sampling import sample_indices
    >>> a = sample_indices(10**9, 3, np.random.default_rng(0), sparse=True)
    >>> a.size, bool(np.all(np.diff(a) > 0))
    (3, True)
    """
    if 2 * k <= n:
        if k:
            return _draw(n, k, rng, sparse)
        return np.empty(0, dtype=np.int64) if sparse else np.zeros(n, dtype=np.bool_)
    if k == n:
        return np.arange(n, dtype=np.int64) if sparse else np.ones(n, dtype=np.bool_)
    keep = np.logical_not(_draw(n, n - k, rng, sparse=False))
    return np.flatnonzero(keep) if sparse else keep


def _root_seed(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        # a fresh copy: spawning from the caller's object would advance it between calls
        return np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key,
                                      pool_size=seed.pool_size)
    return np.random.SeedSequence(check_seed(seed))


def layer_seeds(seed: int | np.random.SeedSequence, n_layers: int) -> list[np.random.SeedSequence]:
    """The per-layer child streams of ``seed``: ``SeedSequence(seed).spawn(n_layers)``.

    Examples
    --------
    >>> from sparsegraph.masks.sampling import layer_seeds
    >>> [s.spawn_key for s in layer_seeds(7, 2)]
    [(0,), (1,)]
    """
    return _root_seed(seed).spawn(n_layers)


def _words32(x: Any) -> list[int] | None:
    """numpy's ``_coerce_to_uint32_array`` for an int or a sequence of ints (None otherwise)."""
    if isinstance(x, Integral | np.integer) and not isinstance(x, bool):
        x = int(x)
        if x < 0:
            return None
        words = [x & 0xFFFFFFFF]
        while x > 0xFFFFFFFF:
            x >>= 32
            words.append(x & 0xFFFFFFFF)
        return words
    if isinstance(x, Iterable) and not isinstance(x, str | bytes):
        out: list[int] = []
        for v in x:
            w = _words32(v)
            if w is None:
                return None
            out += w
        return out
    return None


def _pcg_row(seq: np.random.SeedSequence) -> list[int]:
    st = np.random.PCG64(seq).state["state"]
    m = (1 << 64) - 1
    return [st["state"] >> 64, st["state"] & m, st["inc"] >> 64, st["inc"] & m]


def _layer_states(seed: int | np.random.SeedSequence, n_layers: int) -> np.ndarray:
    """The PCG64 states of :func:`layer_seeds`' children, computed in one kernel.

    Row ``i`` is ``(state_hi, state_lo, inc_hi, inc_lo)`` of
    ``np.random.PCG64(layer_seeds(seed, n_layers)[i])``: the same streams without building
    ``n_layers`` SeedSequence and PCG64 objects. The first and last rows are checked against
    numpy's own seeding (numpy's stream policy keeps both fixed; were they ever to differ, or
    for an entropy that is not an int or ints, every row is taken from numpy instead).
    """
    root = _root_seed(seed)
    out = np.empty((n_layers, 4), dtype=np.uint64)
    if n_layers == 0:
        return out
    entropy, prefix = _words32(root.entropy), _words32(root.spawn_key)
    if entropy is not None and prefix is not None:
        seed_pcg_states(np.array(entropy, dtype=np.uint64), np.array(prefix, dtype=np.uint64),
                        np.int64(root.pool_size), out)
        if all(out[i].tolist() == _pcg_row(np.random.SeedSequence(
                root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size))
               for i in {0, n_layers - 1}):
            return out
    for i, seq in enumerate(root.spawn(n_layers)):
        out[i] = _pcg_row(seq)
    return out


def _unit_size(layer: Layer, granularity: str) -> int:
    if granularity == "weight":
        return 1
    if granularity == "kernel":
        return int(math.prod(layer.shape[2:])) if len(layer.shape) > 2 else 1
    return layer.params // layer.shape[0]  # channel: one output filter / row


def _unit_counts(net: Network, counts: Mapping[str, int], granularity: str) -> dict[str, int]:
    """Whole units per layer: each layer's density applied to its units, rounded by
    largest remainder over layers (so each layer is within one unit of its quota)."""
    if granularity == "weight":
        return dict(counts)
    sizes = np.array([_unit_size(layer, granularity) for layer in net.layers], dtype=np.int64)
    units = np.array([layer.params for layer in net.layers], dtype=np.int64) // sizes
    dens = np.array([counts[layer.name] / layer.params for layer in net.layers])
    total = int(round(float((dens * units).sum())))
    got = round_counts(units, dens, total)
    return {layer.name: int(c) for layer, c in zip(net.layers, got, strict=True)}


def _expand(units: np.ndarray, size: int) -> np.ndarray:
    """Sorted unit indices -> sorted flat weight indices of their contiguous blocks."""
    if size == 1:
        return units
    return (units[:, None] * size + np.arange(size, dtype=np.int64)[None, :]).ravel()


def _sparse_layer(n: int, k: int, state: np.ndarray) -> np.ndarray:
    """Sorted kept units of one layer's stream: the set :func:`draw_masks` keeps. A hash set
    when the layer is sparse; a bool mask when it is no larger than that set would be."""
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if 16 * k < n:
        table = np.full(1 << (2 * k - 1).bit_length(), -1, dtype=np.int64)
        out = np.empty(k, dtype=np.int64)
        draw_sorted(state, np.int64(n), np.int64(k), table, out)
        out.sort()
        return out
    mask = np.empty(n, dtype=np.bool_)  # n <= 16 k bytes: O(k)
    one = np.zeros(1, dtype=np.int64)
    draw_masks(mask, one, one + n, one + 1, one + k, state[None, :])
    return np.flatnonzero(mask)


def _random_layers(net: Network, counts: Mapping[str, int], seed: Any, granularity: str,
                   sparse: bool) -> dict[str, np.ndarray]:
    """structure="random": each layer's stream is ``Generator(PCG64(child)).integers(0, units)``
    with ``child = layer_seeds(seed, L)[i]``, computed by the kernels from its PCG64 state."""
    states = _layer_states(seed, len(net.layers))
    params = [math.prod(layer.shape) for layer in net.layers]  # == layer.params, cheaper
    sizes = [_unit_size(layer, granularity) for layer in net.layers]
    units = [p // s for p, s in zip(params, sizes, strict=True)]
    kept = [counts[layer.name] for layer in net.layers]
    if sparse:
        return {layer.name: _expand(_sparse_layer(n, k, states[i]), size)
                for i, (layer, n, k, size) in enumerate(zip(net.layers, units, kept, sizes,
                                                            strict=True))}
    # one block for all layers: one allocation the OS backs with fresh (huge) pages, instead of
    # one per layer at the allocator's mercy; the masks are views of it
    offsets = np.zeros(len(params) + 1, dtype=np.int64)
    np.cumsum(params, out=offsets[1:])
    block = np.empty(int(offsets[-1]), dtype=np.bool_)
    draw_masks(block, offsets[:-1], np.array(units, dtype=np.int64),
               np.array(sizes, dtype=np.int64), np.array(kept, dtype=np.int64), states)
    return {layer.name: block[offsets[i]:offsets[i + 1]].reshape(layer.shape)
            for i, layer in enumerate(net.layers)}


def _resolve_counts(net: Network, quotas: Any, density: float | None,
                    quota_opts: Mapping[str, Any]) -> dict[str, int]:
    if isinstance(quotas, str):
        if density is None:
            raise QuotaError(f"random_masks with scheme {quotas!r} needs density=")
        return quota_counts(net, make_quotas(net, quotas, density, **quota_opts))
    if isinstance(quotas, Mapping):
        if density is not None or quota_opts:
            raise QuotaError(
                "random_masks: density= and quota options apply to a scheme name; a quota "
                "mapping already fixes the layer densities (build it with sg.quotas)"
            )
        return quota_counts(net, quotas)
    raise QuotaError(f"quotas: expected a mapping from sg.quotas or a scheme name, got "
                     f"{type(quotas).__name__}")


def random_masks(
    net: Network,
    quotas: Mapping[str, float] | str,
    *,
    density: float | None = None,
    seed: int | np.random.SeedSequence = 0,
    granularity: str = "weight",
    structure: str = "random",
    effective: bool = False,
    sparse: bool = False,
    **quota_opts: Any,
) -> dict[str, np.ndarray] | SparseMasks:
    """Random masks with exactly the quota's kept count per layer.

    Parameters
    ----------
    net : Network
        The network.
    quotas : mapping of str to float, or str
        Layer densities from :func:`sparsegraph.quotas` (layers without a key are dense), or a
        scheme name of :data:`~sparsegraph.masks.quotas.QUOTA_SCHEMES` (then ``density`` is required
        and ``quota_opts`` go to :func:`sparsegraph.quotas`).
    density : float, optional
        Overall density for a scheme name; with ``effective=True`` the target *effective*
        density.
    seed : int or numpy.random.SeedSequence, default 0
        Layer ``i`` draws from ``SeedSequence(seed).spawn(len(net.layers))[i]``.
    granularity : {"weight", "kernel", "channel"}, default "weight"
        Sample single weights, whole ``kh x kw`` kernels, or whole output filters (rows of a
        Linear). Quotas are in weights; a layer keeps its density times its number of units,
        rounded by largest remainder over the layers (each layer within one unit of its quota).
    structure : {"random", "regular"}, default "random"
        ``"regular"``: per-layer biregular graphs
        (:func:`sparsegraph.masks.regular.regular_layer_mask`),
        weight granularity only.
    effective : bool, default False
        Reach the target effective density ``density`` (scheme name required); see
        :func:`~sparsegraph.masks.effective_target.random_masks_effective`. The result then
        has an ``info`` attribute (:class:`~sparsegraph.masks.effective_target.EffectiveSearch`)
        with both densities.
    sparse : bool, default False
        Return :class:`SparseMasks` (sorted flat int64 indices per layer) instead of bool
        arrays; ``.to_dense()`` gives exactly the bool arrays of ``sparse=False``.
    **quota_opts
        ``dense``, ``dense_in_budget``, ``erk_power_scale``, ``masks`` for a scheme name.

    Returns
    -------
    dict of str to ndarray of bool, or SparseMasks
        Every layer of ``net`` in order.

    Raises
    ------
    QuotaError
        For a bad density, scheme or option (see :func:`sparsegraph.quotas`), a mapping given
        with ``density``.
    ArgumentError
        If ``net`` is not a Network (:func:`sparsegraph._args.check_network`), for an unknown
        granularity or structure, or a seed that is not a non-negative integer or a
        ``SeedSequence``.

    Notes
    -----
    Expected O(kept) random draws per layer; the dense form also writes its O(params) bool
    arrays, the sparse form needs O(kept log kept) time and O(kept) memory. The bool masks of
    ``structure="random"`` are C-contiguous, writeable views of one block (one allocation for
    all layers), so the block lives as long as any of them.

    Examples
    --------
    >>> from sparsegraph.pytorch.models import build_model
    >>> from sparsegraph.masks.quotas import quotas
    >>> from sparsegraph.masks.sampling import random_masks
    >>> from sparsegraph.graph.trace import trace
    >>> net = trace(*build_model("lenet5"))
    >>> masks = random_masks(net, quotas(net, "erk", density=0.1), seed=0)
    >>> sum(int(m.sum()) for m in masks.values()) == round(0.1 * net.params)
    True
    >>> sm = random_masks(net, "erk", density=0.1, seed=0, sparse=True)
    >>> all((sm.to_dense()[k] == masks[k]).all() for k in masks)
    True
    """
    net = check_network(net)
    check_choice(granularity, GRANULARITIES, "granularity")
    check_choice(structure, STRUCTURES, "structure")
    if structure == "regular" and granularity != "weight":
        raise QuotaError("structure='regular' draws single weights; use granularity='weight'")
    if effective:
        if not isinstance(quotas, str):
            raise QuotaError(
                "effective=True needs a scheme name (the quota is re-derived at each overall "
                "density), not a fixed mapping"
            )
        if density is None:
            raise QuotaError("effective=True needs density=, the target effective density")
        if structure != "random":
            raise QuotaError("effective=True supports structure='random' only")
        from .effective_target import _MasksWithInfo, random_masks_effective

        masks, info = random_masks_effective(net, quotas, density, seed=seed,
                                             granularity=granularity, **quota_opts)
        if sparse:
            out = SparseMasks.from_dense(masks)
            out.info = info  # type: ignore[attr-defined]
            return out
        result = _MasksWithInfo(masks)
        result.info = info
        return result
    counts = _resolve_counts(net, quotas, density, quota_opts)
    counts = _unit_counts(net, counts, granularity)
    if structure == "random":
        out_masks = _random_layers(net, counts, seed, granularity, sparse)
    else:
        from .regular import regular_layer_mask

        out_masks = {}
        for layer, seq in zip(net.layers, layer_seeds(seed, len(net.layers)), strict=True):
            mask = regular_layer_mask(layer, counts[layer.name], seq)
            out_masks[layer.name] = np.flatnonzero(mask) if sparse else mask
    if sparse:
        return SparseMasks(out_masks, {layer.name: layer.shape for layer in net.layers})
    return out_masks


def __getattr__(name: str) -> Any:
    # the effective-density search lives in its own module, which builds on this one
    if name in ("EffectiveSearch", "random_masks_effective"):
        from . import effective_target

        return getattr(effective_target, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
