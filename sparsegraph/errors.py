"""The exceptions sparsegraph raises.

Every error the library raises on bad input is a :class:`SparseGraphError`; each subclass also
derives from the built-in exception it means, so ``except ValueError`` keeps working. Messages
name the parameter or layer, what was expected and what was received, and the fix when there
is one. The command line prints the message on one line and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "SparseGraphError",
    "MaskError",
    "TraceError",
    "QuotaError",
    "MaskFileError",
    "ModelSpecError",
    "LayerCollapseWarning",
]


class SparseGraphError(Exception):
    """Base class of every error sparsegraph raises on bad input."""


class MaskError(SparseGraphError, ValueError):
    """A mask does not fit the network: unknown layer, wrong shape, values other than 0/1, NaN."""


class TraceError(SparseGraphError, TypeError):
    """A model could not be turned into a layered bipartite graph (an op the tracer does not
    understand, a tensor layout it cannot follow, a model torch.fx cannot trace)."""


class QuotaError(SparseGraphError, ValueError):
    """A layerwise quota cannot be built: density outside (0, 1], unknown scheme, infeasible
    scheme/density pair, unknown layer names in a dense list."""


class MaskFileError(SparseGraphError, OSError):
    """A mask file cannot be read or written: missing, corrupt, hostile (a pickle that is not
    plain tensors), of an unknown format, or made for another model."""


class ModelSpecError(SparseGraphError, ValueError):
    """A MODEL argument names no built-in architecture and no importable ``module:factory``."""


class LayerCollapseWarning(UserWarning):
    """A pruning score removed every weight of a layer (Tanaka et al.'s layer collapse): no
    input-output path passes through that layer any more."""
