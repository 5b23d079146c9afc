"""The layerwise-shuffle sanity check of pruning at initialization (Frankle et al. 2021).

:func:`shuffle_masks` keeps each layer's kept count and draws its positions again uniformly at
random. If a network trained from the shuffled mask is as accurate as one trained from the
original, the method's choice of *which* weights to keep carried no information beyond its
per-layer densities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._args import as_bool_mask, check_masks, check_seed
from ..errors import MaskError
from .sampling import layer_seeds, sample_indices

if TYPE_CHECKING:  # pragma: no cover
    from ..graph.network import Network

__all__ = ["shuffle_masks"]


def shuffle_masks(masks: Mapping[str, Any], *, seed: int = 0,
                  net: Network | None = None) -> dict[str, np.ndarray]:
    """Re-draw the kept positions of every layer uniformly, keeping its count.

    Parameters
    ----------
    masks : mapping of str to array-like
        Masks keyed by layer name (0/1 values: numpy, torch, nested lists; any shape).
    seed : int, default 0
        Layer ``i`` (in the mapping's order, or ``net``'s layer order) draws from
        ``SeedSequence(seed).spawn(len(masks))[i]`` with the sampler of
        :func:`sparsegraph.random_masks`, so the result is the same bytes on every machine.
    net : Network, optional
        Check the masks against it (names and shapes) first; layers without a key are dense
        and so stay dense. The result is then exactly
        ``sg.random_masks(net, sg.quotas(net, "from_mask", masks=masks), seed=seed)``.

    Returns
    -------
    dict of str to ndarray of bool
        Same keys and shapes; each layer has exactly as many True as before, at positions
        chosen uniformly without replacement.

    Raises
    ------
    MaskError
        For a value that is not a 0/1 array, or (with ``net``) an unknown layer or wrong shape.
    ArgumentError
        For a bad seed.

    Notes
    -----
    Expected O(kept) random draws per layer (O(params) for the bool arrays written).

    References
    ----------
    Frankle, Dziugaite, Roy, Carbin. Pruning Neural Networks at Initialization: Why Are We
    Missing the Mark? ICLR 2021.

    Examples
    --------
    >>> import numpy as np
    >>> m = {"fc.weight": np.eye(4, dtype=bool)}
    >>> s = shuffle_masks(m, seed=1)
    >>> int(s["fc.weight"].sum()), s["fc.weight"].shape
    (4, (4, 4))
    >>> bool((shuffle_masks(m, seed=1)["fc.weight"] == s["fc.weight"]).all())
    True
    """
    seed = check_seed(seed)
    if not isinstance(masks, Mapping):
        raise MaskError(f"masks must be a mapping of layer name to array, got "
                        f"{type(masks).__name__}")
    canonical = (check_masks(net, masks) if net is not None
                 else {name: as_bool_mask(value, str(name)) for name, value in masks.items()})
    seqs = layer_seeds(seed, len(canonical))
    out: dict[str, np.ndarray] = {}
    for (name, mask), seq in zip(canonical.items(), seqs, strict=True):
        rng = np.random.Generator(np.random.PCG64(seq))
        kept = int(np.count_nonzero(mask))
        out[name] = sample_indices(mask.size, kept, rng).reshape(mask.shape)
    return out
