"""Random networks (see ``zoo.py``): a hypothesis strategy for small networks mixing gates,
permutes, slicing, softmax attention, upsampling and residual adds."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch import nn

__all__ = ["RandomNet", "random_network"]


# ----------------------------------------------------------------------------- random networks


class RandomNet(nn.Module):
    """A network run from a plan: a list of ``(op, module indices, options)`` steps on an
    (N, C, H, W) activation, then a head."""

    def __init__(self, plan: list[tuple[str, tuple[int, ...], dict]], mods: list[nn.Module],
                 head: str) -> None:
        super().__init__()
        self.plan, self.mods, self.head_kind = plan, nn.ModuleList(mods), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: C901 - one branch per op
        m = self.mods
        for op, idx, opt in self.plan:
            if op == "conv":
                x = F.relu(m[idx[0]](x))
            elif op == "res":
                x = x + m[idx[0]](x)
            elif op == "se":
                gate = m[idx[0]](x.mean((2, 3), keepdim=True))
                x = (torch.sigmoid(gate) if opt["sigmoid"] else F.hardsigmoid(gate)) * x
            elif op == "glu":
                a, b = m[idx[0]](x).chunk(2, dim=1)
                x = a * torch.sigmoid(b)
            elif op == "swiglu":
                x = F.silu(m[idx[0]](x)) * m[idx[1]](x)
            elif op == "permute_linear":
                x = m[idx[0]](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            elif op == "slice":
                x = x[opt["index"]]
            elif op == "upsample":
                x = F.interpolate(x, scale_factor=2, mode=opt["mode"],
                                  **({"align_corners": False} if opt["mode"] == "bilinear"
                                     else {}))
            elif op == "pool":
                x = F.max_pool2d(x, 2) if opt["max"] else F.avg_pool2d(x, 2)
            elif op == "cat":
                x = torch.cat([x, m[idx[0]](x)], dim=1)
            elif op == "attn":
                x = self._attention(x, idx, opt)
        if self.head_kind == "flatten":
            return m[-1](torch.flatten(x, 1))
        if self.head_kind == "first":  # read one position only
            return x[:, :, 0, 0]
        return x

    def _attention(self, x: torch.Tensor, idx: tuple[int, ...], opt: dict) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = (self.mods[i](t) for i in idx[:3])
        if opt["sdpa"]:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=opt["causal"])
        else:
            scores = q @ k.transpose(-2, -1) / math.sqrt(c)
            if opt["causal"]:
                causal = torch.ones(h * w, h * w, dtype=torch.bool).triu(1)
                scores = scores.masked_fill(causal, float("-inf"))
            y = scores.softmax(-1) @ v
        y = self.mods[idx[3]](y).transpose(1, 2).reshape(b, c, h, w)
        return x + y if opt["residual"] else y


_LINEAR_OPS = ("conv", "conv", "res", "res", "permute_linear", "slice", "upsample", "pool", "cat")
_ALL_OPS = (*_LINEAR_OPS, "se", "glu", "swiglu", "attn", "attn")


@st.composite
def random_network(draw: Any, linear_only: bool = False) -> tuple[RandomNet, torch.Tensor]:
    """A small random :class:`RandomNet` and a zero input for it (see the module docstring).

    Spatial sizes stay >= 2 before any attention or upsampling, so that no two tokens of a
    softmax fibre are copies of each other everywhere (which would cancel a key's gradient by
    the softmax's shift invariance: a symmetry, not a missing path).
    """
    c0, h0, w0 = draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 5))
    c, h, w = c0, h0, w0
    mods: list[nn.Module] = []
    plan: list[tuple[str, tuple[int, ...], dict]] = []

    def add(*ms: nn.Module) -> tuple[int, ...]:
        mods.extend(ms)
        return tuple(range(len(mods) - len(ms), len(mods)))

    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(_LINEAR_OPS if linear_only else _ALL_OPS))
        if op == "conv":
            c2, k = draw(st.integers(1, 4)), draw(st.sampled_from([1, 3]))
            plan.append((op, add(nn.Conv2d(c, c2, k, padding=k // 2)), {}))
            c = c2
        elif op == "res":
            plan.append((op, add(nn.Conv2d(c, c, 3, padding=1)), {}))
        elif op == "se":
            plan.append((op, add(nn.Conv2d(c, c, 1)), {"sigmoid": draw(st.booleans())}))
        elif op == "glu":
            c2 = draw(st.integers(1, 3))
            plan.append((op, add(nn.Conv2d(c, 2 * c2, 1)), {}))
            c = c2
        elif op == "swiglu":
            c2 = draw(st.integers(1, 3))
            plan.append((op, add(nn.Conv2d(c, c2, 1), nn.Conv2d(c, c2, 3, padding=1)), {}))
            c = c2
        elif op == "permute_linear":
            c2 = draw(st.integers(1, 4))
            plan.append((op, add(nn.Linear(c, c2)), {}))
            c = c2
        elif op == "slice":
            choices = [a for a, ok in (("channels", c > 1), ("rows", h > 2), ("stride", w > 3))
                       if ok]
            if not choices:
                continue
            kind = draw(st.sampled_from(choices))
            if kind == "channels":
                k = draw(st.integers(1, c - 1))
                index, c = (slice(None), slice(0, k)), k
            elif kind == "rows":
                index, h = (slice(None), slice(None), slice(1, None)), h - 1
            else:
                index, w = (Ellipsis, slice(None, None, 2)), (w + 1) // 2
            plan.append((op, (), {"index": index}))
        elif op == "upsample" and h * w <= 16:
            plan.append((op, (), {"mode": draw(st.sampled_from(["nearest", "bilinear"]))}))
            h, w = 2 * h, 2 * w
        elif op == "pool" and h >= 4 and w >= 4:
            plan.append((op, (), {"max": draw(st.booleans())}))
            h, w = h // 2, w // 2
        elif op == "cat":
            c2 = draw(st.integers(1, 2))
            plan.append((op, add(nn.Conv2d(c, c2, 1, bias=False)), {}))
            c += c2
        elif op == "attn":
            plan.append((op, add(*(nn.Linear(c, c) for _ in range(4))), {
                "sdpa": draw(st.booleans()), "causal": draw(st.booleans()),
                "residual": draw(st.booleans())}))
    if not mods:  # at least one prunable layer
        plan.append(("conv", add(nn.Conv2d(c, 2, 1)), {}))
        c = 2
    head = draw(st.sampled_from(["flatten", "map", "first"]))
    if head == "flatten":
        add(nn.Linear(c * h * w, draw(st.integers(1, 3))))
    return RandomNet(plan, mods, head).eval(), torch.zeros(1, c0, h0, w0)
