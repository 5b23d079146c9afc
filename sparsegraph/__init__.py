"""sparsegraph: the topology of sparse neural networks.

Generate random sparse masks from layerwise density quotas, audit any mask for dead connections
(exact effective sparsity) and graph quality (Ramanujan spectral bounds), and feed masks into
PyTorch training code.

>>> import sparsegraph as sg
>>> model, x = sg.build_model("lenet300")
>>> net = sg.trace(model, x)
>>> masks = sg.random_masks(net, sg.quotas(net, "erk", density=0.05), seed=0)
>>> rep = sg.audit(net, masks)
>>> rep.network.kept == round(0.05 * net.params)
True

The public names are imported on first use, so ``import sparsegraph`` (and the command line)
start without loading torch or compiling kernels.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._numba_cache import ensure_kernel_cache as _ensure_kernel_cache
from .errors import (
    ArgumentError,
    LayerCollapseWarning,
    MaskError,
    MaskFileError,
    ModelSpecError,
    NetworkError,
    QuotaError,
    SparseGraphError,
    TraceError,
)

__version__ = "0.1.0"

# numba needs a writable cache directory before the first @njit(cache=True) runs (at the import
# of a kernel module); on a read-only install fall back to a private temporary one.
_ensure_kernel_cache()

# public name -> module that defines it
_LAZY = {
    "Layer": "graph.network",
    "Node": "graph.network",
    "Network": "graph.network",
    "check_masks": "_args",
    "trace": "graph.trace",
    "build_model": "pytorch.models",
    "MODELS": "pytorch.models",
    "effective_masks": "metrics.effective",
    "audit": "metrics.audit",
    "AuditReport": "metrics.audit",
    "quotas": "masks.quotas",
    "QUOTA_SCHEMES": "masks.quotas",
    "quota_table": "masks.quota_table",
    "SCHEMES": "registry",
    "random_masks": "masks.sampling",
    "spectral": "metrics.spectral",
    "SpectralReport": "metrics.spectral",
    "path_metrics": "metrics.paths",
    "to_networkx": "graph.export",
    "to_igraph": "graph.export",
    "to_scipy": "graph.export",
    "apply_masks": "pytorch.apply",
    "extract_masks": "pytorch.apply",
    "save_masks": "masks.files",
    "load_masks": "masks.files",
    "prune": "pytorch.pruners",
    "PruneMasks": "pytorch.pruners",
    "read_metadata": "masks.files",
    "PRUNERS": "pytorch.pruners",
    "load_data": "pytorch.data",
    "compare": "sweep.compare",
    "svcca": "metrics.similarity",
    "pwcca": "metrics.similarity",
    "cka": "metrics.similarity",
    "CCAResult": "metrics.similarity",
    "CKAResult": "metrics.similarity",
    "MinibatchCKA": "metrics.cka_stream",
    "layer_similarity": "pytorch.activations",
    "SimilarityTable": "metrics.similarity_table",
    "SimilarityMatrix": "metrics.similarity_table",
    "shuffle_masks": "masks.shuffle",
    "reinit": "pytorch.reinit",
}

__all__ = [  # the lazy names are resolved by __getattr__
    "ArgumentError", "LayerCollapseWarning", "MaskError", "MaskFileError", "ModelSpecError",
    "NetworkError", "QuotaError", "SparseGraphError", "TraceError", "__version__", *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparsegraph' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
