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

Import every measure from here; they live in :mod:`sparsegraph.metrics.cca` (CCA, SVCCA, PWCCA)
and :mod:`sparsegraph.metrics.cka` (CKA), and what they share (the result records, the door for
activation matrices, dead units) in :mod:`sparsegraph.metrics.similarity_base`.
"""

from __future__ import annotations

from .cca import pwcca, svcca
from .cka import centre_gram, cka, rbf_gram
from .similarity_base import DEAD_VARIANCE, KERNELS, CCAResult, CKAResult, activations

__all__ = ["CCAResult", "CKAResult", "DEAD_VARIANCE", "KERNELS", "activations", "centre_gram",
           "cka", "pwcca", "rbf_gram", "svcca"]
