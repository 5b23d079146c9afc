"""Built-in modern architectures: a Vision Transformer and a MobileNet-v3.

Written here in plain PyTorch (no torchvision, no timm), in the layouts those libraries use, so
the parameter names of a mask made for one of them carry over:

========================  =========  ===========  =========================================
name                      input      classes      architecture
========================  =========  ===========  =========================================
``vit_tiny``              3x32x32    10           ViT-Tiny for CIFAR: patch 4, width 192,
                                                  depth 12, 3 heads, MLP ratio 4, class
                                                  token, learned position embedding,
                                                  pre-norm blocks (5,362,762 parameters)
``mobilenet_v3_small``    3x224x224  1000         MobileNet-v3-Small (Howard et al. 2019):
                                                  depthwise convolutions, squeeze-excitation
                                                  with hard-sigmoid gates, hard-swish
                                                  (2,542,856 parameters, as torchvision)
========================  =========  ===========  =========================================

:class:`VisionTransformer` follows timm's ``VisionTransformer`` naming (``patch_embed.proj``,
``cls_token``, ``pos_embed``, ``blocks.N.attn.qkv``, ``blocks.N.attn.proj``, ``blocks.N.mlp.fc1``,
``head``); its attention is :func:`torch.nn.functional.scaled_dot_product_attention` on the heads
split from one packed ``qkv`` projection, as timm's fused attention. ``VisionTransformer(
img_size=224, patch_size=16, dim=768, depth=12, heads=12)`` is ViT-B/16 (86,567,656 parameters).
:class:`MobileNetV3` follows torchvision's naming (``features.N.block.M.0`` convolutions,
``features.N.block.M.fc1`` squeeze-excitation, ``classifier.0`` / ``classifier.3``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MobileNetV3", "VisionTransformer", "mobilenet_v3_small", "vit_tiny"]


# ---------------------------------------------------------------------------------------------
# Vision Transformer
# ---------------------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` patches, each projected to ``dim`` by one strided
    convolution; returns tokens ``(B, patches, dim)``."""

    def __init__(self, img_size: int, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention: one packed ``qkv`` Linear, scaled dot-product attention per
    head, output projection ``proj``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """``fc1`` -> GELU -> ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT (Dosovitskiy et al. 2021) with a class token and a learned position embedding.

    Tokens: the class token then the patches in row-major order; the position embedding is
    added to all of them; ``depth`` pre-norm blocks, a final LayerNorm and a linear ``head`` on
    the class token. Linear weights are drawn from a normal distribution truncated at two
    standard deviations (std 0.02), biases are zero (timm's initialisation).

    Parameters
    ----------
    img_size, patch_size, in_channels : int
        Square input side, patch side (dividing ``img_size``), input channels.
    num_classes : int
        Outputs of the head.
    dim, depth, heads : int
        Token width, number of blocks, attention heads (dividing ``dim``).
    mlp_ratio : float
        MLP hidden width over ``dim``.

    Examples
    --------
    >>> import torch
    >>> from sparsegraph.pytorch.models_modern import VisionTransformer
    >>> with torch.device("meta"):  # ViT-B/16
    ...     vit_b16 = VisionTransformer(img_size=224, patch_size=16, num_classes=1000, dim=768,
    ...                                 depth=12, heads=12)
    >>> sum(p.numel() for p in vit_b16.parameters())
    86567656
    """

    def __init__(self, *, img_size: int = 32, patch_size: int = 4, in_channels: int = 3,
                 num_classes: int = 10, dim: int = 192, depth: int = 12, heads: int = 3,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.norm(x)[:, 0])


def vit_tiny(num_classes: int = 10) -> VisionTransformer:
    """ViT-Tiny for 32x32 CIFAR images (the sparse-ViT benchmark size).

    Patch 4 (64 patches and the class token), width 192, depth 12, 3 heads, MLP ratio 4.

    Parameters
    ----------
    num_classes : int, default 10
        Outputs of the linear head.

    Returns
    -------
    VisionTransformer
        In training mode, as a module is made (:func:`~sparsegraph.build_model` returns it in
        eval mode).

    Examples
    --------
    >>> import torch
    >>> from sparsegraph.pytorch.models_modern import vit_tiny
    >>> model = vit_tiny().eval()
    >>> tuple(model(torch.zeros(2, 3, 32, 32)).shape)
    (2, 10)
    >>> sum(p.numel() for p in model.parameters())
    5362762
    """
    return VisionTransformer(img_size=32, patch_size=4, num_classes=num_classes, dim=192,
                             depth=12, heads=3)


# ---------------------------------------------------------------------------------------------
# MobileNet-v3
# ---------------------------------------------------------------------------------------------


def _make_divisible(value: float, divisor: int = 8) -> int:
    """The nearest multiple of ``divisor`` to ``value``, at least ``divisor``, never more than
    10% below ``value`` (the channel rounding of the MobileNet papers)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvBNAct(nn.Sequential):
    """Convolution (no bias, "same" padding) -> BatchNorm -> activation (``None``: none)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=0.001, momentum=0.01),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-excitation (Hu et al. 2018) as in MobileNet-v3: global average pool, 1x1 conv
    ``fc1`` to ``squeeze`` channels, ReLU, 1x1 conv ``fc2`` back, hard-sigmoid gate,
    ``gate * x``."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.fc2(self.relu(self.fc1(scale)))
        return F.hardsigmoid(scale) * x


class InvertedResidual(nn.Module):
    """MobileNet-v3 bottleneck: 1x1 expansion (omitted when ``expanded == c_in``), depthwise
    ``kernel x kernel`` convolution carrying the stride, optional squeeze-excitation, linear 1x1
    projection; a residual add when the stride is 1 and the widths match."""

    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, use_se: bool,
                 act: type[nn.Module], stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(ConvBNAct(c_in, expanded, 1, act=act))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, _make_divisible(expanded // 4)))
        layers.append(ConvBNAct(expanded, c_out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


# (c_in, kernel, expanded, c_out, squeeze-excitation, hard-swish, stride): Table 2 of
# Howard et al. 2019, "Searching for MobileNetV3"
_V3_SMALL: tuple[tuple[int, int, int, int, bool, bool, int], ...] = (
    (16, 3, 16, 16, True, False, 2),
    (16, 3, 72, 24, False, False, 2),
    (24, 3, 88, 24, False, False, 1),
    (24, 5, 96, 40, True, True, 2),
    (40, 5, 240, 40, True, True, 1),
    (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1),
    (48, 5, 144, 48, True, True, 1),
    (48, 5, 288, 96, True, True, 2),
    (96, 5, 576, 96, True, True, 1),
    (96, 5, 576, 96, True, True, 1),
)


class MobileNetV3(nn.Module):
    """MobileNet-v3: a 3x3 stride-2 hard-swish stem, the inverted-residual ``setting``, a 1x1
    convolution to ``6 x`` the last width, global average pooling, and the classifier
    ``Linear -> hard-swish -> dropout -> Linear``. Convolutions use Kaiming-normal (fan-out)
    weights, Linear layers N(0, 0.01), biases zero (torchvision's initialisation)."""

    def __init__(self, setting: Sequence[tuple[int, int, int, int, bool, bool, int]] = _V3_SMALL,
                 last_channel: int = 1024, num_classes: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(in_channels, setting[0][0], 3, 2, act=nn.Hardswish)]
        for c_in, kernel, expanded, c_out, use_se, hard_swish, stride in setting:
            act = nn.Hardswish if hard_swish else nn.ReLU
            layers.append(InvertedResidual(c_in, kernel, expanded, c_out, use_se, act, stride))
        last_in = setting[-1][3]
        layers.append(ConvBNAct(last_in, 6 * last_in, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_in, last_channel),
            nn.Hardswish(),
            nn.Dropout(p=0.2),
            nn.Linear(last_channel, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v3_small(num_classes: int = 1000) -> MobileNetV3:
    """MobileNet-v3-Small for 224x224 ImageNet images (torchvision's layout and counts).

    Parameters
    ----------
    num_classes : int, default 1000
        Outputs of the last Linear layer.

    Returns
    -------
    MobileNetV3
        In training mode, as a module is made (:func:`~sparsegraph.build_model` returns it in
        eval mode).

    Examples
    --------
    >>> import torch
    >>> from sparsegraph.pytorch.models_modern import mobilenet_v3_small
    >>> with torch.device("meta"):
    ...     model = mobilenet_v3_small()
    >>> sum(p.numel() for p in model.parameters())  # torchvision's count
    2542856
    >>> model.features[5].block[2].fc2  # the squeeze-excitation of a hard-swish block
    Conv2d(64, 240, kernel_size=(1, 1), stride=(1, 1))
    """
    return MobileNetV3(_V3_SMALL, 1024, num_classes)
