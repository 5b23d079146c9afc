"""Zoo models for token sequences (see ``zoo.py``): GPT-2 (two attention forms, tied LM
head), BERT with ``nn.MultiheadAttention``, ``nn.TransformerEncoder``, GLU/SwiGLU MLPs, and a model
with several inputs and a dict output, with their example inputs."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------- GPT-2


class CausalSelfAttention(nn.Module):
    """GPT-2 attention: packed ``c_attn``, ``split``, heads by view/transpose, causal softmax
    attention either by ``F.scaled_dot_product_attention(is_causal=True)`` (``"sdpa"``) or
    explicitly, ``masked_fill(-inf)`` with a registered lower-triangular buffer and softmax
    (``"masked"``); ``c_proj``."""

    def __init__(self, dim: int, heads: int, context: int, attn: str) -> None:
        super().__init__()
        self.heads, self.attn = heads, attn
        self.c_attn = nn.Linear(dim, 3 * dim)
        self.c_proj = nn.Linear(dim, dim)
        if attn == "masked":
            tril = torch.tril(torch.ones(context, context)).view(1, 1, context, context)
            self.register_buffer("bias", tril)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.size()
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2)
                   for z in self.c_attn(x).split(c, dim=2))
        if self.attn == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class GPTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, context: int, attn: str) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, context, attn)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    """GPT-2 layout (nanoGPT names): token and position embeddings, pre-norm blocks, final
    LayerNorm, LM head tied to the token embedding (``lm_head.weight is transformer.wte.weight``,
    one parameter named ``transformer.wte.weight``)."""

    def __init__(self, attn: str = "sdpa", vocab: int = 32, context: int = 8, dim: int = 16,
                 heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, dim),
            "wpe": nn.Embedding(context, dim),
            "h": nn.ModuleList(GPTBlock(dim, heads, context, attn) for _ in range(layers)),
            "ln_f": nn.LayerNorm(dim),
        })
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], dtype=torch.long)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def tokens(vocab: int = 32, length: int = 8) -> Callable[[], tuple[tuple, dict]]:
    return lambda: ((torch.randint(0, vocab, (1, length)),), {})

# ----------------------------------------------------------------------------- BERT


class BertLayer(nn.Module):
    """Post-norm encoder layer with ``nn.MultiheadAttention`` (packed ``in_proj_weight``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.ln2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        a, _ = self.attention(x, x, x, key_padding_mask=pad, need_weights=False)
        x = self.ln1(x + a)
        return self.ln2(x + self.ffn(x))


class TinyBert(nn.Module):
    """BERT layout (Devlin et al. 2019): word + position + token-type embeddings (positions and
    types from buffers: constants), LayerNorm, two post-norm MHA layers with a padding mask from
    the ``attention_mask`` keyword input (1 = token, 0 = padding), tanh pooler on the first
    token, classifier."""

    def __init__(self, vocab: int = 32, context: int = 8, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.position_embeddings = nn.Embedding(context, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.register_buffer("position_ids", torch.arange(context).unsqueeze(0))
        self.register_buffer("token_type_ids", torch.zeros(1, context, dtype=torch.long))
        self.emb_norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(BertLayer(dim, heads) for _ in range(2))
        self.pooler = nn.Linear(dim, dim)
        self.classifier = nn.Linear(dim, 3)

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        t = input_ids.shape[1]
        x = (self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :t])
             + self.token_type_embeddings(self.token_type_ids[:, :t]))
        x = self.emb_norm(x)
        pad = None if attention_mask is None else attention_mask == 0
        for layer in self.layers:
            x = layer(x, pad)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


def tokens_with_padding(vocab: int = 32, length: int = 8,
                         padding: int = 2) -> Callable[[], tuple[tuple, dict]]:
    def make() -> tuple[tuple, dict]:
        mask = torch.ones(1, length, dtype=torch.long)
        mask[:, length - padding:] = 0
        return (torch.randint(0, vocab, (1, length)),), {"attention_mask": mask}

    return make


class TorchEncoder(nn.Module):
    """``nn.TransformerEncoder`` of pre-norm ``nn.TransformerEncoderLayer``s (whose eval-mode
    fast path is one fused op) with a key padding mask, mean over tokens, head."""

    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x, src_key_padding_mask=padding).mean(1))


def encoder_inputs() -> tuple[tuple, dict]:
    padding = torch.zeros(1, 6, dtype=torch.bool)
    padding[:, 4:] = True
    return (torch.rand(1, 6, 16), padding), {}

# ----------------------------------------------------------------------------- gated MLPs


class GatedMLPs(nn.Module):
    """On (B, T, D) tokens: a GLU MLP (Dauphin et al. 2017; ``F.glu``: first half times the
    sigmoid of the second) and a SwiGLU MLP (Shazeer 2020; ``silu(w1 x) * w3 x``), residual."""

    def __init__(self, dim: int = 8, hidden: int = 12) -> None:
        super().__init__()
        self.glu_in = nn.Linear(dim, 2 * hidden)
        self.glu_out = nn.Linear(hidden, dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.glu_out(F.glu(self.glu_in(x), dim=-1))
        return x + self.w2(F.silu(self.w1(x)) * self.w3(x))

# ----------------------------------------------------------------------------- several inputs


class MultiIO(nn.Module):
    """Three inputs (an image, a token tensor, and a keyword input ``extra``) and a dict output
    ``{"logits", "aux"}``."""

    def __init__(self) -> None:
        super().__init__()
        self.img = nn.Conv2d(3, 4, 3, padding=1)
        self.tok = nn.Linear(6, 4)
        self.extra = nn.Linear(5, 4)
        self.fuse = nn.Linear(8, 4)
        self.head = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 2)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor, *,
                extra: torch.Tensor) -> dict[str, torch.Tensor]:
        tok = self.tok(tokens).mean(1)
        fused = self.fuse(torch.cat([self.img(image).mean((2, 3)), tok], dim=1))
        return {"logits": self.head(fused + self.extra(extra)), "aux": self.aux(tok)}


def multi_inputs() -> tuple[tuple, dict]:
    return (torch.rand(1, 3, 8, 8), torch.rand(1, 4, 6)), {"extra": torch.rand(1, 5)}
