"""The re-initialisation sanity check of pruning at initialization (Frankle et al. 2021).

:func:`reinit` returns a copy of a model with the same architecture and the same masks but fresh
weights, drawn as the model's own layers draw them. Training it tells whether a pruning method's
mask only works with the particular weights it was found on (it does not, for SNIP, GraSP and
SynFlow, in Frankle et al.'s experiments; a lottery ticket's does).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from .._args import check_module, check_seed
from ..errors import ArgumentError
from .apply import apply_masks

__all__ = ["reinit"]


def _reset(module: nn.Module) -> bool:
    """Call the module's own initialiser; False when it has none."""
    fn = getattr(module, "reset_parameters", None) or getattr(module, "_reset_parameters", None)
    if not callable(fn):
        return False
    fn()
    return True


def _masked_names(module: nn.Module) -> list[str]:
    """Names of the module's own tensors masked by torch.nn.utils.prune or parametrize."""
    names = [h._tensor_name for h in module._forward_pre_hooks.values()
             if isinstance(h, prune.BasePruningMethod)]
    if parametrize.is_parametrized(module):
        names += [n for n in module.parametrizations if n not in names]
    return names


@contextmanager
def _copyable(model: nn.Module) -> Iterator[None]:
    """Let ``copy.deepcopy`` through a model pruned with torch.nn.utils.prune: its cached
    masked weights are non-leaf tensors, which torch refuses to copy; they are detached for
    the copy (the pruning hook recomputes them on every forward pass) and put back after."""
    saved = []
    for module in model.modules():
        for name in _masked_names(module):
            value = module.__dict__.get(name)
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                saved.append((module, name, value))
                setattr(module, name, value.detach())
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def _reset_masked(module: nn.Module, names: list[str]) -> None:
    """Re-initialise a masked module: draw fresh values on an unmasked copy (so its
    ``reset_parameters`` writes real parameters, in the same order and with the same draws as
    on an unmasked module), then copy them into the masked module's originals."""
    plain = copy.deepcopy(module)
    if parametrize.is_parametrized(plain):
        # by hand: remove_parametrizations would delete the property from the class that the
        # copy shares with ``module``
        originals = {n: p.original for n, p in plain.parametrizations.items()}
        del plain._modules["parametrizations"]
        plain.__class__ = type(plain).__bases__[0]
        for n, o in originals.items():
            plain._parameters[n] = nn.Parameter(o.detach().clone(), o.requires_grad)
    for name in names:
        if not parametrize.is_parametrized(module, name):
            prune.remove(plain, name)
    if not _reset(plain):
        return
    fresh = dict(plain.named_parameters(recurse=False))
    fresh.update(plain.named_buffers(recurse=False))
    with torch.no_grad():
        for name, value in fresh.items():
            if name in names:
                if parametrize.is_parametrized(module, name):
                    target = module.parametrizations[name].original
                else:
                    target = getattr(module, f"{name}_orig")
            else:
                target = getattr(module, name, None)
            if isinstance(target, torch.Tensor) and target.shape == value.shape:
                target.copy_(value)
        for name in names:  # keep the cached masked weight of torch.nn.utils.prune in sync
            if not parametrize.is_parametrized(module, name):
                orig, mask = getattr(module, f"{name}_orig"), getattr(module, f"{name}_mask")
                setattr(module, name, orig * mask)


def reinit(model: nn.Module, *, seed: int = 0,
           masks: Mapping[str, Any] | None = None) -> nn.Module:
    """A copy of ``model`` with fresh weights and the same masks.

    Parameters
    ----------
    model : torch.nn.Module
        Left untouched. Masks applied to it with ``torch.nn.utils.prune`` or ``parametrize``
        (:func:`sparsegraph.apply_masks`, methods ``"prune"`` and ``"parametrize"``) stay in
        the copy: its pruned weights are still exactly zero.
    seed : int, default 0
        The global torch generator is seeded with it while the copy's modules re-initialise
        (and restored afterwards), so the same seed gives the same weights.
    masks : mapping of str to array-like, optional
        Masks to apply to the copy afterwards (:func:`sparsegraph.apply_masks`,
        ``method="prune"``), e.g. for a model whose masks were applied ``"inplace"`` (which
        leaves no trace a copy could keep).

    Returns
    -------
    torch.nn.Module
        A deep copy (same architecture, buffers, train/eval modes and ``requires_grad``
        flags) in which every module with a ``reset_parameters()`` (Linear, Conv, BatchNorm,
        LayerNorm, Embedding, ...; ``_reset_parameters()`` for MultiheadAttention) has drawn
        its parameters again, in ``model.modules()`` order.

    Raises
    ------
    ArgumentError
        For a bad seed, a ``model`` that is not a module, or one in which no module has an
        initialiser.
    MaskError
        For bad ``masks``.

    Notes
    -----
    Only the initialisers of the modules run: a scaling applied at masking time
    (``apply_masks(rescale=True)``) or a custom initialisation scheme of the user's is not
    repeated. Parameters of modules without ``reset_parameters`` keep their values.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> import sparsegraph as sg
    >>> model = nn.Sequential(nn.Linear(4, 3))
    >>> _ = sg.apply_masks(model, {"0.weight": [[1, 0, 0, 0]] * 3})
    >>> fresh = reinit(model, seed=1)
    >>> bool((fresh[0].weight[:, 1:] == 0).all()), bool((fresh[0].weight != model[0].weight).any())
    (True, True)
    """
    seed = check_seed(seed)
    check_module(model)
    with _copyable(model):
        clone = copy.deepcopy(model)
    devices = sorted({p.device.index or 0 for p in clone.parameters() if p.is_cuda})
    reset = 0
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in clone.modules():
            names = _masked_names(module)
            if names:
                if callable(getattr(module, "reset_parameters", None)) or callable(
                        getattr(module, "_reset_parameters", None)):
                    _reset_masked(module, names)
                    reset += 1
            elif _reset(module):
                reset += 1
    if not reset:
        raise ArgumentError("reinit: no module of the model has reset_parameters(); nothing to "
                            "re-initialise")
    if masks is not None:
        apply_masks(clone, masks)
    return clone
