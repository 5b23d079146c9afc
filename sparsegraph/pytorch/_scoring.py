"""What every pruner shares: the weights a traced network scores, and exact top-k selection.

Selection keeps the highest scores with ties broken by position (layer order, then the flat
index within the layer; the same set as the first ``k`` of a stable sort of ``-score``), never
by a threshold, so the count is exact.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import MaskError
from ._select import keep_mask

__all__: list[str] = []


def _weights(model: nn.Module, names: list[str]) -> list[torch.Tensor]:
    """The parameters of the traced layers, in network order."""
    try:
        return [model.get_parameter(n) for n in names]
    except AttributeError as exc:
        raise MaskError(f"the model has no parameter for a traced layer: {exc}") from None


def _top_k(flat: np.ndarray, eligible: np.ndarray | None, k: int) -> np.ndarray:
    """Bool mask of the ``k`` highest eligible scores, ties broken by the lowest position.

    The same set as the first ``k`` of a stable sort of ``-score``, found in linear time: the
    k-th largest value ``t`` (:func:`sparsegraph.pytorch._select.threshold`), every score
    above ``t``, then the first of the scores equal to ``t`` by position. NaN ranks below
    every number.
    """
    flat = np.asarray(flat, dtype=np.float64).reshape(-1)
    if eligible is not None:
        idx = np.flatnonzero(eligible)
        keep = np.zeros(flat.size, dtype=bool)
        keep[idx[_top_k(flat[idx], None, k)]] = True
        return keep
    return keep_mask(flat, k)


def _top_global(scores: list[np.ndarray], eligible: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Keep the ``k`` highest eligible scores over all layers (positions in layer order)."""
    flat = np.concatenate([s.ravel() for s in scores]) if scores else np.zeros(0)
    elig = np.concatenate([e.ravel() for e in eligible]) if eligible else np.zeros(0, bool)
    keep = _top_k(flat, elig, k)
    out, start = [], 0
    for s in scores:
        out.append(keep[start:start + s.size].reshape(s.shape))
        start += s.size
    return out


def _top_layer(score: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    return _top_k(score.ravel(), eligible.ravel(), k).reshape(score.shape)
