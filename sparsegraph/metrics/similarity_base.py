"""What every similarity measure of :mod:`sparsegraph.metrics.similarity` shares: the result
records, the door for activation matrices, and the rule for dead units.

The rules themselves (dead units dropped, never NaN; inputs rescaled by their largest
magnitude) are stated once, in :mod:`sparsegraph.metrics.similarity`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._args import to_finite
from ..errors import ArgumentError, MaskError

__all__ = ["CCAResult", "CKAResult", "DEAD_VARIANCE", "KERNELS", "activations"]

KERNELS = ("linear", "rbf")
DEAD_VARIANCE = 1e-10  # google/svcca's epsilon: relative variance below which a unit is dead
_CONSTANT = 1e-12  # a feature whose spread is below this fraction of its magnitude is constant


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
        arr = to_finite(value, what)  # the door: real numbers, finite, float64
    except MaskError as exc:
        raise ArgumentError(str(exc)) from None
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
    return arr


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = activations(x, "x"), activations(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ArgumentError(
            f"x and y must hold the same samples: x has {a.shape[0]} rows, y has {b.shape[0]}"
        )
    return a, b


# ---------------------------------------------------------------------------------- dead units


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
