"""Weights and inputs from files, safely: state-dict checkpoints and activation inputs.

Used by ``sparsegraph similarity``. Torch files are read only with ``weights_only=True`` and
``.npy`` files without pickles, so loading never runs code from the file.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ArgumentError

__all__ = ["load_checkpoint", "load_inputs"]


def _q(path: Any) -> str:
    return repr(os.fspath(path))


def _fold_masks(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``<p>_orig`` x ``<p>_mask`` (torch.nn.utils.prune) and ``parametrizations.<p>.original``
    x ``parametrizations.<p>.0.mask`` (sparsegraph's parametrize masks) folded into ``<p>``."""
    out = dict(state)
    for key in [k for k in state if k.endswith("_orig")]:
        base, mask = key[: -len("_orig")], key[: -len("_orig")] + "_mask"
        if mask in state:
            out[base] = state[key] * state[mask]
            del out[key], out[mask]
    marker = ".parametrizations."
    for key in [k for k in state if marker in f".{k}" and k.endswith(".original")]:
        head, _, rest = f".{key}".rpartition(marker)
        pname = rest[: -len(".original")]
        base = f"{head[1:]}.{pname}".lstrip(".")
        prefix = key[: -len("original")]
        masks = [k for k in state if k.startswith(prefix) and k.endswith(".mask")]
        value = state[key]
        for m in masks:
            value = value * state[m]
            out.pop(m, None)
        out[base] = value
        del out[key]
    return out


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a state-dict checkpoint into ``model`` (in place), strictly.

    Parameters
    ----------
    model : torch.nn.Module
        The architecture the checkpoint was saved from.
    path : str or os.PathLike
        A torch file holding ``model.state_dict()`` (or ``{"state_dict": ...}`` /
        ``{"model": ...}``). ``module.`` / ``_orig_mod.`` prefixes are stripped; masked weights
        saved by ``torch.nn.utils.prune`` (``weight_orig``, ``weight_mask``) or by
        :func:`sparsegraph.apply_masks` with ``"parametrize"`` are folded into plain weights.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ArgumentError
        Missing or unreadable file, a pickle holding anything but tensors (refused before it
        runs: ``torch.load(weights_only=True)``), not a state dict, or keys/shapes that do not
        fit the model (naming the first ones).
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise ArgumentError(f"checkpoint {_q(p)} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ArgumentError(f"refused to load checkpoint {_q(p)}: it holds objects other than "
                            f"tensors ({str(exc).splitlines()[0][:200]}); sparsegraph reads torch "
                            "files only with weights_only=True") from None
    except Exception as exc:  # noqa: BLE001 - any corrupt or foreign file
        text = str(exc).strip().splitlines()
        raise ArgumentError(f"cannot read checkpoint {_q(p)}: {type(exc).__name__}: "
                            f"{text[0][:200] if text else ''}") from None
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ArgumentError(f"checkpoint {_q(p)}: expected a state dict (parameter name -> "
                            f"tensor), got {type(obj).__name__}")
    state = _fold_masks({_strip(k): v for k, v in obj.items()})
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:3])}"
                        f"{' ...' if len(unexpected) > 3 else ''}")
    if shapes:
        k = shapes[0]
        problems.append(f"{k} has shape {list(state[k].shape)}, the model's is "
                        f"{list(expected[k].shape)}")
    if problems:
        raise ArgumentError(f"checkpoint {_q(p)} does not fit the model: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)
    return model


def _strip(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _digits_like(example: torch.Tensor) -> torch.Tensor:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is in the dev and examples extras
        raise ArgumentError("--inputs digits needs scikit-learn: pip install "
                            "'sparsegraph-pai[examples]'") from None
    x = torch.from_numpy((load_digits().data / 16.0 - 0.5).astype(np.float32))
    images = x.reshape(-1, 1, 8, 8)
    shape = tuple(example.shape[1:])
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side != shape[0]:
            raise ArgumentError(f"--inputs digits: the model takes {shape[0]} features, not a "
                                "square image; give --inputs X.npy")
        return _resize(images, side, side).reshape(len(x), -1)
    if len(shape) == 3:
        c, h, w = shape
        return _resize(images, h, w).expand(-1, c, -1, -1).contiguous()
    raise ArgumentError(f"--inputs digits: cannot shape 8x8 images into the model's input "
                        f"{list(shape)}; give --inputs X.npy")


def _resize(images: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if (h, w) == (8, 8):
        return images
    return torch.nn.functional.interpolate(images, size=(h, w), mode="bilinear",
                                           align_corners=False)


def load_inputs(spec: str, example: torch.Tensor, limit: int | None = None) -> torch.Tensor:
    """Inputs for a model: a ``.npy`` file of shape ``(N, *example.shape[1:])`` or ``"digits"``.

    Parameters
    ----------
    spec : str
        A ``.npy`` path (read with ``allow_pickle=False``), or ``digits``: scikit-learn's 1,797
        8x8 digits scaled to [-0.5, 0.5] as in the examples, resized (bilinear) to the model's
        image size and repeated over its channels, or flattened for a model taking a square
        number of features.
    example : torch.Tensor
        The model's example input (batch first), which fixes the shape.
    limit : int, optional
        Use the first ``limit`` inputs only.

    Returns
    -------
    torch.Tensor
        float32, ``(N, *example.shape[1:])``.

    Raises
    ------
    ArgumentError
        Missing or unreadable file, a pickled array, non-numeric or non-finite values, or a
        shape that does not fit the model.
    """
    if spec == "digits":
        x = _digits_like(example)
    else:
        p = Path(spec)
        if not p.is_file():
            raise ArgumentError(f"--inputs: {_q(p)} does not exist (give a .npy file or "
                                "'digits')")
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - pickles, corrupt files, other formats
            raise ArgumentError(f"--inputs: cannot read {_q(p)} as a .npy array without pickles "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                                ) from None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
            raise ArgumentError(f"--inputs: {_q(p)} holds no numeric array")
        if not np.isfinite(arr).all():
            raise ArgumentError(f"--inputs: {_q(p)} contains NaN or infinity")
        want = tuple(example.shape[1:])
        if tuple(arr.shape[1:]) != want:
            raise ArgumentError(f"--inputs: {_q(p)} has shape {list(arr.shape)}; the model "
                                f"takes (N, {', '.join(map(str, want))})")
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if limit is not None:
        x = x[:limit]
    if len(x) == 0:
        raise ArgumentError("--inputs: no samples")
    return x
