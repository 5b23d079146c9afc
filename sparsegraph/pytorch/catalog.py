"""The built-in models as plain facts: name, input shape, classes, parameter counts, description.

``sparsegraph models`` and the command line's help read this table, so listing the built-ins
needs neither torch nor numba (the module imports only the standard library). The models
themselves are :data:`sparsegraph.pytorch.models.MODELS`; a test builds each one and checks
every number here against it, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CATALOG", "ModelFacts"]


class ModelFacts(NamedTuple):
    """What ``sparsegraph models`` shows about one built-in model."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    params: int
    prunable_params: int
    description: str


#: name -> facts, in the order ``sparsegraph models`` lists them.
CATALOG: dict[str, ModelFacts] = {f.name: f for f in (
    ModelFacts("lenet300", (1, 1, 28, 28), 10, 266610, 266200,
               "LeNet-300-100 MLP (784-300-100-10)"),
    ModelFacts("lenet5", (1, 1, 28, 28), 10, 61706, 61470,
               "LeNet-5: conv 6@5x5, pool, conv 16@5x5, pool, fc 120-84-10"),
    ModelFacts("vgg11", (1, 3, 32, 32), 10, 9228362, 9222848,
               "CIFAR VGG-11 with BatchNorm, linear classifier 512->10"),
    ModelFacts("vgg16", (1, 3, 32, 32), 10, 14724042, 14715584,
               "CIFAR VGG-16 with BatchNorm, linear classifier 512->10"),
    ModelFacts("vgg19", (1, 3, 32, 32), 10, 20035018, 20024000,
               "CIFAR VGG-19 with BatchNorm, linear classifier 512->10"),
    ModelFacts("resnet18", (1, 3, 224, 224), 1000, 11689512, 11678912,
               "ImageNet ResNet-18 (torchvision layout)"),
    ModelFacts("resnet50", (1, 3, 224, 224), 1000, 25557032, 25502912,
               "ImageNet ResNet-50 (torchvision layout, stride on the 3x3)"),
    ModelFacts("resnet18_cifar", (1, 3, 32, 32), 10, 11173962, 11164352,
               "ResNet-18 with a CIFAR stem (3x3 stride 1, no max-pool)"),
    ModelFacts("resnet20", (1, 3, 32, 32), 10, 272474, 270896,
               "CIFAR ResNet-20 (He et al. 2016), 1x1 conv shortcuts"),
    ModelFacts("resnet32", (1, 3, 32, 32), 10, 466906, 464432,
               "CIFAR ResNet-32 (He et al. 2016), 1x1 conv shortcuts"),
    ModelFacts("vit_tiny", (1, 3, 32, 32), 10, 5362762, 5319552,
               "CIFAR ViT-Tiny: patch 4, width 192, depth 12, 3 heads, class token"),
    ModelFacts("mobilenet_v3_small", (1, 3, 224, 224), 1000, 2542856, 2525832,
               "MobileNet-v3-Small: depthwise, SE gates, hard-swish"),
)}
