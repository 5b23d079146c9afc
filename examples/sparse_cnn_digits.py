"""Train a small sparse CNN on scikit-learn's 8x8 digits at 5% density, with masks from
uniform, ERK and IGQ random pruning and from SynFlow; print direct vs effective density next to
the test accuracy. Offline; about a minute on 2 cores (``--quick`` for the tests).

    python examples/sparse_cnn_digits.py [--density 0.05] [--epochs 20] [--quick]
"""

from __future__ import annotations

import torch
from _digits import parse_args, run
from torch import nn


def build(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 10),
    )


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], density=0.05, epochs=20)
    run(build, torch.zeros(1, 1, 8, 8), image=True, args=args, title="sparse CNN")
