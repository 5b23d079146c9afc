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
import sys
import types
from typing import Any

from .errors import (
    LayerCollapseWarning,
    MaskError,
    MaskFileError,
    ModelSpecError,
    QuotaError,
    SparseGraphError,
    TraceError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Layer": "network",
    "Node": "network",
    "Network": "network",
    "check_masks": "network",
    "trace": "trace",
    "build_model": "models",
    "MODELS": "models",
    "effective_masks": "effective",
    "audit": "audit",
    "AuditReport": "audit",
    "quotas": "quotas",
    "QUOTA_SCHEMES": "quotas",
    "random_masks": "sampling",
    "spectral": "spectral",
    "SpectralReport": "spectral",
    "path_metrics": "paths",
    "to_networkx": "export",
    "to_igraph": "export",
    "to_scipy": "export",
    "apply_masks": "masking",
    "extract_masks": "masking",
    "save_masks": "maskfile",
    "load_masks": "maskfile",
    "prune": "pruners",
    "PruneMasks": "pruners",
    "read_metadata": "maskfile",
    "PRUNERS": "pruners",
    "compare": "compare",
}

__all__ = [  # the lazy names are resolved by __getattr__
    "LayerCollapseWarning", "MaskError", "MaskFileError", "ModelSpecError", "QuotaError",
    "SparseGraphError", "TraceError", "__version__", *_LAZY,
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


class _Surface(types.ModuleType):
    """The package module. Several public functions share their module's name (``trace`` in
    ``sparsegraph/trace.py``); importing such a submodule would bind the module over the function,
    so the binding is redirected to the function. The submodules stay importable by their full
    name (``from sparsegraph.trace import trace``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and _LAZY.get(name) == name
            and value.__name__ == f"{__name__}.{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Surface
