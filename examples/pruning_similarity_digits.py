"""Do pruned networks keep the dense network's representations? (after *Is Pruning
Compression?*, WACV 2020, and the sanity checks of Frankle et al., ICLR 2021.)

Trains a small dense CNN on scikit-learn's 8x8 digits (offline), then at three densities:
(a) global magnitude pruning of the trained network + fine-tuning, (b) the same mask with the
weights re-initialised and trained from scratch, (c) a random ERK mask trained from scratch;
and, for SNIP at one density, the PaI sanity checks: the SNIP mask, its layerwise shuffle, the
mask with re-initialised weights, and the inverted score. Prints test accuracy beside the
per-layer SVCCA and CKA of every network to the dense one (post-ReLU outputs and logits, on the
held-out digits) and draws them. A dense network trained from another seed is the yardstick.
Offline and deterministic; about 65 s of CPU time on one thread (``--quick`` for the tests).

    python examples/pruning_similarity_digits.py [--epochs 12] [--out similarity.png] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections import OrderedDict

import numpy as np
import torch
from _digits import digits, train
from torch import nn

import sparsegraph as sg

DENSITIES = (0.3, 0.1, 0.03)
SANITY_DENSITY = 0.1
LAYERS = ("act1", "act2", "act3", "fc")  # post-ReLU outputs of the convs, then the logits
ARMS = ("magnitude + fine-tune", "same mask, re-initialised", "random ERK")
SANITY = ("SNIP", "SNIP, layerwise shuffle", "SNIP, re-initialised", "SNIP, inverted score")


def build(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, 16, 3, padding=1), bn1=nn.BatchNorm2d(16), act1=nn.ReLU(),
        conv2=nn.Conv2d(16, 32, 3, padding=1), bn2=nn.BatchNorm2d(32), act2=nn.ReLU(),
        pool=nn.MaxPool2d(2),
        conv3=nn.Conv2d(32, 32, 3, padding=1), bn3=nn.BatchNorm2d(32), act3=nn.ReLU(),
        gap=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(32, 10),
    ))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12, help="default 12 (fine-tuning: half)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="similarity.png", help="the figure (default similarity.png)")
    p.add_argument("--quick", action="store_true", help="1 epoch (tests)")
    args = p.parse_args()
    epochs = 1 if args.quick else args.epochs
    torch.set_num_threads(1)  # small models: threads only add overhead
    t0 = time.perf_counter()
    data = digits(image=True, seed=args.seed)
    (xtr, ytr), (xte, _) = data
    x = torch.zeros(1, 1, 8, 8)
    rows: list[tuple[str, float, float, float, sg.SimilarityTable, sg.SimilarityTable]] = []

    dense = build(args.seed)
    dense_acc = train(dense, {}, data, epochs, args.seed)

    net = sg.trace(build(0), x)

    def record(arm: str, density: float, model: nn.Module, acc: float) -> None:
        kw = {"layers": LAYERS, "batch_size": len(xte)}  # CKA: one minibatch, the debiased CKA
        effective = sg.audit(net, sg.extract_masks(model)).network.effective_density
        rows.append((arm, density, effective, acc,
                     sg.layer_similarity(dense, model, xte, method="svcca", keep=0.99, **kw),
                     sg.layer_similarity(dense, model, xte, method="cka", **kw)))

    record("dense (the reference)", 1.0, dense, dense_acc)
    other = build(args.seed + 1)
    record("dense, another seed", 1.0, other, train(other, {}, data, epochs, args.seed + 1))

    for d in DENSITIES:
        tuned = copy.deepcopy(dense)  # (a) prune the trained weights by magnitude, fine-tune
        masks = sg.prune(tuned, "magnitude", density=d, example_input=x)
        acc = train(tuned, masks, data, max(1, epochs // 2), args.seed, lr=0.02, rescale=False)
        record(ARMS[0], d, tuned, acc)
        fresh = sg.reinit(tuned, seed=args.seed + 100)  # (b) same mask, fresh weights
        record(ARMS[1], d, fresh, train(fresh, masks, data, epochs, args.seed))
        erk = build(args.seed + 200)  # (c) a random ERK mask
        erk_masks = sg.random_masks(sg.trace(erk, x), "erk", density=d, seed=args.seed)
        record(ARMS[2], d, erk, train(erk, erk_masks, data, epochs, args.seed))

    init = build(args.seed + 300)  # SNIP at initialisation and its sanity checks
    batch = (xtr[:256], ytr[:256])
    kw = {"density": SANITY_DENSITY, "example_input": x, "data": batch}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sg.LayerCollapseWarning)
        snip = sg.prune(init, "snip", **kw)
        inverted = sg.prune(init, "snip", invert=True, **kw)
    shuffled = sg.shuffle_masks(snip, seed=args.seed)
    masked = sg.apply_masks(copy.deepcopy(init), snip)
    for arm, model, masks in ((SANITY[0], copy.deepcopy(init), snip),
                              (SANITY[1], copy.deepcopy(init), shuffled),
                              (SANITY[2], sg.reinit(masked, seed=args.seed + 400), snip),
                              (SANITY[3], copy.deepcopy(init), inverted)):
        record(arm, SANITY_DENSITY, model, train(model, masks, data, epochs, args.seed))

    report(rows, epochs, len(xtr), len(xte))
    draw(rows, args.out)
    print(f"wrote {args.out}; {time.perf_counter() - t0:.0f} s in all")


def report(rows: list, epochs: int, n_train: int, n_test: int) -> None:
    print(f"small CNN on digits ({n_train} train / {n_test} test), {epochs} epochs; similarity "
          "to the dense network on the test digits, per layer " + " ".join(LAYERS))
    head = " ".join(f"{name:>5}" for name in LAYERS)
    print(f"{'network':<27}{'density':>8}{'effective':>10}{'acc':>7}   SVCCA {head}   CKA {head}")
    for arm, d, eff, acc, sv, ck in rows:
        svs = " ".join(f"{v:5.2f}" for v in sv.values.values())
        cks = " ".join(f"{v:5.2f}" for v in ck.values.values())
        print(f"{arm:<27}{d:>8.2f}{eff:>10.4f}{acc:>7.3f}         {svs}       {cks}")


def draw(rows: list, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.5, 8.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True, sharey=True)
    colors = {ARMS[0]: "#0072B2", ARMS[1]: "#D55E00", ARMS[2]: "#009E73", SANITY[0]: "#000000",
              SANITY[1]: "#E69F00", SANITY[2]: "#CC79A7", SANITY[3]: "#56B4E9"}
    styles = {DENSITIES[0]: ("-", "o"), DENSITIES[1]: ("--", "s"), DENSITIES[2]: (":", "^")}
    xs = np.arange(len(LAYERS))
    for col, method in enumerate(("SVCCA (99% of variance)", "CKA (linear, debiased)")):
        for row in range(2):
            ax = axes[row, col]
            for arm, d, eff, acc, *tables in rows:
                values = list(tables[col].values.values())
                if eff == 0:  # nothing effective: constant outputs, similarity 0 by definition
                    acc_text = f"acc {acc:.2f}; collapsed"
                else:
                    acc_text = f"acc {acc:.2f}"
                if arm == "dense, another seed":
                    ax.plot(xs, values, color="0.55", linewidth=3, alpha=0.6,
                            label=f"dense, another seed (acc {acc:.2f})")
                elif row == 0 and arm in ARMS:
                    ls, marker = styles[d]
                    ax.plot(xs, values, color=colors[arm], linestyle=ls, marker=marker,
                            label=f"{arm}, density {d:g} ({acc_text})")
                elif row == 1 and arm in SANITY:
                    ax.plot(xs, values, color=colors[arm], marker="o",
                            label=f"{arm} ({acc_text})")
            ax.set_title(f"{method}: " + ("pruning arms" if row == 0 else
                                          f"sanity checks, density {SANITY_DENSITY:g}"),
                         fontsize=10)
            ax.set_ylim(-0.05, 1.05)
            ax.grid(True, linewidth=0.6, alpha=0.5)
            ax.set_xticks(xs, ["conv1 + ReLU", "conv2 + ReLU", "conv3 + ReLU", "fc (logits)"])
            if row == 1:
                ax.set_xlabel("layer")
            if col == 0:
                ax.set_ylabel("similarity to the dense network")
    for row in range(2):
        axes[row, 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.suptitle("Representations of pruned CNNs on digits compared with the dense network",
                 fontsize=12)
    fig.savefig(path, format="png", metadata={"Software": None})


if __name__ == "__main__":
    main()
