"""SynFlow's flow walk: restricted products and class compression against float64 autograd, and
masks pinned to the implementation they replaced.

The scores come from :mod:`sparsegraph.graph.kinds.layer_flow` (layer uses as products over
their live block, equal-row/column classes of the all-ones flow, weight gradients at kept
positions only); the oracle is plain float64 autograd on the linearised torch model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sparsegraph as sg
from sparsegraph.graph.kinds import layer_flow
from sparsegraph.graph.trace import trace
from sparsegraph.graph.walker import FlowWalk
from sparsegraph.pytorch.synflow import _flow, synflow_scores

# ------------------------------------------------------------------------------------ oracle


class _Residual(nn.Module):
    def __init__(self, body: nn.Module, skip: nn.Module) -> None:
        super().__init__()
        self.body, self.skip = body, skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _oracle(model: nn.Module, x: torch.Tensor, masks: dict[str, np.ndarray]
            ) -> dict[str, np.ndarray]:
    """``|w| * mask * dR/dw`` by float64 autograd on a copy of a model made of linear pieces
    only (convolutions, linear layers, unpadded average pools, flatten, residual sums), biases
    zero, on an all-ones input; R is the sum of the outputs."""
    work = _linear_copy(model)
    params = {}
    for name, mask in masks.items():
        p = work.get_parameter(name)
        with torch.no_grad():
            p.copy_(p.abs() * torch.from_numpy(mask))
        p.requires_grad_(True)
        params[name] = p
    work(torch.ones(x.shape, dtype=torch.float64)).sum().backward()
    return {n: (p * p.grad).detach().numpy() for n, p in params.items()}


def _linear_copy(model: nn.Module) -> nn.Module:
    import copy

    work = copy.deepcopy(model).double()
    for m in work.modules():
        if getattr(m, "bias", None) is not None:
            with torch.no_grad():
                m.bias.zero_()
    return work


def _assert_proportional(ours: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Equal up to one common positive factor (to float64 rounding)."""
    top = max(want, key=lambda n: want[n].max())
    if want[top].max() == 0:  # collapsed: no path, every score zero
        assert all((ours[n] == 0).all() for n in want)
        return
    ratio = want[top].max() / ours[top].max()
    for name in want:
        np.testing.assert_allclose(ours[name] * ratio, want[name], rtol=1e-10,
                                   atol=1e-13 * want[top].max(), err_msg=name)
        assert ((ours[name] != 0) == (want[name] != 0)).all(), name


def _masks(net, rng: np.random.Generator, density: float, dead: float
           ) -> dict[str, np.ndarray]:
    """Random masks; with probability ``dead`` a whole output unit or input channel is cut
    (so the live blocks are strictly smaller than the weights)."""
    out = {}
    for layer in net.layers:
        m = rng.random(layer.shape) < density
        if layer.shape[0] > 1:
            m[rng.random(layer.shape[0]) < dead] = False
        if len(layer.shape) > 1 and layer.shape[1] > 1:
            m[:, rng.random(layer.shape[1]) < dead] = False
        out[layer.name] = m
    return out


# ------------------------------------------------------------------------- scores vs oracle


def _conv_stack(rng: np.random.Generator, dims: int, size: int) -> tuple[nn.Module, tuple]:
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    layers: list[nn.Module] = []
    c = c_in = int(rng.integers(1, 4))
    n = size
    for _ in range(int(rng.integers(1, 4))):
        k, s, d = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
        p = int(rng.integers(0, k))
        out = (n + 2 * p - d * (k - 1) - 1) // s + 1
        if out < 1:
            break
        c_out = int(rng.integers(1, 6))
        layers.append(conv(c, c_out, k, stride=s, padding=p, dilation=d))
        c, n = c_out, out
    layers += [nn.Flatten(), nn.Linear(c * n ** dims, 3)]
    return nn.Sequential(*layers), (1, c_in) + (size,) * dims


@settings(max_examples=12)
@given(seed=st.integers(0, 2**32 - 1), dims=st.sampled_from([1, 2]),
       size=st.integers(4, 14), density=st.floats(0.2, 1.0), dead=st.sampled_from([0.0, 0.4]))
def test_scores_match_autograd_on_random_convolutions(seed, dims, size, density, dead):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed % 2**31)
    model, shape = _conv_stack(rng, dims, size)
    x = torch.zeros(shape)
    net = trace(model, x)
    masks = _masks(net, rng, density, dead)
    want = _oracle(model, x, masks)
    ours = synflow_scores(net, {n: model.get_parameter(n) for n in net.names}, masks)
    _assert_proportional(ours, want)


class _Spy:
    """Counts which branch :class:`layer_flow.Columns` takes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fwd = self.grad = self.calls = 0
        orig = layer_flow.Columns.__init__
        spy = self

        def init(cols, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
            orig(cols, *args, **kwargs)
            spy.calls += 1
            spy.fwd += cols.compress_fwd
            spy.grad += cols.compress_grad

        monkeypatch.setattr(layer_flow.Columns, "__init__", init)


def test_class_compression_and_live_blocks_match_autograd(monkeypatch):
    # a ResNet-like stack on a 24x24 all-ones input: away from the borders rows and columns
    # are equal, so the first convolutions run over a few classes of positions; cut channels
    # shrink the blocks; a residual sum and a strided 1x1 shortcut join the branches
    torch.manual_seed(3)
    block = _Residual(nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, stride=2),
                                    nn.Conv2d(6, 6, 3, padding=1)),
                      nn.Conv2d(4, 6, 1, stride=2))
    model = nn.Sequential(nn.Conv2d(2, 4, 5, padding=2), nn.AvgPool2d(2, 2),
                          nn.Conv2d(4, 4, 3, padding=1, dilation=1), block, nn.Flatten(),
                          nn.Linear(6 * 6 * 6, 5))
    x = torch.zeros(1, 2, 24, 24)
    net = trace(model, x)
    spy = _Spy(monkeypatch)
    for density, dead in ((1.0, 0.0), (0.5, 0.3), (0.3, 0.3)):
        masks = _masks(net, np.random.default_rng(int(density * 100)), density, dead)
        want = _oracle(model, x, masks)
        ours = synflow_scores(net, {n: model.get_parameter(n) for n in net.names}, masks)
        _assert_proportional(ours, want)
    assert spy.fwd > 0 and spy.grad > 0  # the class paths ran
    assert spy.fwd < spy.calls  # and so did the plain im2col


def test_linear_on_tokens_matches_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))
    x = torch.zeros(1, 7, 6)
    net = trace(model, x)
    masks = _masks(net, np.random.default_rng(0), 0.6, 0.3)
    want = _oracle(model, x, masks)
    ours = synflow_scores(net, {n: model.get_parameter(n) for n in net.names}, masks)
    _assert_proportional(ours, want)


def test_kept_positions_give_the_dense_gradients():
    from sparsegraph.pytorch.models import build_model

    model, x = build_model("resnet20")
    net = trace(model, x)
    masks = _masks(net, np.random.default_rng(1), 0.3, 0.2)
    eff = [model.get_parameter(n).detach().double().abs() * torch.from_numpy(masks[n])
           for n in net.names]
    kept = [np.flatnonzero(masks[n]) for n in net.names]
    dense = _flow(net, eff)
    at_kept = _flow(net, eff, kept)
    for li, name in enumerate(net.names):
        assert at_kept[li].shape == (kept[li].size,), name
        np.testing.assert_allclose(at_kept[li].numpy(), dense[li].numpy().reshape(-1)[kept[li]],
                                   rtol=1e-12, atol=0, err_msg=name)


def test_block_reads_the_supported_weights_in_order():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.random((6, 5, 3, 3)))
    mask = rng.random(w.shape) < 0.4
    mask[[1, 4]] = False  # dead output units
    mask[:, [0, 2, 3]] = False  # dead input channels
    support = np.flatnonzero(mask)
    blk = layer_flow.Block(torch, w, support, positions=100)
    assert blk.rows.tolist() == [0, 2, 3, 5] and blk.chans.tolist() == [1, 4]
    assert tuple(blk.wb.shape) == (4, 2 * 9)
    np.testing.assert_array_equal(blk.wb.reshape(-1)[blk.pos].numpy(),
                                  w.reshape(-1).numpy()[support])
    # a matrix-vector product (one position) is never copied into a block
    gemv = layer_flow.Block(torch, w, support, positions=1)
    assert gemv.rows is None and gemv.wb.data_ptr() == w.data_ptr()
    assert gemv.pos.tolist() == support.tolist()


def test_weight_gradients_on_masks_count_the_paths_through_each_layer():
    # 0/1 weights, no kept positions given (the support is read off the weights): a layer
    # used once lies on every path through it exactly once, so sum_w w * dR/dw over its kept
    # weights is the number of paths through it (path_metrics, checked against integer
    # oracles in tests/test_paths.py)
    from sparsegraph.metrics.paths import path_metrics

    model, x = sg.build_model("lenet5")
    net = trace(model, x)
    masks = _masks(net, np.random.default_rng(2), 0.3, 0.1)
    pm = path_metrics(net, masks, min_cut=False)
    weights = [torch.from_numpy(masks[n].astype(np.float64)) for n in net.names]
    _, grads = FlowWalk(net, weights).forward(grad=True).backward(weights=True)
    for li, name in enumerate(net.names):
        (use,) = grads[li]
        assert use.h.shape == masks[name].shape
        through = float((use.h * weights[li]).sum())
        if pm.layer_log10_paths[name] == -np.inf:
            assert through == 0.0
            continue
        log10 = np.log10(through) + use.log10
        assert log10 == pytest.approx(pm.layer_log10_paths[name], abs=1e-9), name


# --------------------------------------------------------------------------- pinned masks


def mask_digest(masks: dict[str, np.ndarray]) -> str:
    """sha256 over the layers in name order: the name (utf-8), then the mask's bytes (one
    0/1 byte per weight, C order)."""
    h = hashlib.sha256()
    for name in sorted(masks):
        h.update(name.encode())
        h.update(np.ascontiguousarray(masks[name], dtype=bool).tobytes())
    return h.hexdigest()


# Digests of prune(model, "synflow", density=D, rounds=R, quotas=Q) on build_model(name)
# (seed 0), computed with the implementation before the restricted products (commit bc03802:
# every layer a dense float64 product, autograd per node) and identical with the torch.fx-era
# implementation of commit 3058b37 (a single autograd pass over dense products): the kept set
# of every round is the same, only the order of float64 sums differs.
PINNED = {
    ("lenet5", 0.01, 100, None):
        "1df738c900512e92d2db0153f938e2ca75d3efe3fc4a42b9771590864d55f631",
    ("lenet5", 0.05, 10, "erk"):
        "f917cd910e89b632a276a0895d54e53b9caeac667e869882e4beb8d3a0c9b023",
    ("resnet20", 0.01, 100, None):
        "b599bc9b1d7b358f0563e21b62e6bf51b829e939687e38879c5d8abdd4b870f8",
    ("resnet20", 0.1, 20, None):
        "1dcd02d717ff4342021bb9a6d75679740dc89c5177f17065c28afb2084402490",
    ("vgg11", 0.01, 100, None):
        "d97412de9796247cc717f3c380f573842f1124bdf66214842e3df5a8e0fdf8cc",
    ("vgg11", 0.05, 10, "igq"):
        "99d435ab744106cd13f4a7801b0a10d356c1156c912bc8439c7e61d09be7e169",
}
_SLOW = {("resnet20", 0.01, 100, None), ("resnet20", 0.1, 20, None), ("vgg11", 0.01, 100, None)}


def _synflow_masks(name: str, density: float, rounds: int, quotas: str | None):
    model, x = sg.build_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        kw = {} if quotas is None else {"quotas": quotas}
        return sg.prune(model, "synflow", density=density, example_input=x, rounds=rounds, **kw)


@pytest.mark.parametrize("config", [
    pytest.param(c, marks=pytest.mark.slow) if c in _SLOW else c for c in PINNED],
    ids=lambda c: "-".join(map(str, c)))
def test_synflow_masks_are_pinned(config):
    assert mask_digest(_synflow_masks(*config)) == PINNED[config]


_OLD_COMMIT = "3058b37"
_OLD_SCRIPT = """
import hashlib, json, sys, warnings
import numpy as np
import sparsegraph as sg
from sparsegraph.pytorch.models import build_model
out = {}
for name, density, rounds, quotas in json.loads(sys.argv[1]):
    model, x = build_model(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {} if quotas is None else {"quotas": quotas}
        m = sg.prune(model, "synflow", density=density, example_input=x, rounds=rounds, **kw)
    h = hashlib.sha256()
    for n in sorted(m):
        h.update(n.encode()); h.update(np.ascontiguousarray(m[n], dtype=bool).tobytes())
    out["/".join(map(str, (name, density, rounds, quotas)))] = h.hexdigest()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_pinned_masks_equal_the_torch_fx_era_implementation():
    """The digests above, recomputed by the code of commit 3058b37 (checked out in a temporary
    git worktree and run in a subprocess)."""
    root = Path(__file__).resolve().parents[1]
    git = shutil.which("git")
    if git is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    if subprocess.run([git, "cat-file", "-e", f"{_OLD_COMMIT}^{{commit}}"], cwd=root,
                      capture_output=True).returncode:
        pytest.skip(f"commit {_OLD_COMMIT} is not in this repository")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "old"
        subprocess.run([git, "worktree", "add", "--detach", str(tree), _OLD_COMMIT], cwd=root,
                       check=True, capture_output=True)
        try:
            env = dict(os.environ, PYTHONPATH=str(tree))
            run = subprocess.run([sys.executable, "-c", _OLD_SCRIPT, json.dumps(list(PINNED))],
                                 cwd=tree, env=env, capture_output=True, text=True, check=True)
        finally:
            subprocess.run([git, "worktree", "remove", "--force", str(tree)], cwd=root,
                           capture_output=True)
    old = json.loads(run.stdout.strip().splitlines()[-1])
    for config, digest in PINNED.items():
        assert old["/".join(map(str, config))] == digest, config
