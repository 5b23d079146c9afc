"""Train a sparse MLP (64-300-100-10) on scikit-learn's digits at 5% density, with masks from
uniform, ERK and IGQ random pruning and from SynFlow; print direct vs effective density next to
the test accuracy. Offline; about half a minute on 2 cores (``--quick`` for the tests).

    python examples/sparse_mlp_digits.py [--density 0.05] [--epochs 30] [--quick]
"""

from __future__ import annotations

import torch
from _digits import parse_args, run
from torch import nn


def build(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


if __name__ == "__main__":
    args = parse_args(__doc__.splitlines()[0], density=0.05, epochs=30)
    run(build, torch.zeros(1, 64), image=False, args=args, title="sparse MLP")
