"""Built-in MLP and convolutional architectures of the pruning-at-initialization literature:
LeNet-300-100, LeNet-5, CIFAR VGG and the ResNets (ImageNet and CIFAR).

Plain PyTorch (no torchvision): ``nn.Conv2d(bias=False)`` before BatchNorm, ``nn.Linear``,
residual ``out + identity`` in ``forward`` and ``torch.flatten(x, 1)``, with torchvision's
parameter names where it has an analogue. Their registry entries (names, default inputs) are
:data:`sparsegraph.pytorch.models.MODELS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["VGG", "VGG_CONFIGS", "BasicBlock", "Bottleneck", "LeNet300", "LeNet5", "ResNet"]


# ---------------------------------------------------------------------------------------------
# LeNets
# ---------------------------------------------------------------------------------------------


class LeNet300(nn.Module):
    """LeNet-300-100: a 784-300-100-10 MLP with ReLU (LeCun et al. 1998)."""

    def __init__(self, num_classes: int = 10, in_features: int = 784) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    """LeNet-5 for 28x28 inputs: conv 6@5x5 (padding 2), max-pool, conv 16@5x5, max-pool,
    fc 400-120-84-classes, ReLU activations."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


# ---------------------------------------------------------------------------------------------
# CIFAR VGG
# ---------------------------------------------------------------------------------------------

VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """CIFAR-style VGG: 3x3 convolutions (padding 1) with BatchNorm and ReLU, 2x2 max-pools,
    and one linear classifier 512 -> classes (as in the SNIP / GraSP / SynFlow experiments)."""

    def __init__(self, config: Sequence[int | str], num_classes: int = 10,
                 in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                width = int(item)
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


# ---------------------------------------------------------------------------------------------
# ResNets
# ---------------------------------------------------------------------------------------------


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """A residual block's shortcut: a 1x1 convolution + BatchNorm when the shape changes
    (torchvision's ``downsample``), else None (the identity)."""
    if stride != 1 or c_in != c_out:
        return nn.Sequential(_conv1x1(c_in, c_out, stride), nn.BatchNorm2d(c_out))
    return None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; a 1x1 convolution + BatchNorm shortcut when the
    shape changes."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = _conv3x3(c_in, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.conv2 = _conv3x3(width, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, torchvision's "v1.5"), 1x1 expand by 4, with
    BatchNorm; a 1x1 convolution + BatchNorm shortcut when the shape changes."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = _conv1x1(c_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, c_out)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet of ``blocks`` per stage and ``widths`` per stage.

    ``stem="imagenet"``: 7x7 stride-2 convolution and 3x3 stride-2 max-pool (torchvision);
    ``stem="cifar"``: one 3x3 stride-1 convolution, no max-pool. Stage ``i > 0`` starts with
    stride 2. Global average pooling and one linear layer ``fc`` end the network.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 1000,
        stem: str = "imagenet",
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        stem_width = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_width, kernel_size=7, stride=2, padding=3,
                                   bias=False)
        elif stem == "cifar":
            self.conv1 = _conv3x3(in_channels, stem_width)
        else:  # pragma: no cover - internal
            raise ValueError(f"unknown stem {stem!r}")
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU()
        self.maxpool: nn.Module | None = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else None
        )
        channels = stem_width
        for i, (n, width) in enumerate(zip(blocks, widths, strict=True)):
            stage: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(block(channels, width, stride))
                channels = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.num_stages = len(blocks)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)
