"""The exceptions sparsegraph raises.

Every error the library raises on bad input is a :class:`SparseGraphError`; each subclass is
named for what went wrong and also derives from the built-in exception it means, so
``except ValueError`` keeps working. Messages name the argument, layer or node, what was
expected and what was received, and the fix when there is one. The command line prints the
message on one line and exits with status 2.

========================  ========================================================================
exception                 raised when
========================  ========================================================================
:class:`TraceError`       the tracer cannot read a model: an op it does not understand, a
                          construct it cannot follow (data-dependent control flow), an example
                          input the model does not run on
:class:`NetworkError`     a :class:`~sparsegraph.graph.network.Network` is inconsistent: nodes
                          out of topological order, wrong arity or shapes, index maps out of
                          range, a layer whose geometry does not fit its weight, no input or no
                          output (raised when the Network is built)
:class:`MaskError`        a mask does not fit the network: unknown layer, wrong shape, values
                          other than 0/1, NaN or infinity, an array that cannot be read
:class:`MaskFileError`    a mask file cannot be read or written: missing, not a regular file,
                          corrupt, hostile (a pickle that is not plain tensors), of an unknown
                          format, too large for the model, or made for another model
:class:`QuotaError`       a quota or density request is infeasible: a density outside (0, 1],
                          an unknown scheme, a budget smaller than the layers kept dense
:class:`ModelSpecError`   a MODEL argument names no built-in architecture and no importable
                          ``module:factory``, or its example input cannot be built
:class:`ArgumentError`    any other argument outside its documented domain: a seed, a count, a
                          choice among names, an output path that cannot be written
========================  ========================================================================

:class:`LayerCollapseWarning` is a warning, not an error: a pruning score removed every weight of
a layer.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "SparseGraphError",
    "TraceError",
    "NetworkError",
    "MaskError",
    "MaskFileError",
    "QuotaError",
    "ModelSpecError",
    "ArgumentError",
    "LayerCollapseWarning",
]


class SparseGraphError(Exception):
    """Base class of every error sparsegraph raises on bad input.

    Advice that names an argument is written with a placeholder and the argument's Python
    spelling given as a keyword, so each front end can name its own argument:

    >>> err = MaskFileError("m.npz exists; pass {overwrite} to replace it",
    ...                     overwrite="overwrite=True")
    >>> str(err)
    'm.npz exists; pass overwrite=True to replace it'
    >>> err.render({"overwrite": "--force"})
    'm.npz exists; pass --force to replace it'

    ``str(exc)`` is the Python wording; the command line renders the same error with its one
    table of flags (``sparsegraph.cli.flags``). Only ``{name}`` for a name given as a keyword
    is a placeholder; any other brace in the message is text.

    Parameters
    ----------
    message : str
        The message, with ``{name}`` placeholders when ``spellings`` are given.
    **spellings : str
        Placeholder name -> its Python spelling (``overwrite="overwrite=True"``).
    """

    def __init__(self, message: object = "", /, **spellings: str) -> None:
        self.template = str(message)
        self.spellings = dict(spellings)
        super().__init__(self.render())

    def render(self, spellings: Mapping[str, str] | None = None) -> str:
        """The message with each placeholder in ``spellings``'s wording (the Python one for
        placeholders it lacks)."""
        text = self.template
        for key, python in self.spellings.items():
            text = text.replace("{" + key + "}", (spellings or {}).get(key, python))
        return text


class TraceError(SparseGraphError, TypeError):
    """A model could not be turned into a layered bipartite graph: an op the tracer does not
    understand, a construct it cannot follow, or an example input the model does not run on.
    The message names the op, the module path and what to do."""


class NetworkError(SparseGraphError, ValueError):
    """A :class:`~sparsegraph.graph.network.Network` is inconsistent (checked once, when it is
    built): topological order, the arity and shapes of a node, index maps in range, a layer's
    geometry against its weight shape, at least one input and one output. The message names
    the node."""


class MaskError(SparseGraphError, ValueError):
    """A mask does not fit the network: unknown layer, wrong shape, values other than 0/1, NaN
    or infinity."""


class MaskFileError(SparseGraphError, OSError):
    """A mask file cannot be read or written: missing, not a regular file, corrupt, hostile (a
    pickle that is not plain tensors), of an unknown format, larger than the model can hold, or
    made for another model."""


class QuotaError(SparseGraphError, ValueError):
    """A layerwise quota cannot be built: density outside (0, 1], unknown scheme, infeasible
    scheme/density pair, unknown layer names in a dense list."""


class ModelSpecError(SparseGraphError, ValueError):
    """A MODEL argument names no built-in architecture and no importable ``module:factory``."""


class ArgumentError(SparseGraphError, ValueError):
    """An argument outside its documented domain that is none of the above: a seed, a count, a
    choice among names, an output location that cannot be written."""


class LayerCollapseWarning(UserWarning):
    """A pruning score removed every weight of a layer (Tanaka et al.'s layer collapse): no
    input-output path passes through that layer any more."""
