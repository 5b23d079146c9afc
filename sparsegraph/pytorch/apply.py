"""Put masks into a PyTorch model, and read them back out.

:func:`apply_masks` speaks the conventions PyTorch users already train with:

``method="prune"`` (the default)
    ``torch.nn.utils.prune.custom_from_mask``: the parameter becomes ``weight_orig`` and a
    ``weight_mask`` buffer, and ``weight = weight_orig * weight_mask`` is recomputed before every
    forward pass. Gradients of pruned entries are zero and whatever an optimizer (momentum, weight
    decay, Adam) does to ``weight_orig``, the weight the model uses stays exactly zero there.
    ``torch.nn.utils.prune.remove(module, "weight")`` finalises it.
``method="parametrize"``
    ``torch.nn.utils.parametrize.register_parametrization`` with a :class:`MaskParametrization`
    (``weight = original * mask``, the mask a buffer named ``mask``). Pruned entries of the
    original are zeroed when the mask is applied.
    ``parametrize.remove_parametrizations(module, "weight")`` finalises it.
``method="inplace"``
    Zero the pruned weights and mask their gradients with a tensor hook; the model's structure
    and ``state_dict`` keys do not change (for inference and export). Optimizers that leave a
    zero weight with a zero gradient at zero (SGD with momentum and weight decay, Adam, AdamW)
    keep the pruned weights at zero; anything that writes the weights directly (loading a
    state dict, an optimizer adding noise) regrows them. The hook is not saved with the model.

:func:`extract_masks` reads masks back from any of these (and from ``torch.ao.pruning``'s
``FakeSparsity``), or from the exact zeros of a plain weight.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from .._args import as_bool_mask, check_module, suggest
from ..errors import MaskError
from ..masks.files import normalize_key

__all__ = ["APPLY_METHODS", "MaskParametrization", "apply_masks", "extract_masks"]

APPLY_METHODS = ("prune", "parametrize", "inplace")
_PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)


class MaskParametrization(nn.Module):
    """``weight = original * mask`` for ``torch.nn.utils.parametrize``.

    Parameters
    ----------
    mask : torch.Tensor
        0/1 tensor of the weight's shape; stored as the buffer ``mask`` (in the weight's dtype),
        so it is saved in the model's ``state_dict`` as ``<module>.parametrizations.<p>.0.mask``.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def _unwrap(model: nn.Module) -> nn.Module:
    """The wrapped model of DataParallel / DistributedDataParallel / torch.compile."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
            continue
        return model


def _state(module: nn.Module, pname: str) -> str:
    """How ``module.<pname>`` is held: ``"parametrized"``, ``"pruned"`` (by
    ``torch.nn.utils.prune``) or ``"plain"``."""
    if parametrize.is_parametrized(module, pname):
        return "parametrized"
    if isinstance(getattr(module, f"{pname}_orig", None), nn.Parameter):
        return "pruned"
    return "plain"


def _current(module: nn.Module, pname: str) -> torch.Tensor | None:
    """The parameter the module computes ``pname`` from (a plain parameter, a pruned weight's
    ``_orig`` or a parametrized weight's ``original``), without running anything; None for a
    buffer or anything else that is not a parameter."""
    state = _state(module, pname)
    if state == "parametrized":
        return module.parametrizations[pname].original
    if state == "pruned":
        return getattr(module, f"{pname}_orig")
    value = getattr(module, pname, None)
    return value if isinstance(value, nn.Parameter) else None


def _param_names(model: nn.Module) -> list[str]:
    """Parameter names as the user sees them (``weight_orig`` and ``parametrizations.*.original``
    mapped back to the parameter's own name)."""
    names = []
    for name, _ in model.named_parameters():
        names.append(normalize_key(_strip_reparam(name)))
    return names


def _strip_reparam(name: str) -> str:
    if name.endswith("_orig"):
        return name[: -len("_orig")]
    marker = ".parametrizations."
    if (marker in name or name.startswith("parametrizations.")) and name.endswith(".original"):
        head, _, rest = ("." + name).rpartition(marker)
        return f"{head[1:]}.{rest[: -len('.original')]}".lstrip(".")
    return name


def _resolve(model: nn.Module, key: str) -> tuple[nn.Module, str, torch.Tensor]:
    """(module, parameter name, current tensor) for a mask key, or a MaskError naming it."""
    if not isinstance(key, str) or not key:
        raise MaskError(f"mask keys must be parameter names, got {key!r}")
    for candidate in dict.fromkeys((key, normalize_key(key))):
        mod_path, _, pname = candidate.rpartition(".")
        try:
            module = model.get_submodule(mod_path) if mod_path else model
        except AttributeError:
            continue
        tensor = _current(module, pname)
        if tensor is not None:
            return module, pname, tensor
        if isinstance(getattr(module, pname, None), torch.Tensor):
            raise MaskError(
                f"mask {key!r}: {pname!r} of {mod_path or 'the model'!r} is a buffer, not a "
                "parameter; masks apply to parameters (weights)"
            )
    hint = suggest(key, _param_names(model))
    raise MaskError(f"mask {key!r}: the model has no such parameter{hint}")


def _check_method(key: str, module: nn.Module, pname: str, method: str) -> None:
    """Refuse, before anything is changed, a method that cannot act on how the parameter is
    held now (torch would fail halfway through the masks)."""
    state = _state(module, pname)
    if method == "prune" and state == "parametrized":
        raise MaskError(f"mask {key!r}: the parameter is parametrized; apply with "
                        "method='parametrize' or 'inplace', or remove the parametrization first")
    if method == "parametrize" and state == "pruned":
        raise MaskError(f"mask {key!r}: the parameter is pruned by torch.nn.utils.prune; apply "
                        "with method='prune' or 'inplace', or prune.remove() it first")


def _mask_tensor(key: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    arr = as_bool_mask(value, key)
    if tuple(arr.shape) != tuple(like.shape):
        raise MaskError(
            f"mask {key!r}: expected the parameter's shape {list(like.shape)}, "
            f"got {list(arr.shape)}"
        )
    return torch.from_numpy(arr).to(like.device)


def apply_masks(
    model: nn.Module,
    masks: Mapping[str, Any],
    *,
    method: str = "prune",
    rescale: bool = False,
) -> nn.Module:
    """Mask a model's parameters so that training keeps the pruned weights at zero.

    Parameters
    ----------
    model : torch.nn.Module
        Modified in place. ``DataParallel``/``DistributedDataParallel``/``torch.compile``
        wrappers are looked through.
    masks : mapping of str to array-like
        Keyed by parameter name (``"features.0.weight"``, as :func:`sparsegraph.trace` and
        every mask function key them; ``module.`` / ``_orig_mod.`` prefixes are accepted),
        0/1 values of the parameter's shape (numpy or torch, bool/int/float). Parameters without
        a key are left alone (dense).
    method : {"prune", "parametrize", "inplace"}, default "prune"
        See the module docstring. Applying ``"prune"`` to an already pruned parameter combines
        the masks (their intersection), as ``torch.nn.utils.prune`` does.
    rescale : bool, default False
        Multiply each masked parameter's kept weights by ``1 / sqrt(d)``, ``d`` its mask's
        density (kept / size; nothing is rescaled when ``d`` is 0): the scaling under which a
        randomly pruned network keeps the dense network's neural tangent kernel (Yang et al.).
        With ``"prune"`` the rescaled values go into ``weight_orig``.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Raises
    ------
    MaskError
        For an unknown parameter name (with the closest names), a buffer, two keys naming one
        (tied) parameter, a wrong shape, values other than 0/1, an unknown ``method``, or a
        method that cannot act on a parameter already pruned or parametrized the other way;
        every mask is checked before the model is touched.
    ArgumentError
        If ``model`` is not a ``torch.nn.Module`` (a traced Network holds no weights).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sparsegraph.pytorch.apply import apply_masks, extract_masks
    >>> model = nn.Sequential(nn.Linear(3, 2))
    >>> _ = apply_masks(model, {"0.weight": [[1, 0, 0], [0, 1, 1]]})
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    >>> model(torch.ones(4, 3)).sum().backward(); opt.step(); _ = model(torch.ones(1, 3))
    >>> (model[0].weight == 0).sum().item(), extract_masks(model)["0.weight"].sum()
    (3, np.int64(3))
    """
    check_module(model)
    if method not in APPLY_METHODS:
        raise MaskError(f"method: expected one of {', '.join(APPLY_METHODS)}, got {method!r}")
    if not isinstance(masks, Mapping):
        raise MaskError(
            f"masks must be a mapping of parameter name to array, got {type(masks).__name__}"
        )
    root = _unwrap(model)
    plan = []
    seen: dict[int, str] = {}
    for key, value in masks.items():  # check every mask first: nothing is changed on error
        module, pname, tensor = _resolve(root, key)
        if id(tensor) in seen:
            raise MaskError(f"masks {seen[id(tensor)]!r} and {key!r} name the same parameter")
        seen[id(tensor)] = key
        holders = _holders(root, tensor) or [(module, pname)]  # a tied parameter: every module
        for mod, name in holders:
            _check_method(key, mod, name, method)
        plan.append((holders, tensor, _mask_tensor(key, value, tensor)))
    for holders, tensor, mask in plan:
        if rescale:
            kept = int(mask.sum())
            if kept:
                with torch.no_grad():
                    tensor.mul_(float(1.0 / np.sqrt(kept / mask.numel())))
        if method == "prune":  # each holder of a tied parameter gets weight_orig = the same one
            for module, pname in holders:
                prune.custom_from_mask(module, pname, mask=mask.to(tensor.dtype))
        elif method == "parametrize":
            with torch.no_grad():
                tensor.mul_(mask.to(tensor.dtype))
            for module, pname in holders:
                parametrize.register_parametrization(
                    module, pname, MaskParametrization(mask.to(tensor.dtype))
                )
        else:
            m = mask.to(tensor.dtype)
            with torch.no_grad():
                tensor.mul_(m)
                for module, pname in holders:
                    if tensor is not getattr(module, pname, tensor):  # a pruned .weight: in sync
                        getattr(module, pname).mul_(m)
            if tensor.requires_grad:
                tensor.register_hook(lambda grad, m=m: grad * m)
    return model


def _holders(root: nn.Module, tensor: torch.Tensor) -> list[tuple[nn.Module, str]]:
    """Every (module, attribute) through which the model uses the parameter ``tensor``: more
    than one for a tied parameter (an embedding shared with an LM head)."""
    out = []
    for module in root.modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # its ``original`` is read through the parametrized module
        for name in [_unpruned(module, n) for n in module._parameters]:
            if _current(module, name) is tensor and (module, name) not in out:
                out.append((module, name))
        if parametrize.is_parametrized(module):
            for name in module.parametrizations:
                if module.parametrizations[name].original is tensor and (module, name) not in out:
                    out.append((module, name))
    return out


def _unpruned(module: nn.Module, pname: str) -> str:
    """``weight`` for the ``weight_orig`` of a ``torch.nn.utils.prune``-pruned weight, else
    ``pname``: the name the model reads the parameter by."""
    base = pname[: -len("_orig")]
    if pname.endswith("_orig") and isinstance(getattr(module, f"{base}_mask", None), torch.Tensor):
        return base
    return pname


def _mask_of(module: nn.Module, pname: str) -> torch.Tensor:
    """The mask currently acting on ``module.<pname>``."""
    mask = None
    if parametrize.is_parametrized(module, pname):
        for p in module.parametrizations[pname]:
            m = getattr(p, "mask", None)
            if isinstance(m, torch.Tensor):
                mask = (m != 0) if mask is None else mask & (m != 0)
    buf = getattr(module, f"{pname}_mask", None)
    if isinstance(buf, torch.Tensor):
        mask = (buf != 0) if mask is None else mask & (buf != 0)
    if mask is None:
        mask = getattr(module, pname).detach() != 0
    return mask


def _weights_of(module: nn.Module) -> list[str]:
    """The weights :func:`extract_masks` reads by default: those of Linear/Conv modules, HF's
    ``Conv1D``, multi-head attention's packed projection, and any parameter with a mask."""
    names = []
    if isinstance(module, _PRUNABLE) or type(module).__name__ == "Conv1D":
        names.append("weight")
    if isinstance(module, nn.MultiheadAttention):
        names += [n for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight",
                              "v_proj_weight") if _current(module, n) is not None]
    names += [n[: -len("_mask")] for n, _ in module.named_buffers(recurse=False)
              if n.endswith("_mask")]
    if parametrize.is_parametrized(module):
        names += list(module.parametrizations)
    return list(dict.fromkeys(n for n in names if _current(module, n) is not None))


def extract_masks(
    model: nn.Module, *, names: Iterable[str] | str | None = None
) -> dict[str, np.ndarray]:
    """The masks acting on a model's weights.

    Parameters
    ----------
    model : torch.nn.Module
        Wrappers (``DataParallel``, ``torch.compile``) are looked through.
    names : str or iterable of str, optional
        Parameter names or ``fnmatch`` globs to read. Default: the weights of every Linear and
        convolution module, HF ``Conv1D`` and ``nn.MultiheadAttention`` projection, and every
        parameter carrying a mask; a tied parameter once, under its first name.

    Returns
    -------
    dict of str to ndarray of bool
        Keyed by parameter name, in module order. A parameter's mask is its
        ``torch.nn.utils.prune`` buffer ``<name>_mask``, else the product of the ``mask`` of its
        parametrizations (:class:`MaskParametrization`, ``torch.ao.pruning``'s ``FakeSparsity``),
        else ``weight != 0`` (exact zeros; a kept weight that happens to be exactly zero reads
        as pruned).

    Raises
    ------
    MaskError
        If a name or pattern matches no parameter.
    ArgumentError
        If ``model`` is not a ``torch.nn.Module``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
    >>> extract_masks(model)["0.weight"].tolist()
    [[False, True], [True, False]]
    """
    check_module(model)
    root = _unwrap(model)
    if names is None:
        first = {}  # a tied parameter is named as named_parameters() first lists it
        for pname, prm in root.named_parameters():
            first.setdefault(id(prm), normalize_key(_strip_reparam(pname)))
        targets, seen = [], set()
        for path, m in root.named_modules():
            for pname in _weights_of(m):
                tensor = _current(m, pname)
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                own = f"{path}.{pname}" if path else pname
                targets.append((first.get(id(tensor), own), m, pname))
    else:
        patterns = [names] if isinstance(names, str) else list(names)
        available = list(dict.fromkeys(_param_names(root)))
        chosen: list[str] = []
        for pattern in patterns:
            hits = [n for n in available if fnmatch.fnmatchcase(n, normalize_key(pattern))]
            if not hits:
                raise MaskError(
                    f"extract_masks: {pattern!r} matches no parameter{suggest(pattern, available)}"
                )
            chosen.extend(h for h in hits if h not in chosen)
        chosen.sort(key=available.index)
        targets = []
        for name in chosen:
            module, pname, _ = _resolve(root, name)
            targets.append((name, module, pname))
    out: dict[str, np.ndarray] = {}
    for name, module, pname in targets:
        out[name] = np.ascontiguousarray(_mask_of(module, pname).cpu().numpy().astype(bool))
    return out
