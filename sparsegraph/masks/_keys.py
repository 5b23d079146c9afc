"""Mask keys in files: which parameter a stored key names, and which entries of a torch
layout (``torch.nn.utils.prune`` state dict, ``torch.ao.pruning`` sparsifier state) are masks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._args import as_bool_mask
from ..errors import MaskFileError

__all__ = ["collect", "is_mask_key", "names_of", "normalize_key", "prune_tensors",
           "sparsifier_tensors"]

_PREFIXES = ("module.", "_orig_mod.")
_PARAMETRIZED = re.compile(r"^(?P<module>(?:.*\.)?)parametrizations\.(?P<param>[^.]+)\.\d+\.mask$")


def normalize_key(key: str) -> str:
    """The parameter name a stored mask key refers to.

    Strips leading ``module.`` / ``_orig_mod.`` prefixes (repeatedly), maps a
    ``torch.nn.utils.prune`` buffer ``<module>.<p>_mask`` and a parametrization buffer
    ``<module>.parametrizations.<p>.<i>.mask`` to ``<module>.<p>``.

    Examples
    --------
    >>> normalize_key("module._orig_mod.features.0.weight_mask")
    'features.0.weight'
    >>> normalize_key("fc.parametrizations.weight.0.mask")
    'fc.weight'
    """
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key = key[len(prefix):]
                changed = True
    match = _PARAMETRIZED.match(key)
    if match:
        return f"{match['module']}{match['param']}"
    if key.endswith("_mask"):
        return key[: -len("_mask")]
    return key


def is_mask_key(key: str) -> bool:
    """Whether a state-dict key is a ``torch.nn.utils.prune`` or parametrization mask buffer."""
    return key.endswith("_mask") or _PARAMETRIZED.match(key) is not None


def names_of(keys: list[Any], where: str) -> dict[str, str]:
    """{stored key: parameter name}, refusing non-string keys and two keys for one name."""
    out: dict[str, str] = {}
    origin: dict[str, str] = {}
    for key in keys:
        if not isinstance(key, str) or not key:
            raise MaskFileError(f"{where}mask keys must be parameter names (str), got {key!r}")
        name = normalize_key(key)
        if name in origin:
            raise MaskFileError(
                f"{where}keys {origin[name]!r} and {key!r} both give the mask of {name!r}"
            )
        origin[name] = key
        out[key] = name
    return out


def collect(raw: Mapping[Any, Any]) -> dict[str, np.ndarray]:
    """In-memory ``{stored key: tensor}`` as ``{parameter name: bool mask}``: keys normalised,
    values through :func:`~sparsegraph._args.as_bool_mask`, duplicates refused."""
    names = names_of(list(raw), "")
    out: dict[str, np.ndarray] = {}
    for key, name in names.items():
        value = raw[key]
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise MaskFileError(f"entry {key!r}: expected a tensor, got {type(value).__name__}")
        out[name] = as_bool_mask(value, name)
    return out


def prune_tensors(state_dict: Any) -> dict[str, Any]:
    """The ``*_mask`` entries of a ``torch.nn.utils.prune`` state dict (values untouched)."""
    if not isinstance(state_dict, Mapping):
        raise MaskFileError(f"expected a state dict (mapping), got {type(state_dict).__name__}")
    keys = [k for k in state_dict if isinstance(k, str) and is_mask_key(k)]
    if not keys:
        raise MaskFileError(
            "no '<module>.<param>_mask' entries: not a torch.nn.utils.prune state dict"
        )
    return {k: state_dict[k] for k in keys}


def sparsifier_tensors(state_dict: Any) -> dict[str, Any]:
    """``{tensor_fqn: mask}`` of a ``torch.ao.pruning`` sparsifier state (values untouched)."""
    if not (isinstance(state_dict, Mapping) and isinstance(state_dict.get("state"), Mapping)):
        raise MaskFileError("not a torch.ao.pruning sparsifier state: expected a 'state' mapping")
    found = {}
    for fqn, entry in state_dict["state"].items():
        if not isinstance(entry, Mapping):
            raise MaskFileError(
                f"sparsifier state {fqn!r}: expected a mapping, got {type(entry).__name__}"
            )
        if entry.get("mask") is not None:
            found[fqn] = entry["mask"]
    return found
