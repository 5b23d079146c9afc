"""Spectral quality of sparse layer graphs: Ramanujan bounds, IMDB and NaRC.

Each prunable layer is a bipartite graph in the convention of Hoang et al., *Revisiting Pruning at
Initialization through the Lens of Ramanujan Graph* (ICLR 2023): the **left** nodes are the
layer's inputs unrolled over the kernel, the **right** nodes its outputs, and every kept weight
is an edge. For ``nn.Linear`` the left side is the ``in`` features; for ``nn.Conv2d`` it is the
weight tensor's own ``in_channels // groups * kh * kw`` dimension (:attr:`Layer.fan_in`). For a
grouped or depthwise convolution this means that the left node ``j`` stands for position ``j``
of every group's input slice: the graph is the weight tensor read as a ``(out, fan_in)`` 0/1
matrix, exactly as the paper's code reads it (the groups are *not* unfolded into a block-diagonal
graph, which would only repeat the per-group blocks side by side).

Definitions (all on the unweighted 0/1 graph, in float64):

- zero-degree nodes are dropped; ``n_left``, ``n_right`` count the rest, ``E`` is the edge count,
  the mean degrees are ``d_l = E / n_left`` and ``d_r = E / n_right``;
- **gate**: a layer with ``d_l < 3`` or ``d_r < 3`` (or no edge) has no scores (its record says
  why in ``reason`` and every score is ``None``). The gate is about the graph's sparsity, not its
  connectivity: the Ramanujan bounds ``sqrt(d - 1)`` are meaningful for mean degrees of 3 and
  more (the paper scores only those), so a thin layer whose every kept weight is effective is
  still unscored; a layer with no edge at all has collapsed;
- ``lambda1`` and ``mu_hat`` are the two largest singular values of the biadjacency matrix (the
  largest and the largest non-trivial eigenvalue of the bipartite adjacency, whose spectrum is
  symmetric); a disjoint union of two copies of one graph has ``mu_hat == lambda1``;
- ``delta_s = 2 sqrt(lambda1 - 1) - mu_hat`` with bound ``2 sqrt(lambda1 - 1)``, and
  ``delta_r = sqrt(d_l - 1) + sqrt(d_r - 1) - mu_hat`` with bound ``sqrt(d_l - 1) + sqrt(d_r - 1)``;
  the ``_norm`` fields are gap / bound; ``expansion_ratio = n_right / n_left``;
- **IMDB** (iterative mean difference of bound): left nodes are grouped by their degree in the
  full layer; each group of at least 3 left nodes of one non-zero degree ``d``, with all right
  nodes (right nodes left isolated are dropped), is a ``d``-left-regular subgraph and is scored
  like a layer (same gate). ``imdb`` is the mean of ``delta_r / bound_r`` over the subgraphs that
  have scores, ``imdb_delta_r`` and ``imdb_delta_s`` the means of the raw gaps,
  ``imdb_subgraphs`` the number of groups and ``imdb_scored`` how many had scores; when IMDB has
  no value, ``imdb_reason`` says why (not computed, layer unscored, no group of 3 inputs of one
  degree, as with small fan-ins whose inputs all differ in degree, or no group passing the
  gate);
- **NaRC** (normalised random coefficient, from the bipartite expander-mixing bound):
  ``((mu_hat**2 / 4 + 1) * sqrt(n_left * n_right) - |c * E - d_l / dim_right * n_left * n_right|)
  / (dim_left * dim_right)`` with ``dim_left = fan_in`` and ``dim_right = out`` the layer's full
  sizes. The authors' published code counts every edge twice (it sums a symmetric adjacency), so
  its numbers were made with ``c = 2``: that is ``narc``, so results compare with the paper.
  ``narc_single_edge`` uses ``c = 1``, where the second term is ``E * (1 - n_right / dim_right)``
  (zero when no output is isolated), so it is the mathematically intended value. A value ``<= 0``
  means the graph is indistinguishable from a random one at its density;
- ``weighted_gap`` (only with ``weights=``): ``sigma1 - sigma2`` of ``|W * M|`` with isolated
  nodes removed, the weighted spectral gap of the authors' follow-up work (same gate).

Network summaries are the plain mean over the layers that have a value (the paper's aggregation)
and the mean weighted by the layers' parameter counts.

Numerics: for the layer metrics and IMDB, the two largest singular values of a 0/1 (sub)graph
come from Lanczos on the Gram operator ``B B^T`` of its smaller side (numba kernels in
:mod:`sparsegraph.metrics.singular`, :mod:`sparsegraph.metrics._kernels_lanczos`): full
reorthogonalisation, a fixed pseudo-random start, stopped when both Ritz residuals are at most
``1e-10 * sigma1**2`` (estimates from the tridiagonal matrix, then checked on the Ritz vectors
themselves); the Gram matrix is formed densely only where that is cheaper than two sparse
products per step. The values are refined as ``||B^T x||`` for the unit Ritz vectors ``x``,
which is accurate to machine precision even for ``mu_hat`` near 0 (where ``sqrt`` of a Gram
eigenvalue would only be good to ``sqrt(eps)``). A connected graph has a simple top value
(Perron-Frobenius), so Lanczos cannot miss a repeated one; disconnected graphs are split into
their components, each solved alone, and anything that does not converge falls back to a dense
``eigh`` of the Gram matrix. All of a layer's IMDB subgraphs are solved in one kernel call.
Complete bipartite graphs are recognised and given their exact spectrum ``(sqrt(n_left *
n_right), 0)``. The public :func:`top_singular_values` (also used for ``weighted_gap``) keeps
the dense Gram ``eigh`` / ``eigsh`` path. No dense eigendecomposition of the full ``(n_left +
n_right)``-square adjacency is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._args import check_masks, to_finite
from ..errors import MaskError
from ..graph.bipartite import _layer_mask2d, channel_graph, unrolled_graph
from ..graph.network import Layer, Network
from ._kernels_spectral import group_right_counts
from .singular import (
    _DENSE_ELEMS_MAX,
    DENSE_SIDE_MAX,
    _left_csr,
    _pack,
    _top2_groups,
    top_singular_values,
)
from .spectral_report import (
    IMDB_REASONS,
    SUMMARY_FIELDS,
    LayerSpectrum,
    SpectralReport,
    summaries,
)

__all__ = [
    "DENSE_SIDE_MAX",
    "IMDB_REASONS",
    "LayerSpectrum",
    "SpectralReport",
    "SUMMARY_FIELDS",
    "channel_graph",
    "layer_spectrum",
    "spectral",
    "top_singular_values",
    "unrolled_graph",
]

#: Minimum mean degree (left and right) for a graph to be scored (the paper's gate).
MIN_DEGREE = 3.0


# --------------------------------------------------------------------------------------------
# per-layer records


def _gate(n_left: int, n_right: int, edges: int) -> str | None:
    if edges == 0:
        return "no kept weight: an empty layer graph (the layer has collapsed)"
    dl, dr = edges / n_left, edges / n_right
    if dl < MIN_DEGREE or dr < MIN_DEGREE:
        return (
            f"mean degree below {MIN_DEGREE:g} (left {dl:.3g}, right {dr:.3g}): too sparse for "
            "the Ramanujan bounds, which are scored from mean degree 3 on both sides"
        )
    return None


def _gaps(lam1: float, mu: float, dl: float, dr: float) -> tuple[float, float, float, float]:
    bound_s = 2.0 * math.sqrt(max(lam1 - 1.0, 0.0))
    bound_r = math.sqrt(dl - 1.0) + math.sqrt(dr - 1.0)
    return bound_s, bound_s - mu, bound_r, bound_r - mu


def _imdb(
    lp: np.ndarray, li: np.ndarray, n_right_total: int, deg_l: np.ndarray
) -> tuple[float | None, float | None, float | None, int, int]:
    """IMDB over the left-degree groups of a layer graph given by its left CSR."""
    degrees, counts = np.unique(deg_l, return_counts=True)
    keep = (degrees > 0) & (counts >= 3)
    groups_d = degrees[keep]
    order = np.argsort(deg_l, kind="stable")
    starts = np.searchsorted(deg_l[order], groups_d)
    sizes = counts[keep]
    n_groups = int(groups_d.size)
    groups = [order[st : st + k] for st, k in zip(starts.tolist(), sizes.tolist(), strict=True)]
    members, offsets = _pack(groups)
    n_rights = np.zeros(n_groups, dtype=np.int64)
    if n_groups:
        group_right_counts(lp, li, n_right_total, members, offsets, n_rights)
    todo: list[np.ndarray] = []
    meta: list[tuple[float, float]] = []
    closed: list[tuple[float, float, float, float]] = []  # (lam1, mu, dl, dr) known exactly
    for d, k, n_r, cols in zip(groups_d.tolist(), sizes.tolist(), n_rights.tolist(), groups,
                               strict=True):
        edges = k * d
        if _gate(k, n_r, edges) is not None:
            continue
        dl, dr = float(d), edges / n_r
        if d == n_r:  # complete bipartite
            closed.append((math.sqrt(k * n_r), 0.0, dl, dr))
            continue
        todo.append(cols)
        meta.append((dl, dr))
    vals = _top2_groups(lp, li, n_right_total, todo)
    scored = [(s1, s2, dl, dr) for (s1, s2), (dl, dr) in zip(vals, meta, strict=True)] + closed
    if not scored:
        return None, None, None, n_groups, 0
    norm_r, raw_r, raw_s = [], [], []
    for lam1, mu, dl, dr in scored:
        _, ds, bound_r, dr_gap = _gaps(lam1, mu, dl, dr)
        norm_r.append(dr_gap / bound_r)
        raw_r.append(dr_gap)
        raw_s.append(ds)
    return (float(np.mean(norm_r)), float(np.mean(raw_r)), float(np.mean(raw_s)), n_groups,
            len(scored))


def layer_spectrum(
    layer: Layer, mask: Any, *, weight: Any = None, imdb: bool = True
) -> LayerSpectrum:
    """Spectral metrics of one layer's bipartite graph (see the module docstring).

    Parameters
    ----------
    layer : Layer
        The prunable layer.
    mask : array-like of bool
        Its mask, of the weight's shape.
    weight : array-like, optional
        The layer's weights (same shape) for ``weighted_gap``.
    imdb : bool, default True
        Compute IMDB (the most expensive part).

    Returns
    -------
    LayerSpectrum

    Raises
    ------
    MaskError
        If the mask or the weight does not have the layer's shape, the mask is not 0/1, or the
        weight is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer
    >>> layer = Layer("fc.weight", "fc", "linear", (4, 6), 6, 4)
    >>> rec = layer_spectrum(layer, np.ones((4, 6), bool))     # K_{6,4}
    >>> round(rec.lambda1 ** 2, 6), rec.mu_hat, rec.mean_degree_left, rec.mean_degree_right
    (24.0, 0.0, 4.0, 6.0)
    >>> layer_spectrum(layer, np.eye(4, 6, dtype=bool)).reason  # doctest: +ELLIPSIS
    'mean degree below 3 (left 1, right 1): too sparse for the Ramanujan bounds, ...'
    """
    shape = getattr(mask, "shape", None)  # checked before any conversion or copy
    if shape is not None and tuple(shape) != tuple(layer.shape):
        raise MaskError(
            f"mask {layer.name!r}: expected shape {list(layer.shape)}, got {list(shape)}"
        )
    # the one door: the kernels below read the mask as 8-byte words and need bytes 0/1
    m2 = _layer_mask2d(layer, mask)
    dim_right, dim_left = m2.shape
    lp, li, deg_r, deg_l = _left_csr(m2)
    edges = int(li.size)
    n_left, n_right = int(np.count_nonzero(deg_l)), int(np.count_nonzero(deg_r))
    base: dict[str, Any] = dict(
        name=layer.name, shape=tuple(layer.shape), params=layer.params, kept=edges,
        dim_left=dim_left, dim_right=dim_right, n_left=n_left, n_right=n_right, edges=edges,
        mean_degree_left=edges / n_left if n_left else None,
        mean_degree_right=edges / n_right if n_right else None,
        expansion_ratio=n_right / n_left if n_left else None,
    )
    wmat = None
    if weight is not None:
        wmat = np.abs(to_finite(weight, f"weights {layer.name!r}"))
        if wmat.shape != layer.shape:
            raise MaskError(
                f"weights {layer.name!r}: expected shape {list(layer.shape)}, "
                f"got {list(wmat.shape)}"
            )
    reason = _gate(n_left, n_right, edges)
    if reason is not None:
        return LayerSpectrum(**base, scored=False, reason=reason,
                             imdb_reason=IMDB_REASONS["unscored"][1])
    dl, dr = edges / n_left, edges / n_right
    if edges == n_left * n_right:
        lam1, mu = math.sqrt(n_left * n_right), 0.0
    else:
        ((lam1, mu),) = _top2_groups(lp, li, dim_right, [np.flatnonzero(deg_l)])
    bound_s, delta_s, bound_r, delta_r = _gaps(lam1, mu, dl, dr)
    root = math.sqrt(n_left * n_right)
    term = (mu * mu / 4.0 + 1.0) * root
    expect = dl / dim_right * n_left * n_right
    scale = float(dim_left * dim_right)
    narc2 = (term - abs(2 * edges - expect)) / scale
    narc1 = (term - abs(edges - expect)) / scale
    rec: dict[str, Any] = dict(
        lambda1=lam1, mu_hat=mu, bound_s=bound_s, delta_s=delta_s,
        delta_s_norm=delta_s / bound_s if bound_s > 0 else None,
        bound_r=bound_r, delta_r=delta_r, delta_r_norm=delta_r / bound_r,
        narc=narc2, narc_single_edge=narc1,
    )
    if imdb:
        im, im_r, im_s, n_sub, n_scored = _imdb(lp, li, dim_right, deg_l)
        rec.update(imdb=im, imdb_delta_r=im_r, imdb_delta_s=im_s, imdb_subgraphs=n_sub,
                   imdb_scored=n_scored)
        if im is None:
            rec["imdb_reason"] = IMDB_REASONS["no_groups" if n_sub == 0 else "none_scored"][1]
    else:
        rec["imdb_reason"] = IMDB_REASONS["off"][1]
    if wmat is not None:
        wm = wmat.reshape(dim_right, -1) * m2
        s1, s2 = top_singular_values(
            sp.csr_array(wm) if wm.size > _DENSE_ELEMS_MAX else wm
        )
        rec["weighted_gap"] = s1 - s2
    return LayerSpectrum(**base, scored=True, reason=None, **rec)


# --------------------------------------------------------------------------------------------
# the network report


def spectral(
    net: Network,
    masks: Mapping[str, Any],
    *,
    weights: Mapping[str, Any] | None = None,
    progress: bool = False,
    imdb: bool = True,
) -> SpectralReport:
    """Ramanujan spectral metrics of every prunable layer of a masked network.

    Parameters
    ----------
    net : Network
        The traced network.
    masks : mapping of str to array-like of bool
        Masks keyed by layer name; layers without a key are dense.
    weights : nn.Module or mapping of str to array-like, optional
        The model itself, or weights keyed by layer name (numpy arrays or torch tensors, e.g.
        ``dict(model.named_parameters())``); enables ``weighted_gap`` for the layers present.
    progress : bool, default False
        Show a progress bar (rich, on stderr).
    imdb : bool, default True
        Compute IMDB (the most expensive metric).

    Returns
    -------
    SpectralReport

    Raises
    ------
    MaskError
        If a mask or weight does not fit its layer, a mask is not 0/1 or a weight not finite.
    ArgumentError
        If ``net`` is not a Network.

    Notes
    -----
    Cost per layer: one pass over the mask (degrees and the graph's CSR), and Lanczos on the
    Gram operator of the smaller side (a few dozen steps, each two sparse products or one
    dense Gram product, plus reorthogonalisation); IMDB adds one such solve per left-degree
    group, all in one numba call.

    Examples
    --------
    >>> import numpy as np
    >>> from sparsegraph.graph.network import Layer, Network, Node
    >>> net = Network(
    ...     layers=(Layer("fc.weight", "fc", "linear", (8, 8), 8, 8),),
    ...     nodes=(Node(0, "input", (), (8,)),
    ...            Node(1, "layer", (0,), (8,), layer=0, params={"op": "linear"})),
    ...     outputs=(1,),
    ... )
    >>> circ = np.array([[(j - i) % 8 < 4 for j in range(8)] for i in range(8)])  # 4-regular
    >>> rep = spectral(net, {"fc.weight": circ})
    >>> rec = rep.layers[0]
    >>> round(rec.lambda1, 9), round(rec.mu_hat, 6), round(rec.delta_r, 6)
    (4.0, 2.613126, 0.850976)
    >>> abs(rep.to_dict()["layers"][0]["imdb"] - rec.delta_r_norm) < 1e-12
    True
    """
    checked = check_masks(net, masks)
    if weights is not None and hasattr(weights, "named_parameters"):  # an nn.Module
        weights = dict(weights.named_parameters())
    if weights is not None and not isinstance(weights, Mapping):
        raise MaskError(
            f"weights must be a model or a mapping of layer name to array, got "
            f"{type(weights).__name__}"
        )
    records: list[LayerSpectrum] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("spectral", total=len(net.layers))
    try:
        for layer in net.layers:
            w = None
            if weights is not None and layer.name in weights:
                w = weights[layer.name]
            records.append(layer_spectrum(layer, checked[layer.name], weight=w, imdb=imdb))
            if bar is not None:
                bar.update(task, advance=1, description=layer.name)
    finally:
        if bar is not None:
            bar.stop()
    mean, wmean = summaries(records)
    return SpectralReport(name=net.name, layers=records, mean=mean, weighted_mean=wmean)
