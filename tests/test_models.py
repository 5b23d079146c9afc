"""Built-in architectures (sparsegraph.pytorch.models) and MODEL resolution."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from sparsegraph.errors import ModelSpecError
from sparsegraph.pytorch.models import MODELS, build_model, prunable_params, resolve_model

# (name, output classes, total parameters incl. BN and biases)
# resnet18 / resnet50: torchvision.models.resnet18() / resnet50() parameter counts.
# The others are computed by hand from the layer shapes below.
_LENET300 = (784 * 300 + 300) + (300 * 100 + 100) + (100 * 10 + 10)
_LENET5 = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)


def _vgg_count(config: list) -> int:
    total, c = 0, 3
    for item in config:
        if item == "M":
            continue
        total += item * c * 9 + 2 * item  # conv (no bias) + BN weight/bias
        c = item
    return total + 512 * 10 + 10


def _cifar_resnet_count(n: int) -> int:
    total = 16 * 3 * 9 + 32  # stem conv + BN
    c = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += width * c * 9 + 2 * width + width * width * 9 + 2 * width
            if c != width:
                total += width * c + 2 * width  # 1x1 conv shortcut + BN (option B)
            c = width
    return total + 64 * 10 + 10


def _vit_count(img: int, patch: int, dim: int, depth: int, classes: int) -> int:
    tokens = (img // patch) ** 2 + 1
    block = 4 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + 2 * (4 * dim * dim) + 5 * dim
    return (3 * patch * patch * dim + dim) + dim + tokens * dim + depth * block + 2 * dim + (
        dim * classes + classes)


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

EXPECTED = {
    "lenet300": (10, _LENET300),
    "lenet5": (10, _LENET5),
    "vgg16": (10, _vgg_count(_VGG16)),
    "resnet18": (1000, 11_689_512),
    "resnet50": (1000, 25_557_032),
    "resnet20": (10, _cifar_resnet_count(3)),
    "resnet32": (10, _cifar_resnet_count(5)),
    "vit_tiny": (10, _vit_count(32, 4, 192, 12, 10)),
    # torchvision.models.mobilenet_v3_small() parameter count
    "mobilenet_v3_small": (1000, 2_542_856),
}


def test_vit_b16_size():
    # torchvision.models.vit_b_16() / timm vit_base_patch16_224 parameter count
    from sparsegraph.pytorch.models_modern import VisionTransformer

    with torch.device("meta"):
        model = VisionTransformer(img_size=224, patch_size=16, num_classes=1000, dim=768,
                                  depth=12, heads=12)
    assert _count(model) == _vit_count(224, 16, 768, 12, 1000) == 86_567_656


def test_modern_architecture_details():
    vit = dict(build_model("vit_tiny")[0].named_parameters())
    assert vit["patch_embed.proj.weight"].shape == (192, 3, 4, 4)
    assert vit["pos_embed"].shape == (1, 65, 192) and vit["cls_token"].shape == (1, 1, 192)
    assert vit["blocks.11.attn.qkv.weight"].shape == (576, 192)
    assert vit["blocks.0.mlp.fc1.weight"].shape == (768, 192)
    assert vit["head.weight"].shape == (10, 192)
    mnv3 = build_model("mobilenet_v3_small")[0]
    params = dict(mnv3.named_parameters())
    assert params["features.1.block.0.0.weight"].shape == (16, 1, 3, 3)  # depthwise, no expand
    assert params["features.1.block.1.fc1.weight"].shape == (8, 16, 1, 1)  # squeeze to 8
    assert params["features.4.block.1.0.weight"].shape == (96, 1, 5, 5)
    assert params["classifier.0.weight"].shape == (1024, 576)
    # stem, expand + depthwise in the 8 hard-swish blocks, last 1x1 conv, classifier
    assert sum(isinstance(m, nn.Hardswish) for m in mnv3.modules()) == 1 + 2 * 8 + 1 + 1
    assert mnv3.features[0][0].stride == (2, 2)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_param_counts(name):
    classes, params = EXPECTED[name]
    with torch.device("meta"):
        model = MODELS[name].factory(num_classes=classes)
    assert _count(model) == params


def test_resnet20_is_about_027m():
    with torch.device("meta"):
        assert 0.26e6 < _count(MODELS["resnet20"].factory()) < 0.28e6


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_shapes(name):
    model, x = build_model(name)
    assert tuple(x.shape) == MODELS[name].input_shape
    assert x.shape[0] == 1 and not x.any()
    with torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (1, MODELS[name].num_classes)
    assert not model.training


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "vgg11"])
def test_num_classes_and_batch(name):
    model, x = build_model(name, num_classes=7)
    with torch.no_grad():
        y = model(torch.zeros((3, *x.shape[1:])))
    assert tuple(y.shape) == (3, 7)


def test_torchvision_parameter_names():
    names = [n for n, _ in build_model("resnet18")[0].named_parameters()]
    for expected in ("conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                     "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
                     "layer4.1.conv2.weight", "fc.weight", "fc.bias"):
        assert expected in names
    assert "layer1.0.downsample.0.weight" not in names  # no shortcut conv without shape change
    names50 = [n for n, _ in build_model("resnet50")[0].named_parameters()]
    assert "layer1.0.downsample.0.weight" in names50 and "layer3.5.conv3.weight" in names50
    vgg = dict(build_model("vgg16")[0].named_parameters())
    assert vgg["features.0.weight"].shape == (64, 3, 3, 3)
    assert vgg["features.1.weight"].shape == (64,)  # BatchNorm after the conv
    assert vgg["classifier.weight"].shape == (10, 512)
    assert "features.0.bias" not in vgg
    convs = [n for n, p in vgg.items() if p.dim() == 4]
    assert len(convs) == 13


def test_architecture_details():
    r50 = dict(build_model("resnet50")[0].named_parameters())
    assert r50["conv1.weight"].shape == (64, 3, 7, 7)
    assert r50["fc.weight"].shape == (1000, 2048)
    assert r50["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)
    model = build_model("resnet50")[0]
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    cifar = build_model("resnet18_cifar")[0]
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert cifar.maxpool is None
    r20 = build_model("resnet20")[0]
    assert len(r20.layer1) == len(r20.layer2) == len(r20.layer3) == 3
    assert r20.layer2[0].downsample[0].kernel_size == (1, 1)
    assert not hasattr(r20, "layer4")
    assert len(build_model("resnet32")[0].layer3) == 5
    lenet5 = build_model("lenet5")[0]
    assert lenet5.conv1.padding == (2, 2)
    assert all(m.bias is None for m in r20.modules() if isinstance(m, nn.Conv2d))


def test_prunable_params():
    model = build_model("lenet300")[0]
    assert prunable_params(model) == 784 * 300 + 300 * 100 + 100 * 10


def test_deterministic_init_and_rng_untouched():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_model("resnet20", seed=5)[0].state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_model("resnet20", seed=5)[0].state_dict()
    c = build_model("resnet20", seed=6)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_unknown_model_suggests():
    with pytest.raises(ModelSpecError, match=r"mean .*'resnet20'.*Built-in models: lenet300"):
        build_model("resnet2O")
    with pytest.raises(ModelSpecError, match="num_classes"):
        build_model("lenet5", num_classes=0)


def test_resolve_builtin():
    model, x = resolve_model("resnet20")
    assert tuple(x.shape) == (1, 3, 32, 32)
    model, x = resolve_model("lenet300", (4, 1, 28, 28))
    assert tuple(x.shape) == (4, 1, 28, 28)
    assert tuple(model(x).shape) == (4, 10)


USER_FILE = """
import torch
from torch import nn

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 3)
    def forward(self, x):
        return self.fc(x)

def make():
    return Tiny()

def make_shaped():
    return Tiny()
make_shaped.input_shape = (2, 5)

def make_pair():
    return Tiny(), torch.ones(1, 5)

def broken():
    raise RuntimeError("boom")

def not_a_module():
    return 42

instance = Tiny()
instance.example_input = torch.zeros(3, 5)

class Holder:
    factory = staticmethod(make_shaped)

NUMBER = 3
"""


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "user_model.py"
    path.write_text(textwrap.dedent(USER_FILE))
    return path


def test_resolve_file(user_file):
    model, x = resolve_model(f"{user_file}:make", (1, 5))
    assert isinstance(model, nn.Module) and tuple(x.shape) == (1, 5)
    _, x = resolve_model(f"{user_file}:make_shaped")
    assert tuple(x.shape) == (2, 5)
    _, x = resolve_model(f"{user_file}:make_pair")
    assert torch.equal(x, torch.ones(1, 5))
    model, x = resolve_model(f"{user_file}:instance")
    assert tuple(x.shape) == (3, 5)
    _, x = resolve_model(f"{user_file}:Holder.factory")
    assert tuple(x.shape) == (2, 5)
    _, x = resolve_model(f"{user_file}:make_shaped", (7, 5))  # explicit shape wins
    assert tuple(x.shape) == (7, 5)


def test_resolve_module(user_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_file.parent))
    model, x = resolve_model("user_model:make_shaped")
    assert tuple(model(x).shape) == (2, 3)


@pytest.mark.parametrize(
    ("suffix", "pattern"),
    [
        (":make", r"input shape is unknown; pass input_shape=\(1, 3, 32, 32\)"),
        (":missing", "has no attribute 'missing'"),
        (":mak", "did you mean 'make'"),
        (":broken", "raised RuntimeError: boom"),
        (":not_a_module", "returned int, expected a torch.nn.Module"),
        (":NUMBER", "is a int, expected a torch.nn.Module"),
        ("", "name the factory too"),
    ],
)
def test_resolve_errors(user_file, suffix, pattern):
    with pytest.raises(ModelSpecError, match=pattern):
        resolve_model(f"{user_file}{suffix}")


def test_resolve_other_errors(tmp_path):
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_model(f"{tmp_path}/nope.py:make")
    bad = tmp_path / "bad.py"
    bad.write_text("import definitely_not_a_module_xyz\n")
    with pytest.raises(ModelSpecError, match="importing .*bad.py. failed: ModuleNotFoundError"):
        resolve_model(f"{bad}:make")
    syntax = tmp_path / "syntax.py"
    syntax.write_text("def f(:\n")
    with pytest.raises(ModelSpecError, match="SyntaxError"):
        resolve_model(f"{syntax}:f")
    with pytest.raises(ModelSpecError, match="cannot import module 'no_such_pkg_xyz.mod'"):
        resolve_model("no_such_pkg_xyz.mod:make")
    with pytest.raises(ModelSpecError, match="unknown model 'vgg17'"):
        resolve_model("vgg17")
    with pytest.raises(ModelSpecError, match="input_shape"):
        resolve_model("lenet5", (1, 0, 28))
    with pytest.raises(ModelSpecError):
        resolve_model("")


def test_cli_models(capsys):
    from sparsegraph.cli import main

    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(MODELS)
    assert rows["resnet18"]["params"] == 11_689_512
    assert rows["resnet50"]["input_shape"] == [1, 3, 224, 224]
    assert rows["lenet300"]["prunable_params"] == 266_200
    assert main(["models"]) == 0
    assert "resnet50" in capsys.readouterr().out


def test_static_catalog_matches_the_real_models():
    """``sparsegraph models`` reads a static table (no torch import); it must be the truth."""
    import torch

    from sparsegraph.pytorch.catalog import CATALOG
    from sparsegraph.pytorch.models import prunable_params

    assert list(CATALOG) == list(MODELS)
    for name, spec in MODELS.items():
        facts = CATALOG[name]
        with torch.device("meta"):
            model = spec.factory(num_classes=spec.num_classes)
        assert facts.input_shape == spec.input_shape, name
        assert facts.num_classes == spec.num_classes, name
        assert facts.description == spec.description, name
        assert facts.params == sum(p.numel() for p in model.parameters()), name
        assert facts.prunable_params == prunable_params(model), name
