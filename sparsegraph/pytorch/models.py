"""Built-in architectures and the resolution of a MODEL argument.

The networks the pruning-at-initialization literature measures on, written here in plain
PyTorch (no torchvision): ``nn.Conv2d(bias=False)`` before BatchNorm, ``nn.Linear``, residual
``out + identity`` in ``forward`` and ``torch.flatten(x, 1)``, so :func:`sparsegraph.trace` reads
them directly. Parameter names follow torchvision where it has an analogue (``conv1.weight``,
``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ``fc.weight``; VGG's
``features.N.weight`` and ``classifier.weight``), so masks made for a torchvision model and for
the built-in one share their keys.

========================  =========  ===========  =========================================
name                      input      classes      architecture
========================  =========  ===========  =========================================
``lenet300``              1x28x28    10           MLP 784-300-100-10
``lenet5``                1x28x28    10           conv 6@5x5 (pad 2), pool, conv 16@5x5,
                                                  pool, fc 120-84-10
``vgg11/16/19``           3x32x32    10           CIFAR VGG with BatchNorm, one linear 512->10
``resnet18``, ``resnet50``  3x224x224  1000       torchvision's ImageNet ResNets
``resnet18_cifar``        3x32x32    10           ResNet-18 with a 3x3 stride-1 stem, no max-pool
``resnet20``, ``resnet32``  3x32x32  10           He et al.'s CIFAR ResNets, 1x1 conv shortcuts
``vit_tiny``              3x32x32    10           CIFAR ViT-Tiny, patch 4 (models_modern)
``mobilenet_v3_small``    3x224x224  1000         MobileNet-v3-Small (models_modern)
========================  =========  ===========  =========================================

The MLP and convolutional networks are defined in :mod:`sparsegraph.pytorch.models_cnn`, the
modern ones in :mod:`sparsegraph.pytorch.models_modern`; this module holds their registry.

The ImageNet ResNets match torchvision's parameter counts exactly (11,689,512 and 25,557,032).
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._imports import import_object, looks_like_file
from ..errors import ModelSpecError
from .models_cnn import VGG, VGG_CONFIGS, BasicBlock, Bottleneck, LeNet5, LeNet300, ResNet
from .models_modern import mobilenet_v3_small, vit_tiny

__all__ = ["MAX_INPUT_ELEMENTS", "MODELS", "ModelSpec", "build_model", "resolve_model",
           "prunable_params"]

MAX_INPUT_ELEMENTS = 1 << 27
"""Most elements an example input built from a shape may have, over all inputs (134,217,728:
a 512**3 volume, or 512 MiB of float32): the tracer runs the model on it."""


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A built-in architecture.

    Attributes
    ----------
    factory : callable
        ``factory(num_classes=...) -> nn.Module``.
    input_shape : tuple of int
        The default example input shape, batch dimension (1) included.
    num_classes : int
        The default number of classes.
    description : str
        One line for ``sparsegraph models``.
    """

    factory: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    description: str


def _lenet300(num_classes: int = 10) -> nn.Module:
    return LeNet300(num_classes)


def _lenet5(num_classes: int = 10) -> nn.Module:
    return LeNet5(num_classes)


def _vgg(name: str) -> Callable[..., nn.Module]:
    def factory(num_classes: int = 10) -> nn.Module:
        return VGG(VGG_CONFIGS[name], num_classes)

    factory.__name__ = name
    return factory


def _resnet18(num_classes: int = 1000) -> nn.Module:
    return ResNet(BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), num_classes=num_classes)


def _resnet50(num_classes: int = 1000) -> nn.Module:
    return ResNet(Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), num_classes=num_classes)


def _resnet18_cifar(num_classes: int = 10) -> nn.Module:
    return ResNet(BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), num_classes=num_classes,
                  stem="cifar")


def _cifar_resnet(depth: int) -> Callable[..., nn.Module]:
    n = (depth - 2) // 6

    def factory(num_classes: int = 10) -> nn.Module:
        return ResNet(BasicBlock, (n, n, n), (16, 32, 64), num_classes=num_classes, stem="cifar")

    factory.__name__ = f"resnet{depth}"
    return factory


MODELS: dict[str, ModelSpec] = {
    "lenet300": ModelSpec(_lenet300, (1, 1, 28, 28), 10, "LeNet-300-100 MLP (784-300-100-10)"),
    "lenet5": ModelSpec(_lenet5, (1, 1, 28, 28), 10,
                        "LeNet-5: conv 6@5x5, pool, conv 16@5x5, pool, fc 120-84-10"),
    "vgg11": ModelSpec(_vgg("vgg11"), (1, 3, 32, 32), 10,
                       "CIFAR VGG-11 with BatchNorm, linear classifier 512->10"),
    "vgg16": ModelSpec(_vgg("vgg16"), (1, 3, 32, 32), 10,
                       "CIFAR VGG-16 with BatchNorm, linear classifier 512->10"),
    "vgg19": ModelSpec(_vgg("vgg19"), (1, 3, 32, 32), 10,
                       "CIFAR VGG-19 with BatchNorm, linear classifier 512->10"),
    "resnet18": ModelSpec(_resnet18, (1, 3, 224, 224), 1000,
                          "ImageNet ResNet-18 (torchvision layout)"),
    "resnet50": ModelSpec(_resnet50, (1, 3, 224, 224), 1000,
                          "ImageNet ResNet-50 (torchvision layout, stride on the 3x3)"),
    "resnet18_cifar": ModelSpec(_resnet18_cifar, (1, 3, 32, 32), 10,
                                "ResNet-18 with a CIFAR stem (3x3 stride 1, no max-pool)"),
    "resnet20": ModelSpec(_cifar_resnet(20), (1, 3, 32, 32), 10,
                          "CIFAR ResNet-20 (He et al. 2016), 1x1 conv shortcuts"),
    "resnet32": ModelSpec(_cifar_resnet(32), (1, 3, 32, 32), 10,
                          "CIFAR ResNet-32 (He et al. 2016), 1x1 conv shortcuts"),
    "vit_tiny": ModelSpec(vit_tiny, (1, 3, 32, 32), 10,
                          "CIFAR ViT-Tiny: patch 4, width 192, depth 12, 3 heads, class token"),
    "mobilenet_v3_small": ModelSpec(mobilenet_v3_small, (1, 3, 224, 224), 1000,
                                    "MobileNet-v3-Small: depthwise, SE gates, hard-swish"),
}


def _unknown_model(name: str) -> ModelSpecError:
    close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return ModelSpecError(
        f"unknown model {name!r}{hint} Built-in models: {', '.join(MODELS)}; "
        "or give path/to/file.py:factory or package.module:factory"
    )


def build_model(
    name: str, *, num_classes: int | None = None, seed: int = 0
) -> tuple[nn.Module, torch.Tensor]:
    """Build a built-in architecture with a deterministic initialisation.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`, e.g. ``"resnet20"``.
    num_classes : int, optional
        Output classes; the architecture's default (10 or 1000) when None.
    seed : int, default 0
        Seed of the initialisation. The global torch RNG is forked, so its state is untouched.

    Returns
    -------
    model : nn.Module
        The model, in eval mode.
    example_input : torch.Tensor
        Zeros of the default input shape (batch 1), float32.

    Raises
    ------
    ModelSpecError
        If ``name`` is not a built-in model (the message lists the known names and the closest
        match), or ``num_classes`` is not a positive integer.

    Examples
    --------
    >>> from sparsegraph.pytorch.models import build_model
    >>> model, x = build_model("lenet300")
    >>> tuple(x.shape), tuple(model(x).shape)
    ((1, 1, 28, 28), (1, 10))
    >>> build_model("resnet2O")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sparsegraph.errors.ModelSpecError: unknown model 'resnet2O'; did you mean ...'resnet20'...
    """
    spec = MODELS.get(name)
    if spec is None:
        raise _unknown_model(str(name))
    classes = spec.num_classes if num_classes is None else num_classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes <= 0:
        raise ModelSpecError(f"num_classes: expected a positive integer, got {num_classes!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = spec.factory(num_classes=classes)
    model.eval()
    return model, torch.zeros(spec.input_shape)


def prunable_params(model: nn.Module) -> int:
    """Number of Conv2d / Linear weights of ``model`` (the default prunable parameters).

    Examples
    --------
    >>> from sparsegraph.pytorch.models import build_model, prunable_params
    >>> prunable_params(build_model("lenet300")[0])
    266200
    """
    return sum(
        m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    )


# ---------------------------------------------------------------------------------------------
# MODEL arguments
# ---------------------------------------------------------------------------------------------


def _shape_of(value: Any, where: str) -> tuple[int, ...] | torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    try:
        shape = tuple(int(s) for s in value)
    except (TypeError, ValueError, OverflowError):
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise ModelSpecError(
            f"{where}: expected a tensor or a shape of positive integers, got {value!r}"
        )
    return shape


def _shapes_of(value: Any, where: str) -> list[tuple[int, ...] | torch.Tensor]:
    """One input's shape (``(1, 3, 32, 32)``), several (``[(1, 8), (1, 3)]``), or tensors, as
    a list with one entry per input; built shapes bounded by :data:`MAX_INPUT_ELEMENTS`."""
    if isinstance(value, torch.Tensor):
        return [value]
    try:
        items = list(value)
    except TypeError:
        items = [value]
    several = bool(items) and all(
        isinstance(v, torch.Tensor) or (not isinstance(v, (str, bytes)) and hasattr(v, "__len__"))
        for v in items)
    shapes = [_shape_of(v, f"{where} {i}" if several else where)
              for i, v in enumerate(items if several else [value])]
    total = sum(math.prod(s) for s in shapes if not isinstance(s, torch.Tensor))
    if total > MAX_INPUT_ELEMENTS:
        shown = " and ".join("x".join(map(str, s)) for s in shapes
                             if not isinstance(s, torch.Tensor))
        raise ModelSpecError(
            f"{where}: an example input of {shown} has {total:,} elements, more than the "
            f"{MAX_INPUT_ELEMENTS:,} the tracer runs on; a batch of 1 at the model's real "
            "input size is enough"
        )
    return shapes


def _example(shapes: list[tuple[int, ...] | torch.Tensor]) -> torch.Tensor | tuple:
    tensors = [s if isinstance(s, torch.Tensor) else torch.zeros(s) for s in shapes]
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


def _check_arity(model: nn.Module, given: int, spec: str) -> None:
    """Refuse an example input with fewer (or more) tensors than ``model.forward`` takes,
    saying how to give one shape per input."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # pragma: no cover - a forward without a signature
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional if p.default is p.empty]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    how = ("give one input shape per input, in order (on the command line, repeat the option: "
           "--input-shape 1,3,32,32 --input-shape 1,10)")
    if given < len(required):
        raise ModelSpecError(
            f"model {spec!r} takes {len(required)} inputs ({', '.join(required)}) but "
            f"{given} input shape{'s were' if given != 1 else ' was'} given; {how}"
        )
    if not varargs and given > len(positional):
        raise ModelSpecError(
            f"model {spec!r} takes {len(positional)} input{'s' if len(positional) != 1 else ''} "
            f"({', '.join(p.name for p in positional)}) but {given} input shapes were given; "
            f"{how}"
        )


def _declared_input(*objects: Any) -> list[tuple[int, ...] | torch.Tensor] | None:
    for obj in objects:
        for attr in ("example_input", "input_shape"):
            value = getattr(obj, attr, None)
            if value is not None and not isinstance(value, nn.Module):
                name = getattr(obj, "__name__", type(obj).__name__)
                return _shapes_of(value, f"{attr} of {name}")
    return None


def resolve_model(
    spec: str, input_shape: Sequence[int] | None = None
) -> tuple[nn.Module, torch.Tensor]:
    """Turn a MODEL argument into a model and an example input.

    Parameters
    ----------
    spec : str
        A built-in name (:data:`MODELS`), ``path/to/file.py:factory`` or
        ``package.module:factory``. ``factory`` (a dotted attribute path is allowed) is either a
        callable taking no arguments that returns an ``nn.Module`` (or a ``(module, example)``
        pair), or an ``nn.Module`` instance.
    input_shape : sequence of int, or sequence of them, optional
        Example input shape, batch dimension included; for a model whose ``forward`` takes
        several tensors, one shape per input (``[(1, 8), (1, 3)]``). Shapes are bounded by
        :data:`MAX_INPUT_ELEMENTS` elements in all.

    Returns
    -------
    model : nn.Module
        In eval mode.
    example_input : torch.Tensor or tuple of torch.Tensor
        ``zeros(input_shape)`` when ``input_shape`` is given (a tuple of them for several
        shapes); else the factory's (then the model's) attribute ``example_input`` (a tensor
        or shape) or ``input_shape``; else the tensor a factory returned with the model; else
        the built-in default.

    Raises
    ------
    ModelSpecError
        For an unknown built-in name, a missing file, an import error, a missing attribute, a
        factory that raises, exits (``sys.exit``) or does not return an ``nn.Module``, a user
        model whose input shape is unknown (pass ``--input-shape``), an input shape over
        :data:`MAX_INPUT_ELEMENTS`, and fewer or more input shapes than ``forward`` takes.
        One error, naming the problem.

    Examples
    --------
    >>> from sparsegraph.pytorch.models import resolve_model
    >>> model, x = resolve_model("lenet5", input_shape=(2, 1, 28, 28))
    >>> tuple(model(x).shape)
    (2, 10)
    >>> resolve_model("no/such/file.py:make")
    Traceback (most recent call last):
    ...
    sparsegraph.errors.ModelSpecError: MODEL: file 'no/such/file.py' does not exist
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"MODEL: expected a built-in name or module:factory, got {spec!r}")
    spec = spec.strip()
    shapes: list[tuple[int, ...] | torch.Tensor] | None = None
    if input_shape is not None:
        shapes = _shapes_of(input_shape, "input_shape")
    if spec in MODELS:
        model, example = build_model(spec)
        if shapes is None:
            return model, example
    else:
        if ":" not in spec or spec.endswith(":"):
            if ":" not in spec and looks_like_file(spec):
                raise ModelSpecError(
                    f"MODEL {spec!r}: name the factory too, as {spec}:factory"
                )
            raise _unknown_model(spec)
        factory = import_object(spec, "MODEL", error=ModelSpecError)
        returned_example: torch.Tensor | None = None
        if isinstance(factory, nn.Module):
            model = factory
        elif callable(factory):
            try:
                result = factory()
            except SystemExit as exc:  # a factory that calls sys.exit() made no model
                raise ModelSpecError(
                    f"model factory {spec!r} called sys.exit({exc.code!r}) instead of returning "
                    "a torch.nn.Module"
                ) from None
            except Exception as exc:  # noqa: BLE001 - a user's factory can raise anything
                raise ModelSpecError(
                    f"model factory {spec!r} raised {type(exc).__name__}: {exc}"
                ) from exc
            if (isinstance(result, tuple) and len(result) == 2
                    and isinstance(result[0], nn.Module)
                    and isinstance(result[1], torch.Tensor)):
                result, returned_example = result
            if not isinstance(result, nn.Module):
                raise ModelSpecError(
                    f"model factory {spec!r} returned {type(result).__name__}, expected a "
                    "torch.nn.Module"
                )
            model = result
        else:
            raise ModelSpecError(
                f"{spec!r} is a {type(factory).__name__}, expected a torch.nn.Module or a "
                "callable returning one"
            )
        if shapes is None:
            shapes = _declared_input(factory, model)
        if shapes is None and returned_example is not None:
            shapes = [returned_example]
        if shapes is None:
            raise ModelSpecError(
                f"model {spec!r}: the input shape is unknown; pass {{input_shape}} or give the "
                "factory an input_shape attribute", input_shape="input_shape=(1, 3, 32, 32)",
            )
        model.eval()
    _check_arity(model, len(shapes), spec)
    return model, _example(shapes)
