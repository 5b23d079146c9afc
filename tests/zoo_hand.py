"""Hand cases (see ``zoo.py``): tiny models with masks whose effective masks are worked out
on paper; each case says why in ``why``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from reference import default_prunable
from torch import nn

# ----------------------------------------------------------------------------- hand cases


class HandSE(nn.Module):
    """c1 (1x1, 2 -> 3) -> squeeze-excitation (pool, fc1 3 -> 2, ReLU, fc2 2 -> 3, sigmoid,
    gate * x) -> c2 (1x1, 3 -> 2)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 1)
        self.fc1 = nn.Conv2d(3, 2, 1)
        self.fc2 = nn.Conv2d(2, 3, 1)
        self.c2 = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.c1(x)
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return self.c2(x * gate)


class HandGated(nn.Module):
    """a: Linear 4 -> 6 (rows 0-2 the first half, rows 3-5 the second), the gated unit, o:
    Linear 3 -> 2. ``glu``: first half * sigmoid(second) (``F.glu``); ``swiglu``:
    silu(first) * second."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.a = nn.Linear(4, 6)
        self.o = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if self.kind == "glu":
            h = F.glu(h, dim=-1)
        else:
            first, second = h.chunk(2, dim=-1)
            h = F.silu(first) * second
        return self.o(h)


class HandCausal(nn.Module):
    """Tokens (1, 3, 2). ``later`` (Linear) transforms positions 1 and 2 only (after slicing);
    cat with position 0; causal single-head attention (q, k, v, o Linears; sdpa or
    masked_fill(-inf) + softmax); the output is read at position ``read`` only."""

    def __init__(self, read: int, sdpa: bool) -> None:
        super().__init__()
        self.read, self.sdpa = read, sdpa
        self.later = nn.Linear(2, 2)
        self.q, self.k, self.v, self.o = (nn.Linear(2, 2) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x[:, :1], self.later(x[:, 1:])], dim=1)
        q, k, v = self.q(h), self.k(h), self.v(h)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-2, -1)).masked_fill(
                torch.ones(3, 3, dtype=torch.bool).triu(1), float("-inf"))
            y = scores.softmax(-1) @ v
        return self.o(y)[:, self.read]


class HandPadded(nn.Module):
    """``nn.MultiheadAttention`` (dim 4, 2 heads) over 3 tokens with a key padding mask."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, key_padding_mask=padding, need_weights=False)[0]


class HandTied(nn.Module):
    """Embedding (vocab 3, dim 2) -> h (Linear 2 -> 2) -> head (Linear 2 -> 3), the head's
    weight tied to the embedding's (one parameter, ``wte.weight``)."""

    def __init__(self, tie: bool = True) -> None:
        super().__init__()
        self.wte = nn.Embedding(3, 2)
        self.h = nn.Linear(2, 2, bias=False)
        self.head = nn.Linear(2, 3, bias=False)
        if tie:
            self.head.weight = self.wte.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.h(self.wte(ids)))


class HandConstants(nn.Module):
    """A class token and a position embedding (added: 0 in the linearised network), a
    zero-initialised layer scale ``gamma`` (a factor: positive), around two Linears; with
    ``read_all`` False the output is ``y * gate(x)[:, :1]``, the class token's gate."""

    def __init__(self, read_all: bool) -> None:
        super().__init__()
        self.read_all = read_all
        self.cls = nn.Parameter(torch.ones(1, 1, 2))
        self.pos = nn.Parameter(torch.ones(1, 3, 2))
        self.gamma = nn.Parameter(torch.zeros(2))
        self.fc = nn.Linear(2, 2)
        self.gate = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        y = self.gamma[None, None, :] * self.fc(x)
        return y * (self.gate(x) if self.read_all else self.gate(x)[:, :1])


@dataclass(frozen=True)
class HandCase:
    """A hand-made case: ``masks`` (missing keys: dense) and the ``expected`` effective masks
    of every prunable weight, worked out on paper (the derivation is in ``why``)."""

    name: str
    build: Callable[[], nn.Module]
    args: tuple
    masks: dict[str, Any]
    expected: dict[str, Any]
    why: str

    def make(self) -> tuple[nn.Module, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The model, its full masks and the expected effective masks (bool arrays)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = self.build().eval()
        params = dict(model.named_parameters())
        full = {n: np.asarray(self.masks[n], bool) if n in self.masks
                else np.ones(params[n].shape, bool) for n in default_prunable(model)}
        want = {n: np.broadcast_to(np.asarray(self.expected[n], bool), full[n].shape)
                for n in full}
        return model, full, want


def _rows(n_rows: int, alive: list[int], cols: int) -> np.ndarray:
    out = np.zeros((n_rows, cols), bool)
    out[alive] = True
    return out


_SE_IN = (torch.zeros(1, 2, 4, 4),)
_C1_DEAD_CH2 = np.ones((3, 2, 1, 1), bool)
_C1_DEAD_CH2[2] = False
_TOK3 = (torch.zeros(1, 3, 2),)

HAND_CASES: dict[str, HandCase] = {case.name: case for case in (
    HandCase("se_dead_fc2", HandSE, _SE_IN, {"fc2.weight": np.zeros((3, 2, 1, 1))},
             {"c1.weight": 1, "fc1.weight": 0, "fc2.weight": 0, "c2.weight": 1},
             "fc2 pruned: the gate is sigmoid(0) = 1/2, a nonzero constant, so the trunk c1 -> "
             "c2 carries signal; fc1's outputs reach the output only through fc2: inactive"),
    HandCase("se_dead_fc1", HandSE, _SE_IN, {"fc1.weight": np.zeros((2, 3, 1, 1))},
             {"c1.weight": 1, "fc1.weight": 0, "fc2.weight": 0, "c2.weight": 1},
             "fc1 pruned: fc2 reads relu(0) = 0, no signal: inactive; the trunk lives"),
    HandCase("se_dead_channel", HandSE, _SE_IN, {"c1.weight": _C1_DEAD_CH2},
             {"c1.weight": _C1_DEAD_CH2, "fc1.weight": [[[[1]], [[1]], [[0]]]] * 2,
              "fc2.weight": [[[[1]], [[1]]], [[[1]], [[1]]], [[[0]], [[0]]]],
              "c2.weight": [[[[1]], [[1]], [[0]]]] * 2},
             "c1's channel 2 pruned: x_2 = 0. fc1[:, 2] reads it: no signal. The gate g_2 is "
             "reached but x_2 * g_2 is zero, so g_2 is not backward-live (its factor is zero): "
             "fc2[2] inactive; c2[:, 2] reads the unreached x_2 * g_2"),
    HandCase("glu_dead_value", lambda: HandGated("glu"), (torch.zeros(1, 4),),
             {"a.weight": _rows(6, [3, 4, 5], 4)}, {"a.weight": 0, "o.weight": 0},
             "GLU with its value half pruned: value 0 times anything is 0, the unit is dead"),
    HandCase("glu_dead_gate", lambda: HandGated("glu"), (torch.zeros(1, 4),),
             {"a.weight": _rows(6, [0, 1, 2], 4)},
             {"a.weight": _rows(6, [0, 1, 2], 4), "o.weight": 1},
             "GLU with its sigmoid gate pruned: sigmoid(0) = 1/2, the value half passes"),
    HandCase("swiglu_dead_gate", lambda: HandGated("swiglu"), (torch.zeros(1, 4),),
             {"a.weight": _rows(6, [3, 4, 5], 4)}, {"a.weight": 0, "o.weight": 0},
             "SwiGLU with its silu gate pruned: silu(0) = 0, the product is 0: dead"),
    HandCase("swiglu_dead_value", lambda: HandGated("swiglu"), (torch.zeros(1, 4),),
             {"a.weight": _rows(6, [0, 1, 2], 4)}, {"a.weight": 0, "o.weight": 0},
             "SwiGLU with its linear half pruned: dead"),
    *(HandCase(f"causal_first_{kind}", lambda sdpa=sdpa: HandCausal(0, sdpa), _TOK3, {},
               {"later.weight": 0, "q.weight": 0, "k.weight": 0, "v.weight": 1, "o.weight": 1},
               "read at position 0: its softmax fibre has one unmasked entry, the constant 1, "
               "so q and k get no signal; y_0 = v(x_0): v and o effective; `later` feeds "
               "positions 1, 2 only, which position 0 never reads: inactive")
      for kind, sdpa in (("sdpa", True), ("masked", False))),
    *(HandCase(f"causal_second_{kind}", lambda sdpa=sdpa: HandCausal(1, sdpa), _TOK3, {},
               {"later.weight": 1, "q.weight": 1, "k.weight": 1, "v.weight": 1, "o.weight": 1},
               "read at position 1: its fibre {0, 1} has two entries, q_1.k_0 and q_1.k_1 are "
               "reached (h_1 = later(x_1)): everything effective")
      for kind, sdpa in (("sdpa", True), ("masked", False))),
    HandCase("mha_one_key", HandPadded, (torch.zeros(1, 3, 4), torch.tensor([[0, 1, 1]]).bool()),
             {}, {"attn.in_proj_weight": _rows(12, [8, 9, 10, 11], 4),
                  "attn.out_proj.weight": 1},
             "every key but token 0 is padding: each fibre has one entry, the softmax is the "
             "constant 1 and out_t = out_proj(v(x_0)): the q and k row blocks of the packed "
             "in_proj_weight (rows 0-7) are inactive, the v block (rows 8-11) effective"),
    HandCase("mha_two_keys", HandPadded, (torch.zeros(1, 3, 4), torch.tensor([[0, 0, 1]]).bool()),
             {}, {"attn.in_proj_weight": 1, "attn.out_proj.weight": 1},
             "two live keys: the scores carry signal, every block is effective"),
    HandCase("tied", HandTied, (torch.tensor([[0, 2]]),),
             {"wte.weight": [[1, 0], [0, 1], [0, 0]], "h.weight": [[0, 1], [0, 0]]},
             {"wte.weight": [[1, 0], [0, 1], [0, 0]], "h.weight": [[0, 1], [0, 0]]},
             "W keeps W[0,0], W[1,1]; h keeps h[0,1] (feature 1 -> unit 0). Embedding use "
             "(one-hot vocabulary input): W[v,j] effective iff feature j is backward-live: "
             "h[0,1] is kept and unit 0 is read by the head through W[0,0], so feature 1 is "
             "live, feature 0 not: W[1,1]. Head use: W[v,d] effective iff h's unit d is "
             "reached: unit 0 is (from feature 1, from W[1,1]), unit 1 not: W[0,0]. Each kept "
             "weight is effective through one use; the one mask keeps both"),
    HandCase("untied", lambda: HandTied(tie=False), (torch.tensor([[0, 2]]),),
             {"head.weight": [[1, 0], [0, 1], [0, 0]], "h.weight": [[0, 1], [0, 0]]},
             {"head.weight": [[1, 0], [0, 0], [0, 0]], "h.weight": [[0, 1], [0, 0]]},
             "untied: the (dense, not prunable) embedding is a source; only the head use of "
             "the tied case remains: head[0,0]"),
    HandCase("constants_cls_gate", lambda: HandConstants(False), (torch.zeros(1, 2, 2),), {},
             {"fc.weight": 0, "gate.weight": 0},
             "the class token and position embedding are 0: gate(x)[:, 0] reads nothing, the "
             "product y * 0 is zero: every weight inactive"),
    HandCase("constants_read_all", lambda: HandConstants(True), (torch.zeros(1, 2, 2),), {},
             {"fc.weight": 1, "gate.weight": 1},
             "reading every position: the layer scale is a positive factor (whatever its "
             "initial value, here 0), both Linears effective"),
)}
