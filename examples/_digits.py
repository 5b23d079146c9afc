"""Shared by the examples: scikit-learn's bundled digits data (offline), a training loop, and
the mask recipes (uniform, ERK, IGQ random masks and SynFlow)."""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from torch import nn

import sparsegraph as sg

SCHEMES = ("uniform", "erk", "igq", "synflow")


def parse_args(description: str, density: float, epochs: int) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--density", type=float, default=density, help=f"default {density}")
    p.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="2 epochs, 10 SynFlow rounds (tests)")
    args = p.parse_args()
    if args.quick:
        args.epochs = 2
    return args


def digits(image: bool, seed: int = 0):
    """Train/test tensors of the 8x8 digits: ``(N, 64)`` or ``(N, 1, 8, 8)``, standardised."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0 - 0.5).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = int(0.8 * len(x))
    shape = (-1, 1, 8, 8) if image else (-1, 64)
    xt = torch.from_numpy(x).reshape(shape)
    yt = torch.from_numpy(y).long()
    return (xt[:cut], yt[:cut]), (xt[cut:], yt[cut:])


def make_masks(scheme: str, model: nn.Module, example: torch.Tensor, density: float, seed: int,
               rounds: int) -> dict[str, np.ndarray]:
    net = sg.trace(model, example)
    if scheme == "synflow":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sg.prune(model, "synflow", density=density, example_input=example,
                            rounds=rounds)
    return sg.random_masks(net, sg.quotas(net, scheme, density=density), seed=seed)


def train(model: nn.Module, masks: dict[str, np.ndarray], data, epochs: int, seed: int, *,
          lr: float = 0.1, rescale: bool = True) -> float:
    """Apply the masks, train with SGD (momentum, weight decay), check that every pruned
    weight is still exactly zero, and return the test accuracy. ``rescale`` multiplies the
    kept weights by 1/sqrt(layer density) (for training from scratch; not for fine-tuning)."""
    (xtr, ytr), (xte, yte) = data
    sg.apply_masks(model, masks, rescale=rescale)      # 1. weight = weight_orig * weight_mask
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):                            # 2. train as usual
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    after = sg.extract_masks(model)                    # 3. the pruned weights are still zero
    for name, m in masks.items():
        assert np.array_equal(after[name], after[name] & m), f"{name}: a pruned weight regrew"
        mod, _, p = name.rpartition(".")
        w = getattr(model.get_submodule(mod), p).detach().numpy()
        assert np.all(w[~m] == 0.0), f"{name}: pruned weight not exactly zero"
    return acc


def run(build, example: torch.Tensor, image: bool, args: argparse.Namespace, title: str) -> None:
    torch.set_num_threads(1)  # small models: threads only add overhead
    torch.manual_seed(args.seed)
    data = digits(image, args.seed)
    rounds = 10 if args.quick else 100
    print(f"{title}: density {args.density}, {args.epochs} epochs, digits "
          f"({len(data[0][0])} train / {len(data[1][0])} test)")
    print(f"{'masks':<10}{'direct':>10}{'effective':>11}{'test acc':>10}{'time':>8}")
    for scheme in ("dense", *SCHEMES):
        t0 = time.perf_counter()
        model = build(args.seed)
        net = sg.trace(model, example)
        if scheme == "dense":
            masks = {n: np.ones(layer.shape, bool) for n, layer in zip(net.names, net.layers,
                                                                       strict=True)}
        else:
            masks = make_masks(scheme, model, example, args.density, args.seed, rounds)
        rep = sg.audit(net, masks).network
        acc = train(model, masks, data, args.epochs, args.seed)
        print(f"{scheme:<10}{rep.direct_density:>10.4f}{rep.effective_density:>11.4f}"
              f"{acc:>10.3f}{time.perf_counter() - t0:>7.1f}s")
    print("pruned weights are exactly zero after training: checked for every mask")
